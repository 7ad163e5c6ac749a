//! A SIP phone for cluster tests: a bare endpoint on UDP or TCP that
//! registers through one node (its edge), and dialogs built from the
//! messages it exchanged (RFC 3261 §12), so mid-dialog requests can be
//! sent to any node with the route set a real UA would use.

use std::net::SocketAddr;
use std::time::Duration;

use switchyard_codec::{HeaderName, SipMessage};

use crate::DOMAIN;
use crate::ua::{TcpUa, UdpUa, WAIT, first_line, msg};
use crate::ws::WsUa;

enum Link {
    Udp(UdpUa),
    Tcp(TcpUa),
    Tls(TcpUa),
    /// `true`: secure WebSocket.
    Ws(Box<WsUa>, bool),
}

pub struct Phone {
    pub user: String,
    /// Where our packets come from (the flow's remote end at the edge).
    pub addr: SocketAddr,
    /// The node this phone registers through.
    pub edge: SocketAddr,
    link: Link,
    seq: u32,
}

impl Phone {
    pub async fn udp(user: &str, ip: &str, edge: SocketAddr) -> Phone {
        let ua = UdpUa::bind(ip).await;
        Phone {
            user: user.into(),
            addr: ua.addr,
            edge,
            link: Link::Udp(ua),
            seq: 0,
        }
    }

    pub async fn tcp(user: &str, ip: &str, edge: SocketAddr) -> Phone {
        let ua = TcpUa::connect(ip, edge).await;
        Phone {
            user: user.into(),
            addr: ua.addr,
            edge,
            link: Link::Tcp(ua),
            seq: 0,
        }
    }

    /// A phone on a TLS connection to its edge (`config` trusts the
    /// edge's certificate for `name`).
    pub async fn tls(
        user: &str,
        ip: &str,
        edge: SocketAddr,
        name: &str,
        config: std::sync::Arc<rustls::ClientConfig>,
    ) -> Phone {
        let ua = TcpUa::tls(ip, edge, name, config)
            .await
            .expect("TLS handshake with the edge");
        Phone {
            user: user.into(),
            addr: ua.addr,
            edge,
            link: Link::Tls(ua),
            seq: 0,
        }
    }

    /// A phone as a browser is one (RFC 7118): on a WebSocket it opened,
    /// with a `.invalid` host in its Via and Contact.
    pub fn websocket(user: &str, edge: SocketAddr, ws: WsUa, secure: bool) -> Phone {
        Phone {
            user: user.into(),
            addr: ws.addr,
            edge,
            link: Link::Ws(Box::new(ws), secure),
            seq: 0,
        }
    }

    /// The Via transport token.
    pub fn transport(&self) -> &'static str {
        match self.link {
            Link::Udp(_) => "UDP",
            Link::Tcp(_) => "TCP",
            Link::Tls(_) => "TLS",
            Link::Ws(_, false) => "WS",
            Link::Ws(_, true) => "WSS",
        }
    }

    /// The Via sent-by: our address, or for a WebSocket phone the made-up
    /// `.invalid` host browsers use (RFC 7118 §5.2).
    pub fn sent_by(&self) -> String {
        match self.link {
            Link::Ws(..) => format!("{}-{}.invalid", self.user, self.addr.port()),
            _ => self.addr.to_string(),
        }
    }

    /// Our own address as a Contact URI, with `;transport=` for all but UDP.
    pub fn contact(&self) -> String {
        let param = match self.transport() {
            "UDP" => String::new(),
            tp => format!(";transport={}", tp.to_ascii_lowercase()),
        };
        format!("sip:{}@{}{param}", self.user, self.sent_by())
    }

    /// A fresh token for Call-IDs, tags and branches.
    pub fn next_id(&mut self) -> String {
        self.seq += 1;
        format!("{}-{}-{}", self.user, self.addr.port(), self.seq)
    }

    /// Sends to the edge (over our connection on TCP).
    pub async fn send(&mut self, text: &str) {
        let edge = self.edge;
        self.send_to(edge, text).await;
    }

    /// Sends to any node: over UDP from our socket; TCP phones can only
    /// talk to their edge.
    pub async fn send_to(&mut self, to: SocketAddr, text: &str) {
        match &mut self.link {
            Link::Udp(ua) => ua.send(to, text).await,
            Link::Tcp(ua) | Link::Tls(ua) => {
                assert_eq!(to, self.edge, "a TCP phone only talks to its edge");
                ua.send(text).await
            }
            Link::Ws(ua, _) => {
                assert_eq!(to, self.edge, "a WebSocket phone only talks to its edge");
                ua.send(text).await
            }
        }
    }

    /// The next message and the address it came from.
    pub async fn recv(&mut self, what: &str) -> (SipMessage, SocketAddr) {
        match &mut self.link {
            Link::Udp(ua) => ua.recv(what).await,
            Link::Tcp(ua) | Link::Tls(ua) => (ua.recv(what).await, self.edge),
            Link::Ws(ua, _) => (ua.recv(what).await, self.edge),
        }
    }

    /// The next message `wanted` accepts; others (retransmissions, 100
    /// Trying...) are skipped.
    pub async fn recv_matching(
        &mut self,
        what: &str,
        wanted: impl Fn(&SipMessage) -> bool,
    ) -> (SipMessage, SocketAddr) {
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut skipped = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let got = tokio::time::timeout(left, self.recv(what)).await;
            let Ok((m, from)) = got else {
                panic!(
                    "{} timed out waiting for {what}; skipped: {skipped:?}",
                    self.user
                );
            };
            if wanted(&m) {
                return (m, from);
            }
            skipped.push(first_line(&m));
        }
    }

    /// The next request of `method`.
    pub async fn recv_request(&mut self, method: &str) -> (SipMessage, SocketAddr) {
        let what = format!("{method} at {}", self.user);
        self.recv_matching(&what, |m| m.method().is_some_and(|x| x.as_str() == method))
            .await
    }

    /// The final response of the transaction with this Call-ID and CSeq method.
    pub async fn recv_final(&mut self, call_id: &str, method: &str) -> SipMessage {
        let what = format!("final response to {method} at {}", self.user);
        self.recv_matching(&what, |m| {
            m.status().is_some_and(|s| s >= 200)
                && m.call_id().ok() == Some(call_id)
                && m.cseq().is_ok_and(|c| c.method.as_str() == method)
        })
        .await
        .0
    }

    /// No `method` request arrives within `wait` (other messages, such as
    /// the ACKs for earlier answers, are skipped).
    pub async fn no_request_within(&mut self, method: &str, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.recv("nothing")).await {
                Err(_) => return true,
                Ok((m, _)) if m.method().is_some_and(|x| x.as_str() == method) => return false,
                Ok(_) => {}
            }
        }
    }

    /// REGISTERs `contact_params` (after the URI, e.g. `;+sip.instance=...`)
    /// with `extra` header lines and returns the final response.
    pub async fn register(&mut self, contact_params: &str, extra: &[&str]) -> SipMessage {
        let (text, call_id) = self.register_request(DOMAIN, contact_params, extra);
        self.send(&text).await;
        self.recv_final(&call_id, "REGISTER").await
    }

    /// A REGISTER of `user@domain`, ready to send; returns (text, Call-ID).
    pub fn register_request(
        &mut self,
        domain: &str,
        contact_params: &str,
        extra: &[&str],
    ) -> (String, String) {
        let id = self.next_id();
        let mut text = msg(
            "REGISTER sip:{domain} SIP/2.0
Via: SIP/2.0/{tp} {me};branch=z9hG4bK-{id};rport
Max-Forwards: 70
From: <sip:{user}@{domain}>;tag={id}
To: <sip:{user}@{domain}>
Call-ID: reg-{user}-{port}@test
CSeq: {seq} REGISTER
Contact: <{contact}>{params}
Expires: 300
Content-Length: 0

",
            &[
                ("domain", domain),
                ("tp", self.transport()),
                ("me", &self.sent_by()),
                ("id", &id),
                ("user", &self.user),
                ("port", &self.addr.port().to_string()),
                ("seq", &self.seq.to_string()),
                ("contact", &self.contact()),
                ("params", contact_params),
            ],
        );
        insert_headers(&mut text, extra);
        (text, format!("reg-{}-{}@test", self.user, self.addr.port()))
    }

    /// An INVITE from us to `ruri` with `contact` as our Contact (our own
    /// address when `None`), ready to send; returns (text, Call-ID).
    pub fn invite(&mut self, ruri: &str, contact: Option<&str>) -> (String, String) {
        let id = self.next_id();
        let contact = contact.map_or_else(|| self.contact(), str::to_owned);
        let text = msg(
            "INVITE {ruri} SIP/2.0
Via: SIP/2.0/{tp} {me};branch=z9hG4bK-{id};rport
Max-Forwards: 70
From: <sip:{user}@{domain}>;tag=t-{id}
To: <{ruri}>
Call-ID: call-{id}@test
CSeq: 1 INVITE
Contact: <{contact}>
Content-Type: application/sdp
Content-Length: {len}

v=0
o=- 1 1 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio 4000 RTP/AVP 0
",
            &[
                ("ruri", ruri),
                ("tp", self.transport()),
                ("me", &self.sent_by()),
                ("id", &id),
                ("user", &self.user),
                ("domain", DOMAIN),
                ("contact", &contact),
            ],
        );
        (text, format!("call-{id}@test"))
    }

    /// Closes the connection (a browser tab closing); no-op on UDP.
    pub async fn hang_up_link(self) {
        match self.link {
            Link::Ws(ua, _) => ua.close().await,
            Link::Tcp(mut ua) | Link::Tls(mut ua) => {
                use tokio::io::AsyncWriteExt;
                let _ = ua.stream.shutdown().await;
            }
            Link::Udp(_) => {}
        }
    }

    /// Answers a received request: Via, From, To (+ our tag), Call-ID,
    /// CSeq copied; for 1xx/2xx to INVITE also Record-Route and `contact`.
    pub async fn answer(&mut self, req: &SipMessage, code: u16, contact: Option<&str>) {
        let mut b = switchyard_codec::response_to(req, code, "Whatever").to_tag("callee-tag");
        if let Some(contact) = contact {
            b = b.header("Contact", &format!("<{contact}>"));
            for rr in req.header_values(HeaderName::RecordRoute) {
                b = b.header("Record-Route", rr);
            }
        }
        let text = String::from_utf8(b.build().to_vec()).unwrap();
        // Requests reach us only through our edge: answer there.
        self.send(&text).await;
    }
}

/// One side of a dialog (RFC 3261 §12.1): what a UA needs to send
/// mid-dialog requests.
#[derive(Debug, Clone)]
pub struct Dialog {
    pub call_id: String,
    /// Our From header value (with our tag).
    pub local: String,
    /// Their To header value (with their tag).
    pub remote: String,
    /// Where requests go: the peer's Contact URI.
    pub target: String,
    /// The route set, first hop first.
    pub route: Vec<String>,
    pub cseq: u32,
}

impl Dialog {
    /// The caller's side, from the 2xx it received (§12.1.2: the route set
    /// is the Record-Route in reverse order).
    pub fn caller(ok: &SipMessage) -> Dialog {
        let mut route = record_routes(ok);
        route.reverse();
        Dialog {
            call_id: ok.call_id().unwrap().to_owned(),
            local: ok.header(HeaderName::From).unwrap().to_owned(),
            remote: ok.header(HeaderName::To).unwrap().to_owned(),
            target: contact_uri(ok),
            route,
            cseq: 1,
        }
    }

    /// The callee's side, from the INVITE it received and the tag it
    /// answered with (§12.1.1: the Record-Route in order).
    pub fn callee(invite: &SipMessage, tag: &str) -> Dialog {
        Dialog {
            call_id: invite.call_id().unwrap().to_owned(),
            local: format!("{};tag={tag}", invite.header(HeaderName::To).unwrap()),
            remote: invite.header(HeaderName::From).unwrap().to_owned(),
            target: contact_uri(invite),
            route: record_routes(invite),
            cseq: 100,
        }
    }

    /// A mid-dialog request from `phone`; `ACK` reuses the INVITE's CSeq.
    pub fn request(&mut self, phone: &mut Phone, method: &str, extra: &[&str]) -> String {
        if method != "ACK" {
            self.cseq += 1;
        }
        let id = phone.next_id();
        let mut text = format!(
            "{method} {target} SIP/2.0\r\nVia: SIP/2.0/{tp} {me};branch=z9hG4bK-{id};rport\r\n\
             Max-Forwards: 70\r\nFrom: {local}\r\nTo: {remote}\r\nCall-ID: {call_id}\r\n\
             CSeq: {cseq} {method}\r\nContact: <{contact}>\r\n",
            target = self.target,
            tp = phone.transport(),
            me = phone.sent_by(),
            local = self.local,
            remote = self.remote,
            call_id = self.call_id,
            cseq = self.cseq,
            contact = phone.contact(),
        );
        for r in &self.route {
            text.push_str(&format!("Route: {r}\r\n"));
        }
        text.push_str("Content-Length: 0\r\n\r\n");
        insert_headers(&mut text, extra);
        text
    }
}

/// Every Record-Route value, top first.
pub fn record_routes(m: &SipMessage) -> Vec<String> {
    m.header_values(HeaderName::RecordRoute)
        .map(str::to_owned)
        .collect()
}

/// The URI of the Contact header.
pub fn contact_uri(m: &SipMessage) -> String {
    let value = m.header(HeaderName::Contact).expect("a Contact");
    switchyard_codec::NameAddr::parse(value)
        .expect("Contact parses")
        .uri
        .raw
        .to_owned()
}

/// A parameter of the first Contact of a REGISTER's 200 OK, unquoted.
pub fn contact_param(ok: &SipMessage, name: &str) -> Option<String> {
    let value = ok.header(HeaderName::Contact)?;
    let contact = switchyard_codec::NameAddr::parse(value).ok()?;
    contact
        .params
        .get(name)
        .flatten()
        .map(|v| v.trim_matches('"').to_owned())
}

/// Inserts header lines before Content-Length.
fn insert_headers(text: &mut String, extra: &[&str]) {
    if extra.is_empty() {
        return;
    }
    let at = text.find("Content-Length").expect("a Content-Length line");
    let lines: String = extra.iter().map(|h| format!("{h}\r\n")).collect();
    text.insert_str(at, &lines);
}

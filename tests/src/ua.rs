//! A bare SIP endpoint for wire-level assertions: it sends exactly the bytes
//! a test writes and hands back exactly what arrived, parsed with our codec.
//! (SIPp drives the call flows; this checks headers byte by byte.)

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use switchyard_codec::{HeaderName, SipMessage};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// How long a test waits for a message before failing.
pub const WAIT: Duration = Duration::from_secs(5);

pub struct UdpUa {
    pub socket: UdpSocket,
    pub addr: SocketAddr,
}

impl UdpUa {
    /// Binds an ephemeral port on `ip` (a 127.0.0.0/8 address).
    pub async fn bind(ip: &str) -> UdpUa {
        let socket = UdpSocket::bind((ip, 0)).await.expect("bind test UA");
        let addr = socket.local_addr().unwrap();
        UdpUa { socket, addr }
    }

    pub async fn send(&self, to: SocketAddr, text: &str) {
        self.socket
            .send_to(text.as_bytes(), to)
            .await
            .expect("send");
    }

    pub async fn send_bytes(&self, to: SocketAddr, data: &[u8]) {
        self.socket.send_to(data, to).await.expect("send");
    }

    /// The next message, or a panic naming what was awaited after [`WAIT`].
    pub async fn recv(&self, what: &str) -> (SipMessage, SocketAddr) {
        self.try_recv(WAIT)
            .await
            .unwrap_or_else(|| panic!("{} timed out waiting for {what}", self.addr))
    }

    pub async fn try_recv(&self, wait: Duration) -> Option<(SipMessage, SocketAddr)> {
        let mut buf = vec![0u8; 65_536];
        let (n, from) = tokio::time::timeout(wait, self.socket.recv_from(&mut buf))
            .await
            .ok()?
            .ok()?;
        let msg = SipMessage::parse(Bytes::copy_from_slice(&buf[..n])).unwrap_or_else(|e| {
            panic!(
                "unparseable message from {from}: {e}\n{}",
                String::from_utf8_lossy(&buf[..n])
            )
        });
        Some((msg, from))
    }

    /// Sends `text` (a request) and returns its final response, matched by
    /// Call-ID: provisional responses and messages of other calls (e.g. a
    /// late retransmission) are skipped.
    pub async fn request(&self, to: SocketAddr, text: &str, what: &str) -> SipMessage {
        self.send(to, text).await;
        let call_id = call_id_of(text);
        self.recv_matching(what, |m| {
            m.status().is_some_and(|s| s >= 200) && m.call_id().ok() == Some(call_id.as_str())
        })
        .await
    }

    /// The next request with this method (`"INVITE"`, `"CANCEL"`...);
    /// anything else that arrives first, such as the proxy's ACK for an
    /// earlier non-2xx answer, is skipped.
    pub async fn recv_request(&self, method: &str, what: &str) -> SipMessage {
        self.recv_matching(what, |m| m.method().is_some_and(|x| x.as_str() == method))
            .await
    }

    /// The first message `wanted` accepts within [`WAIT`]; others are skipped.
    pub async fn recv_matching(
        &self,
        what: &str,
        wanted: impl Fn(&SipMessage) -> bool,
    ) -> SipMessage {
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut skipped = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let Some((msg, _)) = self.try_recv(left).await else {
                panic!(
                    "{} timed out waiting for {what}; skipped meanwhile: {skipped:?}",
                    self.addr
                );
            };
            if wanted(&msg) {
                return msg;
            }
            skipped.push(first_line(&msg));
        }
    }

    /// Receives until a message with a final status (>= 200) or a request
    /// arrives, skipping provisional responses; returns the statuses skipped.
    pub async fn recv_final(&self, what: &str) -> (SipMessage, Vec<u16>) {
        let mut provisional = Vec::new();
        loop {
            let (msg, _) = self.recv(what).await;
            match msg.status() {
                Some(s) if s < 200 => provisional.push(s),
                _ => return (msg, provisional),
            }
        }
    }
}

/// A byte stream to the proxy: TCP, or TLS over it.
pub trait ByteStream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> ByteStream for T {}

/// A TCP (or TLS) connection to the proxy, framing by Content-Length.
pub struct TcpUa {
    pub stream: Box<dyn ByteStream>,
    pub addr: SocketAddr,
    buf: Vec<u8>,
}

async fn connect_from(from_ip: &str, to: SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind(format!("{from_ip}:0").parse().unwrap())
        .unwrap();
    socket.connect(to).await.expect("connect to proxy")
}

impl TcpUa {
    pub async fn connect(from_ip: &str, to: SocketAddr) -> TcpUa {
        let stream = connect_from(from_ip, to).await;
        let addr = stream.local_addr().unwrap();
        TcpUa {
            stream: Box::new(stream),
            addr,
            buf: Vec::new(),
        }
    }

    /// A connection a test accepted (a TLS trunk, say).
    pub fn from_stream(stream: Box<dyn ByteStream>, addr: SocketAddr) -> TcpUa {
        TcpUa {
            stream,
            addr,
            buf: Vec::new(),
        }
    }

    /// A TLS connection, verifying the proxy's certificate for `name` (SNI
    /// is sent for a DNS name) with `config`.
    pub async fn tls(
        from_ip: &str,
        to: SocketAddr,
        name: &str,
        config: std::sync::Arc<rustls::ClientConfig>,
    ) -> std::io::Result<TcpUa> {
        let stream = connect_from(from_ip, to).await;
        let addr = stream.local_addr().unwrap();
        let name = rustls::pki_types::ServerName::try_from(name.to_owned()).unwrap();
        let tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, stream)
            .await?;
        Ok(TcpUa {
            stream: Box::new(tls),
            addr,
            buf: Vec::new(),
        })
    }

    pub async fn send(&mut self, text: &str) {
        self.stream.write_all(text.as_bytes()).await.expect("write");
        self.stream.flush().await.expect("flush");
    }

    pub async fn recv(&mut self, what: &str) -> SipMessage {
        tokio::time::timeout(WAIT, self.read_message())
            .await
            .unwrap_or_else(|_| panic!("{} timed out waiting for {what}", self.addr))
            .unwrap_or_else(|| panic!("connection closed while waiting for {what}"))
    }

    /// True when the proxy closes the connection within `wait`.
    pub async fn closed_within(&mut self, wait: Duration) -> bool {
        let mut b = [0u8; 4096];
        loop {
            match tokio::time::timeout(wait, self.stream.read(&mut b)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(n)) => self.buf.extend_from_slice(&b[..n]),
                Err(_) => return false,
            }
        }
    }

    async fn read_message(&mut self) -> Option<SipMessage> {
        loop {
            if let switchyard_codec::Framing::Complete(n) =
                switchyard_codec::frame(&self.buf, 1 << 20)
            {
                let data: Vec<u8> = self.buf.drain(..n).collect();
                return SipMessage::parse(Bytes::from(data)).ok();
            }
            let mut b = [0u8; 4096];
            let n = self.stream.read(&mut b).await.ok()?;
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&b[..n]);
        }
    }
}

/// Fills a message template: `\n` becomes CRLF and `{name}` placeholders are
/// replaced; Content-Length is computed when the template says `{len}`.
pub fn msg(template: &str, vars: &[(&str, &str)]) -> String {
    let mut text = template.replace("\r\n", "\n");
    for (k, v) in vars {
        text = text.replace(&format!("{{{k}}}"), v);
    }
    let (head, body) = match text.split_once("\n\n") {
        Some((h, b)) => (h.to_string(), b.to_string()),
        None => (text.trim_end_matches('\n').to_string(), String::new()),
    };
    let body = body.replace('\n', "\r\n");
    let head = head.replace("{len}", &body.len().to_string());
    format!("{}\r\n\r\n{}", head.replace('\n', "\r\n"), body)
}

/// A REGISTER of `user@domain` binding `sip:user@contact` for 300 s; `id`
/// makes its Call-ID, tag and branch unique.
pub fn register(domain: &str, user: &str, contact: SocketAddr, id: &str) -> String {
    msg(
        "REGISTER sip:{domain} SIP/2.0
Via: SIP/2.0/UDP {contact};branch=z9hG4bK-reg-{id};rport
Max-Forwards: 70
From: <sip:{user}@{domain}>;tag=r-{id}
To: <sip:{user}@{domain}>
Call-ID: reg-{id}@test
CSeq: 1 REGISTER
Contact: <sip:{user}@{contact}>
Expires: 300
Content-Length: 0

",
        &[
            ("domain", domain),
            ("user", user),
            ("contact", &contact.to_string()),
            ("id", id),
        ],
    )
}

/// An INVITE to `ruri` from `sip:from` (e.g. `alice@acme.test`), sent by
/// the UA at `me`; `id` makes its Call-ID, tag and branch unique.
pub fn invite(ruri: &str, from: &str, me: SocketAddr, id: &str) -> String {
    msg(
        "INVITE {ruri} SIP/2.0
Via: SIP/2.0/UDP {me};branch=z9hG4bK-inv-{id};rport
Max-Forwards: 70
From: <sip:{from}>;tag=c-{id}
To: <{ruri}>
Call-ID: inv-{id}@test
CSeq: 1 INVITE
Contact: <sip:caller@{me}>
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
            ("from", from),
            ("me", &me.to_string()),
            ("id", id),
        ],
    )
}

/// The ACK for a non-2xx final `response` to the INVITE `invite` (as sent):
/// same branch, Request-URI and CSeq number, the response's To (RFC 3261
/// §17.1.1.3). Without it the proxy retransmits its answer.
pub fn ack(invite: &str, response: &SipMessage) -> String {
    let req = SipMessage::parse(Bytes::copy_from_slice(invite.as_bytes())).expect("own INVITE");
    let field = |name| req.header(name).unwrap_or_default().to_string();
    msg(
        "ACK {ruri} SIP/2.0
Via: {via}
Max-Forwards: 70
From: {from}
To: {to}
Call-ID: {call_id}
CSeq: {seq} ACK
Content-Length: 0

",
        &[
            ("ruri", req.request_uri_str().unwrap_or_default()),
            ("via", &field(HeaderName::Via)),
            ("from", &field(HeaderName::From)),
            ("to", response.header(HeaderName::To).unwrap_or_default()),
            ("call_id", &field(HeaderName::CallId)),
            ("seq", &req.cseq().map(|c| c.seq).unwrap_or(1).to_string()),
        ],
    )
}

/// The response a UAS sends to `req`: Via, From, To (plus `tag`), Call-ID
/// and CSeq copied; from 180 on also its Contact and the Record-Route set.
pub fn reply(req: &SipMessage, code: u16, reason: &str, tag: &str, contact: SocketAddr) -> String {
    let mut b = switchyard_codec::response_to(req, code, reason).to_tag(tag);
    if code >= 180 {
        b = b.header("Contact", &format!("<sip:uas@{contact}>"));
        for rr in req.header_values(HeaderName::RecordRoute) {
            b = b.header("Record-Route", rr);
        }
    }
    String::from_utf8(b.build().to_vec()).expect("UTF-8 response")
}

/// The value of the first header named `name` (case-insensitive), for
/// headers the codec does not classify (`X-...`).
pub fn header<'m>(msg: &'m SipMessage, name: &str) -> Option<&'m str> {
    msg.headers()
        .find(|h| h.raw_name.eq_ignore_ascii_case(name))
        .map(|h| h.value)
}

/// `INVITE sip:...` or `SIP/2.0 486 Busy Here`, for failure messages.
pub fn first_line(msg: &SipMessage) -> String {
    let bytes = msg.as_bytes();
    let end = bytes
        .iter()
        .position(|&b| b == b'\r')
        .unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

fn call_id_of(text: &str) -> String {
    text.lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            let name = name.trim();
            (name.eq_ignore_ascii_case("call-id") || name.eq_ignore_ascii_case("i"))
                .then(|| value.trim().to_string())
        })
        .expect("request with a Call-ID")
}

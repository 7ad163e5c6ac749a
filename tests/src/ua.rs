//! A bare SIP endpoint for wire-level assertions: it sends exactly the bytes
//! a test writes and hands back exactly what arrived, parsed with our codec.
//! (SIPp drives the call flows; this checks headers byte by byte.)

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use switchyard_codec::SipMessage;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
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
        let msg = SipMessage::parse(Bytes::copy_from_slice(&buf[..n]))
            .unwrap_or_else(|e| panic!("unparseable message from {from}: {e}"));
        Some((msg, from))
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

/// A TCP connection to the proxy, framing by Content-Length.
pub struct TcpUa {
    pub stream: TcpStream,
    pub addr: SocketAddr,
    buf: Vec<u8>,
}

impl TcpUa {
    pub async fn connect(from_ip: &str, to: SocketAddr) -> TcpUa {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket
            .bind(format!("{from_ip}:0").parse().unwrap())
            .unwrap();
        let stream = socket.connect(to).await.expect("connect to proxy");
        let addr = stream.local_addr().unwrap();
        TcpUa {
            stream,
            addr,
            buf: Vec::new(),
        }
    }

    pub async fn send(&mut self, text: &str) {
        self.stream.write_all(text.as_bytes()).await.expect("write");
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

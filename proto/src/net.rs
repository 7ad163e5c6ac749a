//! Small network vocabulary shared by every layer: which transport a message
//! travelled on and between which addresses.

use std::fmt;
use std::net::SocketAddr;

/// A SIP transport protocol (RFC 3261 §18). TLS and WebSocket slot in here later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Transport {
    Udp,
    Tcp,
}

impl Transport {
    /// The token used in Via headers and `transport=` URI parameters.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
        }
    }

    /// Reliable transports need no retransmission timers (RFC 3261 §17.1.1.2).
    pub fn is_reliable(self) -> bool {
        matches!(self, Transport::Tcp)
    }

    /// Parse a Via transport token or `transport=` parameter (case-insensitive).
    pub fn from_token(token: &str) -> Option<Self> {
        if token.eq_ignore_ascii_case("udp") {
            Some(Transport::Udp)
        } else if token.eq_ignore_ascii_case("tcp") {
            Some(Transport::Tcp)
        } else {
            None
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a message came from: the transport, the peer and our local socket.
/// For TCP this identifies the connection (a "flow" in RFC 5626 terms).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Source {
    pub transport: Transport,
    pub remote: SocketAddr,
    pub local: SocketAddr,
}

/// One concrete place to send a request: the output of resolution. A resolver
/// returns these in the order they should be tried (RFC 3263 §4.3 failover).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Destination {
    pub transport: Transport,
    pub addr: SocketAddr,
    /// Set for an RFC 5626 flow this node holds: the local address of the
    /// UDP socket or TCP connection the request must leave on (no new
    /// connection is opened for it).
    pub flow_local: Option<SocketAddr>,
}

impl Destination {
    pub fn new(transport: Transport, addr: SocketAddr) -> Self {
        Destination {
            transport,
            addr,
            flow_local: None,
        }
    }

    /// The destination that is one of our flows.
    pub fn flow(flow: Source) -> Self {
        Destination {
            transport: flow.transport,
            addr: flow.remote,
            flow_local: Some(flow.local),
        }
    }
}

impl std::fmt::Display for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.transport, self.addr)
    }
}

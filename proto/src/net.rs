//! Small network vocabulary shared by every layer: which transport a message
//! travelled on and between which addresses.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

/// A SIP transport protocol: RFC 3261 §18 (UDP, TCP), §26.2 (TLS) and
/// RFC 7118 (WebSocket, plain and secure).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Transport {
    Udp,
    Tcp,
    Tls,
    Ws,
    Wss,
}

impl Transport {
    pub const ALL: [Transport; 5] = [
        Transport::Udp,
        Transport::Tcp,
        Transport::Tls,
        Transport::Ws,
        Transport::Wss,
    ];

    /// The token used in Via headers and `transport=` URI parameters.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
            Transport::Ws => "WS",
            Transport::Wss => "WSS",
        }
    }

    /// Reliable transports need no retransmission timers (RFC 3261 §17.1.1.2).
    pub fn is_reliable(self) -> bool {
        self != Transport::Udp
    }

    /// Runs over a connection (TCP underneath): responses and later
    /// requests reuse it, and it can close under a flow.
    pub fn is_connection(self) -> bool {
        self != Transport::Udp
    }

    /// Encrypted on the wire (TLS, or WebSocket over TLS).
    pub fn is_secure(self) -> bool {
        matches!(self, Transport::Tls | Transport::Wss)
    }

    /// RFC 7118: the client opened the connection and is reachable only over
    /// it; it never listens.
    pub fn is_websocket(self) -> bool {
        matches!(self, Transport::Ws | Transport::Wss)
    }

    /// The port a URI without one means on this transport (RFC 3261 §19.1.2;
    /// RFC 7118 §5 takes HTTP's for WebSocket).
    pub fn default_port(self) -> u16 {
        match self {
            Transport::Udp | Transport::Tcp => 5060,
            Transport::Tls => 5061,
            Transport::Ws => 80,
            Transport::Wss => 443,
        }
    }

    /// The `;transport=` URI parameter that names this transport, empty for
    /// UDP (the default of a `sip:` URI).
    pub fn uri_param(self) -> &'static str {
        match self {
            Transport::Udp => "",
            Transport::Tcp => ";transport=tcp",
            Transport::Tls => ";transport=tls",
            Transport::Ws => ";transport=ws",
            Transport::Wss => ";transport=wss",
        }
    }

    /// Parse a Via transport token or `transport=` parameter (case-insensitive).
    pub fn from_token(token: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|t| token.eq_ignore_ascii_case(t.as_str()))
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
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Destination {
    pub transport: Transport,
    pub addr: SocketAddr,
    /// Set for an RFC 5626 flow this node holds: the local address of the
    /// UDP socket or TCP connection the request must leave on (no new
    /// connection is opened for it).
    pub flow_local: Option<SocketAddr>,
    /// The name a TLS peer's certificate must carry: the SIP domain or host
    /// of the URI resolved (RFC 5922 §7.2). `None`: its address.
    pub tls_name: Option<Arc<str>>,
}

impl Destination {
    pub fn new(transport: Transport, addr: SocketAddr) -> Self {
        Destination {
            transport,
            addr,
            flow_local: None,
            tls_name: None,
        }
    }

    /// The same destination, its TLS certificate to name `name`.
    pub fn with_tls_name(mut self, name: &str) -> Self {
        self.tls_name = Some(name.into());
        self
    }

    /// The destination that is one of our flows.
    pub fn flow(flow: Source) -> Self {
        Destination {
            transport: flow.transport,
            addr: flow.remote,
            flow_local: Some(flow.local),
            tls_name: None,
        }
    }
}

impl std::fmt::Display for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.transport, self.addr)
    }
}

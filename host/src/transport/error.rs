use std::io;
use std::net::SocketAddr;

use crate::net::Transport;

/// Why a listener string such as `udp:127.0.0.1:5060` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListenerSpecError {
    #[error(
        "listener {0:?} has no transport; write it as TRANSPORT:ADDR:PORT, e.g. udp:0.0.0.0:5060"
    )]
    MissingTransport(String),
    #[error("unknown transport {0:?}; expected udp, tcp, tls, ws or wss")]
    UnknownTransport(String),
    #[error("bad listener address {0:?}; expected IP:PORT, IPv6 in brackets ([::1]:5060)")]
    BadAddress(String),
}

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("invalid transport config: {0}")]
    InvalidConfig(&'static str),
    #[error("cannot listen on {transport} {addr}: {source}")]
    Bind {
        transport: Transport,
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    /// No listener of the destination's address family to send UDP from.
    #[error("no {transport} listener of the right address family to reach {dest}")]
    NoListener {
        transport: Transport,
        dest: SocketAddr,
    },
    #[error("connect to {dest} failed: {source}")]
    Connect {
        dest: SocketAddr,
        #[source]
        source: io::Error,
    },
    /// A new connection was needed but `tcp_max_outbound` connections are
    /// open: like an unreachable next hop to the caller.
    #[error("no TCP connection to {dest}: all tcp_max_outbound connections are in use")]
    OutboundFull { dest: SocketAddr },
    /// The connection closed (or was closed) before the message was queued.
    #[error("connection to {remote} is closed")]
    ConnectionClosed { remote: SocketAddr },
    /// Only from `try_reply`: the connection's send queue or the socket buffer is full.
    #[error("send queue to {remote} is full")]
    WouldBlock { remote: SocketAddr },
    #[error("send to {dest} failed: {source}")]
    Send {
        dest: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("transports are shut down")]
    ShutDown,
    #[error("TLS: {0}")]
    Tls(#[from] super::tls::CertificateError),
}

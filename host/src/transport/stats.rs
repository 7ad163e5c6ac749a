//! Transport counters: lock-free atomics bumped on the I/O paths, read as a
//! plain snapshot for metrics export and tests.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        /// Live counters (internal).
        #[derive(Debug, Default)]
        pub(super) struct Counters {
            $(pub $name: AtomicU64,)*
        }

        /// A point-in-time copy of the transport counters. Field names are the
        /// metric names (prefix them with `switchyard_transport_` when exporting).
        #[derive(Debug, Clone, Default, PartialEq, Eq)]
        pub struct TransportStats {
            $($(#[$doc])* pub $name: u64,)*
            /// Currently open TCP connections (gauge), inbound and outbound.
            pub tcp_open_connections: u64,
            /// Slots held now (gauges) against `tcp_max_inbound` and
            /// `tcp_max_outbound`: a slot is given back when both tasks of
            /// its connection have ended.
            pub tcp_inbound_slots: u64,
            pub tcp_outbound_slots: u64,
            /// Open connections per transport (gauges): TCP, TLS, WS, WSS.
            pub open_connections: Vec<(crate::net::Transport, u64)>,
            /// Successful certificate reloads (file change or admin call).
            pub tls_certificate_reloads: u64,
            /// Datagrams received by each UDP socket, to see how evenly SO_REUSEPORT
            /// spreads the load.
            pub udp_rx_per_socket: Vec<(SocketAddr, u64)>,
        }

        impl Counters {
            pub fn snapshot(&self) -> TransportStats {
                TransportStats {
                    $($name: self.$name.load(Ordering::Relaxed),)*
                    tcp_open_connections: 0,
                    tcp_inbound_slots: 0,
                    tcp_outbound_slots: 0,
                    open_connections: Vec::new(),
                    tls_certificate_reloads: 0,
                    udp_rx_per_socket: Vec::new(),
                }
            }
        }
    };
}

counters! {
    /// SIP messages received over UDP (keep-alives and dropped datagrams excluded).
    udp_rx_messages,
    udp_rx_bytes,
    udp_tx_messages,
    udp_tx_bytes,
    /// Datagrams over `max_message_size`, dropped unanswered.
    udp_dropped_oversize,
    /// Whitespace-only datagrams (CRLF keep-alives), ignored.
    udp_keepalives,
    // The `tcp_` counters cover every connection transport: TCP, and TLS,
    // WS and WSS over it (`open_connections` splits the gauge by transport).
    /// Complete SIP messages read off connections.
    tcp_rx_messages,
    tcp_rx_bytes,
    tcp_tx_messages,
    tcp_tx_bytes,
    /// CRLFCRLF pings received (each answered with a CRLF pong).
    tcp_keepalives,
    /// Streams closed because a message could not be framed.
    tcp_framing_errors,
    tcp_accepted,
    /// Outbound connections established.
    tcp_connected,
    tcp_connect_failures,
    /// Connections closed by the idle or the partial-message timeout.
    tcp_timed_out,
    /// Accepted connections closed at once: `tcp_max_inbound` were open.
    tcp_refused_inbound,
    /// Accepted connections closed at once: their source held
    /// `tcp_max_per_source` already.
    tcp_refused_per_source,
    /// Connects not attempted: `tcp_max_outbound` were open (the send
    /// failed like an unreachable next hop).
    tcp_refused_outbound,
    /// Datagrams, TCP messages and inbound TCP connections dropped unanswered
    /// by the per-source rate limit (`[limits] per_source_rate`).
    rate_limited,
    /// TLS or WebSocket handshakes of accepted connections that failed or
    /// timed out.
    handshake_failures,
    /// Socket read or accept errors.
    recv_errors,
    /// Failed sends and writes.
    send_errors,
}

pub(super) fn count_rate_limited(counters: &Counters) {
    bump(&counters.rate_limited);
}

pub(super) fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

pub(super) fn bump(counter: &AtomicU64) {
    add(counter, 1);
}

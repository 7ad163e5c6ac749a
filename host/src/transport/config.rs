//! What to listen on and how the sockets behave.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::error::{ListenerSpecError, TransportError};
use super::limiter::SourceLimitConfig;
use super::tls::TlsConfig;
use super::ws::WebSocketConfig;
use crate::net::Transport;

/// One listening socket from config or the command line: `udp:127.0.0.1:5090`,
/// `tcp:[::1]:5060`, `tls:0.0.0.0:5061`, `ws:127.0.0.1:8080`, `wss:0.0.0.0:443`. Port 0 asks the OS for a free port (see
/// [`Transports::local_addrs`](super::Transports::local_addrs)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ListenerSpec {
    pub transport: Transport,
    pub addr: SocketAddr,
}

impl ListenerSpec {
    pub fn new(transport: Transport, addr: SocketAddr) -> Self {
        ListenerSpec { transport, addr }
    }
}

impl FromStr for ListenerSpec {
    type Err = ListenerSpecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (scheme, addr) = s
            .split_once(':')
            .ok_or_else(|| ListenerSpecError::MissingTransport(s.to_owned()))?;
        let transport = Transport::from_token(scheme)
            .ok_or_else(|| ListenerSpecError::UnknownTransport(scheme.to_owned()))?;
        let addr = addr
            .parse()
            .map_err(|_| ListenerSpecError::BadAddress(addr.to_owned()))?;
        Ok(ListenerSpec { transport, addr })
    }
}

impl fmt::Display for ListenerSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // SocketAddr's Display already brackets IPv6 ("[::1]:5060").
        write!(
            f,
            "{}:{}",
            self.transport.as_str().to_ascii_lowercase(),
            self.addr
        )
    }
}

impl TryFrom<String> for ListenerSpec {
    type Error = ListenerSpecError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<ListenerSpec> for String {
    fn from(spec: ListenerSpec) -> String {
        spec.to_string()
    }
}

/// Socket behaviour shared by every listener. `Default` gives production values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportConfig {
    /// Largest SIP message accepted on any transport (RFC 3261 §18.1.1 leaves it to
    /// us). Bigger UDP datagrams are dropped: their source is not trustworthy enough
    /// to address a 513 to. A bigger TCP message is a `FramingError(TooLarge)`.
    pub max_message_size: usize,
    /// Sockets per UDP listener, all bound to the same address with SO_REUSEPORT so
    /// the kernel spreads datagrams over them by 4-tuple hash and each has its own
    /// receive task. Defaults to the number of cores.
    pub udp_sockets_per_listener: usize,
    /// SO_RCVBUF for UDP sockets. Bursts (a REGISTER storm after an outage) must not
    /// be lost in the kernel; Linux caps this at 2 × `net.core.rmem_max`.
    pub udp_recv_buffer: usize,
    /// A TCP connection that delivers no complete message or keep-alive for this
    /// long is closed. 180 s: longer than the 95–120 s CRLF keep-alive interval of
    /// RFC 5626 §4.4.1, so a registered UA's flow survives while it keeps it alive.
    pub tcp_idle_timeout: Duration,
    /// A message whose first byte has arrived must be complete within this long
    /// (slowloris defence). 32 s = 64·T1: by then Timer B/F has expired at the
    /// sender, so no transaction could still use it.
    pub tcp_message_timeout: Duration,
    /// Outbound TCP connect. 5 s covers two SYN retransmissions yet lets the proxy
    /// fail over to the next RFC 3263 target well inside Timer B/F.
    pub tcp_connect_timeout: Duration,
    /// A single write stalled this long (peer not reading) closes the connection.
    pub tcp_write_timeout: Duration,
    /// After a framing error, how long the connection stays open for the core's
    /// 400/513 if the core neither replies and closes it. Zero closes at once.
    pub tcp_error_linger: Duration,
    /// Messages queued per TCP connection before `send` waits (back-pressure).
    pub tcp_send_queue: usize,
    /// While this many accepted connections are open, new ones are closed at
    /// accept, before anything is read. Connections we open do not count.
    pub tcp_max_inbound: usize,
    /// Connections we open ourselves, a pool apart from the inbound one so
    /// that clients filling theirs cannot cut the proxy off from its next
    /// hops. Beyond it, a send that needs a new connection fails.
    pub tcp_max_outbound: usize,
    /// Accepted connections one source (IPv4 address, IPv6 /64) may hold
    /// open; sources in `source_limit.exempt` have no such cap.
    pub tcp_max_per_source: usize,
    /// The per-source rate limit on datagrams, TCP messages and inbound
    /// connections, applied before anything is parsed. Its exempt list
    /// also lifts `tcp_max_per_source`.
    pub source_limit: SourceLimitConfig,
    /// Certificates and trust for `tls` and `wss` (`[tls]`).
    pub tls: TlsConfig,
    /// The HTTP side of `ws` and `wss` listeners (`[websocket]`).
    pub websocket: WebSocketConfig,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            max_message_size: 64 * 1024,
            udp_sockets_per_listener: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            udp_recv_buffer: 4 * 1024 * 1024,
            tcp_idle_timeout: Duration::from_secs(180),
            tcp_message_timeout: Duration::from_secs(32),
            tcp_connect_timeout: Duration::from_secs(5),
            tcp_write_timeout: Duration::from_secs(10),
            tcp_error_linger: Duration::from_secs(2),
            tcp_send_queue: 1024,
            tcp_max_inbound: 16 * 1024,
            tcp_max_outbound: 4 * 1024,
            tcp_max_per_source: 64,
            source_limit: SourceLimitConfig::default(),
            tls: TlsConfig::default(),
            websocket: WebSocketConfig::default(),
        }
    }
}

/// The highest per-source rate: beyond it the limiter's nanosecond emission
/// interval rounds off noticeably, and a source that needs more should be
/// exempt instead.
pub const MAX_SOURCE_RATE: u32 = 1_000_000;

impl TransportConfig {
    /// Refuse settings that cannot work, saying what to change.
    pub(super) fn validate(&self) -> Result<(), TransportError> {
        let fail = |what: &'static str| Err(TransportError::InvalidConfig(what));
        if self.max_message_size == 0 {
            return fail("max_message_size must be > 0");
        }
        if self.udp_sockets_per_listener == 0 || self.udp_sockets_per_listener > 256 {
            return fail("udp_sockets_per_listener must be within 1..=256");
        }
        if [
            self.tcp_idle_timeout,
            self.tcp_message_timeout,
            self.tcp_connect_timeout,
            self.tcp_write_timeout,
        ]
        .contains(&Duration::ZERO)
        {
            return fail("TCP timeouts must be > 0");
        }
        if self.tcp_send_queue == 0 {
            return fail("tcp_send_queue must be > 0");
        }
        if [
            self.tcp_max_inbound,
            self.tcp_max_outbound,
            self.tcp_max_per_source,
        ]
        .contains(&0)
        {
            return fail("tcp_max_inbound, tcp_max_outbound and tcp_max_per_source must be > 0");
        }
        let limit = &self.source_limit;
        if limit.is_enabled() && (limit.burst == 0 || limit.max_sources == 0) {
            return fail("a per-source rate needs a burst and max_sources > 0");
        }
        if limit.rate > MAX_SOURCE_RATE {
            return fail("the per-source rate is at most 1000000 messages/s");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_listener_specs() {
        let spec: ListenerSpec = "udp:127.0.0.1:5090".parse().unwrap();
        assert_eq!(spec.transport, Transport::Udp);
        assert_eq!(spec.addr, "127.0.0.1:5090".parse().unwrap());
        assert_eq!(spec.to_string(), "udp:127.0.0.1:5090");

        let spec: ListenerSpec = "TCP:[::1]:5060".parse().unwrap();
        assert_eq!(spec.transport, Transport::Tcp);
        assert_eq!(spec.addr, "[::1]:5060".parse().unwrap());
        assert_eq!(spec.to_string(), "tcp:[::1]:5060");
    }

    #[test]
    fn rejects_bad_listener_specs() {
        assert!(matches!(
            "127.0.0.1".parse::<ListenerSpec>(),
            Err(ListenerSpecError::MissingTransport(_))
        ));
        assert!(matches!(
            "sctp:127.0.0.1:5060".parse::<ListenerSpec>(),
            Err(ListenerSpecError::UnknownTransport(t)) if t == "sctp"
        ));
        assert!(matches!(
            "udp:127.0.0.1".parse::<ListenerSpec>(),
            Err(ListenerSpecError::BadAddress(_))
        ));
        assert!(matches!(
            "tcp:::1:5060".parse::<ListenerSpec>(),
            Err(ListenerSpecError::BadAddress(_))
        ));
    }

    #[test]
    fn listener_specs_round_trip_through_serde() {
        #[derive(Debug, Serialize, Deserialize, PartialEq)]
        struct Cfg {
            listen: Vec<ListenerSpec>,
        }
        let cfg: Cfg = toml::from_str(r#"listen = ["udp:0.0.0.0:5060", "tcp:[::]:5061"]"#).unwrap();
        assert_eq!(
            cfg.listen[1],
            ListenerSpec::new(Transport::Tcp, "[::]:5061".parse().unwrap())
        );
        let text = toml::to_string(&cfg).unwrap();
        assert_eq!(toml::from_str::<Cfg>(&text).unwrap(), cfg);

        let cfg: Cfg =
            toml::from_str(r#"listen = ["wss:127.0.0.1:8443", "tls:[::1]:5061"]"#).unwrap();
        assert_eq!(cfg.listen[0].transport, Transport::Wss);
        assert_eq!(cfg.listen[1].transport, Transport::Tls);
        let err = toml::from_str::<Cfg>(r#"listen = ["sctp:127.0.0.1:80"]"#).unwrap_err();
        assert!(err.to_string().contains("unknown transport"), "{err}");
    }

    #[test]
    fn default_config_is_valid_and_bad_values_are_refused() {
        TransportConfig::default().validate().unwrap();
        let bad = TransportConfig {
            udp_sockets_per_listener: 0,
            ..Default::default()
        };
        assert!(matches!(
            bad.validate(),
            Err(TransportError::InvalidConfig(_))
        ));
        let no_outbound = TransportConfig {
            tcp_max_outbound: 0,
            ..Default::default()
        };
        assert!(matches!(
            no_outbound.validate(),
            Err(TransportError::InvalidConfig(m)) if m.contains("tcp_max_outbound")
        ));
    }
}

//! HEP export: a copy of every SIP message the node receives and sends,
//! encapsulated in HEPv3 ([`encode`]) and sent over UDP to a Homer /
//! sipcapture collector (`[hep] collector`).
//!
//! The SIP path only hands the message (a reference-counted [`Bytes`]),
//! its addresses and the time to a bounded queue, without waiting: when
//! the queue is full the copy is dropped and counted ([`Hep::dropped`]).
//! One task owns the socket and does the encoding and sending. With no
//! collector set there is no [`Hep`] at all: the node's hooks are one
//! `Option` check.

pub mod encode;

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use bytes::Bytes;
use serde::Deserialize;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::net::{Source, Transport};

use self::encode::{PROTO_TCP, PROTO_UDP, Packet};

/// `[hep]`: where and how to export the SIP traffic.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HepConfig {
    /// The collector's `IP:PORT` (UDP). Unset: no export.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub collector: Option<SocketAddr>,
    /// The capture agent id (chunk 12) that names this node in Homer.
    pub capture_id: u32,
    /// The collector's password, sent in every packet (chunk 14).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Messages waiting to be sent at most; beyond, copies are dropped
    /// (and counted) rather than slowing the SIP path.
    pub queue: usize,
}

impl Default for HepConfig {
    fn default() -> Self {
        HepConfig {
            collector: None,
            capture_id: 2001,
            password: None,
            queue: 4096,
        }
    }
}

impl HepConfig {
    pub fn validate(&self) -> Result<(), String> {
        if let Some(addr) = self.collector {
            if addr.ip().is_unspecified() || addr.port() == 0 {
                return Err(format!(
                    "key `hep.collector`: {addr} is no address to send to (need IP:PORT)"
                ));
            }
            if self.queue == 0 {
                return Err("key `hep.queue`: must be at least 1".into());
            }
        }
        if self.password.as_ref().is_some_and(|p| p.len() > 1024) {
            return Err("key `hep.password`: at most 1024 bytes".into());
        }
        Ok(())
    }
}

/// One message on its way to the collector.
struct Captured {
    src: SocketAddr,
    dst: SocketAddr,
    ip_proto: u8,
    time: SystemTime,
    data: Bytes,
}

#[derive(Debug, Default)]
struct Counters {
    exported: AtomicU64,
    dropped: AtomicU64,
}

/// The node's HEP exporter: cheap to call from the SIP path, never blocks.
/// Dropping it (with the node) ends its task.
#[derive(Debug)]
pub struct Hep {
    queue: mpsc::Sender<Captured>,
    counters: Arc<Counters>,
}

impl Hep {
    /// The exporter `config` asks for, its task started on the current
    /// Tokio runtime; `None` when no collector is set, or (logged) when no
    /// socket could be opened: the node runs on without export.
    pub fn start(config: &HepConfig) -> Option<Hep> {
        let collector = config.collector?;
        match Self::connect(collector).and_then(|socket| Self::spawn(config, socket)) {
            Ok(hep) => {
                info!(%collector, capture_id = config.capture_id, "exporting SIP traffic over HEP");
                Some(hep)
            }
            Err(e) => {
                warn!(%collector, error = %e, "HEP export is off: cannot open its socket");
                None
            }
        }
    }

    /// A UDP socket on an ephemeral port, connected to the collector.
    fn connect(collector: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
        let any: SocketAddr = match collector {
            SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let socket = std::net::UdpSocket::bind(any)?;
        socket.connect(collector)?;
        socket.set_nonblocking(true)?;
        Ok(socket)
    }

    /// Starts the sending task on `socket` (connected to the collector).
    pub fn spawn(config: &HepConfig, socket: std::net::UdpSocket) -> std::io::Result<Hep> {
        let socket = tokio::net::UdpSocket::from_std(socket)?;
        let (queue, rx) = mpsc::channel(config.queue.max(1));
        let counters = Arc::new(Counters::default());
        let sender = Sender {
            socket,
            capture_id: config.capture_id,
            password: config.password.clone().map(String::into_bytes),
            counters: counters.clone(),
        };
        tokio::spawn(sender.run(rx));
        Ok(Hep { queue, counters })
    }

    /// A message the node received on `flow` (from its remote end).
    pub fn received(&self, flow: &Source, data: &Bytes) {
        self.push(flow.remote, flow.local, flow.transport, data.clone());
    }

    /// A message the node sent on `flow` (to its remote end).
    pub fn sent(&self, flow: &Source, data: Bytes) {
        self.push(flow.local, flow.remote, flow.transport, data);
    }

    fn push(&self, src: SocketAddr, dst: SocketAddr, transport: Transport, data: Bytes) {
        let captured = Captured {
            src,
            dst,
            ip_proto: match transport {
                Transport::Udp => PROTO_UDP,
                // TLS, WS and WSS run over TCP too.
                _ => PROTO_TCP,
            },
            time: SystemTime::now(),
            data,
        };
        if self.queue.try_send(captured).is_err() {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Messages not exported: the queue was full, the message too large
    /// for HEP (64 KiB), or the socket refused it.
    pub fn dropped(&self) -> u64 {
        self.counters.dropped.load(Ordering::Relaxed)
    }

    /// Packets handed to the socket.
    pub fn exported(&self) -> u64 {
        self.counters.exported.load(Ordering::Relaxed)
    }
}

/// The task's side: encodes and sends, one packet per message.
struct Sender {
    socket: tokio::net::UdpSocket,
    capture_id: u32,
    password: Option<Vec<u8>>,
    counters: Arc<Counters>,
}

impl Sender {
    async fn run(self, mut rx: mpsc::Receiver<Captured>) {
        let mut buf = Vec::with_capacity(2048);
        let mut warned = false;
        while let Some(m) = rx.recv().await {
            let correlation_id = encode::call_id(&m.data);
            let packet = Packet {
                src: m.src,
                dst: m.dst,
                ip_proto: m.ip_proto,
                time: m.time,
                capture_id: self.capture_id,
                auth_key: self.password.as_deref(),
                correlation_id: correlation_id.as_deref(),
                payload: &m.data,
            };
            if encode::encode(&packet, &mut buf).is_err() {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                debug!(
                    bytes = m.data.len(),
                    "message too large for HEP, not exported"
                );
                continue;
            }
            match self.socket.send(&buf).await {
                Ok(_) => {
                    self.counters.exported.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    // E.g. ECONNREFUSED: an ICMP error for an earlier packet.
                    self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                    if !std::mem::replace(&mut warned, true) {
                        warn!(error = %e, "HEP collector unreachable; counting the drops");
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn config(queue: usize) -> HepConfig {
        HepConfig {
            collector: Some("127.0.0.1:9060".parse().unwrap()),
            capture_id: 7,
            password: Some("pw".into()),
            queue,
        }
    }

    #[test]
    fn the_collector_must_be_an_address_and_the_queue_not_empty() {
        assert!(HepConfig::default().validate().is_ok());
        assert!(config(1).validate().is_ok());
        for bad in ["0.0.0.0:9060", "[::]:9060", "127.0.0.1:0"] {
            let c = HepConfig {
                collector: Some(bad.parse().unwrap()),
                ..config(1)
            };
            assert!(c.validate().unwrap_err().contains("hep.collector"), "{bad}");
        }
        assert!(config(0).validate().unwrap_err().contains("hep.queue"));
    }

    #[test]
    fn the_section_parses_and_check_config_hides_the_password() {
        let text =
            "[hep]\ncollector = \"127.0.0.1:9060\"\ncapture_id = 7\npassword = \"hunter2\"\n";
        let c = crate::Config::parse(text, "hep.toml").unwrap();
        assert_eq!(c.hep.collector, Some("127.0.0.1:9060".parse().unwrap()));
        assert_eq!((c.hep.capture_id, c.hep.queue), (7, 4096));
        let shown = c.redacted_toml();
        assert!(
            shown.contains("[hep]") && shown.contains("<redacted>"),
            "{shown}"
        );
        assert!(!shown.contains("hunter2"), "{shown}");
        let wildcard = "[hep]\ncollector = \"0.0.0.0:9060\"\n";
        assert!(crate::Config::parse(wildcard, "hep.toml").is_err());
        assert!(crate::Config::parse("[hep]\ncolector = \"x\"\n", "hep.toml").is_err());
    }

    #[tokio::test]
    async fn messages_in_and_out_reach_the_collector_with_their_addresses() {
        let collector = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.connect(collector.local_addr().unwrap()).unwrap();
        socket.set_nonblocking(true).unwrap();
        let hep = Hep::spawn(&config(16), socket).unwrap();
        let flow = Source {
            transport: Transport::Tcp,
            remote: "127.0.0.2:40000".parse().unwrap(),
            local: "127.0.0.1:5060".parse().unwrap(),
        };
        let msg = Bytes::from_static(b"OPTIONS sip:x SIP/2.0\r\nCall-ID: c1\r\n\r\n");
        hep.received(&flow, &msg);
        hep.sent(&flow, msg.clone());
        let mut buf = [0u8; 2048];
        let mut seen = Vec::new();
        for _ in 0..2 {
            let n = tokio::time::timeout(Duration::from_secs(5), collector.recv(&mut buf))
                .await
                .expect("a HEP packet")
                .unwrap();
            seen.push(buf[..n].to_vec());
        }
        // Source port first: 40000 (0x9c40) in, 5060 (0x13c4) out.
        let ports = |p: &[u8]| {
            (
                p[6 + 7 + 7 + 6..][..2].to_vec(),
                p[6 + 7 + 7 + 8 + 6..][..2].to_vec(),
            )
        };
        assert_eq!(ports(&seen[0]), (vec![0x9c, 0x40], vec![0x13, 0xc4]));
        assert_eq!(ports(&seen[1]), (vec![0x13, 0xc4], vec![0x9c, 0x40]));
        assert!(
            seen.iter()
                .all(|p| p.starts_with(b"HEP3") && p.ends_with(&msg))
        );
        assert_eq!(seen[0][6 + 7 + 6], PROTO_TCP);
        assert_eq!((hep.exported(), hep.dropped()), (2, 0));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_full_queue_drops_and_counts_instead_of_waiting() {
        // Current-thread runtime: the sender task cannot run until we await.
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.connect("127.0.0.1:9").unwrap();
        socket.set_nonblocking(true).unwrap();
        let hep = Hep::spawn(&config(2), socket).unwrap();
        let flow = Source {
            transport: Transport::Udp,
            remote: "127.0.0.2:5062".parse().unwrap(),
            local: "127.0.0.1:5060".parse().unwrap(),
        };
        let msg = Bytes::from_static(b"SIP/2.0 200 OK\r\n\r\n");
        for _ in 0..5 {
            hep.received(&flow, &msg);
        }
        assert_eq!(hep.dropped(), 3);
    }
}

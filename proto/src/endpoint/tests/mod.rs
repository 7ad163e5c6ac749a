//! The endpoint driven through its inputs alone: bytes in, a fake clock,
//! a seeded RNG, and made-up answers to the I/O it asks for; bytes out.
//! No socket, no runtime.

mod auth;
mod edge_cases;
mod proxying;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use switchyard_codec::SipMessage;

use super::*;
use crate::cluster::Cluster;
use crate::edge::EdgeConfig;
use crate::location::Binding;
use crate::net::{Destination, Source, Transport};
use crate::policy::{DefaultPolicy, SinglePolicy};
use crate::proxy::identity::{Identity, LocalAddress};
use crate::proxy_tx::TxSettings;
use crate::registrar::RegistrarConfig;
use crate::transaction::TimerConfig;

/// Our listeners: UDP and TCP on 127.0.0.1:5060, domain `sip.test`.
pub(super) const ME: &str = "127.0.0.1:5060";

/// A phone on loopback.
pub(super) fn phone(port: u16) -> Source {
    Source {
        transport: Transport::Udp,
        remote: format!("127.0.0.2:{port}").parse().unwrap(),
        local: ME.parse().unwrap(),
    }
}

pub(super) fn tcp_phone(port: u16) -> Source {
    Source {
        transport: Transport::Tcp,
        ..phone(port)
    }
}

pub(super) fn edge(node: &str) -> Edge {
    let identity = Identity::new(
        &["sip.test".to_string()],
        vec![
            LocalAddress::new(Transport::Udp, ME),
            LocalAddress::new(Transport::Tcp, ME),
        ],
    )
    .with_bound([ME.parse().unwrap()], &[]);
    let cluster = Arc::new(Cluster::new(
        node,
        "sip.test",
        &["a shared secret of the test"],
    ));
    Edge::new(
        identity,
        cluster,
        EdgeConfig {
            path_transport: None,
            clustered: true,
            registrar: RegistrarConfig::default(),
            dialog_max_secs: 86_400,
        },
    )
}

pub(super) fn config() -> EndpointConfig {
    EndpointConfig {
        tx: TxSettings {
            timers: TimerConfig::default(),
            timer_c: Duration::from_secs(180),
        },
        max_transactions: 1000,
        max_completed: 1000,
        live: Default::default(),
        draining: Default::default(),
        calls: Default::default(),
        track_calls: true,
        max_breadth: 60,
        max_branches: 32,
        registrar: RegistrarConfig::default(),
        node_id: "node-a".into(),
        auth: false,
        trusted: Vec::new(),
        tenants: TenantMap {
            default: "default".into(),
            ..TenantMap::default()
        },
        shard: 3,
    }
}

/// An endpoint with a clock that only moves when told to.
pub(super) struct Harness {
    pub ep: Endpoint,
    pub now: Now,
    pub transmits: Vec<Transmit>,
    pub ios: Vec<Io>,
}

impl Harness {
    pub fn new() -> Self {
        Self::with(config(), edge("node-a"))
    }

    pub fn with(config: EndpointConfig, edge: Edge) -> Self {
        let policies = Arc::new(SinglePolicy(Arc::new(DefaultPolicy)));
        Harness {
            ep: Endpoint::new(config, edge, policies, Arc::new(Stats::default()), 7),
            now: Now::new(
                Instant::now(),
                SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
            ),
            transmits: Vec::new(),
            ios: Vec::new(),
        }
    }

    fn drain(&mut self) {
        self.transmits
            .extend(std::iter::from_fn(|| self.ep.poll_transmit()));
        self.ios.extend(std::iter::from_fn(|| self.ep.poll_io()));
    }

    /// Feeds one message.
    pub fn recv(&mut self, from: Source, text: &str) {
        self.ep
            .handle(self.now, from, Bytes::from(text.replace('\n', "\r\n")));
        self.drain();
    }

    /// Moves both clocks on and runs what is due.
    pub fn advance(&mut self, by: Duration) {
        self.now = Now::new(self.now.instant + by, self.now.wall + by);
        self.ep.handle_timeout(self.now);
        self.drain();
    }

    /// Takes the one outstanding I/O (panics on anything else).
    pub fn take_io(&mut self) -> Io {
        assert_eq!(self.ios.len(), 1, "one I/O expected: {:?}", self.ios);
        self.ios.remove(0)
    }

    pub fn answer(&mut self, io: IoId, result: IoResult) {
        self.ep.on_io_done(self.now, io, result);
        self.drain();
    }

    /// Answers the outstanding lookup with `bindings`.
    pub fn answer_lookup(&mut self, bindings: Vec<Binding>) {
        let io = self.take_io();
        assert!(matches!(io.kind, IoKind::Lookup { .. }), "{io:?}");
        self.answer(io.id, IoResult::Bindings(Ok(bindings)));
    }

    /// Answers the outstanding resolution with a UDP destination, and
    /// returns the hop it was for.
    pub fn answer_resolve(&mut self, to: &str) -> String {
        let io = self.take_io();
        let IoKind::Resolve { hop, flow: None } = io.kind else {
            panic!("a next-hop resolution expected: {io:?}");
        };
        let dest = Destination::new(Transport::Udp, to.parse().unwrap());
        self.answer(io.id, IoResult::Resolved(Ok(dest)));
        hop
    }

    /// The messages sent, taken out, as text: replies upstream first
    /// marked `<`, downstream sends `>`.
    pub fn sent(&mut self) -> Vec<(char, String)> {
        self.transmits
            .drain(..)
            .map(|t| match t {
                Transmit::Reply { data, .. } => ('<', text(&data)),
                Transmit::Send { data, .. } => ('>', text(&data)),
            })
            .collect()
    }

    /// The one message sent (either way).
    pub fn sent_one(&mut self) -> String {
        let mut sent = self.sent();
        assert_eq!(sent.len(), 1, "one message expected: {sent:#?}");
        sent.remove(0).1
    }

    /// A binding of `aor`'s user as a REGISTER of `contact` stored it.
    pub fn binding(&self, contact: &str, path: Vec<String>) -> Binding {
        let mut b = crate::location::samples::sample_binding(contact, self.now.wall);
        b.path = path;
        b
    }
}

pub(super) fn text(data: &Bytes) -> String {
    String::from_utf8_lossy(data).into_owned()
}

/// The value of the first header `name` in `msg`.
pub(super) fn header(msg: &str, name: &str) -> Option<String> {
    let parsed = SipMessage::parse(Bytes::from(msg.to_owned())).ok()?;
    parsed
        .header(switchyard_codec::HeaderName::parse(name))
        .map(str::to_owned)
}

/// Every value of header `name` in `msg`, comma-separated ones apart.
pub(super) fn headers(msg: &str, name: &str) -> Vec<String> {
    let parsed = SipMessage::parse(Bytes::from(msg.to_owned())).expect("message parses");
    parsed
        .header_values(switchyard_codec::HeaderName::parse(name))
        .map(|v| v.trim().to_owned())
        .collect()
}

pub(super) fn status(msg: &str) -> u16 {
    msg.get(8..11).and_then(|s| s.parse().ok()).unwrap_or(0)
}

pub(super) fn invite(to: &str, branch: &str, extra: &str) -> String {
    format!(
        "INVITE {to} SIP/2.0
Via: SIP/2.0/UDP 127.0.0.2:5070;branch=z9hG4bK{branch}
Max-Forwards: 70
From: <sip:carol@sip.test>;tag=c1
To: <{to}>
Call-ID: {branch}@127.0.0.2
CSeq: 1 INVITE
Contact: <sip:carol@127.0.0.2:5070>
{extra}Content-Length: 0

"
    )
}

/// A response to the request `req` (as it was sent downstream), with a
/// To tag for anything above 100.
pub(super) fn response_to(req: &str, code: u16, reason: &str) -> String {
    let msg = SipMessage::parse(Bytes::from(req.to_owned())).expect("request parses");
    let mut b = switchyard_codec::response_to(&msg, code, reason);
    if code > 100 {
        b = b.to_tag("callee");
    }
    text(&b.build()).replace("\r\n", "\n")
}

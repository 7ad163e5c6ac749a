//! The driver: moves bytes between the transports and the node's
//! [`Endpoint`] shards, and performs the I/O they ask for.
//!
//! ```text
//! transport ─▶ on_inbound ─▶ parse ─▶ shard_of ─▶ lock shard ─▶ Endpoint::handle_message ─┐
//!                                                                                       │ drain (lock released)
//!   sockets ◀─ Transmit ◀──────────────────────────────────────────────────────────────┤
//!   store / DNS / auth / policy ◀─ Io ─▶ result ─▶ lock shard ─▶ Endpoint::on_io_done ─┘
//! ```
//!
//! A UDP datagram is handled on the receive task that read it, as far as
//! it goes without waiting (most do: the embedded store, a policy, a UDP
//! send); a stream message, or a datagram whose handling must wait, goes
//! on in a task of its own ([`InboundHandler::on_inbound`] below).
//!
//! Every SIP decision is the endpoint's (`switchyard_proto::endpoint`);
//! nothing here parses beyond picking the shard, and no I/O, hook or
//! await happens while a shard is locked.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use parking_lot::Mutex;
use switchyard_codec::{self as codec, FrameError, Method, SipMessage};
use switchyard_proto::endpoint::{
    Endpoint, Io, IoKind, IoResult, Now, SendFailure, Stats, Transmit, shard_of,
};
use tokio::sync::Notify;
use tracing::{debug, warn};

use crate::config::Config;
use crate::egress::{Destination, EgressError, NextHop};
use crate::location::LocationStore;
use crate::net::{Source, Transport};
use crate::proxy::request::LocalAnswer;
use crate::transport::{InboundEvent, InboundHandler, TransportError, Transports};

/// One endpoint, and its earliest timer for the timer task to read
/// without taking the lock.
pub(crate) struct Shard {
    endpoint: Mutex<Endpoint>,
    /// Nanoseconds from [`Wiring::epoch`] to the endpoint's earliest
    /// timer; `u64::MAX` when it has none.
    next_timer: AtomicU64,
}

impl Shard {
    pub fn new(endpoint: Endpoint) -> Self {
        Shard {
            endpoint: Mutex::new(endpoint),
            next_timer: AtomicU64::new(u64::MAX),
        }
    }

    /// Live (server, client) transactions and armed timers.
    pub fn counts(&self) -> (usize, usize, usize) {
        self.endpoint.lock().counts()
    }

    /// Completed server transactions kept compact.
    pub fn completed(&self) -> usize {
        self.endpoint.lock().completed()
    }

    /// Server transactions without a final response yet.
    pub fn unanswered(&self) -> usize {
        self.endpoint.lock().unanswered()
    }

    /// A reload's domains and tenant map, for the requests routed next.
    pub fn reconfigure(&self, domains: &[String], tenants: switchyard_proto::endpoint::TenantMap) {
        self.endpoint.lock().reconfigure(domains, tenants);
    }
}

/// What the node knows once its sockets are bound.
pub(crate) struct Wiring {
    pub transports: Arc<Transports>,
    pub shards: Vec<Shard>,
    /// The origin of the shards' `next_timer`.
    pub epoch: Instant,
    /// Rung when a step armed a timer earlier than its shard had.
    pub timers_changed: Notify,
}

pub(crate) struct Core {
    /// Lets the socket callbacks hand work to a task that owns the core.
    pub me: std::sync::Weak<Core>,
    pub config: Config,
    pub wiring: OnceLock<Wiring>,
    pub store: Arc<dyn LocationStore>,
    pub egress: crate::egress::Egress,
    /// `[auth]`: None when authentication is off.
    pub auth: Option<Arc<crate::auth::Authenticator>>,
    pub stats: Arc<Stats>,
    /// How long the location store took (`/metrics`).
    pub store_latency: StoreLatency,
    /// `[hep]`: None when the HEP export is off.
    pub hep: Option<crate::hep::Hep>,
    /// The dialog layer's host side: CDRs, dialog hooks, call counts.
    pub calls: Arc<crate::calls::CallService>,
}

/// Store call latency by operation.
#[derive(Debug, Default)]
pub(crate) struct StoreLatency {
    pub register: crate::admin::latency::LatencyHistogram,
    pub lookup: crate::admin::latency::LatencyHistogram,
}

/// What one endpoint step left to do.
#[derive(Default)]
struct Work {
    transmits: Vec<Transmit>,
    ios: Vec<Io>,
}

fn now() -> Now {
    Now::new(Instant::now(), SystemTime::now())
}

impl InboundHandler for Core {
    fn on_inbound(&self, ev: InboundEvent) {
        let Some(core) = self.me.upgrade() else {
            return;
        };
        if let (Some(hep), InboundEvent::Message(m)) = (&self.hep, &ev) {
            hep.received(&m.source, &m.data);
        }
        if ev.source().transport != Transport::Udp {
            // A stream has one reader, its connection's: handled in place,
            // one busy connection (a trunk) would be held to one core.
            tokio::spawn(async move { core.handle(ev).await });
            return;
        }
        // A datagram is handled on the receive task that read it: most
        // (the embedded store, a policy, a UDP send) finish in this first
        // poll, with no task spawned and no other thread woken. One that
        // waits (Cassandra, DNS, a TCP connect) goes on in a task of its
        // own, so its reader goes back to the socket; the task's first
        // poll registers the real waker in place of this no-op one. The
        // socket has a reader per worker (`transport/udp.rs`), so one
        // source's datagrams still spread over every core.
        let mut handling = Box::pin(core.handle(ev));
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        if handling.as_mut().poll(&mut cx).is_pending() {
            tokio::spawn(handling);
        }
    }
}

impl Core {
    pub fn wiring(&self) -> &Wiring {
        self.wiring.get().expect("node wired before traffic")
    }

    async fn handle(self: Arc<Self>, ev: InboundEvent) {
        // A message between binding the sockets and wiring the endpoints
        // (start-up): dropped, as if lost; the sender retransmits.
        let Some(wiring) = self.wiring.get() else {
            return;
        };
        match ev {
            InboundEvent::Message(inbound) => match SipMessage::parse(inbound.data) {
                Ok(msg) => {
                    let shards = wiring.shards.len();
                    let shard = shard_of(&msg, shards).unwrap_or(0);
                    let source = inbound.source;
                    let work = self.step(shard, |ep| ep.handle_message(now(), source, msg));
                    self.perform(shard, work).await;
                }
                Err(e) => {
                    // Not even a start line and headers: nothing to address
                    // a response to.
                    self.stats.dropped_malformed.inc();
                    debug!(from = %inbound.source.remote, error = %e, "dropped unparseable message");
                }
            },
            InboundEvent::FramingError {
                source,
                partial,
                error,
            } => self.on_framing_error(source, partial, error).await,
        }
    }

    /// Runs one endpoint step under its shard's lock and takes what it
    /// queued; rings the shard's timer task when the step armed an earlier
    /// timer.
    fn step(&self, shard: usize, f: impl FnOnce(&mut Endpoint)) -> Work {
        let wiring = self.wiring();
        let shard = &wiring.shards[shard];
        let mut work = Work::default();
        let mut ep = shard.endpoint.lock();
        f(&mut ep);
        work.transmits
            .extend(std::iter::from_fn(|| ep.poll_transmit()));
        work.ios.extend(std::iter::from_fn(|| ep.poll_io()));
        let calls: Vec<_> = std::iter::from_fn(|| ep.poll_call_event()).collect();
        let next = ep
            .poll_timeout()
            .map_or(u64::MAX, |at| nanos_since(wiring.epoch, at));
        let before = shard.next_timer.swap(next, Ordering::Relaxed);
        drop(ep);
        if !calls.is_empty() {
            self.calls.dispatch(calls);
        }
        if next < before {
            wiring.timers_changed.notify_one();
        }
        work
    }

    /// Sends what a step queued and performs its I/O, feeding each result
    /// back, until the shard has nothing more to ask. When a step asks for
    /// several next hops (a parallel fork), each but the last is resolved
    /// on a task of its own, so one slow next hop never holds up the other
    /// branches.
    async fn perform(self: &Arc<Self>, shard: usize, work: Work) {
        let mut queue = vec![work];
        while let Some(Work { transmits, ios }) = queue.pop() {
            for transmit in transmits {
                if let Some(failed) = self.transmit(transmit).await {
                    queue.push(self.step(shard, |ep| ep.on_send_failed(now(), failed)));
                }
            }
            let last = ios.len().saturating_sub(1);
            for (i, io) in ios.into_iter().enumerate() {
                if i < last && matches!(io.kind, IoKind::Resolve { .. }) {
                    tokio::spawn(self.clone().perform_io(shard, io));
                    continue;
                }
                let result = self.execute(io.kind).await;
                queue.push(self.step(shard, |ep| ep.on_io_done(now(), io.id, result)));
            }
        }
    }

    /// [`Self::perform`] for one I/O, on a task of its own. Boxed as `dyn
    /// Future + Send`: `perform` awaits itself through this task, and the
    /// compiler cannot prove a recursive opaque future Send.
    fn perform_io(
        self: Arc<Self>,
        shard: usize,
        io: Io,
    ) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(async move {
            let result = self.execute(io.kind).await;
            let work = self.step(shard, |ep| ep.on_io_done(now(), io.id, result));
            self.perform(shard, work).await;
        })
    }

    /// One [`Io`]'s work.
    async fn execute(&self, kind: IoKind) -> IoResult {
        match kind {
            IoKind::Authenticate(request) => {
                IoResult::Authenticated(self.authenticate(&request).await)
            }
            IoKind::Lookup { aor, at } => {
                let started = std::time::Instant::now();
                let bindings = self.store.lookup(&aor, at).await;
                self.store_latency.lookup.observe(started.elapsed());
                IoResult::Bindings(bindings)
            }
            IoKind::Register { aor, update, at } => {
                let started = std::time::Instant::now();
                let outcome = self.store.register(&aor, &update, at).await;
                self.store_latency.register.observe(started.elapsed());
                IoResult::Registered(outcome.map(|outcome| outcome.bindings))
            }
            IoKind::Resolve {
                flow: Some(flow), ..
            } => {
                IoResult::Resolved(if self.wiring().transports.has_flow(&flow) {
                    Ok(Destination::flow(flow))
                } else {
                    // RFC 5626 §5.3: a flow that is gone is 430 Flow Failed,
                    // so the caller's proxy (or the UA) can try another.
                    Err(LocalAnswer::new(430, "Flow Failed"))
                })
            }
            IoKind::Resolve { hop, flow: None } => IoResult::Resolved(self.resolve(&hop).await),
            IoKind::Policy(call) => {
                IoResult::Policy(run_bounded(call.is_bounded(), move || call.run()))
            }
            IoKind::Hook(hook) => {
                IoResult::Hook(run_bounded(hook.is_bounded(), move || hook.run()))
            }
        }
    }

    /// Sends one transmit; a failed branch send is returned to be reported.
    async fn transmit(&self, transmit: Transmit) -> Option<SendFailure> {
        match transmit {
            Transmit::Reply { source, data } => {
                if let Err(e) = self.reply(&source, data).await {
                    warn!(to = %source.remote, error = %e, "cannot send response upstream");
                }
                None
            }
            Transmit::Send {
                dest,
                data,
                failure,
            } => {
                let transports = &self.wiring().transports;
                let hep = self.hep.as_ref().map(|hep| (hep, data.clone()));
                let sent = match dest.flow_local {
                    Some(local) => {
                        let flow = Source {
                            transport: dest.transport,
                            remote: dest.addr,
                            local,
                        };
                        transports.send_on_flow(&flow, data).await.map(|()| flow)
                    }
                    None => transports.send_to(&dest, data).await,
                };
                match sent {
                    Ok(flow) => {
                        if let Some((hep, data)) = hep {
                            hep.sent(&flow, data);
                        }
                        None
                    }
                    Err(e) => {
                        debug!(to = %dest.addr, error = %e, "send failed");
                        failure
                    }
                }
            }
        }
    }

    /// Resolves a next-hop URI (RFC 3263) and applies the egress allowlist.
    /// Failures become the status the branch ends with: 403 for a forbidden
    /// destination, 503 when nothing could be found or reached.
    async fn resolve(&self, hop: &str) -> Result<Destination, LocalAnswer> {
        let uri = switchyard_codec::Uri::parse(hop)
            .map_err(|_| LocalAnswer::new(400, "Bad Next Hop URI"))?;
        let next = NextHop::from_uri_parts(
            &uri.host.to_string(),
            uri.port,
            uri.transport(),
            uri.maddr(),
            uri.scheme == switchyard_codec::Scheme::Sips,
        )
        .map_err(|e| LocalAnswer::new(503, e.to_string()))?;
        match self.egress.resolve(&next).await {
            Ok(dests) => dests
                .into_iter()
                .next()
                .ok_or_else(|| LocalAnswer::new(503, "No Destination")),
            Err(EgressError::Forbidden(addr)) => {
                self.stats.egress_refused.inc();
                Err(LocalAnswer::new(
                    403,
                    format!("Forbidden Destination {addr}"),
                ))
            }
            Err(e) => Err(LocalAnswer::new(503, e.to_string())),
        }
    }

    /// TCP stream errors: answer when the head of the message can be parsed
    /// (400 for a missing Content-Length, 513 for an oversized message), then
    /// close, as the stream cannot be re-synchronised.
    async fn on_framing_error(&self, source: Source, partial: Bytes, error: FrameError) {
        let (code, reason) = match error {
            FrameError::TooLarge => (513, "Message Too Large"),
            FrameError::MissingContentLength => (400, "Missing Content-Length"),
            _ => (400, "Malformed Message"),
        };
        self.stats.dropped_malformed.inc();
        if let Ok(msg) = SipMessage::parse(head_only(partial))
            && msg.is_request()
            && msg.method() != Some(&Method::Ack)
        {
            let resp = codec::response_to(&msg, code, reason).build();
            let _ = self.reply(&source, resp).await;
        }
        self.wiring().transports.close(&source);
    }

    /// Sends a response back over the flow its request came on. Over TCP,
    /// when that connection is gone, RFC 3261 §18.2.2: a new connection to
    /// the top Via's `received` address (else its host) and sent-by port
    /// (else 5060), the port the client listens on, never the gone
    /// connection's ephemeral one. Held to the egress allowlist like any
    /// destination we open a connection to.
    pub(crate) async fn reply(&self, source: &Source, data: Bytes) -> Result<(), TransportError> {
        let transports = &self.wiring().transports;
        let flow = match transports.reply(source, data.clone()).await {
            Ok(()) => *source,
            Err(TransportError::ConnectionClosed { .. }) if source.transport.is_reliable() => {
                let Some(addr) = via_listening_address(&data)
                    .filter(|a| self.egress.allowlist().permits(a.ip()))
                else {
                    return Err(TransportError::ConnectionClosed {
                        remote: source.remote,
                    });
                };
                transports
                    .send(source.transport, addr, data.clone())
                    .await?
            }
            Err(e) => return Err(e),
        };
        if let Some(hep) = &self.hep {
            hep.sent(&flow, data);
        }
        Ok(())
    }

    /// The node's timer task: sleeps until the earliest timer of any shard
    /// (read from their `next_timer`, no lock taken), or until a step arms
    /// an earlier one, then runs the due shards' timers. Work that waits on
    /// I/O gets its own task, so one slow peer never delays other timers.
    pub(crate) async fn run_timers(core: std::sync::Weak<Core>) {
        loop {
            let Some(c) = core.upgrade() else { return };
            let wiring = c.wiring();
            let now_nanos = nanos_since(wiring.epoch, Instant::now());
            let mut earliest = u64::MAX;
            for (i, shard) in wiring.shards.iter().enumerate() {
                if shard.next_timer.load(Ordering::Relaxed) <= now_nanos {
                    let work = c.step(i, |ep| ep.handle_timeout(now()));
                    if work.ios.is_empty() {
                        c.perform(i, work).await;
                    } else {
                        let c = c.clone();
                        tokio::spawn(async move { c.perform(i, work).await });
                    }
                }
                earliest = earliest.min(shard.next_timer.load(Ordering::Relaxed));
            }
            let sleep_until = match earliest {
                u64::MAX => Instant::now() + Duration::from_secs(3600),
                at => wiring.epoch + Duration::from_nanos(at),
            };
            tokio::select! {
                _ = tokio::time::sleep_until(sleep_until.into()) => {}
                _ = wiring.timers_changed.notified() => {}
            }
        }
    }
}

/// `at` as nanoseconds from `epoch` (0 before it).
fn nanos_since(epoch: Instant, at: Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(epoch).as_nanos()).unwrap_or(u64::MAX - 1)
}

/// Runs a policy call synchronously. A call with its own deadline (a
/// WebAssembly policy's) runs in place: `block_in_place` would cost more
/// than the hook (hosted-pbx calls/s 4400–5200 with it, 6400–7200
/// without, `bench/README.md`). Any other runs in `block_in_place` on a
/// multi-threaded runtime, so the tasks queued on this worker move to
/// another thread while it runs.
pub(crate) fn run_bounded<T>(bounded: bool, call: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    if bounded {
        return call();
    }
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(call),
        _ => call(),
    }
}

/// §18.2.2's fallback address of a response: the top Via's `received`
/// (or its host, when an IP) with its sent-by port. `None` for a host name
/// (no resolution on the response path) or an unparseable response.
fn via_listening_address(response: &Bytes) -> Option<std::net::SocketAddr> {
    let msg = SipMessage::parse(response.clone()).ok()?;
    let via = msg.top_via().ok()?;
    let host = via
        .received()
        .map_or_else(|| via.host.to_string(), str::to_owned);
    let ip: std::net::IpAddr = host.trim_matches(|c| c == '[' || c == ']').parse().ok()?;
    Some(std::net::SocketAddr::new(ip, via.port.unwrap_or(5060)))
}

/// The header block of a partial message (for addressing an error response).
fn head_only(partial: Bytes) -> Bytes {
    match memchr_crlfcrlf(&partial) {
        Some(end) => partial.slice(..end + 4),
        None => partial,
    }
}

fn memchr_crlfcrlf(b: &[u8]) -> Option<usize> {
    b.windows(4).position(|w| w == b"\r\n\r\n")
}

//! The path of a message through a node, in one place:
//!
//! ```text
//! transport ─▶ on_inbound ─▶ parse ─▶ request?  ─▶ validate (codec) ─▶ ACK / CANCEL / server transaction match
//!                                    │                                   └▶ new ProxyTx ─▶ route (§16.3–16.5, registrar, policy)
//!                                    │                                                     └▶ fork ─▶ branches (§16.6)
//!                                    └▶ response? ─▶ client transaction match ─▶ fork context (§16.7) ─▶ upstream
//! ```
//!
//! Everything protocol-shaped lives in sans-IO modules (`transaction`,
//! `proxy`, `registrar`); this file only moves messages between them, the
//! transports and the location store.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use bytes::Bytes;
use switchyard_codec::{self as codec, FrameError, Method, SipMessage};
use tracing::{Instrument, debug, info_span, warn};

use super::Stats;
use super::auth::unix_now;
use super::tables::{ServerSlot, Tables};
use super::timers::TimerDriver;
use crate::cluster::Cluster;
use crate::config::Config;
use crate::egress::{Destination, Egress};
use crate::location::LocationStore;
use crate::net::Source;
use crate::policy::PolicyResolver;
use crate::proxy::fork::{BranchId, Target};
use crate::proxy::request::Reject;
use crate::transaction::{ClientKey, ServerKey, is_rfc3261_branch};
use crate::transport::{InboundEvent, InboundHandler, Transports};
use switchyard_proto::edge::Edge;
use switchyard_proto::proxy_tx::{HookDone, Output, PendingHook, ProxyTx, TxSettings};

/// A transaction shared by the tasks that drive it.
pub(crate) type TxRef = Arc<parking_lot::Mutex<ProxyTx>>;

/// What the node knows once its sockets are bound.
pub(crate) struct Wiring {
    pub transports: Arc<Transports>,
    /// Our addresses and cluster keys, for every edge decision.
    pub edge: Edge,
}

pub(crate) struct Core {
    /// Lets the socket callbacks hand work to a task that owns the core.
    pub me: std::sync::Weak<Core>,
    pub config: Config,
    pub wiring: OnceLock<Wiring>,
    pub store: Arc<dyn LocationStore>,
    pub cluster: Arc<Cluster>,
    pub policies: Arc<dyn PolicyResolver>,
    pub egress: Egress,
    /// `[auth]`: None when authentication is off.
    pub auth: Option<Arc<crate::auth::Authenticator>>,
    pub tables: Tables,
    pub timers: TimerDriver,
    pub stats: Stats,
}

impl InboundHandler for Core {
    fn on_inbound(&self, ev: InboundEvent) {
        // The handler runs on the socket's receive task: hand the message to
        // its own task so a slow store lookup never stalls the socket.
        let Some(core) = self.me.upgrade() else {
            return;
        };
        tokio::spawn(async move { core.handle(ev).await });
    }
}

impl Core {
    pub fn wiring(&self) -> &Wiring {
        self.wiring.get().expect("node wired before traffic")
    }

    pub fn edge(&self) -> &Edge {
        &self.wiring().edge
    }

    async fn handle(self: Arc<Self>, ev: InboundEvent) {
        match ev {
            InboundEvent::Message(inbound) => match SipMessage::parse(inbound.data) {
                Ok(msg) if msg.is_request() => self.on_request(msg, inbound.source).await,
                Ok(msg) => self.on_response(msg, inbound.source).await,
                Err(e) => {
                    // Not even a start line and headers: nothing to address a
                    // response to (RFC 3261 §16.3 step 1 still wants an answer,
                    // but there is no Via to send it by).
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

    async fn on_request(self: &Arc<Self>, msg: SipMessage, source: Source) {
        self.stats.requests_in.inc();
        if let Err(rej) = codec::validate_request(&msg) {
            self.stats.rejected.inc();
            if msg.method() != Some(&Method::Ack) {
                let resp = codec::response_to(&msg, rej.code, &rej.reason).build();
                let _ = self.reply(&source, resp).await;
            }
            return;
        }
        let Some(key) = server_key(&msg) else {
            if msg.method() != Some(&Method::Ack) {
                let resp = codec::response_to(&msg, 400, "Bad Via or Method").build();
                let _ = self.reply(&source, resp).await;
            }
            return;
        };
        let span =
            info_span!("request", call_id = msg.call_id().unwrap_or("-"), branch = %key.branch());
        async {
            match msg.method() {
                Some(Method::Ack) => self.on_ack(msg, source, key).await,
                Some(Method::Cancel) => self.on_cancel(msg, source, key).await,
                _ => self.on_new_or_retransmitted(msg, source, key).await,
            }
        }
        .instrument(span)
        .await
    }

    async fn on_new_or_retransmitted(
        self: &Arc<Self>,
        msg: SipMessage,
        source: Source,
        key: ServerKey,
    ) {
        let now = Instant::now();
        let max = self.config.limits.max_transactions;
        let settings = TxSettings {
            timers: self.config.timers.transaction(),
            timer_c: self.config.timers.timer_c(),
        };
        let tx = match self.tables.server_or_insert(key, max, |k| {
            let to_tag = format!("sy{:012x}", rand::random::<u64>() >> 16);
            let id = self.timers.next_id();
            ProxyTx::new(id, msg.clone(), source, k.clone(), &settings, to_tag, now)
        }) {
            ServerSlot::Existing(tx) => {
                // §17.2.1/§17.2.2: a retransmission is absorbed by its
                // transaction, which re-sends its last response.
                self.stats.retransmissions_absorbed.inc();
                let out = tx.lock().on_retransmission(now);
                self.execute(&tx, out).await;
                return;
            }
            ServerSlot::New(tx) => tx,
            ServerSlot::Full => {
                // Overloaded: answered once, statelessly (RFC 3261 §21.5.4,
                // RFC 6357); a retransmission is answered again, maybe by
                // then with a transaction.
                self.stats.overloaded.inc();
                let resp = codec::response_to(&msg, 503, "Service Unavailable")
                    .header("Retry-After", "5")
                    .build();
                let _ = self.reply(&source, resp).await;
                return;
            }
        };
        self.timers.arm(&tx);
        let out = super::routing::route(self, &tx, &msg, source).await;
        self.execute(&tx, out).await;
    }

    /// ACK for a non-2xx final belongs to our INVITE server transaction
    /// (hop-by-hop, §17.2.1); any other ACK is end-to-end and is forwarded
    /// statelessly along the dialog's route (§16.11 / RFC 6026).
    async fn on_ack(self: &Arc<Self>, msg: SipMessage, source: Source, key: ServerKey) {
        let invite_key = ServerKey::new(key.branch(), key.sent_by(), "INVITE");
        if let Some(tx) = self.tables.server(&invite_key) {
            let absorbed = tx.lock().on_ack(Instant::now());
            if let Some(out) = absorbed {
                self.execute(&tx, out).await;
                return;
            }
        }
        super::stateless::forward_request(self, &msg, source).await;
    }

    /// §16.10: a CANCEL matching a pending INVITE is answered 200 at once,
    /// then every branch is cancelled. One that matches nothing is forwarded
    /// statelessly when it names a next hop, and answered 481 when it was
    /// for our own domain (we could only guess its targets).
    async fn on_cancel(self: &Arc<Self>, msg: SipMessage, source: Source, key: ServerKey) {
        let invite = self
            .tables
            .server(&ServerKey::new(key.branch(), key.sent_by(), "INVITE"));
        let Some(tx) = invite else {
            let ours = msg
                .request_uri()
                .is_ok_and(|u| self.wiring().edge.identity.is_our_aor(&u));
            if ours && msg.header(switchyard_codec::HeaderName::Route).is_none() {
                let resp = codec::response_to(&msg, 481, "Call/Transaction Does Not Exist").build();
                let _ = self.reply(&source, resp).await;
            } else {
                super::stateless::forward_request(self, &msg, source).await;
            }
            return;
        };
        let resp = codec::response_to(&msg, 200, "OK").build();
        let _ = self.reply(&source, resp).await;
        let out = tx.lock().cancel(Instant::now());
        self.execute(&tx, out).await;
    }

    async fn on_response(self: &Arc<Self>, msg: SipMessage, source: Source) {
        self.stats.responses_in.inc();
        if codec::validate_response(&msg).is_err() {
            self.stats.dropped_malformed.inc();
            return;
        }
        let Some(key) = client_key(&msg) else {
            self.stats.dropped_stray.inc();
            return;
        };
        match self.tables.client(&key) {
            Some((tx, role)) => {
                let out = tx
                    .lock()
                    .on_response(role, msg, self.edge(), Instant::now());
                self.execute(&tx, out).await;
            }
            // §16.7: no matching transaction (e.g. a retransmitted 2xx after
            // the INVITE transaction ended): forward it statelessly.
            None => super::stateless::forward_response(self, msg, source).await,
        }
    }

    /// Sends a response back over the flow its request came on. Over TCP,
    /// when that connection is gone, RFC 3261 §18.2.2: a new connection to
    /// the top Via's `received` address (else its host) and sent-by port
    /// (else 5060), the port the client listens on, never the gone
    /// connection's ephemeral one. Held to the egress allowlist like any
    /// destination we open a connection to.
    pub(crate) async fn reply(
        &self,
        source: &Source,
        data: bytes::Bytes,
    ) -> Result<(), crate::transport::TransportError> {
        let transports = &self.wiring().transports;
        match transports.reply(source, data.clone()).await {
            Err(crate::transport::TransportError::ConnectionClosed { .. })
                if source.transport.is_reliable() =>
            {
                let Some(addr) = via_listening_address(&data)
                    .filter(|a| self.egress.allowlist().permits(a.ip()))
                else {
                    return Err(crate::transport::TransportError::ConnectionClosed {
                        remote: source.remote,
                    });
                };
                transports
                    .send(source.transport, addr, data)
                    .await
                    .map(drop)
            }
            other => other,
        }
    }

    /// Performs what a transaction step asked for, outside its lock, then
    /// feeds back what happened (new branches resolved, send failures).
    pub(crate) async fn execute(self: &Arc<Self>, tx: &TxRef, mut outputs: Vec<Output>) {
        while !outputs.is_empty() {
            let mut follow_up = Vec::new();
            for out in outputs.drain(..) {
                match out {
                    Output::Reply { source, data } => {
                        if let Err(e) = self.reply(&source, data).await {
                            warn!(to = %source.remote, error = %e, "cannot send response upstream");
                        }
                    }
                    Output::Send { branch, dest, data } => {
                        let transports = &self.wiring().transports;
                        let sent = match dest.flow_local {
                            Some(local) => {
                                let flow = Source {
                                    transport: dest.transport,
                                    remote: dest.addr,
                                    local,
                                };
                                transports.send_on_flow(&flow, data).await
                            }
                            None => transports
                                .send(dest.transport, dest.addr, data)
                                .await
                                .map(drop),
                        };
                        if let Err(e) = sent {
                            debug!(to = %dest.addr, error = %e, "branch send failed");
                            follow_up.extend(tx.lock().on_send_error(branch, Instant::now()));
                        }
                    }
                    Output::Start {
                        branch,
                        target,
                        hop,
                    } => {
                        // Each branch resolves (maybe DNS) and sends on its
                        // own task, so one slow next hop never holds up the
                        // other branches of a parallel fork.
                        self.spawn_branch(tx, branch, target, hop);
                    }
                    Output::Hook(hook) => {
                        // Outside the lock, and off the worker's task queue:
                        // a hook may take up to its deadline, and meanwhile
                        // the transaction and the tasks queued on this
                        // worker go on elsewhere.
                        if let Some(done) = run_hook(hook) {
                            follow_up.extend(tx.lock().on_hook_done(done, Instant::now()));
                        }
                    }
                    bookkeeping => self.apply_bookkeeping(tx, bookkeeping),
                }
            }
            outputs = follow_up;
        }
        self.timers.arm(tx);
    }

    /// Resolves a branch's next hop and starts it, on a task of its own.
    fn spawn_branch(
        self: &Arc<Self>,
        tx: &TxRef,
        branch: BranchId,
        mut target: Target,
        mut hop: String,
    ) {
        // A binding's Path starting with our own edge entry: the branch
        // goes out on the flow it names, not back to ourselves.
        let edge = self.edge();
        let (popped, own_flow) = edge.take_own_routes(&mut target.route, unix_now());
        if let Some(flow) = own_flow {
            target.flow = Some(flow);
        }
        if popped {
            hop = tx.lock().next_hop(&target);
        }
        target.via_edge = target.flow.is_none()
            && target
                .route
                .first()
                .is_some_and(|r| edge.is_edge_route(r, unix_now()));
        let (core, tx) = (self.clone(), tx.clone());
        // Boxed as `dyn Future + Send`: `execute` awaits itself through this
        // task, and the compiler cannot prove a recursive opaque future Send.
        let task: Pin<Box<dyn Future<Output = ()> + Send>> = Box::pin(async move {
            let dest = match target.flow {
                // RFC 5626 §5.3: a flow that is gone is 430 Flow Failed, so
                // the caller's proxy (or the UA) can try another flow.
                Some(flow) if core.wiring().transports.has_flow(&flow) => {
                    Ok(Destination::flow(flow))
                }
                Some(_) => Err(Reject::new(430, "Flow Failed")),
                None => super::stateless::resolve(&core, &hop).await,
            };
            let out = tx.lock().start_branch(
                branch,
                target,
                dest,
                core.edge(),
                &mut rand::rng(),
                Instant::now(),
            );
            core.execute(&tx, out).await;
        });
        tokio::spawn(task);
    }

    /// [`Self::execute`] for outputs that are all [`Output::is_bookkeeping`]:
    /// no await needed.
    pub(crate) fn execute_now(&self, tx: &TxRef, outputs: Vec<Output>) {
        for out in outputs {
            self.apply_bookkeeping(tx, out);
        }
        self.timers.arm(tx);
    }

    fn apply_bookkeeping(&self, tx: &TxRef, out: Output) {
        match out {
            Output::Register { key, role } => self.tables.insert_client(key, tx, role),
            Output::Unregister { key } => self.tables.remove_client(&key),
            Output::Finished { key } => {
                self.tables.remove_server(&key);
                self.timers.disarm(tx);
            }
            Output::TargetsDropped(n) => self.stats.branches_capped.add(n as u64),
            other => debug_assert!(false, "not bookkeeping: {other:?}"),
        }
    }
}

/// Runs a policy hook synchronously. A hook with its own deadline (a
/// WebAssembly policy's) runs in place: `block_in_place` would cost more
/// than the hook (hosted-pbx calls/s 4400–5200 with it, 6400–7200
/// without, `bench/README.md`). Any other runs in `block_in_place` on a
/// multi-threaded runtime, so the tasks queued on this worker (its LIFO
/// slot cannot be stolen) move to another thread while it runs.
fn run_hook(hook: PendingHook) -> Option<HookDone> {
    use tokio::runtime::{Handle, RuntimeFlavor};
    if hook.is_bounded() {
        return hook.run();
    }
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(|| hook.run()),
        _ => hook.run(),
    }
}

/// §17.2.3: the server transaction key from the top Via (ACK and CANCEL
/// callers map it to the INVITE's key themselves).
fn server_key(msg: &SipMessage) -> Option<ServerKey> {
    let via = msg.top_via().ok()?;
    let method = msg.method()?;
    let sent_by = match via.port {
        Some(p) => format!("{}:{p}", via.host),
        None => via.host.to_string(),
    };
    match via.branch() {
        Some(branch) if is_rfc3261_branch(branch) => {
            Some(ServerKey::new(branch, &sent_by, method.as_str()))
        }
        _ => Some(ServerKey::new(
            &rfc2543_branch(msg),
            &sent_by,
            method.as_str(),
        )),
    }
}

/// §17.2.3's fallback for RFC 2543 clients (no magic cookie): the
/// transaction is identified by Request-URI, From tag, Call-ID, CSeq number
/// and top Via. The To tag is left out so the ACK of a non-2xx matches too.
fn rfc2543_branch(msg: &SipMessage) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    crate::proxy::request::hash_request_identity(msg, &mut h);
    msg.top_via().ok().map(|v| v.raw.to_owned()).hash(&mut h);
    format!("rfc2543-{:016x}", h.finish())
}

/// §17.1.3: the client transaction key from the top Via branch and CSeq method.
fn client_key(msg: &SipMessage) -> Option<ClientKey> {
    let via = msg.top_via().ok()?;
    let cseq = msg.cseq().ok()?;
    Some(ClientKey::new(via.branch()?, cseq.method.as_str()))
}

/// §18.2.2's fallback address of a response: the top Via's `received`
/// (or its host, when an IP) with its sent-by port. `None` for a host name
/// (no resolution on the response path) or an unparseable response.
fn via_listening_address(response: &bytes::Bytes) -> Option<std::net::SocketAddr> {
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

//! The endpoint: every SIP behaviour of a proxy node in one sans-IO state
//! machine, in the style of `quinn-proto`'s `Endpoint`.
//!
//! ```text
//!             handle(now, source, bytes) ─┐        ┌─▶ poll_transmit() → bytes to send
//!                   handle_timeout(now) ──┼─▶ Endpoint ─▶ poll_io()   → store, DNS, auth, policy calls
//!  on_io_done(now, id, result) / on_send_failed ─┘        └─▶ poll_timeout() → when to call handle_timeout
//! ```
//!
//! Inside: the server and client transaction tables and one timer queue;
//! per new request a [`ProxyTx`] (server transaction, response context,
//! one client transaction per branch) and the routing steps of
//! [`route`](self::route) that lead to its branches; stateless forwarding
//! ([`stateless`](self::stateless)). The endpoint owns no socket, spawns
//! nothing, never reads the clock and draws every random value from the
//! RNG it was given, so a test drives it with made-up times and bytes.
//!
//! A node runs several endpoints (shards), each behind its own lock: a
//! request goes to the shard of its transaction key, a response to the
//! shard written into the branch it answers ([`shard_of`]). Nothing an
//! endpoint asks for (a store call, a DNS query, a policy hook) runs while
//! its lock is held.

mod auth;
mod config;
mod dispatch;
mod io;
mod route;
mod stateless;
mod stats;

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use rustc_hash::FxHashMap;
use switchyard_codec::SipMessage;

pub use self::auth::{AuthRole, AuthVerdict};
pub use self::config::{EndpointConfig, Now, TenantMap};
pub use self::io::{
    AuthRequest, Io, IoId, IoKind, IoResult, PolicyAnswer, PolicyCall, SendFailure, Transmit,
};
use self::route::Routing;
use self::stateless::StatelessJob;
pub use self::stats::{Counter, Stats};
use crate::dialog::{CallEvent, Calls};
use crate::edge::Edge;
use crate::net::Destination;
use crate::policy::PolicyResolver;
use crate::proxy::fork::{BranchId, Target};
use crate::proxy::request::{BRANCH_PREFIX, LocalAnswer};
use crate::proxy_tx::{Output, ProxyTx, Role};
use crate::transaction::{
    ClientKey, CompletedTable, ServerKey, TimerId, TimerQueue, response_delta,
};

/// One shard of a node's SIP logic. See the module documentation.
pub struct Endpoint {
    config: EndpointConfig,
    edge: Edge,
    policies: Arc<dyn PolicyResolver>,
    stats: Arc<Stats>,
    rng: StdRng,
    /// By transaction id. Ids are our own counter, so a fast hash that
    /// an attacker could steer does no harm here; keys that come off the
    /// wire (transaction keys) keep the standard, randomly seeded one.
    txs: FxHashMap<u64, Entry>,
    servers: HashMap<ServerKey, u64>,
    /// Server transactions past their final response with nothing left
    /// but absorbing retransmissions (a non-INVITE until Timer J, an
    /// INVITE answered 2xx until Timer L), kept compact ([`CompletedTable`]).
    completed: CompletedTable,
    clients: HashMap<ClientKey, (u64, Role)>,
    timers: TimerQueue<u64>,
    next_tx: u64,
    next_io: u64,
    waiting: FxHashMap<IoId, Waiter>,
    transmits: VecDeque<Transmit>,
    ios: VecDeque<Io>,
    /// Calls started and ended (CDRs, dialog hooks), for the node.
    call_events: VecDeque<CallEvent>,
}

/// Boxed: the table moves entries when it grows, and a transaction is
/// several hundred bytes.
struct Entry {
    tx: Box<ProxyTx>,
    timer: Option<TimerId>,
}

/// The log span of work on a transaction after its request arrived (a
/// store answer, a timer, a failed send): the same fields as the request's.
fn tx_span(tx: &ProxyTx) -> tracing::Span {
    // Field values are computed only when the span is enabled.
    tracing::info_span!(
        "sip",
        call_id = tx.request.call_id().unwrap_or("-"),
        branch = tx.request.top_via().ok().and_then(|v| v.branch()).unwrap_or("-"),
        tenant = %tx.tenant,
    )
}

/// Who waits for an [`Io`], and for which step.
enum Waiter {
    /// A routing step of a new request.
    Route { tx: u64, routing: Box<Routing> },
    /// A branch's next hop.
    Branch {
        tx: u64,
        branch: BranchId,
        target: Box<Target>,
    },
    /// A hook after routing.
    Hook { tx: u64 },
    /// A stateless forward.
    Stateless(Box<StatelessJob>),
}

impl Waiter {
    /// The transaction waiting, if any.
    fn tx(&self) -> Option<u64> {
        match self {
            Waiter::Route { tx, .. } | Waiter::Branch { tx, .. } | Waiter::Hook { tx } => Some(*tx),
            Waiter::Stateless(_) => None,
        }
    }
}

impl Endpoint {
    /// An endpoint for `edge` (the node's addresses and cluster keys);
    /// every random value it needs comes from `seed`.
    pub fn new(
        config: EndpointConfig,
        edge: Edge,
        policies: Arc<dyn PolicyResolver>,
        stats: Arc<Stats>,
        seed: u64,
    ) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let completed = CompletedTable::new((rng.next_u64(), rng.next_u64()));
        Endpoint {
            config,
            edge,
            policies,
            stats,
            rng,
            txs: FxHashMap::default(),
            servers: HashMap::new(),
            completed,
            clients: HashMap::new(),
            timers: TimerQueue::new(),
            next_tx: 0,
            next_io: 0,
            waiting: FxHashMap::default(),
            transmits: VecDeque::new(),
            ios: VecDeque::new(),
            call_events: VecDeque::new(),
        }
    }

    /// A configuration reload: the domains this node serves and the tenant
    /// map. Requests routed from now on see them; a transaction already
    /// created keeps the policy version it started with and the decisions
    /// it already took (a routing step still waiting for the store reads
    /// the new map when it resumes).
    pub fn reconfigure(&mut self, domains: &[String], tenants: TenantMap) {
        self.edge.identity = self.edge.identity.with_domains(domains);
        self.config.tenants = tenants;
    }

    /// A datagram, or one framed message of a stream, from `source`.
    pub fn handle(&mut self, now: Now, source: crate::net::Source, data: Bytes) {
        match SipMessage::parse(data) {
            Ok(msg) => self.handle_message(now, source, msg),
            Err(e) => {
                // Not even a start line and headers: nothing to address a
                // response to (RFC 3261 §16.3 step 1 wants one, but there
                // is no Via to send it by).
                self.stats.dropped_malformed.inc();
                tracing::debug!(from = %source.remote, error = %e, "dropped unparseable message");
            }
        }
    }

    /// [`Self::handle`] for a message the caller parsed already (to pick
    /// the shard with [`shard_of`]).
    pub fn handle_message(&mut self, now: Now, source: crate::net::Source, msg: SipMessage) {
        if msg.is_request() {
            self.on_request(now, source, msg);
        } else {
            self.on_response(now, source, msg);
        }
    }

    /// Runs every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Now) {
        self.completed.expire(now.instant);
        while let Some(id) = self.timers.pop_expired(now.instant) {
            let Some(entry) = self.txs.get_mut(&id) else {
                continue;
            };
            entry.timer = None;
            let span = tx_span(&entry.tx);
            let _entered = span.enter();
            let out = entry.tx.handle_timeout(now.instant);
            self.apply(id, out, now);
        }
    }

    /// The answer to an [`Io`].
    pub fn on_io_done(&mut self, now: Now, id: IoId, result: IoResult) {
        let Some(waiter) = self.waiting.remove(&id) else {
            return;
        };
        let span = waiter
            .tx()
            .and_then(|tx| self.txs.get(&tx))
            .map_or_else(tracing::Span::none, |entry| tx_span(&entry.tx));
        let _entered = span.enter();
        match waiter {
            Waiter::Route { tx, routing } if self.txs.contains_key(&tx) => {
                self.resume_routing(tx, *routing, result, now)
            }
            Waiter::Branch { tx, branch, target } => {
                let IoResult::Resolved(dest) = result else {
                    return;
                };
                let mut rng = BranchRng {
                    inner: &mut self.rng,
                    shard: self.config.shard,
                };
                let Some(entry) = self.txs.get_mut(&tx) else {
                    return;
                };
                let dest = dest.and_then(|d| secure_enough(&entry.tx.request, d));
                let out =
                    entry
                        .tx
                        .start_branch(branch, *target, dest, &self.edge, &mut rng, now.instant);
                self.apply(tx, out, now);
            }
            Waiter::Hook { tx } => {
                let (IoResult::Hook(Some(done)), Some(entry)) = (result, self.txs.get_mut(&tx))
                else {
                    return;
                };
                let out = entry.tx.on_hook_done(done, now.instant);
                self.apply(tx, out, now);
            }
            Waiter::Stateless(job) => self.resume_stateless(*job, result, now),
            Waiter::Route { .. } => {}
        }
    }

    /// A downstream send of a branch failed (connection refused, no route).
    pub fn on_send_failed(&mut self, now: Now, failure: SendFailure) {
        if let Some(entry) = self.txs.get_mut(&failure.tx) {
            let span = tx_span(&entry.tx);
            let _entered = span.enter();
            let out = entry.tx.on_send_error(failure.branch, now.instant);
            self.apply(failure.tx, out, now);
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    pub fn poll_io(&mut self) -> Option<Io> {
        self.ios.pop_front()
    }

    /// When [`Self::handle_timeout`] next has work.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        let timers = self.timers.next_deadline();
        match (timers, self.completed.next_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Live (server, client) transactions and armed timers. Server
    /// transactions include the completed ones ([`Self::completed`]).
    pub fn counts(&self) -> (usize, usize, usize) {
        let servers = self.servers.len() + self.completed.len();
        (servers, self.clients.len(), self.timers.len())
    }

    /// Completed server transactions kept compact ([`CompletedTable`]).
    pub fn completed(&self) -> usize {
        self.completed.len()
    }

    /// Calls this node tracks (from their INVITE to their BYE or the end
    /// of their lifetime): what a draining node waits for besides its
    /// transactions.
    pub fn live_dialogs(&self) -> usize {
        self.calls().live()
    }

    /// A call started or ended: write its CDR, call the dialog hooks.
    pub fn poll_call_event(&mut self) -> Option<CallEvent> {
        self.call_events.pop_front()
    }

    fn calls(&self) -> std::sync::MutexGuard<'_, Calls> {
        // Nothing panics while holding it; a poisoned table is still usable.
        self.config
            .calls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Server transactions still without a final response: what a
    /// draining node waits for (completed ones only absorb retransmissions).
    pub fn unanswered(&self) -> usize {
        self.txs.values().filter(|e| !e.tx.is_answered()).count()
    }

    fn reply(&mut self, source: crate::net::Source, data: Bytes) {
        self.transmits.push_back(Transmit::Reply { source, data });
    }

    fn ask(&mut self, kind: IoKind, waiter: Waiter) {
        let id = IoId(self.next_io);
        self.next_io += 1;
        self.waiting.insert(id, waiter);
        self.ios.push_back(Io { id, kind });
    }

    /// Performs what a transaction step returned, then re-arms its timer.
    fn apply(&mut self, tx: u64, outputs: Vec<Output>, now: Now) {
        for out in outputs {
            match out {
                Output::Reply { source, data } => self.reply(source, data),
                Output::Send { branch, dest, data } => self.transmits.push_back(Transmit::Send {
                    dest,
                    data,
                    failure: Some(SendFailure { tx, branch }),
                }),
                Output::Start {
                    branch,
                    target,
                    hop,
                } => self.resolve_branch(tx, branch, target, hop, now),
                Output::Hook(hook) => self.ask(IoKind::Hook(hook), Waiter::Hook { tx }),
                Output::Register { key, role } => {
                    self.clients.insert(key, (tx, role));
                }
                Output::Unregister { key } => {
                    self.clients.remove(&key);
                }
                Output::Finished { key } => {
                    if self.servers.remove(&key).is_some() {
                        self.config.live.fetch_sub(1, Ordering::Relaxed);
                    }
                    if let Some(entry) = self.txs.remove(&tx)
                        && let Some(timer) = entry.timer
                    {
                        self.timers.cancel(timer);
                    }
                }
                Output::TargetsDropped(n) => self.stats.branches_capped.add(n as u64),
                Output::CallFinal {
                    key,
                    status,
                    session_expires,
                    ctx,
                } => {
                    let event =
                        self.calls()
                            .final_response(key, status, session_expires, &ctx, now);
                    self.call_events.extend(event);
                }
            }
        }
        if self.retire(tx, now) {
            return;
        }
        if let Some(entry) = self.txs.get_mut(&tx) {
            let deadline = entry.tx.next_deadline();
            self.timers.set_deadline(&mut entry.timer, tx, deadline);
        }
    }

    /// Moves a transaction that has nothing left to do but absorb
    /// retransmissions of its request into the [`CompletedTable`]: its
    /// response kept as a delta from the request, its `ProxyTx` dropped.
    /// It no longer counts for `max_transactions`: the completed ones
    /// have their own cap, `max_completed`.
    fn retire(&mut self, tx: u64, now: Now) -> bool {
        let Some(entry) = self.txs.get(&tx) else {
            return false;
        };
        let Some((response, deadline)) = entry.tx.absorbing_only() else {
            return false;
        };
        let request = entry.tx.request.as_bytes();
        let delta = match response.is_empty() {
            // An INVITE answered 2xx only absorbs: nothing to re-send.
            true => Vec::new(),
            false => match response_delta::encode(request, &response) {
                Some(delta) => delta,
                None => return false,
            },
        };
        if self.completed.len() >= self.config.max_completed {
            self.completed.evict_oldest();
            self.stats.completed_evicted.inc();
        }
        if !self.completed.insert(
            entry.tx.key(),
            &origin(&entry.tx.source(), request),
            deadline,
            &delta,
        ) {
            return false;
        }
        let mut entry = self.txs.remove(&tx).expect("looked up above");
        if let Some(timer) = entry.timer {
            self.timers.cancel(timer);
        }
        if self.servers.remove(entry.tx.key()).is_some() {
            self.config.live.fetch_sub(1, Ordering::Relaxed);
        }
        for out in entry.tx.retire(now.instant) {
            match out {
                Output::Unregister { key } => {
                    self.clients.remove(&key);
                }
                // `on-complete`: its answer finds no transaction, as wanted.
                Output::Hook(hook) => self.ask(IoKind::Hook(hook), Waiter::Hook { tx }),
                _ => {}
            }
        }
        true
    }

    /// A new branch: our own leading routes taken off (a binding's Path
    /// that starts with our edge entry goes out on the flow it names),
    /// then its next hop resolved, or its flow checked.
    fn resolve_branch(
        &mut self,
        tx: u64,
        branch: BranchId,
        mut target: Target,
        mut hop: String,
        now: Now,
    ) {
        let secs = now.unix_secs();
        let (popped, own_flow) = self.edge.take_own_routes(&mut target.route, secs);
        if let Some(flow) = own_flow {
            target.flow = Some(flow);
        }
        if popped && let Some(entry) = self.txs.get(&tx) {
            hop = entry.tx.next_hop(&target);
        }
        target.via_edge = target.flow.is_none()
            && target
                .route
                .first()
                .is_some_and(|r| self.edge.is_edge_route(r, secs));
        let flow = target.flow;
        self.ask(
            IoKind::Resolve { hop, flow },
            Waiter::Branch {
                tx,
                branch,
                target: Box::new(target),
            },
        );
    }
}

/// What a retransmission must have in common with the request of a
/// completed transaction to be answered: where it came from and its bytes
/// (a retransmission is the same message again, §17.1.2.1).
fn origin<'a>(
    source: &'a crate::net::Source,
    request: &'a [u8],
) -> (&'a crate::net::Source, &'a [u8]) {
    (source, request)
}

/// RFC 3261 §26.2.2, RFC 5630 §3.1.3: a request for a SIPS URI is
/// forwarded over TLS (or secure WebSocket) only, whatever its target
/// resolved to; otherwise the branch fails with 480, never downgraded.
fn secure_enough(request: &SipMessage, dest: Destination) -> Result<Destination, LocalAnswer> {
    let sips = request
        .request_uri()
        .is_ok_and(|u| u.scheme == switchyard_codec::Scheme::Sips);
    if sips && !dest.transport.is_secure() {
        return Err(LocalAnswer::new(480, "SIPS Target Not Reachable Over TLS"));
    }
    Ok(dest)
}

/// Which of `shards` endpoints a message belongs to: a request by its
/// transaction's Via branch and sent-by (so its ACK and CANCEL, which
/// carry the same, meet it), a response by the shard its branch was
/// minted in. `None` when there is no Via to tell (any shard drops it).
pub fn shard_of(msg: &SipMessage, shards: usize) -> Option<usize> {
    let via = msg.top_via().ok()?;
    let branch = via.branch().unwrap_or("");
    if msg.is_request() {
        let hash = FIXED_HASH.hash_one((branch, via.host, via.port));
        return Some(hash as usize % shards);
    }
    let minted = branch
        .strip_prefix(BRANCH_PREFIX)
        .and_then(|rest| rest.rsplit_once('.'))
        .and_then(|(_, random)| u64::from_str_radix(random, 16).ok())
        .map_or(0, |r| (r & 0xff) as usize);
    Some(minted % shards)
}

const FIXED_HASH: std::hash::BuildHasherDefault<std::hash::DefaultHasher> =
    std::hash::BuildHasherDefault::new();

/// The endpoint's RNG with its shard in the low byte of every `u64`: the
/// random part of the branch ids it mints ([`shard_of`]).
struct BranchRng<'a> {
    inner: &'a mut StdRng,
    shard: u8,
}

impl RngCore for BranchRng<'_> {
    fn next_u32(&mut self) -> u32 {
        self.inner.next_u32()
    }
    fn next_u64(&mut self) -> u64 {
        (self.inner.next_u64() & !0xff) | u64::from(self.shard)
    }
    fn fill_bytes(&mut self, dst: &mut [u8]) {
        self.inner.fill_bytes(dst)
    }
}

#[cfg(test)]
mod tests;

//! One proxied request: its server transaction, the response context that
//! forks it (§16.7) and one client transaction per branch (§16.6), glued
//! together. Every method is a synchronous step that returns [`Output`]s
//! for the caller to perform: sends, next-hop resolutions, table updates
//! and policy hooks (`hooks.rs`: a hook runs outside the step, its answer
//! comes back through [`ProxyTx::on_hook_done`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use switchyard_codec::{self as codec, Method, SipMessage};
use tracing::debug;

mod forking;
mod hooks;

pub use self::forking::Forwarding;
use self::forking::{build_ack, drain_client};
pub use self::hooks::{HookDone, PendingHook};
use crate::dialog::CallKey;
use crate::edge::Edge;
use crate::net::{Destination, Source};
use crate::policy::{Policy, PolicyCtx, Reply};
use crate::proxy::fork::{BranchId, ResponseContext, Target};
use crate::proxy::request::LocalAnswer;
use crate::transaction::{
    ClientEvent, ClientKey, ClientState, ClientTransaction, Disposition, Kind, ServerEvent,
    ServerKey, ServerState, ServerTransaction, TimerConfig,
};

/// Which client transaction of a [`ProxyTx`] a response belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Branch(BranchId),
    Cancel(BranchId),
}

/// Work for the node to do outside the lock.
#[derive(Debug)]
pub enum Output {
    /// Send upstream over the flow the request arrived on.
    Reply {
        source: Source,
        data: Bytes,
    },
    /// Send a branch's request (or its CANCEL/ACK) downstream.
    Send {
        branch: BranchId,
        dest: Destination,
        data: Bytes,
    },
    /// Resolve `hop` (RFC 3263) and then call [`ProxyTx::start_branch`].
    Start {
        branch: BranchId,
        target: Target,
        hop: String,
    },
    Register {
        key: ClientKey,
        role: Role,
    },
    Unregister {
        key: ClientKey,
    },
    Finished {
        key: ServerKey,
    },
    /// Targets left out by `limits.max_branches`, to be counted.
    TargetsDropped(usize),
    /// The final response of a call's INVITE went upstream (for the
    /// dialog layer, [`crate::dialog::Calls::final_response`]).
    CallFinal {
        key: CallKey,
        status: u16,
        /// RFC 4028 `Session-Expires` of a 2xx.
        session_expires: Option<u32>,
        /// The policy's ctx at this point, for its dialog hooks.
        ctx: Vec<u8>,
    },
    /// Run a policy hook outside the lock, then hand its answer to
    /// [`ProxyTx::on_hook_done`].
    Hook(PendingHook),
}

impl Output {
    /// Table and timer updates only: nothing to send or resolve.
    pub fn is_bookkeeping(&self) -> bool {
        matches!(
            self,
            Output::Register { .. }
                | Output::Unregister { .. }
                | Output::Finished { .. }
                | Output::TargetsDropped(_)
        )
    }
}

struct BranchSlot {
    key: Option<ClientKey>,
    client: Option<ClientTransaction>,
    dest: Option<Destination>,
    request: Bytes,
    cancel: Option<(ClientKey, ClientTransaction)>,
    timer_c: Option<Instant>,
    /// The policy's no-answer timeout for this branch (not restarted by 1xx).
    no_answer: Option<Instant>,
    /// Its next hop is being resolved: no client transaction yet, but live.
    resolving: bool,
    /// Sent on one of our RFC 5626 flows (the edge's last hop to a UA).
    flow: Option<Source>,
    /// The local status when the send fails: 430 for a flow (RFC 5626
    /// §5.3), 480 for another node's edge, else 503.
    send_failure: u16,
}

/// The node's settings every transaction is made with.
#[derive(Debug, Clone)]
pub struct TxSettings {
    pub timers: TimerConfig,
    /// §16.8 Timer C (> 3 minutes).
    pub timer_c: Duration,
}

pub struct ProxyTx {
    pub id: u64,
    key: ServerKey,
    server: ServerTransaction,
    source: Source,
    /// Shared: routing steps and hooks read it while the transaction goes on.
    pub request: Arc<SipMessage>,
    invite: bool,
    to_tag: String,
    timers: TimerConfig,
    timer_c: Duration,
    pub tenant: String,
    /// The call this INVITE is in the dialog layer (owner node only),
    /// until its final response.
    pub call: Option<CallKey>,
    policy: Option<Arc<dyn Policy>>,
    pctx: PolicyCtx,
    /// Boxed: most transactions (REGISTER, OPTIONS) are answered locally
    /// and never fork, and they live for Timer J after their answer.
    fork: Option<Box<ResponseContext<SipMessage>>>,
    forwarding: Option<Box<Forwarding>>,
    branches: Vec<BranchSlot>,
    pub cancel_requested: bool,
    final_status: Option<u16>,
    /// Request-URIs of the branches started, in order (for the policy).
    targets_tried: Vec<String>,
    /// A policy's `on-branch-failure` reply, sent when the fork concludes.
    policy_reply: Option<Reply>,
    started: Instant,
    finished: bool,
    /// A policy hook of this transaction is running (outside the lock);
    /// the ctx is with it.
    hook_running: bool,
    /// Hooks asked for meanwhile, in order.
    hooks_waiting: std::collections::VecDeque<hooks::HookCall>,
}

impl ProxyTx {
    /// A new request's transaction; `to_tag` is the tag of every response
    /// we build ourselves (drawn by the caller, so tests can fix it).
    pub fn new(
        id: u64,
        request: SipMessage,
        source: Source,
        key: ServerKey,
        settings: &TxSettings,
        to_tag: String,
        now: Instant,
    ) -> Self {
        let invite = request.method() == Some(&Method::Invite);
        let kind = if invite {
            Kind::Invite
        } else {
            Kind::NonInvite
        };
        let timers = settings.timers;
        ProxyTx {
            id,
            key,
            server: ServerTransaction::new(kind, source.transport, &timers),
            source,
            request: Arc::new(request),
            invite,
            to_tag,
            timers,
            timer_c: settings.timer_c,
            tenant: String::new(),
            call: None,
            policy: None,
            pctx: PolicyCtx::default(),
            fork: None,
            forwarding: None,
            branches: Vec::new(),
            cancel_requested: false,
            final_status: None,
            targets_tried: Vec::new(),
            policy_reply: None,
            started: now,
            finished: false,
            hook_running: false,
            hooks_waiting: std::collections::VecDeque::new(),
        }
    }

    /// A transaction whose final response went upstream and that has
    /// nothing left to do but absorb retransmissions of its request, with
    /// no branch, CANCEL or hook still at work:
    ///
    /// - a non-INVITE in Completed until Timer J (§17.2.2), re-sending its
    ///   response: that response and the deadline;
    /// - an INVITE answered 2xx, in Accepted until Timer L (RFC 6026
    ///   §8.7), whose branches are done or in Accepted themselves: a
    ///   retransmitted INVITE is only absorbed (an empty response), a 2xx
    ///   the UAS retransmits is forwarded statelessly (§16.7 step 9 as
    ///   updated by RFC 6026 §8.10) and its ACK is end-to-end anyway.
    ///
    /// A non-2xx INVITE keeps its transaction: its ACK is hop-by-hop and
    /// must be absorbed, which only it can tell apart (Timer I, 5 s).
    pub fn absorbing_only(&self) -> Option<(Bytes, Instant)> {
        if self.hook_running || !self.hooks_waiting.is_empty() {
            return None;
        }
        let response = match (self.invite, self.server.state()) {
            (false, ServerState::Completed) => self.server.last_response()?.clone(),
            (true, ServerState::Accepted) => Bytes::new(),
            _ => return None,
        };
        let branches_done = self.branches.iter().all(|s| {
            let accepted = |c: &ClientTransaction| c.state() == ClientState::Accepted;
            !s.resolving
                && s.client
                    .as_ref()
                    .is_none_or(|c| c.is_terminated() || accepted(c))
                && s.cancel.as_ref().is_none_or(|(_, c)| c.is_terminated())
        });
        if !branches_done {
            return None;
        }
        Some((response, self.server.poll_timeout()?))
    }

    /// The transaction leaves for the endpoint's compact table
    /// ([`Self::absorbing_only`]): its client keys are let go, and a
    /// policy gets its `on-complete` now.
    pub fn retire(&mut self, now: Instant) -> Vec<Output> {
        let mut out = Vec::new();
        self.finish(now, &mut out);
        out
    }

    /// Done: `on-complete` for a policy, and every client key let go.
    fn finish(&mut self, now: Instant, out: &mut Vec<Output>) {
        self.finished = true;
        self.complete(now, out);
        for slot in &mut self.branches {
            if let Some(k) = slot.key.take() {
                out.push(Output::Unregister { key: k });
            }
            if let Some((k, _)) = slot.cancel.take() {
                out.push(Output::Unregister { key: k });
            }
        }
    }

    pub fn key(&self) -> &ServerKey {
        &self.key
    }

    /// Where the request came from (its responses go back there).
    /// A final response was sent (or forwarded) upstream.
    pub fn is_answered(&self) -> bool {
        self.final_status.is_some()
    }

    pub fn source(&self) -> Source {
        self.source
    }

    /// Answers locally (100 Trying, errors, registrar results, timeouts).
    pub fn respond(
        &mut self,
        code: u16,
        reason: &str,
        headers: &[(String, String)],
        now: Instant,
    ) -> Vec<Output> {
        let data = self.local_response(code, reason, headers);
        self.respond_bytes(code, data, now)
    }

    /// Answers a final response once and ends the transaction: for early
    /// rejections of requests that may come from a spoofed source (401,
    /// 407, 403), no Timer G retransmissions go towards it; a retransmitted
    /// request is answered anew (with a fresh challenge).
    pub fn respond_once(
        &mut self,
        code: u16,
        reason: &str,
        headers: &[(String, String)],
        now: Instant,
    ) -> Vec<Output> {
        let data = self.local_response(code, reason, headers);
        self.final_status = Some(code);
        self.server.abandon();
        let mut out = vec![Output::Reply {
            source: self.source,
            data,
        }];
        self.call_final(code, None, &mut out);
        out.extend(self.pump(now));
        out
    }

    fn local_response(&self, code: u16, reason: &str, headers: &[(String, String)]) -> Bytes {
        let (received, rport) = crate::proxy::request::rfc3581(&self.request, &self.source);
        let mut b =
            codec::response_to(&self.request, code, reason).received(received.as_deref(), rport);
        if code > 100 {
            b = b.to_tag(&self.to_tag);
        }
        for (n, v) in headers {
            b = b.header(n, v);
        }
        b.build()
    }

    /// Sends a complete response through the server transaction.
    pub fn respond_bytes(&mut self, code: u16, data: Bytes, now: Instant) -> Vec<Output> {
        let mut out = Vec::new();
        if code >= 200 && self.final_status.is_none() {
            self.final_status = Some(code);
            self.call_final(code, None, &mut out);
        }
        if let Err(e) = self.server.respond(code, data, now) {
            debug!(error = %e, "response not sent");
        }
        out.extend(self.pump(now));
        out
    }

    /// The call's final response went upstream: tells the dialog layer
    /// (once; later 2xx of a forked INVITE are the same call).
    fn call_final(&mut self, status: u16, msg: Option<&SipMessage>, out: &mut Vec<Output>) {
        if let Some(key) = self.call.take() {
            out.push(Output::CallFinal {
                key,
                status,
                session_expires: msg.and_then(crate::dialog::session_expires),
                ctx: self.pctx.data.clone(),
            });
        }
    }

    pub fn reject(&mut self, rej: &LocalAnswer, now: Instant) -> Vec<Output> {
        self.respond(rej.code, rej.reason_phrase(), &rej.headers, now)
    }

    pub fn on_retransmission(&mut self, now: Instant) -> Vec<Output> {
        self.server.on_retransmission();
        self.pump(now)
    }

    /// `None` when the ACK is not ours to absorb (it acknowledges a 2xx).
    pub fn on_ack(&mut self, now: Instant) -> Option<Vec<Output>> {
        // Completed: the ACK of our non-2xx; Confirmed: its retransmissions
        // (absorbed during Timer I). Accepted passes 2xx ACKs on (RFC 6026).
        if !self.invite
            || !matches!(
                self.server.state(),
                ServerState::Completed | ServerState::Confirmed
            )
        {
            return None;
        }
        match self.server.on_ack(now) {
            Disposition::Absorb => Some(self.pump(now)),
            Disposition::PassUp => None,
        }
    }

    pub fn cancel(&mut self, now: Instant) -> Vec<Output> {
        self.cancel_requested = true;
        match &mut self.fork {
            Some(fork) if self.final_status.is_none() => fork.cancel(),
            _ => {}
        }
        self.pump(now)
    }

    /// Begins forking once routing chose the targets.
    pub fn start_fork(
        &mut self,
        targets: Vec<Target>,
        forwarding: Forwarding,
        policy: Option<Arc<dyn Policy>>,
        pctx: PolicyCtx,
        now: Instant,
    ) -> Vec<Output> {
        if self.cancel_requested {
            return self.respond(487, "Request Terminated", &[], now);
        }
        let mut fork = ResponseContext::new(self.invite, targets, forwarding.fork_limits);
        self.forwarding = Some(Box::new(forwarding));
        self.policy = policy;
        self.pctx = pctx;
        fork.start();
        self.fork = Some(Box::new(fork));
        self.pump(now)
    }

    pub fn on_response(
        &mut self,
        role: Role,
        msg: SipMessage,
        edge: &Edge,
        now: Instant,
    ) -> Vec<Output> {
        let Some(status) = msg.status() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        match role {
            Role::Cancel(b) => {
                if let Some((_, c)) = &mut self.branches[b].cancel {
                    c.on_response(status, now, |_| Bytes::new());
                }
            }
            Role::Branch(b) => {
                let slot = &mut self.branches[b];
                let Some(client) = &mut slot.client else {
                    return Vec::new();
                };
                let request = &slot.request;
                let disposition = client.on_response(status, now, |_| build_ack(request, &msg));
                if disposition == Disposition::PassUp {
                    if (101..200).contains(&status)
                        && slot.timer_c.is_some()
                        && slot.cancel.is_none()
                    {
                        // §16.8: a provisional response restarts Timer C
                        // (once we sent CANCEL, the timer guards that instead).
                        slot.timer_c = Some(now + self.timer_c);
                    }
                    if status >= 200 {
                        slot.timer_c = None;
                    }
                    self.deliver(b, status, msg, edge, &mut out);
                }
            }
        }
        out.extend(self.pump(now));
        out
    }

    pub fn on_send_error(&mut self, branch: BranchId, now: Instant) -> Vec<Output> {
        if let Some(c) = &mut self.branches[branch].client {
            c.on_transport_error();
        }
        self.pump(now)
    }

    pub fn handle_timeout(&mut self, now: Instant) -> Vec<Output> {
        self.server.handle_timeout(now);
        for (i, slot) in self.branches.iter_mut().enumerate() {
            if let Some(c) = &mut slot.client {
                c.handle_timeout(now);
            }
            if let Some((_, c)) = &mut slot.cancel {
                c.handle_timeout(now);
            }
            let no_answer = slot.no_answer.is_some_and(|t| t <= now);
            if no_answer {
                slot.no_answer = None;
            }
            if no_answer || slot.timer_c.is_some_and(|t| t <= now) {
                slot.timer_c = None;
                match (&mut slot.client, &mut self.fork) {
                    // §9.1: no final response 64*T1 after our CANCEL, or §16.8:
                    // Timer C before any provisional: as if a 408 arrived.
                    (Some(c), Some(f)) if slot.cancel.is_some() || !f.is_proceeding(i) => {
                        c.terminate();
                        f.on_timeout(i);
                    }
                    (_, Some(f)) => f.on_timer_c(i),
                    _ => {}
                }
            }
        }
        self.pump(now)
    }

    /// The earliest instant at which [`Self::handle_timeout`] has work.
    pub fn next_deadline(&self) -> Option<Instant> {
        if self.finished {
            return None;
        }
        let mut next = self.server.poll_timeout();
        let mut consider = |t: Option<Instant>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n: Instant| n.min(t)));
            }
        };
        for slot in &self.branches {
            consider(slot.client.as_ref().and_then(|c| c.poll_timeout()));
            consider(slot.cancel.as_ref().and_then(|(_, c)| c.poll_timeout()));
            consider(slot.timer_c);
            consider(slot.no_answer);
        }
        next
    }

    /// Drains every state machine until none has more to say.
    fn pump(&mut self, now: Instant) -> Vec<Output> {
        let mut out = Vec::new();
        loop {
            let mut progressed = false;
            while let Some(action) = self.fork.as_mut().and_then(|f| f.poll_action()) {
                progressed = true;
                self.on_fork_action(action, now, &mut out);
            }
            for (i, slot) in self.branches.iter_mut().enumerate() {
                let Some(dest) = slot.dest.clone() else {
                    continue;
                };
                if let Some(c) = &mut slot.client {
                    for ev in drain_client(c, i, &dest, &mut out) {
                        progressed = true;
                        match (ev, self.fork.as_mut()) {
                            (ClientEvent::Timeout, Some(f)) => f.on_timeout(i),
                            (ClientEvent::TransportError, Some(f)) => {
                                f.on_local_failure(i, slot.send_failure)
                            }
                            (ClientEvent::Terminated, _) => {
                                if let Some(k) = slot.key.take() {
                                    out.push(Output::Unregister { key: k });
                                }
                            }
                            _ => {}
                        }
                    }
                }
                if let Some((key, c)) = &mut slot.cancel {
                    // A CANCEL's own outcome changes nothing: the INVITE's 487 does.
                    for ev in drain_client(c, i, &dest, &mut out) {
                        if matches!(ev, ClientEvent::Terminated) {
                            out.push(Output::Unregister { key: key.clone() });
                        }
                    }
                }
            }
            while let Some(data) = self.server.poll_transmit() {
                out.push(Output::Reply {
                    source: self.source,
                    data,
                });
            }
            while let Some(ev) = self.server.poll_event() {
                if matches!(ev, ServerEvent::Terminated) {
                    progressed = true;
                }
            }
            if !progressed {
                break;
            }
        }
        if !self.finished && self.is_done() {
            self.finish(now, &mut out);
            out.push(Output::Finished {
                key: self.key.clone(),
            });
        }
        out
    }

    fn is_done(&self) -> bool {
        !self.hook_running
            && self.hooks_waiting.is_empty()
            && self.server.is_terminated()
            && self.branches.iter().all(|s| {
                !s.resolving
                    && s.client.as_ref().is_none_or(|c| c.is_terminated())
                    && s.cancel.as_ref().is_none_or(|(_, c)| c.is_terminated())
            })
    }
}

pub(crate) use crate::proxy::reason::standard as reason_for;

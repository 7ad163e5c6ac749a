//! What an [`Endpoint`](super::Endpoint) asks its driver to do, and the
//! answers it takes back.
//!
//! Two queues: [`Transmit`]s are bytes to send (fire and forget, except
//! that a failed downstream send is reported with
//! [`Endpoint::on_send_failed`](super::Endpoint::on_send_failed)), and
//! [`Io`]s are work whose result the endpoint waits for, handed back with
//! [`Endpoint::on_io_done`](super::Endpoint::on_io_done) under the same
//! [`IoId`]. An `Io` whose transaction ended meanwhile is answered all the
//! same; the answer is dropped.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use switchyard_codec::SipMessage;

use super::auth::{AuthRole, AuthVerdict};
use crate::location::{Aor, Binding, RegisterError, StoreError};
use crate::net::{Destination, Source};
use crate::policy::{
    Origin, Policy, PolicyCtx, RegisterDecision, RegisterInfo, RequestDecision, RequestInfo,
};
use crate::proxy::fork::BranchId;
use crate::proxy::request::LocalAnswer;
use crate::proxy_tx::{HookDone, PendingHook};
use crate::registrar::RegisterUpdate;

/// Names one outstanding [`Io`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IoId(pub(super) u64);

/// Bytes to send.
#[derive(Debug)]
pub enum Transmit {
    /// A response, back over the flow its request came on. Over a
    /// connection that is gone, RFC 3261 §18.2.2: a new connection to the
    /// top Via's `received` (else host) and sent-by port, held to the
    /// egress allowlist.
    Reply { source: Source, data: Bytes },
    /// A request (or relayed response) downstream. When it cannot be sent
    /// and `failure` is set, report it with `on_send_failed`.
    Send {
        dest: Destination,
        data: Bytes,
        failure: Option<SendFailure>,
    },
}

/// Which branch a failed [`Transmit::Send`] was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendFailure {
    pub(super) tx: u64,
    pub(super) branch: BranchId,
}

/// Work the endpoint waits for.
#[derive(Debug)]
pub struct Io {
    pub id: IoId,
    pub kind: IoKind,
}

#[derive(Debug)]
pub enum IoKind {
    /// `[auth]`: check the request's digest credentials (nonce, the
    /// subscriber's HA1, the nonce-count ledger); build the challenge when
    /// they are missing or wrong. Answer with [`IoResult::Authenticated`].
    Authenticate(AuthRequest),
    /// The location store's bindings of `aor` unexpired `at` (the wall
    /// clock when the endpoint asked, so the answer it builds agrees with
    /// what was stored).
    /// Answer with [`IoResult::Bindings`].
    Lookup { aor: Aor, at: SystemTime },
    /// Apply a REGISTER to `aor` atomically (`LocationStore::register`).
    /// Answer with [`IoResult::Registered`].
    Register {
        aor: Aor,
        update: RegisterUpdate,
        at: SystemTime,
    },
    /// RFC 3263 resolution of a next hop URI, held to the egress
    /// allowlist; or, when `flow` is set, whether that flow of ours is
    /// still open (RFC 5626 §5.3: 430 when it is gone). Answer with
    /// [`IoResult::Resolved`].
    Resolve { hop: String, flow: Option<Source> },
    /// A policy's `on-register` or `on-request`: run it (outside any lock)
    /// and answer with [`IoResult::Policy`].
    Policy(PolicyCall),
    /// A policy hook after routing (`on-response`, `on-branch-failure`,
    /// `on-complete`): run it and answer with [`IoResult::Hook`].
    Hook(PendingHook),
}

/// A new request whose credentials to check for `realm`, in `role`.
#[derive(Debug)]
pub struct AuthRequest {
    pub request: Arc<SipMessage>,
    pub source: Source,
    pub role: AuthRole,
    pub realm: String,
}

/// What an [`IoKind`] came to.
#[derive(Debug)]
pub enum IoResult {
    Authenticated(AuthVerdict),
    Bindings(Result<Vec<Binding>, StoreError>),
    Registered(Result<Vec<Binding>, RegisterError>),
    Resolved(Result<Destination, LocalAnswer>),
    Policy(PolicyAnswer),
    /// `None` for `on-complete`, whose answer nobody waits for.
    Hook(Option<HookDone>),
}

/// A routing-time policy call, owned so it can run anywhere.
pub struct PolicyCall {
    pub(super) policy: Arc<dyn Policy>,
    pub(super) tenant: String,
    pub(super) ctx: PolicyCtx,
    pub(super) call: RoutingHook,
}

impl std::fmt::Debug for PolicyCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyCall")
            .field("tenant", &self.tenant)
            .field("call", &self.call)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
pub(super) enum RoutingHook {
    Register {
        origin: Origin,
        aor: String,
        contacts: Vec<String>,
        expires: Option<u32>,
        message: Arc<SipMessage>,
        source: Source,
    },
    Request {
        origin: Origin,
        request_uri: String,
        message: Arc<SipMessage>,
        source: Source,
        bindings: Vec<Binding>,
    },
}

/// A routing-time policy's decision and the ctx it left.
#[derive(Debug)]
pub struct PolicyAnswer {
    pub(super) ctx: PolicyCtx,
    pub(super) decision: Decision,
}

#[derive(Debug)]
pub(super) enum Decision {
    Register(RegisterDecision),
    Request(RequestDecision),
}

impl PolicyCall {
    /// Whether the policy bounds its own calls (a WebAssembly policy's
    /// deadline): such a call may run in place on a worker.
    pub fn is_bounded(&self) -> bool {
        self.policy.is_bounded()
    }

    /// Calls the policy.
    pub fn run(self) -> PolicyAnswer {
        let PolicyCall {
            policy,
            tenant,
            mut ctx,
            call,
        } = self;
        let decision = match call {
            RoutingHook::Register {
                origin,
                aor,
                contacts,
                expires,
                message,
                source,
            } => {
                let info = RegisterInfo {
                    tenant: &tenant,
                    origin: &origin,
                    aor: &aor,
                    contacts: contacts.iter().map(String::as_str).collect(),
                    expires,
                    message: message.as_bytes(),
                    source,
                };
                Decision::Register(policy.on_register(&info, &mut ctx))
            }
            RoutingHook::Request {
                origin,
                request_uri,
                message,
                source,
                bindings,
            } => {
                let method = message.method().map_or("", |m| m.as_str());
                let info = RequestInfo {
                    tenant: &tenant,
                    method,
                    origin: &origin,
                    request_uri: &request_uri,
                    message: message.as_bytes(),
                    source,
                    bindings: &bindings,
                };
                Decision::Request(policy.on_request(&info, &mut ctx))
            }
        };
        PolicyAnswer { ctx, decision }
    }
}

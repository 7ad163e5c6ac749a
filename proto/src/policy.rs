//! The hook phases and their decisions, as the proxy core sees them.
//!
//! These are the host-side mirror of `wit/policy.wit` (`switchyard:policy`):
//! the WebAssembly engine converts between the two, and a native Rust policy
//! (tests, embedders) implements [`Policy`] directly. Borrowed views go in,
//! owned decisions come out.

use std::sync::Arc;
use std::time::Duration;

use crate::location::Binding;
use crate::net::Source;
pub use crate::proxy::edit::HeaderEdit;
use crate::proxy::fork::Target;

/// Opaque per-transaction state a policy carries from hook to hook.
#[derive(Debug, Default, Clone)]
pub struct PolicyCtx {
    pub data: Vec<u8>,
}

/// A final response a policy asks the proxy to send (empty reason: the
/// standard phrase): the proxy's one local-answer type.
pub type Reply = crate::proxy::request::LocalAnswer;

/// Targets rung in parallel; groups of a relay are tried in order.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetGroup {
    pub targets: Vec<Target>,
    /// No-answer timeout of the group (None: Timer C only).
    pub timeout: Option<Duration>,
}

impl TargetGroup {
    pub fn parallel(targets: Vec<Target>) -> Self {
        TargetGroup {
            targets,
            timeout: None,
        }
    }

    /// Flattens groups into fork targets: group order becomes q order
    /// (first group highest), so RFC 3261 §16.6 serial forking applies.
    pub fn into_targets(groups: Vec<TargetGroup>) -> Vec<Target> {
        let mut out = Vec::new();
        for (i, group) in groups.into_iter().enumerate() {
            let q = 1000u16.saturating_sub(u16::try_from(i).unwrap_or(u16::MAX));
            for mut t in group.targets {
                t.q = q;
                t.timeout = group.timeout;
                out.push(t);
            }
        }
        out
    }
}

/// How a request was vouched for before its hooks ran (`[auth]`); the
/// WIT's `caller.current-origin`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// `[auth]` is off: nobody was asked.
    Unchecked,
    /// Neither authenticated nor trusted.
    Anonymous,
    /// From a source in `[auth] trusted`.
    Trusted,
    /// Proved the password of `user` in `realm`.
    Authenticated { user: String, realm: String },
}

/// What a policy sees of an initial request.
#[derive(Debug)]
pub struct RequestInfo<'a> {
    pub tenant: &'a str,
    pub method: &'a str,
    /// Who sent it, as far as the node knows.
    pub origin: &'a Origin,
    pub request_uri: &'a str,
    /// The whole message as received: policies read headers lazily from it.
    pub message: &'a [u8],
    pub source: Source,
    /// Current bindings of the Request-URI's AOR when it is in one of our
    /// domains (prefetched so the hook needs no asynchronous host call).
    pub bindings: &'a [Binding],
}

#[derive(Debug, Clone, PartialEq)]
pub enum RequestAction {
    /// Default routing (location lookup for our domains, else the Request-URI).
    Continue,
    /// Answer locally.
    Reply(Reply),
    /// Fork to these groups instead of the default target set.
    Relay(Vec<TargetGroup>),
    /// 302 with these contacts.
    Redirect(Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct RequestDecision {
    pub action: RequestAction,
    /// Applied to every forwarded copy.
    pub headers: Vec<HeaderEdit>,
    /// Rewrites the Request-URI before default routing (looked up again).
    pub request_uri: Option<String>,
}

impl From<RequestAction> for RequestDecision {
    fn from(action: RequestAction) -> Self {
        RequestDecision {
            action,
            headers: Vec::new(),
            request_uri: None,
        }
    }
}

impl RequestDecision {
    pub const CONTINUE: RequestDecision = RequestDecision {
        action: RequestAction::Continue,
        headers: Vec::new(),
        request_uri: None,
    };
}

#[derive(Debug)]
pub struct RegisterInfo<'a> {
    pub tenant: &'a str,
    /// Who sent it, as far as the node knows.
    pub origin: &'a Origin,
    pub aor: &'a str,
    /// Contact header values as received (`*` for remove-all).
    pub contacts: Vec<&'a str>,
    pub expires: Option<u32>,
    pub message: &'a [u8],
    pub source: Source,
}

/// Caps the registrar applies to one REGISTER.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RegisterLimits {
    /// Most bindings the AOR may hold afterwards (more: 403).
    pub max_contacts: Option<u32>,
    /// Larger expiry values are lowered to this.
    pub max_expires: Option<u32>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RegisterDecision {
    Allow,
    Reject(Reply),
    Limit(RegisterLimits),
}

#[derive(Debug)]
pub struct ResponseInfo<'a> {
    pub tenant: &'a str,
    pub status: u16,
    pub message: &'a [u8],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseAction {
    Pass,
    /// Drop a provisional response (finals are always handled).
    Drop,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ResponseDecision {
    pub action: ResponseAction,
    pub headers: Vec<HeaderEdit>,
}

impl ResponseDecision {
    pub const PASS: ResponseDecision = ResponseDecision {
        action: ResponseAction::Pass,
        headers: Vec::new(),
    };
    pub const DROP: ResponseDecision = ResponseDecision {
        action: ResponseAction::Drop,
        headers: Vec::new(),
    };
}

/// Why the last branches failed.
#[derive(Debug, Clone, Copy)]
pub enum FailureCause<'a> {
    /// The best final response received (RFC 3261 §16.7 step 6).
    Response(&'a [u8]),
    /// Every branch timed out (local 408).
    Timeout,
    /// Next hops unreachable (local 503).
    Unreachable,
}

#[derive(Debug)]
pub struct BranchFailure<'a> {
    pub tenant: &'a str,
    /// The original request as received.
    pub request: &'a [u8],
    /// Best final status received, or the local one (408 timeout, 503 transport).
    pub best_status: u16,
    pub cause: FailureCause<'a>,
    /// Request-URIs of the branches tried so far, in order.
    pub targets_tried: &'a [String],
}

#[derive(Debug, Clone, PartialEq)]
pub enum FailureDecision {
    /// Send the best response upstream (RFC 3261 §16.7 step 6).
    Fail,
    /// Serial failover: fork to these groups next.
    Relay(Vec<TargetGroup>),
    Reply(Reply),
}

#[derive(Debug)]
pub struct CompletionSummary<'a> {
    pub tenant: &'a str,
    pub method: &'a str,
    /// 0 when no final response was sent (abandoned non-INVITE, RFC 4320).
    pub final_status: u16,
    pub duration: Duration,
    pub targets_tried: &'a [String],
}

/// The hook phases. Implementations override what they need; every default
/// is the proxy's built-in behaviour.
pub trait Policy: Send + Sync + 'static {
    fn on_register(&self, _reg: &RegisterInfo<'_>, _ctx: &mut PolicyCtx) -> RegisterDecision {
        RegisterDecision::Allow
    }
    fn on_request(&self, _req: &RequestInfo<'_>, _ctx: &mut PolicyCtx) -> RequestDecision {
        RequestDecision::CONTINUE
    }
    fn on_response(&self, _resp: &ResponseInfo<'_>, _ctx: &mut PolicyCtx) -> ResponseDecision {
        ResponseDecision::PASS
    }
    fn on_branch_failure(&self, _f: &BranchFailure<'_>, _ctx: &mut PolicyCtx) -> FailureDecision {
        FailureDecision::Fail
    }
    fn on_complete(&self, _summary: &CompletionSummary<'_>, _ctx: &mut PolicyCtx) {}
    /// A call this policy routed was answered (its 2xx went upstream).
    fn on_dialog_start(&self, _call: &crate::dialog::CallRecord, _ctx: &mut PolicyCtx) {}
    /// A call this policy routed and that was answered has ended.
    fn on_dialog_end(&self, _call: &crate::dialog::CallRecord, _ctx: &mut PolicyCtx) {}

    /// True when the policy has the dialog hooks, so the node keeps its
    /// version and ctx with each call and calls them.
    fn wants_dialog_hooks(&self) -> bool {
        false
    }

    /// True when every hook keeps its default, so the proxy may skip
    /// calling them (a tenant without a policy).
    fn is_default(&self) -> bool {
        false
    }

    /// True when every hook call returns within a deadline the policy
    /// enforces itself (the WebAssembly engine's, 5 ms by default): the
    /// node then runs the hook in place on its worker thread. A policy
    /// without one (native Rust code) is run with `block_in_place`, so a
    /// slow hook cannot stall the tasks queued behind it on that worker.
    fn is_bounded(&self) -> bool {
        false
    }
}

/// The built-in behaviour: every hook keeps its default.
#[derive(Debug, Default)]
pub struct DefaultPolicy;

impl Policy for DefaultPolicy {
    fn is_default(&self) -> bool {
        true
    }
}

/// Maps a tenant to the policy that serves it. Called once per transaction:
/// the returned `Arc` is the transaction's snapshot for all of its hooks.
pub trait PolicyResolver: Send + Sync + 'static {
    fn policy_for(&self, tenant: &str) -> Arc<dyn Policy>;
}

/// Every tenant runs the same policy (the single-node default).
pub struct SinglePolicy(pub Arc<dyn Policy>);

impl PolicyResolver for SinglePolicy {
    fn policy_for(&self, _tenant: &str) -> Arc<dyn Policy> {
        self.0.clone()
    }
}

//! The policy hook interface: where routing decisions are made.
//!
//! One trait of phases, in the spirit of Pingora's `ProxyHttp`: every hook has
//! a default that is the built-in behaviour, one decision goes in and one comes
//! out, and a per-transaction [`PolicyCtx`] travels through all of them. The
//! WebAssembly engine (next issue) implements this same trait per tenant.
//!
//! Hooks, in call order for one transaction:
//!
//! | hook                | called                                                   | default                 |
//! |---------------------|----------------------------------------------------------|-------------------------|
//! | `on_register`       | REGISTER for one of our domains, before bindings are stored | [`RegisterDecision::Allow`] |
//! | `on_request`        | initial (out-of-dialog) request after §16.3 validation, before target selection | [`RequestDecision::Continue`] |
//! | `on_response`       | every response received on a branch, before forwarding   | [`ResponseDecision::Pass`] |
//! | `on_branch_failure` | all branches ended negatively and no targets remain      | [`FailureDecision::Fail`] |
//! | `on_complete`       | the transaction's final response was sent (may be shed)  | nothing                 |

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::location::Binding;
use crate::net::Transport;
use crate::proxy::fork::Target;

/// Opaque per-transaction state a policy carries from hook to hook.
#[derive(Debug, Default, Clone)]
pub struct PolicyCtx {
    pub data: Vec<u8>,
}

/// What a policy sees of an initial request.
#[derive(Debug)]
pub struct RequestInfo<'a> {
    pub tenant: &'a str,
    pub method: &'a str,
    pub request_uri: &'a str,
    /// The whole message as received: policies read headers lazily from it.
    pub message: &'a [u8],
    pub transport: Transport,
    pub source: SocketAddr,
    /// Current bindings of the Request-URI's AOR when it is in one of our
    /// domains (prefetched so the hook needs no asynchronous host call).
    pub bindings: &'a [Binding],
}

/// A header edit requested by a policy. Via, CSeq and Call-ID are refused.
#[derive(Debug, Clone, PartialEq)]
pub enum HeaderEdit {
    Add { name: String, value: String },
    Set { name: String, value: String },
    Remove { name: String },
}

#[derive(Debug, Clone, PartialEq)]
pub enum RequestDecision {
    /// Default routing (location lookup for our domains, else the Request-URI).
    Continue,
    /// Answer locally.
    Reply {
        code: u16,
        reason: String,
        headers: Vec<(String, String)>,
    },
    /// Fork to these targets instead of the default target set.
    Relay { targets: Vec<Target> },
    /// 302 with these contacts.
    Redirect { contacts: Vec<String> },
}

#[derive(Debug)]
pub struct RegisterInfo<'a> {
    pub tenant: &'a str,
    pub aor: &'a str,
    pub contacts: usize,
    pub expires: Option<u32>,
    pub source: SocketAddr,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RegisterDecision {
    Allow,
    Reject { code: u16, reason: String },
}

#[derive(Debug)]
pub struct ResponseInfo<'a> {
    pub tenant: &'a str,
    pub status: u16,
    pub message: &'a [u8],
}

#[derive(Debug, Clone, PartialEq)]
pub enum ResponseDecision {
    Pass,
    /// Drop a provisional response (finals are always forwarded).
    Drop,
}

#[derive(Debug)]
pub struct BranchFailure<'a> {
    pub tenant: &'a str,
    pub request_uri: &'a str,
    /// Best final status received, or the local one (408 timeout, 503 transport).
    pub best_status: u16,
    pub branches_tried: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub enum FailureDecision {
    /// Send the best response upstream (RFC 3261 §16.7 step 6).
    Fail,
    /// Serial failover: fork to these targets next.
    Relay {
        targets: Vec<Target>,
    },
    Reply {
        code: u16,
        reason: String,
    },
}

#[derive(Debug)]
pub struct CompletionSummary<'a> {
    pub tenant: &'a str,
    pub method: &'a str,
    pub final_status: u16,
    pub duration: Duration,
    pub branches_tried: usize,
}

/// The hook phases. Implementations override what they need.
pub trait Policy: Send + Sync + 'static {
    fn on_register(&self, _reg: &RegisterInfo<'_>, _ctx: &mut PolicyCtx) -> RegisterDecision {
        RegisterDecision::Allow
    }
    fn on_request(&self, _req: &RequestInfo<'_>, _ctx: &mut PolicyCtx) -> RequestDecision {
        RequestDecision::Continue
    }
    fn on_response(&self, _resp: &ResponseInfo<'_>, _ctx: &mut PolicyCtx) -> ResponseDecision {
        ResponseDecision::Pass
    }
    fn on_branch_failure(&self, _f: &BranchFailure<'_>, _ctx: &mut PolicyCtx) -> FailureDecision {
        FailureDecision::Fail
    }
    fn on_complete(&self, _summary: &CompletionSummary<'_>, _ctx: &mut PolicyCtx) {}
}

/// The built-in behaviour: every hook keeps its default.
#[derive(Debug, Default)]
pub struct DefaultPolicy;

impl Policy for DefaultPolicy {}

/// Maps a request's domain to its tenant and that tenant's policy.
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

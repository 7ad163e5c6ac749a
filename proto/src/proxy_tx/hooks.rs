//! The policy hooks a proxied request meets after routing (`on-response`,
//! `on-branch-failure`, `on-complete`), run **outside** the transaction's
//! lock: a hook may take up to its deadline, and meanwhile retransmissions,
//! CANCELs and timers of the same transaction must not wait for it.
//!
//! A step that needs a hook hands the node an [`Output::Hook`] with what
//! the hook reads (owned) and the transaction's policy ctx (taken, so the
//! transaction keeps no reference into the call). The node runs it with
//! [`PendingHook::run`] and feeds the result back with
//! [`ProxyTx::on_hook_done`], under the lock again. One hook runs at a time
//! per transaction, so each sees the ctx the previous one left: hooks asked
//! for meanwhile wait in order.

use std::sync::Arc;
use std::time::{Duration, Instant};

use switchyard_codec::SipMessage;
use tracing::debug;

use super::{Output, ProxyTx};
use crate::cluster::ContactRewrite;
use crate::edge::Edge;
use crate::policy::{
    BranchFailure, CompletionSummary, FailureCause, FailureDecision, HeaderEdit, Policy, PolicyCtx,
    ResponseAction, ResponseDecision, ResponseInfo, TargetGroup,
};
use crate::proxy::fork::BranchId;

/// What a hook is asked about.
#[derive(Debug)]
pub enum HookCall {
    /// A response passed up by a branch's client transaction.
    Response {
        branch: BranchId,
        status: u16,
        msg: SipMessage,
    },
    /// Every branch failed and no targets remain.
    BranchFailure {
        best_status: u16,
        best: Option<SipMessage>,
        request: Arc<SipMessage>,
        targets_tried: Vec<String>,
    },
    /// The transaction is over (fire and forget).
    Complete {
        method: String,
        final_status: u16,
        duration: Duration,
        targets_tried: Vec<String>,
    },
}

/// A hook to run outside the lock.
pub struct PendingHook {
    policy: Arc<dyn Policy>,
    tenant: String,
    ctx: PolicyCtx,
    call: HookCall,
}

impl std::fmt::Debug for PendingHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingHook")
            .field("tenant", &self.tenant)
            .field("call", &self.call)
            .finish_non_exhaustive()
    }
}

/// A hook's answer, for [`ProxyTx::on_hook_done`].
#[derive(Debug)]
pub struct HookDone {
    ctx: PolicyCtx,
    outcome: Outcome,
}

#[derive(Debug)]
enum Outcome {
    Response {
        branch: BranchId,
        status: u16,
        msg: SipMessage,
        decision: ResponseDecision,
    },
    BranchFailure(FailureDecision),
}

impl PendingHook {
    /// Whether the policy bounds its own calls ([`Policy::is_bounded`]).
    pub fn is_bounded(&self) -> bool {
        self.policy.is_bounded()
    }

    /// Calls the policy. `None` for `on-complete`, whose result is ignored.
    pub fn run(self) -> Option<HookDone> {
        let PendingHook {
            policy,
            tenant,
            mut ctx,
            call,
        } = self;
        let outcome = match call {
            HookCall::Response {
                branch,
                status,
                msg,
            } => {
                let info = ResponseInfo {
                    tenant: &tenant,
                    status,
                    message: msg.as_bytes(),
                };
                let decision = policy.on_response(&info, &mut ctx);
                Outcome::Response {
                    branch,
                    status,
                    msg,
                    decision,
                }
            }
            HookCall::BranchFailure {
                best_status,
                best,
                request,
                targets_tried,
            } => {
                let cause = match &best {
                    Some(msg) => FailureCause::Response(msg.as_bytes()),
                    None if best_status == 408 => FailureCause::Timeout,
                    None => FailureCause::Unreachable,
                };
                let failure = BranchFailure {
                    tenant: &tenant,
                    request: request.as_bytes(),
                    best_status,
                    cause,
                    targets_tried: &targets_tried,
                };
                Outcome::BranchFailure(policy.on_branch_failure(&failure, &mut ctx))
            }
            HookCall::Complete {
                method,
                final_status,
                duration,
                targets_tried,
            } => {
                let summary = CompletionSummary {
                    tenant: &tenant,
                    method: &method,
                    final_status,
                    duration,
                    targets_tried: &targets_tried,
                };
                policy.on_complete(&summary, &mut ctx);
                return None;
            }
        };
        Some(HookDone { ctx, outcome })
    }
}

impl ProxyTx {
    /// Asks for `call` to run: now if no hook of this transaction is
    /// running, else after the ones before it. Without a policy there is
    /// nothing to ask; callers check [`Self::has_policy`] first.
    pub(super) fn request_hook(&mut self, call: HookCall, out: &mut Vec<Output>) {
        let Some(policy) = self.policy.clone() else {
            return;
        };
        if self.hook_running {
            self.hooks_waiting.push_back(call);
            return;
        }
        self.hook_running = !matches!(call, HookCall::Complete { .. });
        out.push(Output::Hook(PendingHook {
            policy,
            tenant: self.tenant.clone(),
            ctx: std::mem::take(&mut self.pctx),
            call,
        }));
    }

    pub(super) fn has_policy(&self) -> bool {
        self.policy.is_some()
    }

    /// A hook's answer: the ctx it left, then what it decided, then the
    /// next waiting hook.
    pub fn on_hook_done(&mut self, done: HookDone, now: Instant) -> Vec<Output> {
        self.hook_running = false;
        self.pctx = done.ctx;
        let mut out = Vec::new();
        match done.outcome {
            Outcome::Response {
                branch,
                status,
                msg,
                decision,
            } => self.deliver_decided(branch, status, msg, Some(decision)),
            Outcome::BranchFailure(decision) => self.apply_failure_decision(decision),
        }
        if let Some(next) = self.hooks_waiting.pop_front() {
            self.request_hook(next, &mut out);
        }
        out.extend(self.pump(now));
        out
    }

    /// A branch's response on its way to the response context: the edge's
    /// Contact rewrite, then the policy's `on-response` (outside the lock)
    /// when there is a policy.
    pub(super) fn deliver(
        &mut self,
        branch: BranchId,
        status: u16,
        mut msg: SipMessage,
        edge: &Edge,
        out: &mut Vec<Output>,
    ) {
        // The edge's Contact rewrite of an answer from a UA on our flow.
        let rewrite = self.forwarding.as_ref().and_then(|f| {
            let mode = f.callee_rewrite?;
            (mode != ContactRewrite::Off).then_some((mode, f.token_expiry_secs))
        });
        if let (Some(flow), Some((mode, expires))) = (self.branches[branch].flow, rewrite)
            && let Some(edited) = edge.rewrite_response_contact(&msg, flow, mode, expires)
        {
            msg = edited;
        }
        if self.has_policy() {
            self.request_hook(
                HookCall::Response {
                    branch,
                    status,
                    msg,
                },
                out,
            );
        } else {
            self.deliver_decided(branch, status, msg, None);
        }
    }

    /// The response, as the policy decided, into the response context.
    fn deliver_decided(
        &mut self,
        branch: BranchId,
        status: u16,
        mut msg: SipMessage,
        decision: Option<ResponseDecision>,
    ) {
        let mut dropped = false;
        if let Some(decision) = decision {
            dropped = status < 200 && decision.action == ResponseAction::Drop;
            if !decision.headers.is_empty() {
                let mut e = msg.edit();
                HeaderEdit::apply_all(&decision.headers, &mut e);
                match SipMessage::parse(e.finish()) {
                    Ok(edited) => msg = edited,
                    Err(error) => debug!(%error, "policy response edits dropped"),
                }
            }
        }
        let Some(fork) = &mut self.fork else {
            return;
        };
        if dropped {
            // Not forwarded, but the branch is proceeding all the same.
            fork.note_provisional(branch);
        } else if status < 200 {
            fork.on_provisional(branch, status, msg);
        } else {
            fork.on_final(branch, status, msg);
        }
    }

    /// All branches failed: the policy may fail over to new targets (§16.7
    /// step 4 is ours to shape); without one, the best response goes up.
    pub(super) fn on_exhausted(&mut self, out: &mut Vec<Output>) {
        let has_policy = self.has_policy();
        let Some(fork) = &mut self.fork else { return };
        if !has_policy {
            fork.conclude();
            return;
        }
        let call = HookCall::BranchFailure {
            best_status: fork.best_status(),
            best: fork.best_response().cloned(),
            request: self.request.clone(),
            targets_tried: self.targets_tried.clone(),
        };
        self.request_hook(call, out);
    }

    fn apply_failure_decision(&mut self, decision: FailureDecision) {
        let Some(fork) = &mut self.fork else { return };
        match decision {
            FailureDecision::Fail => fork.conclude(),
            FailureDecision::Relay(groups) => fork.add_targets(TargetGroup::into_targets(groups)),
            FailureDecision::Reply(reply) => {
                let code = reply.code;
                self.policy_reply = Some(reply);
                fork.conclude_with(code);
            }
        }
    }

    /// `on-complete`, asked for when the transaction is over.
    pub(super) fn complete(&mut self, now: Instant, out: &mut Vec<Output>) {
        if !self.has_policy() {
            return;
        }
        let call = HookCall::Complete {
            method: self
                .request
                .method()
                .map_or(String::new(), |m| m.as_str().to_owned()),
            final_status: self.final_status.unwrap_or(0),
            duration: now.saturating_duration_since(self.started),
            targets_tried: std::mem::take(&mut self.targets_tried),
        };
        self.request_hook(call, out);
    }
}

//! A tenant's policy chain: an ordered list of policies run as one. Each
//! link may let the request go on to the next one or decide:
//!
//! | hook | a link that ... | the chain |
//! |---|---|---|
//! | `on-register` | rejects | rejects (later links are not asked); limits combine, the lowest wins |
//! | `on-request` | continues | asks the next link, which sees the Request-URI as rewritten so far; header edits add up |
//! | `on-request` | replies, relays or redirects | does that, with the edits of the links before it |
//! | `on-response` | drops | drops; header edits add up |
//! | `on-branch-failure` | relays or replies | does that; `fail` asks the next link |
//! | `on-complete` | | every link is told |
//!
//! So `rate-limit` then `hosted-pbx` refuses a flood before the dial plan
//! runs, and `hosted-pbx` then `lcr` lets the dial plan handle extensions
//! and hands everything else to least-cost routing.
//!
//! Each link keeps its own per-transaction context: the chain's
//! [`PolicyCtx`] carries one length-prefixed segment per link.

use std::sync::Arc;

use crate::{
    BranchFailure, CompletionSummary, FailureDecision, Policy, PolicyCtx, RegisterDecision,
    RegisterInfo, RegisterLimits, RequestAction, RequestDecision, RequestInfo, ResponseAction,
    ResponseDecision, ResponseInfo,
};

/// Policies run in order as one.
pub struct Chain {
    links: Vec<Arc<dyn Policy>>,
}

impl Chain {
    pub fn new(links: Vec<Arc<dyn Policy>>) -> Self {
        Chain { links }
    }

    /// Runs `f` on each link with its own context, in order, until it
    /// returns `Some`.
    fn each<T>(
        &self,
        ctx: &mut PolicyCtx,
        mut f: impl FnMut(&dyn Policy, &mut PolicyCtx) -> Option<T>,
    ) -> Option<T> {
        let mut segments = split(&ctx.data, self.links.len());
        let mut out = None;
        for (link, segment) in self.links.iter().zip(segments.iter_mut()) {
            let mut own = PolicyCtx {
                data: std::mem::take(segment),
            };
            let result = f(link.as_ref(), &mut own);
            *segment = own.data;
            if result.is_some() {
                out = result;
                break;
            }
        }
        ctx.data = join(&segments);
        out
    }
}

/// The link contexts out of the chain's (empty at the first hook).
fn split(data: &[u8], links: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::with_capacity(links);
    let mut rest = data;
    while out.len() < links {
        let Some((len, tail)) = rest.split_first_chunk::<4>() else {
            out.push(Vec::new());
            continue;
        };
        let len = (u32::from_le_bytes(*len) as usize).min(tail.len());
        out.push(tail[..len].to_vec());
        rest = &tail[len..];
    }
    out
}

fn join(segments: &[Vec<u8>]) -> Vec<u8> {
    if segments.iter().all(Vec::is_empty) {
        return Vec::new();
    }
    let mut out = Vec::with_capacity(segments.iter().map(|s| s.len() + 4).sum());
    for s in segments {
        out.extend_from_slice(&(s.len() as u32).to_le_bytes());
        out.extend_from_slice(s);
    }
    out
}

fn lower(a: Option<u32>, b: Option<u32>) -> Option<u32> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

impl Policy for Chain {
    fn on_register(&self, reg: &RegisterInfo<'_>, ctx: &mut PolicyCtx) -> RegisterDecision {
        let mut limits: Option<RegisterLimits> = None;
        let rejected = self.each(ctx, |link, own| match link.on_register(reg, own) {
            RegisterDecision::Reject(reply) => Some(reply),
            RegisterDecision::Limit(l) => {
                let mut merged = limits.unwrap_or_default();
                merged.max_contacts = lower(merged.max_contacts, l.max_contacts);
                merged.max_expires = lower(merged.max_expires, l.max_expires);
                limits = Some(merged);
                None
            }
            RegisterDecision::Allow => None,
        });
        match (rejected, limits) {
            (Some(reply), _) => RegisterDecision::Reject(reply),
            (None, Some(l)) => RegisterDecision::Limit(l),
            (None, None) => RegisterDecision::Allow,
        }
    }

    fn on_request(&self, req: &RequestInfo<'_>, ctx: &mut PolicyCtx) -> RequestDecision {
        let mut headers = Vec::new();
        let mut request_uri: Option<String> = None;
        let decided = self.each(ctx, |link, own| {
            let seen = RequestInfo {
                request_uri: request_uri.as_deref().unwrap_or(req.request_uri),
                ..*req
            };
            let decision = link.on_request(&seen, own);
            headers.extend(decision.headers);
            if decision.request_uri.is_some() {
                request_uri = decision.request_uri;
            }
            match decision.action {
                RequestAction::Continue => None,
                action => Some(action),
            }
        });
        RequestDecision {
            action: decided.unwrap_or(RequestAction::Continue),
            headers,
            request_uri,
        }
    }

    fn on_response(&self, resp: &ResponseInfo<'_>, ctx: &mut PolicyCtx) -> ResponseDecision {
        let mut headers = Vec::new();
        let dropped = self.each(ctx, |link, own| {
            let decision = link.on_response(resp, own);
            headers.extend(decision.headers);
            matches!(decision.action, ResponseAction::Drop).then_some(())
        });
        ResponseDecision {
            action: match dropped {
                Some(()) => ResponseAction::Drop,
                None => ResponseAction::Pass,
            },
            headers,
        }
    }

    fn on_branch_failure(&self, f: &BranchFailure<'_>, ctx: &mut PolicyCtx) -> FailureDecision {
        self.each(ctx, |link, own| match link.on_branch_failure(f, own) {
            FailureDecision::Fail => None,
            decided => Some(decided),
        })
        .unwrap_or(FailureDecision::Fail)
    }

    fn on_complete(&self, summary: &CompletionSummary<'_>, ctx: &mut PolicyCtx) {
        self.each(ctx, |link, own| {
            link.on_complete(summary, own);
            None::<()>
        });
    }

    fn on_dialog_start(&self, call: &switchyard_proto::dialog::CallRecord, ctx: &mut PolicyCtx) {
        self.each(ctx, |link, own| {
            if link.wants_dialog_hooks() {
                link.on_dialog_start(call, own);
            }
            None::<()>
        });
    }

    fn on_dialog_end(&self, call: &switchyard_proto::dialog::CallRecord, ctx: &mut PolicyCtx) {
        self.each(ctx, |link, own| {
            if link.wants_dialog_hooks() {
                link.on_dialog_end(call, own);
            }
            None::<()>
        });
    }

    /// Any link's: each link that wants them gets them, with its own ctx.
    fn wants_dialog_hooks(&self) -> bool {
        self.links.iter().any(|l| l.wants_dialog_hooks())
    }

    fn is_default(&self) -> bool {
        self.links.iter().all(|l| l.is_default())
    }

    fn is_bounded(&self) -> bool {
        self.links.iter().all(|l| l.is_bounded())
    }
}

#[cfg(test)]
#[path = "chain_tests.rs"]
mod tests;

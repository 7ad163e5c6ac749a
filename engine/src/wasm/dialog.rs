//! The dialog layer as policies see it (0.1.2): the `calls` import and the
//! records of the `dialog-hooks` export.

use switchyard_proto::dialog::{CallRecord, EndReason};

use super::bindings::{calls, dialog};
use super::host_api::HostState;

/// Calls in progress per tenant and user, across the cluster as this node
/// knows it: what the `calls` import reads. The node's dialog layer
/// implements it.
pub trait CallCounts: Send + Sync + 'static {
    fn tenant_calls(&self, tenant: &str) -> u32;
    /// `aor` as `user@domain`, lower case.
    fn user_calls(&self, tenant: &str, aor: &str) -> u32;
}

impl calls::Host for HostState {
    fn tenant_calls(&mut self) -> u32 {
        let Some((counts, _)) = self.call_counts() else {
            return 0;
        };
        counts.tenant_calls(&self.ctx.tenant)
    }

    fn user_calls(&mut self, aor: String) -> u32 {
        let Some((counts, location)) = self.call_counts() else {
            return 0;
        };
        let aor = aor
            .strip_prefix("sip:")
            .unwrap_or(&aor)
            .to_ascii_lowercase();
        let domain = aor.rsplit_once('@').map_or("", |(_, d)| d);
        // Only the policy's own tenant is visible.
        if location.tenants.load().tenant_of(domain) != &*self.ctx.tenant {
            return 0;
        }
        counts.user_calls(&self.ctx.tenant, &aor)
    }
}

impl HostState {
    fn call_counts(&self) -> Option<(&dyn CallCounts, &super::engine::PolicyLocation)> {
        let location = self.ctx.location.as_deref()?;
        Some((location.calls.as_deref()?, location))
    }
}

/// A call as the `dialog-hooks` export receives it.
pub(crate) fn wit_dialog(call: &CallRecord, ctx: &[u8]) -> dialog::Dialog {
    dialog::Dialog {
        id: call.id.clone(),
        tenant: call.tenant.clone(),
        call_id: call.call_id.clone(),
        caller: call.caller.clone(),
        callee: call.callee.clone(),
        start_ms: call.start_ms,
        answer_ms: call.answer_ms,
        end_ms: call.end_ms,
        duration_ms: call.duration_ms,
        status: call.status,
        end_reason: call.end_reason.map(|r| match r {
            EndReason::CallerBye => dialog::EndReason::CallerBye,
            EndReason::CalleeBye => dialog::EndReason::CalleeBye,
            EndReason::Cancelled => dialog::EndReason::Cancelled,
            EndReason::Failed => dialog::EndReason::Failed,
            EndReason::Limited => dialog::EndReason::Limited,
            EndReason::MaxDuration => dialog::EndReason::MaxDuration,
            EndReason::SessionExpired => dialog::EndReason::SessionExpired,
        }),
        session_expires: call.session_expires,
        ctx: ctx.to_vec(),
    }
}

#[cfg(test)]
#[path = "dialog_tests.rs"]
mod tests;

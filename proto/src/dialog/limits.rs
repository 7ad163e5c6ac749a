//! Concurrent-call limits: per tenant and per user, checked when an INVITE
//! is about to be forwarded.

use std::collections::HashMap;

/// One tenant's caps (0: no cap) and the status a call over them gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallLimits {
    /// Calls of the tenant at once, across the cluster.
    pub max_calls: u32,
    /// Calls one user (an AOR, as caller or callee) is in at once.
    pub max_calls_per_user: u32,
    /// Answer to a call over `max_calls` (default 503).
    pub tenant_status: u16,
    /// Answer to a call over `max_calls_per_user` (default 486 Busy Here).
    pub user_status: u16,
}

impl Default for CallLimits {
    fn default() -> Self {
        CallLimits {
            max_calls: 0,
            max_calls_per_user: 0,
            tenant_status: 503,
            user_status: 486,
        }
    }
}

/// Every tenant's limits: an entry per tenant that sets its own, the
/// node's default for the others.
#[derive(Debug, Clone, Default)]
pub struct LimitsTable {
    pub default: CallLimits,
    pub tenants: HashMap<String, CallLimits>,
}

impl LimitsTable {
    pub fn of(&self, tenant: &str) -> &CallLimits {
        self.tenants.get(tenant).unwrap_or(&self.default)
    }
}

/// A call refused by a limit: the response it gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitHit {
    pub status: u16,
    pub reason: &'static str,
    /// Which cap: `"tenant"` or `"user"` (a metric label).
    pub scope: &'static str,
}

impl LimitHit {
    pub(super) fn tenant(limits: &CallLimits) -> LimitHit {
        LimitHit {
            status: limits.tenant_status,
            reason: "Too Many Calls",
            scope: "tenant",
        }
    }

    pub(super) fn user(limits: &CallLimits) -> LimitHit {
        let reason = if limits.user_status == 486 {
            "Busy Here"
        } else {
            "Too Many Calls"
        };
        LimitHit {
            status: limits.user_status,
            reason,
            scope: "user",
        }
    }
}

/// Whether the calls counted by `current` leave room for one more under
/// `cap` (0: no cap, and nothing is counted).
pub(super) fn room(cap: u32, current: impl FnOnce() -> i64) -> bool {
    cap == 0 || current() < i64::from(cap)
}

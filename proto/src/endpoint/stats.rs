//! The endpoint's event counters, shared by every shard of a node and read
//! by the host's metrics.

use std::sync::atomic::{AtomicU64, Ordering};

/// A monotonically increasing event counter.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Node-level counters (see docs/operations.md for their metric names).
#[derive(Debug, Default)]
pub struct Stats {
    pub requests_in: Counter,
    pub responses_in: Counter,
    pub retransmissions_absorbed: Counter,
    pub rejected: Counter,
    pub dropped_malformed: Counter,
    pub dropped_stray: Counter,
    pub egress_refused: Counter,
    /// 401/407 challenges sent.
    pub auth_challenged: Counter,
    /// Credentials that were present but wrong (or for another user).
    pub auth_failed: Counter,
    /// Attempts refused unexamined during a brute-force back-off.
    pub auth_throttled: Counter,
    /// New requests answered 503 because `limits.max_transactions` were live.
    pub overloaded: Counter,
    /// Completed transactions forgotten before Timer J because
    /// `limits.max_completed_transactions` were kept.
    pub completed_evicted: Counter,
    /// New dialog-forming requests answered 503 while the node drained.
    pub refused_draining: Counter,
    /// Initial requests from a stranger to a foreign domain (403).
    pub relay_refused: Counter,
    /// Targets left out by `limits.max_branches`.
    pub branches_capped: Counter,
    /// REGISTERs refused at `registrar.max_contacts`.
    pub contacts_capped: Counter,
    /// INVITEs refused by a tenant's concurrent-call limit.
    pub calls_limited_tenant: Counter,
    /// INVITEs refused by a user's concurrent-call limit.
    pub calls_limited_user: Counter,
}

//! [`KvSync`]: makes the policies' `kv` counters cluster-wide on a store
//! the nodes share ([`SharedCounters`], Cassandra's `shared_counters`).
//!
//! Every `[policy] kv_sync_ms` (1 s by default) each node, for each tenant
//! whose policy counts (`kv.incr`):
//! 1. publishes its live counter shares in the scope `kv/<tenant>` (at most
//!    [`MAX_SHARED_KEYS`], the largest first), with a TTL of the longest
//!    remaining key lifetime, capped at three intervals so a node that
//!    stops publishing stops counting soon after;
//! 2. reads the other nodes' sums of the scope into the tenant's
//!    [`TenantKv`], which `incr` and `get` add to this node's share.
//!
//! Policies never wait for it: `incr` reads memory only.
//!
//! **Consistency.** A fixed-window limit of N across K nodes admits up to
//! N plus what the other nodes admitted since this node last read their
//! shares: at most about one sync interval (plus a store round trip) of
//! the other nodes' traffic. With no sync at all (store down) every node
//! falls back to its own count plus the shares it read last.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use parking_lot::Mutex;
use switchyard_location::SharedCounters;

use super::PolicyEngine;
use super::kv::TenantKv;

/// Counters one node publishes per tenant at most.
pub const MAX_SHARED_KEYS: usize = 1000;

/// What one round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncRound {
    /// Tenants whose shares were published (or withdrawn).
    pub published: usize,
    /// Tenants whose other nodes' shares were read.
    pub read: usize,
    /// Store calls that failed.
    pub failed: usize,
}

/// The kv sync of one node. See the module docs.
pub struct KvSync {
    engine: PolicyEngine,
    counters: Arc<dyn SharedCounters>,
    node: String,
    every: Duration,
    /// Tenants with shares published, so an emptied one is withdrawn once.
    published: Mutex<HashSet<String>>,
    /// Whether the last round had a failure: an outage is logged once.
    failing: AtomicBool,
    /// Rounds completed: what tests await instead of sleeping.
    rounds: tokio::sync::watch::Sender<u64>,
}

impl KvSync {
    /// The sync of `engine`'s tenants as node `node`, every `every`.
    pub fn new(
        engine: PolicyEngine,
        counters: Arc<dyn SharedCounters>,
        node: &str,
        every: Duration,
    ) -> KvSync {
        KvSync {
            engine,
            counters,
            node: node.to_owned(),
            every: every.max(Duration::from_millis(1)),
            published: Mutex::new(HashSet::new()),
            failing: AtomicBool::new(false),
            rounds: tokio::sync::watch::Sender::new(0),
        }
    }

    /// The shared-counters scope of a tenant's kv.
    pub fn scope(tenant: &str) -> String {
        format!("kv/{tenant}")
    }

    /// Rounds completed so far.
    pub fn rounds(&self) -> tokio::sync::watch::Receiver<u64> {
        self.rounds.subscribe()
    }

    /// The TTL of a publish: the longest remaining key lifetime (None: a
    /// key that never expires), capped at three intervals.
    pub fn ttl(&self, longest: Option<Duration>) -> Duration {
        let cap = self.every * 3;
        longest
            .map_or(cap, |l| l.min(cap))
            .max(Duration::from_millis(1))
    }

    /// One round at `now` (the kv's clock) and `wall` (the store's).
    pub async fn round(&self, now: Instant, wall: SystemTime) -> SyncRound {
        let mut round = SyncRound::default();
        for (tenant, kv) in self.engine.kv_stores() {
            if kv.counts() {
                self.sync_tenant(&tenant, &kv, now, wall, &mut round).await;
            }
        }
        let failing = round.failed > 0;
        match (self.failing.swap(failing, Ordering::Relaxed), failing) {
            (false, true) => tracing::warn!(
                failed = round.failed,
                "kv sync: shared counters unavailable; counters are this node's plus the last shares read"
            ),
            (true, false) => tracing::info!("kv sync: shared counters available again"),
            _ => {}
        }
        self.rounds.send_modify(|n| *n += 1);
        round
    }

    async fn sync_tenant(
        &self,
        tenant: &str,
        kv: &TenantKv,
        now: Instant,
        wall: SystemTime,
        round: &mut SyncRound,
    ) {
        let scope = Self::scope(tenant);
        let shares = kv.counter_shares(now, MAX_SHARED_KEYS);
        let was_published = self.published.lock().contains(tenant);
        if !shares.is_empty() || was_published {
            let longest = shares
                .iter()
                .map(|s| s.remaining)
                .try_fold(Duration::ZERO, |max, r| r.map(|r| max.max(r)));
            let shares: Vec<_> = shares.into_iter().map(|s| s.share).collect();
            let ttl = self.ttl(longest);
            match self
                .counters
                .publish(&scope, &self.node, &shares, ttl, wall)
                .await
            {
                Ok(()) => {
                    round.published += 1;
                    let mut published = self.published.lock();
                    if shares.is_empty() {
                        published.remove(tenant);
                    } else {
                        published.insert(tenant.to_owned());
                    }
                }
                Err(error) => {
                    round.failed += 1;
                    tracing::debug!(tenant, %error, "kv sync: publishing failed");
                }
            }
        }
        match self.counters.others(&scope, &self.node, wall).await {
            Ok(others) => {
                kv.set_others(others);
                round.read += 1;
            }
            Err(error) => {
                round.failed += 1;
                tracing::debug!(tenant, %error, "kv sync: reading the other nodes failed");
            }
        }
    }

    /// Runs a round every interval for as long as the returned future runs
    /// (spawn it once per node).
    pub async fn run(self: Arc<Self>) {
        let mut every = tokio::time::interval(self.every);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            self.round(Instant::now(), SystemTime::now()).await;
        }
    }
}

#[cfg(test)]
#[path = "kv_sync_tests.rs"]
mod tests;

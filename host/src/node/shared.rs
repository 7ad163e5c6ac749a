//! What a node on a shared store (Cassandra) runs besides the store calls
//! themselves: the read cache a policy's `location.lookup` answers from,
//! with its refresh and prefetch tasks, and the kv sync that makes the
//! policies' `kv` counters cluster-wide.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tracing::info;

use crate::cassandra::CassandraStore;
use crate::config::Config;
use crate::location::{ReadCache, SharedCounters};
use crate::policy::tenants::Tenants;
use crate::policy::wasm::{KvSync, PolicyEngine};

/// The read cache in front of the Cassandra store (for a node that can run
/// policies: nothing else reads it), unless `[store.cassandra.cache]
/// max_age_ms = 0` turns it off.
pub(super) fn read_cache(
    config: &Config,
    cassandra: &Arc<CassandraStore>,
) -> Option<Arc<ReadCache>> {
    let settings = &config.store.cassandra.cache;
    settings
        .enabled()
        .then(|| Arc::new(ReadCache::new(cassandra.clone(), settings.clone())))
}

/// The background tasks of a node on a shared store: the cache's refresh
/// queue, its prefetch of the AORs of tenants running a policy, and the
/// kv sync (`[policy] kv_sync_ms`, when there is a policy engine).
pub(super) fn spawn(
    config: &Config,
    cache: Option<&Arc<ReadCache>>,
    cassandra: Option<&Arc<CassandraStore>>,
    tenants: Option<&Arc<Tenants>>,
) -> Vec<JoinHandle<()>> {
    let mut tasks = Vec::new();
    if let Some(cache) = cache {
        tasks.push(tokio::spawn(cache.clone().refresh_queued_forever()));
        if let Some(tenants) = tenants {
            let tenants = tenants.clone();
            let targets = move || tenants.prefetch_filters();
            tasks.push(tokio::spawn(cache.clone().prefetch_forever(targets)));
        }
        info!(
            max_age_ms = cache.config().max_age_ms,
            prefetch_interval_ms = cache.config().prefetch_interval_ms,
            "location read cache on: policies see bindings at most max_age_ms old"
        );
    }
    let engine = tenants.and_then(|t| t.engine());
    if let (Some(cassandra), Some(engine)) = (cassandra, engine)
        && config.policy.kv_sync_ms > 0
    {
        let every = Duration::from_millis(config.policy.kv_sync_ms);
        let counters: Arc<dyn SharedCounters> = cassandra.clone();
        let sync = KvSync::new(
            PolicyEngine::clone(engine),
            counters,
            &config.node_id,
            every,
        );
        tasks.push(tokio::spawn(Arc::new(sync).run()));
        info!(
            kv_sync_ms = config.policy.kv_sync_ms,
            "policy kv counters shared across the cluster"
        );
    }
    tasks
}

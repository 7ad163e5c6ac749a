//! The node's side of the dialog layer (`switchyard_proto::dialog`): what
//! the endpoints' call events turn into, and the cluster-wide counts.
//!
//! ```text
//! endpoint shards ─ CallEvent ─▶ bounded queue ─▶ writer task ─▶ dialog hooks (policy)
//!                                                            ├─▶ CDR file (JSON lines, rotated)
//!                                                            ├─▶ Cassandra `cdrs` table (a cluster)
//!                                                            └─▶ recent CDRs (GET /cdrs)
//! sync task, every [dialogs] sync_ms ─▶ Calls::expire (max duration, session timers)
//!                                   ├─▶ publish this node's counts  ─▶ SharedCounters (store)
//!                                   └─▶ read the other nodes' counts ◀┘
//! ```
//!
//! The queue is bounded: when the writer cannot keep up, events are
//! dropped and counted (`switchyard_cdr_dropped_total`), never queued
//! without limit. Call counts never wait on it.

mod cdr_file;
pub mod config;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use parking_lot::Mutex;
use switchyard_location::SharedCounters;
use switchyard_proto::dialog::{CallEvent, CallEventKind, Calls};

use crate::cassandra::CassandraStore;
use switchyard_proto::endpoint::{Counter, Now};
use switchyard_proto::policy::PolicyCtx;
use tokio::sync::mpsc;
use tracing::warn;

pub use self::cdr_file::CdrFile;
pub use self::config::{CdrConfig, DialogsConfig, TenantLimitsConfig};
pub use switchyard_proto::dialog::{CallRecord, EndReason};

/// Events waiting for the writer at most.
const QUEUE: usize = 65_536;
/// Events the writer handles before it flushes the file.
const BATCH: usize = 512;

/// The dialog layer's host side, one per node. See the module docs.
pub struct CallService {
    /// The table every endpoint shard shares.
    pub table: Arc<std::sync::Mutex<Calls>>,
    node_id: String,
    counters: Arc<dyn SharedCounters>,
    events: mpsc::Sender<CallEvent>,
    /// Events queued and not yet fully handled by the writer.
    pending: std::sync::atomic::AtomicUsize,
    recent: Mutex<Recent>,
    /// Tenants this node published shares for in the last round (so it
    /// withdraws them once they are at zero) and the tenants it reads.
    sync: Mutex<SyncState>,
    pub stats: CallStats,
}

#[derive(Debug, Default)]
pub struct CallStats {
    pub cdrs_written: Counter,
    pub cdr_errors: Counter,
    pub cdr_dropped: Counter,
    pub dialog_hooks: Counter,
    pub sync_errors: Counter,
}

#[derive(Default)]
struct Recent {
    next_seq: u64,
    cap: usize,
    records: VecDeque<(u64, CallRecord)>,
}

#[derive(Default)]
struct SyncState {
    published: BTreeSet<String>,
    /// Tenants of the configuration: their counts are read even while
    /// this node has none of their calls.
    configured: BTreeSet<String>,
}

impl CallService {
    /// The service and its writer task (spawn it; it ends when the
    /// service is dropped).
    pub fn new(
        node_id: &str,
        config: &DialogsConfig,
        configured_tenants: BTreeSet<String>,
        counters: Arc<dyn SharedCounters>,
        cassandra: Option<Arc<CassandraStore>>,
    ) -> std::io::Result<(Arc<CallService>, impl Future<Output = ()> + Send + 'static)> {
        let file = match &config.cdr.file {
            Some(path) => Some(CdrFile::open(
                path,
                config.cdr.rotate_bytes,
                config.cdr.keep,
            )?),
            None => None,
        };
        let (tx, rx) = mpsc::channel(QUEUE);
        let table = Calls::new(node_id, config.settings(), config.limits());
        let service = Arc::new(CallService {
            table: Arc::new(std::sync::Mutex::new(table)),
            node_id: node_id.to_owned(),
            counters,
            events: tx,
            pending: Default::default(),
            recent: Mutex::new(Recent {
                cap: config.cdr.recent,
                ..Recent::default()
            }),
            sync: Mutex::new(SyncState {
                configured: configured_tenants,
                ..SyncState::default()
            }),
            stats: CallStats::default(),
        });
        let sinks = Sinks {
            file,
            cassandra: cassandra
                .filter(|_| config.cdr.cassandra)
                .map(|store| (store, config.cdr.cassandra_ttl_days)),
        };
        let writer = write_events(Arc::downgrade(&service), rx, sinks);
        Ok((service, writer))
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Calls> {
        self.table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// New limits and lifetimes, and the configured tenants (a reload).
    pub fn reconfigure(&self, config: &DialogsConfig, configured_tenants: BTreeSet<String>) {
        self.table().reconfigure(config.settings(), config.limits());
        self.sync.lock().configured = configured_tenants;
    }

    /// Hands endpoint events to the writer (never waits). A start without
    /// dialog hooks to call has nothing to write: it is not queued.
    pub fn dispatch(&self, events: impl IntoIterator<Item = CallEvent>) {
        let work = events
            .into_iter()
            .filter(|e| e.kind == CallEventKind::Ended || e.policy.is_some());
        for event in work {
            self.pending.fetch_add(1, Ordering::Relaxed);
            if self.events.try_send(event).is_err() {
                self.pending.fetch_sub(1, Ordering::Relaxed);
                self.stats.cdr_dropped.inc();
            }
        }
    }

    /// At shutdown: waits (up to `limit`) until the writer has handled
    /// every queued event, so the last CDRs reach the file and the table,
    /// then withdraws this node's call counts from the store (the other
    /// nodes need not wait for their TTL).
    pub async fn finish(&self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while self.pending.load(Ordering::Relaxed) > 0 && tokio::time::Instant::now() < deadline {
            // The writer signals nothing: look again shortly.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let published: Vec<String> = std::mem::take(&mut self.sync.lock().published)
            .into_iter()
            .collect();
        for tenant in published {
            let withdrawn = self
                .counters
                .publish(
                    &scope(&tenant),
                    &self.node_id,
                    &[],
                    Duration::ZERO,
                    SystemTime::now(),
                )
                .await;
            if let Err(e) = withdrawn {
                warn!(tenant, error = %e, "cannot withdraw the call counts");
            }
        }
    }

    /// Calls tracked on this node (the drain waits for them).
    pub fn live(&self) -> usize {
        self.table().live()
    }

    /// Tenant → (this node's calls, the cluster's as last known).
    pub fn counts(&self) -> BTreeMap<String, (u32, i64)> {
        self.table().counts()
    }

    /// The calls of `tenant`, and of `aor` in it, across the cluster.
    pub fn active(&self, tenant: &str, aor: Option<&str>) -> i64 {
        let table = self.table();
        match aor {
            Some(aor) => table.user_calls(tenant, &aor.to_ascii_lowercase()),
            None => table.tenant_calls(tenant),
        }
    }

    /// CDRs written after `after` (a sequence number), oldest first, at
    /// most `limit`.
    pub fn cdrs(&self, after: Option<u64>, limit: usize) -> Vec<(u64, CallRecord)> {
        let recent = self.recent.lock();
        let newer: Vec<_> = recent
            .records
            .iter()
            .filter(|(seq, _)| after.is_none_or(|a| *seq > a))
            .cloned()
            .collect();
        let skip = if after.is_none() {
            newer.len().saturating_sub(limit)
        } else {
            0
        };
        newer.into_iter().skip(skip).take(limit).collect()
    }

    /// One round of the sync task: ends overdue calls, publishes this
    /// node's counts and reads the others'.
    pub async fn sync_once(&self, ttl: Duration) {
        let now = Now::new(Instant::now(), SystemTime::now());
        let (expired, tenants) = {
            let mut table = self.table();
            let expired = table.expire(now);
            let tenants: BTreeSet<String> = table.tenants().into_iter().collect();
            (expired, tenants)
        };
        self.dispatch(expired);
        let (withdraw, read) = {
            let mut sync = self.sync.lock();
            let withdraw: Vec<String> = sync.published.difference(&tenants).cloned().collect();
            let read: BTreeSet<String> = tenants
                .iter()
                .chain(&sync.configured)
                .chain(&sync.published)
                .cloned()
                .collect();
            sync.published = tenants.clone();
            (withdraw, read)
        };
        for tenant in tenants.iter().chain(&withdraw) {
            let shares = self.table().shares(tenant);
            let scope = scope(tenant);
            let published = self
                .counters
                .publish(&scope, &self.node_id, &shares, ttl, now.wall)
                .await;
            if let Err(e) = published {
                self.stats.sync_errors.inc();
                warn!(tenant, error = %e, "cannot publish the call counts");
            }
        }
        for tenant in read {
            match self
                .counters
                .others(&scope(&tenant), &self.node_id, now.wall)
                .await
            {
                Ok(others) => self.table().set_remote(&tenant, others),
                Err(e) => {
                    // Keep the last known shares: better stale than none.
                    self.stats.sync_errors.inc();
                    warn!(tenant, error = %e, "cannot read the other nodes' call counts");
                }
            }
        }
    }

    /// The sync task: [`Self::sync_once`] every `every` while the service
    /// lives. Shares live five rounds, so one late round loses nothing.
    pub async fn sync_periodically(me: std::sync::Weak<CallService>, every: Duration) {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let Some(service) = me.upgrade() else {
                return;
            };
            service.sync_once(every * 5).await;
        }
    }

    fn record(&self, record: CallRecord) {
        let mut recent = self.recent.lock();
        let seq = recent.next_seq;
        recent.next_seq += 1;
        if recent.records.len() >= recent.cap.max(1) {
            recent.records.pop_front();
        }
        recent.records.push_back((seq, record));
    }
}

/// What the policies' `calls` import reads.
impl crate::policy::wasm::CallCounts for CallService {
    fn tenant_calls(&self, tenant: &str) -> u32 {
        self.active(tenant, None).clamp(0, i64::from(u32::MAX)) as u32
    }

    fn user_calls(&self, tenant: &str, aor: &str) -> u32 {
        self.active(tenant, Some(aor)).clamp(0, i64::from(u32::MAX)) as u32
    }
}

/// The store scope of a tenant's call counts.
fn scope(tenant: &str) -> String {
    format!("calls/{tenant}")
}

/// Where CDRs go besides the recent list.
struct Sinks {
    file: Option<CdrFile>,
    /// The `cdrs` table and its TTL in days.
    cassandra: Option<(Arc<CassandraStore>, u32)>,
}

/// The writer task: dialog hooks, the CDR file, the Cassandra table, the
/// recent list. The file is flushed after each batch; the batch's table
/// writes go out together.
async fn write_events(
    service: std::sync::Weak<CallService>,
    mut rx: mpsc::Receiver<CallEvent>,
    mut sinks: Sinks,
) {
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let Some(service) = service.upgrade() else {
            return;
        };
        let handled = batch.len();
        let ended: Vec<CallRecord> = batch
            .drain(..)
            .filter_map(|event| handle(&service, event, sinks.file.as_mut()))
            .collect();
        if let Some(f) = sinks.file.as_mut()
            && let Err(e) = f.flush()
        {
            service.stats.cdr_errors.inc();
            warn!(error = %e, "cannot write the CDR file");
        }
        if let Some((store, ttl_days)) = &sinks.cassandra {
            let writes = ended.iter().map(|cdr| store.insert_cdr(cdr, *ttl_days));
            for result in futures_util::future::join_all(writes).await {
                match result {
                    Ok(()) => service.stats.cdrs_written.inc(),
                    Err(e) => {
                        service.stats.cdr_errors.inc();
                        warn!(error = %e, "cannot write a CDR to Cassandra");
                    }
                }
            }
        }
        for cdr in ended {
            service.record(cdr);
        }
        service.pending.fetch_sub(handled, Ordering::Relaxed);
    }
}

/// Runs the event's dialog hook and writes its CDR to the file; returns
/// the CDR of an ended call.
fn handle(
    service: &CallService,
    event: CallEvent,
    file: Option<&mut CdrFile>,
) -> Option<CallRecord> {
    let CallEvent {
        kind,
        record,
        policy,
    } = event;
    if let Some((policy, data)) = policy {
        let mut ctx = PolicyCtx { data };
        service.stats.dialog_hooks.inc();
        crate::node::core::run_bounded(policy.is_bounded(), || match kind {
            CallEventKind::Started => policy.on_dialog_start(&record, &mut ctx),
            CallEventKind::Ended => policy.on_dialog_end(&record, &mut ctx),
        });
    }
    if kind != CallEventKind::Ended {
        return None;
    }
    if let Some(file) = file {
        match file.write(&record) {
            Ok(()) => service.stats.cdrs_written.inc(),
            Err(e) => {
                service.stats.cdr_errors.inc();
                warn!(error = %e, call_id = record.call_id, "cannot write a CDR");
            }
        }
    }
    Some(record)
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_location::LocalCounters;

    /// A node that dies leaves its shares in the store; they expire with
    /// their TTL and its calls stop counting towards the limits.
    #[tokio::test]
    async fn a_dead_nodes_calls_stop_counting_when_its_shares_expire() {
        let counters = Arc::new(LocalCounters::default());
        let config = DialogsConfig::default();
        let tenants: BTreeSet<String> = ["acme".to_string()].into();
        let (a, _writer) = CallService::new("a", &config, tenants, counters.clone(), None).unwrap();
        // Node b published 3 calls of acme, then died (no more rounds).
        let ttl = Duration::from_millis(200);
        let shares = [
            ("calls".to_string(), 3),
            ("user:bob@acme.test".to_string(), 1),
        ];
        counters
            .publish("calls/acme", "b", &shares, ttl, SystemTime::now())
            .await
            .unwrap();
        a.sync_once(ttl).await;
        assert_eq!(a.active("acme", None), 3);
        assert_eq!(a.active("acme", Some("bob@acme.test")), 1);
        // The TTL is the store's clock: nothing to await but time.
        tokio::time::sleep(ttl + Duration::from_millis(50)).await;
        a.sync_once(ttl).await;
        assert_eq!(
            (
                a.active("acme", None),
                a.active("acme", Some("bob@acme.test"))
            ),
            (0, 0)
        );
    }
}

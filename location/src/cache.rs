//! [`ReadCache`]: a bounded read cache in front of a remote
//! [`LocationStore`], so that [`LocationStore::cached`] (a policy's
//! `location.lookup`, which must never wait for I/O) has something to
//! answer on a shared store such as Cassandra.
//!
//! **What fills it.** Every `lookup` and `register` through this node (the
//! call path, unchanged: it always asks the store); a *refresh* queued by
//! `cached` when it finds an entry missing or stale (bounded, deduplicated,
//! served by [`ReadCache::refresh_queued_forever`]); and a *prefetch* every
//! `prefetch_interval_ms` ([`ReadCache::prefetch_forever`]) that re-reads the
//! cached AORs of the tenants running a policy and, every
//! `prefetch_list_interval_ms`, lists those tenants' AORs in the store to
//! learn the ones registered through other nodes.
//!
//! **Staleness bound.** `cached` only answers from an entry read less than
//! `max_age_ms` ago (2 s by default), judged against its `now` argument: a
//! policy may miss a REGISTER made through another node for at most
//! `max_age_ms`, and never sees bindings older than that. A stale or missing
//! entry answers `None` (the policy sees no bindings) and is refreshed in
//! the background, so the next call sees it.
//!
//! **Ordering.** Each fill carries a ticket: a lookup takes it before its
//! read, a REGISTER after its commit. A read that started before a
//! REGISTER through this node finished never overwrites what the REGISTER
//! wrote.

#[path = "cache_entries.rs"]
mod entries;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use parking_lot::Mutex;
use serde::Deserialize;

use self::entries::{Entries, Entry, Filled};
use crate::{Aor, AorFilter, Binding, LocationStore, RegisterError, StoreError};
use switchyard_proto::registrar::{RegisterOutcome, RegisterUpdate};

/// Refreshes run this many store reads at a time.
const REFRESH_BATCH: usize = 16;

/// `[store.cassandra.cache]`: the read cache in front of a shared store.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReadCacheConfig {
    /// The staleness bound: `cached` answers only from reads younger than
    /// this, in ms. 0 turns the cache off (policies then see no bindings).
    pub max_age_ms: u64,
    /// AORs held at most; the least recently read is evicted first.
    pub max_entries: usize,
    /// Refreshes waiting at most; a miss beyond it is dropped (counted).
    pub refresh_queue: usize,
    /// How often the AORs of tenants running a policy are re-read, in ms.
    /// 0: no prefetch (only misses refresh).
    pub prefetch_interval_ms: u64,
    /// How often those tenants' AORs are listed in the store (a scan of its
    /// partition keys on Cassandra), in ms.
    pub prefetch_list_interval_ms: u64,
    /// AORs per tenant listed and re-read per prefetch round at most.
    pub prefetch_max_aors: usize,
}

impl Default for ReadCacheConfig {
    fn default() -> Self {
        ReadCacheConfig {
            max_age_ms: 2000,
            max_entries: 100_000,
            refresh_queue: 1024,
            prefetch_interval_ms: 1000,
            prefetch_list_interval_ms: 30_000,
            prefetch_max_aors: 1000,
        }
    }
}

impl ReadCacheConfig {
    /// Refuses settings that cannot work, naming the key (relative to the
    /// cache's table) to change.
    pub fn validate(&self) -> Result<(), String> {
        if !self.enabled() {
            return Ok(());
        }
        if self.max_entries == 0 {
            return Err("max_entries must be at least 1 (or max_age_ms = 0: no cache)".into());
        }
        if self.refresh_queue == 0 {
            return Err("refresh_queue must be at least 1".into());
        }
        if self.prefetch_interval_ms > 0 && self.prefetch_max_aors == 0 {
            return Err(
                "prefetch_max_aors must be at least 1 (or prefetch_interval_ms = 0)".into(),
            );
        }
        if self.prefetch_interval_ms > 0 && self.prefetch_list_interval_ms == 0 {
            return Err("prefetch_list_interval_ms must be at least 1".into());
        }
        Ok(())
    }

    /// Whether there is a cache at all.
    pub fn enabled(&self) -> bool {
        self.max_age_ms > 0
    }

    pub fn max_age(&self) -> Duration {
        Duration::from_millis(self.max_age_ms)
    }
}

/// What the cache did since the node started, for operators.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// AORs held now.
    pub entries: u64,
    /// `cached` answered from a fresh entry.
    pub hits: u64,
    /// `cached` found no entry.
    pub misses: u64,
    /// `cached` found an entry older than `max_age_ms`.
    pub stale: u64,
    /// Entries filled by a refresh or a prefetch read.
    pub refreshed: u64,
    /// Refreshes not queued because the queue was full.
    pub dropped: u64,
    /// Refresh or prefetch reads that failed.
    pub failed: u64,
    /// Entries evicted to stay within `max_entries`.
    pub evicted: u64,
}

#[derive(Debug, Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    stale: AtomicU64,
    refreshed: AtomicU64,
    dropped: AtomicU64,
    failed: AtomicU64,
    evicted: AtomicU64,
}

/// A [`LocationStore`] that remembers what it read (see the module docs).
pub struct ReadCache {
    inner: Arc<dyn LocationStore>,
    config: ReadCacheConfig,
    entries: Mutex<Entries>,
    tickets: AtomicU64,
    /// AORs waiting for a refresh (the queue, deduplicated by the set).
    queued: Mutex<HashSet<Aor>>,
    wake: tokio::sync::Notify,
    /// When the prefetch last listed the tenants' AORs.
    listed_at: Mutex<Option<SystemTime>>,
    counters: Counters,
    /// Bumped after every refresh and prefetch round: what tests await.
    rounds: tokio::sync::watch::Sender<u64>,
}

impl ReadCache {
    pub fn new(inner: Arc<dyn LocationStore>, config: ReadCacheConfig) -> ReadCache {
        ReadCache {
            inner,
            entries: Mutex::new(Entries::new(config.max_entries)),
            config,
            tickets: AtomicU64::new(0),
            queued: Mutex::new(HashSet::new()),
            wake: tokio::sync::Notify::new(),
            listed_at: Mutex::new(None),
            counters: Counters::default(),
            rounds: tokio::sync::watch::Sender::new(0),
        }
    }

    pub fn config(&self) -> &ReadCacheConfig {
        &self.config
    }

    pub fn stats(&self) -> CacheStats {
        let c = &self.counters;
        let load = |n: &AtomicU64| n.load(Ordering::Relaxed);
        CacheStats {
            entries: self.entries.lock().len() as u64,
            hits: load(&c.hits),
            misses: load(&c.misses),
            stale: load(&c.stale),
            refreshed: load(&c.refreshed),
            dropped: load(&c.dropped),
            failed: load(&c.failed),
            evicted: load(&c.evicted),
        }
    }

    /// Counts refresh batches and prefetch rounds completed; a test awaits
    /// a change instead of sleeping.
    pub fn rounds(&self) -> tokio::sync::watch::Receiver<u64> {
        self.rounds.subscribe()
    }

    /// AORs waiting for a refresh.
    pub fn queued(&self) -> usize {
        self.queued.lock().len()
    }

    fn ticket(&self) -> u64 {
        self.tickets.fetch_add(1, Ordering::Relaxed) + 1
    }

    fn fill(&self, aor: &Aor, bindings: Vec<Binding>, read_at: SystemTime, ticket: u64) {
        let entry = Entry {
            bindings,
            read_at,
            ticket,
        };
        if let Filled::Stored { evicted } = self.entries.lock().fill(aor, entry)
            && evicted > 0
        {
            self.counters
                .evicted
                .fetch_add(evicted as u64, Ordering::Relaxed);
        }
    }

    fn enqueue(&self, aor: &Aor) {
        let mut queued = self.queued.lock();
        if queued.contains(aor) {
            return;
        }
        if queued.len() >= self.config.refresh_queue {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        queued.insert(aor.clone());
        drop(queued);
        self.wake.notify_one();
    }

    /// Reads `aor` from the store and fills its entry (a refresh or a
    /// prefetch). Failures are counted and leave the entry as it was.
    async fn reread(&self, aor: &Aor, now: SystemTime) -> bool {
        let ticket = self.ticket();
        match self.inner.lookup(aor, now).await {
            Ok(bindings) => {
                self.fill(aor, bindings, now, ticket);
                self.counters.refreshed.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(error) => {
                self.counters.failed.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%aor, %error, "location cache refresh failed");
                false
            }
        }
    }

    /// Re-reads up to [`REFRESH_BATCH`] queued AORs, concurrently, and
    /// returns how many it took off the queue.
    pub async fn refresh_queued(self: &Arc<Self>, now: SystemTime) -> usize {
        let batch: Vec<Aor> = {
            let mut queued = self.queued.lock();
            let batch: Vec<Aor> = queued.iter().take(REFRESH_BATCH).cloned().collect();
            for aor in &batch {
                queued.remove(aor);
            }
            batch
        };
        self.reread_all(batch.clone(), now).await;
        if !batch.is_empty() {
            self.rounds.send_modify(|n| *n += 1);
        }
        batch.len()
    }

    async fn reread_all(self: &Arc<Self>, aors: Vec<Aor>, now: SystemTime) -> usize {
        let mut reads = tokio::task::JoinSet::new();
        let mut ok = 0;
        for chunk in aors.chunks(REFRESH_BATCH) {
            for aor in chunk {
                let (cache, aor) = (self.clone(), aor.clone());
                reads.spawn(async move { cache.reread(&aor, now).await });
            }
            while let Some(read) = reads.join_next().await {
                ok += usize::from(read.unwrap_or(false));
            }
        }
        ok
    }

    /// Serves the refresh queue for as long as the returned future runs
    /// (spawn it once per node).
    pub async fn refresh_queued_forever(self: Arc<Self>) {
        loop {
            self.wake.notified().await;
            while self.refresh_queued(SystemTime::now()).await > 0 {}
        }
    }

    /// One prefetch round at `now` for the tenants `targets` describe (one
    /// filter per tenant running a policy): lists their AORs in the store
    /// when `prefetch_list_interval_ms` has passed since the last listing,
    /// then re-reads those and the tenants' cached AORs, at most
    /// `prefetch_max_aors` per tenant. Returns the AORs read.
    pub async fn prefetch(self: &Arc<Self>, targets: &[AorFilter], now: SystemTime) -> usize {
        let list_every = Duration::from_millis(self.config.prefetch_list_interval_ms);
        let list = {
            let mut listed_at = self.listed_at.lock();
            let due = listed_at.is_none_or(|at| {
                now.duration_since(at)
                    .is_ok_and(|since| since >= list_every)
            });
            if due {
                *listed_at = Some(now);
            }
            due
        };
        let cap = self.config.prefetch_max_aors;
        let mut read = 0;
        for filter in targets {
            let mut aors = Vec::new();
            if list {
                match self.inner.list_aors(filter, now, cap).await {
                    Ok(listed) => aors = listed,
                    Err(error) => {
                        self.counters.failed.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(%error, "location cache: listing a tenant's AORs failed");
                    }
                }
            }
            let cached = self.entries.lock().matching(filter, cap);
            let mut seen: HashSet<Aor> = aors.iter().cloned().collect();
            for aor in cached {
                if aors.len() == cap {
                    break;
                }
                if seen.insert(aor.clone()) {
                    aors.push(aor);
                }
            }
            read += self.reread_all(aors, now).await;
        }
        self.rounds.send_modify(|n| *n += 1);
        read
    }

    /// Runs [`Self::prefetch`] every `prefetch_interval_ms` with the filters
    /// `targets` returns at each round (the tenants may change on reload).
    /// Returns at once when the prefetch is off.
    pub async fn prefetch_forever<F>(self: Arc<Self>, targets: F)
    where
        F: Fn() -> Vec<AorFilter> + Send + Sync + 'static,
    {
        if self.config.prefetch_interval_ms == 0 {
            return;
        }
        let mut every =
            tokio::time::interval(Duration::from_millis(self.config.prefetch_interval_ms));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            let targets = targets();
            if !targets.is_empty() {
                self.prefetch(&targets, SystemTime::now()).await;
            }
        }
    }
}

#[async_trait]
impl LocationStore for ReadCache {
    async fn register(
        &self,
        aor: &Aor,
        update: &RegisterUpdate,
        now: SystemTime,
    ) -> Result<RegisterOutcome, RegisterError> {
        let outcome = self.inner.register(aor, update, now).await?;
        // Taken after the commit: no read that started before it may
        // overwrite what it wrote.
        let ticket = self.ticket();
        self.fill(aor, outcome.bindings.clone(), now, ticket);
        Ok(outcome)
    }

    /// Always asks the store (the call path needs the truth), then keeps
    /// the answer.
    async fn lookup(&self, aor: &Aor, now: SystemTime) -> Result<Vec<Binding>, StoreError> {
        let ticket = self.ticket();
        let bindings = self.inner.lookup(aor, now).await?;
        self.fill(aor, bindings.clone(), now, ticket);
        Ok(bindings)
    }

    async fn purge_expired(&self, now: SystemTime) -> Result<usize, StoreError> {
        self.inner.purge_expired(now).await
    }

    async fn list_aors(
        &self,
        filter: &AorFilter,
        now: SystemTime,
        limit: usize,
    ) -> Result<Vec<Aor>, StoreError> {
        self.inner.list_aors(filter, now, limit).await
    }

    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    /// The entry's unexpired bindings when it is younger than `max_age_ms`;
    /// otherwise `None`, and the AOR is queued for a refresh.
    fn cached(&self, aor: &Aor, now: SystemTime) -> Option<Vec<Binding>> {
        let max_age = self.config.max_age();
        let entries = self.entries.lock();
        let counter = match entries.get(aor) {
            Some(entry) if entry.fresh(now, max_age) => {
                let live = entry
                    .bindings
                    .iter()
                    .filter(|b| !b.is_expired(now))
                    .cloned()
                    .collect();
                drop(entries);
                self.counters.hits.fetch_add(1, Ordering::Relaxed);
                return Some(live);
            }
            Some(_) => &self.counters.stale,
            None => &self.counters.misses,
        };
        drop(entries);
        counter.fetch_add(1, Ordering::Relaxed);
        self.enqueue(aor);
        None
    }

    fn expires_natively(&self) -> bool {
        self.inner.expires_natively()
    }
}

#[cfg(test)]
#[path = "cache_tests.rs"]
mod tests;

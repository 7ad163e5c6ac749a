//! The REGISTER algorithm over an in-memory stand-in for one table with a
//! conditional commit (not a CQL server: it implements [`Partitions`], the
//! two operations the algorithm needs, with TTL and compare-and-set). The
//! full conformance suite runs against it, and round trips are counted.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use parking_lot::Mutex;

use super::*;
use crate::rows::{binding_key_text, ttl_secs};
use switchyard_location::conformance::{contact, update};
use switchyard_location::{Aor, LocationStore};

#[derive(Default)]
struct Partition {
    /// The version cell. The stand-in keeps no wall clock, so cells never
    /// lapse here; readers filter expired bindings by `now` as the rules do.
    version: Option<i64>,
    rows: BTreeMap<String, Binding>,
}

#[derive(Default)]
struct MemPartitions {
    parts: Mutex<HashMap<String, Partition>>,
}

#[async_trait]
impl Partitions for MemPartitions {
    async fn read(&self, aor: &str) -> Result<AorRows, StoreError> {
        tokio::task::yield_now().await; // let concurrent registers interleave
        let parts = self.parts.lock();
        let Some(part) = parts.get(aor) else {
            return Ok(AorRows::default());
        };
        Ok(AorRows {
            version: part.version,
            bindings: part.rows.values().cloned().collect(),
        })
    }

    async fn commit(&self, aor: &str, commit: &Commit<'_>) -> Result<bool, StoreError> {
        tokio::task::yield_now().await;
        let mut parts = self.parts.lock();
        let part = parts.entry(aor.to_owned()).or_default();
        if part.version != commit.expected {
            return Ok(false);
        }
        let ttl = |secs: i32| commit.now + Duration::from_secs(secs as u64);
        assert!(commit.version_ttl >= 1);
        part.version = Some(commit.version);
        for binding in &commit.write {
            assert!(ttl(ttl_secs(binding.expires_at, commit.now)) >= binding.expires_at);
            part.rows
                .insert(binding_key_text(&binding.key()), (*binding).clone());
        }
        for key in commit.remove {
            part.rows.remove(&binding_key_text(key));
        }
        Ok(true)
    }
}

/// The algorithm wrapped as a store, for the conformance suite.
#[derive(Default)]
struct AlgorithmStore {
    partitions: MemPartitions,
    round_trips: AtomicU64,
}

#[async_trait]
impl LocationStore for AlgorithmStore {
    async fn register(
        &self,
        aor: &Aor,
        update: &RegisterUpdate,
        now: SystemTime,
    ) -> Result<RegisterOutcome, RegisterError> {
        register(
            &self.partitions,
            aor.as_str(),
            update,
            now,
            64,
            &self.round_trips,
        )
        .await
    }

    async fn lookup(&self, aor: &Aor, now: SystemTime) -> Result<Vec<Binding>, StoreError> {
        self.round_trips.fetch_add(1, Ordering::Relaxed);
        let mut rows = self.partitions.read(aor.as_str()).await?.bindings;
        rows.retain(|b| !b.is_expired(now)); // what the row TTL does
        Ok(rows)
    }

    async fn list_aors(
        &self,
        filter: &switchyard_location::AorFilter,
        now: SystemTime,
        limit: usize,
    ) -> Result<Vec<Aor>, StoreError> {
        let keys: Vec<String> = self.partitions.parts.lock().keys().cloned().collect();
        super::list_aors(self, keys, filter, now, limit).await
    }

    async fn purge_expired(&self, _now: SystemTime) -> Result<usize, StoreError> {
        Ok(0)
    }

    fn backend(&self) -> &'static str {
        "cassandra-algorithm"
    }

    fn expires_natively(&self) -> bool {
        true
    }
}

mod conformance {
    switchyard_location::location_store_conformance!(async { super::AlgorithmStore::default() });
}

fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

#[tokio::test]
async fn register_costs_two_round_trips_and_fetch_one() {
    let store = AlgorithmStore::default();
    let aor = Aor::parse("alice@sip.test").unwrap();
    store
        .register(&aor, &update("c1", 1, vec![contact("sip:a@h", 60)]), t0())
        .await
        .unwrap();
    assert_eq!(store.round_trips.load(Ordering::Relaxed), 2);
    // Refresh: still 2.
    store
        .register(&aor, &update("c1", 2, vec![contact("sip:a@h", 60)]), t0())
        .await
        .unwrap();
    assert_eq!(store.round_trips.load(Ordering::Relaxed), 4);
    // Out-of-order: rejected after the read, nothing written: 1.
    let stale = store
        .register(&aor, &update("c1", 2, vec![contact("sip:a@h", 60)]), t0())
        .await;
    assert!(matches!(stale, Err(RegisterError::Rejected(_))));
    assert_eq!(store.round_trips.load(Ordering::Relaxed), 5);
    // Fetch (no contacts): 1.
    let fetch = RegisterUpdate {
        contacts: switchyard_proto::registrar::ContactsUpdate::Fetch,
        ..update("c1", 3, vec![])
    };
    store.register(&aor, &fetch, t0()).await.unwrap();
    assert_eq!(store.round_trips.load(Ordering::Relaxed), 6);
    // Lookup: 1.
    assert_eq!(store.lookup(&aor, t0()).await.unwrap().len(), 1);
    assert_eq!(store.round_trips.load(Ordering::Relaxed), 7);
}

#[tokio::test]
async fn commits_are_conditional_on_the_version_read() {
    let parts = MemPartitions::default();
    let counter = AtomicU64::new(0);
    let first = register(
        &parts,
        "a",
        &update("c", 1, vec![contact("sip:a@h", 60)]),
        t0(),
        1,
        &counter,
    )
    .await
    .unwrap();
    assert_eq!(first.written.len(), 1);
    assert_eq!(parts.read("a").await.unwrap().version, Some(1));
    // A stale commit (expected version None) is refused.
    let binding = first.bindings[0].clone();
    let stale = Commit {
        expected: None,
        version: 1,
        version_ttl: 60,
        write: vec![&binding],
        remove: &[],
        now: t0(),
    };
    assert!(!parts.commit("a", &stale).await.unwrap());
}

/// A partition that always loses the race: the retry budget is honoured.
struct AlwaysContended(AtomicU64);

#[async_trait]
impl Partitions for AlwaysContended {
    async fn read(&self, _aor: &str) -> Result<AorRows, StoreError> {
        Ok(AorRows::default())
    }
    async fn commit(&self, _aor: &str, _commit: &Commit<'_>) -> Result<bool, StoreError> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(false)
    }
}

#[tokio::test]
async fn contention_gives_up_after_the_attempt_budget() {
    let parts = AlwaysContended(AtomicU64::new(0));
    let counter = AtomicU64::new(0);
    let result = register(
        &parts,
        "a",
        &update("c", 1, vec![contact("sip:a@h", 60)]),
        t0(),
        3,
        &counter,
    )
    .await;
    assert_eq!(
        result,
        Err(RegisterError::Store(StoreError::Contention {
            aor: "a".into()
        }))
    );
    assert_eq!(parts.0.load(Ordering::Relaxed), 3);
    assert_eq!(
        counter.load(Ordering::Relaxed),
        6,
        "2 round trips per attempt"
    );
}

#[tokio::test]
async fn removing_the_last_binding_deletes_its_row() {
    let store = Arc::new(AlgorithmStore::default());
    let aor = Aor::parse("bob@sip.test").unwrap();
    store
        .register(&aor, &update("c", 1, vec![contact("sip:b@h", 60)]), t0())
        .await
        .unwrap();
    let outcome = store
        .register(&aor, &update("c", 2, vec![contact("sip:b@h", 0)]), t0())
        .await
        .unwrap();
    assert_eq!(outcome.removed.len(), 1);
    assert!(store.lookup(&aor, t0()).await.unwrap().is_empty());
    assert_eq!(
        store.partitions.read(aor.as_str()).await.unwrap().version,
        Some(2)
    );
}

//! How a REGISTER commits, independent of the driver: read the AOR
//! partition, run [`registrar::apply`](switchyard_proto::registrar::apply), commit
//! conditionally on the version that was read.
//!
//! **Ordering mechanism: a lightweight transaction on a per-AOR version.**
//! The partition carries a static `version` column. A REGISTER reads the
//! partition (bindings + version `v`, 1 round trip at the read
//! consistency), applies the RFC 3261 §10.3 rules to what it read, then
//! sends ONE conditional batch (1 round trip from the client; a Paxos round
//! inside the cluster at the serial consistency):
//! `UPDATE … SET version = v+1 IF version = v` (or `IF version = null`),
//! plus `INSERT … USING TTL` for each written binding and `DELETE` for each
//! removed one. All rows are in one partition, so the batch is atomic and
//! isolated. If another REGISTER for the AOR committed in between, the
//! condition fails, nothing is written and we re-read and re-apply — so a
//! Call-ID/CSeq check is always made against the state it commits over,
//! and two concurrent REGISTERs never lose an update or reorder.
//!
//! Cost: 2 client round trips per REGISTER (1 when the rules change nothing,
//! e.g. a fetch or a rejected out-of-order request), plus 2 per retry under
//! contention on the same AOR (bounded by `max_commit_attempts`). Inside
//! the cluster the LWT costs 4 replica round trips (prepare/promise,
//! read, propose/accept, commit) — cross-DC when `serial_consistency =
//! SERIAL`. Client write timestamps derived from Call-ID/CSeq were rejected:
//! they order writes of one binding but cannot make the read-check-write of
//! §10.3 atomic (a stale CSeq check would pass against a replica that has
//! not seen the newer REGISTER yet), and they break across Call-IDs.
//!
//! The version cell's TTL is the longest remaining binding TTL, so an AOR
//! whose bindings all lapse leaves nothing behind.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use async_trait::async_trait;

use crate::rows::{AorRows, version_ttl_secs};
use switchyard_location::{
    Aor, AorFilter, Binding, BindingKey, LocationStore, RegisterError, StoreError,
};
use switchyard_proto::registrar::{RegisterOutcome, RegisterUpdate, apply};

/// One conditional commit of an AOR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit<'a> {
    /// The version read; `None` when the partition had none.
    pub expected: Option<i64>,
    /// The version to store.
    pub version: i64,
    /// TTL of the version cell in seconds.
    pub version_ttl: i32,
    /// Bindings to insert (each with `USING TTL` of its remaining time).
    pub write: Vec<&'a Binding>,
    /// Binding rows to delete.
    pub remove: &'a [BindingKey],
    /// The request's arrival time, from which TTLs are computed.
    pub now: SystemTime,
}

/// The two round trips a REGISTER is made of. Implemented over the driver by
/// [`CassandraStore`](crate::CassandraStore); each call is
/// exactly one request to the cluster.
#[async_trait]
pub trait Partitions: Send + Sync {
    /// Every row of the AOR's partition plus its version.
    async fn read(&self, aor: &str) -> Result<AorRows, StoreError>;
    /// Applies `commit` if the stored version still equals
    /// `commit.expected`; returns whether it was applied.
    async fn commit(&self, aor: &str, commit: &Commit<'_>) -> Result<bool, StoreError>;
}

/// The REGISTER algorithm (see the module docs). `round_trips` is
/// incremented once per request sent.
pub async fn register(
    partitions: &dyn Partitions,
    aor: &str,
    update: &RegisterUpdate,
    now: SystemTime,
    max_attempts: u32,
    round_trips: &AtomicU64,
) -> Result<RegisterOutcome, RegisterError> {
    for _ in 0..max_attempts.max(1) {
        round_trips.fetch_add(1, Ordering::Relaxed);
        let read = partitions.read(aor).await?;
        let outcome = apply(read.bindings, update, now)?;
        if outcome.written.is_empty() && outcome.removed.is_empty() {
            return Ok(outcome);
        }
        let write = outcome
            .bindings
            .iter()
            .filter(|b| outcome.written.iter().any(|key| b.has_key(key)))
            .collect();
        let commit = Commit {
            expected: read.version,
            version: read.version.unwrap_or(0).wrapping_add(1),
            version_ttl: version_ttl_secs(&outcome.bindings, now),
            write,
            remove: &outcome.removed,
            now,
        };
        round_trips.fetch_add(1, Ordering::Relaxed);
        if partitions.commit(aor, &commit).await? {
            return Ok(outcome);
        }
        tracing::debug!(aor, "concurrent REGISTER committed first; re-reading");
    }
    Err(StoreError::Contention {
        aor: aor.to_owned(),
    }
    .into())
}

#[cfg(test)]
#[path = "ordering_tests.rs"]
mod tests;

/// [`LocationStore::list_aors`] over a table's partition keys (`keys`, in
/// any order): the AORs matching `filter`, in order, each read until
/// `limit` of them hold a binding unexpired at `now`.
pub async fn list_aors(
    store: &dyn LocationStore,
    keys: impl IntoIterator<Item = String>,
    filter: &AorFilter,
    now: SystemTime,
    limit: usize,
) -> Result<Vec<Aor>, StoreError> {
    let mut matching: Vec<Aor> = keys
        .into_iter()
        .filter_map(|key| Aor::parse(&key).ok())
        .filter(|aor| filter.matches(aor))
        .collect();
    matching.sort_unstable();
    let mut live = Vec::new();
    for aor in matching {
        if live.len() == limit {
            break;
        }
        if !store.lookup(&aor, now).await?.is_empty() {
            live.push(aor);
        }
    }
    Ok(live)
}

//! The `shared_counters` table: [`SharedCounters`] for a cluster (policy
//! `kv` counters summed over the nodes, `kv/<tenant>` scopes).
//!
//! **Table.** Partition key `scope`, clustering keys `node` and `name`:
//! one partition per scope, so a publish is one single-partition batch and
//! a read one partition read.
//!
//! **Publish** = one unlogged batch in the scope's partition: a range
//! delete of this node's rows, then one insert per share `USING TTL` (the
//! TTL rounded up to whole seconds). Both carry explicit write timestamps,
//! the delete one microsecond before the inserts: with the single timestamp
//! a batch otherwise gives all its statements, the delete would shadow the
//! rows inserted with it (a tombstone wins a tie). The timestamps come from
//! `now`, kept strictly increasing per store, so two publishes in the same
//! microsecond still replace each other in order. Beyond
//! [`MAX_BATCH_SHARES`] shares the inserts continue in further batches
//! (Cassandra refuses batches over `batch_size_fail_threshold`, 50 KiB).
//!
//! **Others** = one SELECT of the partition, summed per name in the node
//! over every node but the caller. Liveness is Cassandra's TTL, on the
//! servers' clock: the `now` argument only stamps writes.
//!
//! **Tombstones.** Every publish leaves a range tombstone and every share
//! expires into one, so the table keeps them briefly: `gc_grace_seconds`
//! is 60. A share resurrected by a replica that missed a delete still
//! carries its TTL (seconds), so it cannot outlive its purpose;
//! LeveledCompactionStrategy with single-SSTable tombstone compactions
//! purges them promptly.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use scylla::client::session::Session;
use scylla::statement::Consistency;
use scylla::statement::batch::{Batch, BatchType};
use scylla::statement::prepared::PreparedStatement;
use scylla::value::CqlValue;

use super::store::{CassandraStore, store_error};
use switchyard_location::{Share, SharedCounters, StoreError};

/// The table name inside the keyspace.
pub const TABLE: &str = "shared_counters";

/// `gc_grace_seconds` of the table (see the module docs).
pub const GC_GRACE_SECONDS: u32 = 60;

/// Inserts per batch at most (≈ 100 bytes each with a 64-byte name).
pub const MAX_BATCH_SHARES: usize = 100;

/// Cassandra refuses TTLs above 20 years.
const MAX_TTL_SECS: u64 = 630_720_000;

/// `CREATE TABLE IF NOT EXISTS` for the shared counters.
pub fn table_cql(keyspace: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {keyspace}.{TABLE} (\n\
         \x20   scope text,\n\
         \x20   node text,\n\
         \x20   name text,\n\
         \x20   value bigint,\n\
         \x20   PRIMARY KEY ((scope), node, name)\n\
         ) WITH default_time_to_live = 0\n\
         \x20   AND gc_grace_seconds = {GC_GRACE_SECONDS}\n\
         \x20   AND compaction = {{'class': 'LeveledCompactionStrategy', \
         'unchecked_tombstone_compaction': 'true', 'tombstone_threshold': '0.2'}}"
    )
}

/// The statement texts of the counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterStatements {
    /// This node's rows of a scope: bound as `timestamp, scope, node`.
    pub delete_node: String,
    /// One share: bound as `scope, node, name, value, ttl, timestamp`.
    pub insert: String,
    /// Every node's shares of a scope: bound as `scope`.
    pub select: String,
}

impl CounterStatements {
    pub fn new(keyspace: &str) -> CounterStatements {
        let table = format!("{keyspace}.{TABLE}");
        CounterStatements {
            delete_node: format!(
                "DELETE FROM {table} USING TIMESTAMP ? WHERE scope = ? AND node = ?"
            ),
            insert: format!(
                "INSERT INTO {table} (scope, node, name, value) VALUES (?, ?, ?, ?) \
                 USING TTL ? AND TIMESTAMP ?"
            ),
            select: format!("SELECT node, name, value FROM {table} WHERE scope = ?"),
        }
    }
}

/// The TTL of a share in whole seconds (rounded up, at least 1).
pub fn ttl_secs(ttl: Duration) -> i32 {
    let secs = ttl
        .as_secs()
        .saturating_add(u64::from(ttl.subsec_nanos() > 0));
    secs.clamp(1, MAX_TTL_SECS) as i32
}

/// The write timestamp of a publish at `now` (µs since the epoch), strictly
/// above `last` by at least 2 so its delete (one below) still follows the
/// previous publish's inserts.
pub fn next_timestamp(now: SystemTime, last: i64) -> i64 {
    let micros = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
    micros.max(last.saturating_add(2))
}

/// The sum per name of every row not written by `node`.
pub fn sum_others(
    rows: impl IntoIterator<Item = (String, String, i64)>,
    node: &str,
) -> HashMap<String, i64> {
    let mut sums = HashMap::new();
    for (_, name, value) in rows.into_iter().filter(|(n, _, _)| n != node) {
        let sum: &mut i64 = sums.entry(name).or_insert(0);
        *sum = sum.saturating_add(value);
    }
    sums
}

/// The counter statements, prepared once at connect.
pub(super) struct Prepared {
    delete_node: PreparedStatement,
    insert: PreparedStatement,
    select: PreparedStatement,
    /// The last write timestamp used (see [`next_timestamp`]).
    last_timestamp: AtomicI64,
}

impl Prepared {
    pub(super) async fn new(
        session: &Session,
        keyspace: &str,
        write: Consistency,
        read_profile: scylla::client::execution_profile::ExecutionProfileHandle,
    ) -> Result<Prepared, StoreError> {
        let texts = CounterStatements::new(keyspace);
        let prepare = |cql: String| async move {
            session
                .prepare(cql)
                .await
                .map_err(|e| StoreError::Backend(e.to_string()))
        };
        let mut delete_node = prepare(texts.delete_node).await?;
        let mut insert = prepare(texts.insert).await?;
        // Explicit timestamps make a replayed write land where it did.
        for statement in [&mut delete_node, &mut insert] {
            statement.set_is_idempotent(true);
            statement.set_consistency(write);
        }
        let mut select = prepare(texts.select).await?;
        select.set_is_idempotent(true);
        select.set_execution_profile_handle(Some(read_profile));
        Ok(Prepared {
            delete_node,
            insert,
            select,
            last_timestamp: AtomicI64::new(0),
        })
    }

    fn timestamp(&self, now: SystemTime) -> i64 {
        let mut last = self.last_timestamp.load(Ordering::Relaxed);
        loop {
            let next = next_timestamp(now, last);
            match self.last_timestamp.compare_exchange_weak(
                last,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return next,
                Err(seen) => last = seen,
            }
        }
    }

    /// The batches of one publish: the first deletes the node's rows, and
    /// every batch inserts up to [`MAX_BATCH_SHARES`] shares.
    fn batches(
        &self,
        scope: &str,
        node: &str,
        shares: &[Share],
        ttl: Duration,
        now: SystemTime,
    ) -> Vec<(Batch, Vec<Vec<CqlValue>>)> {
        let at = self.timestamp(now);
        let ttl = CqlValue::Int(ttl_secs(ttl));
        let text = |s: &str| CqlValue::Text(s.to_owned());
        let new_batch = || {
            let mut batch = Batch::new(BatchType::Unlogged);
            batch.set_is_idempotent(true);
            batch.set_consistency(self.insert.get_consistency().unwrap_or_default());
            batch
        };
        let mut first = new_batch();
        first.append_statement(self.delete_node.clone());
        let mut batches = vec![(
            first,
            vec![vec![CqlValue::BigInt(at - 1), text(scope), text(node)]],
        )];
        for (i, chunk) in shares.chunks(MAX_BATCH_SHARES).enumerate() {
            if i > 0 {
                batches.push((new_batch(), Vec::new()));
            }
            let (batch, values) = batches.last_mut().expect("one batch at least");
            for (name, value) in chunk {
                batch.append_statement(self.insert.clone());
                values.push(vec![
                    text(scope),
                    text(node),
                    text(name),
                    CqlValue::BigInt(*value),
                    ttl.clone(),
                    CqlValue::BigInt(at),
                ]);
            }
        }
        batches
    }
}

#[async_trait]
impl SharedCounters for CassandraStore {
    async fn publish(
        &self,
        scope: &str,
        node: &str,
        shares: &[Share],
        ttl: Duration,
        now: SystemTime,
    ) -> Result<(), StoreError> {
        self.guarded(|| async {
            let c = self.connection().await?;
            for (batch, values) in c.counters.batches(scope, node, shares, ttl, now) {
                self.count_round_trip();
                c.session.batch(&batch, values).await.map_err(store_error)?;
            }
            Ok(())
        })
        .await
    }

    async fn others(
        &self,
        scope: &str,
        node: &str,
        _now: SystemTime,
    ) -> Result<HashMap<String, i64>, StoreError> {
        self.guarded(|| async {
            let c = self.connection().await?;
            self.count_round_trip();
            let result = c
                .session
                .execute_unpaged(&c.counters.select, (scope,))
                .await
                .map_err(store_error)?;
            let rows = result
                .into_rows_result()
                .map_err(|e| StoreError::Backend(e.to_string()))?;
            let rows = rows
                .rows::<(String, String, i64)>()
                .map_err(|e| StoreError::Backend(e.to_string()))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| StoreError::Backend(e.to_string()))?;
            Ok(sum_others(rows, node))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_exact() {
        assert_eq!(
            table_cql("ks"),
            "CREATE TABLE IF NOT EXISTS ks.shared_counters (
    scope text,
    node text,
    name text,
    value bigint,
    PRIMARY KEY ((scope), node, name)
) WITH default_time_to_live = 0
    AND gc_grace_seconds = 60
    AND compaction = {'class': 'LeveledCompactionStrategy', 'unchecked_tombstone_compaction': 'true', 'tombstone_threshold': '0.2'}"
        );
        let s = CounterStatements::new("ks");
        assert_eq!(
            s.delete_node,
            "DELETE FROM ks.shared_counters USING TIMESTAMP ? WHERE scope = ? AND node = ?"
        );
        assert_eq!(
            s.insert,
            "INSERT INTO ks.shared_counters (scope, node, name, value) VALUES (?, ?, ?, ?) \
             USING TTL ? AND TIMESTAMP ?"
        );
        assert_eq!(
            s.select,
            "SELECT node, name, value FROM ks.shared_counters WHERE scope = ?"
        );
    }

    #[test]
    fn ttls_round_up_to_whole_seconds() {
        assert_eq!(ttl_secs(Duration::ZERO), 1);
        assert_eq!(ttl_secs(Duration::from_millis(1)), 1);
        assert_eq!(ttl_secs(Duration::from_millis(3000)), 3);
        assert_eq!(ttl_secs(Duration::from_millis(3001)), 4);
        assert_eq!(ttl_secs(Duration::MAX), 630_720_000);
    }

    #[test]
    fn timestamps_follow_the_clock_and_never_repeat() {
        let now = UNIX_EPOCH + Duration::from_micros(1_000_000);
        assert_eq!(next_timestamp(now, 0), 1_000_000);
        // The same instant again, or a clock that stepped back: 2 above the
        // last, so this publish's delete (1 below) follows its inserts.
        assert_eq!(next_timestamp(now, 1_000_000), 1_000_002);
        assert_eq!(next_timestamp(now, 5_000_000), 5_000_002);
    }

    #[test]
    fn sums_leave_the_asking_node_out() {
        let row = |node: &str, name: &str, v| (node.to_owned(), name.to_owned(), v);
        let rows = [
            row("a", "x", 3),
            row("b", "x", 2),
            row("b", "y", -1),
            row("c", "x", 7),
            row("c", "y", i64::MAX),
        ];
        let sums = sum_others(rows.clone(), "c");
        assert_eq!(sums, [("x".into(), 5), ("y".into(), -1)].into());
        let sums = sum_others(rows, "a");
        assert_eq!(sums, [("x".into(), 9), ("y".into(), i64::MAX - 1)].into());
        let big = [row("a", "x", i64::MAX), row("b", "x", 1)];
        assert_eq!(sum_others(big, "c")["x"], i64::MAX, "saturating");
    }
}

//! The `cdrs` table: the cluster's call detail records, one row per call,
//! written by the node that owned it (`host/src/calls`).
//!
//! **Table.** Partition key `(tenant, day)` (the UTC day the call ended,
//! `YYYY-MM-DD`), clustering `end_ms DESC, id`: a tenant's calls of one day
//! in one partition, newest first, so "the last hundred calls of acme
//! today" is one partition read and a busy tenant's partitions stay
//! bounded by a day's calls. Rows are written once and never updated, all
//! with the same TTL (`[dialogs.cdr] cassandra_ttl_days`):
//! TimeWindowCompactionStrategy with one-day windows drops whole SSTables
//! once they expire.
//!
//! **Writes** are plain idempotent INSERTs (the id is unique), at the
//! configured write consistency; a failed write is counted and logged by
//! the caller, never retried into a call's path.

use scylla::client::session::Session;
use scylla::statement::Consistency;
use scylla::statement::prepared::PreparedStatement;

use super::store::{CassandraStore, store_error};
use switchyard_location::StoreError;
use switchyard_proto::dialog::CallRecord;

/// The table name inside the keyspace.
pub const TABLE: &str = "cdrs";

/// `CREATE TABLE IF NOT EXISTS` for the CDRs.
pub fn table_cql(keyspace: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {keyspace}.{TABLE} (\n\
         \x20   tenant text,\n\
         \x20   day text,\n\
         \x20   end_ms bigint,\n\
         \x20   id text,\n\
         \x20   call_id text,\n\
         \x20   caller text,\n\
         \x20   callee text,\n\
         \x20   start_ms bigint,\n\
         \x20   answer_ms bigint,\n\
         \x20   duration_ms bigint,\n\
         \x20   status int,\n\
         \x20   end_reason text,\n\
         \x20   session_expires int,\n\
         \x20   PRIMARY KEY ((tenant, day), end_ms, id)\n\
         ) WITH CLUSTERING ORDER BY (end_ms DESC, id ASC)\n\
         \x20   AND default_time_to_live = 0\n\
         \x20   AND compaction = {{'class': 'TimeWindowCompactionStrategy', \
         'compaction_window_unit': 'DAYS', 'compaction_window_size': '1'}}"
    )
}

/// The insert, bound as the columns in table order, then the TTL.
pub fn insert_cql(keyspace: &str) -> String {
    format!(
        "INSERT INTO {keyspace}.{TABLE} (tenant, day, end_ms, id, call_id, caller, callee, \
         start_ms, answer_ms, duration_ms, status, end_reason, session_expires) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) USING TTL ?"
    )
}

/// A tenant's CDRs of one day, newest first: bound as `tenant, day, limit`.
pub fn select_cql(keyspace: &str) -> String {
    format!(
        "SELECT id, call_id, duration_ms, end_reason FROM {keyspace}.{TABLE} \
         WHERE tenant = ? AND day = ? LIMIT ?"
    )
}

/// The UTC day (`YYYY-MM-DD`) of a Unix time in milliseconds.
pub fn day_of(unix_ms: u64) -> String {
    // Howard Hinnant's days-to-civil, for the proleptic Gregorian calendar.
    let days = (unix_ms / 86_400_000) as i64 + 719_468;
    let era = days.div_euclid(146_097);
    let doe = days.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// The insert, prepared once at connect.
pub(super) struct Prepared {
    insert: PreparedStatement,
    select: PreparedStatement,
}

impl Prepared {
    pub(super) async fn new(
        session: &Session,
        keyspace: &str,
        write: Consistency,
    ) -> Result<Prepared, StoreError> {
        let mut insert = session
            .prepare(insert_cql(keyspace))
            .await
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        insert.set_is_idempotent(true);
        insert.set_consistency(write);
        let mut select = session
            .prepare(select_cql(keyspace))
            .await
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        select.set_is_idempotent(true);
        Ok(Prepared { insert, select })
    }
}

impl CassandraStore {
    /// Writes one CDR, kept `ttl_days` days.
    pub async fn insert_cdr(&self, cdr: &CallRecord, ttl_days: u32) -> Result<(), StoreError> {
        let end_ms = cdr.end_ms.unwrap_or(cdr.start_ms);
        let ttl = (i64::from(ttl_days) * 86_400).clamp(1, 630_720_000) as i32;
        let as_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let values = (
            cdr.tenant.as_str(),
            day_of(end_ms),
            as_i64(end_ms),
            cdr.id.as_str(),
            cdr.call_id.as_str(),
            cdr.caller.as_str(),
            cdr.callee.as_str(),
            as_i64(cdr.start_ms),
            cdr.answer_ms.map(as_i64),
            as_i64(cdr.duration_ms),
            i32::from(cdr.status),
            cdr.end_reason.map(|r| r.as_str()),
            cdr.session_expires
                .map(|s| i32::try_from(s).unwrap_or(i32::MAX)),
            ttl,
        );
        self.guarded(|| async {
            let c = self.connection().await?;
            self.count_round_trip();
            c.session
                .execute_unpaged(&c.cdrs.insert, &values)
                .await
                .map_err(store_error)?;
            Ok(())
        })
        .await
    }
}

/// One row of [`CassandraStore::cdrs_of_day`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CdrRow {
    pub id: String,
    pub call_id: String,
    pub duration_ms: i64,
    pub end_reason: Option<String>,
}

impl CassandraStore {
    /// Up to `limit` of `tenant`'s CDRs of `day` (`YYYY-MM-DD`, UTC), newest first.
    pub async fn cdrs_of_day(
        &self,
        tenant: &str,
        day: &str,
        limit: i32,
    ) -> Result<Vec<CdrRow>, StoreError> {
        self.guarded(|| async {
            let c = self.connection().await?;
            self.count_round_trip();
            let result = c
                .session
                .execute_unpaged(&c.cdrs.select, (tenant, day, limit))
                .await
                .map_err(store_error)?;
            let rows = result
                .into_rows_result()
                .map_err(|e| StoreError::Backend(e.to_string()))?;
            let typed = rows
                .rows::<(String, String, i64, Option<String>)>()
                .map_err(|e| StoreError::Backend(e.to_string()))?;
            typed
                .map(|row| {
                    let (id, call_id, duration_ms, end_reason) =
                        row.map_err(|e| StoreError::Backend(e.to_string()))?;
                    Ok(CdrRow {
                        id,
                        call_id,
                        duration_ms,
                        end_reason,
                    })
                })
                .collect()
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_day_is_the_utc_calendar_day() {
        assert_eq!(day_of(0), "1970-01-01");
        assert_eq!(day_of(951_782_400_000), "2000-02-29");
        assert_eq!(day_of(1_796_601_599_999), "2026-12-06");
        assert_eq!(day_of(1_796_601_600_000), "2026-12-07");
    }

    #[test]
    fn texts_are_exact() {
        assert!(
            table_cql("ks").starts_with("CREATE TABLE IF NOT EXISTS ks.cdrs (\n    tenant text,")
        );
        assert!(table_cql("ks").contains(
            "PRIMARY KEY ((tenant, day), end_ms, id)\n) WITH CLUSTERING ORDER BY (end_ms DESC, id ASC)"
        ));
        let insert = insert_cql("ks");
        assert_eq!(insert.matches('?').count(), 14, "13 columns and the TTL");
        assert!(insert.ends_with("USING TTL ?"));
    }
}

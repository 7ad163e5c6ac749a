//! The `nonce_uses` table: the cluster's nonce-count replay ledger
//! ([`NonceLedger`]). One row per (nonce, nc) claimed, written by
//! `INSERT ... IF NOT EXISTS USING TTL` (a lightweight transaction), so of
//! two nodes claiming the same pair exactly one is told it was first.
//!
//! **Cost: one LWT per authenticated request** (four round trips between
//! the coordinator and the replicas, against one for a plain write). It
//! cannot be a plain write or a read-then-write: both nodes of a replay
//! race would read "absent" and accept. It is the price of refusing a
//! captured REGISTER or INVITE replayed at another node of the cluster
//! while its nonce lives (`auth.nonce_lifetime_secs`).
//!
//! **Consistency: LOCAL_SERIAL for the Paxos round, the configured
//! `write_consistency` (LOCAL_QUORUM by default) for its commit**, whatever
//! `serial_consistency` the bindings use. A claim then costs no cross-DC
//! round trip on every authenticated request; a replay sent to another
//! data centre is refused there once the row has replicated (normally
//! milliseconds; during a partition between the DCs, not until it heals or
//! the nonce expires). Nonces are bound to the client's address, so such a
//! replay must also come from the phone's own address.
//!
//! **Table.** Partition key `nonce`, clustering key `nc`: one partition per
//! challenge answered, so a phone's successive requests with one nonce
//! contend on one Paxos instance only with themselves. Rows are written
//! once and never updated or deleted, all with a TTL of at most the nonce
//! lifetime: TimeWindowCompactionStrategy with one-hour windows drops whole
//! SSTables once they have expired. `gc_grace_seconds` is the bindings'
//! (3 h), which Cassandra also keys its Paxos state lifetime to.

use async_trait::async_trait;
use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;
use scylla::statement::{Consistency, SerialConsistency};

use super::schema::GC_GRACE_SECONDS;
use super::store::{CassandraStore, lwt_applied, store_error};
use switchyard_auth::NonceLedger;
use switchyard_location::StoreError;

/// The table name inside the keyspace.
pub const TABLE: &str = "nonce_uses";

/// Cassandra refuses TTLs above 20 years.
const MAX_TTL_SECS: u64 = 630_720_000;

/// `CREATE TABLE IF NOT EXISTS` for the nonce ledger.
pub fn table_cql(keyspace: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {keyspace}.{TABLE} (\n\
         \x20   nonce text,\n\
         \x20   nc bigint,\n\
         \x20   PRIMARY KEY ((nonce), nc)\n\
         ) WITH default_time_to_live = 0\n\
         \x20   AND gc_grace_seconds = {GC_GRACE_SECONDS}\n\
         \x20   AND compaction = {{'class': 'TimeWindowCompactionStrategy', \
         'compaction_window_unit': 'HOURS', 'compaction_window_size': '1'}}"
    )
}

/// The claim, bound as `nonce, nc, ttl`.
pub fn claim_cql(keyspace: &str) -> String {
    format!("INSERT INTO {keyspace}.{TABLE} (nonce, nc) VALUES (?, ?) IF NOT EXISTS USING TTL ?")
}

/// The ledger's statement, prepared once at connect.
pub(super) struct Prepared {
    claim: PreparedStatement,
}

impl Prepared {
    pub(super) async fn new(
        session: &Session,
        keyspace: &str,
        commit: Consistency,
    ) -> Result<Prepared, StoreError> {
        let mut claim = session
            .prepare(claim_cql(keyspace))
            .await
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        // Not idempotent: a blind retry of an applied LWT reports "not
        // applied", which would turn the real phone away.
        claim.set_is_idempotent(false);
        claim.set_consistency(commit);
        claim.set_serial_consistency(Some(SerialConsistency::LocalSerial));
        Ok(Prepared { claim })
    }
}

#[async_trait]
impl NonceLedger for CassandraStore {
    async fn claim(&self, nonce: &str, nc: u32, ttl_secs: u64) -> Result<bool, StoreError> {
        let ttl = ttl_secs.clamp(1, MAX_TTL_SECS) as i32;
        self.guarded(|| async {
            let c = self.connection().await?;
            self.count_round_trip();
            let result = c
                .session
                .execute_unpaged(&c.nonces.claim, (nonce, i64::from(nc), ttl))
                .await
                .map_err(store_error)?;
            lwt_applied(result)
        })
        .await
    }

    fn backend(&self) -> &'static str {
        "cassandra"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_exact() {
        assert_eq!(
            table_cql("ks"),
            "CREATE TABLE IF NOT EXISTS ks.nonce_uses (
    nonce text,
    nc bigint,
    PRIMARY KEY ((nonce), nc)
) WITH default_time_to_live = 0
    AND gc_grace_seconds = 10800
    AND compaction = {'class': 'TimeWindowCompactionStrategy', 'compaction_window_unit': 'HOURS', 'compaction_window_size': '1'}"
        );
        assert_eq!(
            claim_cql("ks"),
            "INSERT INTO ks.nonce_uses (nonce, nc) VALUES (?, ?) IF NOT EXISTS USING TTL ?"
        );
    }
}

//! The CQL schema and statement texts, generated from the config (pure).
//!
//! Five tables: `subscribers` (digest credentials, `cassandra/subscribers.rs`),
//! `nonce_uses` (the nonce-count replay ledger, `cassandra/nonces.rs`),
//! `shared_counters` (counts the nodes add up, `cassandra/counters.rs`),
//! `cdrs` (call detail records, `cassandra/cdrs.rs`) and
//! `bindings`:
//! - partition key `aor`: the tenant-qualified [`Aor`](switchyard_location::Aor)
//!   string (`user@domain`; the domain is the tenant), so every operation on
//!   an AOR touches exactly one partition — one replica set, one round trip;
//! - clustering key `binding_key`: the binding identity
//!   ([`binding_key_text`](crate::rows::binding_key_text):
//!   `i:<instance>;reg-id=<n>` with RFC 5626 outbound, else
//!   `c:<normalised contact>`), so a refresh overwrites its row in place;
//! - a static column `version`: the per-AOR commit counter the REGISTER's
//!   lightweight transaction is conditioned on (see
//!   [`crate::ordering`] for the ordering mechanism);
//! - one column per [`Binding`](switchyard_location::Binding) field.
//!
//! There is no default TTL: every INSERT carries `USING TTL` = the binding's
//! remaining seconds, so Cassandra drops expired bindings itself and no
//! sweeper runs ([`LocationStore::expires_natively`](switchyard_location::LocationStore::expires_natively)).
//!
//! **Compaction: LeveledCompactionStrategy.** TimeWindowCompactionStrategy
//! is built for write-once time series with one TTL, where whole SSTables
//! expire together. Bindings are the opposite: every REGISTER *reads* the
//! partition first and then *overwrites* the same rows (refreshes every few
//! minutes), TTLs vary per UA (60 s to `max_expires`), and unregisters are
//! explicit DELETEs. Under TWCS a partition's live row, its overwritten
//! versions and its tombstones spread across many windows, every read
//! merges them all, and tombstones in old windows are never compacted with
//! the data they shadow. LCS keeps a partition in about one SSTable per
//! level (≈90 % of reads hit one SSTable), compacts overwritten versions
//! away continuously, and with `unchecked_tombstone_compaction` plus a
//! `tombstone_threshold` of 0.2 single-SSTable compactions purge expired
//! cells promptly. The data set is small (bindings × ~500 bytes), so LCS's
//! extra write amplification is cheap next to read latency on every call.
//!
//! **gc_grace_seconds = 10800 (3 h)** instead of the 10-day default.
//! Tombstones only have to outlive the window in which a replica that
//! missed a DELETE can still receive it: a deleted binding that resurrects
//! would anyway expire by its own TTL (at most `max_expires`, 2 h by
//! default), and 3 h matches the default `max_hint_window` so hinted
//! handoff always delivers deletions before their tombstones are purged.
//! It must stay comfortably above the longest binding TTL *and* above the
//! Paxos state lifetime the LWT relies on (Cassandra keys Paxos state TTL
//! to the table's gc_grace_seconds), so do not lower it to minutes.

use crate::config::CassandraConfig;

/// The table name inside the keyspace.
pub const TABLE: &str = "bindings";

/// `gc_grace_seconds` of the table (see the module docs).
pub const GC_GRACE_SECONDS: u32 = 10_800;

/// The binding columns in the order every statement binds and reads them.
pub const BINDING_COLUMNS: [&str; 15] = [
    "contact",
    "contact_key",
    "instance",
    "reg_id",
    "q",
    "path",
    "call_id",
    "cseq",
    "expires_at",
    "registered_at",
    "transport",
    "remote",
    "local",
    "node",
    "user_agent",
];

/// `CREATE KEYSPACE IF NOT EXISTS` with NetworkTopologyStrategy and the
/// configured per-DC factors. Without any, `replication_factor: 3` applies to
/// every DC (Cassandra ≥ 4.0 / ScyllaDB) — set factors explicitly in production.
pub fn keyspace_cql(config: &CassandraConfig) -> String {
    let factors = if config.replication.is_empty() {
        "'replication_factor': 3".to_owned()
    } else {
        config
            .replication
            .iter()
            .map(|(dc, factor)| format!("'{dc}': {factor}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "CREATE KEYSPACE IF NOT EXISTS {ks} WITH replication = \
         {{'class': 'NetworkTopologyStrategy', {factors}}} AND durable_writes = true",
        ks = config.keyspace
    )
}

/// `CREATE TABLE IF NOT EXISTS` for the bindings.
pub fn table_cql(keyspace: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {keyspace}.{TABLE} (\n\
         \x20   aor text,\n\
         \x20   binding_key text,\n\
         \x20   version bigint STATIC,\n\
         \x20   contact text,\n\
         \x20   contact_key text,\n\
         \x20   instance text,\n\
         \x20   reg_id bigint,\n\
         \x20   q int,\n\
         \x20   path list<text>,\n\
         \x20   call_id text,\n\
         \x20   cseq bigint,\n\
         \x20   expires_at timestamp,\n\
         \x20   registered_at timestamp,\n\
         \x20   transport text,\n\
         \x20   remote text,\n\
         \x20   local text,\n\
         \x20   node text,\n\
         \x20   user_agent text,\n\
         \x20   PRIMARY KEY ((aor), binding_key)\n\
         ) WITH CLUSTERING ORDER BY (binding_key ASC)\n\
         \x20   AND default_time_to_live = 0\n\
         \x20   AND gc_grace_seconds = {GC_GRACE_SECONDS}\n\
         \x20   AND compaction = {{'class': 'LeveledCompactionStrategy', \
         'unchecked_tombstone_compaction': 'true', 'tombstone_threshold': '0.2'}}"
    )
}

/// Everything `switchyard cassandra schema` prints, `;`-terminated.
pub fn schema_cql(config: &CassandraConfig) -> String {
    format!(
        "{};\n\n{};\n\n{};\n\n{};\n\n{};\n\n{};\n",
        keyspace_cql(config),
        table_cql(&config.keyspace),
        super::subscribers::table_cql(&config.keyspace),
        super::nonces::table_cql(&config.keyspace),
        super::counters::table_cql(&config.keyspace),
        super::cdrs::table_cql(&config.keyspace)
    )
}

/// The statement texts the store prepares once at connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statements {
    /// Every row of one AOR plus its static `version` (1 round trip).
    pub select: String,
    /// One binding row, bound as `aor, binding_key, BINDING_COLUMNS..., ttl`.
    pub insert: String,
    /// One binding row, bound as `aor, binding_key`.
    pub delete: String,
    /// The LWT guard of a commit when the AOR has a version: bound as
    /// `ttl, new_version, aor, expected_version`.
    pub bump_version: String,
    /// The LWT guard when the AOR has none yet: `ttl, new_version, aor`.
    pub init_version: String,
    /// Every AOR (partition key), paged: operators' listings only.
    pub aors: String,
}

impl Statements {
    pub fn new(keyspace: &str) -> Statements {
        let table = format!("{keyspace}.{TABLE}");
        let columns = BINDING_COLUMNS.join(", ");
        let marks = vec!["?"; BINDING_COLUMNS.len()].join(", ");
        Statements {
            select: format!("SELECT binding_key, version, {columns} FROM {table} WHERE aor = ?"),
            insert: format!(
                "INSERT INTO {table} (aor, binding_key, {columns}) VALUES (?, ?, {marks}) USING TTL ?"
            ),
            delete: format!("DELETE FROM {table} WHERE aor = ? AND binding_key = ?"),
            bump_version: format!(
                "UPDATE {table} USING TTL ? SET version = ? WHERE aor = ? IF version = ?"
            ),
            init_version: format!(
                "UPDATE {table} USING TTL ? SET version = ? WHERE aor = ? IF version = null"
            ),
            aors: format!("SELECT DISTINCT aor FROM {table}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyspace_uses_network_topology_with_each_dc() {
        let mut config = CassandraConfig::default();
        config.replication.insert("DC1".into(), 3);
        config.replication.insert("DC2".into(), 2);
        assert_eq!(
            keyspace_cql(&config),
            "CREATE KEYSPACE IF NOT EXISTS switchyard WITH replication = \
             {'class': 'NetworkTopologyStrategy', 'DC1': 3, 'DC2': 2} AND durable_writes = true"
        );
        config.replication.clear();
        assert!(
            keyspace_cql(&config).ends_with("'replication_factor': 3} AND durable_writes = true")
        );
    }

    #[test]
    fn table_text_is_exact() {
        let expected = "CREATE TABLE IF NOT EXISTS ks.bindings (
    aor text,
    binding_key text,
    version bigint STATIC,
    contact text,
    contact_key text,
    instance text,
    reg_id bigint,
    q int,
    path list<text>,
    call_id text,
    cseq bigint,
    expires_at timestamp,
    registered_at timestamp,
    transport text,
    remote text,
    local text,
    node text,
    user_agent text,
    PRIMARY KEY ((aor), binding_key)
) WITH CLUSTERING ORDER BY (binding_key ASC)
    AND default_time_to_live = 0
    AND gc_grace_seconds = 10800
    AND compaction = {'class': 'LeveledCompactionStrategy', 'unchecked_tombstone_compaction': 'true', 'tombstone_threshold': '0.2'}";
        assert_eq!(table_cql("ks"), expected);
    }

    #[test]
    fn every_binding_column_is_in_the_table() {
        let table = table_cql("ks");
        for column in BINDING_COLUMNS {
            assert!(table.contains(&format!("\n    {column} ")), "{column}");
        }
    }

    #[test]
    fn statements_are_exact() {
        let s = Statements::new("ks");
        assert_eq!(
            s.select,
            "SELECT binding_key, version, contact, contact_key, instance, reg_id, q, path, \
             call_id, cseq, expires_at, registered_at, transport, remote, local, node, \
             user_agent FROM ks.bindings WHERE aor = ?"
        );
        assert_eq!(
            s.insert,
            "INSERT INTO ks.bindings (aor, binding_key, contact, contact_key, instance, reg_id, \
             q, path, call_id, cseq, expires_at, registered_at, transport, remote, local, node, \
             user_agent) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
             USING TTL ?"
        );
        assert_eq!(s.insert.matches('?').count(), 2 + BINDING_COLUMNS.len() + 1);
        assert_eq!(s.aors, "SELECT DISTINCT aor FROM ks.bindings");
        assert_eq!(
            s.delete,
            "DELETE FROM ks.bindings WHERE aor = ? AND binding_key = ?"
        );
        assert_eq!(
            s.bump_version,
            "UPDATE ks.bindings USING TTL ? SET version = ? WHERE aor = ? IF version = ?"
        );
        assert_eq!(
            s.init_version,
            "UPDATE ks.bindings USING TTL ? SET version = ? WHERE aor = ? IF version = null"
        );
    }

    #[test]
    fn schema_output_has_every_statement_terminated() {
        let text = schema_cql(&CassandraConfig::default());
        assert!(text.starts_with("CREATE KEYSPACE IF NOT EXISTS switchyard"));
        assert!(text.contains(";\n\nCREATE TABLE IF NOT EXISTS switchyard.bindings ("));
        assert!(text.contains("'0.2'};\n\nCREATE TABLE IF NOT EXISTS switchyard.subscribers ("));
        assert!(text.contains("PRIMARY KEY ((realm), username)\n);\n\nCREATE TABLE IF NOT EXISTS switchyard.nonce_uses ("));
        assert!(text.contains(
            "'compaction_window_size': '1'};\n\nCREATE TABLE IF NOT EXISTS switchyard.shared_counters ("
        ));
        assert!(
            text.contains(
                "'tombstone_threshold': '0.2'};\n\nCREATE TABLE IF NOT EXISTS switchyard.cdrs ("
            ) && text
                .ends_with("'compaction_window_unit': 'DAYS', 'compaction_window_size': '1'};\n"),
            "{text}"
        );
    }
}

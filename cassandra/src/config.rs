//! `[store.cassandra]`: how to reach the cluster and how hard to try.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use crate::breaker::BreakerConfig;
use crate::tls::{TlsConfig, TlsError};

/// Settings of the Cassandra / ScyllaDB location backend.
///
/// ```toml
/// [store]
/// backend = "cassandra"
///
/// [store.cassandra]
/// contact_points = ["10.0.0.1:9042", "10.0.0.2:9042"]
/// local_dc = "DC1"
/// keyspace = "switchyard"
/// replication = { DC1 = 3, DC2 = 3 }
/// read_consistency = "LOCAL_QUORUM"
/// write_consistency = "LOCAL_QUORUM"
/// request_timeout_ms = 2000
/// create_schema = false
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct CassandraConfig {
    /// Nodes to discover the cluster from, as `host:port` (port 9042 for
    /// plain CQL). A few per DC is enough; the driver learns the rest.
    pub contact_points: Vec<String>,
    /// This node's data centre: the driver sends requests to its replicas
    /// first (DC-aware, token-aware load balancing) and `LOCAL_*`
    /// consistencies count acknowledgements there.
    pub local_dc: Option<String>,
    /// Keyspace holding the `bindings` table. Letters, digits and `_`, at
    /// most 48 characters (Cassandra's limit).
    pub keyspace: String,
    /// Replication factor per data centre for `NetworkTopologyStrategy`
    /// (`{ DC1 = 3, DC2 = 3 }`): every DC listed holds a full copy. Only used
    /// when the schema is created (`create_schema` or `switchyard cassandra
    /// schema`).
    pub replication: BTreeMap<String, u32>,
    /// Consistency of lookups and of the read half of a REGISTER.
    pub read_consistency: ConsistencyLevel,
    /// Consistency of binding writes (the commit half of a REGISTER).
    pub write_consistency: ConsistencyLevel,
    /// Serial consistency of the conditional (LWT) commit that orders
    /// REGISTERs for one AOR: `SERIAL` orders them across every DC (one
    /// cross-DC Paxos round), `LOCAL_SERIAL` only within the local DC
    /// (cheaper; safe when one AOR only ever registers through one DC).
    pub serial_consistency: SerialLevel,
    /// Upper bound of every store call (a REGISTER's read, commit and
    /// retries together, or a lookup), in milliseconds. Past it the call
    /// fails with [`StoreError::Timeout`](switchyard_location::StoreError) and
    /// the proxy answers 503 with Retry-After.
    pub request_timeout_ms: u64,
    /// Upper bound of one connection attempt (contact, cluster metadata,
    /// schema creation, preparing statements), in milliseconds. It runs in
    /// the background: calls waiting for it still give up at
    /// `request_timeout_ms`, and the next call after a failure retries.
    pub connect_timeout_ms: u64,
    /// How many times a REGISTER re-reads and retries when a concurrent
    /// REGISTER for the same AOR committed first (each attempt is 2 round
    /// trips). Exhausted → `StoreError::Contention` → 503 Retry-After: 1.
    pub max_commit_attempts: u32,
    /// Username for `PasswordAuthenticator`; both or neither with `password`.
    pub username: Option<String>,
    /// Password for `PasswordAuthenticator`.
    pub password: Option<String>,
    /// Create the keyspace and table (`IF NOT EXISTS`) when the store
    /// connects. Off by default: production schemas are applied by an
    /// operator (`switchyard cassandra schema --apply`).
    pub create_schema: bool,
    /// The circuit breaker in front of the cluster.
    pub breaker: BreakerConfig,
    /// TLS to the cluster (`[store.cassandra.tls]`), off by default.
    pub tls: TlsConfig,
    /// The node's read cache of bindings (`[store.cassandra.cache]`): what
    /// a policy's `location.lookup` answers from, within `max_age_ms`.
    pub cache: switchyard_location::ReadCacheConfig,
}

impl Default for CassandraConfig {
    fn default() -> Self {
        CassandraConfig {
            contact_points: vec!["127.0.0.1:9042".to_owned()],
            local_dc: None,
            keyspace: "switchyard".to_owned(),
            replication: BTreeMap::new(),
            read_consistency: ConsistencyLevel::LocalQuorum,
            write_consistency: ConsistencyLevel::LocalQuorum,
            serial_consistency: SerialLevel::Serial,
            request_timeout_ms: 2000,
            connect_timeout_ms: 10_000,
            max_commit_attempts: 4,
            username: None,
            password: None,
            create_schema: false,
            breaker: BreakerConfig::default(),
            tls: TlsConfig::default(),
            cache: switchyard_location::ReadCacheConfig::default(),
        }
    }
}

/// A `[store.cassandra]` section that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CassandraConfigError {
    #[error("cassandra.contact_points is empty")]
    NoContactPoints,
    #[error("cassandra keyspace {0:?} must be 1-48 letters, digits or '_'")]
    BadKeyspace(String),
    #[error("cassandra.request_timeout_ms and connect_timeout_ms must be > 0")]
    ZeroTimeout,
    #[error("cassandra.max_commit_attempts must be > 0")]
    ZeroAttempts,
    #[error("cassandra.username and cassandra.password go together")]
    HalfCredentials,
    #[error("cassandra replication factor for {0:?} must be > 0")]
    ZeroReplication(String),
    #[error("cassandra data centre name {0:?} may only hold letters, digits, '_', '-' and '.'")]
    BadDcName(String),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("cassandra.cache.{0}")]
    Cache(String),
}

impl CassandraConfig {
    /// The per-call deadline.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// The bound of one connection attempt.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }

    /// Refuses settings that would fail at runtime, so a typo fails at start.
    pub fn validate(&self) -> Result<(), CassandraConfigError> {
        if self.contact_points.is_empty() {
            return Err(CassandraConfigError::NoContactPoints);
        }
        if !valid_identifier(&self.keyspace) {
            return Err(CassandraConfigError::BadKeyspace(self.keyspace.clone()));
        }
        if self.request_timeout_ms == 0 || self.connect_timeout_ms == 0 {
            return Err(CassandraConfigError::ZeroTimeout);
        }
        if self.max_commit_attempts == 0 {
            return Err(CassandraConfigError::ZeroAttempts);
        }
        if self.username.is_some() != self.password.is_some() {
            return Err(CassandraConfigError::HalfCredentials);
        }
        self.tls.validate()?;
        self.cache.validate().map_err(CassandraConfigError::Cache)?;
        for (dc, factor) in &self.replication {
            if *factor == 0 {
                return Err(CassandraConfigError::ZeroReplication(dc.clone()));
            }
            let ok = !dc.is_empty()
                && dc
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
            if !ok {
                return Err(CassandraConfigError::BadDcName(dc.clone()));
            }
        }
        Ok(())
    }
}

/// A CQL identifier we can splice into statements unquoted.
pub fn valid_identifier(name: &str) -> bool {
    (1..=48).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Consistency levels a location backend sensibly uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ConsistencyLevel {
    /// One replica in the local DC: fastest, may read stale bindings.
    LocalOne,
    /// A majority of the local DC's replicas (default): survives one node
    /// down per DC at RF 3, never leaves the DC.
    LocalQuorum,
    /// A majority in every DC: global read-your-writes, cross-DC latency.
    EachQuorum,
    /// A majority of all replicas.
    Quorum,
    /// Any one replica.
    One,
}

impl ConsistencyLevel {
    pub fn to_driver(self) -> scylla::statement::Consistency {
        use scylla::statement::Consistency;
        match self {
            ConsistencyLevel::LocalOne => Consistency::LocalOne,
            ConsistencyLevel::LocalQuorum => Consistency::LocalQuorum,
            ConsistencyLevel::EachQuorum => Consistency::EachQuorum,
            ConsistencyLevel::Quorum => Consistency::Quorum,
            ConsistencyLevel::One => Consistency::One,
        }
    }
}

/// Serial consistency of the LWT commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SerialLevel {
    Serial,
    LocalSerial,
}

impl SerialLevel {
    pub fn to_driver(self) -> scylla::statement::SerialConsistency {
        use scylla::statement::SerialConsistency;
        match self {
            SerialLevel::Serial => SerialConsistency::Serial,
            SerialLevel::LocalSerial => SerialConsistency::LocalSerial,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_local_quorum_two_seconds() {
        let config = CassandraConfig::default();
        assert_eq!(config.keyspace, "switchyard");
        assert_eq!(config.read_consistency, ConsistencyLevel::LocalQuorum);
        assert_eq!(config.write_consistency, ConsistencyLevel::LocalQuorum);
        assert_eq!(config.request_timeout(), Duration::from_secs(2));
        assert_eq!(config.connect_timeout(), Duration::from_secs(10));
        assert!(!config.create_schema);
        config.validate().expect("defaults are valid");
    }

    #[test]
    fn parses_a_full_section() {
        let config: CassandraConfig = toml::from_str(
            r#"
            contact_points = ["10.0.0.1:9042", "10.0.0.2:9042"]
            local_dc = "DC1"
            keyspace = "sy_prod"
            replication = { DC1 = 3, DC2 = 2 }
            read_consistency = "LOCAL_ONE"
            write_consistency = "EACH_QUORUM"
            serial_consistency = "LOCAL_SERIAL"
            request_timeout_ms = 500
            username = "u"
            password = "p"
            create_schema = true
            [tls]
            enabled = true
            ca_file = "/etc/switchyard/cassandra-ca.pem"
            [breaker]
            failure_threshold = 3
            cool_down_ms = 1000
            [cache]
            max_age_ms = 500
            prefetch_interval_ms = 250
            "#,
        )
        .expect("parses");
        assert_eq!(config.contact_points.len(), 2);
        assert_eq!(config.replication["DC2"], 2);
        assert_eq!(
            config.read_consistency.to_driver(),
            scylla::statement::Consistency::LocalOne
        );
        assert_eq!(
            config.write_consistency.to_driver(),
            scylla::statement::Consistency::EachQuorum
        );
        assert_eq!(config.serial_consistency, SerialLevel::LocalSerial);
        assert_eq!(config.breaker.failure_threshold, 3);
        assert!(config.tls.enabled);
        assert_eq!(config.cache.max_age_ms, 500);
        assert_eq!(config.cache.prefetch_interval_ms, 250);
        assert_eq!(config.cache.max_entries, 100_000, "the rest defaults");
        config.validate().expect("valid");
    }

    #[test]
    fn rejects_unknown_keys_and_bad_values() {
        assert!(toml::from_str::<CassandraConfig>("contact_point = []").is_err());
        assert!(toml::from_str::<CassandraConfig>("read_consistency = \"ALL\"").is_err());
        let bad = |f: fn(&mut CassandraConfig)| {
            let mut config = CassandraConfig::default();
            f(&mut config);
            config.validate()
        };
        assert_eq!(
            bad(|c| c.contact_points.clear()),
            Err(CassandraConfigError::NoContactPoints)
        );
        assert!(matches!(
            bad(|c| c.keyspace = "a-b".into()),
            Err(CassandraConfigError::BadKeyspace(_))
        ));
        assert!(matches!(
            bad(|c| c.keyspace = "k".repeat(49)),
            Err(CassandraConfigError::BadKeyspace(_))
        ));
        assert_eq!(
            bad(|c| c.request_timeout_ms = 0),
            Err(CassandraConfigError::ZeroTimeout)
        );
        assert_eq!(
            bad(|c| c.username = Some("u".into())),
            Err(CassandraConfigError::HalfCredentials)
        );
        assert!(
            bad(|c| {
                c.replication.insert("DC1".into(), 0);
            })
            .is_err()
        );
        assert!(
            bad(|c| {
                c.replication.insert("DC'1".into(), 3);
            })
            .is_err()
        );
        let error = bad(|c| c.cache.max_entries = 0).unwrap_err();
        assert!(
            error.to_string().starts_with("cassandra.cache.max_entries"),
            "{error}"
        );
    }
}

//! # switchyard-cassandra
//!
//! The Apache Cassandra / ScyllaDB location backend (`[store] backend =
//! "cassandra"`), on the `scylla` driver 1.x.
//!
//! - [`CassandraConfig`] — `[store.cassandra]`, with the read cache policies
//!   look bindings up in (`[store.cassandra.cache]`,
//!   [`ReadCache`](switchyard_location::ReadCache)).
//! - [`schema`] — the keyspace/table CQL and statement texts (pure).
//! - [`rows`] — row ⇄ [`Binding`](switchyard_location::Binding) and TTLs (pure).
//! - [`ordering`] — the REGISTER algorithm: 1 read + 1 conditional batch
//!   (LWT on a per-AOR version), retried under contention.
//! - [`breaker`] — the sans-IO circuit breaker.
//! - [`metrics`] — store latency histogram and outcome counters.
//! - [`tls`] — `[store.cassandra.tls]` (rustls), optional client certificate.
//! - [`CassandraStore`] — the [`LocationStore`](switchyard_location::LocationStore),
//!   the [`SubscriberStore`](switchyard_auth::SubscriberStore) (`subscribers`
//!   table) and the [`NonceLedger`](switchyard_auth::NonceLedger) (`nonce_uses`
//!   table, one LWT per authenticated request) and the
//!   [`SharedCounters`](switchyard_location::SharedCounters) (`shared_counters`
//!   table, [`counters`]: policy `kv` counters summed over the nodes).
//! - [`tokens`] — offset-mirror initial token planning (`switchyard cassandra tokens`).
//!
//! Conformance against a real cluster:
//! `SWITCHYARD_CASSANDRA=host:9042 SWITCHYARD_CASSANDRA_DC=datacenter1
//! cargo test -p switchyard cassandra -- --ignored`.

pub mod breaker;
pub mod cdrs;
pub mod config;
pub mod counters;
pub mod metrics;
mod nonces;
pub mod ordering;
pub mod rows;
pub mod schema;
mod store;
mod subscribers;
pub mod tls;
pub mod tokens;

pub use breaker::{Breaker, BreakerConfig, BreakerState};
pub use config::{CassandraConfig, CassandraConfigError, ConsistencyLevel, SerialLevel};
pub use metrics::{MetricsSnapshot, StoreMetrics};
pub use schema::{Statements, keyspace_cql, schema_cql, table_cql};
pub use store::{CassandraStore, store_error};
pub use tls::{TlsConfig, TlsError};

//! # switchyard-location: where registrations are kept
//!
//! The location service (RFC 3261 §10): the storage contract every backend
//! implements, the in-process backend, and the conformance suite every
//! backend passes. The data types ([`Aor`], [`Binding`], [`StoreError`])
//! are the protocol crate's (`switchyard_proto::location`), re-exported
//! here. The Cassandra backend is `switchyard-cassandra`.
//!
//! - [`LocationStore`] — the async contract. `register` applies the registrar
//!   rules ([`apply`](switchyard_proto::registrar::apply)) atomically per AOR, so every backend
//!   enforces identical RFC 3261 §10.3 semantics: the embedded store under a
//!   shard lock, a distributed backend as one read plus one conditional write.
//! - [`EmbeddedStore`] — the default in-process backend.
//! - [`ReadCache`] — a bounded read cache in front of a remote backend, so
//!   `cached` (a policy's `location.lookup`) answers within a staleness bound.
//! - [`SharedCounters`] — counts the nodes of a cluster add up (calls per
//!   tenant, policy `kv` counters), each node publishing its own share.
//! - [`persist`] — the embedded store's snapshot file (registrations kept
//!   across a restart).
//! - [`conformance`] — the test suite every backend must pass
//!   ([`location_store_conformance!`](crate::location_store_conformance)),
//!   and [`counters_conformance`] the one of every [`SharedCounters`]
//!   ([`shared_counters_conformance!`](crate::shared_counters_conformance)).

mod cache;
#[cfg(any(test, feature = "testing"))]
pub mod conformance;
mod counters;
#[cfg(any(test, feature = "testing"))]
pub mod counters_conformance;
mod embedded;
pub mod persist;
mod store;

pub use cache::{CacheStats, ReadCache, ReadCacheConfig};
pub use counters::{LocalCounters, Share, SharedCounters};
pub use embedded::EmbeddedStore;
pub use store::{LocationStore, purge_periodically};
pub use switchyard_proto::location::{
    Aor, AorError, AorFilter, Binding, BindingKey, RegisterError, StoreError, q_from_str,
    q_to_string,
};

//! The location service (RFC 3261 §10): the storage contract every backend
//! implements, and the backends. The data types ([`Aor`], [`Binding`],
//! [`StoreError`]) are the protocol crate's (`switchyard_proto::location`),
//! re-exported here.
//!
//! - [`LocationStore`] — the async contract. `register` applies the registrar
//!   rules ([`crate::registrar::apply`]) atomically per AOR, so every backend
//!   enforces identical RFC 3261 §10.3 semantics: the embedded store under a
//!   shard lock, a distributed backend as one read plus one conditional write.
//! - [`EmbeddedStore`] — the default in-process backend.
//! - [`conformance`] — the test suite every backend must pass
//!   ([`location_store_conformance!`](crate::location_store_conformance)).

#[cfg(any(test, feature = "testing"))]
pub mod conformance;
mod embedded;
mod store;

pub use embedded::EmbeddedStore;
pub use store::{LocationStore, purge_periodically};
pub use switchyard_proto::location::{
    Aor, AorError, Binding, BindingKey, RegisterError, StoreError, q_from_str, q_to_string,
};

//! The location service (RFC 3261 §10): which contacts are registered for an
//! address-of-record, and the storage contract every backend implements.
//!
//! - [`Aor`] — canonical address-of-record, the partition key of every backend.
//! - [`Binding`] — one registered contact with everything later features need
//!   (outbound instance/reg-id, Path, received source, node, expiry).
//! - [`LocationStore`] — the async contract. `register` applies the registrar
//!   rules ([`crate::registrar::apply`]) atomically per AOR, so every backend
//!   enforces identical RFC 3261 §10.3 semantics: the embedded store under a
//!   shard lock, a distributed backend as one read plus one conditional write.
//! - [`EmbeddedStore`] — the default in-process backend.
//! - [`conformance`] — the test suite every backend must pass
//!   ([`location_store_conformance!`](crate::location_store_conformance)).

mod aor;
mod binding;
#[cfg(any(test, feature = "testing"))]
pub mod conformance;
mod embedded;
mod store;

pub(crate) use aor::percent_decode;
pub use aor::{Aor, AorError};
pub use binding::{Binding, BindingKey, q_from_str, q_to_string};
pub use embedded::EmbeddedStore;
pub use store::{LocationStore, RegisterError, StoreError, purge_periodically};

//! The location service's data (RFC 3261 §10): addresses-of-record, the
//! bindings registered for them, and how a store can fail. The storage
//! contract itself (`LocationStore`) and its backends live in the host,
//! which does the I/O.
//!
//! - [`Aor`] — canonical address-of-record, the partition key of every backend.
//! - [`Binding`] — one registered contact with everything later features need
//!   (outbound instance/reg-id, Path, received source, node, expiry).
//! - [`StoreError`], [`RegisterError`] — failures the registrar and proxy
//!   turn into 503 + Retry-After (or 500 for a rule violation).

mod aor;
mod binding;
mod error;
mod filter;
#[cfg(any(test, feature = "testing"))]
pub mod samples;

pub(crate) use aor::percent_decode;
pub use aor::{Aor, AorError};
pub use binding::{Binding, BindingKey, q_from_str, q_to_string};
pub use error::{RegisterError, StoreError};
pub use filter::AorFilter;

//! # switchyard-auth: who may register and call
//!
//! Digest authentication of the node's own users (RFC 3261 §22,
//! RFC 7616, RFC 8760): challenges with stateless nonces any node of a
//! cluster accepts, credentials checked against HA1s per realm.
//!
//! - [`digest`]: the algorithms (MD5, SHA-256, SHA-512-256), credentials
//!   parsing, response computation; pure.
//! - [`nonce`]: nonces authenticated by an HMAC over time, realm and the
//!   client's address, and the nonce-count replay guard; pure.
//! - [`SubscriberStore`]: who may authenticate: the embedded store's file
//!   ([`Subscribers`]) or the Cassandra `subscribers` table, the latter
//!   behind a bounded read cache ([`CachedSubscribers`]).
//! - [`NonceLedger`]: where a right answer's nonce count is claimed, so a
//!   captured request is accepted once: in memory ([`LocalLedger`]) or in
//!   the Cassandra `nonce_uses` table.
//! - [`Authenticator`]: one verdict per request; the routing code decides
//!   which requests need one (the host's `node/auth.rs`, asked by the
//!   endpoint's `Authenticate` I/O).

mod authenticator;
mod cache;
mod config;
pub mod digest;
mod ledger;
pub mod nonce;
mod store;
mod subscribers;
mod throttle;
mod watch;

pub use authenticator::{Authenticator, Check, Claim, Concluded, Pending, Role, Verdict};
pub use cache::{CacheConfig, CachedSubscribers};
pub use config::AuthConfig;
#[cfg(any(test, feature = "testing"))]
pub use ledger::ledger_conformance;
pub use ledger::{LocalLedger, NonceLedger};
pub use store::SubscriberStore;
#[cfg(any(test, feature = "testing"))]
pub use store::conformance;
pub use subscribers::{Subscriber, SubscriberError, Subscribers, edit_file};
pub use throttle::{Throttle, ThrottleConfig};
pub use watch::watch;

/// A 401/407 to send: status and one challenge header per algorithm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub code: u16,
    pub reason: &'static str,
    pub headers: Vec<(String, String)>,
}

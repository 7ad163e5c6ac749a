//! The nonce-count replay ledger: where an answer's (nonce, nc) is claimed
//! before the request it authenticates proceeds, so a captured request is
//! accepted once, not once per node (RFC 7616 §3.4, §5.5).
//!
//! **The contract.** [`NonceLedger::claim`] returns `true` the first time a
//! (nonce, nc) pair is claimed and `false` for every later claim of the
//! same pair while it is remembered, which is at least `ttl_secs`. That is
//! the RFC's replay test ("if the same nc value is seen twice, then the
//! request is a replay"). A ledger may be stricter and also refuse an nc
//! at or below the highest already claimed for the nonce (the per-node
//! [`LocalLedger`] does, as RFC 7616's "nc increases" reads); the shared
//! Cassandra ledger refuses exact repeats only, because it is one
//! conditional insert, and because a phone's requests with one nonce may
//! reach different nodes in either order. Callers therefore rely on the
//! exact-pair refusal only. Claims are made for answers already proven
//! right ([`Authenticator::conclude`](super::Authenticator::conclude)), so
//! an attacker cannot fill a ledger with junk nonces.
//!
//! Backends:
//! - [`LocalLedger`]: [`NonceCounts`] behind a mutex, in this process. The
//!   ledger of a single node (embedded store); on a cluster without a
//!   shared store each node refuses only the replays it saw.
//! - the Cassandra `nonce_uses` table (`cassandra/nonces.rs`): one
//!   lightweight transaction per authenticated request, refused on every
//!   node of the data centre.

use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use parking_lot::Mutex;

use super::nonce::NonceCounts;
use switchyard_proto::location::StoreError;

/// Where nonce-count claims are recorded (see the module docs).
#[async_trait]
pub trait NonceLedger: Send + Sync {
    /// Claims `nc` of `nonce` for at least `ttl_secs`: `true` on first use
    /// of the pair, `false` for a replay. An error means the claim could
    /// not be decided; the caller fails closed.
    async fn claim(&self, nonce: &str, nc: u32, ttl_secs: u64) -> Result<bool, StoreError>;
    /// `memory` or `cassandra`, for logs.
    fn backend(&self) -> &'static str;
}

/// The ledger of one process: [`NonceCounts`] (bounded memory, nc must
/// increase per nonce) read against the system clock.
#[derive(Debug)]
pub struct LocalLedger {
    counts: Mutex<NonceCounts>,
}

impl LocalLedger {
    /// Nonces remembered by a node's ledger: about 130 bytes each, 13 MB.
    pub const DEFAULT_CAPACITY: usize = 100_000;

    /// A ledger holding at most `capacity` nonces; past that the oldest is
    /// forgotten early (see [`NonceCounts::accept`]).
    pub fn new(capacity: usize) -> LocalLedger {
        LocalLedger {
            counts: Mutex::new(NonceCounts::new(capacity)),
        }
    }
}

#[async_trait]
impl NonceLedger for LocalLedger {
    async fn claim(&self, nonce: &str, nc: u32, ttl_secs: u64) -> Result<bool, StoreError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Ok(self.counts.lock().accept(nonce, nc, now, ttl_secs))
    }

    fn backend(&self) -> &'static str {
        "memory"
    }
}

/// What every [`NonceLedger`] must do, against a ledger that may be shared
/// with other runs: every nonce used starts with `prefix`, which the
/// caller makes unique.
#[cfg(any(test, feature = "testing"))]
pub async fn ledger_conformance(ledger: &dyn NonceLedger, prefix: &str) {
    let a = format!("{prefix}-a");
    let b = format!("{prefix}-b");
    assert!(ledger.claim(&a, 1, 60).await.unwrap(), "first use");
    assert!(!ledger.claim(&a, 1, 60).await.unwrap(), "replay");
    assert!(ledger.claim(&a, 2, 60).await.unwrap(), "the next count");
    assert!(!ledger.claim(&a, 2, 60).await.unwrap(), "replay");
    assert!(!ledger.claim(&a, 1, 60).await.unwrap(), "older replay");
    assert!(
        ledger.claim(&b, 1, 60).await.unwrap(),
        "the same count of another nonce"
    );
    assert!(ledger.claim(&b, 7, 60).await.unwrap(), "gaps are fine");
    assert!(
        ledger.claim(&a, u32::MAX, 60).await.unwrap(),
        "the whole range"
    );
    assert!(!ledger.claim(&a, u32::MAX, 60).await.unwrap());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_local_ledger_conforms() {
        let ledger = LocalLedger::new(16);
        assert_eq!(ledger.backend(), "memory");
        ledger_conformance(&ledger, "local").await;
    }

    #[tokio::test]
    async fn the_local_ledger_also_refuses_a_lower_count() {
        let ledger = LocalLedger::new(16);
        assert!(ledger.claim("n", 5, 60).await.unwrap());
        assert!(!ledger.claim("n", 4, 60).await.unwrap());
    }
}

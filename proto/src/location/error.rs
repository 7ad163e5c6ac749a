//! How a location store fails, as the registrar and the proxy see it.

use std::time::Duration;

use crate::registrar::RuleError;

/// A store failure: the request could not be served, through no fault of
/// the request. The registrar and proxy answer 503 with Retry-After
/// (RFC 3261 §21.5.4) so UAs come back later instead of giving up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The backend cannot be reached (connection refused, no live node).
    #[error("location store unavailable: {0}")]
    Unavailable(String),
    /// The backend did not answer within the configured timeout.
    #[error("location store timed out after {0:?}")]
    Timeout(Duration),
    /// The store refuses work to protect itself (circuit breaker open,
    /// too many requests in flight).
    #[error("location store overloaded")]
    Overloaded,
    /// Concurrent writers to one AOR kept winning the conditional write
    /// until the retry budget ran out.
    #[error("location store contention on {aor}")]
    Contention { aor: String },
    /// The backend answered with something we cannot use (bad row, schema
    /// mismatch).
    #[error("location store error: {0}")]
    Backend(String),
}

impl StoreError {
    /// A Retry-After hint in seconds for the 503 this error turns into:
    /// longer for an outage than for transient pressure.
    pub fn retry_after_secs(&self) -> u32 {
        match self {
            StoreError::Contention { .. } | StoreError::Overloaded => 1,
            StoreError::Timeout(_) => 5,
            StoreError::Unavailable(_) | StoreError::Backend(_) => 30,
        }
    }
}

/// Why [`LocationStore::register`] did not commit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    /// The request broke the registrar rules (out-of-order CSeq → 500).
    #[error(transparent)]
    Rejected(#[from] RuleError),
    /// The store failed (→ 503 with Retry-After).
    #[error(transparent)]
    Store(#[from] StoreError),
}

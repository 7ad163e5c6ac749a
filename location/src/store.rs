//! The storage contract every location backend implements.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use crate::{Aor, AorFilter, Binding, RegisterError, StoreError};
use switchyard_proto::registrar::{RegisterOutcome, RegisterUpdate};

/// Where bindings live. Implemented by the embedded store and by distributed
/// backends; every implementation must pass [`crate::conformance`].
///
/// Costs are part of the contract so the proxy's latency is predictable on a
/// remote backend: `register` is at most two store round trips (read the AOR,
/// then one conditional write), `lookup` exactly one.
///
/// `now` is an argument rather than read from the clock so the same rules can
/// be tested in virtual time, and so every node of a cluster computes expiry
/// from the time the request arrived rather than when the store got to it.
#[async_trait]
pub trait LocationStore: Send + Sync + 'static {
    /// Applies a REGISTER to `aor` atomically: reads the AOR's bindings,
    /// runs [`switchyard_proto::registrar::apply`] on them and commits the result only
    /// if no other register for the same AOR committed in between (the
    /// backend retries or serialises; two concurrent REGISTERs never lose an
    /// update). On [`RegisterError::Rejected`] nothing changes.
    async fn register(
        &self,
        aor: &Aor,
        update: &RegisterUpdate,
        now: SystemTime,
    ) -> Result<RegisterOutcome, RegisterError>;

    /// The unexpired bindings of `aor` at `now`, in no particular order
    /// (callers sort by [`Binding::q_or_default`] as they need). Empty when
    /// the AOR is unknown.
    async fn lookup(&self, aor: &Aor, now: SystemTime) -> Result<Vec<Binding>, StoreError>;

    /// Removes bindings that expired at or before `now` and returns how many
    /// were removed. Must not cost more than the number of due bindings (no
    /// full scan per tick). Backends that expire data natively (Cassandra
    /// TTL) return `Ok(0)` and report [`LocationStore::expires_natively`].
    async fn purge_expired(&self, now: SystemTime) -> Result<usize, StoreError>;

    /// Up to `limit` AORs matching `filter` that hold an unexpired binding
    /// at `now`, in AOR order. For operators (`switchyard registrations
    /// list`), never the call path: a remote backend scans its partitions
    /// to answer, so it costs in proportion to the AORs stored. Every real
    /// backend implements it (the conformance suite checks); the default
    /// serves test doubles.
    async fn list_aors(
        &self,
        _filter: &AorFilter,
        _now: SystemTime,
        _limit: usize,
    ) -> Result<Vec<Aor>, StoreError> {
        Err(StoreError::Backend(format!(
            "the {} store cannot list registrations",
            self.backend()
        )))
    }

    /// Short backend name for logs and metrics (`"embedded"`, `"cassandra"`).
    fn backend(&self) -> &'static str;

    /// The unexpired bindings of `aor` as this node knows them without any
    /// I/O, for callers that must not wait (a policy's `location.lookup`).
    /// `None` when the backend has nothing cached for the AOR. The embedded
    /// store answers exactly; a remote backend may answer from a cache.
    fn cached(&self, _aor: &Aor, _now: SystemTime) -> Option<Vec<Binding>> {
        None
    }

    /// True when the storage itself drops expired bindings, so
    /// [`LocationStore::purge_expired`] has nothing to do.
    fn expires_natively(&self) -> bool {
        false
    }
}

/// Purges expired bindings every `period` for as long as the returned future
/// runs (spawn it once per node, abort it on shutdown). Does nothing for a
/// backend that [expires natively](LocationStore::expires_natively).
///
/// Lookups already hide expired bindings, so this only reclaims memory; a
/// failed or late purge is logged and retried on the next tick.
pub async fn purge_periodically(store: Arc<dyn LocationStore>, period: Duration) {
    if store.expires_natively() {
        return;
    }
    loop {
        match store.purge_expired(SystemTime::now()).await {
            Ok(0) => {}
            Ok(purged) => {
                tracing::debug!(purged, backend = store.backend(), "expired bindings purged")
            }
            Err(error) => {
                tracing::warn!(%error, backend = store.backend(), "purging expired bindings failed")
            }
        }
        // A fixed pause after each purge rather than a fixed rate: a slow
        // purge never queues up behind itself.
        tokio::time::sleep(period).await;
    }
}

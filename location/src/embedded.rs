//! The default in-process location store.

use std::collections::{BTreeSet, HashMap};
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use async_trait::async_trait;
use parking_lot::Mutex;

use crate::{Aor, AorFilter, Binding, LocationStore, RegisterError, StoreError};
use switchyard_proto::registrar::{self, RegisterOutcome, RegisterUpdate};

/// Bindings in memory, sharded by AOR.
///
/// Each shard is one mutex over a map and an expiry index, so REGISTERs for
/// different AORs rarely contend and a register is atomic per AOR simply by
/// running the rules under the shard lock (no await inside it).
///
/// Expiry does not scan: every stored AOR has exactly one index entry keyed
/// by its earliest binding expiry, so [`purge_expired`](LocationStore::purge_expired)
/// pops only due entries (O(due · log n)). Lookups filter expired bindings
/// anyway, so purging late is harmless.
pub struct EmbeddedStore {
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
    /// Bumped by every write, so a snapshot is taken only after a change.
    generation: AtomicU64,
}

#[derive(Default)]
struct Shard {
    aors: HashMap<Aor, Vec<Binding>>,
    /// `(earliest expires_at of the AOR, AOR)` for every AOR in `aors`.
    expiry: BTreeSet<(SystemTime, Aor)>,
    /// Bindings stored in this shard (expired ones included until purged).
    bindings: usize,
}

impl EmbeddedStore {
    fn unexpired(&self, aor: &Aor, now: SystemTime) -> Vec<Binding> {
        let shard = self.shard(aor).lock();
        let bindings = shard.aors.get(aor).map(Vec::as_slice).unwrap_or_default();
        bindings
            .iter()
            .filter(|binding| !binding.is_expired(now))
            .cloned()
            .collect()
    }

    /// Enough shards that a 2–16 core machine rarely sees two REGISTERs wait
    /// on one lock, few enough that an empty store costs nothing.
    pub const DEFAULT_SHARDS: usize = 64;

    pub fn new() -> EmbeddedStore {
        EmbeddedStore::with_shards(Self::DEFAULT_SHARDS)
    }

    /// A store with `shards` shards (at least one).
    pub fn with_shards(shards: usize) -> EmbeddedStore {
        EmbeddedStore {
            shards: (0..shards.max(1)).map(|_| Mutex::default()).collect(),
            hasher: RandomState::new(),
            generation: AtomicU64::new(0),
        }
    }

    /// Bindings currently held, including expired ones not yet purged
    /// (a gauge for operators and a handle for tests).
    pub fn binding_count(&self) -> usize {
        self.shards.iter().map(|shard| shard.lock().bindings).sum()
    }

    /// Bindings held per AOR domain (expired ones included until purged):
    /// a scrape-time gauge, one pass over the store.
    pub fn bindings_by_domain(&self) -> std::collections::HashMap<String, usize> {
        let mut out = std::collections::HashMap::new();
        for shard in self.shards.iter() {
            for (aor, bindings) in &shard.lock().aors {
                *out.entry(aor.domain().to_owned()).or_insert(0) += bindings.len();
            }
        }
        out
    }

    /// AORs currently held.
    pub fn aor_count(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| shard.lock().aors.len())
            .sum()
    }

    /// Changes so far (registers that wrote, restores): equal values mean
    /// nothing changed in between.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Relaxed)
    }

    /// Every AOR with its bindings unexpired at `now` (for [`crate::persist`]).
    pub fn snapshot(&self, now: SystemTime) -> Vec<(Aor, Vec<Binding>)> {
        let mut out = Vec::new();
        for shard in self.shards.iter() {
            let shard = shard.lock();
            for (aor, bindings) in &shard.aors {
                let live: Vec<Binding> = bindings
                    .iter()
                    .filter(|b| !b.is_expired(now))
                    .cloned()
                    .collect();
                if !live.is_empty() {
                    out.push((aor.clone(), live));
                }
            }
        }
        out
    }

    /// Puts back the bindings of `aor` from a snapshot, replacing any.
    pub fn restore(&self, aor: &Aor, bindings: Vec<Binding>) {
        self.shard(aor).lock().replace(aor, bindings);
        self.generation.fetch_add(1, Ordering::Relaxed);
    }

    fn shard(&self, aor: &Aor) -> &Mutex<Shard> {
        // The shard count is small, so the modulo bias is irrelevant.
        let index = self.hasher.hash_one(aor) as usize % self.shards.len();
        &self.shards[index]
    }
}

impl Default for EmbeddedStore {
    fn default() -> Self {
        EmbeddedStore::new()
    }
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("shards", &self.shards.len())
            .finish_non_exhaustive()
    }
}

impl Shard {
    /// Replaces the bindings of `aor`, keeping the expiry index and the
    /// binding count in step with the map.
    fn replace(&mut self, aor: &Aor, bindings: Vec<Binding>) {
        let old = if bindings.is_empty() {
            self.aors.remove(aor)
        } else {
            self.aors.insert(aor.clone(), bindings)
        };
        if let Some(old) = old {
            self.bindings -= old.len();
            if let Some(at) = earliest_expiry(&old) {
                self.expiry.remove(&(at, aor.clone()));
            }
        }
        if let Some(new) = self.aors.get(aor) {
            self.bindings += new.len();
            if let Some(at) = earliest_expiry(new) {
                self.expiry.insert((at, aor.clone()));
            }
        }
    }

    fn purge(&mut self, now: SystemTime) -> usize {
        let mut purged = 0;
        while self.expiry.first().is_some_and(|(at, _)| *at <= now) {
            let Some((_, aor)) = self.expiry.pop_first() else {
                break;
            };
            let Some(bindings) = self.aors.get_mut(&aor) else {
                continue;
            };
            let before = bindings.len();
            bindings.retain(|binding| !binding.is_expired(now));
            purged += before - bindings.len();
            self.bindings -= before - bindings.len();
            match earliest_expiry(bindings) {
                Some(at) => {
                    bindings.shrink_to_fit();
                    self.expiry.insert((at, aor));
                }
                None => {
                    self.aors.remove(&aor);
                }
            }
        }
        purged
    }
}

fn earliest_expiry(bindings: &[Binding]) -> Option<SystemTime> {
    bindings.iter().map(|binding| binding.expires_at).min()
}

#[async_trait]
impl LocationStore for EmbeddedStore {
    async fn register(
        &self,
        aor: &Aor,
        update: &RegisterUpdate,
        now: SystemTime,
    ) -> Result<RegisterOutcome, RegisterError> {
        let mut shard = self.shard(aor).lock();
        let existing = shard.aors.get(aor).cloned().unwrap_or_default();
        let outcome = registrar::apply(existing, update, now)?;
        if !(outcome.written.is_empty() && outcome.removed.is_empty()) {
            shard.replace(aor, outcome.bindings.clone());
            self.generation.fetch_add(1, Ordering::Relaxed);
        }
        Ok(outcome)
    }

    async fn lookup(&self, aor: &Aor, now: SystemTime) -> Result<Vec<Binding>, StoreError> {
        Ok(self.unexpired(aor, now))
    }

    fn cached(&self, aor: &Aor, now: SystemTime) -> Option<Vec<Binding>> {
        Some(self.unexpired(aor, now))
    }

    async fn purge_expired(&self, now: SystemTime) -> Result<usize, StoreError> {
        // One shard at a time, so REGISTERs on other shards proceed meanwhile.
        Ok(self
            .shards
            .iter()
            .map(|shard| shard.lock().purge(now))
            .sum())
    }

    async fn list_aors(
        &self,
        filter: &AorFilter,
        now: SystemTime,
        limit: usize,
    ) -> Result<Vec<Aor>, StoreError> {
        let mut found = Vec::new();
        for shard in self.shards.iter() {
            let shard = shard.lock();
            found.extend(
                shard
                    .aors
                    .iter()
                    .filter(|(aor, bindings)| {
                        filter.matches(aor) && bindings.iter().any(|b| !b.is_expired(now))
                    })
                    .map(|(aor, _)| aor.clone()),
            );
        }
        found.sort_unstable();
        found.truncate(limit);
        Ok(found)
    }

    fn backend(&self) -> &'static str {
        "embedded"
    }
}

#[cfg(test)]
#[path = "embedded_tests.rs"]
mod tests;

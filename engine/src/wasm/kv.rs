//! The per-tenant key/value store behind the `kv` import.
//!
//! In memory on this node, shared by every version and instance of the
//! tenant's policy (so a counter survives hot reloads and instance
//! recycling), never shared between tenants. Time is an argument: the store
//! reads no clock, so expiry is tested with virtual time.
//!
//! **Counters across a cluster.** A key written by `incr` is a counter. Its
//! stored value is this node's share; `incr` and `get` answer that share
//! plus the other nodes' shares of the key as last read
//! ([`TenantKv::set_others`]). On a cluster-wide store the node's kv sync
//! (`kv_sync.rs`) publishes the shares and reads the others' every
//! `[policy] kv_sync_ms`; without one the others' shares stay empty and
//! every counter is this node's alone. Values written by `set` are never
//! shared.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use switchyard_location::Share;

/// Longest key, in bytes.
pub const MAX_KEY_BYTES: usize = 256;
/// Largest value, in bytes.
pub const MAX_VALUE_BYTES: usize = 4096;
/// Most live keys per tenant.
pub const MAX_KEYS: usize = 10_000;

/// How often a full store may scan for expired keys to make room.
const PURGE_INTERVAL: Duration = Duration::from_secs(1);

/// One tenant's store. Counters are kept as decimal ASCII (`b"42"`), so
/// `get` of a key written by `incr` reads as text.
#[derive(Debug, Default)]
pub struct TenantKv {
    inner: Mutex<Inner>,
    /// Writes ignored because of a limit (key or value too long, store full).
    rejected: AtomicU64,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<Box<str>, Entry>,
    last_purge: Option<Instant>,
    /// The other nodes' shares of counters, as the kv sync last read them.
    others: HashMap<String, i64>,
    /// Whether `incr` was ever called: only then is the tenant synced.
    counts: bool,
}

#[derive(Debug)]
struct Entry {
    value: Vec<u8>,
    /// None: kept until deleted or the node restarts.
    expires: Option<Instant>,
    /// Written by `incr` (and not `set` since): this node's share of a
    /// counter the cluster adds up.
    counter: bool,
}

/// One live counter of this node, as the kv sync publishes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterShare {
    pub share: Share,
    /// Time left before the key expires; None: it never does.
    pub remaining: Option<Duration>,
}

impl Entry {
    fn live(&self, now: Instant) -> bool {
        self.expires.is_none_or(|at| at > now)
    }
}

fn expiry(now: Instant, ttl_ms: u32) -> Option<Instant> {
    (ttl_ms > 0).then(|| now + Duration::from_millis(u64::from(ttl_ms)))
}

impl TenantKv {
    pub fn new() -> Self {
        TenantKv::default()
    }

    /// The value at `key`; for a counter, the cluster's count (this node's
    /// share plus the others' last read).
    pub fn get(&self, key: &str, now: Instant) -> Option<Vec<u8>> {
        let mut inner = self.inner.lock();
        let others = inner.others.get(key).copied();
        match inner.entries.get(key) {
            Some(entry) if entry.live(now) && entry.counter => {
                let total = parse_counter(&entry.value).saturating_add(others.unwrap_or(0));
                return Some(counter_text(total));
            }
            Some(entry) if entry.live(now) => return Some(entry.value.clone()),
            Some(_) => {
                inner.entries.remove(key);
            }
            None => {}
        }
        others.map(counter_text)
    }

    /// Stores `value` for `ttl_ms` (0: no expiry). Ignored (and counted) when
    /// the key or value is too long or the tenant already has [`MAX_KEYS`].
    pub fn set(&self, key: &str, value: &[u8], ttl_ms: u32, now: Instant) {
        if key.len() > MAX_KEY_BYTES || value.len() > MAX_VALUE_BYTES {
            self.reject();
            return;
        }
        let mut inner = self.inner.lock();
        if let Some(entry) = inner.entries.get_mut(key) {
            entry.value.clear();
            entry.value.extend_from_slice(value);
            entry.expires = expiry(now, ttl_ms);
            entry.counter = false;
            return;
        }
        if !inner.make_room(now) {
            drop(inner);
            self.reject();
            return;
        }
        let entry = Entry {
            value: value.to_vec(),
            expires: expiry(now, ttl_ms),
            counter: false,
        };
        inner.entries.insert(key.into(), entry);
    }

    pub fn delete(&self, key: &str) {
        self.inner.lock().entries.remove(key);
    }

    /// Adds `delta` (saturating) to this node's share of the counter at
    /// `key` and returns the counter's new value: the share plus the other
    /// nodes' shares last read. A missing, expired or non-integer value
    /// counts as 0. A new key gets `ttl_ms`; a live key keeps its expiry (a
    /// fixed window). When the write is refused by a limit, the value it
    /// would have had is returned and nothing is stored.
    pub fn incr(&self, key: &str, delta: i64, ttl_ms: u32, now: Instant) -> i64 {
        if key.len() > MAX_KEY_BYTES {
            self.reject();
            return delta;
        }
        let mut inner = self.inner.lock();
        inner.counts = true;
        let others = inner.others.get(key).copied().unwrap_or(0);
        if let Some(entry) = inner.entries.get_mut(key)
            && entry.live(now)
        {
            let current = parse_counter(&entry.value);
            let next = current.saturating_add(delta);
            entry.value.clear();
            write_counter(&mut entry.value, next);
            entry.counter = true;
            return next.saturating_add(others);
        }
        inner.entries.remove(key);
        if !inner.make_room(now) {
            drop(inner);
            self.reject();
            return delta.saturating_add(others);
        }
        let mut value = Vec::with_capacity(20);
        write_counter(&mut value, delta);
        let expires = expiry(now, ttl_ms);
        let entry = Entry {
            value,
            expires,
            counter: true,
        };
        inner.entries.insert(key.into(), entry);
        delta.saturating_add(others)
    }

    /// Whether the tenant's policy ever counted (`incr`): only such tenants
    /// take part in the kv sync.
    pub fn counts(&self) -> bool {
        self.inner.lock().counts
    }

    /// This node's live counters, the `max` largest first when there are
    /// more (the ones nearest a limit matter most).
    pub fn counter_shares(&self, now: Instant, max: usize) -> Vec<CounterShare> {
        let inner = self.inner.lock();
        let mut shares: Vec<CounterShare> = inner
            .entries
            .iter()
            .filter(|(_, e)| e.counter && e.live(now))
            .map(|(key, e)| CounterShare {
                share: (key.to_string(), parse_counter(&e.value)),
                remaining: e.expires.map(|at| at.saturating_duration_since(now)),
            })
            .collect();
        drop(inner);
        if shares.len() > max {
            shares.sort_unstable_by_key(|s| std::cmp::Reverse(s.share.1));
            shares.truncate(max);
        }
        shares
    }

    /// Replaces the other nodes' shares (the sum per key) with a fresh read.
    pub fn set_others(&self, others: HashMap<String, i64>) {
        self.inner.lock().others = others;
    }

    /// Live and not-yet-purged keys.
    pub fn len(&self) -> usize {
        self.inner.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Writes ignored because of a limit, since the node started.
    pub fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }

    fn reject(&self) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
    }
}

impl Inner {
    /// Whether one more key fits. A full store drops its expired keys first,
    /// at most once per [`PURGE_INTERVAL`] so a store full of live keys does
    /// not rescan on every write.
    fn make_room(&mut self, now: Instant) -> bool {
        if self.entries.len() < MAX_KEYS {
            return true;
        }
        let due = self
            .last_purge
            .is_none_or(|at| now.saturating_duration_since(at) >= PURGE_INTERVAL);
        if due {
            self.entries.retain(|_, entry| entry.live(now));
            self.last_purge = Some(now);
        }
        self.entries.len() < MAX_KEYS
    }
}

fn parse_counter(value: &[u8]) -> i64 {
    std::str::from_utf8(value)
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(0)
}

fn counter_text(value: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(20);
    write_counter(&mut out, value);
    out
}

fn write_counter(out: &mut Vec<u8>, value: i64) {
    use std::io::Write;
    // Writing to a Vec cannot fail.
    let _ = write!(out, "{value}");
}

#[cfg(test)]
#[path = "kv_tests.rs"]
mod tests;

//! A bounded read cache in front of a [`SubscriberStore`]: every
//! authenticated request reads its subscriber, and with the Cassandra
//! store that is a LOCAL_QUORUM read per REGISTER and per call. Entries
//! live `ttl_secs`; unknown users are remembered too, for the shorter
//! `negative_ttl_secs`, so a flood of guesses at one name does not reach
//! the store each time (guesses at ever new names still do, one read each,
//! and are throttled per source by `[auth.throttle]`).
//!
//! **Staleness.** A change made through this node (`put`, `remove`: the
//! admin endpoint) invalidates its entry at once. A change made elsewhere
//! (another node's admin endpoint, `switchyard user` against the cluster)
//! reaches this node within `ttl_secs`, or `negative_ttl_secs` for a user
//! this node had looked up before they existed. Until then the old HA1s
//! still authenticate here.
//!
//! Store errors are not cached: the next request asks the store again.
//! The bound and the eviction order are `moka`'s (TinyLFU admission, LRU
//! eviction); expiry is checked against an injected clock so tests need
//! not sleep.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use moka::sync::Cache;
use serde::Deserialize;

use super::store::SubscriberStore;
use super::subscribers::Subscriber;
use switchyard_proto::location::StoreError;

/// `[auth.cache]`: the subscriber read cache (Cassandra subscribers only;
/// the file is in memory already).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Subscribers (known or not) held at most; about 0.5 KB each.
    pub max_entries: u64,
    /// How long a subscriber read is reused: the longest a password
    /// changed on another node keeps working here. 0 turns the cache off.
    pub ttl_secs: u64,
    /// How long "no such user" is reused: the longest a user added on
    /// another node may still be refused here.
    pub negative_ttl_secs: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            max_entries: 50_000,
            ttl_secs: 30,
            negative_ttl_secs: 5,
        }
    }
}

impl CacheConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.ttl_secs > 0 && self.max_entries == 0 {
            return Err(
                "key `auth.cache.max_entries`: must be at least 1 (or set ttl_secs = 0 to turn the cache off)"
                    .into(),
            );
        }
        if self.negative_ttl_secs > self.ttl_secs {
            return Err("key `auth.cache.negative_ttl_secs`: must not exceed ttl_secs".into());
        }
        Ok(())
    }

    /// Whether there is a cache at all.
    pub fn enabled(&self) -> bool {
        self.ttl_secs > 0
    }
}

type Clock = Arc<dyn Fn() -> Instant + Send + Sync>;

/// One read: the subscriber or its absence, and when it was read.
#[derive(Clone)]
struct Entry {
    subscriber: Option<Subscriber>,
    read_at: Instant,
    ttl: Duration,
}

/// Tells moka how long each entry lives, so expired ones stop taking room.
struct EntryTtl;

impl moka::Expiry<(String, String), Entry> for EntryTtl {
    fn expire_after_create(
        &self,
        _key: &(String, String),
        entry: &Entry,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        Some(entry.ttl)
    }
}

/// A [`SubscriberStore`] that answers repeated reads from memory (see the
/// module docs); writes and listings go straight to `inner`.
pub struct CachedSubscribers {
    inner: Arc<dyn SubscriberStore>,
    entries: Cache<(String, String), Entry>,
    ttl: Duration,
    negative_ttl: Duration,
    /// Bumped by every write through this cache: a read that raced a write
    /// does not leave what it read behind (see [`Self::subscriber`]).
    writes: AtomicU64,
    clock: Clock,
}

impl CachedSubscribers {
    pub fn new(inner: Arc<dyn SubscriberStore>, config: &CacheConfig) -> CachedSubscribers {
        CachedSubscribers::with_clock(inner, config, Arc::new(Instant::now))
    }

    /// With `clock` instead of [`Instant::now`] for expiry (tests).
    pub fn with_clock(
        inner: Arc<dyn SubscriberStore>,
        config: &CacheConfig,
        clock: Clock,
    ) -> CachedSubscribers {
        CachedSubscribers {
            inner,
            entries: Cache::builder()
                .max_capacity(config.max_entries)
                .expire_after(EntryTtl)
                .build(),
            ttl: Duration::from_secs(config.ttl_secs),
            negative_ttl: Duration::from_secs(config.negative_ttl_secs),
            writes: AtomicU64::new(0),
            clock,
        }
    }

    /// Entries held, counting ones expired but not yet swept.
    pub fn len(&self) -> u64 {
        self.entries.run_pending_tasks();
        self.entries.entry_count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn key(realm: &str, user: &str) -> (String, String) {
        // Realms are case-insensitive, users are not (as in every store).
        (realm.to_ascii_lowercase(), user.to_string())
    }

    fn forget(&self, realm: &str, user: &str) {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.entries.invalidate(&Self::key(realm, user));
    }
}

#[async_trait]
impl SubscriberStore for CachedSubscribers {
    async fn subscriber(&self, realm: &str, user: &str) -> Result<Option<Subscriber>, StoreError> {
        let key = Self::key(realm, user);
        if let Some(entry) = self.entries.get(&key) {
            if (self.clock)().saturating_duration_since(entry.read_at) < entry.ttl {
                return Ok(entry.subscriber);
            }
            self.entries.invalidate(&key);
        }
        let writes = self.writes.load(Ordering::SeqCst);
        let read_at = (self.clock)();
        let subscriber = self.inner.subscriber(realm, user).await?;
        let ttl = match subscriber {
            Some(_) => self.ttl,
            None => self.negative_ttl,
        };
        if !ttl.is_zero() {
            self.entries.insert(
                key.clone(),
                Entry {
                    subscriber: subscriber.clone(),
                    read_at,
                    ttl,
                },
            );
            // A write through this node since the read began may have
            // invalidated before the insert: drop what may be stale.
            if self.writes.load(Ordering::SeqCst) != writes {
                self.entries.invalidate(&key);
            }
        }
        Ok(subscriber)
    }

    async fn put(&self, subscriber: Subscriber) -> Result<(), StoreError> {
        let (realm, user) = (subscriber.realm.clone(), subscriber.user.clone());
        let out = self.inner.put(subscriber).await;
        // Also after a failure: the write may have landed anyway.
        self.forget(&realm, &user);
        out
    }

    async fn remove(&self, realm: &str, user: &str) -> Result<bool, StoreError> {
        let out = self.inner.remove(realm, user).await;
        self.forget(realm, user);
        out
    }

    async fn list(&self, realm: Option<&str>) -> Result<Vec<(String, String)>, StoreError> {
        self.inner.list(realm).await
    }

    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
}

#[cfg(test)]
#[path = "cache_tests.rs"]
mod tests;

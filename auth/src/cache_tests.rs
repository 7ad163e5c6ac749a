//! The cache over the in-memory store, with a counting wrapper to see
//! which reads reach it and a hand-moved clock.

use std::sync::atomic::AtomicUsize;

use parking_lot::Mutex;

use super::*;
use crate::{Subscribers, conformance};

/// The in-memory store, counting the reads that reach it; it can be told
/// to fail.
struct Counted {
    store: Subscribers,
    reads: AtomicUsize,
    down: std::sync::atomic::AtomicBool,
}

impl Counted {
    fn reads(&self) -> usize {
        self.reads.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl SubscriberStore for Counted {
    async fn subscriber(&self, realm: &str, user: &str) -> Result<Option<Subscriber>, StoreError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("down".into()));
        }
        self.store.subscriber(realm, user).await
    }
    async fn put(&self, subscriber: Subscriber) -> Result<(), StoreError> {
        self.store.put(subscriber).await
    }
    async fn remove(&self, realm: &str, user: &str) -> Result<bool, StoreError> {
        self.store.remove(realm, user).await
    }
    async fn list(&self, realm: Option<&str>) -> Result<Vec<(String, String)>, StoreError> {
        self.store.list(realm).await
    }
    fn backend(&self) -> &'static str {
        "counted"
    }
}

struct Fixture {
    inner: Arc<Counted>,
    cache: CachedSubscribers,
    now: Arc<Mutex<Instant>>,
}

impl Fixture {
    fn new(config: CacheConfig) -> Fixture {
        let inner = Arc::new(Counted {
            store: Subscribers::empty(),
            reads: AtomicUsize::new(0),
            down: std::sync::atomic::AtomicBool::new(false),
        });
        let now = Arc::new(Mutex::new(Instant::now()));
        let clock = now.clone();
        let cache =
            CachedSubscribers::with_clock(inner.clone(), &config, Arc::new(move || *clock.lock()));
        Fixture { inner, cache, now }
    }

    fn advance(&self, secs: u64) {
        *self.now.lock() += Duration::from_secs(secs);
    }

    /// A change made elsewhere: straight into the store, not through the cache.
    async fn put_behind(&self, realm: &str, user: &str, password: &str) {
        self.inner
            .store
            .put(Subscriber::new(realm, user, password))
            .await
            .unwrap();
    }

    async fn get(&self, realm: &str, user: &str) -> Option<Subscriber> {
        self.cache.subscriber(realm, user).await.unwrap()
    }
}

const CONFIG: CacheConfig = CacheConfig {
    max_entries: 100,
    ttl_secs: 30,
    negative_ttl_secs: 5,
};

#[tokio::test]
async fn a_cached_store_conforms() {
    let f = Fixture::new(CONFIG);
    conformance(&f.cache, "cache.test").await;
    assert_eq!(f.cache.backend(), "counted");
}

#[tokio::test]
async fn repeated_reads_are_answered_from_memory_until_the_ttl() {
    let f = Fixture::new(CONFIG);
    f.put_behind("a.test", "alice", "one").await;
    let alice = Subscriber::new("a.test", "alice", "one");
    assert_eq!(f.get("a.test", "alice").await, Some(alice.clone()));
    assert_eq!(f.get("A.TEST", "alice").await, Some(alice.clone()));
    assert_eq!(f.inner.reads(), 1, "one read, realm case folded");
    // Changed on another node: still the old HA1s here within the TTL.
    f.put_behind("a.test", "alice", "two").await;
    f.advance(29);
    assert_eq!(f.get("a.test", "alice").await, Some(alice));
    assert_eq!(f.inner.reads(), 1);
    f.advance(1);
    assert_eq!(
        f.get("a.test", "alice").await,
        Some(Subscriber::new("a.test", "alice", "two")),
        "re-read at the TTL"
    );
    assert_eq!(f.inner.reads(), 2);
}

#[tokio::test]
async fn unknown_users_are_remembered_for_the_shorter_ttl() {
    let f = Fixture::new(CONFIG);
    for _ in 0..10 {
        assert_eq!(f.get("a.test", "mallory").await, None);
    }
    assert_eq!(f.inner.reads(), 1, "a flood of one name reads once");
    f.put_behind("a.test", "mallory", "pw").await;
    f.advance(4);
    assert_eq!(f.get("a.test", "mallory").await, None);
    f.advance(1);
    assert!(f.get("a.test", "mallory").await.is_some());
    assert_eq!(f.inner.reads(), 2);
}

#[tokio::test]
async fn writes_through_the_cache_take_effect_at_once() {
    let f = Fixture::new(CONFIG);
    assert_eq!(f.get("a.test", "bob").await, None);
    f.cache
        .put(Subscriber::new("A.test", "bob", "one"))
        .await
        .unwrap();
    assert_eq!(
        f.get("a.test", "bob").await,
        Some(Subscriber::new("a.test", "bob", "one")),
        "the negative entry went"
    );
    f.cache
        .put(Subscriber::new("a.test", "bob", "two"))
        .await
        .unwrap();
    assert_eq!(
        f.get("a.test", "bob").await,
        Some(Subscriber::new("a.test", "bob", "two"))
    );
    assert!(f.cache.remove("a.test", "bob").await.unwrap());
    assert_eq!(f.get("a.test", "bob").await, None);
    assert_eq!(
        f.inner.reads(),
        4,
        "every read after a write went to the store"
    );
}

#[tokio::test]
async fn store_errors_are_not_cached() {
    let f = Fixture::new(CONFIG);
    f.put_behind("a.test", "carol", "pw").await;
    f.inner.down.store(true, Ordering::SeqCst);
    assert!(f.cache.subscriber("a.test", "carol").await.is_err());
    f.inner.down.store(false, Ordering::SeqCst);
    assert!(f.get("a.test", "carol").await.is_some());
    assert_eq!(f.inner.reads(), 2);
}

#[tokio::test]
async fn entries_are_bounded() {
    let f = Fixture::new(CacheConfig {
        max_entries: 8,
        ..CONFIG
    });
    for i in 0..100 {
        f.get("a.test", &format!("u{i}")).await;
    }
    assert!(f.cache.len() <= 8, "{}", f.cache.len());
    assert!(!f.cache.is_empty());
}

#[tokio::test]
async fn a_zero_negative_ttl_caches_only_known_users() {
    let f = Fixture::new(CacheConfig {
        negative_ttl_secs: 0,
        ..CONFIG
    });
    f.get("a.test", "nobody").await;
    f.get("a.test", "nobody").await;
    assert_eq!(f.inner.reads(), 2);
    assert!(f.cache.is_empty());
}

#[test]
fn the_config_is_checked() {
    assert_eq!(CacheConfig::default().validate(), Ok(()));
    assert!(CacheConfig::default().enabled());
    let off = CacheConfig {
        ttl_secs: 0,
        negative_ttl_secs: 0,
        max_entries: 0,
    };
    assert_eq!(off.validate(), Ok(()));
    assert!(!off.enabled());
    let empty = CacheConfig {
        max_entries: 0,
        ..CONFIG
    };
    assert!(empty.validate().unwrap_err().contains("max_entries"));
    let longer = CacheConfig {
        negative_ttl_secs: 60,
        ..CONFIG
    };
    assert!(longer.validate().unwrap_err().contains("negative_ttl_secs"));
}

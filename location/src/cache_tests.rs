//! The read cache in virtual time: `now` is an argument everywhere, and the
//! background tasks are driven one round at a time (or awaited by their
//! round counter, never by sleeping).

use super::*;
use crate::EmbeddedStore;
use crate::conformance::{base_time, contact, update};

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn aor(user: &str, domain: &str) -> Aor {
    Aor::parse(&format!("{user}@{domain}")).unwrap()
}

fn acme() -> AorFilter {
    AorFilter {
        domains: vec!["acme.test".into()],
        ..AorFilter::default()
    }
}

/// One shared store and two nodes' caches over it.
fn two_nodes(config: ReadCacheConfig) -> (Arc<EmbeddedStore>, Arc<ReadCache>, Arc<ReadCache>) {
    let shared = Arc::new(EmbeddedStore::new());
    let node = || Arc::new(ReadCache::new(shared.clone(), config.clone()));
    (shared.clone(), node(), node())
}

async fn register(store: &dyn LocationStore, aor: &Aor, call_id: &str, cseq: u32, at: &str) {
    let now = base_time();
    store
        .register(aor, &update(call_id, cseq, vec![contact(at, 3600)]), now)
        .await
        .expect("register");
}

fn contacts(bindings: Option<Vec<Binding>>) -> Option<Vec<String>> {
    bindings.map(|b| {
        let mut c: Vec<String> = b.into_iter().map(|b| b.contact).collect();
        c.sort();
        c
    })
}

#[tokio::test]
async fn a_miss_is_refreshed_and_served_until_it_is_stale() {
    let (shared, cache, _) = two_nodes(ReadCacheConfig::default());
    let alice = aor("alice", "acme.test");
    register(shared.as_ref(), &alice, "a", 1, "sip:alice@127.0.0.2").await;
    let t0 = base_time();

    assert_eq!(cache.cached(&alice, t0), None, "nothing read yet");
    assert_eq!(cache.cached(&alice, t0), None);
    assert_eq!(cache.queued(), 1, "one refresh however often it is missed");
    assert_eq!(cache.refresh_queued(t0).await, 1);
    assert_eq!(cache.queued(), 0);

    let expected = Some(vec!["sip:alice@127.0.0.2".to_owned()]);
    assert_eq!(contacts(cache.cached(&alice, t0)), expected);
    assert_eq!(contacts(cache.cached(&alice, t0 + ms(1999))), expected);
    // The staleness bound: a 2 s old read is not served.
    assert_eq!(cache.cached(&alice, t0 + secs(2)), None);
    assert_eq!(cache.queued(), 1, "a stale entry is refreshed too");
    cache.refresh_queued(t0 + secs(2)).await;
    assert_eq!(contacts(cache.cached(&alice, t0 + secs(2))), expected);

    let stats = cache.stats();
    assert_eq!(
        (stats.hits, stats.misses, stats.stale, stats.refreshed),
        (3, 2, 1, 2)
    );
}

#[tokio::test]
async fn an_unknown_aor_is_cached_as_empty() {
    let (_, cache, _) = two_nodes(ReadCacheConfig::default());
    let nobody = aor("nobody", "acme.test");
    let t0 = base_time();
    assert_eq!(cache.cached(&nobody, t0), None);
    cache.refresh_queued(t0).await;
    assert_eq!(cache.cached(&nobody, t0), Some(Vec::new()));
    assert_eq!(cache.queued(), 0, "a known-empty AOR is not re-read");
}

#[tokio::test]
async fn lookups_and_registers_through_the_node_fill_it() {
    let (_, cache, _) = two_nodes(ReadCacheConfig::default());
    let (alice, bob) = (aor("alice", "acme.test"), aor("bob", "acme.test"));
    let t0 = base_time();
    register(cache.as_ref(), &alice, "a", 1, "sip:alice@127.0.0.2").await;
    assert_eq!(cache.cached(&alice, t0).map(|b| b.len()), Some(1));
    assert!(cache.lookup(&bob, t0).await.unwrap().is_empty());
    assert_eq!(cache.cached(&bob, t0), Some(Vec::new()));
    // Removing the binding through the node is seen at once.
    let removal = update("a", 2, vec![contact("sip:alice@127.0.0.2", 0)]);
    cache.register(&alice, &removal, t0).await.unwrap();
    assert_eq!(cache.cached(&alice, t0), Some(Vec::new()));
    assert_eq!(cache.queued(), 0);
}

#[tokio::test]
async fn bindings_expire_inside_a_fresh_entry() {
    let config = ReadCacheConfig {
        max_age_ms: 120_000,
        ..ReadCacheConfig::default()
    };
    let (_, cache, _) = two_nodes(config);
    let alice = aor("alice", "acme.test");
    let t0 = base_time();
    let short = update("a", 1, vec![contact("sip:alice@127.0.0.2", 60)]);
    cache.register(&alice, &short, t0).await.unwrap();
    assert_eq!(
        cache.cached(&alice, t0 + secs(59)).map(|b| b.len()),
        Some(1)
    );
    assert_eq!(cache.cached(&alice, t0 + secs(60)), Some(Vec::new()));
}

#[tokio::test]
async fn the_refresh_queue_is_bounded() {
    let config = ReadCacheConfig {
        refresh_queue: 2,
        ..ReadCacheConfig::default()
    };
    let (_, cache, _) = two_nodes(config);
    let t0 = base_time();
    for user in ["a", "b", "c"] {
        assert_eq!(cache.cached(&aor(user, "acme.test"), t0), None);
    }
    assert_eq!(cache.queued(), 2);
    assert_eq!(cache.stats().dropped, 1);
}

#[tokio::test]
async fn entries_beyond_the_cap_are_evicted_oldest_first() {
    let config = ReadCacheConfig {
        max_entries: 2,
        ..ReadCacheConfig::default()
    };
    let (_, cache, _) = two_nodes(config);
    let t0 = base_time();
    for user in ["a", "b", "c"] {
        cache.lookup(&aor(user, "acme.test"), t0).await.unwrap();
    }
    assert_eq!(cache.cached(&aor("a", "acme.test"), t0), None, "evicted");
    assert!(cache.cached(&aor("c", "acme.test"), t0).is_some());
    let stats = cache.stats();
    assert_eq!((stats.entries, stats.evicted), (2, 1));
}

#[tokio::test]
async fn prefetch_finds_aors_registered_through_another_node() {
    let config = ReadCacheConfig {
        prefetch_list_interval_ms: 30_000,
        ..ReadCacheConfig::default()
    };
    let (_, node_a, node_b) = two_nodes(config);
    let (alice, bob) = (aor("alice", "acme.test"), aor("bob", "acme.test"));
    let zed = aor("zed", "globex.test");
    register(node_b.as_ref(), &alice, "a", 1, "sip:alice@127.0.0.2").await;
    register(node_b.as_ref(), &zed, "z", 1, "sip:zed@127.0.0.4").await;
    let t0 = base_time();

    assert_eq!(node_a.prefetch(&[acme()], t0).await, 1);
    assert_eq!(node_a.cached(&alice, t0).map(|b| b.len()), Some(1));
    assert_eq!(node_a.cached(&zed, t0), None, "another tenant's AOR");

    // Not listed again before the list interval: a new AOR reaches node A
    // by a miss (then stays warm), a known one by the re-read.
    register(node_b.as_ref(), &bob, "b", 1, "sip:bob@127.0.0.3").await;
    register(node_b.as_ref(), &alice, "a2", 1, "sip:alice@127.0.0.5").await;
    let t1 = t0 + secs(1);
    assert_eq!(node_a.prefetch(&[acme()], t1).await, 1, "alice only");
    assert_eq!(node_a.cached(&alice, t1).map(|b| b.len()), Some(2));
    assert_eq!(node_a.cached(&bob, t1), None);
    node_a.refresh_queued(t1).await;
    let t2 = t0 + secs(5);
    assert_eq!(node_a.prefetch(&[acme()], t2).await, 2);
    assert_eq!(node_a.cached(&bob, t2).map(|b| b.len()), Some(1));

    // The next listing finds what registered elsewhere meanwhile.
    let carol = aor("carol", "acme.test");
    register(node_b.as_ref(), &carol, "c", 1, "sip:carol@127.0.0.6").await;
    let t3 = t0 + secs(31);
    assert_eq!(node_a.prefetch(&[acme()], t3).await, 3);
    assert_eq!(node_a.cached(&carol, t3).map(|b| b.len()), Some(1));
}

#[tokio::test]
async fn prefetch_reads_at_most_prefetch_max_aors_per_tenant() {
    let config = ReadCacheConfig {
        prefetch_max_aors: 2,
        ..ReadCacheConfig::default()
    };
    let (shared, node_a, _) = two_nodes(config);
    for user in ["a", "b", "c", "d"] {
        let at = format!("sip:{user}@127.0.0.2");
        register(shared.as_ref(), &aor(user, "acme.test"), user, 1, &at).await;
    }
    let t0 = base_time();
    assert_eq!(node_a.prefetch(&[acme()], t0).await, 2);
    assert_eq!(node_a.stats().entries, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_refresh_task_serves_a_miss_in_the_background() {
    let (shared, cache, _) = two_nodes(ReadCacheConfig::default());
    let alice = aor("alice", "acme.test");
    register(shared.as_ref(), &alice, "a", 1, "sip:alice@127.0.0.2").await;
    let task = tokio::spawn(cache.clone().refresh_queued_forever());
    let mut rounds = cache.rounds();
    assert_eq!(cache.cached(&alice, SystemTime::now()), None);
    rounds.changed().await.unwrap();
    assert_eq!(
        cache.cached(&alice, SystemTime::now()).map(|b| b.len()),
        Some(1)
    );
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_prefetch_task_warms_the_cache_every_interval() {
    let config = ReadCacheConfig {
        prefetch_interval_ms: 10,
        ..ReadCacheConfig::default()
    };
    let (_, node_a, node_b) = two_nodes(config);
    let alice = aor("alice", "acme.test");
    register(node_b.as_ref(), &alice, "a", 1, "sip:alice@127.0.0.2").await;
    let mut rounds = node_a.rounds();
    let task = tokio::spawn(node_a.clone().prefetch_forever(|| vec![acme()]));
    rounds.changed().await.unwrap();
    let seen = node_a.cached(&alice, SystemTime::now());
    assert_eq!(seen.map(|b| b.len()), Some(1));
    task.abort();
}

#[test]
fn config_refuses_what_cannot_work() {
    assert_eq!(ReadCacheConfig::default().validate(), Ok(()));
    let off = ReadCacheConfig {
        max_age_ms: 0,
        max_entries: 0,
        ..ReadCacheConfig::default()
    };
    assert_eq!(off.validate(), Ok(()));
    let no_room = ReadCacheConfig {
        max_entries: 0,
        ..ReadCacheConfig::default()
    };
    assert!(no_room.validate().unwrap_err().contains("max_entries"));
    let no_prefetch_room = ReadCacheConfig {
        prefetch_max_aors: 0,
        ..ReadCacheConfig::default()
    };
    assert!(
        no_prefetch_room
            .validate()
            .unwrap_err()
            .contains("prefetch_max_aors")
    );
}

/// The cache is a store like any other: it passes the backend suite.
mod conformance {
    use super::*;

    crate::location_store_conformance!(async {
        ReadCache::new(Arc::new(EmbeddedStore::new()), ReadCacheConfig::default())
    });
}

//! Two nodes in one process: two engines whose kv syncs share one
//! [`LocalCounters`], as two proxies share Cassandra's `shared_counters`.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::*;
use crate::wasm::testing::{self, Invite, TENANT};
use crate::wasm::{FailureMode, PolicyEngine};
use crate::{Policy, PolicyCtx, RequestAction};
use switchyard_location::LocalCounters;

const EVERY: Duration = Duration::from_secs(1);

struct Node {
    engine: PolicyEngine,
    sync: Arc<KvSync>,
}

fn nodes(every: Duration) -> (Node, Node) {
    let shared: Arc<dyn SharedCounters> = Arc::new(LocalCounters::default());
    let node = |name: &str| {
        let engine = testing::engine_with(testing::config());
        let sync = Arc::new(KvSync::new(engine.clone(), shared.clone(), name, every));
        Node { engine, sync }
    };
    (node("a"), node("b"))
}

impl Node {
    fn kv(&self) -> Arc<TenantKv> {
        self.engine.kv(TENANT)
    }

    async fn sync(&self) {
        let round = self.sync.round(Instant::now(), SystemTime::now()).await;
        assert_eq!(round.failed, 0);
    }
}

/// A, then B, then A again: each has published what it counted and read
/// what the other published (one sync interval with nothing in between).
async fn sync_both(a: &Node, b: &Node) {
    a.sync().await;
    b.sync().await;
    a.sync().await;
}

/// A fixed window of `limit` counted with `incr`, as `policies/rate-limit`
/// does: admitted while the count is within the limit.
fn admit(node: &Node, limit: i64) -> bool {
    node.kv()
        .incr("rl:req:10.0.0.1:1", 1, 60_000, Instant::now())
        <= limit
}

#[tokio::test]
async fn a_limit_of_n_admits_n_across_two_nodes_syncing_after_every_call() {
    let (a, b) = nodes(EVERY);
    let mut admitted = 0;
    for i in 0..40 {
        let node = if i % 2 == 0 { &a } else { &b };
        admitted += usize::from(admit(node, 10));
        sync_both(&a, &b).await;
    }
    assert_eq!(admitted, 10);
}

#[tokio::test]
async fn without_a_sync_each_node_admits_the_limit() {
    let (a, b) = nodes(EVERY);
    let admitted = (0..40)
        .filter(|i| admit(if i % 2 == 0 { &a } else { &b }, 10))
        .count();
    assert_eq!(admitted, 20, "the per-node behaviour: 2N on two nodes");
}

/// Syncing every `k` calls, the excess is bounded by what the other node
/// admitted within one interval.
#[tokio::test]
async fn the_excess_is_at_most_one_interval_of_the_other_nodes_calls() {
    let (a, b) = nodes(EVERY);
    let mut admitted = 0;
    for i in 0..40 {
        let node = if i % 2 == 0 { &a } else { &b };
        admitted += usize::from(admit(node, 10));
        if i % 4 == 3 {
            sync_both(&a, &b).await;
        }
    }
    // Between two syncs each node admits 2 calls the other has not seen.
    assert!((10..=12).contains(&admitted), "{admitted}");
}

#[tokio::test]
async fn get_reads_the_cluster_count_and_set_values_stay_per_node() {
    let (a, b) = nodes(EVERY);
    let now = Instant::now();
    assert_eq!(a.kv().incr("hits", 3, 0, now), 3);
    assert_eq!(b.kv().incr("hits", 2, 0, now), 2);
    a.kv().set("greeting", b"hello", 0, now);
    sync_both(&a, &b).await;
    assert_eq!(a.kv().get("hits", now).as_deref(), Some(&b"5"[..]));
    assert_eq!(b.kv().get("hits", now).as_deref(), Some(&b"5"[..]));
    assert_eq!(b.kv().incr("hits", 1, 0, now), 6);
    assert_eq!(b.kv().get("greeting", now), None, "set is per node");
}

#[tokio::test]
async fn expired_counters_are_withdrawn() {
    let (a, b) = nodes(EVERY);
    let now = Instant::now();
    assert_eq!(b.kv().incr("window", 1, 100, now), 1);
    a.kv().incr("window", 4, 100, now);
    sync_both(&a, &b).await;
    assert_eq!(b.kv().get("window", now).as_deref(), Some(&b"5"[..]));
    // a's key expired: its next round withdraws the share.
    let later = now + Duration::from_millis(200);
    a.sync.round(later, SystemTime::now()).await;
    b.sync.round(later, SystemTime::now()).await;
    assert_eq!(b.kv().incr("window", 1, 100, later), 1);
}

#[test]
fn the_ttl_is_the_longest_key_lifetime_capped_at_three_intervals() {
    let (a, _) = nodes(EVERY);
    let s = Duration::from_secs;
    assert_eq!(
        a.sync.ttl(Some(Duration::from_millis(400))),
        Duration::from_millis(400)
    );
    assert_eq!(a.sync.ttl(Some(s(60))), s(3));
    assert_eq!(a.sync.ttl(None), s(3), "a key that never expires");
    assert_eq!(KvSync::scope("acme"), "kv/acme");
}

#[tokio::test]
async fn tenants_that_never_count_cost_no_store_call() {
    let (a, _) = nodes(EVERY);
    a.kv().set("k", b"v", 0, Instant::now());
    let round = a.sync.round(Instant::now(), SystemTime::now()).await;
    assert_eq!(round, SyncRound::default());
}

/// The background task, awaited by its round counter: a count made on
/// node A is seen by node B once A has published and B has read since.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sync_task_shares_counts_between_nodes() {
    let (a, b) = nodes(Duration::from_millis(10));
    for _ in 0..5 {
        a.kv().incr("calls", 1, 0, Instant::now());
    }
    b.kv().incr("calls", 0, 0, Instant::now());
    let (mut a_rounds, mut b_rounds) = (a.sync.rounds(), b.sync.rounds());
    let tasks = [
        tokio::spawn(a.sync.clone().run()),
        tokio::spawn(b.sync.clone().run()),
    ];
    // A round that started after the counting ended has published it
    // once two have completed; the same holds for B's reads after that.
    async fn two_more(rounds: &mut tokio::sync::watch::Receiver<u64>) {
        let seen = *rounds.borrow_and_update();
        rounds.wait_for(|n| *n >= seen + 2).await.unwrap();
    }
    two_more(&mut a_rounds).await;
    two_more(&mut b_rounds).await;
    assert_eq!(b.kv().incr("calls", 1, 0, Instant::now()), 6);
    for task in tasks {
        task.abort();
    }
}

/// The bundled rate-limit policy on two engines: 10 requests per 10 s
/// window from one source admit 10 in total, not 10 per node.
#[tokio::test]
async fn the_rate_limit_policy_limits_across_nodes() {
    let (a, b) = nodes(EVERY);
    // INVITEs only: the load's smoke call (an OPTIONS) must not count.
    let config = r#"{"requests_per_second": 1, "window_ms": 10000, "methods": ["INVITE"]}"#;
    let load = |node: &Node| {
        node.engine
            .load(testing::spec("rate_limit", config, FailureMode::FailClosed))
            .expect("rate-limit loads")
    };
    let (on_a, on_b) = (load(&a), load(&b));
    // The window is part of the key: start well inside one.
    let into_window = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis()
        % 10_000;
    if into_window > 7_000 {
        tokio::time::sleep(Duration::from_millis(10_050 - into_window as u64)).await;
    }
    let invite = Invite::to("bob");
    let mut admitted = 0;
    for i in 0..30 {
        let version = if i % 2 == 0 { &on_a } else { &on_b };
        let decision = version.on_request(&invite.info(&[]), &mut PolicyCtx::default());
        if decision.action == RequestAction::Continue {
            admitted += 1;
        }
        sync_both(&a, &b).await;
    }
    assert_eq!(admitted, 10);
}

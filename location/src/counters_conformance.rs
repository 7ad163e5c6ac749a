//! The conformance suite every [`SharedCounters`] implementation must pass.
//!
//! Run it with one line in a test module:
//!
//! ```ignore
//! switchyard_location::shared_counters_conformance!(async { LocalCounters::default() });
//! ```
//!
//! which expands to one `#[tokio::test]` per case; attributes go first as
//! for [`location_store_conformance!`](crate::location_store_conformance)
//! (`attrs [#[ignore = "..."]] factory`).
//!
//! Every case uses scopes unique to the run and the real clock as `now`: a
//! backend may keep time to live on the server (Cassandra `USING TTL`), so
//! the one expiry case waits out a one-second TTL in real time.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::SharedCounters;

/// Expands to one `#[tokio::test]` per case, each with a fresh backend
/// built by the given async factory expression.
#[macro_export]
macro_rules! shared_counters_conformance {
    (attrs [$(#[$attr:meta])*] $make:expr) => {
        $crate::shared_counters_conformance!(@all [$(#[$attr])*] $make);
    };
    (@all $attrs:tt $make:expr) => {
        $crate::shared_counters_conformance!(@cases $attrs $make;
            others_sum_every_other_node,
            a_publish_replaces_the_nodes_shares,
            an_empty_publish_withdraws,
            scopes_are_isolated,
            shares_expire_with_their_ttl,
        );
    };
    (@cases $attrs:tt $make:expr; $($case:ident),* $(,)?) => {
        $( $crate::shared_counters_conformance!(@case $attrs $make; $case); )*
    };
    (@case [$(#[$attr:meta])*] $make:expr; $case:ident) => {
        $(#[$attr])*
        #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $case() {
            let counters: ::std::sync::Arc<dyn $crate::SharedCounters> =
                ::std::sync::Arc::new($make.await);
            $crate::counters_conformance::$case(counters).await;
        }
    };
    ($make:expr) => {
        $crate::shared_counters_conformance!(@all [] $make);
    };
}

/// How every case receives the backend under test.
pub type Counters = Arc<dyn SharedCounters>;

/// A scope no other case (or earlier run) uses.
pub fn unique_scope(case: &str) -> String {
    format!("conformance/{case}/{:016x}", rand::random::<u64>())
}

const TTL: Duration = Duration::from_secs(60);

fn sums(pairs: &[(&str, i64)]) -> HashMap<String, i64> {
    pairs.iter().map(|(n, v)| (n.to_string(), *v)).collect()
}

fn shares(pairs: &[(&str, i64)]) -> Vec<(String, i64)> {
    pairs.iter().map(|(n, v)| (n.to_string(), *v)).collect()
}

async fn publish(c: &Counters, scope: &str, node: &str, pairs: &[(&str, i64)], ttl: Duration) {
    c.publish(scope, node, &shares(pairs), ttl, SystemTime::now())
        .await
        .unwrap_or_else(|e| panic!("publish {scope} {node}: {e}"));
}

async fn others(c: &Counters, scope: &str, node: &str) -> HashMap<String, i64> {
    c.others(scope, node, SystemTime::now())
        .await
        .unwrap_or_else(|e| panic!("others {scope} {node}: {e}"))
}

/// A node reads the sum per name of every other node's shares, never its
/// own; negative shares count too.
pub async fn others_sum_every_other_node(c: Counters) {
    let scope = unique_scope("sum");
    publish(&c, &scope, "a", &[("x", 3), ("y", 1)], TTL).await;
    publish(&c, &scope, "b", &[("x", 2), ("z", -4)], TTL).await;
    assert_eq!(
        others(&c, &scope, "c").await,
        sums(&[("x", 5), ("y", 1), ("z", -4)])
    );
    assert_eq!(others(&c, &scope, "a").await, sums(&[("x", 2), ("z", -4)]));
    assert_eq!(others(&c, &scope, "b").await, sums(&[("x", 3), ("y", 1)]));
}

/// A publish replaces all of the node's shares in the scope: a name left
/// out is gone, the others' shares are untouched.
pub async fn a_publish_replaces_the_nodes_shares(c: Counters) {
    let scope = unique_scope("replace");
    publish(&c, &scope, "a", &[("x", 3), ("y", 1)], TTL).await;
    publish(&c, &scope, "b", &[("y", 10)], TTL).await;
    publish(&c, &scope, "a", &[("x", 4)], TTL).await;
    assert_eq!(others(&c, &scope, "c").await, sums(&[("x", 4), ("y", 10)]));
    // Published again at once: the last publish wins, nothing is summed twice.
    publish(&c, &scope, "a", &[("x", 5)], TTL).await;
    publish(&c, &scope, "a", &[("x", 6)], TTL).await;
    assert_eq!(others(&c, &scope, "b").await, sums(&[("x", 6)]));
}

/// An empty publish withdraws the node's shares.
pub async fn an_empty_publish_withdraws(c: Counters) {
    let scope = unique_scope("withdraw");
    publish(&c, &scope, "a", &[("x", 3)], TTL).await;
    publish(&c, &scope, "b", &[("x", 1)], TTL).await;
    publish(&c, &scope, "a", &[], TTL).await;
    assert_eq!(others(&c, &scope, "c").await, sums(&[("x", 1)]));
    assert!(others(&c, &unique_scope("never"), "c").await.is_empty());
}

/// Shares of one scope never show in another.
pub async fn scopes_are_isolated(c: Counters) {
    let (one, two) = (unique_scope("one"), unique_scope("two"));
    publish(&c, &one, "a", &[("x", 1)], TTL).await;
    publish(&c, &two, "a", &[("x", 2)], TTL).await;
    assert_eq!(others(&c, &one, "b").await, sums(&[("x", 1)]));
    assert_eq!(others(&c, &two, "b").await, sums(&[("x", 2)]));
}

/// A node that stops publishing stops counting once its TTL has passed.
pub async fn shares_expire_with_their_ttl(c: Counters) {
    let scope = unique_scope("ttl");
    publish(&c, &scope, "a", &[("x", 3)], Duration::from_secs(1)).await;
    publish(&c, &scope, "b", &[("x", 1)], TTL).await;
    assert_eq!(others(&c, &scope, "c").await, sums(&[("x", 4)]));
    // The TTL runs on the backend's clock: nothing to await but time.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if others(&c, &scope, "c").await == sums(&[("x", 1)]) {
            break;
        }
        assert!(Instant::now() < deadline, "a's share outlived its TTL");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

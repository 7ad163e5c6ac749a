//! Counters the nodes of a cluster add up: concurrent calls per tenant and
//! per user, a policy's `kv` rate-limit counters.
//!
//! Each node owns its share of a counter and publishes it, with a time to
//! live; a node reads the sum of the other nodes' shares. Nothing is ever
//! incremented remotely, so there is no lost update and no lock: a node
//! replaces its own shares wholesale. A node that dies stops refreshing its
//! shares and they expire with their TTL, so nothing it counted leaks.
//!
//! Shares are grouped in a *scope* (e.g. `calls/acme`): one publish
//! replaces all of a node's shares in the scope, one read returns every
//! other node's shares of it. A scope is one Cassandra partition.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use parking_lot::Mutex;

use crate::StoreError;

/// A named count in a scope, e.g. `("tenant", 12)` or `("user:alice", 2)`.
pub type Share = (String, i64);

/// Where the nodes' shares meet. Implemented by the embedded store (nodes
/// in one process) and by Cassandra (the `shared_counters` table).
#[async_trait]
pub trait SharedCounters: Send + Sync + 'static {
    /// Replaces `node`'s shares in `scope` with `shares` (an empty list
    /// withdraws them), each kept until `now + ttl` unless published again.
    async fn publish(
        &self,
        scope: &str,
        node: &str,
        shares: &[Share],
        ttl: Duration,
        now: SystemTime,
    ) -> Result<(), StoreError>;

    /// The sum per name of every other node's live shares in `scope`.
    async fn others(
        &self,
        scope: &str,
        node: &str,
        now: SystemTime,
    ) -> Result<HashMap<String, i64>, StoreError>;
}

/// The in-process implementation: exact for nodes sharing one process
/// (a single node, or a test cluster on one embedded store).
#[derive(Debug, Default)]
pub struct LocalCounters {
    scopes: Mutex<HashMap<String, HashMap<String, NodeShares>>>,
}

#[derive(Debug)]
struct NodeShares {
    shares: Vec<Share>,
    until: SystemTime,
}

#[async_trait]
impl SharedCounters for LocalCounters {
    async fn publish(
        &self,
        scope: &str,
        node: &str,
        shares: &[Share],
        ttl: Duration,
        now: SystemTime,
    ) -> Result<(), StoreError> {
        let mut scopes = self.scopes.lock();
        let nodes = scopes.entry(scope.to_owned()).or_default();
        nodes.retain(|_, s| s.until > now);
        if shares.is_empty() {
            nodes.remove(node);
        } else {
            let shares = shares.to_vec();
            nodes.insert(
                node.to_owned(),
                NodeShares {
                    shares,
                    until: now + ttl,
                },
            );
        }
        if nodes.is_empty() {
            scopes.remove(scope);
        }
        Ok(())
    }

    async fn others(
        &self,
        scope: &str,
        node: &str,
        now: SystemTime,
    ) -> Result<HashMap<String, i64>, StoreError> {
        let scopes = self.scopes.lock();
        Ok(sum_live(scopes.get(scope).into_iter().flatten(), node, now))
    }
}

fn sum_live<'a>(
    nodes: impl Iterator<Item = (&'a String, &'a NodeShares)>,
    except: &str,
    now: SystemTime,
) -> HashMap<String, i64> {
    let mut sums = HashMap::new();
    for (_, s) in nodes.filter(|(n, s)| n.as_str() != except && s.until > now) {
        for (name, value) in &s.shares {
            *sums.entry(name.clone()).or_insert(0) += value;
        }
    }
    sums
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::shared_counters_conformance!(async { LocalCounters::default() });

    /// In-process shares expire by the `now` argument, exactly.
    #[tokio::test]
    async fn local_shares_expire_at_now_plus_ttl() {
        let counters = LocalCounters::default();
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let ttl = Duration::from_secs(3);
        let share = [("x".to_owned(), 2)];
        counters.publish("s", "a", &share, ttl, t0).await.unwrap();
        let at = |s| t0 + Duration::from_millis(s);
        assert_eq!(counters.others("s", "b", at(2_999)).await.unwrap()["x"], 2);
        assert!(
            counters
                .others("s", "b", at(3_000))
                .await
                .unwrap()
                .is_empty()
        );
    }
}

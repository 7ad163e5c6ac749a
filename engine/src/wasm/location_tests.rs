//! What a policy's `location.lookup` sees on a shared store: two nodes,
//! each with a [`ReadCache`] over one store, as two proxies over Cassandra.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::PolicyLocation;
use crate::TenantsConfig;
use switchyard_location::conformance::{base_time, contact, update};
use switchyard_location::{Aor, EmbeddedStore, LocationStore, ReadCache, ReadCacheConfig};

fn tenants() -> TenantsConfig {
    let mut tenants = TenantsConfig::default();
    tenants.domains.insert("acme.test".into(), "acme".into());
    tenants
}

/// Node A's policy view and cache, node B's store handle.
fn two_nodes() -> (PolicyLocation, Arc<ReadCache>, Arc<ReadCache>) {
    let shared = Arc::new(EmbeddedStore::new());
    let cache = || Arc::new(ReadCache::new(shared.clone(), ReadCacheConfig::default()));
    let (a, b) = (cache(), cache());
    (PolicyLocation::new(a.clone(), tenants()), a, b)
}

async fn register_through(node: &ReadCache, user: &str, at: SystemTime) -> Aor {
    let aor = Aor::parse(&format!("{user}@acme.test")).unwrap();
    let contact_uri = format!("sip:{user}@127.0.0.2");
    let update = update(user, 1, vec![contact(&contact_uri, 3600)]);
    node.register(&aor, &update, at).await.unwrap();
    aor
}

#[tokio::test]
async fn a_lookup_sees_another_nodes_registration_after_a_prefetch() {
    let (policy_view, node_a, node_b) = two_nodes();
    let t0 = base_time();
    let alice = register_through(&node_b, "alice", t0).await;
    assert!(policy_view.bindings("acme", &alice, t0).is_empty());

    let filter = tenants().aor_filter("acme");
    node_a.prefetch(&[filter], t0).await;
    let seen = policy_view.bindings("acme", &alice, t0);
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].contact, "sip:alice@127.0.0.2");
    // Another tenant's policy never sees it, cached or not.
    assert!(policy_view.bindings("globex", &alice, t0).is_empty());
}

#[tokio::test]
async fn a_missed_lookup_is_answered_once_the_refresh_ran() {
    let (policy_view, node_a, node_b) = two_nodes();
    let t0 = base_time();
    let bob = register_through(&node_b, "bob", t0).await;
    assert!(policy_view.bindings("acme", &bob, t0).is_empty(), "a miss");
    node_a.refresh_queued(t0).await;
    assert_eq!(policy_view.bindings("acme", &bob, t0).len(), 1);
    // Past the staleness bound the view is empty again until refreshed.
    let later = t0 + Duration::from_secs(2);
    assert!(policy_view.bindings("acme", &bob, later).is_empty());
    node_a.refresh_queued(later).await;
    assert_eq!(policy_view.bindings("acme", &bob, later).len(), 1);
}

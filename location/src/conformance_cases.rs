//! The conformance cases, one `pub async fn` per behaviour; see the parent
//! module for how a backend runs them.

use std::time::{Duration, SystemTime};

use super::*;
use crate::RegisterError;
use switchyard_proto::registrar::{RegisterOutcome, RuleError};

async fn register(
    store: &Store,
    aor: &Aor,
    update: &RegisterUpdate,
    now: SystemTime,
) -> RegisterOutcome {
    store
        .register(aor, update, now)
        .await
        .unwrap_or_else(|e| panic!("register {aor} failed: {e}"))
}

async fn lookup(store: &Store, aor: &Aor, now: SystemTime) -> Vec<Binding> {
    let mut bindings = store.lookup(aor, now).await.expect("lookup");
    bindings.sort_by(|a, b| a.contact.cmp(&b.contact).then(a.reg_id.cmp(&b.reg_id)));
    bindings
}

fn contacts_of(bindings: &[Binding]) -> Vec<&str> {
    let mut contacts: Vec<&str> = bindings.iter().map(|b| b.contact.as_str()).collect();
    contacts.sort_unstable();
    contacts
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn assert_out_of_order(result: Result<RegisterOutcome, RegisterError>) {
    match result {
        Err(RegisterError::Rejected(RuleError::OutOfOrder { .. })) => {}
        other => panic!("expected an out-of-order rejection, got {other:?}"),
    }
}

/// A binding is added, refreshed (same Call-ID, higher CSeq) and removed
/// with `Expires: 0`; the outcome reports what was written and removed.
pub async fn add_refresh_remove(store: Store) {
    let (aor, t0) = (unique_aor("add"), base_time());
    let c1 = "sip:alice@127.0.0.2:40000";

    let added = register(&store, &aor, &update("A", 1, vec![contact(c1, 3600)]), t0).await;
    assert_eq!(contacts_of(&added.bindings), [c1]);
    assert_eq!(added.written, [BindingKey::Contact(c1.into())]);
    let stored = lookup(&store, &aor, t0).await;
    assert_eq!(stored, added.bindings);
    assert_eq!(stored[0].expires_at, t0 + secs(3600));
    assert_eq!((stored[0].call_id.as_str(), stored[0].cseq), ("A", 1));

    let t1 = t0 + secs(100);
    register(&store, &aor, &update("A", 2, vec![contact(c1, 1800)]), t1).await;
    let stored = lookup(&store, &aor, t1).await;
    assert_eq!(stored.len(), 1, "a refresh must not add a binding");
    assert_eq!(stored[0].expires_at, t1 + secs(1800));
    assert_eq!(stored[0].cseq, 2);
    assert_eq!(
        stored[0].registered_at, t0,
        "a refresh keeps the creation time"
    );

    let removed = register(&store, &aor, &update("A", 3, vec![contact(c1, 0)]), t1).await;
    assert!(removed.bindings.is_empty());
    assert_eq!(removed.removed, [BindingKey::Contact(c1.into())]);
    assert!(lookup(&store, &aor, t1).await.is_empty());
}

/// `Contact: *` removes every binding, unless a binding from the same
/// Call-ID has a CSeq that is not lower (RFC 3261 §10.3 step 6).
pub async fn wildcard_removes_all(store: Store) {
    let (aor, t0) = (unique_aor("wildcard"), base_time());
    register(
        &store,
        &aor,
        &update("A", 5, vec![contact("sip:a@127.0.0.2", 3600)]),
        t0,
    )
    .await;
    register(
        &store,
        &aor,
        &update("B", 1, vec![contact("sip:b@127.0.0.3", 3600)]),
        t0,
    )
    .await;

    assert_out_of_order(store.register(&aor, &remove_all("A", 5), t0).await);
    assert_eq!(
        lookup(&store, &aor, t0).await.len(),
        2,
        "a rejected * changes nothing"
    );

    let outcome = register(&store, &aor, &remove_all("A", 6), t0).await;
    assert!(outcome.bindings.is_empty());
    assert_eq!(outcome.removed.len(), 2);
    assert!(lookup(&store, &aor, t0).await.is_empty());
}

/// Expiry is judged by the `now` argument, inclusively, and an expired
/// binding neither shows up nor blocks re-registration.
pub async fn expiry_follows_now(store: Store) {
    let (aor, t0) = (unique_aor("expiry"), base_time());
    let c1 = "sip:alice@127.0.0.2";
    register(&store, &aor, &update("A", 1, vec![contact(c1, 60)]), t0).await;
    assert_eq!(lookup(&store, &aor, t0 + secs(59)).await.len(), 1);
    assert!(lookup(&store, &aor, t0 + secs(60)).await.is_empty());

    // Same Call-ID and CSeq as the expired binding: it no longer exists, so
    // there is nothing to be out of order with.
    let t1 = t0 + secs(61);
    let outcome = register(&store, &aor, &update("A", 1, vec![contact(c1, 60)]), t1).await;
    assert_eq!(outcome.bindings.len(), 1);
    assert_eq!(
        outcome.bindings[0].registered_at, t1,
        "an expired binding is new again"
    );
}

/// A CSeq not higher than the stored one for the same Call-ID aborts the
/// whole request, including its other contacts (§10.3 step 7).
pub async fn stale_cseq_is_rejected_atomically(store: Store) {
    let (aor, t0) = (unique_aor("stale"), base_time());
    let (c1, c2) = ("sip:alice@127.0.0.2", "sip:alice@127.0.0.3");
    register(&store, &aor, &update("A", 5, vec![contact(c1, 3600)]), t0).await;

    assert_out_of_order(
        store
            .register(&aor, &update("A", 5, vec![contact(c1, 60)]), t0)
            .await,
    );
    let stale = update("A", 4, vec![contact(c2, 3600), contact(c1, 0)]);
    assert_out_of_order(store.register(&aor, &stale, t0).await);

    let stored = lookup(&store, &aor, t0).await;
    assert_eq!(
        contacts_of(&stored),
        [c1],
        "nothing of a rejected request applies"
    );
    assert_eq!(stored[0].cseq, 5);
    assert_eq!(stored[0].expires_at, t0 + secs(3600));
}

/// A different Call-ID may update a binding whatever its CSeq.
pub async fn new_call_id_replaces(store: Store) {
    let (aor, t0) = (unique_aor("callid"), base_time());
    let c1 = "sip:alice@127.0.0.2";
    register(&store, &aor, &update("A", 5, vec![contact(c1, 3600)]), t0).await;
    register(&store, &aor, &update("B", 1, vec![contact(c1, 100)]), t0).await;
    let stored = lookup(&store, &aor, t0).await;
    assert_eq!((stored[0].call_id.as_str(), stored[0].cseq), ("B", 1));
    assert_eq!(stored[0].expires_at, t0 + secs(100));

    // The binding now belongs to Call-ID B, so A's lower CSeq is no longer
    // compared against anything.
    register(&store, &aor, &update("A", 2, vec![contact(c1, 200)]), t0).await;
    assert_eq!(lookup(&store, &aor, t0).await[0].call_id, "A");
}

/// Several contacts per request and per AOR, each with its own q and
/// expiry, added and removed independently.
pub async fn multiple_contacts(store: Store) {
    let (aor, t0) = (unique_aor("multi"), base_time());
    let [c1, c2, c3, c4] = [
        "sip:a@127.0.0.2",
        "sip:b@127.0.0.3",
        "sip:c@127.0.0.4",
        "sip:d@127.0.0.5",
    ];
    let with_q = |uri, q| ContactUpdate {
        q,
        ..contact(uri, 3600)
    };
    let first = update(
        "A",
        1,
        vec![
            with_q(c1, Some(1000)),
            with_q(c2, Some(500)),
            with_q(c3, None),
        ],
    );
    assert_eq!(register(&store, &aor, &first, t0).await.bindings.len(), 3);

    let stored = lookup(&store, &aor, t0).await;
    let qs: Vec<Option<u16>> = stored.iter().map(|b| b.q).collect();
    assert_eq!(qs, [Some(1000), Some(500), None]);

    register(&store, &aor, &update("A", 2, vec![contact(c2, 0)]), t0).await;
    register(&store, &aor, &update("B", 1, vec![contact(c4, 60)]), t0).await;
    assert_eq!(contacts_of(&lookup(&store, &aor, t0).await), [c1, c3, c4]);
}

/// With `+sip.instance`, identity is (instance, reg-id): a new contact URI
/// for the same pair replaces the binding, another reg-id adds a flow, and a
/// plain contact with the same URI is a different binding (RFC 5626 §6).
pub async fn instance_and_reg_id_identity(store: Store) {
    let (aor, t0) = (unique_aor("instance"), base_time());
    let instance = "<urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6>";
    let (old, new) = ("sip:alice@127.0.0.2:5060", "sip:alice@127.0.0.2:6000");

    register(
        &store,
        &aor,
        &update("A", 1, vec![outbound_contact(old, instance, 1, 3600)]),
        t0,
    )
    .await;
    let upper = instance.to_ascii_uppercase();
    register(
        &store,
        &aor,
        &update("B", 1, vec![outbound_contact(new, &upper, 1, 3600)]),
        t0,
    )
    .await;
    let stored = lookup(&store, &aor, t0).await;
    assert_eq!(
        contacts_of(&stored),
        [new],
        "same instance and reg-id replaces"
    );

    register(
        &store,
        &aor,
        &update("C", 1, vec![outbound_contact(new, instance, 2, 3600)]),
        t0,
    )
    .await;
    register(&store, &aor, &update("D", 1, vec![contact(new, 3600)]), t0).await;
    let stored = lookup(&store, &aor, t0).await;
    let ids: Vec<(Option<u32>, bool)> = stored
        .iter()
        .map(|b| (b.reg_id, b.instance.is_some()))
        .collect();
    assert_eq!(ids, [(None, false), (Some(1), true), (Some(2), true)]);
}

/// Every field written is read back exactly, and a refresh from another
/// node and flow updates them while keeping the creation time.
pub async fn all_fields_round_trip(store: Store) {
    let (aor, t0) = (unique_aor("fields"), base_time());
    let instance = "<urn:uuid:00000000-0000-1000-8000-000a95a0e128>";
    let mut request = update(
        "fields-call@127.0.0.2",
        42,
        vec![ContactUpdate {
            q: Some(700),
            ..outbound_contact(
                "sip:alice@127.0.0.2:5070;transport=tcp;ob",
                instance,
                7,
                600,
            )
        }],
    );
    request.path = vec![
        "<sip:edge1.test;lr>".into(),
        "<sip:edge2.test;lr;ob>".into(),
    ];
    request.source = Source {
        transport: Transport::Tcp,
        remote: "[::1]:41000".parse().expect("address"),
        local: "[::1]:5060".parse().expect("address"),
    };
    request.node = Some("node-a".into());
    request.user_agent = Some("Conformance/1.0 (\"quoted\")".into());

    let expected = Binding {
        contact: "sip:alice@127.0.0.2:5070;transport=tcp;ob".into(),
        contact_key: "sip:alice@127.0.0.2:5070;transport=tcp;ob".into(),
        instance: Some(instance.into()),
        reg_id: Some(7),
        q: Some(700),
        path: request.path.clone(),
        call_id: request.call_id.clone(),
        cseq: 42,
        expires_at: t0 + secs(600),
        registered_at: t0,
        source: request.source,
        node: Some("node-a".into()),
        user_agent: request.user_agent.clone(),
    };
    assert_eq!(
        register(&store, &aor, &request, t0).await.bindings,
        std::slice::from_ref(&expected)
    );
    assert_eq!(
        lookup(&store, &aor, t0).await,
        std::slice::from_ref(&expected)
    );

    let t1 = t0 + secs(300);
    request.cseq = 43;
    request.path.clear();
    request.source = sample_source();
    request.node = Some("node-b".into());
    request.user_agent = None;
    register(&store, &aor, &request, t1).await;
    let refreshed = Binding {
        path: Vec::new(),
        cseq: 43,
        expires_at: t1 + secs(600),
        source: sample_source(),
        node: Some("node-b".into()),
        user_agent: None,
        ..expected
    };
    assert_eq!(lookup(&store, &aor, t1).await, [refreshed]);
}

/// Lookups leave out bindings expired at `now`, keeping the others.
pub async fn lookup_excludes_expired(store: Store) {
    let (aor, t0) = (unique_aor("lookup"), base_time());
    let (short, long) = ("sip:short@127.0.0.2", "sip:long@127.0.0.3");
    register(
        &store,
        &aor,
        &update("A", 1, vec![contact(short, 60), contact(long, 3600)]),
        t0,
    )
    .await;
    assert_eq!(
        contacts_of(&lookup(&store, &aor, t0 + secs(30)).await),
        [long, short]
    );
    assert_eq!(
        contacts_of(&lookup(&store, &aor, t0 + secs(61)).await),
        [long]
    );
    assert!(lookup(&store, &aor, t0 + secs(3600)).await.is_empty());
    assert!(lookup(&store, &unique_aor("unknown"), t0).await.is_empty());
}

/// Purging removes exactly the due bindings and leaves the rest readable.
pub async fn purge_removes_only_due(store: Store) {
    let t0 = base_time();
    let (mixed, gone, kept) = (
        unique_aor("purge1"),
        unique_aor("purge2"),
        unique_aor("purge3"),
    );
    let mixed_request = update(
        "A",
        1,
        vec![
            contact("sip:a@127.0.0.2", 60),
            contact("sip:b@127.0.0.2", 3600),
        ],
    );
    register(&store, &mixed, &mixed_request, t0).await;
    register(
        &store,
        &gone,
        &update("B", 1, vec![contact("sip:c@127.0.0.3", 30)]),
        t0,
    )
    .await;
    register(
        &store,
        &kept,
        &update("C", 1, vec![contact("sip:d@127.0.0.4", 7200)]),
        t0,
    )
    .await;

    let t1 = t0 + secs(100);
    let purged = store.purge_expired(t1).await.expect("purge");
    if store.expires_natively() {
        assert_eq!(purged, 0);
    } else {
        assert_eq!(purged, 2, "exactly the two due bindings");
        assert_eq!(
            store.purge_expired(t1).await.expect("purge"),
            0,
            "nothing due twice"
        );
    }
    assert_eq!(
        contacts_of(&lookup(&store, &mixed, t1).await),
        ["sip:b@127.0.0.2"]
    );
    assert!(lookup(&store, &gone, t1).await.is_empty());
    assert_eq!(lookup(&store, &kept, t1).await.len(), 1);

    // A purged AOR can be registered again from scratch.
    register(
        &store,
        &gone,
        &update("B", 1, vec![contact("sip:c@127.0.0.3", 30)]),
        t1,
    )
    .await;
    assert_eq!(lookup(&store, &gone, t1).await.len(), 1);
}

/// A REGISTER without Contact reads the bindings and changes nothing.
pub async fn fetch_changes_nothing(store: Store) {
    let (aor, t0) = (unique_aor("fetch"), base_time());
    register(
        &store,
        &aor,
        &update("A", 1, vec![contact("sip:a@127.0.0.2", 3600)]),
        t0,
    )
    .await;
    let fetch = RegisterUpdate {
        contacts: ContactsUpdate::Fetch,
        ..update("B", 9, Vec::new())
    };
    let outcome = register(&store, &aor, &fetch, t0 + secs(10)).await;
    assert_eq!(outcome.bindings.len(), 1);
    assert!(outcome.written.is_empty() && outcome.removed.is_empty());
    let stored = lookup(&store, &aor, t0).await;
    assert_eq!((stored[0].call_id.as_str(), stored[0].cseq), ("A", 1));
}

/// Updates to one AOR never show up under another.
pub async fn aors_are_isolated(store: Store) {
    let (alice, bob, t0) = (unique_aor("alice"), unique_aor("bob"), base_time());
    register(
        &store,
        &alice,
        &update("A", 1, vec![contact("sip:alice@127.0.0.2", 3600)]),
        t0,
    )
    .await;
    register(
        &store,
        &bob,
        &update("A", 1, vec![contact("sip:bob@127.0.0.3", 3600)]),
        t0,
    )
    .await;
    register(&store, &alice, &remove_all("A", 2), t0).await;
    assert!(lookup(&store, &alice, t0).await.is_empty());
    assert_eq!(
        contacts_of(&lookup(&store, &bob, t0).await),
        ["sip:bob@127.0.0.3"]
    );
}

/// Concurrent REGISTERs for one AOR lose no update: distinct contacts all
/// end up stored, and racing refreshes of one contact end at the highest
/// CSeq (the others may be rejected as out of order, never applied late).
pub async fn concurrent_registers_keep_every_update(store: Store) {
    const N: u32 = 32;
    let (aor, t0) = (unique_aor("concurrent"), base_time());
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..N {
        let (store, aor) = (store.clone(), aor.clone());
        tasks.spawn(async move {
            let request = update(
                &format!("call-{i}"),
                1,
                vec![contact(&format!("sip:u{i}@127.0.0.2"), 3600)],
            );
            store.register(&aor, &request, t0).await.map(|_| ())
        });
    }
    while let Some(result) = tasks.join_next().await {
        result
            .expect("task")
            .expect("distinct contacts never conflict");
    }
    assert_eq!(lookup(&store, &aor, t0).await.len(), N as usize);

    let shared = "sip:shared@127.0.0.9";
    for cseq in 1..=N {
        let (store, aor) = (store.clone(), aor.clone());
        tasks.spawn(async move {
            let request = update("refresh", cseq, vec![contact(shared, 600 + cseq)]);
            match store.register(&aor, &request, t0).await {
                Ok(_) | Err(RegisterError::Rejected(RuleError::OutOfOrder { .. })) => Ok(()),
                Err(other) => Err(other),
            }
        });
    }
    while let Some(result) = tasks.join_next().await {
        result
            .expect("task")
            .expect("only ordering rejections are allowed");
    }
    let stored = lookup(&store, &aor, t0).await;
    let binding = stored
        .iter()
        .find(|b| b.contact == shared)
        .expect("shared contact stored");
    assert_eq!(binding.cseq, N, "the highest CSeq always wins");
    assert_eq!(binding.expires_at, t0 + secs(u64::from(600 + N)));
    assert_eq!(stored.len(), N as usize + 1);
}

/// `list_aors` finds exactly the AORs of the asked domains (and user) that
/// still hold a binding, in AOR order, capped at the limit.
pub async fn list_aors_filters_and_hides_expired(store: Store) {
    let domain = format!("list-{:016x}.test", rand::random::<u64>());
    let other = format!("other-{domain}");
    let t0 = base_time();
    let aor = |user: &str, domain: &str| Aor::parse(&format!("{user}@{domain}")).unwrap();
    for (user, domain, expires) in [
        ("carol", &domain, 3600),
        ("alice", &domain, 3600),
        ("bob", &domain, 10),
        ("alice", &other, 3600),
    ] {
        let contact_uri = format!("sip:{user}@127.0.0.2");
        register(
            &store,
            &aor(user, domain),
            &update("L", 1, vec![contact(&contact_uri, expires)]),
            t0,
        )
        .await;
    }
    let list = |domains: Vec<String>, user: Option<&str>, at: SystemTime, limit: usize| {
        let store = store.clone();
        let filter = AorFilter {
            domains,
            user: user.map(str::to_owned),
            ..AorFilter::default()
        };
        async move { store.list_aors(&filter, at, limit).await.expect("list") }
    };
    let upper = domain.to_ascii_uppercase();
    assert_eq!(
        list(vec![upper.clone()], None, t0, 100).await,
        [
            aor("alice", &domain),
            aor("bob", &domain),
            aor("carol", &domain)
        ]
    );
    // bob's only binding has expired by then.
    assert_eq!(
        list(vec![domain.clone()], None, t0 + secs(60), 100).await,
        [aor("alice", &domain), aor("carol", &domain)]
    );
    let mut alices = vec![aor("alice", &domain), aor("alice", &other)];
    alices.sort();
    assert_eq!(
        list(vec![domain.clone(), other.clone()], Some("alice"), t0, 100).await,
        alices
    );
    assert_eq!(list(vec![domain.clone()], None, t0, 2).await.len(), 2);
}

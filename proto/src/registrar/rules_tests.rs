use std::time::{Duration, SystemTime};

use super::*;
use crate::location::samples::{contact, outbound_contact, remove_all, update};

fn t(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
}

fn registered(requests: &[RegisterUpdate]) -> Vec<Binding> {
    requests.iter().fold(Vec::new(), |bindings, request| {
        apply(bindings, request, t(0)).expect("accepted").bindings
    })
}

#[test]
fn new_contact_is_added_with_request_ordering_and_expiry() {
    let outcome = apply(
        Vec::new(),
        &update("A", 7, vec![contact("sip:a@h", 90)]),
        t(0),
    )
    .unwrap();
    let [binding] = outcome.bindings.as_slice() else {
        panic!("one binding expected: {outcome:?}");
    };
    assert_eq!((binding.call_id.as_str(), binding.cseq), ("A", 7));
    assert_eq!(binding.expires_at, t(90));
    assert_eq!(binding.registered_at, t(0));
    assert_eq!(outcome.written, [BindingKey::Contact("sip:a@h".into())]);
    assert!(outcome.removed.is_empty());
}

#[test]
fn expires_zero_for_unknown_contact_is_a_no_op() {
    let outcome = apply(
        Vec::new(),
        &update("A", 1, vec![contact("sip:a@h", 0)]),
        t(0),
    )
    .unwrap();
    assert_eq!(outcome, RegisterOutcome::default());
}

#[test]
fn same_call_id_needs_a_higher_cseq() {
    let existing = registered(&[update("A", 5, vec![contact("sip:a@h", 60)])]);
    for cseq in [4, 5] {
        let err = apply(
            existing.clone(),
            &update("A", cseq, vec![contact("sip:a@h", 60)]),
            t(1),
        );
        assert_eq!(
            err,
            Err(RuleError::OutOfOrder {
                call_id: "A".into(),
                stored: 5,
                request: cseq
            })
        );
    }
    assert!(
        apply(
            existing,
            &update("A", 6, vec![contact("sip:a@h", 60)]),
            t(1)
        )
        .is_ok()
    );
}

#[test]
fn one_stale_contact_aborts_the_whole_request() {
    let existing = registered(&[
        update("A", 5, vec![contact("sip:a@h", 60)]),
        update("B", 1, vec![contact("sip:b@h", 60)]),
    ]);
    // b is fine (different Call-ID) but a is stale: nothing may change.
    let request = update("A", 3, vec![contact("sip:b@h", 0), contact("sip:a@h", 60)]);
    assert!(apply(existing, &request, t(1)).is_err());
}

#[test]
fn wildcard_checks_ordering_of_every_binding() {
    let existing = registered(&[
        update("A", 5, vec![contact("sip:a@h", 60)]),
        update("B", 1, vec![contact("sip:b@h", 60)]),
    ]);
    assert!(apply(existing.clone(), &remove_all("A", 5), t(1)).is_err());
    let outcome = apply(existing, &remove_all("C", 1), t(1)).unwrap();
    assert!(outcome.bindings.is_empty());
    assert_eq!(outcome.removed.len(), 2);
}

#[test]
fn expired_bindings_are_dropped_and_do_not_block() {
    let existing = registered(&[update(
        "A",
        5,
        vec![contact("sip:a@h", 60), contact("sip:b@h", 600)],
    )]);
    let outcome = apply(
        existing,
        &update("A", 1, vec![contact("sip:a@h", 60)]),
        t(60),
    )
    .unwrap();
    assert_eq!(outcome.bindings.len(), 2);
    let a = outcome
        .bindings
        .iter()
        .find(|b| b.contact == "sip:a@h")
        .unwrap();
    assert_eq!((a.cseq, a.registered_at), (1, t(60)));
    // b was not touched by this request: it keeps its own ordering state.
    let b = outcome
        .bindings
        .iter()
        .find(|b| b.contact == "sip:b@h")
        .unwrap();
    assert_eq!(b.cseq, 5);
    assert_eq!(outcome.written, [BindingKey::Contact("sip:a@h".into())]);
}

#[test]
fn duplicate_contact_in_one_request_is_not_out_of_order_with_itself() {
    let request = update(
        "A",
        1,
        vec![contact("sip:a@h", 60), contact("sip:a@h", 120)],
    );
    let outcome = apply(Vec::new(), &request, t(0)).unwrap();
    assert_eq!(outcome.bindings.len(), 1);
    assert_eq!(
        outcome.bindings[0].expires_at,
        t(120),
        "the last listing wins"
    );
    assert_eq!(outcome.written.len(), 1);

    let add_then_remove = update("A", 1, vec![contact("sip:b@h", 60), contact("sip:b@h", 0)]);
    let outcome = apply(Vec::new(), &add_then_remove, t(0)).unwrap();
    assert!(outcome.bindings.is_empty());
    assert!(outcome.written.is_empty(), "nothing left to write");
}

#[test]
fn refresh_updates_everything_but_creation_time() {
    let existing = registered(&[update(
        "A",
        1,
        vec![outbound_contact("sip:a@h", "<urn:x>", 1, 60)],
    )]);
    let mut refresh = update(
        "A",
        2,
        vec![outbound_contact("sip:a@other", "<urn:x>", 1, 600)],
    );
    refresh.path = vec!["<sip:edge;lr>".into()];
    refresh.node = Some("n2".into());
    refresh.user_agent = Some("UA/2".into());
    let outcome = apply(existing, &refresh, t(30)).unwrap();
    let [binding] = outcome.bindings.as_slice() else {
        panic!("refresh must replace: {outcome:?}");
    };
    assert_eq!(binding.contact, "sip:a@other");
    assert_eq!(binding.path, ["<sip:edge;lr>"]);
    assert_eq!(binding.node.as_deref(), Some("n2"));
    assert_eq!(binding.user_agent.as_deref(), Some("UA/2"));
    assert_eq!(binding.expires_at, t(630));
    assert_eq!(binding.registered_at, t(0));
}

#[test]
fn fetch_returns_live_bindings_only() {
    let existing = registered(&[update(
        "A",
        1,
        vec![contact("sip:a@h", 60), contact("sip:b@h", 600)],
    )]);
    let fetch = RegisterUpdate {
        contacts: ContactsUpdate::Fetch,
        ..update("Z", 1, Vec::new())
    };
    let outcome = apply(existing, &fetch, t(60)).unwrap();
    assert_eq!(outcome.bindings.len(), 1);
    assert_eq!(outcome.bindings[0].contact, "sip:b@h");
}

#[test]
fn a_binding_cap_refuses_additions_but_not_removals() {
    let mut capped = update(
        "A",
        1,
        vec![contact("sip:a@h", 3600), contact("sip:b@h", 3600)],
    );
    capped.max_bindings = Some(1);
    let err = apply(Vec::new(), &capped, t(0)).unwrap_err();
    assert_eq!(err, RuleError::TooManyBindings { count: 2, max: 1 });

    let two = apply(Vec::new(), &update("A", 1, capped_contacts()), t(0)).unwrap();
    let mut remove = update("A", 2, vec![contact("sip:a@h", 0)]);
    remove.max_bindings = Some(0);
    let left = apply(two.bindings, &remove, t(1)).unwrap();
    assert_eq!(left.bindings.len(), 1);
}

fn capped_contacts() -> Vec<ContactUpdate> {
    vec![contact("sip:a@h", 3600), contact("sip:b@h", 3600)]
}

//! Matching keys: RFC 3261 §17.1.3 (client) and §17.2.3 (server).

use std::collections::HashMap;

use crate::transaction::{ClientKey, Kind, ServerKey, is_rfc3261_branch};

const BRANCH: &str = "z9hG4bK74bf9";

#[test]
fn ack_matches_the_invite_transaction_but_cancel_does_not() {
    let invite = ServerKey::new(BRANCH, "pc33.atlanta.com", "INVITE");
    assert_eq!(ServerKey::new(BRANCH, "pc33.atlanta.com", "ACK"), invite);
    assert_eq!(
        ServerKey::new(BRANCH, "pc33.atlanta.com", "ACK").method(),
        "INVITE"
    );
    assert_ne!(ServerKey::new(BRANCH, "pc33.atlanta.com", "CANCEL"), invite);
}

#[test]
fn server_key_compares_branch_and_host_case_insensitively() {
    let key = ServerKey::new(BRANCH, "PC33.Atlanta.COM:5060", "INVITE");
    assert_eq!(
        key,
        ServerKey::new("Z9HG4BK74BF9", "pc33.atlanta.com:5060", "INVITE")
    );
    assert_eq!(key.branch(), "z9hg4bk74bf9");
    assert_eq!(key.sent_by(), "pc33.atlanta.com:5060");
    assert_eq!(key.method(), "INVITE");
}

#[test]
fn server_key_distinguishes_sent_by_branch_and_method() {
    let key = ServerKey::new(BRANCH, "10.0.0.1:5060", "OPTIONS");
    assert_ne!(key, ServerKey::new(BRANCH, "10.0.0.2:5060", "OPTIONS"));
    assert_ne!(key, ServerKey::new(BRANCH, "10.0.0.1:5070", "OPTIONS"));
    assert_ne!(key, ServerKey::new(BRANCH, "10.0.0.1", "OPTIONS"));
    assert_ne!(
        key,
        ServerKey::new("z9hG4bK74bf8", "10.0.0.1:5060", "OPTIONS")
    );
    // Methods are case-sensitive (§7.1).
    assert_ne!(key, ServerKey::new(BRANCH, "10.0.0.1:5060", "options"));
}

#[test]
fn server_key_fields_cannot_alias() {
    // The fields share one buffer; shifting text between them is a
    // different key.
    assert_ne!(
        ServerKey::new("z9hG4bKa", "b:5060", "INVITE"),
        ServerKey::new("z9hG4bK", "ab:5060", "INVITE")
    );
    assert_ne!(
        ClientKey::new("z9hG4bKI", "NVITE"),
        ClientKey::new("z9hG4bK", "INVITE")
    );
}

#[test]
fn client_key_separates_cancel_responses_from_invite_responses() {
    let mut map = HashMap::new();
    map.insert(ClientKey::new(BRANCH, "INVITE"), "invite");
    map.insert(ClientKey::new(BRANCH, "CANCEL"), "cancel");
    assert_eq!(map[&ClientKey::new(BRANCH, "CANCEL")], "cancel");
    assert_eq!(map[&ClientKey::new("Z9HG4BK74BF9", "INVITE")], "invite");
    assert!(!map.contains_key(&ClientKey::new("z9hG4bKother", "INVITE")));
    let key = ClientKey::new(BRANCH, "INVITE");
    assert_eq!((key.branch(), key.method()), ("z9hg4bk74bf9", "INVITE"));
}

#[test]
fn magic_cookie_detection() {
    assert!(is_rfc3261_branch("z9hG4bK776asdhds"));
    assert!(is_rfc3261_branch("Z9HG4BK776asdhds"));
    assert!(is_rfc3261_branch("z9hG4bK"));
    assert!(!is_rfc3261_branch("776asdhds"));
    assert!(!is_rfc3261_branch("z9hG4b"));
    assert!(!is_rfc3261_branch(""));
    // Multi-byte input must not panic on a char boundary.
    assert!(!is_rfc3261_branch("z9hG4bé"));
}

#[test]
fn kind_of_method() {
    assert_eq!(Kind::of_method("INVITE"), Kind::Invite);
    for method in ["ACK", "BYE", "CANCEL", "REGISTER", "invite", "FOO"] {
        assert_eq!(Kind::of_method(method), Kind::NonInvite, "{method}");
    }
}

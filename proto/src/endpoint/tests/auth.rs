//! `[auth]` through the endpoint: who is challenged, in which role and
//! realm, and what each verdict of the driver's digest check becomes.

use std::time::Duration;

use super::*;
use crate::proxy::request::LocalAnswer;

fn harness() -> Harness {
    Harness::with(
        EndpointConfig {
            auth: true,
            trusted: vec!["127.0.0.9/32".parse().unwrap()],
            ..config()
        },
        edge("node-a"),
    )
}

const REGISTER_BOB: &str = "REGISTER sip:sip.test SIP/2.0
Via: SIP/2.0/UDP 127.0.0.2:5080;branch=z9hG4bKauthreg
Max-Forwards: 70
From: <sip:bob@sip.test>;tag=b1
To: <sip:bob@sip.test>
Call-ID: authreg@127.0.0.2
CSeq: 1 REGISTER
Contact: <sip:bob@127.0.0.2:5080>
Content-Length: 0

";

fn challenge(code: u16) -> AuthVerdict {
    let mut answer = LocalAnswer::new(code, "");
    answer.headers.push((
        "WWW-Authenticate".into(),
        "Digest realm=\"sip.test\"".into(),
    ));
    AuthVerdict::Challenge {
        answer,
        stale: false,
    }
}

/// The one outstanding digest check: its role and realm.
fn take_auth(h: &mut Harness) -> (IoId, AuthRole, String) {
    let io = h.take_io();
    let IoKind::Authenticate(request) = io.kind else {
        panic!("a digest check expected: {io:?}");
    };
    (io.id, request.role, request.realm)
}

#[test]
fn a_register_is_challenged_once_as_registrar_of_its_domain() {
    let mut h = harness();
    h.recv(phone(5080), REGISTER_BOB);
    let (id, role, realm) = take_auth(&mut h);
    assert_eq!((role, realm.as_str()), (AuthRole::Registrar, "sip.test"));
    h.answer(id, IoResult::Authenticated(challenge(401)));
    let answer = h.sent_one();
    assert_eq!(status(&answer), 401, "{answer}");
    assert_eq!(headers(&answer, "WWW-Authenticate").len(), 1);
    assert_eq!(h.ep.stats.auth_challenged.get(), 1);
    // Answered once: no Timer G retransmissions towards a maybe spoofed
    // source, and no transaction left behind.
    h.advance(Duration::from_secs(2));
    assert!(h.sent().is_empty());
    assert_eq!(h.ep.counts(), (0, 0, 0));
}

#[test]
fn proof_for_another_user_is_403_and_counted() {
    let mut h = harness();
    h.recv(phone(5080), REGISTER_BOB);
    let (id, ..) = take_auth(&mut h);
    let alice = AuthVerdict::Authenticated {
        user: "alice".into(),
    };
    h.answer(id, IoResult::Authenticated(alice));
    assert_eq!(status(&h.sent_one()), 403);
    assert_eq!(h.ep.stats.auth_failed.get(), 1);
}

#[test]
fn the_right_proof_registers() {
    let mut h = harness();
    h.recv(phone(5080), REGISTER_BOB);
    let (id, ..) = take_auth(&mut h);
    let bob = AuthVerdict::Authenticated { user: "bob".into() };
    h.answer(id, IoResult::Authenticated(bob));
    let io = h.take_io();
    assert!(matches!(io.kind, IoKind::Register { .. }), "{io:?}");
}

#[test]
fn a_call_from_our_domain_is_challenged_as_proxy_of_the_from_domain() {
    let mut h = harness();
    h.recv(phone(5070), &invite("sip:dave@other.test", "authinv", ""));
    let (id, role, realm) = take_auth(&mut h);
    assert_eq!((role, realm.as_str()), (AuthRole::Proxy, "sip.test"));
    assert!(h.sent().is_empty(), "no 100 Trying before authentication");
    h.answer(id, IoResult::Authenticated(challenge(407)));
    assert_eq!(status(&h.sent_one()), 407);
}

#[test]
fn a_stranger_may_reach_our_users_but_not_relay() {
    let mut h = harness();
    let stranger = |to: &str, branch: &str| {
        invite(to, branch, "").replace(
            "From: <sip:carol@sip.test>",
            "From: <sip:mallory@evil.test>",
        )
    };
    h.recv(phone(5070), &stranger("sip:dave@other.test", "relay"));
    let answer = h.sent_one();
    assert_eq!(status(&answer), 403, "{answer}");
    assert!(
        answer.starts_with("SIP/2.0 403 Relaying Denied"),
        "{answer}"
    );
    assert_eq!(h.ep.stats.relay_refused.get(), 1);
    assert!(h.ios.is_empty(), "no digest check for a relay attempt");

    h.recv(phone(5070), &stranger("sip:bob@sip.test", "tous"));
    assert_eq!(status(&h.sent_one()), 100);
    assert!(matches!(h.take_io().kind, IoKind::Lookup { .. }));
}

#[test]
fn an_in_dialog_request_without_our_dialog_token_is_403() {
    let mut h = harness();
    let bye = invite(
        "sip:bob@127.0.0.2:5080",
        "bye",
        "Route: <sip:127.0.0.1:5060;lr>\n",
    )
    .replace("INVITE sip:", "BYE sip:")
    .replace("CSeq: 1 INVITE", "CSeq: 2 BYE")
    .replace(
        "To: <sip:bob@127.0.0.2:5080>",
        "To: <sip:bob@sip.test>;tag=t",
    );
    h.recv(phone(5070), &bye);
    let answer = h.sent_one();
    assert!(
        answer.starts_with("SIP/2.0 403 Forbidden (No Dialog Of Ours)"),
        "{answer}"
    );
}

#[test]
fn a_trusted_source_is_not_challenged() {
    let mut h = harness();
    let trusted = Source {
        remote: "127.0.0.9:5070".parse().unwrap(),
        ..phone(5070)
    };
    h.recv(trusted, &invite("sip:dave@other.test", "trusted", ""));
    assert_eq!(status(&h.sent_one()), 100);
    assert!(matches!(h.take_io().kind, IoKind::Resolve { .. }));
}

#[test]
fn a_store_outage_during_the_check_is_503_with_retry_after() {
    let mut h = harness();
    h.recv(phone(5080), REGISTER_BOB);
    let (id, ..) = take_auth(&mut h);
    let mut down = LocalAnswer::new(503, "Subscriber Store Unavailable");
    down.headers.push(("Retry-After".into(), "30".into()));
    h.answer(id, IoResult::Authenticated(AuthVerdict::Unavailable(down)));
    let answer = h.sent_one();
    assert_eq!(status(&answer), 503);
    assert_eq!(header(&answer, "Retry-After").as_deref(), Some("30"));
}

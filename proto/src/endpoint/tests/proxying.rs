//! RFC 3261 §16 through the endpoint: registration, routing to the
//! location service, loose and strict routing, responses, ACK, CANCEL,
//! Timer C.

use std::time::Duration;

use super::*;
use crate::dialog::{CallEventKind, CallLimits, DialogSettings, EndReason, LimitsTable};

const REGISTER_BOB: &str = "REGISTER sip:sip.test SIP/2.0
Via: SIP/2.0/UDP 127.0.0.2:5080;branch=z9hG4bKreg1
Max-Forwards: 70
From: <sip:bob@sip.test>;tag=b1
To: <sip:bob@sip.test>
Call-ID: reg1@127.0.0.2
CSeq: 1 REGISTER
Contact: <sip:bob@127.0.0.2:5080>
Expires: 600
Content-Length: 0

";

/// INVITE for bob, routed to his one binding: returns the copy sent.
fn invite_bob(h: &mut Harness, from: Source, branch: &str) -> String {
    h.recv(from, &invite("sip:bob@sip.test", branch, ""));
    let trying = h.sent_one();
    assert_eq!(status(&trying), 100, "{trying}");
    let binding = h.binding("sip:bob@127.0.0.2:5080", Vec::new());
    h.answer_lookup(vec![binding]);
    assert_eq!(h.answer_resolve("127.0.0.2:5080"), "sip:bob@127.0.0.2:5080");
    h.sent_one()
}

#[test]
fn register_is_stored_with_our_path_and_answered_with_its_bindings() {
    let mut h = Harness::new();
    h.recv(phone(5080), REGISTER_BOB);
    let io = h.take_io();
    let IoKind::Register { aor, update, at } = io.kind else {
        panic!("a store write expected: {io:?}");
    };
    assert_eq!(aor.to_string(), "bob@sip.test");
    assert_eq!(at, h.now.wall);
    // RFC 3327 §4: the first hop puts itself on the path; on a cluster
    // the entry names our TCP listener so other nodes notice a dead edge.
    assert_eq!(update.path.len(), 1, "{:?}", update.path);
    assert!(
        update.path[0].contains("@127.0.0.1:5060;transport=tcp;lr"),
        "{}",
        update.path[0]
    );
    let bindings = crate::registrar::apply(Vec::new(), &update, at)
        .unwrap()
        .bindings;
    h.answer(io.id, IoResult::Registered(Ok(bindings)));
    let ok = h.sent_one();
    assert_eq!(status(&ok), 200, "{ok}");
    assert_eq!(
        headers(&ok, "Contact"),
        ["<sip:bob@127.0.0.2:5080>;expires=600"]
    );
    // Without `Supported: path` the UA is not shown the Path (§5.1).
    assert!(headers(&ok, "Path").is_empty(), "{ok}");
    // Answered, the transaction only absorbs retransmissions now: it left
    // the transaction table for the compact one, and still answers one
    // with the same bytes.
    assert!(h.ep.txs.is_empty() && h.ep.servers.is_empty());
    assert_eq!(h.ep.completed(), 1);
    assert_eq!(h.ep.counts().0, 1, "still counted as a server transaction");
    h.recv(phone(5080), REGISTER_BOB);
    assert_eq!(h.sent_one(), ok, "a retransmission gets the same 200 OK");
    assert!(h.ios.is_empty(), "and is not registered again");
}

/// Registers bob once over UDP and returns the 200 OK.
fn register_bob(h: &mut Harness) -> String {
    register_as(h, phone(5080), REGISTER_BOB)
}

/// Feeds `text` (a REGISTER) from `from`, stores what it asks and returns
/// the one response.
fn register_as(h: &mut Harness, from: Source, text: &str) -> String {
    h.recv(from, text);
    let io = h.take_io();
    let IoKind::Register { update, at, .. } = io.kind else {
        panic!("a store write expected: {io:?}");
    };
    let bindings = crate::registrar::apply(Vec::new(), &update, at)
        .unwrap()
        .bindings;
    h.answer(io.id, IoResult::Registered(Ok(bindings)));
    h.sent_one()
}

#[test]
fn a_completed_register_is_kept_for_timer_j_then_forgotten() {
    let mut h = Harness::new();
    let register = REGISTER_BOB.replace("branch=z9hG4bKreg1", "branch=z9hG4bKreg1;rport");
    let ok = register_as(&mut h, phone(5080), &register);
    assert_eq!(status(&ok), 200, "{ok}");
    // RFC 3581 §4: the response's Via tells the phone where we saw it.
    assert_eq!(
        header(&ok, "Via").unwrap(),
        "SIP/2.0/UDP 127.0.0.2:5080;branch=z9hG4bKreg1;rport=5080;received=127.0.0.2"
    );
    h.advance(Duration::from_secs(31));
    h.recv(phone(5080), &register);
    assert_eq!(h.sent_one(), ok, "still absorbed just before Timer J");
    let live = h.ep.config.live.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(live, 0, "completed ones have their own cap");
    h.advance(Duration::from_secs(2));
    assert_eq!(h.ep.completed(), 0);
    // After Timer J the same key is a new transaction (§17.2.2).
    h.recv(phone(5080), &register);
    assert!(matches!(h.take_io().kind, IoKind::Register { .. }));
}

#[test]
fn past_the_completed_cap_the_oldest_is_forgotten_early_and_counted() {
    let mut h = Harness::with(
        EndpointConfig {
            max_completed: 2,
            ..config()
        },
        edge("n1"),
    );
    for i in 1..=3 {
        let register = REGISTER_BOB.replace("z9hG4bKreg1", &format!("z9hG4bKreg{i}"));
        assert_eq!(status(&register_as(&mut h, phone(5080), &register)), 200);
    }
    assert_eq!(h.ep.completed(), 2);
    assert_eq!(h.ep.stats.completed_evicted.get(), 1);
    // The first is forgotten: its retransmission is a new REGISTER.
    h.recv(phone(5080), REGISTER_BOB);
    assert!(matches!(h.take_io().kind, IoKind::Register { .. }));
}

#[test]
fn a_completed_register_answers_only_a_true_retransmission() {
    let mut h = Harness::new();
    let ok = register_bob(&mut h);
    assert_eq!(status(&ok), 200, "{ok}");
    // Someone else sending the same branch and sent-by never gets bob's
    // response: it is a request of its own.
    h.recv(phone(5099), REGISTER_BOB);
    assert!(h.sent().is_empty());
    assert!(matches!(h.take_io().kind, IoKind::Register { .. }));
    // The same bytes from the same place are a retransmission...
    let mut h = Harness::new();
    let ok = register_bob(&mut h);
    h.recv(phone(5080), REGISTER_BOB);
    assert_eq!(h.sent_one(), ok);
    // ...another message reusing the key from bob's address is not.
    let other = REGISTER_BOB.replace("Expires: 600", "Expires: 60");
    h.recv(phone(5080), &other);
    assert!(h.sent().is_empty());
    assert!(matches!(h.take_io().kind, IoKind::Register { .. }));
}

#[test]
fn a_register_over_tcp_keeps_nothing_once_answered() {
    let mut h = Harness::new();
    assert_eq!(
        status(&register_as(&mut h, tcp_phone(5080), REGISTER_BOB)),
        200
    );
    // §17.2.2: Timer J is zero over a reliable transport.
    assert_eq!(h.ep.counts(), (0, 0, 0));
    assert_eq!(h.ep.completed(), 0);
}

#[test]
fn a_store_outage_is_503_with_retry_after() {
    let mut h = Harness::new();
    h.recv(phone(5080), REGISTER_BOB);
    let io = h.take_io();
    let down = crate::location::StoreError::Unavailable("test".into());
    h.answer(io.id, IoResult::Registered(Err(down.into())));
    let answer = h.sent_one();
    assert_eq!(status(&answer), 503, "{answer}");
    assert_eq!(header(&answer, "Retry-After").as_deref(), Some("30"));
}

#[test]
fn invite_to_an_aor_goes_to_its_binding_record_routed() {
    let mut h = Harness::new();
    let fwd = invite_bob(&mut h, phone(5070), "inv1");
    assert!(
        fwd.starts_with("INVITE sip:bob@127.0.0.2:5080 SIP/2.0\r\n"),
        "{fwd}"
    );
    assert_eq!(header(&fwd, "Max-Forwards").as_deref(), Some("69"));
    assert_eq!(headers(&fwd, "Record-Route"), ["<sip:127.0.0.1:5060;lr>"]);
    let vias = headers(&fwd, "Via");
    assert_eq!(vias.len(), 2, "{fwd}");
    assert!(
        vias[0].starts_with("SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKsy"),
        "{}",
        vias[0]
    );
    assert_eq!(vias[1], "SIP/2.0/UDP 127.0.0.2:5070;branch=z9hG4bKinv1");
    // Its responses come back to this shard (3), whatever the shard count.
    let ringing = response_to(&fwd, 180, "Ringing");
    let parsed = SipMessage::parse(Bytes::from(ringing.replace('\n', "\r\n"))).unwrap();
    assert_eq!(shard_of(&parsed, 8), Some(3));
    assert_eq!(shard_of(&parsed, 2), Some(1));

    // §16.7: responses go upstream without our Via.
    h.recv(phone(5080), &ringing);
    let up = h.sent_one();
    assert_eq!(status(&up), 180, "{up}");
    assert_eq!(
        headers(&up, "Via"),
        ["SIP/2.0/UDP 127.0.0.2:5070;branch=z9hG4bKinv1"]
    );
    h.recv(phone(5080), &response_to(&fwd, 200, "OK"));
    let ok = h.sent_one();
    assert_eq!(status(&ok), 200, "{ok}");
    assert!(header(&ok, "To").unwrap().ends_with(";tag=callee"), "{ok}");
}

#[test]
fn the_ack_for_a_2xx_follows_the_route_statelessly() {
    let mut h = Harness::new();
    let ack = "ACK sip:bob@127.0.0.2:5080 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.2:5070;branch=z9hG4bKack1
Max-Forwards: 70
Route: <sip:127.0.0.1:5060;lr>
From: <sip:carol@sip.test>;tag=c1
To: <sip:bob@sip.test>;tag=callee
Call-ID: inv1@127.0.0.2
CSeq: 1 ACK
Content-Length: 0

";
    h.recv(phone(5070), ack);
    assert_eq!(h.answer_resolve("127.0.0.2:5080"), "sip:bob@127.0.0.2:5080");
    let fwd = h.sent_one();
    assert!(
        fwd.starts_with("ACK sip:bob@127.0.0.2:5080 SIP/2.0\r\n"),
        "{fwd}"
    );
    // Our Route entry consumed, our Via on top: §16.11 builds it like §16.6.
    assert!(headers(&fwd, "Route").is_empty(), "{fwd}");
    assert_eq!(headers(&fwd, "Via").len(), 2);
    assert_eq!(h.ep.counts().0, 0, "no transaction for an ACK of a 2xx");
}

#[test]
fn loose_routing_keeps_the_request_uri_and_pops_our_route() {
    let mut h = Harness::new();
    let route = "Route: <sip:127.0.0.1:5060;lr>, <sip:127.0.0.9:5060;lr>\n";
    h.recv(phone(5070), &invite("sip:dave@other.test", "loose", route));
    assert_eq!(status(&h.sent_one()), 100);
    assert_eq!(h.answer_resolve("127.0.0.9:5060"), "sip:127.0.0.9:5060;lr");
    let fwd = h.sent_one();
    assert!(
        fwd.starts_with("INVITE sip:dave@other.test SIP/2.0\r\n"),
        "{fwd}"
    );
    assert_eq!(headers(&fwd, "Route"), ["<sip:127.0.0.9:5060;lr>"]);
}

#[test]
fn after_a_strict_router_the_last_route_becomes_the_request_uri() {
    let mut h = Harness::new();
    let strict = invite(
        "sip:127.0.0.1:5060",
        "strict",
        "Route: <sip:dave@127.0.0.9:5080>\n",
    );
    h.recv(phone(5070), &strict);
    assert_eq!(status(&h.sent_one()), 100);
    assert_eq!(
        h.answer_resolve("127.0.0.9:5080"),
        "sip:dave@127.0.0.9:5080"
    );
    let fwd = h.sent_one();
    assert!(
        fwd.starts_with("INVITE sip:dave@127.0.0.9:5080 SIP/2.0\r\n"),
        "{fwd}"
    );
    assert!(headers(&fwd, "Route").is_empty(), "{fwd}");
}

#[test]
fn an_answered_invite_is_kept_compact_absorbing_its_retransmissions() {
    let mut h = Harness::new();
    let fwd = invite_bob(&mut h, phone(5070), "inv9");
    let ok = response_to(&fwd, 200, "OK");
    h.recv(phone(5080), &ok);
    assert_eq!(status(&h.sent_one()), 200);
    // RFC 6026 Accepted, with nothing left but absorbing: out of the
    // transaction table, its branch's client key let go.
    assert!(h.ep.txs.is_empty(), "retired");
    assert_eq!(h.ep.completed(), 1);
    assert!(h.ep.clients.is_empty());
    // A retransmitted INVITE is absorbed: nothing sent, nothing routed.
    h.recv(phone(5070), &invite("sip:bob@sip.test", "inv9", ""));
    assert!(h.sent().is_empty() && h.ios.is_empty());
    // The UAS's retransmitted 2xx still reaches the caller (statelessly,
    // by its Via).
    h.recv(phone(5080), &ok);
    assert_eq!(h.answer_resolve("127.0.0.2:5070"), "sip:127.0.0.2:5070");
    let sent = h.sent();
    assert_eq!(sent.len(), 1, "{sent:#?}");
    assert_eq!(status(&sent[0].1), 200);
    // A CANCEL that crossed the 2xx is answered 200 (§9.2).
    let cancel = invite("sip:bob@sip.test", "inv9", "")
        .replace("INVITE sip:bob@sip.test", "CANCEL sip:bob@sip.test")
        .replace("CSeq: 1 INVITE", "CSeq: 1 CANCEL");
    h.recv(phone(5070), &cancel);
    assert_eq!(status(&h.sent_one()), 200);
    // Timer L (64*T1) later it is forgotten.
    h.advance(Duration::from_secs(33));
    assert_eq!(h.ep.completed(), 0);
}

#[test]
fn cancel_is_answered_then_sent_down_and_the_487_goes_up_with_an_ack_down() {
    let mut h = Harness::new();
    let fwd = invite_bob(&mut h, phone(5070), "inv5");
    h.recv(phone(5080), &response_to(&fwd, 180, "Ringing"));
    h.sent_one();
    let cancel = "CANCEL sip:bob@sip.test SIP/2.0
Via: SIP/2.0/UDP 127.0.0.2:5070;branch=z9hG4bKinv5
Max-Forwards: 70
From: <sip:carol@sip.test>;tag=c1
To: <sip:bob@sip.test>
Call-ID: inv5@127.0.0.2
CSeq: 1 CANCEL
Content-Length: 0

";
    h.recv(phone(5070), cancel);
    let sent = h.sent();
    assert_eq!(sent.len(), 2, "{sent:#?}");
    assert_eq!((sent[0].0, status(&sent[0].1)), ('<', 200));
    // §16.10 / §9.1: the CANCEL has the branch of the INVITE it cancels.
    assert_eq!(sent[1].0, '>');
    assert!(
        sent[1]
            .1
            .starts_with("CANCEL sip:bob@127.0.0.2:5080 SIP/2.0\r\n")
    );
    assert_eq!(headers(&sent[1].1, "Via")[0], headers(&fwd, "Via")[0]);

    h.recv(phone(5080), &response_to(&fwd, 487, "Request Terminated"));
    let sent = h.sent();
    let ack = sent
        .iter()
        .find(|(dir, m)| *dir == '>' && m.starts_with("ACK "));
    let up = sent.iter().find(|(dir, m)| *dir == '<' && status(m) == 487);
    assert!(ack.is_some() && up.is_some(), "{sent:#?}");
}

#[test]
fn timer_c_cancels_a_branch_that_rings_too_long() {
    let mut h = Harness::new();
    let fwd = invite_bob(&mut h, phone(5070), "inv6");
    h.recv(phone(5080), &response_to(&fwd, 180, "Ringing"));
    h.sent_one();
    h.advance(Duration::from_secs(179));
    assert!(h.sent().is_empty(), "nothing before Timer C");
    h.advance(Duration::from_secs(2));
    let cancel = h.sent_one();
    assert!(
        cancel.starts_with("CANCEL sip:bob@127.0.0.2:5080 SIP/2.0\r\n"),
        "{cancel}"
    );
}

#[test]
fn without_any_answer_timer_b_ends_the_call_with_408() {
    let mut h = Harness::new();
    invite_bob(&mut h, phone(5070), "inv7");
    // Timer A retransmissions at 0.5, 1.5, 3.5... s; Timer B at 32 s.
    let mut retransmitted = 0;
    for _ in 0..64 {
        h.advance(Duration::from_millis(500));
        for (dir, m) in h.sent() {
            if dir == '>' && m.starts_with("INVITE ") {
                retransmitted += 1;
            } else if dir == '<' {
                assert_eq!(status(&m), 408, "{m}");
                assert_eq!(retransmitted, 6, "Timer A doubles up to Timer B");
                return;
            }
        }
    }
    panic!("no 408 after Timer B");
}

#[test]
fn a_retransmitted_invite_is_absorbed_and_answered_with_the_last_response() {
    let mut h = Harness::new();
    invite_bob(&mut h, phone(5070), "inv8");
    h.recv(phone(5070), &invite("sip:bob@sip.test", "inv8", ""));
    let again = h.sent_one();
    assert_eq!(status(&again), 100, "{again}");
    assert!(h.ios.is_empty(), "no second lookup");
}

#[test]
fn the_same_inputs_and_seed_give_the_same_bytes() {
    let run = || {
        let mut h = Harness::new();
        let fwd = invite_bob(&mut h, phone(5070), "same");
        h.recv(phone(5080), &response_to(&fwd, 486, "Busy Here"));
        let mut out = vec![fwd];
        out.extend(h.sent().into_iter().map(|(_, m)| m));
        out
    };
    assert_eq!(run(), run());
}

#[test]
fn a_record_routed_call_is_tracked_from_invite_until_either_side_says_bye() {
    let mut h = Harness::new();
    let fwd = invite_bob(&mut h, phone(5070), "dlg1");
    assert_eq!(h.ep.live_dialogs(), 1, "counted from the INVITE");
    h.recv(phone(5080), &response_to(&fwd, 180, "Ringing"));
    assert_eq!(status(&h.sent_one()), 180);
    assert!(h.ep.poll_call_event().is_none(), "ringing starts nothing");
    h.recv(phone(5080), &response_to(&fwd, 200, "OK"));
    assert_eq!(status(&h.sent_one()), 200);
    let started = h.ep.poll_call_event().expect("the 2xx starts the dialog");
    assert_eq!(started.kind, CallEventKind::Started);
    assert_eq!(started.record.callee, "bob@sip.test");
    // bob hangs up: his BYE carries the tags the other way round.
    let bye = "BYE sip:carol@127.0.0.2:5070 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.2:5080;branch=z9hG4bKbye1
Max-Forwards: 70
Route: <sip:127.0.0.1:5060;lr>
From: <sip:bob@sip.test>;tag=callee
To: <sip:carol@sip.test>;tag=c1
Call-ID: dlg1@127.0.0.2
CSeq: 1 BYE
Content-Length: 0

";
    h.recv(phone(5080), bye);
    assert_eq!(h.ep.live_dialogs(), 0);
    let ended = h.ep.poll_call_event().expect("the BYE ends it");
    assert_eq!(ended.record.end_reason, Some(EndReason::CalleeBye));
    assert_eq!(ended.record.status, 200);
    h.ios.clear(); // the BYE's next hop
    // An unanswered call ends with its final response.
    let fwd = invite_bob(&mut h, phone(5070), "dlg2");
    h.recv(phone(5080), &response_to(&fwd, 486, "Busy Here"));
    let ended = h.ep.poll_call_event().expect("a failed call has a CDR too");
    assert_eq!(
        (ended.record.status, ended.record.end_reason),
        (486, Some(EndReason::Failed))
    );
    assert_eq!(h.ep.live_dialogs(), 0);
}

#[test]
fn a_call_over_the_limit_is_refused_before_it_is_forwarded() {
    let mut h = Harness::new();
    h.ep.config.calls.lock().unwrap().reconfigure(
        DialogSettings::default(),
        LimitsTable {
            default: CallLimits {
                max_calls_per_user: 1,
                ..CallLimits::default()
            },
            ..LimitsTable::default()
        },
    );
    let _first = invite_bob(&mut h, phone(5070), "lim1");
    h.recv(phone(5070), &invite("sip:bob@sip.test", "lim2", ""));
    assert_eq!(status(&h.sent_one()), 100);
    let binding = h.binding("sip:bob@127.0.0.2:5080", Vec::new());
    h.answer_lookup(vec![binding]);
    assert_eq!(status(&h.sent_one()), 486, "bob is in a call");
    assert!(h.ios.is_empty(), "nothing forwarded");
    let refused = h.ep.poll_call_event().expect("a CDR for the refused call");
    assert_eq!(refused.record.end_reason, Some(EndReason::Limited));
    assert_eq!(h.ep.stats.calls_limited_user.get(), 1);
}

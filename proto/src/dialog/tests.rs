use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use switchyard_codec::SipMessage;

use super::*;

fn now0() -> Now {
    Now::new(
        Instant::now(),
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_000),
    )
}

fn later(now: Now, ms: u64) -> Now {
    let d = Duration::from_millis(ms);
    Now::new(now.instant + d, now.wall + d)
}

fn start<'a>(call_id: &'a str, caller: &'a str, callee: &'a str) -> CallStart<'a> {
    CallStart {
        tenant: "acme",
        call_id,
        caller_tag: "ctag",
        caller: (caller, true),
        callee: (callee, true),
        policy: None,
        transit: false,
    }
}

fn in_dialog(method: &str, call_id: &str, from_tag: &str, to_tag: &str) -> SipMessage {
    let text = format!(
        "{method} sip:x@127.0.0.2 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2;branch=z9hG4bKd\r\n\
         From: <sip:a@acme.test>;tag={from_tag}\r\nTo: <sip:b@acme.test>;tag={to_tag}\r\n\
         Call-ID: {call_id}\r\nCSeq: 2 {method}\r\nContent-Length: 0\r\n\r\n"
    );
    SipMessage::parse(Bytes::from(text)).unwrap()
}

fn limited(max_calls: u32, max_calls_per_user: u32) -> Calls {
    let limits = LimitsTable {
        default: CallLimits {
            max_calls,
            max_calls_per_user,
            ..CallLimits::default()
        },
        ..LimitsTable::default()
    };
    Calls::new("n1", DialogSettings::default(), limits)
}

#[test]
fn a_call_is_counted_from_invite_to_bye_and_its_record_has_the_times() {
    let t0 = now0();
    let mut calls = Calls::new("n1", DialogSettings::default(), LimitsTable::default());
    let key = calls
        .begin(start("c1", "alice@acme.test", "bob@acme.test"), t0)
        .unwrap();
    assert_eq!(calls.tenant_calls("acme"), 1);
    assert_eq!(calls.user_calls("acme", "bob@acme.test"), 1);
    let started = calls
        .final_response(key, 200, Some(1800), b"", later(t0, 2_000))
        .unwrap();
    assert_eq!(started.kind, CallEventKind::Started);
    assert_eq!(started.record.answer_ms, Some(1_002_000));
    assert_eq!(started.record.end_ms, None);
    assert!(
        calls
            .in_dialog(&in_dialog("ACK", "c1", "ctag", "btag"), later(t0, 2_010))
            .is_none()
    );
    // The callee hangs up: its BYE has the tags the other way round.
    let ended = calls
        .in_dialog(&in_dialog("BYE", "c1", "btag", "ctag"), later(t0, 7_000))
        .unwrap();
    let r = ended.record;
    assert_eq!(ended.kind, CallEventKind::Ended);
    assert_eq!(
        (r.start_ms, r.end_ms, r.duration_ms),
        (1_000_000, Some(1_007_000), 5_000)
    );
    assert_eq!((r.status, r.end_reason), (200, Some(EndReason::CalleeBye)));
    assert_eq!(
        (r.caller.as_str(), r.callee.as_str()),
        ("alice@acme.test", "bob@acme.test")
    );
    assert_eq!(r.id, "n1-0");
    assert_eq!(r.session_expires, Some(1800));
    assert_eq!((calls.tenant_calls("acme"), calls.live()), (0, 0));
    assert_eq!(calls.user_calls("acme", "bob@acme.test"), 0);
    assert!(calls.shares("acme").is_empty(), "nothing left to publish");
}

#[test]
fn an_unanswered_call_ends_with_its_final_status() {
    let t0 = now0();
    let mut calls = Calls::default();
    let key = calls
        .begin(start("c1", "a@acme.test", "b@acme.test"), t0)
        .unwrap();
    let ended = calls
        .final_response(key, 487, None, b"", later(t0, 900))
        .unwrap();
    assert_eq!(ended.record.end_reason, Some(EndReason::Cancelled));
    assert_eq!(
        (ended.record.answer_ms, ended.record.duration_ms),
        (None, 0)
    );
    let key = calls
        .begin(start("c2", "a@acme.test", "b@acme.test"), t0)
        .unwrap();
    let ended = calls.final_response(key, 486, None, b"", t0).unwrap();
    assert_eq!(
        (ended.record.status, ended.record.end_reason),
        (486, Some(EndReason::Failed))
    );
    assert_eq!(calls.live(), 0);
    // A BYE for an unknown call, or before an answer, changes nothing.
    assert!(
        calls
            .in_dialog(&in_dialog("BYE", "c9", "x", "y"), t0)
            .is_none()
    );
}

#[test]
fn limits_refuse_exactly_the_calls_above_them() {
    let t0 = now0();
    let mut calls = limited(3, 0);
    let ids = ["c1", "c2", "c3"];
    let keys: Vec<_> = ids
        .iter()
        .map(|id| {
            calls
                .begin(start(id, "a@acme.test", "b@acme.test"), t0)
                .unwrap()
        })
        .collect();
    let refused = calls
        .begin(start("c4", "a@acme.test", "b@acme.test"), t0)
        .unwrap_err();
    assert_eq!((refused.hit.status, refused.hit.scope), (503, "tenant"));
    assert_eq!(refused.event.record.end_reason, Some(EndReason::Limited));
    assert_eq!(refused.event.record.status, 503);
    // A repeated INVITE of a counted call is the same call, not a fourth.
    assert_eq!(
        calls
            .begin(start("c2", "a@acme.test", "b@acme.test"), t0)
            .unwrap(),
        keys[1]
    );
    calls.final_response(keys[0], 480, None, b"", t0);
    assert!(
        calls
            .begin(start("c4", "a@acme.test", "b@acme.test"), t0)
            .is_ok()
    );

    let mut calls = limited(0, 1);
    calls
        .begin(start("c1", "a@acme.test", "b@acme.test"), t0)
        .unwrap();
    // b is in a call: a call to b is busy, a call between two others is not.
    let busy = calls
        .begin(start("c2", "c@acme.test", "b@acme.test"), t0)
        .unwrap_err();
    assert_eq!((busy.hit.status, busy.hit.reason), (486, "Busy Here"));
    assert!(
        calls
            .begin(start("c3", "c@acme.test", "d@acme.test"), t0)
            .is_ok()
    );
    // A party that is not our user (a carrier's number) is not limited.
    let mut outside = start("c4", "a@acme.test", "+15551234@carrier.test");
    outside.callee.1 = false;
    assert!(
        calls.begin(outside, t0).unwrap_err().hit.scope == "user",
        "a is still busy"
    );
}

#[test]
fn other_nodes_shares_count_towards_the_limits() {
    let t0 = now0();
    let mut calls = limited(2, 0);
    calls
        .begin(start("c1", "a@acme.test", "b@acme.test"), t0)
        .unwrap();
    let shares = calls.shares("acme");
    assert!(shares.contains(&(TENANT_SHARE.into(), 1)));
    assert!(shares.contains(&("user:b@acme.test".into(), 1)));
    calls.set_remote("acme", [(TENANT_SHARE.to_owned(), 1)].into());
    assert_eq!(calls.tenant_calls("acme"), 2);
    assert!(
        calls
            .begin(start("c2", "x@acme.test", "y@acme.test"), t0)
            .is_err()
    );
    // The other node died: its shares expired in the store.
    calls.set_remote("acme", Default::default());
    assert!(
        calls
            .begin(start("c2", "x@acme.test", "y@acme.test"), t0)
            .is_ok()
    );
}

#[test]
fn calls_end_at_their_maximum_duration_or_session_expiry() {
    let t0 = now0();
    let settings = DialogSettings {
        max_duration: Duration::from_secs(60),
        enforce_session_timers: true,
    };
    let mut calls = Calls::new("n1", settings, LimitsTable::default());
    let long = calls
        .begin(start("c1", "a@acme.test", "b@acme.test"), t0)
        .unwrap();
    calls.final_response(long, 200, None, b"", t0);
    let timed = calls
        .begin(start("c2", "a@acme.test", "b@acme.test"), t0)
        .unwrap();
    calls.final_response(timed, 200, Some(20), b"", t0);
    // A re-INVITE at 15 s refreshes the session until 35 s.
    calls.in_dialog(
        &in_dialog("INVITE", "c2", "ctag", "btag"),
        later(t0, 15_000),
    );
    assert!(calls.expire(later(t0, 34_000)).is_empty());
    let ended = calls.expire(later(t0, 35_000));
    assert_eq!(ended.len(), 1);
    assert_eq!(ended[0].record.end_reason, Some(EndReason::SessionExpired));
    let ended = calls.expire(later(t0, 60_000));
    assert_eq!(ended[0].record.end_reason, Some(EndReason::MaxDuration));
    assert_eq!(ended[0].record.duration_ms, 60_000);
    assert_eq!(calls.live(), 0);
}

#[test]
fn session_expires_is_read_with_its_parameters_and_compact_form() {
    let msg = |h: &str| {
        SipMessage::parse(Bytes::from(format!(
            "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKa\r\nFrom: <sip:a@h>;tag=1\r\n\
             To: <sip:b@h>;tag=2\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n{h}Content-Length: 0\r\n\r\n"
        )))
        .unwrap()
    };
    assert_eq!(
        session_expires(&msg("Session-Expires: 1800;refresher=uac\r\n")),
        Some(1800)
    );
    assert_eq!(session_expires(&msg("x: 90\r\n")), Some(90));
    assert_eq!(session_expires(&msg("")), None);
}

#[test]
fn a_transit_call_is_waited_for_but_counts_for_nothing() {
    let t0 = now0();
    let mut calls = limited(1, 1);
    let mut relayed = start("c1", "a@acme.test", "b@acme.test");
    relayed.transit = true;
    let key = calls.begin(relayed, t0).unwrap();
    assert_eq!((calls.live(), calls.tenant_calls("acme")), (1, 0));
    assert!(calls.shares("acme").is_empty());
    assert!(
        calls.final_response(key, 200, None, b"", t0).is_none(),
        "no events"
    );
    // The limits are the owner's business: a second transit call passes.
    let mut second = start("c2", "a@acme.test", "b@acme.test");
    second.transit = true;
    assert!(calls.begin(second, t0).is_ok());
    assert!(
        calls
            .in_dialog(&in_dialog("BYE", "c1", "ctag", "btag"), t0)
            .is_none()
    );
    assert_eq!(calls.live(), 1, "the BYE ended the first");
}

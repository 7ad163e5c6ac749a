//! The cluster's part through the endpoint: Path and flow pinning
//! (RFC 3327, RFC 5626), GRUUs (RFC 5627), sealed Contacts, Record-Route
//! per side, and the limits.

use std::sync::atomic::Ordering;

use super::*;
use crate::cluster::{FlowToken, RewrittenContact};

/// bob registers over TCP from 127.0.0.2: his binding's Path holds our
/// flow token (he is reached over his connection only).
fn register_over_tcp(h: &mut Harness, extra: &str) -> (Vec<Binding>, String) {
    let register = format!(
        "REGISTER sip:sip.test SIP/2.0
Via: SIP/2.0/TCP 127.0.0.2:5080;branch=z9hG4bKtcpreg
Max-Forwards: 70
From: <sip:bob@sip.test>;tag=b1
To: <sip:bob@sip.test>
Call-ID: tcpreg@127.0.0.2
CSeq: 1 REGISTER
Contact: <sip:bob@127.0.0.2:5080;transport=tcp>{extra}
Expires: 600
Supported: gruu
Content-Length: 0

"
    );
    h.recv(tcp_phone(40001), &register);
    let io = h.take_io();
    let IoKind::Register { update, at, .. } = io.kind else {
        panic!("{io:?}");
    };
    let bindings = crate::registrar::apply(Vec::new(), &update, at)
        .unwrap()
        .bindings;
    h.answer(io.id, IoResult::Registered(Ok(bindings.clone())));
    let ok = h.sent_one();
    assert_eq!(status(&ok), 200, "{ok}");
    (bindings, ok)
}

#[test]
fn a_binding_behind_our_flow_is_reached_on_that_flow_and_430_when_it_is_gone() {
    let mut h = Harness::new();
    let (bindings, _) = register_over_tcp(&mut h, "");
    assert!(
        bindings[0].path[0].contains(";lr"),
        "{:?}",
        bindings[0].path
    );

    for flow_open in [true, false] {
        let branch = if flow_open { "flow1" } else { "flow2" };
        h.recv(phone(5070), &invite("sip:bob@sip.test", branch, ""));
        assert_eq!(status(&h.sent_one()), 100);
        h.answer_lookup(bindings.clone());
        let io = h.take_io();
        // Our own Path entry is taken off: the branch goes out on the flow
        // it names (RFC 5626 §5.3), not back to ourselves.
        let IoKind::Resolve {
            flow: Some(flow), ..
        } = io.kind
        else {
            panic!("a flow check expected: {io:?}");
        };
        assert_eq!(flow, tcp_phone(40001));
        if flow_open {
            h.answer(io.id, IoResult::Resolved(Ok(Destination::flow(flow))));
            let Some(Transmit::Send { dest, data, .. }) = h.transmits.pop() else {
                panic!("a send on the flow expected");
            };
            assert_eq!(dest.flow_local, Some(flow.local));
            let fwd = text(&data);
            assert!(fwd.starts_with("INVITE sip:bob@127.0.0.2:5080;transport=tcp SIP/2.0"));
            assert!(headers(&fwd, "Route").is_empty(), "{fwd}");
            // Two Record-Route entries: the UA's side over TCP with its
            // flow token, the caller's side over UDP.
            let rr = headers(&fwd, "Record-Route");
            assert_eq!(rr.len(), 2, "{fwd}");
            assert!(rr[0].contains("transport=tcp"), "{rr:?}");
            assert!(!rr[1].contains("transport=tcp"), "{rr:?}");
        } else {
            let gone = Err(crate::proxy::request::LocalAnswer::new(430, "Flow Failed"));
            h.answer(io.id, IoResult::Resolved(gone));
            let answer = h.sent_one();
            assert_eq!(status(&answer), 430, "{answer}");
        }
    }
}

#[test]
fn a_gruu_reaches_the_contacts_of_its_instance_only() {
    let mut h = Harness::new();
    let instance = ";+sip.instance=\"<urn:uuid:00000000-0000-0000-0000-0000000000b1>\"";
    let (mut bindings, ok) = register_over_tcp(&mut h, instance);
    let contact = header(&ok, "Contact").unwrap();
    let gruu = contact
        .split("pub-gruu=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a pub-gruu in the 200 OK");
    assert_eq!(
        gruu,
        "sip:bob@sip.test;gr=urn:uuid:00000000-0000-0000-0000-0000000000b1"
    );
    // Another phone of bob's without an instance: not for the GRUU.
    bindings.push(h.binding("sip:bob@127.0.0.2:6000", Vec::new()));

    h.recv(phone(5070), &invite(gruu, "gruu1", ""));
    assert_eq!(status(&h.sent_one()), 100);
    let io = h.take_io();
    let IoKind::Lookup { aor, .. } = &io.kind else {
        panic!("{io:?}");
    };
    assert_eq!(aor.to_string(), "bob@sip.test");
    h.answer(io.id, IoResult::Bindings(Ok(bindings)));
    let io = h.take_io();
    assert!(
        matches!(io.kind, IoKind::Resolve { flow: Some(_), .. }),
        "only the instance's flow: {io:?}"
    );

    // A GRUU we cannot have issued is 404, without a lookup.
    let forged = "sip:bob@sip.test;gr=urn:uuid:not-registered-here";
    h.recv(phone(5070), &invite(forged, "gruu2", ""));
    assert_eq!(status(&h.sent_one()), 100);
    let io = h.take_io();
    h.answer(io.id, IoResult::Bindings(Ok(Vec::new())));
    assert_eq!(status(&h.sent_one()), 480, "an instance with no contact");
}

#[test]
fn a_contact_another_edge_rewrote_is_routed_through_that_edge() {
    let mut h = Harness::new();
    let sealed = h.ep.edge.cluster.rewritten_contact(&RewrittenContact {
        contact: "sip:bob@127.0.0.2:5080".into(),
        edge: "127.0.0.5:5060".into(),
        edge_transport: Transport::Tcp,
        flow: FlowToken {
            node: "node-b".into(),
            flow: phone(5080),
            pinned: true,
            expires_secs: h.now.unix_secs() + 3600,
        },
    });
    h.recv(phone(5070), &invite(&sealed, "rewritten", ""));
    assert_eq!(status(&h.sent_one()), 100);
    let hop = h.answer_resolve("127.0.0.5:5060");
    assert!(
        hop.starts_with("sip:") && hop.contains("@127.0.0.5:5060;transport=tcp;lr"),
        "{hop}"
    );
    let fwd = h.sent_one();
    assert!(
        fwd.starts_with("INVITE sip:bob@127.0.0.2:5080 SIP/2.0\r\n"),
        "{fwd}"
    );
    assert_eq!(headers(&fwd, "Route"), [format!("<{hop}>")]);

    // Tampered with: 404 without a lookup.
    let tampered = sealed.replacen("sy.", "sy.x", 1);
    h.recv(phone(5070), &invite(&tampered, "tampered", ""));
    let sent = h.sent();
    assert!(sent.iter().any(|(_, m)| status(m) == 404), "{sent:#?}");
    assert!(h.ios.is_empty());
}

#[test]
fn new_requests_beyond_the_transaction_cap_get_503_statelessly() {
    let mut h = Harness::new();
    h.ep.config.live.store(1000, Ordering::Relaxed);
    h.recv(phone(5070), &invite("sip:bob@sip.test", "over", ""));
    let answer = h.sent_one();
    assert_eq!(status(&answer), 503, "{answer}");
    assert_eq!(header(&answer, "Retry-After").as_deref(), Some("5"));
    assert_eq!(h.ep.counts().0, 0);
    assert_eq!(h.ep.stats.overloaded.get(), 1);
}

#[test]
fn a_response_to_no_branch_of_ours_is_dropped() {
    let mut h = Harness::new();
    let stray = "SIP/2.0 200 OK
Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKnotours
Via: SIP/2.0/UDP 127.0.0.2:5070;branch=z9hG4bKx
From: <sip:carol@sip.test>;tag=c1
To: <sip:bob@sip.test>;tag=t
Call-ID: stray@127.0.0.2
CSeq: 1 INVITE
Content-Length: 0

";
    h.recv(phone(5080), stray);
    assert!(h.transmits.is_empty() && h.ios.is_empty());
    assert_eq!(h.ep.stats.dropped_stray.get(), 1);
}

#[test]
fn a_response_to_our_branch_with_no_transaction_is_forwarded_statelessly() {
    // §16.11 / §18.2.2: a response on a branch we minted whose transaction
    // is gone (a 2xx retransmission after the INVITE transaction ended)
    // goes to the next Via, over its transport.
    for (tp, hop) in [
        ("UDP", "sip:127.0.0.2:5070"),
        ("TCP", "sip:127.0.0.2:5070;transport=tcp"),
        ("TLS", "sip:127.0.0.2:5070;transport=tls"),
    ] {
        let mut h = Harness::new();
        let late = format!(
            "SIP/2.0 200 OK
Via: SIP/2.0/UDP {ME};branch=z9hG4bKsy-gone
Via: SIP/2.0/{tp} 127.0.0.2:5070;branch=z9hG4bKx
From: <sip:carol@sip.test>;tag=c1
To: <sip:bob@sip.test>;tag=t
Call-ID: late@127.0.0.2
CSeq: 1 INVITE
Content-Length: 0

"
        );
        h.recv(phone(5080), &late);
        let io = h.take_io();
        let IoKind::Resolve { hop: asked, flow } = io.kind else {
            panic!("a resolution expected: {io:?}");
        };
        assert_eq!((asked.as_str(), flow), (hop, None));
    }
}

#[test]
fn malformed_requests_get_400_and_zero_max_forwards_483() {
    let mut h = Harness::new();
    let no_call_id = invite("sip:bob@sip.test", "bad", "").replace("Call-ID: bad@127.0.0.2\n", "");
    h.recv(phone(5070), &no_call_id);
    assert_eq!(status(&h.sent_one()), 400);
    let hops =
        invite("sip:dave@other.test", "hops", "").replace("Max-Forwards: 70", "Max-Forwards: 0");
    h.recv(phone(5070), &hops);
    assert_eq!(status(&h.sent_one()), 483);
}

#[test]
fn a_reconfigured_domain_is_served_by_the_next_request() {
    let mut h = Harness::new();
    let register = REGISTER_NEW.replace("CSEQ", "1");
    h.recv(phone(5080), &register);
    assert!(
        !h.ios
            .iter()
            .any(|io| matches!(io.kind, IoKind::Register { .. })),
        "a REGISTER for a domain we do not serve is not stored: {:?}",
        h.ios
    );
    h.ios.clear();
    h.transmits.clear();
    let mut tenants = config().tenants;
    tenants.domains.insert("new.test".into(), "newcomer".into());
    h.ep.reconfigure(&["sip.test".into(), "new.test".into()], tenants);
    h.recv(
        phone(5080),
        &REGISTER_NEW
            .replace("CSEQ", "2")
            .replace("z9hG4bKn1", "z9hG4bKn2"),
    );
    let io = h.take_io();
    let IoKind::Register { aor, .. } = io.kind else {
        panic!("a store write expected: {io:?}");
    };
    assert_eq!(aor.to_string(), "carol@new.test");
}

const REGISTER_NEW: &str = "REGISTER sip:new.test SIP/2.0
Via: SIP/2.0/UDP 127.0.0.2:5080;branch=z9hG4bKn1
Max-Forwards: 70
From: <sip:carol@new.test>;tag=c1
To: <sip:carol@new.test>
Call-ID: new1@127.0.0.2
CSeq: CSEQ REGISTER
Contact: <sip:carol@127.0.0.2:5080>
Expires: 600
Content-Length: 0

";

//! Editor behaviour: what a proxy does to requests and responses it
//! forwards (RFC 3261 §16.6, §16.7; RFC 3581), by splicing.

use switchyard_codec::*;

fn msg(s: &str) -> SipMessage {
    SipMessage::parse(Bytes::copy_from_slice(s.as_bytes())).unwrap()
}

fn text(b: &Bytes) -> &str {
    std::str::from_utf8(b).unwrap()
}

const REQ: &str = "OPTIONS sip:bob@example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKa;rport\r\n\
Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\n\
Route: <sip:p3.example.com;lr>\r\n\
To: <sip:bob@example.com>\r\n\
From: <sip:alice@example.com>;tag=1\r\n\
Call-ID: c1\r\n\
CSeq: 1 OPTIONS\r\n\
Content-Length: 5\r\n\
\r\n\
hello";

#[test]
fn untouched_message_is_byte_identical() {
    let m = msg(REQ);
    assert_eq!(m.edit().finish(), m.as_bytes());
}

#[test]
fn pushes_stack_with_the_latest_on_top() {
    let m = msg(REQ);
    let mut e = m.edit();
    e.push_header(HeaderName::Via, "SIP/2.0/UDP first;branch=z9hG4bK1")
        .push_header(HeaderName::Via, "SIP/2.0/UDP second;branch=z9hG4bK2");
    let f = SipMessage::parse(e.finish()).unwrap();
    let hosts: Vec<_> = f.vias().map(|v| v.unwrap().host.to_string()).collect();
    assert_eq!(hosts, ["second", "first", "192.0.2.1"]);
}

#[test]
fn push_of_an_absent_header_goes_before_the_first_header() {
    let m = msg(REQ);
    let mut e = m.edit();
    e.push_header(HeaderName::RecordRoute, "<sip:proxy.example.com;lr>")
        .push_header(HeaderName::Path, "<sip:edge.example.com;lr>");
    let out = e.finish();
    assert!(text(&out).starts_with(
        "OPTIONS sip:bob@example.com SIP/2.0\r\nPath: <sip:edge.example.com;lr>\r\nRecord-Route: <sip:proxy.example.com;lr>\r\nVia:"
    ));
}

#[test]
fn popping_route_values_one_at_a_time() {
    let m = msg(REQ);
    let pop = |n: usize| {
        let mut e = m.edit();
        for _ in 0..n {
            e.remove_first_value(HeaderName::Route);
        }
        e.finish()
    };
    let one = pop(1);
    assert!(
        text(&one)
            .contains("\r\nRoute: <sip:p2.example.com;lr>\r\nRoute: <sip:p3.example.com;lr>\r\n")
    );
    let two = pop(2);
    assert!(text(&two).contains("\r\nRoute: <sip:p3.example.com;lr>\r\nTo:"));
    assert_eq!(text(&two).matches("Route").count(), 1);
    let all = pop(5);
    assert!(!text(&all).contains("Route"));
    assert!(SipMessage::parse(all).unwrap().routes().unwrap().is_empty());
}

#[test]
fn remove_headers_drops_every_line() {
    let m = msg(REQ);
    let mut e = m.edit();
    e.remove_headers(HeaderName::Route);
    let out = e.finish();
    assert!(!text(&out).contains("Route"));
    assert!(text(&out).ends_with("Content-Length: 5\r\n\r\nhello"));
}

#[test]
fn received_and_rport_rfc3581() {
    let m = msg(REQ);
    let mut e = m.edit();
    e.set_top_via_received(Some("198.51.100.7"), Some(40000));
    let f = SipMessage::parse(e.finish()).unwrap();
    let v = f.top_via().unwrap();
    assert_eq!(v.received(), Some("198.51.100.7"));
    assert_eq!(v.rport(), Some(Some(40000)));
    assert_eq!(
        v.raw,
        "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKa;rport=40000;received=198.51.100.7"
    );

    // An existing received is replaced; no rport is added unless asked for.
    let m = msg(&REQ.replace(";rport", ";received=10.0.0.1"));
    let mut e = m.edit();
    e.set_top_via_received(Some("[2001:db8::1]"), Some(5070));
    let f = SipMessage::parse(e.finish()).unwrap();
    let v = f.top_via().unwrap();
    assert_eq!(
        v.raw,
        "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKa;received=[2001:db8::1]"
    );
    assert_eq!(v.rport(), None);
}

#[test]
fn received_on_a_folded_top_via() {
    let bytes = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/rfc4475/wsinv.dat"
    ))
    .unwrap();
    let m = SipMessage::parse(Bytes::from(bytes)).unwrap();
    let mut e = m.edit();
    e.set_top_via_received(Some("192.0.2.200"), None)
        .push_header(HeaderName::Via, "SIP/2.0/UDP proxy;branch=z9hG4bKp");
    let f = SipMessage::parse(e.finish()).unwrap();
    validate_request(&f).unwrap();
    let vias: Vec<_> = f.vias().map(|v| v.unwrap()).collect();
    assert_eq!(vias.len(), 4);
    assert_eq!(vias[1].branch(), Some("390skdjuw"));
    assert_eq!(vias[1].received(), Some("192.0.2.200"));
    assert_eq!(f.body(), m.body());
}

#[test]
fn max_forwards_replaced_or_inserted() {
    let m = msg(&REQ.replace("Call-ID: c1\r\n", "Call-ID: c1\r\nMax-Forwards: 0070\r\n"));
    let mut e = m.edit();
    e.set_max_forwards(69);
    let out = e.finish();
    assert!(text(&out).contains("\r\nMax-Forwards: 69\r\n"));
    let m = msg(REQ);
    let mut e = m.edit();
    e.set_max_forwards(70);
    let f = SipMessage::parse(e.finish()).unwrap();
    assert_eq!(f.max_forwards().unwrap(), Some(70));
    assert_eq!(f.body(), b"hello");
}

#[test]
fn request_uri_and_appended_header() {
    let m = msg(REQ);
    let mut e = m.edit();
    e.set_request_uri("sip:bob@[2001:db8::7]:5062;transport=tcp")
        .append_header("X-Switchyard", "forwarded");
    let f = SipMessage::parse(e.finish()).unwrap();
    assert_eq!(f.request_uri().unwrap().port, Some(5062));
    assert_eq!(f.header_by_name("x-switchyard"), Some("forwarded"));
    let last = f.headers().last().unwrap();
    assert_eq!(last.raw_name, "X-Switchyard");
    assert_eq!(f.body(), b"hello");
}

#[test]
fn response_top_via_removed_keeps_the_rest() {
    let resp = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP us;branch=z9hG4bKus, SIP/2.0/UDP them;branch=z9hG4bKthem\r\nTo: <sip:b@x>;tag=2\r\nFrom: <sip:a@x>;tag=1\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
    let m = msg(resp);
    let mut e = m.edit();
    e.remove_first_value(HeaderName::Via);
    let out = e.finish();
    assert!(text(&out).contains("\r\nVia: SIP/2.0/UDP them;branch=z9hG4bKthem\r\n"));
}

#[test]
fn write_to_matches_finish() {
    let m = msg(REQ);
    let mut e = m.edit();
    e.remove_first_value(HeaderName::Route).set_max_forwards(1);
    let mut v = Vec::new();
    e.write_to(&mut v);
    assert_eq!(v, e.finish());
}

/// Found by fuzzing: a head that runs to the end of the datagram without
/// CRLF. Validation rejects it, and edits still never glue lines together.
#[test]
fn unterminated_head_is_rejected_and_edits_stay_well_formed() {
    let raw = "OPTIONS sip:bob@example.com SIP/2.0\r\nTo: <sip:bob@example.com>\r\nFrom: <sip:a@example.com>;tag=1\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx";
    let m = msg(raw);
    let r = validate_request(&m).unwrap_err();
    assert_eq!(r.code, 400);
    assert!(r.reason.contains("empty line"), "{}", r.reason);
    let mut e = m.edit();
    e.set_top_via_received(Some("127.0.0.9"), None)
        .set_max_forwards(69)
        .append_header("X-A", "1");
    let out = e.finish();
    assert!(text(&out).ends_with(
        "Via: SIP/2.0/UDP h;branch=z9hG4bKx;received=127.0.0.9\r\nMax-Forwards: 69\r\nX-A: 1\r\n"
    ));
    let f = SipMessage::parse(out).unwrap();
    assert_eq!(f.top_via().unwrap().received(), Some("127.0.0.9"));
    assert_eq!(f.max_forwards().unwrap(), Some(69));
}

#[test]
fn extension_headers_are_removed_by_raw_name() {
    let m = msg(&REQ.replace(
        "Call-ID: c1\r\n",
        "Call-ID: c1\r\nX-Tenant: a\r\nx-tenant: b\r\nX-Tenants: keep\r\n",
    ));
    let mut e = m.edit();
    e.remove_raw_headers("X-TENANT")
        .append_header("X-Tenant", "c");
    let f = SipMessage::parse(e.finish()).unwrap();
    assert!(text(f.as_bytes()).contains("X-Tenants: keep\r\n"));
    assert_eq!(text(f.as_bytes()).matches("X-Tenant:").count(), 1);
    assert!(text(f.as_bytes()).contains("Content-Length: 5\r\nX-Tenant: c\r\n\r\nhello"));
    // A known header by name or compact form.
    let mut e = m.edit();
    e.remove_raw_headers("i");
    assert!(!text(&e.finish()).contains("Call-ID"));
}

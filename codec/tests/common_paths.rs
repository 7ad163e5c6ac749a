//! The common proxy paths through the public API: parse an INVITE, read the
//! headers RFC 3261 §16 needs, edit it for forwarding, answer it.

use switchyard_codec::*;

const INVITE: &str = "INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds;rport\r\n\
v: SIP/2.0/TCP [2001:db8::1]:5070;branch=z9hG4bKnashds8 , SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1\r\n\
Max-Forwards: 70\r\n\
Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\n\
Route: <sip:p3.example.com;lr>\r\n\
To: Bob <sip:bob@biloxi.example.com>\r\n\
f: \"Alice \\\"A\\\" Liddell\" <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
i: a84b4c76e66710@pc33.atlanta.example.com\r\n\
CSeq: 314159 INVITE\r\n\
m: <sip:alice@192.0.2.1>;+sip.instance=\"<urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6>\";reg-id=1\r\n\
Supported: path,\r\n outbound , gruu\r\n\
Content-Type: application/sdp\r\n\
l: 4\r\n\
\r\n\
v=0\n";

fn invite() -> SipMessage {
    SipMessage::parse(Bytes::from_static(INVITE.as_bytes())).unwrap()
}

#[test]
fn parses_start_line_and_typed_headers() {
    let m = invite();
    assert!(m.is_request());
    assert_eq!(m.method(), Some(&Method::Invite));
    assert_eq!(m.request_uri_str(), Some("sip:bob@biloxi.example.com"));
    assert_eq!(m.version(), "SIP/2.0");
    let vias: Vec<_> = m.vias().collect::<Result<_, _>>().unwrap();
    assert_eq!(vias.len(), 3);
    assert_eq!(vias[1].host, Host::V6("2001:db8::1".parse().unwrap()));
    assert_eq!(vias[1].transport, "TCP");
    assert_eq!(m.top_via().unwrap().branch(), Some("z9hG4bK776asdhds"));
    assert_eq!(m.from().unwrap().tag(), Some("1928301774"));
    assert_eq!(
        m.from().unwrap().display_name().as_deref(),
        Some("Alice \"A\" Liddell")
    );
    assert_eq!(m.to().unwrap().tag(), None);
    assert_eq!(
        m.call_id().unwrap(),
        "a84b4c76e66710@pc33.atlanta.example.com"
    );
    assert_eq!(
        m.cseq().unwrap(),
        CSeq {
            seq: 314159,
            method: Method::Invite
        }
    );
    assert_eq!(m.max_forwards().unwrap(), Some(70));
    assert_eq!(m.content_length().unwrap(), Some(4));
    assert_eq!(m.body(), b"v=0\n");
    let routes = m.routes().unwrap();
    assert_eq!(routes.len(), 3);
    assert!(routes.iter().all(|r| r.uri.is_lr()));
    let Contacts::List(c) = m.contacts().unwrap() else {
        panic!("expected list")
    };
    assert_eq!(c[0].reg_id(), Some(1));
    assert_eq!(
        c[0].sip_instance().as_deref(),
        Some("<urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6>")
    );
    let tags: Vec<_> = m.option_tags(HeaderName::Supported).collect();
    assert_eq!(tags, ["path", "outbound", "gruu"]);
    assert_eq!(
        m.header(HeaderName::CallId),
        Some("a84b4c76e66710@pc33.atlanta.example.com")
    );
    assert_eq!(m.headers().filter(|h| h.name == HeaderName::Via).count(), 2);
    validate_request(&m).unwrap();
}

#[test]
fn proxy_forwarding_edit() {
    let m = invite();
    let mut e = m.edit();
    e.push_header(
        HeaderName::Via,
        "SIP/2.0/UDP proxy.example.com;branch=z9hG4bKp1",
    )
    .push_header(HeaderName::RecordRoute, "<sip:proxy.example.com;lr>")
    .remove_first_value(HeaderName::Route)
    .set_max_forwards(69)
    .set_request_uri("sip:bob@192.0.2.4:5062")
    .set_top_via_received(Some("192.0.2.99"), Some(5099));
    let out = e.finish();
    let f = SipMessage::parse(out.clone()).unwrap();
    validate_request(&f).unwrap();
    assert_eq!(f.request_uri_str(), Some("sip:bob@192.0.2.4:5062"));
    assert_eq!(f.max_forwards().unwrap(), Some(69));
    let vias: Vec<_> = f.vias().map(|v| v.unwrap().raw.to_owned()).collect();
    assert_eq!(
        vias,
        [
            "SIP/2.0/UDP proxy.example.com;branch=z9hG4bKp1",
            "SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds;rport=5099;received=192.0.2.99",
            "SIP/2.0/TCP [2001:db8::1]:5070;branch=z9hG4bKnashds8",
            "SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1",
        ]
    );
    let routes: Vec<_> = f
        .routes()
        .unwrap()
        .iter()
        .map(|r| r.uri.to_string())
        .collect();
    assert_eq!(routes, ["sip:p2.example.com;lr", "sip:p3.example.com;lr"]);
    assert_eq!(
        f.record_routes().unwrap()[0].raw,
        "<sip:proxy.example.com;lr>"
    );
    assert_eq!(f.body(), b"v=0\n");
    // Untouched lines are byte-identical.
    let text = std::str::from_utf8(&out).unwrap();
    assert!(text.contains("\r\nSupported: path,\r\n outbound , gruu\r\n"));
    assert!(text.contains("\r\nf: \"Alice \\\"A\\\" Liddell\""));
}

#[test]
fn popping_every_value_of_a_line_removes_it() {
    let m = invite();
    let mut e = m.edit();
    e.remove_first_value(HeaderName::Route)
        .remove_first_value(HeaderName::Route);
    let out = e.finish();
    let text = std::str::from_utf8(&out).unwrap();
    assert!(!text.contains("p1.example.com"));
    assert!(!text.contains("p2.example.com"));
    assert_eq!(text.matches("Route:").count(), 1);
    let f = SipMessage::parse(out).unwrap();
    assert_eq!(f.routes().unwrap().len(), 1);
}

#[test]
fn response_removes_top_via() {
    let resp = "SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP proxy.example.com;branch=z9hG4bKp1\r\nVia: SIP/2.0/UDP a.example.com;branch=z9hG4bK2\r\nTo: <sip:b@x>;tag=1\r\nFrom: <sip:a@x>;tag=2\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
    let m = SipMessage::parse(Bytes::from_static(resp.as_bytes())).unwrap();
    validate_response(&m).unwrap();
    assert_eq!(m.status(), Some(180));
    assert_eq!(m.reason(), Some("Ringing"));
    let mut e = m.edit();
    e.remove_first_value(HeaderName::Via);
    let f = SipMessage::parse(e.finish()).unwrap();
    assert_eq!(f.top_via().unwrap().host, Host::Domain("a.example.com"));
    assert_eq!(f.vias().count(), 1);
}

#[test]
fn response_to_copies_dialog_headers() {
    let m = invite();
    let r = response_to(&m, 486, "Busy Here")
        .to_tag("xyz")
        .header("Retry-After", "30")
        .build();
    let r = SipMessage::parse(r).unwrap();
    validate_response(&r).unwrap();
    assert_eq!(r.status(), Some(486));
    assert_eq!(r.reason(), Some("Busy Here"));
    let vias: Vec<_> = r
        .vias()
        .map(|v| v.unwrap().branch().unwrap().to_owned())
        .collect();
    assert_eq!(vias, ["z9hG4bK776asdhds", "z9hG4bKnashds8", "z9hG4bK1"]);
    assert_eq!(r.to().unwrap().tag(), Some("xyz"));
    assert_eq!(r.from().unwrap().tag(), Some("1928301774"));
    assert_eq!(r.call_id().unwrap(), m.call_id().unwrap());
    assert_eq!(r.cseq().unwrap(), m.cseq().unwrap());
    assert_eq!(r.header(HeaderName::RetryAfter), Some("30"));
    assert_eq!(r.content_length().unwrap(), Some(0));
}

#[test]
fn response_to_stamps_the_top_via_with_received_and_rport() {
    // RFC 3581 §4: `rport` filled with the source port, `received` added.
    let m = invite();
    let r = response_to(&m, 200, "OK")
        .received(Some("127.0.0.9"), Some(5999))
        .build();
    let text = String::from_utf8_lossy(&r).into_owned();
    assert!(
        text.contains("Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds;rport=5999;received=127.0.0.9\r\n"),
        "{text}"
    );
    let r = SipMessage::parse(r).unwrap();
    let top = r.top_via().unwrap();
    assert_eq!(top.rport(), Some(Some(5999)));
    assert_eq!(r.vias().count(), 3, "the other Vias untouched");
    // The top Via shares its line with another: only the first is stamped,
    // and a received already there is replaced, not repeated.
    let two = INVITE.replace(
        "Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds;rport\r\n",
        "Via: SIP/2.0/UDP h;received=1.1.1.1;branch=z9hG4bKa, SIP/2.0/UDP g;branch=z9hG4bKb\r\n",
    );
    let m = SipMessage::parse(Bytes::from(two)).unwrap();
    let r = response_to(&m, 200, "OK")
        .received(Some("127.0.0.9"), None)
        .build();
    let text = String::from_utf8_lossy(&r).into_owned();
    assert!(
        text.contains("Via: SIP/2.0/UDP h;branch=z9hG4bKa;received=127.0.0.9, SIP/2.0/UDP g;branch=z9hG4bKb\r\n"),
        "{text}"
    );
}

#[test]
fn cancel_and_ack_per_rfc3261() {
    let m = invite();
    let c = SipMessage::parse(build_cancel(&m)).unwrap();
    validate_request(&c).unwrap();
    assert_eq!(c.method(), Some(&Method::Cancel));
    assert_eq!(c.request_uri_str(), m.request_uri_str());
    assert_eq!(c.vias().count(), 1);
    assert_eq!(c.top_via().unwrap().branch(), Some("z9hG4bK776asdhds"));
    assert_eq!(
        c.cseq().unwrap(),
        CSeq {
            seq: 314159,
            method: Method::Cancel
        }
    );
    assert_eq!(c.routes().unwrap().len(), 3);
    assert_eq!(c.max_forwards().unwrap(), Some(70));
    let resp =
        SipMessage::parse(response_to(&m, 486, "Busy Here").to_tag("uas-tag").build()).unwrap();
    let a = SipMessage::parse(build_ack_for_non2xx(&m, &resp)).unwrap();
    validate_request(&a).unwrap();
    assert_eq!(a.method(), Some(&Method::Ack));
    assert_eq!(a.to().unwrap().tag(), Some("uas-tag"));
    assert_eq!(
        a.cseq().unwrap(),
        CSeq {
            seq: 314159,
            method: Method::Ack
        }
    );
    assert_eq!(a.top_via().unwrap().branch(), Some("z9hG4bK776asdhds"));
}

#[test]
fn validation_names_the_problem() {
    let bad = INVITE.replace("CSeq: 314159 INVITE", "CSeq: 314159 ACK");
    let m = SipMessage::parse(Bytes::from(bad)).unwrap();
    let r = validate_request(&m).unwrap_err();
    assert_eq!(r.code, 400);
    assert!(r.reason.contains("CSeq"), "{}", r.reason);

    let v = INVITE.replace("SIP/2.0\r\nVia", "SIP/7.0\r\nVia");
    let m = SipMessage::parse(Bytes::from(v)).unwrap();
    assert_eq!(validate_request(&m).unwrap_err().code, 505);

    let no_callid = INVITE.replace("i: a84b4c76e66710@pc33.atlanta.example.com\r\n", "");
    let m = SipMessage::parse(Bytes::from(no_callid)).unwrap();
    let r = validate_request(&m).unwrap_err();
    assert!(r.reason.contains("Call-ID"), "{}", r.reason);
}

#[test]
fn framing_a_stream() {
    let mut stream = INVITE.as_bytes().to_vec();
    stream.extend_from_slice(b"\r\n\r\n");
    assert_eq!(frame(&stream, 65536), Framing::Complete(INVITE.len()));
    assert_eq!(frame(&stream[INVITE.len()..], 65536), Framing::KeepAlive(4));
}

#[test]
fn credentials_and_challenges_are_one_value_per_line() {
    // RFC 3261 §7.3.1: their commas separate parameters, not values.
    let text = "SIP/2.0 401 Unauthorized\r\n\
Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n\
To: <sip:bob@biloxi.example.com>;tag=x\r\n\
From: <sip:alice@atlanta.example.com>;tag=1\r\n\
Call-ID: c\r\n\
CSeq: 1 REGISTER\r\n\
WWW-Authenticate: Digest realm=\"a, b\", nonce=\"n1\", algorithm=SHA-256, qop=\"auth\"\r\n\
WWW-Authenticate:  Digest realm=\"a, b\", nonce=\"n1\", algorithm=MD5 \r\n\
Content-Length: 0\r\n\r\n";
    let m = SipMessage::parse(Bytes::from_static(text.as_bytes())).unwrap();
    let values: Vec<_> = m.header_values(HeaderName::WwwAuthenticate).collect();
    assert_eq!(
        values,
        [
            "Digest realm=\"a, b\", nonce=\"n1\", algorithm=SHA-256, qop=\"auth\"",
            "Digest realm=\"a, b\", nonce=\"n1\", algorithm=MD5"
        ]
    );
}

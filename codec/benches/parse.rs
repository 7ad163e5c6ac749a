//! Criterion benchmarks: switchyard-codec against rsip on the same bytes.
//!
//! * `parse`     — structural parse of a typical ~640-byte INVITE.
//! * `typed`     — typed access to Via + To + CSeq + Call-ID on a parsed message.
//! * `transform` — the whole stateful-proxy forwarding step: parse, validate,
//!   push Via, push Record-Route, pop Route, decrement Max-Forwards, write.
//!
//! rsip rejects the GRUU/outbound Contact (`+sip.instance="<urn:...>"`) on
//! typed access, so its typed/transform runs do not touch Contact; where
//! rsip cannot parse a message at all that case is skipped and reported.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use rsip::prelude::*;
use switchyard_codec::{Bytes, HeaderName, SipMessage, validate_request};

/// A realistic INVITE as seen by the second proxy on the path: two Vias,
/// a Route to us, a Record-Route from the first proxy, a GRUU/outbound
/// Contact and an SDP offer.
const INVITE: &str = "INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP proxy.atlanta.example.com:5060;branch=z9hG4bK2d4790.1;received=192.0.2.2\r\n\
Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds;rport=5060;received=192.0.2.101\r\n\
Max-Forwards: 69\r\n\
Route: <sip:ss2.biloxi.example.com;lr>\r\n\
Record-Route: <sip:proxy.atlanta.example.com;lr>\r\n\
To: Bob <sip:bob@biloxi.example.com>\r\n\
From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@192.0.2.101:5060;ob>;+sip.instance=\"<urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6>\";reg-id=1\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 136\r\n\
\r\n\
v=0\r\n\
o=alice 2890844526 2890844526 IN IP4 192.0.2.101\r\n\
s=-\r\n\
c=IN IP4 192.0.2.101\r\n\
t=0 0\r\n\
m=audio 49172 RTP/AVP 0\r\n\
a=rtpmap:0 PCMU/8000\r\n";

const OUR_VIA: &str = "SIP/2.0/UDP ss2.biloxi.example.com:5060;branch=z9hG4bKnashds8";
const OUR_RR: &str = "<sip:ss2.biloxi.example.com;lr>";

fn switchyard_transform(buf: &Bytes) -> Bytes {
    let m = SipMessage::parse(buf.clone()).unwrap();
    validate_request(&m).unwrap();
    let mf = m.max_forwards().unwrap().unwrap_or(70);
    let mut e = m.edit();
    e.push_header(HeaderName::Via, OUR_VIA)
        .push_header(HeaderName::RecordRoute, OUR_RR)
        .remove_first_value(HeaderName::Route)
        .set_max_forwards(mf - 1);
    e.finish()
}

fn rsip_transform(buf: &[u8]) -> Bytes {
    let mut req = rsip::Request::try_from(buf).unwrap();
    // "validate": the typed headers a proxy needs.
    req.via_header().unwrap().typed().unwrap();
    req.to_header().unwrap().typed().unwrap();
    req.from_header().unwrap().typed().unwrap();
    req.cseq_header().unwrap().typed().unwrap();
    let mf = req.max_forwards_header().unwrap().num().unwrap();
    let mut headers: Vec<rsip::Header> = std::mem::take(&mut req.headers).into();
    if let Some(i) = headers
        .iter()
        .position(|h| matches!(h, rsip::Header::Route(_)))
    {
        headers.remove(i);
    }
    for h in headers.iter_mut() {
        if let rsip::Header::MaxForwards(v) = h {
            *v = rsip::headers::MaxForwards::from(mf - 1);
        }
    }
    headers.insert(0, rsip::headers::RecordRoute::new(OUR_RR).into());
    headers.insert(0, rsip::headers::Via::new(OUR_VIA).into());
    req.headers = headers.into();
    req.into()
}

fn benches(c: &mut Criterion) {
    let buf = Bytes::from_static(INVITE.as_bytes());
    assert!(
        INVITE.len() > 600,
        "typical INVITE is {} bytes",
        INVITE.len()
    );
    // Same output shape from both implementations.
    let ours = switchyard_transform(&buf);
    let theirs = rsip_transform(&buf);
    assert!(SipMessage::parse(ours).is_ok() && SipMessage::parse(theirs).is_ok());

    let mut g = c.benchmark_group("parse");
    g.bench_function("switchyard", |b| {
        b.iter(|| SipMessage::parse(black_box(buf.clone())).unwrap())
    });
    g.bench_function("rsip", |b| {
        b.iter(|| rsip::Request::try_from(black_box(&buf[..])).unwrap())
    });
    g.finish();

    let mut g = c.benchmark_group("typed_via_to_cseq_callid");
    let m = SipMessage::parse(buf.clone()).unwrap();
    g.bench_function("switchyard", |b| {
        b.iter(|| {
            let m = black_box(&m);
            let via = m.top_via().unwrap();
            let to = m.to().unwrap();
            let cseq = m.cseq().unwrap();
            let call_id = m.call_id().unwrap();
            black_box((via.branch(), to.tag(), cseq.seq, call_id.len()));
        })
    });
    let r = rsip::Request::try_from(&buf[..]).unwrap();
    g.bench_function("rsip", |b| {
        b.iter(|| {
            let r = black_box(&r);
            let via = r.via_header().unwrap().typed().unwrap();
            let to = r.to_header().unwrap().typed().unwrap();
            let cseq = r.cseq_header().unwrap().typed().unwrap();
            let call_id = r.call_id_header().unwrap().value().to_owned();
            black_box((via, to, cseq.seq, call_id));
        })
    });
    g.finish();

    let mut g = c.benchmark_group("transform");
    g.bench_function("switchyard", |b| {
        b.iter(|| switchyard_transform(black_box(&buf)))
    });
    g.bench_function("rsip", |b| b.iter(|| rsip_transform(black_box(&buf))));
    g.finish();

    // Messages rsip cannot handle at all are reported, not benchmarked.
    let gruu = rsip::Request::try_from(&buf[..])
        .unwrap()
        .contact_header()
        .unwrap()
        .typed();
    if gruu.is_err() {
        eprintln!(
            "note: rsip cannot type the +sip.instance Contact: {:?}",
            gruu.err()
        );
    }
    let wsinv = include_bytes!("../../tests/fixtures/rfc4475/wsinv.dat");
    if let Err(e) = rsip::Request::try_from(&wsinv[..]) {
        eprintln!("note: rsip rejects RFC 4475 §3.1.1.1 wsinv.dat: {e}");
    }
    let mut g = c.benchmark_group("parse_wsinv");
    let w = Bytes::from_static(wsinv);
    g.bench_function("switchyard", |b| {
        b.iter(|| SipMessage::parse(black_box(w.clone())).unwrap())
    });
    g.finish();
}

criterion_group!(codec, benches);
criterion_main!(codec);

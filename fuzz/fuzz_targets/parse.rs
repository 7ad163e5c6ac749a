//! Fuzz the whole codec surface: framing, parsing, every typed accessor,
//! validation, the splicing editor and the message builders.
//!
//! Besides "never panic", it checks two properties a proxy relies on:
//! a request that passes `validate_request` still parses and validates
//! after the forwarding edits, and the responses / CANCEL / ACK built from
//! it parse.

#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard_codec::*;

fn touch_name_addr(na: &NameAddr<'_>) {
    let _ = (
        na.tag(),
        na.display_name(),
        na.expires(),
        na.q(),
        na.sip_instance(),
        na.reg_id(),
    );
    touch_uri(&na.uri);
    let _ = na.params.iter().count();
}

fn touch_uri(u: &Uri<'_>) {
    let _ = (
        u.transport(),
        u.is_lr(),
        u.maddr(),
        u.user_param(),
        u.host.ip(),
    );
    let _ = u.to_string();
    let _ = u.params.get_unquoted("x");
    let _ = Uri::parse(u.raw);
}

fn touch(m: &SipMessage) {
    let _ = (
        m.is_request(),
        m.method(),
        m.request_uri_str(),
        m.status(),
        m.reason(),
    );
    let _ = (m.version(), m.start_line(), m.body(), m.body_bytes());
    if let Ok(u) = m.request_uri() {
        touch_uri(&u);
    }
    for h in m.headers() {
        let _ = (h.name.as_str(), h.raw_name, h.value);
        let _ = m.header_by_name(h.raw_name);
    }
    for v in m.vias().flatten() {
        let _ = (v.branch(), v.received(), v.rport(), v.maddr(), v.sent_by());
        let _ = (v.has_rfc3261_branch(), v.params.iter().count());
    }
    let _ = m.top_via();
    for na in [m.from(), m.to()].into_iter().flatten() {
        touch_name_addr(&na);
    }
    let _ = (
        m.call_id(),
        m.cseq(),
        m.max_forwards(),
        m.expires(),
        m.min_expires(),
    );
    let _ = m.content_length();
    if let Ok(Contacts::List(list)) = m.contacts() {
        list.iter().for_each(touch_name_addr);
    }
    for list in [m.routes(), m.record_routes(), m.paths()]
        .into_iter()
        .flatten()
    {
        list.iter().for_each(touch_name_addr);
    }
    let _ = m.top_route();
    for h in [
        HeaderName::Supported,
        HeaderName::Require,
        HeaderName::ProxyRequire,
    ] {
        let _ = m.option_tags(h).count();
    }
}

fuzz_target!(|data: &[u8]| {
    let _ = frame(data, 65_536);
    let _ = frame(data, 64);
    let Ok(m) = SipMessage::parse(Bytes::copy_from_slice(data)) else {
        return;
    };
    touch(&m);
    let valid_request = m.is_request() && validate_request(&m).is_ok();
    let _ = validate_response(&m);

    // Every editor operation on whatever parsed.
    let mut e = m.edit();
    e.push_header(
        HeaderName::Via,
        "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKfuzz",
    )
    .push_header(HeaderName::RecordRoute, "<sip:127.0.0.1;lr>")
    .push_header(HeaderName::Path, "<sip:127.0.0.1;lr>")
    .remove_first_value(HeaderName::Route)
    .remove_first_value(HeaderName::Route)
    .set_request_uri("sip:user@127.0.0.1:5070")
    .set_max_forwards(69)
    .set_top_via_received(Some("127.0.0.9"), Some(5099))
    .append_header("X-Fuzz", "1");
    let forwarded = e.finish();
    let mut r = m.edit();
    r.remove_first_value(HeaderName::Via)
        .remove_headers(HeaderName::Contact);
    let _ = r.finish();

    if valid_request {
        // The forwarding edits keep a valid request valid.
        let f = SipMessage::parse(forwarded).expect("forwarded copy parses");
        touch(&f);
        validate_request(&f).expect("forwarded copy validates");
        let resp = response_to(&m, 400, "Bad Request").to_tag("t").build();
        let resp = SipMessage::parse(resp).expect("response parses");
        touch(&resp);
        let cancel = SipMessage::parse(build_cancel(&m)).expect("CANCEL parses");
        touch(&cancel);
        let ack = SipMessage::parse(build_ack_for_non2xx(&m, &resp)).expect("ACK parses");
        touch(&ack);
    }
});

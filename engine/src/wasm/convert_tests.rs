use super::*;

fn header(name: &str, value: &str) -> types::Header {
    types::Header {
        name: name.into(),
        value: value.into(),
    }
}

fn decision(
    action: hooks::RequestAction,
    headers: Vec<types::HeaderEdit>,
) -> hooks::RequestDecision {
    hooks::RequestDecision {
        action,
        headers,
        request_uri: None,
        ctx: None,
    }
}

fn reply(code: u16) -> types::Reply {
    types::Reply {
        code,
        reason: String::new(),
        headers: vec![
            header("Retry-After", "30"),
            header("Via", "SIP/2.0/UDP evil"),
        ],
    }
}

fn target(uri: &str) -> types::Target {
    types::Target {
        uri: uri.into(),
        route: vec![],
    }
}

fn relay(targets: Vec<types::Target>) -> hooks::RequestAction {
    hooks::RequestAction::Relay(vec![types::TargetGroup {
        targets,
        timeout_ms: 0,
    }])
}

#[test]
fn reply_codes_outside_300_to_699_are_refused() {
    for code in [100, 180, 200, 299, 700] {
        let d = decision(hooks::RequestAction::Reply(reply(code)), vec![]);
        assert!(Decoder::default().request(d).is_err(), "{code}");
    }
    let mut decoder = Decoder::default();
    let d = decision(hooks::RequestAction::Reply(reply(503)), vec![]);
    let (decoded, _) = decoder.request(d).unwrap();
    let RequestAction::Reply(r) = decoded.action else {
        panic!("reply");
    };
    assert_eq!(
        (r.code, r.headers.len()),
        (503, 1),
        "Via is not the policy's to add"
    );
    assert_eq!(decoder.ignored_edits, 1);
}

#[test]
fn header_injection_is_refused_not_filtered() {
    for value in ["a\r\nVia: x", "a\nb", "a\0b"] {
        let d = decision(
            hooks::RequestAction::Proceed,
            vec![types::HeaderEdit::Add(header("X-A", value))],
        );
        let error = Decoder::default().request(d).unwrap_err();
        assert!(error.0.contains("CR, LF or NUL"), "{error}");
    }
}

#[test]
fn owned_fields_are_dropped_and_counted() {
    let mut decoder = Decoder::default();
    let edits = vec![
        types::HeaderEdit::Set(header("CSeq", "1 INVITE")),
        types::HeaderEdit::Remove("v".into()),
        types::HeaderEdit::Set(header("Max-Forwards", "70")),
        types::HeaderEdit::Set(header("max-breadth", "1000")),
        types::HeaderEdit::Add(header("X-Kept", "1")),
    ];
    let (decoded, _) = decoder
        .request(decision(hooks::RequestAction::Proceed, edits))
        .unwrap();
    assert_eq!(decoded.headers.len(), 1);
    assert_eq!(decoder.ignored_edits, 4);
}

#[test]
fn header_edits_are_capped_in_total() {
    let half = "a".repeat(MAX_HEADER_BYTES / 2);
    let edits = vec![
        types::HeaderEdit::Add(header("X-A", &half)),
        types::HeaderEdit::Add(header("X-B", &half)),
    ];
    let error = Decoder::default()
        .request(decision(hooks::RequestAction::Proceed, edits))
        .unwrap_err();
    assert!(error.0.contains("exceed"), "{error}");
}

#[test]
fn targets_must_be_sip_uris_and_few() {
    for uri in [
        "tel:+15551234",
        "not a uri",
        "sip:a@b\r\nVia: x",
        "http://x",
    ] {
        let d = decision(relay(vec![target(uri)]), vec![]);
        assert!(Decoder::default().request(d).is_err(), "{uri:?}");
    }
    let many = (0..=MAX_TARGETS)
        .map(|i| target(&format!("sip:u{i}@127.0.0.1")))
        .collect();
    assert!(
        Decoder::default()
            .request(decision(relay(many), vec![]))
            .is_err()
    );
    assert!(
        Decoder::default()
            .request(decision(relay(vec![]), vec![]))
            .is_err(),
        "empty group"
    );
    let bad_route = types::Target {
        uri: "sip:a@127.0.0.1".into(),
        route: vec!["<mailto:x@y>".into()],
    };
    assert!(
        Decoder::default()
            .request(decision(relay(vec![bad_route]), vec![]))
            .is_err()
    );
    let ok = types::Target {
        uri: "sips:a@127.0.0.1:5061".into(),
        route: vec!["<sip:edge.acme.test;lr>".into()],
    };
    assert!(
        Decoder::default()
            .request(decision(relay(vec![ok]), vec![]))
            .is_ok()
    );
}

#[test]
fn request_uri_rewrite_and_ctx_are_checked() {
    let mut d = decision(hooks::RequestAction::Proceed, vec![]);
    d.request_uri = Some("garbage".into());
    assert!(Decoder::default().request(d).is_err());
    let mut d = decision(hooks::RequestAction::Proceed, vec![]);
    d.ctx = Some(vec![0; MAX_CTX_BYTES + 1]);
    assert!(Decoder::default().request(d).is_err());
    let mut d = decision(hooks::RequestAction::Proceed, vec![]);
    d.ctx = Some(vec![0; MAX_CTX_BYTES]);
    d.request_uri = Some("sip:bob@127.0.0.1".into());
    let (decoded, ctx) = Decoder::default().request(d).unwrap();
    assert_eq!(decoded.request_uri.as_deref(), Some("sip:bob@127.0.0.1"));
    assert_eq!(ctx.map(|c| c.len()), Some(MAX_CTX_BYTES));
}

#[test]
fn scratch_request_is_refilled_in_place() {
    let invite = crate::wasm::testing::Invite::to("bob");
    let two = [
        crate::wasm::testing::binding("sip:a@127.0.0.1"),
        crate::wasm::testing::binding("sip:b@127.0.0.1"),
    ];
    let mut scratch = Scratch::new();
    let now = SystemTime::now();
    scratch.fill_request(&invite.info(&two), b"ctx", now);
    let message_buffer = scratch.request.message.as_ptr();
    let filled = scratch.fill_request(&invite.info(&two[..1]), b"", now);
    assert_eq!(filled.message, invite.message);
    assert_eq!(filled.message.as_ptr(), message_buffer, "no reallocation");
    assert_eq!(filled.bindings.len(), 1);
    assert_eq!(filled.bindings[0].contact, "sip:a@127.0.0.1");
    assert_eq!(
        filled.bindings[0].instance.as_deref(),
        Some("urn:uuid:00000000-0000-0000-0000-000000000001")
    );
    assert_eq!(filled.bindings[0].q, 1000);
    assert_eq!(filled.source.remote, "127.0.0.1:5070");
    assert!(filled.ctx.is_empty());
}

use super::*;
use crate::registrar::test_support::{register, source};

fn parse(extra: &[&str]) -> Result<(Aor, RegisterUpdate), Reject> {
    parse_register(
        &register(1, extra),
        &RegistrarConfig::default(),
        source(),
        Some("node-1"),
    )
}

fn contacts(extra: &[&str]) -> Vec<ContactUpdate> {
    match parse(extra).expect("accepted").1.contacts {
        ContactsUpdate::Set(contacts) => contacts,
        other => panic!("expected contacts, got {other:?}"),
    }
}

fn key(uri: &str) -> String {
    contact_key(&Uri::parse(uri).unwrap())
}

#[test]
fn builds_the_update_from_the_request() {
    let (aor, update) = parse(&[
        r#"Contact: <sip:alice@127.0.0.2:40000;ob>;q=0.7;+sip.instance="<urn:uuid:ABC>";reg-id=1"#,
        "Supported: outbound, path",
        "Path: <sip:edge1.test;lr;ob>, <sip:edge2.test;lr>",
        "User-Agent: Softphone/1.0",
    ])
    .unwrap();
    assert_eq!(aor.as_str(), "alice@sip.test");
    assert_eq!(
        (update.call_id.as_str(), update.cseq),
        ("reg-call-1@127.0.0.2", 1)
    );
    assert_eq!(
        update.path,
        ["<sip:edge1.test;lr;ob>", "<sip:edge2.test;lr>"]
    );
    assert_eq!(update.user_agent.as_deref(), Some("Softphone/1.0"));
    assert_eq!(update.node.as_deref(), Some("node-1"));
    assert_eq!(update.source, source());
    let ContactsUpdate::Set(contacts) = update.contacts else {
        panic!("expected contacts");
    };
    let [contact] = contacts.as_slice() else {
        panic!("one contact expected");
    };
    assert_eq!(contact.contact, "sip:alice@127.0.0.2:40000;ob");
    assert_eq!(contact.q, Some(700));
    assert_eq!(contact.instance.as_deref(), Some("<urn:uuid:ABC>"));
    assert_eq!(contact.reg_id, Some(1));
    assert_eq!(contact.key, BindingKey::instance("<urn:uuid:abc>", Some(1)));
    assert_eq!(contact.expires, 3600, "default expiry");
}

#[test]
fn expiry_comes_from_parameter_then_header_then_default_and_is_clamped() {
    let found = contacts(&[
        "Contact: <sip:a@127.0.0.2>;expires=120, <sip:b@127.0.0.2>",
        "Contact: <sip:c@127.0.0.2>;expires=86400",
        "Expires: 300",
    ]);
    let expires: Vec<u32> = found.iter().map(|c| c.expires).collect();
    assert_eq!(expires, [120, 300, 7200]);
    // Values past u32 are "very long", not malformed (RFC 4475 §3.1.2.4).
    let found = contacts(&["Contact: <sip:a@127.0.0.2>", "Expires: 99999999999"]);
    assert_eq!(found[0].expires, 7200);
}

#[test]
fn too_brief_interval_gets_423_but_zero_is_a_removal() {
    assert_eq!(
        parse(&["Contact: <sip:a@127.0.0.2>;expires=59"]).unwrap_err(),
        Reject::IntervalTooBrief { min_expires: 60 }
    );
    assert_eq!(
        contacts(&["Contact: <sip:a@127.0.0.2>;expires=0"])[0].expires,
        0
    );
    assert_eq!(
        contacts(&["Contact: <sip:a@127.0.0.2>", "Expires: 60"])[0].expires,
        60
    );
}

#[test]
fn wildcard_needs_expires_zero_and_no_other_contact() {
    let (_, update) = parse(&["Contact: *", "Expires: 0"]).unwrap();
    assert_eq!(update.contacts, ContactsUpdate::RemoveAll);
    for extra in [
        &["Contact: *"][..],
        &["Contact: *", "Expires: 3600"],
        &["Contact: *, <sip:a@127.0.0.2>", "Expires: 0"],
    ] {
        assert!(
            matches!(parse(extra), Err(Reject::BadRequest(_))),
            "{extra:?}"
        );
    }
}

#[test]
fn no_contact_is_a_query() {
    assert_eq!(parse(&[]).unwrap().1.contacts, ContactsUpdate::Fetch);
}

#[test]
fn path_without_support_requires_the_extension() {
    let err = parse(&["Contact: <sip:a@127.0.0.2>", "Path: <sip:edge.test;lr>"]).unwrap_err();
    assert_eq!(err, Reject::ExtensionRequired("path"));
    // Supported without Path is fine and stores nothing.
    let (_, update) = parse(&["Contact: <sip:a@127.0.0.2>", "Supported: path"]).unwrap();
    assert!(update.path.is_empty());
}

#[test]
fn unknown_required_extension_gets_420() {
    let err = parse(&["Contact: <sip:a@127.0.0.2>", "Require: path, foo, bar"]).unwrap_err();
    assert_eq!(err, Reject::BadExtension(vec!["foo".into(), "bar".into()]));
}

#[test]
fn malformed_parameters_get_400_naming_them() {
    for (extra, problem) in [
        ("Contact: <sip:a@127.0.0.2>;q=1.5", "Invalid Contact q"),
        (
            "Contact: <sip:a@127.0.0.2>;expires=soon",
            "Invalid Contact expires parameter",
        ),
        (
            "Contact: <sip:a@127.0.0.2>;+sip.instance=\"<urn:x>\";reg-id=0",
            "Invalid Contact reg-id",
        ),
    ] {
        assert_eq!(
            parse(&[extra]).unwrap_err(),
            Reject::BadRequest(problem.into()),
            "{extra}"
        );
    }
    let err = parse(&["Contact: <sip:a@127.0.0.2>", "Expires: -1"]).unwrap_err();
    assert_eq!(err, Reject::BadRequest("Invalid Expires header".into()));
    assert!(matches!(
        parse(&["Contact: <sip:a@127.0.0.2"]),
        Err(Reject::BadRequest(_))
    ));
}

#[test]
fn non_sip_to_uri_is_not_found() {
    let msg = register(1, &[]);
    let text = String::from_utf8(msg.as_bytes().to_vec()).unwrap();
    let text = text.replace("To: <sip:alice@sip.test>", "To: <tel:+15551234>");
    let msg = SipMessage::parse(text.into()).unwrap();
    let err = parse_register(&msg, &RegistrarConfig::default(), source(), None).unwrap_err();
    assert!(
        matches!(err, Reject::NotFound(AorError::UnsupportedScheme(_))),
        "{err:?}"
    );
}

#[test]
fn reg_id_without_instance_is_ignored() {
    let found = contacts(&["Contact: <sip:a@127.0.0.2>;reg-id=1"]);
    assert_eq!(found[0].reg_id, None);
    assert_eq!(found[0].key, BindingKey::Contact("sip:a@127.0.0.2".into()));
}

#[test]
fn user_agent_is_capped() {
    let long = format!("User-Agent: {}", "é".repeat(300));
    let (_, update) = parse(&["Contact: <sip:a@127.0.0.2>", &long]).unwrap();
    let ua = update.user_agent.unwrap();
    assert!(ua.len() <= MAX_USER_AGENT && ua.chars().all(|c| c == 'é'));
}

#[test]
fn contact_keys_follow_rfc3261_uri_comparison() {
    // §19.1.4 examples of equal URIs.
    assert_eq!(
        key("sip:%61lice@atlanta.com;transport=TCP"),
        key("sip:alice@AtLanTa.CoM;Transport=tcp")
    );
    assert_eq!(key("SIP:carol@chicago.com"), key("sip:carol@CHICAGO.COM"));
    assert_eq!(
        key("sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com"),
        key("sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com")
    );
    // Parameters outside the significant set do not split a contact.
    assert_eq!(
        key("sip:a@127.0.0.2;ob;rinstance=1"),
        key("sip:a@127.0.0.2")
    );
    // §19.1.4 examples of different URIs.
    assert_ne!(
        key("SIP:ALICE@AtLanTa.CoM;Transport=udp"),
        key("sip:alice@AtLanTa.CoM;Transport=UDP")
    );
    assert_ne!(key("sip:bob@biloxi.com"), key("sip:bob@biloxi.com:5060"));
    assert_ne!(
        key("sip:bob@biloxi.com"),
        key("sip:bob@biloxi.com;transport=udp")
    );
    assert_ne!(key("sip:bob@biloxi.com"), key("sips:bob@biloxi.com"));
    assert_ne!(
        key("sip:carol@chicago.com"),
        key("sip:carol@chicago.com?Subject=next%20meeting")
    );
    assert_eq!(key("sip:a@[2001:DB8::1]:5060"), "sip:a@[2001:db8::1]:5060");
}

#[test]
fn longest_grant_is_what_the_edge_token_must_outlive() {
    let config = RegistrarConfig::default();
    let grant = |extra: &[&str]| longest_grant(&register(1, extra), &config);
    assert_eq!(
        grant(&[
            "Contact: <sip:a@127.0.0.2>;expires=600",
            "Contact: <sip:b@127.0.0.2>"
        ]),
        config.default_expires,
        "a Contact without expires gets the default"
    );
    assert_eq!(grant(&["Contact: <sip:a@127.0.0.2>", "Expires: 120"]), 120);
    assert_eq!(
        grant(&["Contact: <sip:a@127.0.0.2>;expires=999999"]),
        config.max_expires
    );
    assert_eq!(grant(&["Contact: <sip:a@127.0.0.2>;expires=0"]), 0);
    assert_eq!(grant(&[]), 0, "a query registers nothing");
}

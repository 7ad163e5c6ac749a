use std::time::Duration;

use switchyard_codec::{Contacts, HeaderName};

use super::*;
use crate::location::samples::{contact, outbound_contact, update};
use crate::registrar::ContactUpdate;
use crate::registrar::test_support::register;

fn parse(bytes: Bytes) -> SipMessage {
    SipMessage::parse(bytes).expect("response parses")
}

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

#[test]
fn http_dates_match_rfc1123() {
    assert_eq!(http_date(UNIX_EPOCH), "Thu, 01 Jan 1970 00:00:00 GMT");
    // The Date example of RFC 3261 §20.17.
    assert_eq!(
        http_date(at(1_289_690_940)),
        "Sat, 13 Nov 2010 23:29:00 GMT"
    );
    assert_eq!(
        http_date(at(1_709_208_005)),
        "Thu, 29 Feb 2024 12:00:05 GMT"
    );
}

#[test]
fn ok_lists_every_binding_with_remaining_expiry() {
    let now = at(1_700_000_000);
    let request = update(
        "c",
        1,
        vec![
            ContactUpdate {
                q: Some(500),
                ..contact("sip:low@127.0.0.2", 600)
            },
            outbound_contact("sip:out@127.0.0.3;ob", "<urn:uuid:1>", 2, 3600),
        ],
    );
    let bindings = crate::registrar::apply(Vec::new(), &request, now)
        .unwrap()
        .bindings;
    let msg = register(1, &["Supported: path", "Path: <sip:edge.test;lr>"]);

    let response = parse(ok_response(&msg, &bindings, now + Duration::from_secs(100)));
    assert_eq!(response.status(), Some(200));
    assert!(
        response.to().unwrap().tag().is_some(),
        "a UAS adds a To tag"
    );
    let Contacts::List(listed) = response.contacts().unwrap() else {
        panic!("contacts expected");
    };
    let listed: Vec<(&str, Option<u32>)> =
        listed.iter().map(|c| (c.uri.raw, c.expires())).collect();
    // Highest q first (absent q counts as 1.0), with seconds left, not granted.
    assert_eq!(
        listed,
        [
            ("sip:out@127.0.0.3;ob", Some(3500)),
            ("sip:low@127.0.0.2", Some(500))
        ]
    );
    let values: Vec<&str> = response.header_values(HeaderName::Contact).collect();
    assert!(
        values[0].ends_with(";+sip.instance=\"<urn:uuid:1>\";reg-id=2"),
        "{}",
        values[0]
    );
    assert!(values[1].contains(";q=0.5"), "{}", values[1]);
    assert_eq!(
        response.header(HeaderName::Path),
        Some("<sip:edge.test;lr>")
    );
    assert_eq!(
        response.header(HeaderName::Date),
        Some("Tue, 14 Nov 2023 22:15:00 GMT")
    );
}

#[test]
fn ok_without_bindings_has_no_contact() {
    let msg = register(1, &["Contact: *", "Expires: 0"]);
    let response = parse(ok_response(&msg, &[], at(0)));
    assert_eq!(response.status(), Some(200));
    assert_eq!(response.header(HeaderName::Contact), None);
    assert_eq!(response.header(HeaderName::Path), None);
}

#[test]
fn rejections_carry_the_header_their_code_requires() {
    let msg = register(1, &[]);
    let cases = [
        (
            Reject::IntervalTooBrief { min_expires: 60 },
            423,
            "Min-Expires",
            "60",
        ),
        (
            Reject::BadExtension(vec!["foo".into(), "bar".into()]),
            420,
            "Unsupported",
            "foo, bar",
        ),
        (Reject::ExtensionRequired("path"), 421, "Require", "path"),
    ];
    for (reject, code, header, value) in cases {
        let response = parse(reject.response(&msg));
        assert_eq!(response.status(), Some(code));
        assert_eq!(
            response.header(HeaderName::parse(header)),
            Some(value),
            "{reject:?}"
        );
    }
    let response = parse(Reject::BadRequest("Invalid Contact q".into()).response(&msg));
    assert_eq!(
        (response.status(), response.reason()),
        (Some(400), Some("Invalid Contact q"))
    );
}

#[test]
fn store_failure_is_503_with_retry_after() {
    let msg = register(1, &[]);
    let response = parse(store_error_response(
        &msg,
        &StoreError::Timeout(Duration::from_secs(1)),
    ));
    assert_eq!(response.status(), Some(503));
    assert_eq!(response.header(HeaderName::RetryAfter), Some("5"));
    let response = parse(rule_error_response(
        &msg,
        &RuleError::OutOfOrder {
            call_id: "c".into(),
            stored: 2,
            request: 1,
        },
    ));
    assert_eq!(response.status(), Some(500));
}

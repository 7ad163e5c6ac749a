//! RFC 4475 / RFC 5118 torture tests: every fixture in
//! `tests/fixtures/expected.toml` must get the outcome the manifest names.

use std::path::PathBuf;

use serde::Deserialize;
use switchyard_codec::*;

#[derive(Debug, Deserialize)]
struct Manifest {
    fixture: Vec<Fixture>,
}

#[derive(Debug, Deserialize)]
struct Fixture {
    file: String,
    outcome: String,
    code: Option<u16>,
    #[serde(default = "codec_layer")]
    layer: String,
    valid: Option<bool>,
    why: String,
}

fn codec_layer() -> String {
    "codec".into()
}

fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

fn load(file: &str) -> Bytes {
    Bytes::from(std::fs::read(fixtures_dir().join(file)).unwrap_or_else(|e| panic!("{file}: {e}")))
}

fn manifest() -> Manifest {
    let text = std::fs::read_to_string(fixtures_dir().join("expected.toml")).unwrap();
    toml::from_str(&text).unwrap()
}

/// Touch every typed accessor: none may panic, whatever they return.
fn exercise(m: &SipMessage) {
    let _ = (
        m.method(),
        m.request_uri(),
        m.status(),
        m.reason(),
        m.version(),
    );
    let _ = (
        m.top_via(),
        m.vias().count(),
        m.from(),
        m.to(),
        m.call_id(),
        m.cseq(),
    );
    let _ = (
        m.max_forwards(),
        m.expires(),
        m.content_length(),
        m.contacts(),
    );
    let _ = (m.routes(), m.record_routes(), m.paths(), m.body());
    let _ = m.option_tags(HeaderName::ProxyRequire).count();
    let _ = m.headers().count();
}

/// What a proxy does to a request it forwards; the result must still be
/// a valid request.
fn forward(m: &SipMessage) -> SipMessage {
    let mf = m.max_forwards().unwrap().unwrap_or(70);
    let mut e = m.edit();
    e.push_header(
        HeaderName::Via,
        "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKfwd",
    )
    .push_header(HeaderName::RecordRoute, "<sip:127.0.0.1:5060;lr>")
    .set_top_via_received(Some("127.0.0.2"), Some(5099))
    .set_max_forwards(mf.saturating_sub(1));
    SipMessage::parse(e.finish()).expect("forwarded copy parses")
}

#[test]
fn every_fixture_gets_its_expected_outcome() {
    let manifest = manifest();
    assert_eq!(
        manifest.fixture.len(),
        61,
        "49 RFC 4475 + 12 RFC 5118 messages"
    );
    let mut failures = Vec::new();
    for f in &manifest.fixture {
        let bytes = load(&f.file);
        let parsed = SipMessage::parse(bytes);
        if let Ok(m) = &parsed {
            exercise(m);
        }
        let outcome: Result<(), String> = match (f.outcome.as_str(), f.layer.as_str()) {
            ("accept", _) | ("reject", "proxy") => match &parsed {
                Err(e) => Err(format!("parse failed: {e}")),
                Ok(m) if !m.is_request() => Err("not a request".into()),
                Ok(m) => match validate_request(m) {
                    Err(r) => Err(format!("rejected: {r}")),
                    Ok(()) => {
                        let fwd = forward(m);
                        validate_request(&fwd).map_err(|r| format!("forwarded copy rejected: {r}"))
                    }
                },
            },
            ("reject", _) => match &parsed {
                Err(e) => Err(format!(
                    "parse failed ({e}): a response could not be addressed"
                )),
                Ok(m) => match validate_request(m) {
                    Ok(()) => Err("accepted".into()),
                    Err(r) if Some(r.code) != f.code => Err(format!("got {r}")),
                    Err(r) => {
                        eprintln!("{:<45} -> {r}", f.file);
                        // The reason phrase must name the problem, and the
                        // response must be buildable.
                        assert!(
                            r.reason.len() > 8,
                            "{}: vague reason {:?}",
                            f.file,
                            r.reason
                        );
                        let resp = response_to(m, r.code, &r.reason).build();
                        SipMessage::parse(resp)
                            .map(|_| ())
                            .map_err(|e| e.to_string())
                    }
                },
            },
            ("drop", _) => {
                let ok = parsed.as_ref().map_err(|e| e.to_string()).and_then(|m| {
                    if m.is_request() {
                        return Err("is a request".into());
                    }
                    validate_response(m).map_err(|e| e.to_string())
                });
                match (f.valid, ok) {
                    (Some(true), Err(e)) => Err(format!("valid response refused: {e}")),
                    (Some(false), Ok(())) => Err("invalid response accepted".into()),
                    _ => Ok(()),
                }
            }
            (other, _) => Err(format!("unknown outcome {other}")),
        };
        if let Err(e) = outcome {
            failures.push(format!("{} ({}): {e}  [{}]", f.file, f.outcome, f.why));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn tortuous_invite_values() {
    let m = SipMessage::parse(load("rfc4475/wsinv.dat")).unwrap();
    assert_eq!(m.to().unwrap().tag(), Some("1918181833n"));
    let from = m.from().unwrap();
    assert_eq!(from.tag(), Some("98asjd8"));
    assert_eq!(from.display_name().as_deref(), Some("J Rosenberg \\\""));
    assert_eq!(m.max_forwards().unwrap(), Some(68));
    assert_eq!(
        m.cseq().unwrap(),
        CSeq {
            seq: 9,
            method: Method::Invite
        }
    );
    let vias: Vec<_> = m.vias().map(|v| v.unwrap()).collect();
    assert_eq!(vias.len(), 3);
    assert_eq!(vias[0].branch(), Some("390skdjuw"));
    assert_eq!(vias[1].transport, "TCP");
    assert_eq!(vias[1].host, Host::Domain("spindle.example.com"));
    assert_eq!(vias[2].branch(), Some("z9hG4bK30239"));
    let Contacts::List(c) = m.contacts().unwrap() else {
        panic!()
    };
    assert_eq!(c[0].params.get("newparam"), Some(Some("newvalue")));
    assert_eq!(c[0].params.get("secondparam"), Some(None));
    assert_eq!(c[0].q(), Some(0.33));
    assert!(m.routes().unwrap()[0].uri.is_lr());
    assert_eq!(m.header(HeaderName::Subject), Some(""));
    assert_eq!(m.body().len(), 150);
}

#[test]
fn extra_datagram_octets_are_not_forwarded() {
    let m = SipMessage::parse(load("rfc4475/dblreq.dat")).unwrap();
    assert_eq!(m.body(), b"");
    let mut e = m.edit();
    e.set_max_forwards(7);
    let out = e.finish();
    assert!(out.ends_with(b"Content-Length: 0\r\n\r\n"));
    assert!(!out.windows(6).any(|w| w == b"INVITE"));
}

#[test]
fn ipv6_references() {
    let m = SipMessage::parse(load("rfc5118/port-ambiguous.dat")).unwrap();
    let u = m.request_uri().unwrap();
    assert_eq!(u.host, Host::V6("2001:db8::10:5070".parse().unwrap()));
    assert_eq!(u.port, None);
    let m = SipMessage::parse(load("rfc5118/port-unambiguous.dat")).unwrap();
    assert_eq!(m.request_uri().unwrap().port, Some(5070));
    let m = SipMessage::parse(load("rfc5118/mult-ip-in-header.dat")).unwrap();
    let v = m.top_via().unwrap();
    assert_eq!(v.sent_by(), "[2001:db8::9:1]:6050");
    let m = SipMessage::parse(load("rfc5118/ipv4-mapped-ipv6.dat")).unwrap();
    assert_eq!(m.top_via().unwrap().port, Some(19823));
}

#[test]
fn unusual_characters_survive() {
    let m = SipMessage::parse(load("rfc4475/intmeth.dat")).unwrap();
    assert_eq!(
        m.method().unwrap().as_str(),
        "!interesting-Method0123456789_*+`.%indeed'~"
    );
    let u = m.request_uri().unwrap();
    assert_eq!(
        u.user,
        Some("1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*")
    );
    assert_eq!(
        u.password,
        Some("&it+has=1,weird!*pas$wo~d_too.(doesn't-it)")
    );
    assert_eq!(
        m.call_id().unwrap(),
        "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    );
    assert_eq!(m.from().unwrap().tag(), Some("_token~1'+`*%!-."));
    let m = SipMessage::parse(load("rfc4475/esc02.dat")).unwrap();
    // C%6Fntact is an extension header, not a third Contact.
    let Contacts::List(c) = m.contacts().unwrap() else {
        panic!()
    };
    assert_eq!(c.len(), 2);
}

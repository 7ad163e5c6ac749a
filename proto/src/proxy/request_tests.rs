use super::*;
use crate::net::Transport;
use crate::proxy::identity::LocalAddress;

fn ident() -> Identity {
    Identity::new(
        &["switchyard.test".to_string()],
        vec![LocalAddress::new(Transport::Udp, "127.0.0.2:5060")],
    )
}

fn parse(text: &str) -> SipMessage {
    SipMessage::parse(Bytes::from(text.replace('\n', "\r\n"))).unwrap()
}

fn invite(extra: &str, ruri: &str, mf: u32) -> SipMessage {
    parse(&format!(
        "INVITE {ruri} SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.9:5070;branch=z9hG4bK1\n{extra}Max-Forwards: {mf}\nFrom: <sip:a@switchyard.test>;tag=1\nTo: <sip:b@switchyard.test>\nCall-ID: c1\nCSeq: 1 INVITE\nContent-Length: 0\n\n"
    ))
}

#[test]
fn validation_codes_of_16_3() {
    let id = ident();
    assert_eq!(
        validate(&invite("", "sip:b@switchyard.test", 70), &id),
        Ok(())
    );
    assert_eq!(
        validate(&invite("", "sip:b@switchyard.test", 0), &id)
            .unwrap_err()
            .code,
        483
    );
    assert_eq!(
        validate(&invite("", "mailto:b@switchyard.test", 70), &id)
            .unwrap_err()
            .code,
        416
    );
    let r = validate(
        &invite("Proxy-Require: foo, bar\n", "sip:b@switchyard.test", 70),
        &id,
    )
    .unwrap_err();
    assert_eq!(r.code, 420);
    assert_eq!(
        r.headers,
        vec![("Unsupported".to_string(), "foo, bar".to_string())]
    );
}

#[test]
fn a_request_that_comes_back_unchanged_is_a_loop_but_a_spiral_is_not() {
    let id = ident();
    let first = invite("", "sip:b@switchyard.test", 70);
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(7);
    let branch = new_branch(&loop_hash(&first), &mut rng);
    assert_eq!(
        branch,
        new_branch(
            &loop_hash(&first),
            &mut <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(7)
        ),
        "a seeded RNG gives the same branch"
    );
    let looped = invite(
        &format!("Via: SIP/2.0/UDP 127.0.0.2:5060;branch={branch}\n"),
        "sip:b@switchyard.test",
        69,
    );
    // The looped copy has our Via below the sender's: same hash → 482.
    assert_eq!(validate(&looped, &id).unwrap_err().code, 482);
    let spiral = invite(
        &format!("Via: SIP/2.0/UDP 127.0.0.2:5060;branch={branch}\n"),
        "sip:voicemail@switchyard.test",
        69,
    );
    assert_eq!(validate(&spiral, &id), Ok(()));
}

#[test]
fn our_own_route_is_popped_and_strict_router_uri_restored() {
    let id = ident();
    let loose = invite(
        "Route: <sip:127.0.0.2;lr>, <sip:127.0.0.7;lr>\n",
        "sip:b@127.0.0.8",
        70,
    );
    let st = preprocess_routes(&loose, &id).unwrap();
    assert_eq!(st.routes, vec!["<sip:127.0.0.7;lr>".to_string()]);
    assert_eq!(st.request_uri, "sip:b@127.0.0.8");
    assert!(st.changed);
    // A strict router put our URI in the Request-URI and the target last in Route.
    let strict = invite("Route: <sip:b@127.0.0.8>\n", "sip:127.0.0.2;lr", 70);
    let st = preprocess_routes(&strict, &id).unwrap();
    assert_eq!(st.request_uri, "sip:b@127.0.0.8");
    assert!(st.routes.is_empty());
    let untouched = invite("", "sip:b@127.0.0.8", 70);
    assert!(!preprocess_routes(&untouched, &id).unwrap().changed);
}

#[test]
fn forwarded_copy_is_spliced_per_16_6() {
    let req = invite("Route: <sip:127.0.0.2;lr>\n", "sip:b@switchyard.test", 70);
    let routes: Vec<String> = vec!["<sip:edge.test;lr>".into()];
    let out = build_forward(
        &req,
        &ForwardSpec {
            request_uri: "sip:b@127.0.0.8:5080",
            routes: Some(&routes),
            record_route: &["<sip:127.0.0.2:5060;lr>".to_string()],
            via: "SIP/2.0/UDP 127.0.0.2:5060;branch=z9hG4bKsyX",
            received: Some("127.0.0.10"),
            rport: Some(5070),
            headers: &[],
            max_breadth: Some(30),
        },
    );
    let fwd = SipMessage::parse(out).unwrap();
    assert_eq!(fwd.header(HeaderName::MaxBreadth), Some("30"));
    assert_eq!(fwd.request_uri_str(), Some("sip:b@127.0.0.8:5080"));
    assert_eq!(fwd.max_forwards().unwrap(), Some(69));
    let vias: Vec<String> = fwd.vias().map(|v| v.unwrap().raw.to_string()).collect();
    assert_eq!(vias[0], "SIP/2.0/UDP 127.0.0.2:5060;branch=z9hG4bKsyX");
    assert!(
        vias[1].contains("received=127.0.0.10") && vias[1].contains("5070"),
        "{vias:?}"
    );
    assert_eq!(fwd.header(HeaderName::Route), Some("<sip:edge.test;lr>"));
    assert_eq!(
        fwd.header(HeaderName::RecordRoute),
        Some("<sip:127.0.0.2:5060;lr>")
    );
    assert_eq!(fwd.call_id().unwrap(), "c1");
}

#[test]
fn angle_brackets_are_stripped_from_route_values() {
    assert_eq!(strip_angle("<sip:a;lr>"), "sip:a;lr");
    assert_eq!(strip_angle(" \"x\" <sip:a>;foo"), "sip:a");
    assert_eq!(strip_angle("sip:a;lr"), "sip:a");
}

#[test]
fn max_breadth_is_lowered_never_raised_and_written_only_when_needed() {
    let plain = invite("", "sip:b@switchyard.test", 70);
    let carried = invite("Max-Breadth: 10\n", "sip:b@switchyard.test", 70);
    let bogus = invite("Max-Breadth: lots\n", "sip:b@switchyard.test", 70);
    assert_eq!(max_breadth(&plain, 60), 60, "RFC 5393 §5.3.1's default");
    assert_eq!(max_breadth(&carried, 60), 10);
    assert_eq!(max_breadth(&carried, 4), 4, "lowered to ours");
    assert_eq!(max_breadth(&bogus, 60), 60);
    // One target, no header: left alone. Forked, or carried: written.
    assert_eq!(branch_max_breadth(&plain, 60, 60), None);
    assert_eq!(branch_max_breadth(&plain, 30, 60), Some(30));
    assert_eq!(branch_max_breadth(&carried, 10, 10), Some(10));
}

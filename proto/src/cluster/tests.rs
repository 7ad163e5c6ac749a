use switchyard_codec::Uri;

use super::*;
use crate::net::Transport;

fn cluster(node: &str) -> Cluster {
    Cluster::new(node, "switchyard.test", &["a cluster secret of length"])
}

/// "Now" for the tokens below, and an expiry well after it.
const NOW: u64 = 1_700_000_000;
const LATER: u64 = NOW + 3600;

fn flow() -> Source {
    Source {
        transport: Transport::Tcp,
        remote: "127.0.0.9:40123".parse().unwrap(),
        local: "127.0.0.2:5060".parse().unwrap(),
    }
}

#[test]
fn flow_tokens_open_on_every_node_but_belong_to_one() {
    let (a, b) = (cluster("a"), cluster("b"));
    let token = a.flow_token(flow(), true, LATER);
    let opened = b.open_flow(&token, NOW).unwrap();
    assert_eq!(opened.node, "a");
    assert_eq!(opened.flow, flow());
    assert_eq!(a.own_flow(Some(&token), NOW).unwrap().flow, flow());
    assert!(
        b.own_flow(Some(&token), NOW).is_none(),
        "b does not hold a's flow"
    );
    assert!(a.own_flow(Some("alice"), NOW).is_none());
    assert!(a.own_flow(None, NOW).is_none());
}

#[test]
fn path_value_is_a_loose_route_with_the_token_as_user() {
    let a = cluster("a");
    let path = a.path_value(
        ("127.0.0.2:5060", Transport::Tcp),
        flow(),
        true,
        true,
        LATER,
    );
    let uri = Uri::parse(path.trim_matches(|c| c == '<' || c == '>')).unwrap();
    assert!(uri.params.get("lr").is_some());
    assert!(uri.params.get("ob").is_some());
    assert_eq!(uri.params.get("transport"), Some(Some("tcp")));
    assert_eq!(a.own_flow(uri.user, NOW).unwrap().flow, flow());
    let plain = a.path_value(
        ("127.0.0.2:5060", Transport::Udp),
        flow(),
        false,
        false,
        LATER,
    );
    assert!(!plain.contains(";ob") && !plain.contains("transport="));
    // Unpinned: it names the edge, but the edge does not send on the flow.
    let user = Uri::parse(plain.trim_matches(|c| c == '<' || c == '>'))
        .unwrap()
        .user
        .map(str::to_owned);
    assert!(!a.open_flow(user.as_deref().unwrap(), NOW).unwrap().pinned);
    assert!(a.own_flow(user.as_deref(), NOW).is_none());
}

#[test]
fn public_gruu_is_aor_plus_instance_urn() {
    // RFC 5627 §3.1's example form.
    let gruu = Cluster::pub_gruu(
        "alice@example.com",
        "<urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6>",
    );
    assert_eq!(
        gruu,
        "sip:alice@example.com;gr=urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6"
    );
    let c = cluster("a");
    let uri = Uri::parse(&gruu).unwrap();
    assert_eq!(
        c.gruu_of(&uri),
        Some(GruuRef::Public {
            aor: "alice@example.com".into(),
            instance: "<urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6>".into(),
        })
    );
    assert_eq!(
        c.gruu_of(&Uri::parse("sip:alice@example.com").unwrap()),
        None
    );
}

#[test]
fn temp_gruus_are_fresh_opaque_and_resolve_on_any_node() {
    let (a, b) = (cluster("a"), cluster("b"));
    let gruu = TempGruu {
        aor: "alice@switchyard.test".into(),
        instance: "<urn:uuid:0000-1111>".into(),
        generation_ms: 1_700_000_000_000,
    };
    let t1 = a.temp_gruu(&gruu);
    let t2 = a.temp_gruu(&gruu);
    assert_ne!(t1, t2, "a new temp-GRUU each time");
    assert!(
        !t1.contains("alice") && !t1.contains("uuid"),
        "opaque: {t1}"
    );
    assert!(t1.ends_with("@switchyard.test;gr"), "{t1}");
    for t in [&t1, &t2] {
        assert_eq!(
            b.gruu_of(&Uri::parse(t).unwrap()),
            Some(GruuRef::Temp(gruu.clone()))
        );
    }
    // One character changed in the token: refused, not misread.
    let at = TEMP_GRUU_PREFIX.len() + 4 + "sip:".len();
    let mut forged = t1.clone().into_bytes();
    forged[at] = if forged[at] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    assert_eq!(
        b.gruu_of(&Uri::parse(&forged).unwrap()),
        Some(GruuRef::Invalid)
    );
    let other_cluster = Cluster::new("x", "switchyard.test", &["another secret, long enough"]);
    assert_eq!(
        other_cluster.gruu_of(&Uri::parse(&t1).unwrap()),
        Some(GruuRef::Invalid)
    );
}

#[test]
fn rewritten_contacts_carry_the_original_and_the_flow() {
    let (a, c) = (cluster("a"), cluster("c"));
    let rewritten = RewrittenContact {
        contact: "sip:bob@192.0.2.4:5060;transport=udp".into(),
        edge: "127.0.0.2:5061".into(),
        edge_transport: Transport::Tcp,
        flow: FlowToken {
            node: "a".into(),
            flow: flow(),
            pinned: true,
            expires_secs: LATER,
        },
    };
    let uri = a.rewritten_contact(&rewritten);
    assert!(uri.starts_with("sip:sy.") && uri.ends_with("@switchyard.test"));
    assert!(!uri.contains("bob"));
    let parsed = Uri::parse(&uri).unwrap();
    assert_eq!(c.rewritten_of(&parsed, NOW), Some(Ok(rewritten)));
    let tampered = uri
        .replacen("sip:sy.A", "sip:sy.B", 1)
        .replacen("sip:sy.", "sip:sy.Q", 1);
    assert_eq!(
        c.rewritten_of(&Uri::parse(&tampered).unwrap(), NOW),
        Some(Err(InvalidToken))
    );
    assert_eq!(
        c.rewritten_of(&Uri::parse("sip:bob@switchyard.test").unwrap(), NOW),
        None
    );
}

#[test]
fn a_token_of_one_kind_is_refused_as_another() {
    let a = cluster("a");
    let flow_token = a.flow_token(flow(), true, LATER);
    let as_gruu = format!("sip:{TEMP_GRUU_PREFIX}{flow_token}@switchyard.test;gr");
    assert_eq!(
        a.gruu_of(&Uri::parse(&as_gruu).unwrap()),
        Some(GruuRef::Invalid)
    );
    let as_contact = format!("sip:{REWRITTEN_PREFIX}{flow_token}@switchyard.test");
    assert_eq!(
        a.rewritten_of(&Uri::parse(&as_contact).unwrap(), NOW),
        Some(Err(InvalidToken))
    );
}

#[test]
fn record_route_carries_a_dialog_token_any_node_opens() {
    let (a, b) = (cluster("a"), cluster("b"));
    let token = a.seal_dialog(DialogToken {
        started_secs: 1_700_000_000,
    });
    let rr = a.record_route_value(
        ("127.0.0.2:5060", Transport::Udp),
        Some(flow()),
        Some(&token),
        LATER,
    );
    let uri = Uri::parse(rr.trim_matches(|c| c == '<' || c == '>')).unwrap();
    assert!(uri.params.get("lr").is_some());
    // The flow token still travels as the user part.
    assert_eq!(a.own_flow(uri.user, NOW).unwrap().flow, flow());
    assert_eq!(
        b.dialog_of(&uri).unwrap().unwrap(),
        DialogToken {
            started_secs: 1_700_000_000
        }
    );
    // No token, a flow token in its place, another cluster's: refused.
    let plain = a.record_route_value(("127.0.0.2:5060", Transport::Udp), None, None, LATER);
    assert!(
        a.dialog_of(&Uri::parse(plain.trim_matches(|c| c == '<' || c == '>')).unwrap())
            .is_none()
    );
    let flow_token = a.flow_token(flow(), true, LATER);
    assert!(a.open_dialog(&flow_token).is_err());
    let other = Cluster::new("x", "switchyard.test", &["another secret, also long"]);
    assert!(other.open_dialog(&token).is_err());
}

#[test]
fn flow_tokens_are_honoured_until_they_expire_and_not_after() {
    let (a, b) = (cluster("a"), cluster("b"));
    let token = a.flow_token(flow(), true, LATER);
    assert!(a.own_flow(Some(&token), LATER).is_some(), "the last second");
    assert!(a.own_flow(Some(&token), LATER + 1).is_none());
    assert_eq!(b.open_flow(&token, LATER + 1), Err(InvalidToken));
    // The flow inside a rewritten Contact expires the same way.
    let rewritten = RewrittenContact {
        contact: "sip:bob@127.0.0.9:5060".into(),
        edge: "127.0.0.2:5060".into(),
        edge_transport: Transport::Udp,
        flow: FlowToken {
            node: "a".into(),
            flow: flow(),
            pinned: true,
            expires_secs: LATER,
        },
    };
    let uri = a.rewritten_contact(&rewritten);
    let uri = Uri::parse(&uri).unwrap();
    assert_eq!(b.rewritten_of(&uri, LATER), Some(Ok(rewritten)));
    assert_eq!(b.rewritten_of(&uri, LATER + 1), Some(Err(InvalidToken)));
}

//! The registrar's RFC 3327 (Path), RFC 5626 (outbound) and RFC 5627
//! (GRUU) behaviour, on the message flows of those RFCs.

use std::time::{Duration, SystemTime};

use switchyard_codec::{Contacts, HeaderName, SipMessage, Uri};

use super::test_support::{register, source};
use super::*;
use crate::cluster::{Cluster, GruuRef};
use crate::location::EmbeddedStore;

fn t(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
}

fn cluster() -> Cluster {
    Cluster::new("node-1", "sip.test", &["registrar test secret"])
}

async fn send_in(
    store: &EmbeddedStore,
    ctx: RegisterContext<'_>,
    cseq: u32,
    extra: &[&str],
    now: SystemTime,
) -> SipMessage {
    let msg = register(cseq, extra);
    let c = cluster();
    let bytes = handle_in(
        store,
        &msg,
        &RegistrarConfig::default(),
        &ctx,
        Limits::default(),
        Some(&c),
        now,
    )
    .await;
    SipMessage::parse(bytes).expect("response parses")
}

fn via_proxy() -> RegisterContext<'static> {
    RegisterContext {
        first_hop: false,
        ..RegisterContext::direct(source(), Some("node-1"))
    }
}

/// RFC 3327 §5: P1 adds `Path: <sip:P1.EXAMPLE.COM;lr>`; the UA supports
/// path; the registrar stores the Path and returns it in the 200 OK.
#[tokio::test]
async fn rfc3327_path_is_stored_and_echoed_to_a_ua_that_supports_it() {
    let store = EmbeddedStore::new();
    let response = send_in(
        &store,
        via_proxy(),
        1,
        &[
            "Contact: <sip:UA1@192.0.2.4>",
            "Supported: path",
            "Path: <sip:P1.EXAMPLE.COM;lr>",
        ],
        t(0),
    )
    .await;
    assert_eq!(response.status(), Some(200));
    assert_eq!(
        response.header(HeaderName::Path),
        Some("<sip:P1.EXAMPLE.COM;lr>")
    );
    let aor = crate::location::Aor::parse("alice@sip.test").unwrap();
    let bindings = store.lookup(&aor, t(1)).await.unwrap();
    assert_eq!(bindings[0].path, ["<sip:P1.EXAMPLE.COM;lr>"]);
}

/// RFC 3327 §5.3: a foreign Path for a UA that did not say `Supported:
/// path` is refused with 421; our own edge's Path is accepted and not
/// echoed (the UA never asked to learn it).
#[tokio::test]
async fn path_without_ua_support_421_unless_it_is_our_edge() {
    let store = EmbeddedStore::new();
    let contact = "Contact: <sip:UA1@192.0.2.4>";
    let foreign = send_in(
        &store,
        via_proxy(),
        1,
        &[contact, "Path: <sip:p1.test;lr>"],
        t(0),
    )
    .await;
    assert_eq!(foreign.status(), Some(421));
    assert_eq!(foreign.header(HeaderName::Require), Some("path"));

    let c = cluster();
    let ours = c.path_value(
        ("127.0.0.2:5060", crate::net::Transport::Udp),
        source(),
        true,
        false,
        u64::MAX,
    );
    let ctx = RegisterContext {
        own_path: true,
        ..RegisterContext::direct(source(), Some("node-1"))
    };
    let response = send_in(&store, ctx, 2, &[contact, &format!("Path: {ours}")], t(0)).await;
    assert_eq!(response.status(), Some(200));
    assert_eq!(response.header(HeaderName::Path), None);
    let aor = crate::location::Aor::parse("alice@sip.test").unwrap();
    assert_eq!(store.lookup(&aor, t(1)).await.unwrap()[0].path, [ours]);
}

/// RFC 5626 §6: a flow registration gets `Require: outbound`; one whose
/// first hop is a proxy that did not add `ob` gets 439.
#[tokio::test]
async fn rfc5626_outbound_needs_an_ob_first_hop() {
    let store = EmbeddedStore::new();
    let contact = r#"Contact: <sip:alice@192.0.2.4;ob>;reg-id=1;+sip.instance="<urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF>""#;
    let direct = send_in(
        &store,
        RegisterContext::direct(source(), Some("node-1")),
        1,
        &[contact, "Supported: outbound"],
        t(0),
    )
    .await;
    assert_eq!(direct.status(), Some(200));
    assert_eq!(direct.header(HeaderName::Require), Some("outbound"));

    let no_ob = send_in(
        &store,
        via_proxy(),
        2,
        &[
            contact,
            "Supported: outbound, path",
            "Path: <sip:p1.test;lr>",
        ],
        t(0),
    )
    .await;
    assert_eq!(no_ob.status(), Some(439));

    let with_ob = send_in(
        &store,
        via_proxy(),
        3,
        &[
            contact,
            "Supported: outbound, path",
            "Path: <sip:p1.test;lr;ob>",
        ],
        t(0),
    )
    .await;
    assert_eq!(with_ob.status(), Some(200));
    assert_eq!(with_ob.header(HeaderName::Require), Some("outbound"));
}

/// RFC 5627 §4 / §5 example: callee@example.com's UA with instance
/// urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6 registers with
/// `Supported: gruu`; the 200 OK's Contact carries its pub-gruu and a
/// temp-gruu; a refresh returns a new temp-gruu and both keep resolving.
#[tokio::test]
async fn rfc5627_gruus_in_the_200_ok() {
    let store = EmbeddedStore::new();
    let instance = "<urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6>";
    let contact = format!(r#"Contact: <sip:callee@192.0.2.2>;+sip.instance="{instance}""#);
    let direct = RegisterContext::direct(source(), Some("node-1"));
    let first = send_in(&store, direct, 1, &[&contact, "Supported: gruu"], t(0)).await;
    let (pub1, temp1) = gruus(&first);
    assert_eq!(
        pub1,
        "sip:alice@sip.test;gr=urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6"
    );
    let refresh = send_in(&store, direct, 2, &[&contact, "Supported: gruu"], t(60)).await;
    let (pub2, temp2) = gruus(&refresh);
    assert_eq!(pub1, pub2);
    assert_ne!(temp1, temp2, "a fresh temp-gruu per REGISTER");
    let c = cluster();
    for temp in [&temp1, &temp2] {
        let Some(GruuRef::Temp(t)) = c.gruu_of(&Uri::parse(temp).unwrap()) else {
            panic!("temp-gruu does not open: {temp}");
        };
        assert_eq!(
            (t.aor.as_str(), t.instance.as_str()),
            ("alice@sip.test", instance)
        );
        assert_eq!(
            t.generation_ms, 1_700_000_000_000,
            "the registration's start"
        );
    }

    // Without `Supported: gruu` there are none.
    let plain = send_in(&store, direct, 3, &[&contact], t(61)).await;
    assert!(!plain.header(HeaderName::Contact).unwrap().contains("gruu"));
}

fn gruus(response: &SipMessage) -> (String, String) {
    assert_eq!(response.status(), Some(200));
    let Contacts::List(list) = response.contacts().unwrap() else {
        panic!("no contacts");
    };
    let param = |name| {
        list[0]
            .params
            .get(name)
            .flatten()
            .unwrap_or_else(|| panic!("no {name} in {}", list[0].raw))
            .trim_matches('"')
            .to_owned()
    };
    (param("pub-gruu"), param("temp-gruu"))
}

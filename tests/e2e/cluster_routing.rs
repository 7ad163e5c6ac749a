//! Three nodes, one proxy: a phone registered through node A is reached
//! from node C through A (RFC 3327 Path with an RFC 5626 flow token), over
//! UDP, TCP and secure WebSocket; GRUUs minted by A resolve on B and C (RFC 5627); an AOR
//! with phones on two edges forks to both.

use std::sync::OnceLock;

use switchyard::net::Transport;
use switchyard::transport::ListenerSpec;
use switchyard_codec::HeaderName;
use switchyard_tests::DOMAIN;
use switchyard_tests::certs::{CertFiles, TestCa};
use switchyard_tests::cluster::TestCluster;
use switchyard_tests::phone::{Phone, contact_param};
use switchyard_tests::ua::{self, UdpUa};
use switchyard_tests::ws::WsUa;

const A: usize = 0;
const B: usize = 1;
const C: usize = 2;

fn bob_aor() -> String {
    format!("sip:bob@{DOMAIN}")
}

/// The address a Via/Record-Route names, without parameters.
fn top_via_sent_by(m: &switchyard_codec::SipMessage) -> String {
    let via = m.top_via().unwrap();
    format!("{}:{}", via.host, via.port.unwrap_or(5060))
}

async fn call_at_c_reaches_bob_through_a(mut bob: Phone, cluster: &TestCluster) {
    let ok = bob.register("", &[]).await;
    assert_eq!(ok.status(), Some(200));
    // The edge's Path is not shown to a UA that did not ask for it.
    assert_eq!(ok.header(HeaderName::Path), None);
    let aor = switchyard::location::Aor::parse(&format!("bob@{DOMAIN}")).unwrap();
    let stored = switchyard::location::LocationStore::lookup(
        cluster.store().as_ref(),
        &aor,
        std::time::SystemTime::now(),
    )
    .await
    .unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].node.as_deref(), Some("a"));
    let path = &stored[0].path;
    assert_eq!(path.len(), 1, "{path:?}");
    assert!(
        path[0].contains(&format!("@{};transport=tcp;lr", cluster.tcp(A))),
        "A's Path entry, reachable over TCP: {}",
        path[0]
    );

    let mut alice = Phone::udp("alice", "127.0.0.11", cluster.udp(C)).await;
    let (invite, call_id) = alice.invite(&bob_aor(), None);
    alice.send(&invite).await;

    let (got, from) = bob.recv_request("INVITE").await;
    // The UA sees A as its last hop: the packet came from A's socket (the
    // flow it registered on), A's Via on top, C's below it.
    assert_eq!(from, cluster.udp(A));
    assert_eq!(top_via_sent_by(&got), cluster.udp(A).to_string());
    let vias: Vec<String> = got
        .vias()
        .map(|v| {
            let v = v.unwrap();
            format!("{}:{}", v.host, v.port.unwrap_or(5060))
        })
        .collect();
    assert_eq!(
        vias[1],
        cluster.tcp(C).to_string(),
        "C → A over TCP: {vias:?}"
    );
    assert_eq!(got.request_uri_str(), Some(bob.contact().as_str()));
    let rr: Vec<&str> = got.header_values(HeaderName::RecordRoute).collect();
    assert!(
        rr.iter().any(|r| r.contains(&cluster.udp(A).to_string())),
        "{rr:?}"
    );
    assert!(
        rr.iter().any(|r| r.contains(&cluster.udp(C).to_string())),
        "{rr:?}"
    );

    bob.answer(&got, 486, None).await;
    let answer = alice.recv_final(&call_id, "INVITE").await;
    assert_eq!(answer.status(), Some(486));
}

#[tokio::test]
async fn udp_phone_registered_at_a_is_called_at_c_through_a() {
    let cluster = TestCluster::start(21060).await;
    let bob = Phone::udp("bob", "127.0.0.12", cluster.udp(A)).await;
    call_at_c_reaches_bob_through_a(bob, &cluster).await;
    cluster.shutdown().await;
}

/// The test CA and the certificate every node serves (one per process: a
/// cluster's tweak is a plain function).
fn pki() -> &'static (TestCa, CertFiles) {
    static PKI: OnceLock<(TestCa, CertFiles)> = OnceLock::new();
    PKI.get_or_init(|| {
        let ca = TestCa::new(&switchyard_tests::run_dir("pki", "cluster"), "cluster");
        let names: Vec<String> = (0..3).map(TestCluster::ip).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let cert = ca.server("nodes", &names);
        (ca, cert)
    })
}

/// Every node also listens on secure WebSocket, one port above the others.
fn with_wss(c: &mut switchyard::Config) {
    let udp = c.listen[0].addr;
    let wss = std::net::SocketAddr::new(udp.ip(), udp.port() + 1);
    c.listen.push(ListenerSpec::new(Transport::Wss, wss));
    let (_, cert) = pki();
    c.tls.cert = Some(cert.cert.clone());
    c.tls.key = Some(cert.key.clone());
}

#[tokio::test]
async fn wss_phone_registered_at_a_is_called_at_c_over_its_connection() {
    let cluster = TestCluster::start_with(21090, with_wss).await;
    let wss_a = cluster.node(A).addr(Transport::Wss);
    let (ca, _) = pki();
    let ws = WsUa::connect(
        "127.0.0.12",
        wss_a,
        "/",
        Some("sip"),
        Some((&TestCluster::ip(A), ca.client_config(None))),
    )
    .await
    .expect("secure WebSocket to A");
    let mut carol = Phone::websocket("carol", wss_a, ws, true);
    let instance = ";+sip.instance=\"<urn:uuid:00000000-0000-4000-8000-000000000007>\";reg-id=1";
    let ok = carol
        .register(instance, &["Supported: path, outbound, gruu"])
        .await;
    assert_eq!(ok.status(), Some(200));

    let mut alice = Phone::udp("alice", "127.0.0.11", cluster.udp(C)).await;
    let (invite, call_id) = alice.invite(&format!("sip:carol@{DOMAIN}"), None);
    alice.send(&invite).await;
    // C sends it to A (the Path), A down carol's WebSocket: the only way.
    let (got, _) = carol.recv_request("INVITE").await;
    let via = got.top_via().unwrap();
    assert_eq!(via.transport, "WSS");
    let vias: Vec<String> = got
        .vias()
        .map(|v| v.unwrap().transport.to_owned())
        .collect();
    assert_eq!(vias, ["WSS", "TCP", "UDP"], "carol ← A ← C ← alice");
    let rr: Vec<&str> = got.header_values(HeaderName::RecordRoute).collect();
    assert!(
        rr[0].contains(";transport=wss"),
        "A's side facing carol first: {rr:?}"
    );
    carol.answer(&got, 486, None).await;
    assert_eq!(
        alice.recv_final(&call_id, "INVITE").await.status(),
        Some(486)
    );
    cluster.shutdown().await;
}

#[tokio::test]
async fn tcp_phone_registered_at_a_is_called_at_c_over_its_connection() {
    let cluster = TestCluster::start(21061).await;
    let mut bob = Phone::tcp("bob", "127.0.0.12", cluster.tcp(A)).await;
    let ok = bob.register("", &["Supported: path"]).await;
    // With `Supported: path` the UA learns the Path (RFC 3327 §5.3).
    assert!(ok.header(HeaderName::Path).unwrap().contains(";lr"));

    let mut alice = Phone::udp("alice", "127.0.0.11", cluster.udp(C)).await;
    let (invite, call_id) = alice.invite(&bob_aor(), None);
    alice.send(&invite).await;
    // Received on the connection bob opened: nothing else reaches it.
    let (got, _) = bob.recv_request("INVITE").await;
    assert_eq!(top_via_sent_by(&got), cluster.tcp(A).to_string());
    assert_eq!(got.top_via().unwrap().transport, "TCP");
    bob.answer(&got, 480, None).await;
    assert_eq!(
        alice.recv_final(&call_id, "INVITE").await.status(),
        Some(480)
    );
    cluster.shutdown().await;
}

#[tokio::test]
async fn gruus_minted_by_a_resolve_at_b_and_c_and_forgeries_are_refused() {
    let cluster = TestCluster::start(21062).await;
    let mut bob = Phone::udp("bob", "127.0.0.12", cluster.udp(A)).await;
    let instance = "<urn:uuid:6b3b5b2c-0000-4000-8000-00000000b0b0>";
    let ok = bob
        .register(
            &format!(";+sip.instance=\"{instance}\""),
            &["Supported: gruu"],
        )
        .await;
    assert_eq!(ok.status(), Some(200));
    let public = contact_param(&ok, "pub-gruu").expect("pub-gruu");
    let temp = contact_param(&ok, "temp-gruu").expect("temp-gruu");
    assert_eq!(
        public,
        format!("sip:bob@{DOMAIN};gr=urn:uuid:6b3b5b2c-0000-4000-8000-00000000b0b0")
    );

    let mut alice = Phone::udp("alice", "127.0.0.11", cluster.udp(B)).await;
    for (node, gruu) in [(B, &temp), (C, &temp), (C, &public)] {
        let (invite, call_id) = alice.invite(gruu, None);
        alice.send_to(cluster.udp(node), &invite).await;
        let (got, from) = bob.recv_request("INVITE").await;
        assert_eq!(from, cluster.udp(A), "through the edge");
        assert_eq!(got.request_uri_str(), Some(bob.contact().as_str()));
        bob.answer(&got, 486, None).await;
        let status = alice.recv_final(&call_id, "INVITE").await.status();
        assert_eq!(status, Some(486), "{gruu} at node {node}");
    }

    // One character of the token changed: 404, and nothing reaches bob.
    let at = "sip:tgruu.".len() + 10;
    let mut forged = temp.clone().into_bytes();
    forged[at] = if forged[at] == b'x' { b'y' } else { b'x' };
    let forged = String::from_utf8(forged).unwrap();
    // An instance that never registered: 480 (RFC 5627 §5.5).
    let unknown = format!("sip:bob@{DOMAIN};gr=urn:uuid:00000000-dead-4000-8000-000000000000");
    for (gruu, code) in [(&forged, 404), (&unknown, 480)] {
        let (invite, call_id) = alice.invite(gruu, None);
        alice.send_to(cluster.udp(C), &invite).await;
        let answer = alice.recv_final(&call_id, "INVITE").await;
        assert_eq!(answer.status(), Some(code), "{gruu}");
    }
    assert!(
        bob.no_request_within("INVITE", std::time::Duration::from_millis(300))
            .await
    );
    cluster.shutdown().await;
}

#[tokio::test]
async fn one_aor_on_two_edges_forks_through_both() {
    let cluster = TestCluster::start(21063).await;
    let mut desk = Phone::udp("bob", "127.0.0.12", cluster.udp(A)).await;
    let mut mobile = Phone::udp("bob", "127.0.0.13", cluster.udp(B)).await;
    assert_eq!(desk.register("", &[]).await.status(), Some(200));
    let ok = mobile.register("", &[]).await;
    assert_eq!(ok.header_values(HeaderName::Contact).count(), 2);

    let mut alice = Phone::udp("alice", "127.0.0.11", cluster.udp(C)).await;
    let (invite, call_id) = alice.invite(&bob_aor(), None);
    alice.send(&invite).await;
    let (at_desk, from_desk) = desk.recv_request("INVITE").await;
    let (at_mobile, from_mobile) = mobile.recv_request("INVITE").await;
    assert_eq!(from_desk, cluster.udp(A));
    assert_eq!(from_mobile, cluster.udp(B));
    // Ringing: from now on a CANCEL may be sent to the desk phone (§9.1).
    let desk_contact = desk.contact();
    desk.answer(&at_desk, 180, Some(&desk_contact)).await;

    // The mobile answers; the desk phone's branch is cancelled.
    let contact = mobile.contact();
    mobile.answer(&at_mobile, 200, Some(&contact)).await;
    let (cancel, _) = desk.recv_request("CANCEL").await;
    assert_eq!(cancel.call_id().ok(), at_desk.call_id().ok());
    desk.answer(&cancel, 200, None).await;
    desk.answer(&at_desk, 487, None).await;
    let answer = alice.recv_final(&call_id, "INVITE").await;
    assert_eq!(answer.status(), Some(200));
    cluster.shutdown().await;
}

#[tokio::test]
async fn a_phone_behind_nat_is_reached_on_its_flow_and_a_third_party_binding_at_its_contact() {
    let cluster = TestCluster::start(21064).await;
    // Behind NAT: Via and Contact name a private port it cannot be reached
    // on (nothing listens on 5999); only the flow leads to it.
    let mut bob = Phone::udp("bob", "127.0.0.12", cluster.udp(A)).await;
    let private = "127.0.0.12:5999";
    let id = bob.next_id();
    let register = format!(
        "REGISTER sip:{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP {private};branch=z9hG4bK-{id};rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:bob@{DOMAIN}>;tag={id}\r\nTo: <sip:bob@{DOMAIN}>\r\n\
         Call-ID: nat-{id}@test\r\nCSeq: 1 REGISTER\r\nContact: <sip:bob@{private}>\r\n\
         Expires: 300\r\nContent-Length: 0\r\n\r\n"
    );
    bob.send(&register).await;
    let ok = bob.recv_final(&format!("nat-{id}@test"), "REGISTER").await;
    assert_eq!(ok.status(), Some(200));

    // A third-party registration (a provisioning server registers carol's
    // desk phone, which is directly reachable): routed to its Contact.
    let mut desk = Phone::udp("carol", "127.0.0.13", cluster.udp(A)).await;
    let mut provisioner = Phone::udp("carol", "127.0.0.17", cluster.udp(A)).await;
    let id = provisioner.next_id();
    let third_party = format!(
        "REGISTER sip:{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-{id};rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:carol@{DOMAIN}>;tag={id}\r\nTo: <sip:carol@{DOMAIN}>\r\n\
         Call-ID: tp-{id}@test\r\nCSeq: 1 REGISTER\r\nContact: <{contact}>\r\n\
         Expires: 300\r\nContent-Length: 0\r\n\r\n",
        me = provisioner.addr,
        contact = desk.contact()
    );
    provisioner.send(&third_party).await;
    let ok = provisioner
        .recv_final(&format!("tp-{id}@test"), "REGISTER")
        .await;
    assert_eq!(ok.status(), Some(200));

    let mut alice = Phone::udp("alice", "127.0.0.11", cluster.udp(C)).await;
    for (user, phone) in [("bob", &mut bob), ("carol", &mut desk)] {
        let (invite, call_id) = alice.invite(&format!("sip:{user}@{DOMAIN}"), None);
        alice.send(&invite).await;
        let (got, from) = phone.recv_request("INVITE").await;
        assert_eq!(from, cluster.udp(A), "{user} through A");
        phone.answer(&got, 486, None).await;
        assert_eq!(
            alice.recv_final(&call_id, "INVITE").await.status(),
            Some(486)
        );
    }
    assert!(
        provisioner
            .no_request_within("INVITE", std::time::Duration::from_millis(300))
            .await
    );
    cluster.shutdown().await;
}

/// RFC 3327 §4.1 at the edge of another domain's registrar: a REGISTER
/// for a foreign domain is forwarded with A's Path (flow token inside) when
/// the UA supports path, and a request that registrar routes with that
/// Path as its Route reaches the UA over its connection. Without
/// `Supported: path` no Path is added.
#[tokio::test]
async fn a_foreign_registrar_gets_the_edge_path_and_routes_back_through_it() {
    let cluster = TestCluster::start(21065).await;
    let registrar = UdpUa::bind("127.0.0.9").await;
    let foreign = registrar.addr.to_string();
    let mut bob = Phone::tcp("bob", "127.0.0.13", cluster.tcp(A)).await;

    let (register, call_id) = bob.register_request(&foreign, "", &["Supported: path"]);
    bob.send(&register).await;
    let got = registrar
        .recv_request("REGISTER", "REGISTER at the foreign registrar")
        .await;
    let path: Vec<&str> = got.header_values(HeaderName::Path).collect();
    assert_eq!(path.len(), 1, "{path:?}");
    assert!(
        path[0].contains(&format!("@{};transport=tcp;lr", cluster.tcp(A))),
        "A's Path entry: {}",
        path[0]
    );
    registrar
        .send(
            cluster.udp(A),
            &ua::reply(&got, 200, "OK", "reg", registrar.addr),
        )
        .await;
    assert_eq!(
        bob.recv_final(&call_id, "REGISTER").await.status(),
        Some(200)
    );

    // The registrar's proxy routes a call to the binding with its Path.
    let mut invite = ua::invite(
        &bob.contact(),
        "carol@elsewhere.test",
        registrar.addr,
        "fp1",
    );
    let at = invite.find("Max-Forwards").unwrap();
    invite.insert_str(at, &format!("Route: {}\r\n", path[0]));
    registrar.send(cluster.udp(A), &invite).await;
    let (delivered, _) = bob.recv_request("INVITE").await;
    assert_eq!(delivered.request_uri_str(), Some(bob.contact().as_str()));
    assert_eq!(
        delivered.header(HeaderName::Route),
        None,
        "A consumed its Path entry"
    );
    assert_eq!(top_via_sent_by(&delivered), cluster.tcp(A).to_string());

    // A UA that does not support path gets none (§5.1).
    let mut carol = Phone::udp("carol", "127.0.0.14", cluster.udp(A)).await;
    let (register, _) = carol.register_request(&foreign, "", &[]);
    carol.send(&register).await;
    let got = registrar
        .recv_request("REGISTER", "REGISTER without path support")
        .await;
    assert_eq!(got.header(HeaderName::Path), None);
    cluster.shutdown().await;
}

/// A flow token lets a request out on the flow it names, past the egress
/// allowlist, only until it expires: a live token in a Route sends the
/// in-dialog request to the flow; the same flow in an expired token is
/// not honoured and the request goes to its Request-URI like any other.
#[tokio::test]
async fn an_expired_flow_token_is_not_honoured() {
    use switchyard::cluster::Cluster;
    use switchyard::net::{Source, Transport};

    let node = switchyard_tests::start_node_with("127.0.73.1", |c| {
        c.node_id = "edge".into();
        c.cluster.secret = Some(switchyard_tests::cluster::SECRET.into());
    })
    .await;
    let proxy = switchyard_tests::udp_addr(&node);
    let flow_ua = UdpUa::bind("127.0.73.9").await;
    let contact_ua = UdpUa::bind("127.0.73.8").await;
    let caller = UdpUa::bind("127.0.73.3").await;
    let minter = Cluster::new("edge", DOMAIN, &[switchyard_tests::cluster::SECRET]);
    let flow = Source {
        transport: Transport::Udp,
        remote: flow_ua.addr,
        local: proxy,
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();

    for (n, expires, live) in [(1, now + 600, true), (2, now - 1, false)] {
        let token = minter.flow_token(flow, true, expires);
        let request = format!(
            "OPTIONS sip:bob@{contact} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {me};branch=z9hG4bKexp{n}\r\n\
             Max-Forwards: 70\r\n\
             Route: <sip:{token}@{proxy};lr>\r\n\
             From: <sip:alice@{DOMAIN}>;tag=a{n}\r\n\
             To: <sip:bob@{DOMAIN}>;tag=b{n}\r\n\
             Call-ID: expired-flow-{n}@127.0.73.3\r\n\
             CSeq: {n} OPTIONS\r\n\
             Content-Length: 0\r\n\r\n",
            contact = contact_ua.addr,
            me = caller.addr,
        );
        caller.send(proxy, &request).await;
        let (reached, other) = if live {
            (&flow_ua, &contact_ua)
        } else {
            (&contact_ua, &flow_ua)
        };
        let (got, from) = reached.recv("the forwarded OPTIONS").await;
        assert_eq!(from, proxy);
        assert_eq!(
            got.call_id().unwrap(),
            format!("expired-flow-{n}@127.0.73.3")
        );
        // Answered, so no retransmission of it blurs the next round.
        reached
            .send(from, &ua::reply(&got, 200, "OK", "b", reached.addr))
            .await;
        let (ok, _) = caller.recv("200 OK relayed").await;
        assert_eq!(ok.status(), Some(200));
        assert!(
            other
                .try_recv(std::time::Duration::from_millis(300))
                .await
                .is_none(),
            "token live: {live}, but the other UA got the request too"
        );
    }
}

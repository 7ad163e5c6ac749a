//! TLS (RFC 3261 §26.2, RFC 5922) and SIP over WebSocket (RFC 7118) on
//! real sockets: phones on TLS and WebSocket connections calling phones on
//! UDP through a node, SNI, certificate reload, client certificates, and
//! outbound TLS that verifies the next hop's name.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use switchyard::Config;
use switchyard::net::Transport;
use switchyard_tests::certs::{CertFiles, TestCa};
use switchyard_tests::phone::{Dialog, Phone, record_routes};
use switchyard_tests::ua::{TcpUa, UdpUa, first_line, msg};
use switchyard_tests::ws::{WsRefused, WsUa};
use switchyard_tests::{DOMAIN, run_dir, start_node_with};
use tokio::net::TcpListener;

/// Adds a listener of `transport` on `ip` (ephemeral port).
fn listen(c: &mut Config, transport: &str, ip: &str) {
    c.listen
        .push(format!("{transport}:{ip}:0").parse().unwrap());
}

fn serve(c: &mut Config, files: &CertFiles) {
    c.tls.cert = Some(files.cert.clone());
    c.tls.key = Some(files.key.clone());
}

/// A REGISTER with the RFC 5626 parameters a browser phone (JsSIP, SIP.js)
/// sends.
async fn register_outbound(phone: &mut Phone) -> u16 {
    let instance = format!(
        ";+sip.instance=\"<urn:uuid:00000000-0000-4000-8000-{:012}>\";reg-id=1",
        phone.addr.port()
    );
    let ok = phone
        .register(&instance, &["Supported: path, outbound, gruu"])
        .await;
    ok.status().unwrap()
}

/// A node at 127.0.N.1 with a TLS listener (a fresh CA's certificate),
/// alice registered over TLS from .2 and bob over UDP from .3.
async fn alice_on_tls_bob_on_udp(n: u8) -> (switchyard::NodeHandle, Phone, Phone) {
    let ip = format!("127.0.{n}.1");
    let ca = TestCa::new(&run_dir("tls", &ip), "node");
    let cert = ca.server("node", &[&ip]);
    let node = start_node_with(&ip, |c| {
        listen(c, "tls", &ip);
        serve(c, &cert);
    })
    .await;
    let tls = node.addr(Transport::Tls);
    let from = |host: u8| format!("127.0.{n}.{host}");
    let config = ca.client_config(None);
    let mut alice = Phone::tls("alice", &from(2), tls, &ip, config).await;
    let mut bob = Phone::udp("bob", &from(3), node.addr(Transport::Udp)).await;
    assert_eq!(alice.register("", &[]).await.status(), Some(200));
    assert_eq!(bob.register("", &[]).await.status(), Some(200));
    (node, alice, bob)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_phone_calls_udp_phone_through_two_record_routes() {
    let (node, mut alice, mut bob) = alice_on_tls_bob_on_udp(92).await;

    let (invite, call_id) = alice.invite(&format!("sip:bob@{DOMAIN}"), None);
    alice.send(&invite).await;
    let (inv, _) = bob.recv_request("INVITE").await;
    let rr = record_routes(&inv);
    assert_eq!(rr.len(), 2, "double Record-Route across transports: {rr:?}");
    assert!(!rr[0].contains("transport="), "UDP side first: {rr:?}");
    assert!(rr[1].contains(";transport=tls"), "TLS side second: {rr:?}");
    let vias: Vec<&str> = inv
        .header_values(switchyard_codec::HeaderName::Via)
        .collect();
    assert!(vias[0].starts_with("SIP/2.0/UDP "), "{vias:?}");
    assert!(vias[1].starts_with("SIP/2.0/TLS 127.0.92.2:"), "{vias:?}");
    bob.answer(&inv, 200, Some(&bob.contact())).await;
    let ok = alice.recv_final(&call_id, "INVITE").await;
    assert_eq!(ok.status(), Some(200));

    // The callee hangs up: the BYE goes back over alice's TLS connection.
    let mut dialog = Dialog::callee(&inv, "callee-tag");
    let bye = dialog.request(&mut bob, "BYE", &[]);
    bob.send(&bye).await;
    let (got, _) = alice.recv_request("BYE").await;
    assert_eq!(got.call_id().unwrap(), call_id);
    let stats = node.transport_stats();
    assert!(
        stats.open_connections.contains(&(Transport::Tls, 1)),
        "{stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_phone_is_reached_over_its_connection_and_430_once_it_is_gone() {
    let ip = "127.0.93.1";
    let node = start_node_with(ip, |c| listen(c, "ws", ip)).await;
    let ws_addr = node.addr(Transport::Ws);
    let ws = WsUa::connect("127.0.93.2", ws_addr, "/", Some("sip"), None)
        .await
        .expect("upgrade");
    let mut carol = Phone::websocket("carol", ws_addr, ws, false);
    let mut bob = Phone::udp("bob", "127.0.93.3", node.addr(Transport::Udp)).await;
    assert_eq!(register_outbound(&mut carol).await, 200);
    assert_eq!(bob.register("", &[]).await.status(), Some(200));
    let bindings = switchyard_tests::softphone::bindings(&node, "carol", DOMAIN).await;
    assert_eq!(bindings.len(), 1);
    assert!(
        bindings[0].contact.contains(".invalid"),
        "{:?}",
        bindings[0]
    );
    assert_eq!(
        bindings[0].path.len(),
        1,
        "the edge's Path: {:?}",
        bindings[0]
    );

    let (invite, call_id) = bob.invite(&format!("sip:carol@{DOMAIN}"), None);
    bob.send(&invite).await;
    let (inv, _) = carol.recv_request("INVITE").await;
    assert!(
        inv.request_uri()
            .unwrap()
            .raw
            .contains(".invalid;transport=ws"),
        "{}",
        first_line(&inv)
    );
    let rr = record_routes(&inv);
    assert_eq!(rr.len(), 2, "{rr:?}");
    assert!(rr[0].contains(";transport=ws"), "WS side first: {rr:?}");
    carol.answer(&inv, 200, Some(&carol.contact())).await;
    assert_eq!(bob.recv_final(&call_id, "INVITE").await.status(), Some(200));

    // The tab closes: the flow is gone, and a call to carol fails at once.
    carol.hang_up_link().await;
    eventually("the node saw the close", || {
        node.transport_stats()
            .open_connections
            .contains(&(Transport::Ws, 0))
    })
    .await;
    let (invite, call_id) = bob.invite(&format!("sip:carol@{DOMAIN}"), None);
    bob.send(&invite).await;
    let status = bob.recv_final(&call_id, "INVITE").await.status().unwrap();
    assert_eq!(status, 430, "RFC 5626 §5.3: Flow Failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_serves_a_certificate_per_tenant_domain_and_refuses_bad_upgrades() {
    let ip = "127.0.94.1";
    let dir = run_dir("tls", "sni");
    let ca = TestCa::new(&dir, "node");
    let default = ca.server("default", &[ip]);
    let tenant = ca.server("tenant", &["pbx.tenant-a.test"]);
    let node = start_node_with(ip, |c| {
        listen(c, "wss", ip);
        serve(c, &default);
        c.tls.sni.push(switchyard::transport::tls::SniCertificate {
            domains: vec!["pbx.tenant-a.test".into()],
            cert: tenant.cert.clone(),
            key: tenant.key.clone(),
        });
        c.websocket.path = "/sip".into();
    })
    .await;
    let wss = node.addr(Transport::Wss);
    let config = ca.client_config(None);
    let connect = |name: &'static str, path: &'static str, proto: Option<&'static str>| {
        let config = config.clone();
        async move { WsUa::connect("127.0.94.2", wss, path, proto, Some((name, config))).await }
    };
    // Each handshake verifies the certificate for the name asked: the
    // tenant's name only verifies if the tenant's certificate was served.
    let mut ua = connect("pbx.tenant-a.test", "/sip", Some("sip"))
        .await
        .expect("tenant certificate by SNI");
    assert_eq!(
        ua.ping_pong("\r\n\r\n").await,
        "\r\n",
        "RFC 5626 keep-alive"
    );
    connect(ip, "/sip", Some("sip"))
        .await
        .expect("default certificate without SNI");
    assert!(matches!(
        connect("pbx.tenant-a.test", "/", Some("sip")).await,
        Err(WsRefused::Status(404))
    ));
    assert!(matches!(
        connect("pbx.tenant-a.test", "/sip", None).await,
        Err(WsRefused::Status(400))
    ));
    assert!(matches!(
        connect("pbx.tenant-a.test", "/sip", Some("chat")).await,
        Err(WsRefused::Status(400))
    ));
}

/// Polls a condition that has no event to await (a file watcher's reload).
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_reload_on_file_change_and_open_connections_stay() {
    let ip = "127.0.95.1";
    let dir = run_dir("tls", "reload");
    let old_ca = TestCa::new(&dir, "old");
    let files = old_ca.server("node", &[ip]);
    let node = start_node_with(ip, |c| {
        listen(c, "tls", ip);
        serve(c, &files);
    })
    .await;
    let tls = node.addr(Transport::Tls);
    let mut before = Phone::tls("alice", "127.0.95.2", tls, ip, old_ca.client_config(None)).await;
    assert_eq!(before.register("", &[]).await.status(), Some(200));

    // A renewal: a new certificate from another CA, written over the old files.
    let new_ca = TestCa::new(&dir, "new");
    let renewed = new_ca.server("renewed", &[ip]);
    std::fs::copy(&renewed.key, &files.key).unwrap();
    std::fs::copy(&renewed.cert, &files.cert).unwrap();
    eventually("certificates reloaded", || node.tls().reloads() >= 1).await;

    let mut after = Phone::tls("bob", "127.0.95.3", tls, ip, new_ca.client_config(None)).await;
    assert_eq!(after.register("", &[]).await.status(), Some(200));
    let stale = TcpUa::tls("127.0.95.4", tls, ip, old_ca.client_config(None)).await;
    assert!(stale.is_err(), "the old certificate is no longer served");
    // The connection set up before the reload still works.
    assert_eq!(before.register("", &[]).await.status(), Some(200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_call_reloads_certificates_and_a_bad_file_keeps_the_old_ones() {
    let ip = "127.0.95.11";
    let dir = run_dir("tls", "admin-reload");
    let old_ca = TestCa::new(&dir, "old");
    let files = old_ca.server("node", &[ip]);
    let node = start_node_with(ip, |c| {
        listen(c, "tls", ip);
        serve(c, &files);
        c.tls.watch = false;
        c.admin.listen = Some(format!("{ip}:0").parse().unwrap());
    })
    .await;
    let (tls, admin) = (node.addr(Transport::Tls), node.admin_addr().unwrap());

    // A broken key: refused, and the old certificate is still served.
    std::fs::write(&files.key, "not a key").unwrap();
    let (status, body) = switchyard_tests::policy::admin_post(admin, "/tls/reload").await;
    assert_eq!(status, 422, "{body}");
    let mut phone = Phone::tls("alice", "127.0.95.12", tls, ip, old_ca.client_config(None)).await;
    assert_eq!(phone.register("", &[]).await.status(), Some(200));

    let new_ca = TestCa::new(&dir, "new");
    let renewed = new_ca.server("renewed", &[ip]);
    std::fs::copy(&renewed.key, &files.key).unwrap();
    std::fs::copy(&renewed.cert, &files.cert).unwrap();
    let (status, body) = switchyard_tests::policy::admin_post(admin, "/tls/reload").await;
    assert_eq!((status, body.trim()), (200, "reloaded"));
    assert_eq!(node.tls().reloads(), 1);
    let mut bob = Phone::tls("bob", "127.0.95.13", tls, ip, new_ca.client_config(None)).await;
    assert_eq!(bob.register("", &[]).await.status(), Some(200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trunk_listener_requires_a_client_certificate_and_another_serves_its_own() {
    let ip = "127.0.96.1";
    let dir = run_dir("tls", "mtls");
    let ca = TestCa::new(&dir, "node");
    let cert = ca.server("node", &[ip]);
    let trunk = ca.client("trunk", "trunk.test");
    let public_ca = TestCa::new(&dir, "public");
    let public = public_ca.server("public", &["127.0.96.6"]);
    let node = start_node_with(ip, |c| {
        listen(c, "tls", ip);
        serve(c, &cert);
        c.tls.client_ca = Some(ca.cert_file.clone());
        c.tls.verify_clients = switchyard::transport::tls::ClientAuth::Required;
        // A second listener, open to all, with a certificate of its own.
        listen(c, "tls", "127.0.96.6");
        let own = c.listen.last().copied().unwrap();
        c.tls
            .listener
            .push(switchyard::transport::tls::ListenerTls {
                listen: own,
                verify_clients: Some(switchyard::transport::tls::ClientAuth::Off),
                cert: Some(public.cert.clone()),
                key: Some(public.key.clone()),
            });
    })
    .await;
    let tls = node.addr(Transport::Tls);
    let mut with_cert = Phone::tls(
        "alice",
        "127.0.96.2",
        tls,
        ip,
        ca.client_config(Some(&trunk)),
    )
    .await;
    assert_eq!(with_cert.register("", &[]).await.status(), Some(200));

    // TLS 1.3 finishes the client's side of the handshake before the server
    // has checked for a certificate: the refusal shows as a closed stream.
    if let Ok(mut ua) = TcpUa::tls("127.0.96.3", tls, ip, ca.client_config(None)).await {
        use tokio::io::AsyncWriteExt;
        let _ = ua.stream.write_all(b"OPTIONS sip:x SIP/2.0\r\n\r\n").await;
        assert!(ua.closed_within(Duration::from_secs(5)).await);
    }
    eventually("handshake failure counted", || {
        node.transport_stats().handshake_failures >= 1
    })
    .await;

    // The other listener serves its own certificate (from another CA) and
    // asks for none.
    let open = node
        .local_addrs()
        .into_iter()
        .filter(|(t, _)| *t == Transport::Tls)
        .nth(1)
        .unwrap()
        .1;
    let config = public_ca.client_config(None);
    let mut phone = Phone::tls("bob", "127.0.96.4", open, "127.0.96.6", config).await;
    assert_eq!(phone.register("", &[]).await.status(), Some(200));
    let node_ca = ca.client_config(None);
    assert!(
        TcpUa::tls("127.0.96.5", open, "127.0.96.6", node_ca)
            .await
            .is_err()
    );
}

/// A TLS server for the name `name` at `ip`, answering the first INVITE
/// with 200 OK; returns its address and the request line it saw (if any).
async fn tls_trunk(
    ip: &str,
    cert: &CertFiles,
) -> (SocketAddr, tokio::task::JoinHandle<Option<String>>) {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_file_iter(&cert.cert)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(&cert.key).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind((ip, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (tcp, peer) = listener.accept().await.ok()?;
        let stream = acceptor.accept(tcp).await.ok()?;
        let mut ua = TcpUa::from_stream(Box::new(stream), peer);
        let invite = ua.recv("INVITE at the trunk").await;
        let ok = switchyard_codec::response_to(&invite, 200, "OK")
            .to_tag("trunk")
            .header("Contact", &format!("<sip:trunk@{addr};transport=tls>"))
            .build();
        ua.send(std::str::from_utf8(&ok).unwrap()).await;
        Some(first_line(&invite))
    });
    (addr, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_tls_verifies_the_next_hop_by_its_sip_domain() {
    let ip = "127.0.97.1";
    let dir = run_dir("tls", "outbound");
    let ca = TestCa::new(&dir, "trunks");
    let good = ca.server("good", &["trunk.test"]);
    let wrong = ca.server("wrong", &["other.test"]);
    let (good_addr, good_task) = tls_trunk("127.0.97.2", &good).await;
    let (wrong_addr, wrong_task) = tls_trunk("127.0.97.3", &wrong).await;
    let node = start_node_with(ip, |c| {
        c.tls.ca = Some(ca.cert_file.clone());
        for (name, addr) in [("trunk.test", good_addr), ("liar.test", wrong_addr)] {
            let entry = switchyard::egress::HostEntry::new(addr.ip(), Some(addr.port()));
            c.egress.hosts.insert(name.into(), vec![entry]);
        }
    })
    .await;
    let caller = UdpUa::bind("127.0.97.4").await;
    let proxy = node.addr(Transport::Udp);
    let call = |ruri: &str, id: &str| {
        msg(
            "INVITE {ruri} SIP/2.0
Via: SIP/2.0/UDP {me};branch=z9hG4bK-{id}
Max-Forwards: 70
From: <sip:alice@{domain}>;tag={id}
To: <{ruri}>
Call-ID: {id}@test
CSeq: 1 INVITE
Contact: <sip:alice@{me}>
Content-Length: 0

",
            &[
                ("ruri", ruri),
                ("me", &caller.addr.to_string()),
                ("id", id),
                ("domain", DOMAIN),
            ],
        )
    };
    caller
        .send(proxy, &call("sips:4000@trunk.test", "out-good"))
        .await;
    let (resp, _) = caller.recv_final("final answer from the trunk").await;
    assert_eq!(resp.status(), Some(200), "{}", first_line(&resp));
    let seen = good_task.await.unwrap().expect("the trunk got the INVITE");
    assert!(seen.starts_with("INVITE sips:4000@trunk.test"), "{seen}");

    // A certificate for another name: no INVITE leaves, the call fails.
    caller
        .send(
            proxy,
            &call("sip:4000@liar.test;transport=tls", "out-wrong"),
        )
        .await;
    // An unreachable next hop is a local 503, which §16.7 step 6 turns
    // into 500 towards the caller.
    let (resp, _) = caller.recv_final("failure for a wrong certificate").await;
    assert_eq!(resp.status(), Some(500), "{}", first_line(&resp));
    assert_eq!(
        wrong_task.await.unwrap(),
        None,
        "nothing readable reached the liar"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sips_request_never_leaves_over_an_insecure_hop() {
    let (_node, mut alice, mut bob) = alice_on_tls_bob_on_udp(99).await;

    // bob is only reachable over UDP: refused, not downgraded.
    let (invite, call_id) = alice.invite(&format!("sips:bob@{DOMAIN}"), None);
    alice.send(&invite).await;
    let answer = alice.recv_final(&call_id, "INVITE").await;
    assert_eq!(answer.status(), Some(480), "{}", first_line(&answer));
    assert!(
        bob.no_request_within("INVITE", Duration::from_millis(300))
            .await
    );

    // alice is on TLS: a SIPS call to her goes through, and the entry
    // facing her is a SIPS URI (RFC 3261 §16.6 step 4).
    let (invite, call_id) = bob.invite(&format!("sips:alice@{DOMAIN}"), None);
    bob.send(&invite).await;
    let (got, _) = alice.recv_request("INVITE").await;
    assert_eq!(got.call_id().unwrap(), call_id);
    let rr = record_routes(&got);
    assert!(
        rr[0].starts_with("<sips:") && !rr[0].contains("transport=tls"),
        "{rr:?}"
    );
    assert!(rr[1].starts_with("<sip:"), "the UDP side stays SIP: {rr:?}");
    alice.answer(&got, 200, Some(&alice.contact())).await;
    assert_eq!(bob.recv_final(&call_id, "INVITE").await.status(), Some(200));
    // Her BYE follows that route set back to bob.
    let bye = Dialog::callee(&got, "callee-tag").request(&mut alice, "BYE", &[]);
    alice.send(&bye).await;
    let (got, _) = bob.recv_request("BYE").await;
    assert_eq!(got.call_id().unwrap(), call_id);
}

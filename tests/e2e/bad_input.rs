//! Bad input gets a clear answer and loses nothing: malformed and oversized
//! messages, broken TCP framing, slowloris connections, unknown methods and a
//! failing location store, each against a running node.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use switchyard::location::{Aor, Binding, EmbeddedStore, LocationStore, RegisterError, StoreError};
use switchyard::registrar::{RegisterOutcome, RegisterUpdate};
use switchyard::{Config, Node, NodeParts};
use switchyard_codec::{HeaderName, Method};
use switchyard_tests::ua::{TcpUa, UdpUa, msg};
use switchyard_tests::{DOMAIN, start_node, start_node_with, tcp_addr, udp_addr};

const OPTIONS: &str = "OPTIONS sip:{target} SIP/2.0
Via: SIP/2.0/UDP {me};branch=z9hG4bK-opt-{tag}
Max-Forwards: 70
From: <sip:probe@{domain}>;tag=p{tag}
To: <sip:{target}>
Call-ID: opt-{tag}@test
CSeq: 1 OPTIONS
Content-Length: 0

";

fn options(me: &str, target: &str, tag: &str) -> String {
    msg(
        OPTIONS,
        &[
            ("me", me),
            ("target", target),
            ("tag", tag),
            ("domain", DOMAIN),
        ],
    )
}

/// A REGISTER of bob@switchyard.test with one Contact at `me`.
fn register_bob(me: &str, tag: &str) -> String {
    options(me, DOMAIN, tag)
        .replace("OPTIONS", "REGISTER")
        .replace("To: <sip:switchyard.test>", "To: <sip:bob@switchyard.test>")
        .replace(
            "Content-Length: 0",
            &format!("Contact: <sip:bob@{me}>\r\nContent-Length: 0"),
        )
}

#[tokio::test]
async fn garbage_is_dropped_and_the_node_keeps_serving() {
    let node = start_node("127.0.41.1").await;
    let proxy = udp_addr(&node);
    let ua = UdpUa::bind("127.0.41.2").await;
    ua.send_bytes(proxy, b"\x00\x01 not SIP at all\r\n\r\n")
        .await;
    ua.send(
        proxy,
        &options(&ua.addr.to_string(), &proxy.to_string(), "1"),
    )
    .await;
    let (ok, _) = ua.recv("200 to OPTIONS").await;
    assert_eq!(ok.status(), Some(200), "only the OPTIONS is answered");
    assert_eq!(ok.call_id().unwrap(), "opt-1@test");
    assert!(ok.header(HeaderName::Allow).is_some());
    assert_eq!(node.stats().dropped_malformed.get(), 1);
    node.shutdown().await;
}

#[tokio::test]
async fn malformed_header_gets_400_naming_the_problem() {
    let node = start_node("127.0.41.11").await;
    let proxy = udp_addr(&node);
    let ua = UdpUa::bind("127.0.41.12").await;
    let bad = options(&ua.addr.to_string(), "bob@switchyard.test", "2")
        .replace("CSeq: 1 OPTIONS", "CSeq: one OPTIONS");
    ua.send(proxy, &bad).await;
    let (resp, _) = ua.recv("400").await;
    assert_eq!(resp.status(), Some(400));
    assert!(
        resp.reason().unwrap().to_ascii_lowercase().contains("cseq"),
        "{:?}",
        resp.reason()
    );
    node.shutdown().await;
}

#[tokio::test]
async fn oversized_udp_request_gets_513() {
    let node = start_node_with("127.0.41.21", |c| c.limits.max_message_size = 2048).await;
    let proxy = udp_addr(&node);
    let ua = UdpUa::bind("127.0.41.22").await;
    let big = options(&ua.addr.to_string(), "bob@switchyard.test", "3").replace(
        "Content-Length: 0",
        &format!("X-Padding: {}\r\nContent-Length: 0", "p".repeat(3000)),
    );
    ua.send(proxy, &big).await;
    let (resp, _) = ua.recv("513").await;
    assert_eq!(resp.status(), Some(513));
    node.shutdown().await;
}

#[tokio::test]
async fn tcp_without_content_length_gets_400_and_is_closed() {
    let node = start_node("127.0.41.31").await;
    let mut ua = TcpUa::connect("127.0.41.32", tcp_addr(&node)).await;
    let me = ua.addr.to_string();
    let text = options(&me, "bob@switchyard.test", "4")
        .replace("Content-Length: 0\r\n", "")
        .replace("SIP/2.0/UDP", "SIP/2.0/TCP");
    ua.send(&text).await;
    let resp = ua.recv("400").await;
    assert_eq!(resp.status(), Some(400));
    assert!(
        ua.closed_within(Duration::from_secs(5)).await,
        "connection closed after the 400"
    );
    node.shutdown().await;
}

#[tokio::test]
async fn slowloris_partial_message_is_closed_after_the_message_timeout() {
    let node = start_node_with("127.0.41.41", |c| c.limits.tcp_message_timeout_ms = 300).await;
    let mut ua = TcpUa::connect("127.0.41.42", tcp_addr(&node)).await;
    ua.send("OPTIONS sip:bob@switchyard.test SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.41.42;bran")
        .await;
    assert!(
        ua.closed_within(Duration::from_secs(5)).await,
        "half-sent message must not hold the connection"
    );
    node.shutdown().await;
}

#[tokio::test]
async fn unknown_method_is_forwarded_or_answered_480_for_our_domain() {
    let node = start_node("127.0.41.51").await;
    let proxy = udp_addr(&node);
    let ua = UdpUa::bind("127.0.41.52").await;
    let peer = UdpUa::bind("127.0.41.53").await;
    let me = ua.addr.to_string();
    // A foreign (loopback) target: proxies forward methods they do not know (RFC 3261 §16).
    let foo = options(&me, &format!("carol@{}", peer.addr), "5").replace("OPTIONS", "FOO");
    ua.send(proxy, &foo).await;
    let (fwd, _) = peer.recv("forwarded FOO").await;
    assert_eq!(fwd.method(), Some(&Method::Other("FOO".into())));
    assert_eq!(fwd.cseq().unwrap().method, Method::Other("FOO".into()));
    // Our own domain, nobody registered.
    let foo_local = options(&me, "nobody@switchyard.test", "6").replace("OPTIONS", "FOO");
    ua.send(proxy, &foo_local).await;
    let (resp, _) = ua.recv("480").await;
    assert_eq!(resp.status(), Some(480));
    node.shutdown().await;
}

#[tokio::test]
async fn egress_outside_the_allowlist_is_403_and_never_sent() {
    let node = start_node("127.0.41.61").await;
    let proxy = udp_addr(&node);
    let ua = UdpUa::bind("127.0.41.62").await;
    // 192.0.2.1 (TEST-NET-1) is outside the test allowlist of 127.0.0.0/8.
    ua.send(
        proxy,
        &options(&ua.addr.to_string(), "carol@192.0.2.1", "7"),
    )
    .await;
    let (resp, _) = ua.recv("403").await;
    assert_eq!(resp.status(), Some(403));
    assert_eq!(node.stats().egress_refused.get(), 1);
    node.shutdown().await;
}

/// A store whose backend is down: every call fails as an outage would.
struct DownStore;

#[async_trait]
impl LocationStore for DownStore {
    async fn register(
        &self,
        _: &Aor,
        _: &RegisterUpdate,
        _: SystemTime,
    ) -> Result<RegisterOutcome, RegisterError> {
        Err(RegisterError::Store(StoreError::Unavailable(
            "connection refused".into(),
        )))
    }
    async fn lookup(&self, _: &Aor, _: SystemTime) -> Result<Vec<Binding>, StoreError> {
        Err(StoreError::Unavailable("connection refused".into()))
    }
    async fn purge_expired(&self, _: SystemTime) -> Result<usize, StoreError> {
        Ok(0)
    }
    fn backend(&self) -> &'static str {
        "down"
    }
}

#[tokio::test]
async fn store_outage_is_503_with_retry_after() {
    let config = Config::for_tests(&["udp:127.0.41.71:0"], &[DOMAIN]);
    let parts = NodeParts {
        store: Some(Arc::new(DownStore)),
        policies: None,
        counters: None,
    };
    let node = Node::start_with(config, parts).await.unwrap();
    let proxy = udp_addr(&node);
    let ua = UdpUa::bind("127.0.41.72").await;
    let me = ua.addr.to_string();
    let register = register_bob(&me, "8");
    ua.send(proxy, &register).await;
    let (resp, _) = ua.recv("503 to REGISTER").await;
    assert_eq!(resp.status(), Some(503));
    assert!(resp.header(HeaderName::RetryAfter).is_some());
    ua.send(proxy, &options(&me, "bob@switchyard.test", "9"))
        .await;
    let (resp, _) = ua.recv("503 to OPTIONS for a user").await;
    assert_eq!(resp.status(), Some(503));
    assert!(resp.header(HeaderName::RetryAfter).is_some());
    node.shutdown().await;
}

/// The embedded store behind a gate: a REGISTER waits in the store until
/// the test lets it through, as on a slow Cassandra cluster.
struct GatedStore {
    inner: EmbeddedStore,
    entered: tokio::sync::Notify,
    gate: tokio::sync::Semaphore,
}

#[async_trait]
impl LocationStore for GatedStore {
    async fn register(
        &self,
        aor: &Aor,
        update: &RegisterUpdate,
        now: SystemTime,
    ) -> Result<RegisterOutcome, RegisterError> {
        self.entered.notify_one();
        let _pass = self.gate.acquire().await.expect("gate open");
        self.inner.register(aor, update, now).await
    }
    async fn lookup(&self, aor: &Aor, now: SystemTime) -> Result<Vec<Binding>, StoreError> {
        self.inner.lookup(aor, now).await
    }
    async fn purge_expired(&self, now: SystemTime) -> Result<usize, StoreError> {
        self.inner.purge_expired(now).await
    }
    fn backend(&self) -> &'static str {
        "gated"
    }
}

/// A datagram is handled on the task that read it only as far as it goes
/// without waiting: a REGISTER held in a slow store goes on elsewhere, and
/// the next datagram from the same phone, on the same (single) socket and
/// reader, is answered meanwhile.
#[tokio::test]
async fn a_register_waiting_on_the_store_holds_up_nothing_else() {
    let mut config = Config::for_tests(&["udp:127.0.41.75:0"], &[DOMAIN]);
    config.limits.udp_sockets = 1;
    let store = Arc::new(GatedStore {
        inner: EmbeddedStore::new(),
        entered: tokio::sync::Notify::new(),
        gate: tokio::sync::Semaphore::new(0),
    });
    let parts = NodeParts {
        store: Some(store.clone()),
        policies: None,
        counters: None,
    };
    let node = Node::start_with(config, parts).await.unwrap();
    let proxy = udp_addr(&node);
    let ua = UdpUa::bind("127.0.41.76").await;
    let me = ua.addr.to_string();
    let register = register_bob(&me, "12");
    ua.send(proxy, &register).await;
    tokio::time::timeout(Duration::from_secs(5), store.entered.notified())
        .await
        .expect("the REGISTER reached the store");
    ua.send(proxy, &options(&me, DOMAIN, "13")).await;
    let (resp, _) = ua.recv("200 to OPTIONS while the REGISTER waits").await;
    assert_eq!(resp.status(), Some(200));
    assert_eq!(resp.cseq().unwrap().method, Method::Options);
    store.gate.add_permits(1);
    let (resp, _) = ua.recv("200 to the REGISTER once the store answers").await;
    assert_eq!(resp.status(), Some(200));
    assert_eq!(resp.cseq().unwrap().method, Method::Register);
    node.shutdown().await;
}

#[tokio::test]
async fn unanswered_non_invite_gets_no_408_and_is_cleaned_up() {
    // T1 = 20 ms: Timer F (64×T1) fires after 1.28 s.
    let node = start_node_with("127.0.41.81", |c| c.timers.t1_ms = 20).await;
    let proxy = udp_addr(&node);
    let ua = UdpUa::bind("127.0.41.82").await;
    let silent = UdpUa::bind("127.0.41.83").await;
    let target = format!("carol@{}", silent.addr);
    ua.send(proxy, &options(&ua.addr.to_string(), &target, "10"))
        .await;
    let (fwd, _) = silent.recv("forwarded OPTIONS").await;
    assert_eq!(fwd.method(), Some(&Method::Options));
    // RFC 4320 §4.2: the proxy lets the client time out instead of sending 408.
    assert!(
        ua.try_recv(Duration::from_secs(3)).await.is_none(),
        "no response at all"
    );
    assert_eq!(
        node.live_transactions(),
        (0, 0, 0),
        "transaction ended with Timer F"
    );
    node.shutdown().await;
}

#[tokio::test]
async fn cassandra_backend_pointed_at_nothing_answers_503_fast() {
    // A port nobody listens on: the store must fail fast, the proxy answer.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let node = start_node_with("127.0.41.91", |c| {
        c.store.backend = "cassandra".into();
        c.store.cassandra.contact_points = vec![closed.to_string()];
        c.store.cassandra.request_timeout_ms = 500;
    })
    .await;
    let proxy = udp_addr(&node);
    let ua = UdpUa::bind("127.0.41.92").await;
    let me = ua.addr.to_string();
    let register = register_bob(&me, "11");
    let started = std::time::Instant::now();
    ua.send(proxy, &register).await;
    let (resp, _) = ua.recv("503 to REGISTER").await;
    assert_eq!(resp.status(), Some(503));
    assert!(resp.header(HeaderName::RetryAfter).is_some());
    assert!(
        started.elapsed() < Duration::from_millis(550),
        "answered within the store timeout + 10%: {:?}",
        started.elapsed()
    );
    // In-dialog requests need no store: a BYE routed through the proxy's
    // Record-Route still reaches the other party during the outage.
    let peer = UdpUa::bind("127.0.41.93").await;
    let bye = format!(
        "BYE sip:alice@{peer} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-bye-12\r\nRoute: <sip:{proxy};lr>\r\nMax-Forwards: 70\r\nFrom: <sip:bob@{DOMAIN}>;tag=b12\r\nTo: <sip:alice@{DOMAIN}>;tag=a12\r\nCall-ID: dialog-12@test\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
        peer = peer.addr
    );
    ua.send(proxy, &bye).await;
    let (got, _) = peer.recv("in-dialog BYE during the store outage").await;
    assert_eq!(got.method(), Some(&Method::Bye));
    node.shutdown().await;
}

/// `limits.max_transactions`: past the cap a new request gets 503 with
/// Retry-After, sent statelessly and counted. Completed transactions (a
/// UDP non-INVITE answered, absorbing retransmissions for Timer J) have
/// their own cap and leave room: only unanswered ones count.
#[tokio::test]
async fn past_the_transaction_cap_new_requests_get_503_retry_after() {
    let node = start_node_with("127.0.41.95", |c| {
        c.limits.max_transactions = 1;
        // Timer K: how long the answered BYE's branch absorbs retransmitted
        // responses before its transaction is done.
        c.timers.t4_ms = 100;
    })
    .await;
    let proxy = udp_addr(&node);
    let ua = UdpUa::bind("127.0.41.96").await;
    let me = ua.addr.to_string();
    let target = proxy.to_string();
    let first = options(&me, &target, "cap1");
    assert_eq!(ua.request(proxy, &first, "200").await.status(), Some(200));
    // Completed: it still answers its retransmission, and takes no room.
    assert_eq!(
        ua.request(proxy, &first, "200 again").await.status(),
        Some(200)
    );
    // An in-dialog BYE towards a peer that has not answered yet: live.
    let peer = UdpUa::bind("127.0.41.97").await;
    let bye = format!(
        "BYE sip:alice@{peer} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-capbye\r\nRoute: <sip:{proxy};lr>\r\nMax-Forwards: 70\r\nFrom: <sip:bob@{DOMAIN}>;tag=b1\r\nTo: <sip:alice@{DOMAIN}>;tag=a1\r\nCall-ID: capbye@test\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
        peer = peer.addr
    );
    ua.send(proxy, &bye).await;
    let forwarded = peer.recv_request("BYE", "the BYE").await;
    let second = ua
        .request(proxy, &options(&me, &target, "cap2"), "503")
        .await;
    assert_eq!(second.status(), Some(503), "{second:?}");
    assert_eq!(second.header(HeaderName::RetryAfter), Some("5"));
    assert_eq!(node.stats().overloaded.get(), 1);
    // The BYE answered, there is room again.
    let ok = switchyard_codec::response_to(&forwarded, 200, "OK").build();
    peer.send_bytes(proxy, &ok).await;
    let answered = ua
        .recv_matching("the BYE's 200", |m| m.status() == Some(200))
        .await;
    assert_eq!(answered.call_id().ok(), Some("capbye@test"));
    // Once its branch is done too (Timer K), the BYE is only completed
    // and a new request fits again.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    for n in 3.. {
        let next = options(&me, &target, &format!("cap{n}"));
        let resp = ua.request(proxy, &next, "200 or 503").await;
        if resp.status() == Some(200) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "still 503: {resp:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    node.shutdown().await;
}

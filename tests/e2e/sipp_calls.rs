//! Call flows through one node driven by SIPp (Debian `sip-tester`), as
//! both caller and callees: register, call, cancel, serial and parallel
//! forking, no answer, unregister and expiry, retransmission absorption.
//! Each test has its own 127.0.N.0/24 so they run in parallel.

use std::time::{Duration, SystemTime};

use switchyard::location::Aor;
use switchyard_tests::sipp::{
    Sipp, SippTransport, UAC_CALL, UAC_CANCEL, UAC_INVITE_TWICE, UAC_REGISTER, UAC_REGISTER_Q,
    UAC_UNREGISTER, UAS_ANSWER, UAS_BUSY, UAS_NO_ANSWER, UAS_RING_FOREVER, UAS_SINGLE_INVITE,
};
use switchyard_tests::{DOMAIN, finish, ip, start_node, start_node_with, stop, tcp_addr, udp_addr};

/// Registers `user` at the callee `uas` (ip:port) through the proxy.
async fn register(
    proxy: std::net::SocketAddr,
    from: std::net::IpAddr,
    user: &str,
    uas: &str,
    q: Option<&str>,
) {
    let mut s = Sipp::uac(if q.is_some() {
        UAC_REGISTER_Q
    } else {
        UAC_REGISTER
    })
    .remote(proxy)
    .local(from, 0)
    .users([user])
    .set("domain", DOMAIN)
    .set("uas", uas)
    .set("expires", "300");
    if let Some(q) = q {
        s = s.set("q", q);
    }
    finish(s.spawn()).await.assert_success();
}

fn caller(scenario: &str, proxy: std::net::SocketAddr, from: std::net::IpAddr, user: &str) -> Sipp {
    Sipp::uac(scenario)
        .remote(proxy)
        .local(from, 0)
        .users([user])
        .set("domain", DOMAIN)
        .timeout(Duration::from_secs(20))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_then_calls_complete_through_the_proxy() {
    let node = start_node("127.0.21.1").await;
    let proxy = udp_addr(&node);
    let uas = Sipp::uas(UAS_ANSWER).local(ip(21, 2), 5070).spawn();
    register(proxy, ip(21, 3), "bob", "127.0.21.2:5070", None).await;
    let calls = caller(UAC_CALL, proxy, ip(21, 3), "bob")
        .calls(5)
        .rate(50)
        .spawn();
    finish(calls).await.assert_calls(5, 0);
    stop(uas).await.assert_calls(5, 0);
    // Every transaction ends once its timers run out (64×T1 = 6.4 s with the
    // test T1 of 100 ms): nothing stays in the tables or the timer queue.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while node.live_transactions() != (0, 0, 0) {
        assert!(
            std::time::Instant::now() < deadline,
            "leaked transactions: {:?}",
            node.live_transactions()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_while_ringing_reaches_the_callee() {
    let node = start_node("127.0.22.1").await;
    let proxy = udp_addr(&node);
    let uas = Sipp::uas(UAS_RING_FOREVER).local(ip(22, 2), 5070).spawn();
    register(proxy, ip(22, 3), "bob", "127.0.22.2:5070", None).await;
    finish(caller(UAC_CANCEL, proxy, ip(22, 3), "bob").spawn())
        .await
        .assert_calls(1, 0);
    stop(uas).await.assert_calls(1, 0);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_first_contact_fails_over_to_the_next_by_q() {
    let node = start_node("127.0.23.1").await;
    let proxy = udp_addr(&node);
    let busy = Sipp::uas(UAS_BUSY).local(ip(23, 2), 5070).spawn();
    let answer = Sipp::uas(UAS_ANSWER).local(ip(23, 4), 5070).spawn();
    register(proxy, ip(23, 3), "bob", "127.0.23.2:5070", Some("0.9")).await;
    register(proxy, ip(23, 3), "bob", "127.0.23.4:5070", Some("0.5")).await;
    finish(caller(UAC_CALL, proxy, ip(23, 3), "bob").spawn())
        .await
        .assert_calls(1, 0);
    stop(busy).await.assert_calls(1, 0);
    stop(answer).await.assert_calls(1, 0);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_fork_first_answer_wins_and_the_other_is_cancelled() {
    let node = start_node("127.0.24.1").await;
    let proxy = udp_addr(&node);
    let answer = Sipp::uas(UAS_ANSWER).local(ip(24, 2), 5070).spawn();
    let ringing = Sipp::uas(UAS_RING_FOREVER).local(ip(24, 4), 5070).spawn();
    register(proxy, ip(24, 3), "bob", "127.0.24.2:5070", None).await;
    register(proxy, ip(24, 3), "bob", "127.0.24.4:5070", None).await;
    finish(caller(UAC_CALL, proxy, ip(24, 3), "bob").spawn())
        .await
        .assert_calls(1, 0);
    stop(answer).await.assert_calls(1, 0);
    // uas_ring_forever only succeeds when the proxy's CANCEL arrives.
    stop(ringing).await.assert_calls(1, 0);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_answer_is_408_and_no_contact_is_480() {
    let node = start_node_with("127.0.25.1", |c| c.timers.timer_c_ms = 1500).await;
    let proxy = udp_addr(&node);
    let silent = Sipp::uas(UAS_NO_ANSWER).local(ip(25, 2), 5070).spawn();
    register(proxy, ip(25, 3), "bob", "127.0.25.2:5070", None).await;
    let expect = |code| {
        Sipp::uac_expect(code)
            .remote(proxy)
            .local(ip(25, 3), 0)
            .set("domain", DOMAIN)
            .timeout(Duration::from_secs(20))
    };
    finish(expect(408).users(["bob"]).spawn())
        .await
        .assert_calls(1, 0);
    stop(silent).await.assert_calls(1, 0);
    finish(expect(480).users(["nobody"]).spawn())
        .await
        .assert_calls(1, 0);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unregister_and_expiry_remove_the_binding() {
    let node = start_node_with("127.0.26.1", |c| c.registrar.min_expires = 1).await;
    let proxy = udp_addr(&node);
    register(proxy, ip(26, 3), "bob", "127.0.26.2:5070", None).await;
    let aor = Aor::new(Some("bob"), DOMAIN).unwrap();
    assert_eq!(
        node.store()
            .lookup(&aor, SystemTime::now())
            .await
            .unwrap()
            .len(),
        1
    );
    let unregister = Sipp::uac(UAC_UNREGISTER)
        .remote(proxy)
        .local(ip(26, 3), 0)
        .users(["bob"])
        .set("domain", DOMAIN)
        .set("uas", "127.0.26.2:5070");
    finish(unregister.spawn()).await.assert_success();
    assert!(
        node.store()
            .lookup(&aor, SystemTime::now())
            .await
            .unwrap()
            .is_empty()
    );
    let expect480 = Sipp::uac_expect(480)
        .remote(proxy)
        .local(ip(26, 3), 0)
        .set("domain", DOMAIN)
        .users(["bob"]);
    finish(expect480.spawn()).await.assert_calls(1, 0);

    // A 1-second registration is gone once its second has passed.
    let short = Sipp::uac(UAC_REGISTER)
        .remote(proxy)
        .local(ip(26, 3), 0)
        .users(["carol"])
        .set("domain", DOMAIN)
        .set("uas", "127.0.26.2:5070")
        .set("expires", "1");
    finish(short.spawn()).await.assert_success();
    let carol = Aor::new(Some("carol"), DOMAIN).unwrap();
    assert_eq!(
        node.store()
            .lookup(&carol, SystemTime::now())
            .await
            .unwrap()
            .len(),
        1
    );
    let later = SystemTime::now() + Duration::from_secs(2);
    assert!(
        node.store().lookup(&carol, later).await.unwrap().is_empty(),
        "expired at its deadline"
    );
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retransmitted_invite_is_absorbed() {
    let node = start_node("127.0.27.1").await;
    let proxy = udp_addr(&node);
    let uas = Sipp::uas(UAS_SINGLE_INVITE)
        .local(ip(27, 2), 5070)
        .no_retrans()
        .calls(1)
        .spawn();
    register(proxy, ip(27, 3), "bob", "127.0.27.2:5070", None).await;
    finish(
        caller(UAC_INVITE_TWICE, proxy, ip(27, 3), "bob")
            .no_retrans()
            .spawn(),
    )
    .await
    .assert_calls(1, 0);
    stop(uas).await.assert_calls(1, 0);
    assert!(node.stats().retransmissions_absorbed.get() >= 1);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_over_tcp_end_to_end() {
    let node = start_node("127.0.29.1").await;
    let proxy = tcp_addr(&node);
    let uas = Sipp::uas(UAS_ANSWER)
        .local(ip(29, 2), 5070)
        .transport(SippTransport::Tcp)
        .spawn();
    let reg = Sipp::uac(UAC_REGISTER)
        .remote(proxy)
        .local(ip(29, 3), 0)
        .transport(SippTransport::Tcp)
        .users(["bob"])
        .set("domain", DOMAIN)
        .set("uas", "127.0.29.2:5070;transport=tcp")
        .set("expires", "300");
    finish(reg.spawn()).await.assert_success();
    let calls = caller(UAC_CALL, proxy, ip(29, 3), "bob")
        .transport(SippTransport::Tcp)
        .calls(3)
        .spawn();
    finish(calls).await.assert_calls(3, 0);
    stop(uas).await.assert_calls(3, 0);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_over_tls_end_to_end() {
    let dir = switchyard_tests::run_dir("stunnel", "calls");
    let ca = switchyard_tests::certs::TestCa::new(&dir, "node");
    let cert = ca.server("node", &["127.0.30.1"]);
    let node = start_node_with("127.0.30.1", |c| {
        c.listen.push("tls:127.0.30.1:0".parse().unwrap());
        c.tls.cert = Some(cert.cert.clone());
        c.tls.key = Some(cert.key.clone());
    })
    .await;
    let tls = node.addr(switchyard::net::Transport::Tls);
    let accept = "127.0.30.3:5061".parse().unwrap();
    let tunnel = switchyard_tests::stunnel::Stunnel::client(&dir, accept, tls, &ca.cert_file).await;
    let uas = Sipp::uas(UAS_ANSWER).local(ip(30, 2), 5070).spawn();
    let reg = Sipp::uac(UAC_REGISTER)
        .remote(tunnel.accept)
        .local(ip(30, 3), 0)
        .transport(SippTransport::Tcp)
        .users(["bob"])
        .set("domain", DOMAIN)
        .set("uas", "127.0.30.2:5070")
        .set("expires", "300");
    finish(reg.spawn()).await.assert_success();
    let calls = caller(UAC_CALL, tunnel.accept, ip(30, 3), "bob")
        .transport(SippTransport::Tcp)
        .calls(20)
        .rate(20)
        .spawn();
    finish(calls).await.assert_calls(20, 0);
    stop(uas).await.assert_calls(20, 0);
    let stats = node.transport_stats();
    assert_eq!(stats.handshake_failures, 0);
    // One TLS connection per SIPp run (`-t t1`), carrying the REGISTER,
    // then every INVITE, ACK and BYE.
    assert_eq!(stats.tcp_accepted, 2, "{stats:?}");
    assert_eq!(stats.tcp_rx_messages, 1 + 20 * 3, "{stats:?}");
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draining_finishes_the_calls_in_progress_and_refuses_new_ones() {
    let node = start_node("127.0.31.1").await;
    let proxy = udp_addr(&node);
    let uas = Sipp::uas(UAS_ANSWER).local(ip(31, 2), 5070).spawn();
    register(proxy, ip(31, 3), "bob", "127.0.31.2:5070", None).await;
    // 20 calls that each last 1.5 s between ACK and BYE.
    let before = node.stats().requests_in.get();
    let calls = caller(UAC_CALL, proxy, ip(31, 3), "bob")
        .calls(20)
        .rate(40)
        .pause(Duration::from_millis(1500))
        .spawn();
    // Every INVITE and its ACK has arrived (the BYEs come 1.5 s later).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while node.stats().requests_in.get() < before + 40 {
        assert!(
            std::time::Instant::now() < deadline,
            "the INVITEs never came"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let drain = node.drain(Duration::from_secs(20));
    let late = async {
        // A new call while draining: 503 with Retry-After, at once.
        let ua = switchyard_tests::ua::UdpUa::bind("127.0.31.4").await;
        let invite = switchyard_tests::ua::invite(
            &format!("sip:bob@{DOMAIN}"),
            "alice",
            ua.addr,
            "late-call",
        );
        let answer = ua.request(proxy, &invite, "the answer to a new call").await;
        (
            answer.status(),
            answer
                .header(switchyard_codec::HeaderName::RetryAfter)
                .map(str::to_owned),
        )
    };
    let (drained, (status, retry)) = tokio::join!(drain, late);
    assert!(drained, "every transaction answered within the drain time");
    assert_eq!((status, retry.as_deref()), (Some(503), Some("30")));
    // The BYEs of the calls in progress went through while draining.
    finish(calls).await.assert_calls(20, 0);
    stop(uas).await.assert_calls(20, 0);
    assert_eq!(node.stats().refused_draining.get(), 1);
    node.shutdown().await;
}

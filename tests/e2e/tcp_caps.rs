//! Floods and limits, TCP connections: one address that holds
//! `[limits] tcp_max_per_source` connections gets no more (each further one
//! is closed by the node before anything is read), while another address
//! is still served, and the refusals show on /metrics.
//!
//! Everything stays on 127.0.71.0/24: the node on .1, the greedy source
//! on .9, the other client on .8. Loopback is exempt from the per-source
//! caps by default, so this node clears `rate_limit_exempt`.

use std::net::SocketAddr;
use std::time::Duration;

use switchyard_tests::policy::admin_get;
use switchyard_tests::ua::{TcpUa, msg};
use switchyard_tests::{DOMAIN, start_node_with, tcp_addr};

const PER_SOURCE: usize = 3;
/// Connections the greedy source tries beyond its share.
const EXTRA: usize = 2;

#[tokio::test]
async fn tcp_connections_beyond_the_per_source_cap_are_closed_and_others_are_served() {
    let node = start_node_with("127.0.71.1", |c| {
        c.limits.rate_limit_exempt.clear();
        c.limits.tcp_max_per_source = PER_SOURCE;
        // For /metrics.
        c.admin.listen = Some("127.0.71.1:0".parse().unwrap());
    })
    .await;
    let proxy = tcp_addr(&node);

    // Its share: each connection is answered, so the node holds it open.
    let mut held = Vec::new();
    for i in 0..PER_SOURCE {
        let mut ua = TcpUa::connect("127.0.71.9", proxy).await;
        assert_eq!(options(&mut ua, proxy, &format!("held-{i}")).await, 200);
        held.push(ua);
    }
    // Beyond it: the kernel completes the handshake, the node closes.
    for i in 0..EXTRA {
        let mut extra = TcpUa::connect("127.0.71.9", proxy).await;
        assert!(
            extra.closed_within(Duration::from_secs(5)).await,
            "connection {} from 127.0.71.9 was left open",
            PER_SOURCE + i + 1
        );
    }
    // Another source is served, and so is the greedy one on what it holds.
    let mut other = TcpUa::connect("127.0.71.8", proxy).await;
    assert_eq!(options(&mut other, proxy, "other").await, 200);
    assert_eq!(options(&mut held[0], proxy, "held-again").await, 200);

    let stats = node.transport_stats();
    assert_eq!(
        (stats.tcp_refused_per_source, stats.tcp_refused_inbound),
        (EXTRA as u64, 0)
    );
    let (code, metrics) = admin_get(node.admin_addr().unwrap(), "/metrics").await;
    let series = format!("switchyard_tcp_refused_per_source_total {EXTRA}\n");
    assert!(
        code == 200 && metrics.contains(&series),
        "{series} in:\n{metrics}"
    );
    node.shutdown().await;
}

/// An OPTIONS to the node over `ua`'s connection; the answer's status.
async fn options(ua: &mut TcpUa, proxy: SocketAddr, tag: &str) -> u16 {
    let request = msg(
        "OPTIONS sip:{proxy};transport=tcp SIP/2.0
Via: SIP/2.0/TCP {me};branch=z9hG4bK-caps-{tag}
Max-Forwards: 70
From: <sip:probe@{domain}>;tag={tag}
To: <sip:{proxy}>
Call-ID: caps-{tag}@test
CSeq: 1 OPTIONS
Content-Length: 0

",
        &[
            ("proxy", &proxy.to_string()),
            ("me", &ua.addr.to_string()),
            ("tag", tag),
            ("domain", DOMAIN),
        ],
    );
    ua.send(&request).await;
    let answer = ua.recv("the answer to OPTIONS").await;
    assert_eq!(answer.call_id().unwrap(), format!("caps-{tag}@test"));
    answer.status().unwrap_or(0)
}

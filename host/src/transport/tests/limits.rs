//! The per-source rate limit on real sockets: what is over the rate never
//! reaches the handler and is counted; other sources are unaffected; a TCP
//! stream keeps its framing across dropped messages.

use std::time::Duration;

use tokio::net::UdpSocket;

use super::*;
use crate::transport::SourceLimitConfig;

/// Bursts of `burst`, then one message a second; loopback not exempt.
fn limited(burst: u32) -> TransportConfig {
    TransportConfig {
        source_limit: SourceLimitConfig {
            rate: 1,
            burst,
            exempt: Vec::new(),
            ..SourceLimitConfig::default()
        },
        ..config()
    }
}

/// Waits until the transport has counted `n` rate-limited drops.
async fn rate_limited(h: &Harness, n: u64) {
    within(async {
        while h.transports.stats().rate_limited < n {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert_eq!(h.transports.stats().rate_limited, n);
}

#[tokio::test]
async fn udp_datagrams_over_the_rate_are_dropped_unseen_and_counted() {
    let mut h = Harness::start(&["udp:127.0.0.1:0"], limited(3)).await;
    let proxy = h.addr(Transport::Udp);
    let flooder = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for i in 0..10 {
        let msg = request(&format!("f{i}"), "");
        flooder.send_to(msg.as_bytes(), proxy).await.unwrap();
    }
    rate_limited(&h, 7).await;
    let other = UdpSocket::bind("127.0.0.2:0").await.unwrap();
    other
        .send_to(request("other", "").as_bytes(), proxy)
        .await
        .unwrap();
    // The burst, in order, then the other source's message: nothing else.
    for i in 0..3 {
        assert_eq!(h.message().await.data, request(&format!("f{i}"), ""));
    }
    assert_eq!(h.message().await.data, request("other", ""));
    assert!(h.events.try_recv().is_err());
    let stats = h.transports.stats();
    assert_eq!((stats.udp_rx_messages, stats.rate_limited), (4, 7));
}

#[tokio::test]
async fn tcp_connections_and_messages_over_the_rate_are_dropped() {
    let mut h = Harness::start(&["tcp:127.0.0.1:0"], limited(3)).await;
    let addr = h.addr(Transport::Tcp);
    // The connection takes one token, a and b the other two; c and d go.
    let mut ua = connect(addr).await;
    let msgs: Vec<String> = ["a", "b", "c", "d"].map(|id| request(id, "")).into();
    write(&mut ua, msgs.concat().as_bytes()).await;
    assert_eq!(h.message().await.data, msgs[0].as_bytes());
    assert_eq!(h.message().await.data, msgs[1].as_bytes());
    rate_limited(&h, 2).await;
    // A second connection from the same address is closed at accept.
    let mut refused = connect(addr).await;
    assert!(read_until_closed(&mut refused).await.is_empty());
    rate_limited(&h, 3).await;
    assert_eq!(h.transports.stats().tcp_accepted, 1);
    // A second later there is a token again, and the first stream is still
    // framed right after the drops.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let e = request("e", "after the drops");
    write(&mut ua, e.as_bytes()).await;
    assert_eq!(h.message().await.data, e.as_bytes());
    assert_eq!(h.transports.stats().tcp_rx_messages, 3);
}

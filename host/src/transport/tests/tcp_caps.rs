//! The TCP connection caps on real sockets: connections over an inbound cap
//! are closed unread and counted, a closed connection gives its slot back,
//! and the inbound and outbound pools never take from each other.

use std::io::ErrorKind;
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket};

use super::*;
use crate::net::Source;
use crate::transport::{SourceLimitConfig, TransportError, TransportStats};

/// Caps of 3 inbound, 1 outbound, 2 per source; no rate limit, nothing
/// exempt (loopback would be by default).
fn capped() -> TransportConfig {
    TransportConfig {
        tcp_max_inbound: 3,
        tcp_max_outbound: 1,
        tcp_max_per_source: 2,
        source_limit: SourceLimitConfig {
            rate: 0,
            exempt: Vec::new(),
            ..SourceLimitConfig::default()
        },
        ..config()
    }
}

async fn connect_from(ip: &str, addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{ip}:0").parse().unwrap()).unwrap();
    within(socket.connect(addr)).await.unwrap()
}

/// A connection the transport takes: its first message gets through.
async fn accepted(h: &mut Harness, ip: &str, id: &str) -> TcpStream {
    let mut stream = connect_from(ip, h.addr(Transport::Tcp)).await;
    write(&mut stream, request(id, "").as_bytes()).await;
    assert_eq!(h.message().await.data, request(id, "").as_bytes());
    stream
}

/// A connection the transport closes at once (a refused one is reset).
async fn refused(h: &Harness, ip: &str) {
    let mut stream = connect_from(ip, h.addr(Transport::Tcp)).await;
    let mut buf = [0; 64];
    match within(stream.read(&mut buf)).await {
        Ok(0) => {}
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        other => panic!("connection from {ip} not closed: {other:?}"),
    }
}

/// Waits until the transport's stats satisfy `done`.
async fn stats_until(h: &Harness, done: impl Fn(&TransportStats) -> bool) -> TransportStats {
    within(async {
        loop {
            let stats = h.transports.stats();
            if done(&stats) {
                return stats;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
}

#[tokio::test]
async fn inbound_connections_over_a_cap_are_closed_at_once_and_counted() {
    let mut h = Harness::start(&["tcp:127.0.0.1:0"], capped()).await;
    let a1 = accepted(&mut h, "127.0.0.1", "a1").await;
    let _a2 = accepted(&mut h, "127.0.0.1", "a2").await;
    refused(&h, "127.0.0.1").await;
    let _b = accepted(&mut h, "127.0.0.2", "b").await;
    // Three open: the pool is full for every source.
    refused(&h, "127.0.0.3").await;
    let stats = h.transports.stats();
    assert_eq!(
        (
            stats.tcp_accepted,
            stats.tcp_refused_per_source,
            stats.tcp_refused_inbound,
            stats.tcp_inbound_slots
        ),
        (3, 1, 1, 3)
    );
    // A closed connection gives its slot back, and its source's share.
    drop(a1);
    stats_until(&h, |s| s.tcp_inbound_slots == 2).await;
    let _a3 = accepted(&mut h, "127.0.0.1", "a3").await;
    assert!(h.events.try_recv().is_err());
}

/// Sends a request to `peer`, which is taken to be a carrier's listener.
async fn send_to(h: &Harness, peer: &TcpListener) -> Result<Source, TransportError> {
    let dest = peer.local_addr().unwrap();
    let data = Bytes::from(request("out", ""));
    h.transports.send(Transport::Tcp, dest, data).await
}

#[tokio::test]
async fn the_inbound_and_outbound_pools_never_take_from_each_other() {
    let mut h = Harness::start(&["tcp:127.0.0.1:0"], capped()).await;
    let mut clients = vec![
        accepted(&mut h, "127.0.0.1", "a").await,
        accepted(&mut h, "127.0.0.2", "b").await,
        accepted(&mut h, "127.0.0.3", "c").await,
    ];
    refused(&h, "127.0.0.4").await;

    // Clients hold every inbound slot, yet the carrier is reached.
    let carrier = TcpListener::bind("127.0.0.5:0").await.unwrap();
    let other = TcpListener::bind("127.0.0.6:0").await.unwrap();
    send_to(&h, &carrier).await.unwrap();
    let (mut to_carrier, _) = within(carrier.accept()).await.unwrap();
    // The one outbound slot is taken: the next peer is not even tried.
    let err = send_to(&h, &other).await.unwrap_err();
    assert!(
        matches!(err, TransportError::OutboundFull { .. }),
        "{err:?}"
    );
    let stats = h.transports.stats();
    assert_eq!(
        (
            stats.tcp_refused_outbound,
            stats.tcp_connect_failures,
            stats.tcp_connected,
            stats.tcp_outbound_slots,
            stats.tcp_inbound_slots
        ),
        (1, 0, 1, 1, 3)
    );

    // With the outbound pool full, a client that frees its slot leaves
    // room for another.
    clients.pop();
    stats_until(&h, |s| s.tcp_inbound_slots == 2).await;
    clients.push(accepted(&mut h, "127.0.0.4", "d").await);

    // The carrier hangs up: its slot comes back and the other is reached.
    read_n(&mut to_carrier, request("out", "").len()).await;
    drop(to_carrier);
    stats_until(&h, |s| s.tcp_outbound_slots == 0).await;
    send_to(&h, &other).await.unwrap();
    within(other.accept()).await.unwrap();
    assert_eq!(h.transports.stats().tcp_refused_inbound, 1);
}

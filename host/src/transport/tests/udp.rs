use bytes::Bytes;
use tokio::net::UdpSocket;

use super::*;
use crate::transport::TransportError;
use switchyard_codec::FrameError;

async fn client() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").await.unwrap()
}

async fn recv(sock: &UdpSocket) -> (Vec<u8>, SocketAddr) {
    let mut buf = vec![0; 70_000];
    let (n, from) = within(sock.recv_from(&mut buf)).await.unwrap();
    buf.truncate(n);
    (buf, from)
}

#[tokio::test]
async fn udp_round_trip_reply_and_send() {
    let mut h = Harness::start(&["udp:127.0.0.1:0"], config()).await;
    let proxy = h.addr(Transport::Udp);
    let ua = client().await;
    let msg = request("udp-1", "hello");
    ua.send_to(msg.as_bytes(), proxy).await.unwrap();

    let inbound = h.message().await;
    assert_eq!(inbound.data, msg.as_bytes());
    assert_eq!(inbound.source.transport, Transport::Udp);
    assert_eq!(inbound.source.remote, ua.local_addr().unwrap());
    assert_eq!(inbound.source.local, proxy);

    h.transports
        .reply(&inbound.source, Bytes::from_static(b"reply"))
        .await
        .unwrap();
    assert_eq!(recv(&ua).await, (b"reply".to_vec(), proxy));

    // A new request leaves from the listening socket, so the UA sees our port.
    let sent = h
        .transports
        .send(
            Transport::Udp,
            ua.local_addr().unwrap(),
            Bytes::from_static(b"req"),
        )
        .await
        .unwrap();
    assert_eq!(sent, inbound.source);
    assert_eq!(recv(&ua).await, (b"req".to_vec(), proxy));

    let stats = h.transports.stats();
    assert_eq!((stats.udp_rx_messages, stats.udp_tx_messages), (1, 2));
    assert_eq!(stats.udp_rx_bytes, msg.len() as u64);
}

#[tokio::test]
async fn udp_reuseport_sockets_all_deliver() {
    let cfg = TransportConfig {
        udp_sockets_per_listener: 4,
        ..config()
    };
    let mut h = Harness::start(&["udp:127.0.0.1:0"], cfg).await;
    let proxy = h.addr(Transport::Udp);

    // The kernel picks the socket by 4-tuple hash: 64 source ports leave a
    // 4·(3/4)^64 ≈ 1e-8 chance that one of 4 sockets gets nothing.
    const CLIENTS: usize = 64;
    let mut clients = Vec::new();
    for i in 0..CLIENTS {
        let ua = client().await;
        ua.send_to(request(&format!("rp-{i}"), "").as_bytes(), proxy)
            .await
            .unwrap();
        clients.push(ua);
    }
    for _ in 0..CLIENTS {
        h.message().await;
    }
    let per_socket = h.transports.stats().udp_rx_per_socket;
    assert_eq!(per_socket.len(), 4);
    assert!(
        per_socket.iter().all(|&(addr, n)| addr == proxy && n > 0),
        "{per_socket:?}"
    );
    assert_eq!(
        per_socket.iter().map(|&(_, n)| n).sum::<u64>(),
        CLIENTS as u64
    );
}

#[tokio::test]
async fn udp_reports_oversized_and_skips_keepalive_datagrams() {
    let cfg = TransportConfig {
        max_message_size: 1000,
        ..config()
    };
    let mut h = Harness::start(&["udp:127.0.0.1:0"], cfg).await;
    let proxy = h.addr(Transport::Udp);
    let ua = client().await;

    let big = request("big", &"x".repeat(1500));
    ua.send_to(big.as_bytes(), proxy).await.unwrap();
    ua.send_to(b"\r\n\r\n", proxy).await.unwrap();
    let exact = (0..1000)
        .map(|n| request("exact", &"y".repeat(n)))
        .find(|m| m.len() == 1000)
        .unwrap();
    ua.send_to(exact.as_bytes(), proxy).await.unwrap();

    // Datagrams from one socket arrive in order: first the oversized one, as a
    // framing error carrying its head (for a 513), then the one at the limit.
    match h.event().await {
        InboundEvent::FramingError { partial, error, .. } => {
            assert_eq!(error, FrameError::TooLarge);
            assert_eq!(partial.len(), 1000);
            assert!(big.as_bytes().starts_with(&partial));
        }
        other => panic!("expected a framing error, got {other:?}"),
    }
    assert_eq!(h.message().await.data, exact.as_bytes());
    let stats = h.transports.stats();
    assert_eq!(
        (
            stats.udp_dropped_oversize,
            stats.udp_keepalives,
            stats.udp_rx_messages
        ),
        (1, 1, 1)
    );
}

#[tokio::test]
async fn udp_port_in_use_is_refused() {
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let spec = ListenerSpec::new(Transport::Udp, taken.local_addr().unwrap());
    let handler = Arc::new(|_: InboundEvent| {});
    let err = Transports::bind(&[spec], config(), handler)
        .await
        .err()
        .unwrap();
    assert!(
        matches!(
            err,
            TransportError::Bind {
                transport: Transport::Udp,
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn udp_send_needs_a_listener_of_the_destination_family() {
    let h = Harness::start(&["udp:127.0.0.1:0"], config()).await;
    let err = h
        .transports
        .send(Transport::Udp, "[::1]:5060".parse().unwrap(), Bytes::new())
        .await
        .unwrap_err();
    assert!(matches!(err, TransportError::NoListener { .. }), "{err}");
}

#[tokio::test]
async fn ipv6_loopback_round_trip_udp_and_tcp() {
    if std::net::UdpSocket::bind("[::1]:0").is_err() {
        eprintln!("skipping: this machine has no IPv6 loopback (::1)");
        return;
    }
    let mut h = Harness::start(&["udp:[::1]:0", "tcp:[::1]:0", "udp:127.0.0.1:0"], config()).await;

    let ua = UdpSocket::bind("[::1]:0").await.unwrap();
    ua.send_to(request("v6-udp", "").as_bytes(), h.addr(Transport::Udp))
        .await
        .unwrap();
    let inbound = h.message().await;
    assert!(inbound.source.remote.is_ipv6() && inbound.source.local.is_ipv6());
    h.transports
        .reply(&inbound.source, Bytes::from_static(b"v6"))
        .await
        .unwrap();
    assert_eq!(recv(&ua).await, (b"v6".to_vec(), h.addr(Transport::Udp)));

    let mut tcp = connect(h.addr(Transport::Tcp)).await;
    write(&mut tcp, request("v6-tcp", "body").as_bytes()).await;
    let inbound = h.message().await;
    assert_eq!(inbound.source.remote, tcp.local_addr().unwrap());
    h.transports
        .reply(&inbound.source, Bytes::from_static(b"v6 tcp"))
        .await
        .unwrap();
    assert_eq!(read_n(&mut tcp, 6).await, b"v6 tcp");
}

/// A reader busy with one datagram (a handler at work in place, as the
/// node's is) leaves the socket's next datagram to another reader: one
/// socket, two workers, two datagrams from one source. With a single
/// reader per socket, the second would wait until the first was done,
/// and the first waits here for the second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_busy_reader_leaves_the_next_datagram_to_another() {
    use std::sync::mpsc;
    let cfg = TransportConfig {
        udp_sockets_per_listener: 1,
        ..config()
    };
    let (second_tx, second_rx) = mpsc::channel::<()>();
    let second_rx = std::sync::Mutex::new(second_rx);
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel();
    let handler = move |ev: InboundEvent| {
        let InboundEvent::Message(m) = ev else { return };
        if m.data.windows(5).any(|w| w == b"first") {
            // Blocks its reader, as a long policy hook run in place would.
            let waited = second_rx
                .lock()
                .unwrap()
                .recv_timeout(Duration::from_secs(4));
            let _ = done_tx.send(waited.is_ok());
        } else {
            let _ = second_tx.send(());
        }
    };
    let spec = ListenerSpec::new(Transport::Udp, "127.0.0.1:0".parse().unwrap());
    let transports = Transports::bind(&[spec], cfg, Arc::new(handler))
        .await
        .unwrap();
    let proxy = transports.local_addrs()[0].1;
    let ua = client().await;
    for call_id in ["first", "second"] {
        ua.send_to(request(call_id, "").as_bytes(), proxy)
            .await
            .unwrap();
    }
    assert_eq!(
        within(done_rx.recv()).await,
        Some(true),
        "the second datagram waited for the first's reader"
    );
    transports.shutdown().await;
}

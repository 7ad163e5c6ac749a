//! Connection reuse in both directions, connects, close and shutdown.

use tokio::net::TcpListener;
use tokio::task::JoinSet;

use super::*;
use crate::net::Source;
use crate::transport::TransportError;

async fn start() -> (Harness, SocketAddr) {
    let h = Harness::start(&["tcp:127.0.0.1:0"], config()).await;
    let addr = h.addr(Transport::Tcp);
    (h, addr)
}

#[tokio::test]
async fn send_to_a_peer_that_connected_inbound_reuses_its_connection() {
    let (mut h, addr) = start().await;
    let mut ua = connect(addr).await;
    write(&mut ua, request("reg", "").as_bytes()).await;
    let inbound = h.message().await;

    // A new request to the UA's address goes down the UA's own connection.
    let req = request("to-ua", "");
    let sent = h
        .transports
        .send(
            Transport::Tcp,
            ua.local_addr().unwrap(),
            Bytes::from(req.clone()),
        )
        .await
        .unwrap();
    assert_eq!(sent, inbound.source);
    assert_eq!(read_n(&mut ua, req.len()).await, req.as_bytes());

    h.transports
        .reply(&inbound.source, Bytes::from_static(b"SIP/2.0 200 OK"))
        .await
        .unwrap();
    assert_eq!(read_n(&mut ua, 14).await, b"SIP/2.0 200 OK");
    let stats = h.transports.stats();
    assert_eq!(
        (
            stats.tcp_accepted,
            stats.tcp_connected,
            stats.tcp_open_connections
        ),
        (1, 0, 1)
    );
}

#[tokio::test]
async fn outbound_connection_is_reused_and_carries_responses_back() {
    let (mut h, _) = start().await;
    let uas = TcpListener::bind("127.0.0.2:0").await.unwrap();
    let uas_addr = uas.local_addr().unwrap();

    let req = request("out-1", "");
    let sent = h
        .transports
        .send(Transport::Tcp, uas_addr, Bytes::from(req.clone()))
        .await
        .unwrap();
    let (mut peer, peer_sees) = within(uas.accept()).await.unwrap();
    assert_eq!(
        sent,
        Source {
            transport: Transport::Tcp,
            remote: uas_addr,
            local: peer_sees
        }
    );
    // Left from the TCP listener's address.
    assert_eq!(sent.local.ip(), h.addr(Transport::Tcp).ip());
    assert_eq!(read_n(&mut peer, req.len()).await, req.as_bytes());

    // The response comes back on the outbound connection, read by its task.
    let resp = "SIP/2.0 200 OK\r\nCall-ID: out-1\r\nContent-Length: 0\r\n\r\n";
    write(&mut peer, resp.as_bytes()).await;
    let inbound = h.message().await;
    assert_eq!((inbound.data, inbound.source), (Bytes::from(resp), sent));

    // A second request reuses it: it arrives on the same accepted socket.
    let req2 = request("out-2", "");
    assert_eq!(
        h.transports
            .send(Transport::Tcp, uas_addr, Bytes::from(req2.clone()))
            .await
            .unwrap(),
        sent
    );
    assert_eq!(read_n(&mut peer, req2.len()).await, req2.as_bytes());
    assert_eq!(h.transports.stats().tcp_connected, 1);
}

#[tokio::test]
async fn concurrent_sends_to_a_new_peer_share_one_connect() {
    let (h, _) = start().await;
    let uas = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let uas_addr = uas.local_addr().unwrap();
    let msg = request("burst", "");

    let mut sends = JoinSet::new();
    for _ in 0..8 {
        let transports = h.transports.clone();
        let msg = Bytes::from(msg.clone());
        sends.spawn(async move { transports.send(Transport::Tcp, uas_addr, msg).await });
    }
    let (mut peer, _) = within(uas.accept()).await.unwrap();
    let flows: Vec<Source> = within(sends.join_all())
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert!(flows.iter().all(|f| *f == flows[0]));
    // All eight arrive on the one accepted connection.
    assert_eq!(
        read_n(&mut peer, 8 * msg.len()).await,
        msg.repeat(8).as_bytes()
    );
    assert_eq!(h.transports.stats().tcp_connected, 1);
}

#[tokio::test]
async fn connect_failure_is_reported() {
    let (h, _) = start().await;
    let closed_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let err = h
        .transports
        .send(Transport::Tcp, closed_port, Bytes::new())
        .await
        .unwrap_err();
    assert!(
        matches!(err, TransportError::Connect { dest, .. } if dest == closed_port),
        "{err}"
    );
    assert_eq!(h.transports.stats().tcp_connect_failures, 1);
}

#[tokio::test]
async fn close_is_observed_by_the_peer() {
    let (mut h, addr) = start().await;
    let mut ua = connect(addr).await;
    write(&mut ua, request("bye", "").as_bytes()).await;
    let source = h.message().await.source;
    h.transports.close(&source);
    assert!(read_until_closed(&mut ua).await.is_empty());
}

#[tokio::test]
async fn reply_on_a_gone_connection_is_connection_closed_not_a_new_one() {
    // RFC 3261 §18.2.2: the connection's remote end is an ephemeral port;
    // the fallback (the Via's sent-by) is the caller's to choose.
    let (mut h, addr) = start().await;
    let mut ua = connect(addr).await;
    write(&mut ua, request("inv", "").as_bytes()).await;
    let source = h.message().await.source;
    h.transports.close(&source);
    assert!(read_until_closed(&mut ua).await.is_empty());

    let err = h
        .transports
        .reply(&source, Bytes::from_static(b"SIP/2.0 180 Ringing"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, TransportError::ConnectionClosed { remote } if remote == source.remote),
        "{err:?}"
    );
}

#[tokio::test]
async fn shutdown_stops_listeners_and_sends() {
    let (mut h, addr) = start().await;
    let mut ua = connect(addr).await;
    write(&mut ua, request("accepted", "").as_bytes()).await;
    h.message().await; // accepted, not just queued in the backlog
    within(h.transports.shutdown()).await;
    // Open connections were closed, the listener is gone, sends are refused.
    assert!(read_until_closed(&mut ua).await.is_empty());
    assert!(TcpStream::connect(addr).await.is_err());
    let err = h
        .transports
        .send(Transport::Tcp, addr, Bytes::new())
        .await
        .unwrap_err();
    assert!(matches!(err, TransportError::ShutDown), "{err}");
}

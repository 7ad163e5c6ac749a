//! When an edge goes away: calls for its phones fail fast (480 when the
//! edge node is down, 430 Flow Failed when the phone's TCP connection is
//! gone, RFC 5626 §5.3) instead of hanging; phones behind other edges stay
//! reachable; a restarted edge serves its phones again after they
//! re-register.

use std::time::{Duration, Instant};

use switchyard_tests::DOMAIN;
use switchyard_tests::cluster::TestCluster;
use switchyard_tests::phone::Phone;

const A: usize = 0;
const B: usize = 1;
const C: usize = 2;

/// Alice calls `user` at node C and gets `status` within `within`.
async fn call_fails(
    alice: &mut Phone,
    node: std::net::SocketAddr,
    user: &str,
    status: u16,
    within: Duration,
) {
    let (invite, call_id) = alice.invite(&format!("sip:{user}@{DOMAIN}"), None);
    let started = Instant::now();
    alice.send_to(node, &invite).await;
    let answer = alice.recv_final(&call_id, "INVITE").await;
    assert_eq!(answer.status(), Some(status), "call to {user}");
    assert!(
        started.elapsed() < within,
        "{status} took {:?}",
        started.elapsed()
    );
}

/// Alice calls `user` at `node`; the phone receives it and answers 486.
async fn call_reaches(alice: &mut Phone, node: std::net::SocketAddr, phone: &mut Phone) {
    let (invite, call_id) = alice.invite(&format!("sip:{}@{DOMAIN}", phone.user), None);
    alice.send_to(node, &invite).await;
    let (got, _) = phone.recv_request("INVITE").await;
    phone.answer(&got, 486, None).await;
    assert_eq!(
        alice.recv_final(&call_id, "INVITE").await.status(),
        Some(486)
    );
}

#[tokio::test]
async fn a_stopped_edge_fails_fast_others_still_work_and_a_restart_recovers() {
    let mut cluster = TestCluster::start(21080).await;
    let mut bob = Phone::udp("bob", "127.0.0.12", cluster.udp(A)).await;
    let mut frank = Phone::udp("frank", "127.0.0.16", cluster.udp(B)).await;
    assert_eq!(bob.register("", &[]).await.status(), Some(200));
    assert_eq!(frank.register("", &[]).await.status(), Some(200));
    let mut alice = Phone::udp("alice", "127.0.0.11", cluster.udp(C)).await;
    call_reaches(&mut alice, cluster.udp(C), &mut bob).await;

    cluster.stop(A).await;
    // Bob's binding is still in the store, but its edge is gone: C cannot
    // connect to A and answers at once, not after Timer B.
    call_fails(
        &mut alice,
        cluster.udp(C),
        "bob",
        480,
        Duration::from_secs(2),
    )
    .await;
    call_reaches(&mut alice, cluster.udp(C), &mut frank).await;

    cluster.restart(A).await;
    assert_eq!(bob.register("", &[]).await.status(), Some(200));
    call_reaches(&mut alice, cluster.udp(C), &mut bob).await;
    cluster.shutdown().await;
}

#[tokio::test]
async fn a_closed_tcp_flow_is_430_flow_failed() {
    let cluster = TestCluster::start(21081).await;
    let mut bob = Phone::tcp("bob", "127.0.0.12", cluster.tcp(A)).await;
    let outbound = ";reg-id=1;+sip.instance=\"<urn:uuid:00000000-0000-4000-8000-0000000000b0>\"";
    let ok = bob.register(outbound, &["Supported: outbound"]).await;
    assert_eq!(ok.status(), Some(200));
    assert_eq!(
        ok.header(switchyard_codec::HeaderName::Require),
        Some("outbound")
    );
    let mut alice = Phone::udp("alice", "127.0.0.11", cluster.udp(C)).await;
    call_reaches(&mut alice, cluster.udp(C), &mut bob).await;

    drop(bob);
    // A notices the close; the next call for the flow is refused by A with
    // 430, which C relays so the caller (or its UA) can try another flow.
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let (invite, call_id) = alice.invite(&format!("sip:bob@{DOMAIN}"), None);
        alice.send_to(cluster.udp(C), &invite).await;
        let status = alice.recv_final(&call_id, "INVITE").await.status();
        if status == Some(430) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still {status:?} after the close"
        );
    }
    cluster.shutdown().await;
}

#[tokio::test]
async fn stun_and_crlf_keepalives_are_answered_by_the_edge() {
    let cluster = TestCluster::start(21082).await;
    // STUN Binding request (RFC 5389) on the SIP UDP port.
    let socket = tokio::net::UdpSocket::bind("127.0.0.12:0").await.unwrap();
    let mut request = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
    request.extend_from_slice(b"switchyard!!");
    socket.send_to(&request, cluster.udp(A)).await.unwrap();
    let mut buf = [0u8; 64];
    let (n, _) = tokio::time::timeout(Duration::from_secs(5), socket.recv_from(&mut buf))
        .await
        .expect("STUN response")
        .unwrap();
    assert_eq!(&buf[0..2], &[0x01, 0x01], "Binding success");
    assert_eq!(&buf[8..20], b"switchyard!!");
    let mine = socket.local_addr().unwrap();
    let port = u16::from_be_bytes([buf[26], buf[27]]) ^ 0x2112;
    assert_eq!(
        (n, port),
        (32, mine.port()),
        "XOR-MAPPED-ADDRESS is our address"
    );

    // CRLF ping / pong on TCP (RFC 5626 §3.5.1).
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(cluster.tcp(A))
        .await
        .unwrap();
    tcp.write_all(b"\r\n\r\n").await.unwrap();
    let mut pong = [0u8; 2];
    tokio::time::timeout(Duration::from_secs(5), tcp.read_exact(&mut pong))
        .await
        .expect("pong")
        .unwrap();
    assert_eq!(&pong, b"\r\n");
    cluster.shutdown().await;
}

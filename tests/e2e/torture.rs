//! The RFC 4475 torture messages and RFC 5118 IPv6 messages sent to a running
//! proxy over UDP, asserting the answer each one gets (fixtures and the
//! expected outcome, with the RFC section, in tests/fixtures/expected.toml).
//!
//! Valid requests are routed for real: their foreign targets (example.com,
//! 192.0.2.x) hit the loopback-only egress allowlist or the DNS-less
//! resolver and are answered 403/503, so nothing leaves this machine.

use std::time::Duration;

use serde::Deserialize;
use switchyard_codec::SipMessage;
use switchyard_tests::ua::UdpUa;
use switchyard_tests::{start_node, udp_addr};

#[derive(Deserialize)]
struct Manifest {
    fixture: Vec<Fixture>,
}

#[derive(Deserialize)]
struct Fixture {
    file: String,
    outcome: String,
    code: Option<u16>,
    why: String,
}

/// Statuses that mean "understood and routed", not "refused as malformed".
const ROUTING_OUTCOMES: &[u16] = &[200, 403, 404, 480, 500, 503];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_torture_message_gets_the_answer_its_rfc_names() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures");
    let manifest: Manifest =
        toml::from_str(&std::fs::read_to_string(format!("{dir}/expected.toml")).unwrap()).unwrap();
    assert!(manifest.fixture.len() >= 50, "corpus incomplete");
    let node = start_node("127.0.31.1").await;
    let proxy = udp_addr(&node);
    let ua = UdpUa::bind("127.0.31.2").await;
    // mpart01 routes via <sip:127.0.0.1:5080>: the one loopback next hop in
    // the corpus. A socket there proves the proxy really forwarded it.
    let sink = tokio::net::UdpSocket::bind("127.0.0.1:5080")
        .await
        .expect("bind 127.0.0.1:5080 for mpart01");
    let mut failures = Vec::new();
    for f in &manifest.fixture {
        let bytes = std::fs::read(format!("{dir}/{}", f.file)).unwrap();
        ua.send_bytes(proxy, &bytes).await;
        let got = first_final(&ua, &bytes, proxy).await;
        let is_ack = bytes.starts_with(b"ACK ");
        let ok = match (f.outcome.as_str(), got) {
            ("reject", Some(s)) => Some(s) == f.code,
            ("accept", Some(s)) => ROUTING_OUTCOMES.contains(&s),
            ("accept", None) => is_ack || forwarded_to(&sink).await,
            ("drop", None) => true,
            _ => false,
        };
        if !ok {
            failures.push(format!(
                "{}: expected {} {:?}, got {got:?} ({})",
                f.file, f.outcome, f.code, f.why
            ));
        }
        // Drain late responses (e.g. a retransmitted final) before the next fixture.
        while ua.try_recv(Duration::from_millis(20)).await.is_some() {}
    }
    assert!(
        failures.is_empty(),
        "{} fixtures mishandled:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        node.stats().egress_refused.get() > 0,
        "foreign targets were refused by the allowlist"
    );
    node.shutdown().await;
}

/// The first final status the proxy sends back, skipping 100 Trying; `None`
/// when it stays silent. A non-2xx final to an INVITE is acknowledged as a
/// UAC would (RFC 3261 §17.1.1.3), or the proxy would keep retransmitting it.
async fn first_final(ua: &UdpUa, sent: &[u8], proxy: std::net::SocketAddr) -> Option<u16> {
    loop {
        let (msg, _) = ua.try_recv(Duration::from_millis(400)).await?;
        let Some(status) = msg.status().filter(|s| *s >= 200) else {
            continue;
        };
        if let Ok(req) = SipMessage::parse(switchyard_codec::Bytes::copy_from_slice(sent))
            && req.method() == Some(&switchyard_codec::Method::Invite)
        {
            ua.send_bytes(proxy, &switchyard_codec::build_ack_for_non2xx(&req, &msg))
                .await;
        }
        return Some(status);
    }
}

/// Whether the forwarded request reached the loopback next hop.
async fn forwarded_to(sink: &tokio::net::UdpSocket) -> bool {
    let mut buf = vec![0u8; 65_536];
    tokio::time::timeout(Duration::from_secs(1), sink.recv_from(&mut buf))
        .await
        .is_ok()
}

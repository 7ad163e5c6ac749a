//! The bundled `rate-limit` policy through a running proxy: a source that
//! sends more than its budget gets `503` with `Retry-After`, counted per
//! source address in the tenant's `kv` store, so another source is not
//! affected.

use switchyard::policy::wasm::FailureMode;
use switchyard_codec::{HeaderName, SipMessage};
use switchyard_tests::policy::{add_tenant, policy};
use switchyard_tests::ua::{UdpUa, ack, first_line, invite, register};
use switchyard_tests::{start_node_with, udp_addr};

/// 1 request/s averaged over 5 s windows: 5 initial requests per window;
/// 2 REGISTERs per minute.
const LIMITS: &str = r#"
requests_per_second = 1
window_ms = 5000
registers_per_minute = 2
"#;
const PER_WINDOW: usize = 5;

/// Sends an INVITE to nobody-registered `bob` and returns the final answer
/// (ACKed): 480 from default routing when allowed, 503 when limited.
async fn call(ua: &UdpUa, proxy: std::net::SocketAddr, id: &str) -> SipMessage {
    let text = invite("sip:bob@rl.test", "alice@rl.test", ua.addr, id);
    let answer = ua.request(proxy, &text, "the answer to INVITE").await;
    ua.send(proxy, &ack(&text, &answer)).await;
    answer
}

/// A 503 of the limiter: its reason and a Retry-After within the window.
fn assert_limited(answer: &SipMessage, window_secs: u32) {
    assert_eq!(
        (answer.status(), answer.reason()),
        (Some(503), Some("Rate Limited")),
        "{}",
        first_line(answer)
    );
    let retry_after: u32 = answer
        .header(HeaderName::RetryAfter)
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("503 without a numeric Retry-After: {answer:?}"));
    assert!(
        (1..=window_secs).contains(&retry_after),
        "Retry-After {retry_after}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_from_one_source_is_limited_and_another_source_is_not() {
    let node = start_node_with("127.0.58.1", |c| {
        let limiter = policy("builtin:rate-limit", FailureMode::FailClosed, LIMITS);
        add_tenant(c, "public", "rl.test", Some(limiter));
    })
    .await;
    let proxy = udp_addr(&node);
    let flood = UdpUa::bind("127.0.58.2").await;
    let other = UdpUa::bind("127.0.58.3").await;

    let burst = 3 * PER_WINDOW - 3;
    let mut answers = Vec::new();
    for i in 0..burst {
        answers.push(call(&flood, proxy, &format!("burst-{i}")).await);
    }
    let statuses: Vec<_> = answers.iter().map(|a| a.status().unwrap_or(0)).collect();
    // A window's first requests always pass (to default routing: nobody is
    // registered, 480). Fixed windows may restart once during the burst,
    // so at most 2 × PER_WINDOW pass in all.
    assert!(
        statuses[..PER_WINDOW].iter().all(|&s| s == 480),
        "the first {PER_WINDOW} requests are within the budget: {statuses:?}"
    );
    let limited: Vec<&SipMessage> = answers.iter().filter(|a| a.status() == Some(503)).collect();
    assert!(limited.len() >= burst - 2 * PER_WINDOW, "{statuses:?}");
    assert!(
        statuses.iter().all(|&s| s == 480 || s == 503),
        "{statuses:?}"
    );
    for answer in limited {
        assert_limited(answer, 5);
    }

    // Another source has its own budget.
    let answer = call(&other, proxy, "other-source").await;
    assert_eq!(answer.status(), Some(480), "{}", first_line(&answer));

    // REGISTERs are limited per source too (2 per minute).
    let mut codes = Vec::new();
    for i in 0..3 {
        let req = register("rl.test", "carol", flood.addr, &format!("reg-{i}"));
        let answer = flood.request(proxy, &req, "the answer to REGISTER").await;
        if answer.status() == Some(503) {
            assert_limited(&answer, 60);
        }
        codes.push(answer.status());
    }
    assert_eq!(codes, [Some(200), Some(200), Some(503)]);
    let req = register("rl.test", "dave", other.addr, "reg-other");
    let answer = other.request(proxy, &req, "the answer to REGISTER").await;
    assert_eq!(answer.status(), Some(200), "{}", first_line(&answer));
    node.shutdown().await;
}

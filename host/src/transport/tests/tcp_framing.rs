use std::time::Duration;

use switchyard_codec::FrameError;

use super::*;

async fn start() -> (Harness, SocketAddr) {
    let h = Harness::start(&["tcp:127.0.0.1:0"], config()).await;
    let addr = h.addr(Transport::Tcp);
    (h, addr)
}

async fn framing_error(h: &mut Harness) -> (crate::net::Source, Bytes, FrameError) {
    match h.event().await {
        InboundEvent::FramingError {
            source,
            partial,
            error,
        } => (source, partial, error),
        other => panic!("expected a framing error, got {other:?}"),
    }
}

#[tokio::test]
async fn two_messages_in_one_write_are_two_inbounds() {
    let (mut h, addr) = start().await;
    let mut ua = connect(addr).await;
    let (a, b) = (request("a", ""), request("b", "second"));
    write(&mut ua, format!("{a}{b}").as_bytes()).await;

    let first = h.message().await;
    assert_eq!(first.data, a.as_bytes());
    assert_eq!(first.source.transport, Transport::Tcp);
    assert_eq!(first.source.remote, ua.local_addr().unwrap());
    assert_eq!(first.source.local, addr);
    assert_eq!(h.message().await.data, b.as_bytes());
    assert_eq!(h.transports.stats().tcp_rx_messages, 2);
}

#[tokio::test]
async fn message_split_across_writes_is_reassembled() {
    let (mut h, addr) = start().await;
    let mut ua = connect(addr).await;
    let (a, b) = (request("a", ""), request("b", "split body"));
    let cut = b.len() / 2;
    write(&mut ua, format!("{a}{}", &b[..cut]).as_bytes()).await;
    // `a` delivered proves the first write was read; the rest of `b` is only
    // sent now, so `b` necessarily spans two reads.
    assert_eq!(h.message().await.data, a.as_bytes());
    write(&mut ua, &b.as_bytes()[cut..]).await;
    assert_eq!(h.message().await.data, b.as_bytes());
}

#[tokio::test]
async fn body_is_framed_by_content_length() {
    let (mut h, addr) = start().await;
    let mut ua = connect(addr).await;
    // A body that itself looks like a header end and a start line.
    let body = "v=0\r\n\r\nINVITE sip:x SIP/2.0\r\n\r\n";
    let (a, b) = (request("a", body), request("b", ""));
    write(&mut ua, format!("{a}{b}").as_bytes()).await;
    let first = h.message().await;
    assert_eq!(first.data, a.as_bytes());
    assert!(first.data.ends_with(body.as_bytes()));
    assert_eq!(h.message().await.data, b.as_bytes());
}

#[tokio::test]
async fn crlf_keepalive_is_answered_with_crlf() {
    let (mut h, addr) = start().await;
    let mut ua = connect(addr).await;
    write(&mut ua, b"\r\n\r\n").await;
    assert_eq!(read_n(&mut ua, 2).await, b"\r\n"); // RFC 5626 §3.5.1 pong
    // The connection stays usable and the ping never reached the handler.
    let msg = request("after-ping", "");
    write(&mut ua, msg.as_bytes()).await;
    assert_eq!(h.message().await.data, msg.as_bytes());
    assert_eq!(h.transports.stats().tcp_keepalives, 1);
}

#[tokio::test]
async fn lone_crlf_before_a_message_is_skipped_unanswered() {
    let (mut h, addr) = start().await;
    let mut ua = connect(addr).await;
    let msg = request("padded", "");
    write(&mut ua, format!("\r\n{msg}").as_bytes()).await;
    let inbound = h.message().await;
    assert_eq!(inbound.data, msg.as_bytes());
    // Had the CRLF been answered, that pong would be queued before this byte.
    h.transports
        .reply(&inbound.source, Bytes::from_static(b"X"))
        .await
        .unwrap();
    assert_eq!(read_n(&mut ua, 1).await, b"X");
    assert_eq!(h.transports.stats().tcp_keepalives, 0);
}

const NO_CONTENT_LENGTH: &str =
    "OPTIONS sip:p@127.0.0.1 SIP/2.0\r\nCall-ID: no-cl\r\nCSeq: 1 OPTIONS\r\n\r\n";

/// Missing Content-Length: the handler gets the bytes, its 400 goes out,
/// then the stream is closed (the UA's read returns 0).
async fn missing_content_length_case(on_framing_error: OnFramingError) {
    let cfg = TransportConfig {
        tcp_error_linger: Duration::from_secs(3600),
        ..config()
    };
    let mut h = Harness::start_with(&["tcp:127.0.0.1:0"], cfg, on_framing_error).await;
    let mut ua = connect(h.addr(Transport::Tcp)).await;
    write(&mut ua, NO_CONTENT_LENGTH.as_bytes()).await;

    let (source, partial, error) = framing_error(&mut h).await;
    assert_eq!(error, FrameError::MissingContentLength);
    assert_eq!(source.remote, ua.local_addr().unwrap());
    assert_eq!(partial, NO_CONTENT_LENGTH.as_bytes());
    // With an hour of linger, only the handler's close can end the stream.
    assert_eq!(read_until_closed(&mut ua).await, BAD_FRAMING);
    assert_eq!(h.transports.stats().tcp_framing_errors, 1);
}

#[tokio::test]
async fn missing_content_length_answered_from_a_task_then_closed() {
    missing_content_length_case(OnFramingError::ReplyAsync).await;
}

#[tokio::test]
async fn missing_content_length_answered_in_the_handler_then_closed() {
    missing_content_length_case(OnFramingError::ReplyInHandler).await;
}

#[tokio::test]
async fn unanswered_framing_error_is_closed_after_the_linger() {
    let cfg = TransportConfig {
        tcp_error_linger: Duration::from_millis(200),
        ..config()
    };
    let mut h = Harness::start_with(&["tcp:127.0.0.1:0"], cfg, OnFramingError::Ignore).await;
    let mut ua = connect(h.addr(Transport::Tcp)).await;
    write(&mut ua, NO_CONTENT_LENGTH.as_bytes()).await;
    framing_error(&mut h).await;
    assert!(read_until_closed(&mut ua).await.is_empty());
}

#[tokio::test]
async fn oversized_message_is_too_large_and_closed() {
    let cfg = TransportConfig {
        max_message_size: 1024,
        ..config()
    };
    let mut h = Harness::start(&["tcp:127.0.0.1:0"], cfg).await;
    let addr = h.addr(Transport::Tcp);

    // Declared body too large: refused from the headers alone.
    let mut ua = connect(addr).await;
    write(&mut ua, request("big", &"x".repeat(2000)).as_bytes()).await;
    assert_eq!(framing_error(&mut h).await.2, FrameError::TooLarge);
    assert_eq!(read_until_closed(&mut ua).await, BAD_FRAMING);

    // A header block that never ends: refused once it passes the limit.
    let mut ua = connect(addr).await;
    let endless = format!(
        "OPTIONS sip:p SIP/2.0\r\n{}",
        "X-Pad: yyyyyyyyyyyyyyyyyyyy\r\n".repeat(60)
    );
    write(&mut ua, endless.as_bytes()).await;
    assert_eq!(framing_error(&mut h).await.2, FrameError::TooLarge);
    assert_eq!(read_until_closed(&mut ua).await, BAD_FRAMING);
}

#[tokio::test]
async fn idle_connection_is_closed_after_idle_timeout() {
    let cfg = TransportConfig {
        tcp_idle_timeout: Duration::from_millis(200),
        ..config()
    };
    let h = Harness::start(&["tcp:127.0.0.1:0"], cfg).await;
    let mut ua = connect(h.addr(Transport::Tcp)).await;
    assert!(read_until_closed(&mut ua).await.is_empty());
    assert_eq!(h.transports.stats().tcp_timed_out, 1);
}

#[tokio::test]
async fn slowloris_partial_message_is_closed_after_message_timeout() {
    // Idle timeout far away: only the partial-message timer can close this.
    let cfg = TransportConfig {
        tcp_idle_timeout: Duration::from_secs(3600),
        tcp_message_timeout: Duration::from_millis(200),
        ..config()
    };
    let mut h = Harness::start(&["tcp:127.0.0.1:0"], cfg).await;
    let mut ua = connect(h.addr(Transport::Tcp)).await;
    let msg = request("slow", "");
    write(&mut ua, msg.as_bytes()).await; // a complete message is progress...
    assert_eq!(h.message().await.data, msg.as_bytes());
    write(&mut ua, &msg.as_bytes()[..40]).await; // ...a half one never completes
    assert!(read_until_closed(&mut ua).await.is_empty());
    assert_eq!(h.transports.stats().tcp_timed_out, 1);
    assert!(
        h.events.try_recv().is_err(),
        "the partial message must not be delivered"
    );
}

//! Transport tests over real sockets on 127.0.0.x (and [::1] when present).
//! Synchronisation is by awaiting events or socket reads, each bounded by
//! `within`, never by sleeping.

mod limits;
mod tcp_caps;
mod tcp_flows;
mod tcp_framing;
mod udp;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::{Inbound, InboundEvent, ListenerSpec, TransportConfig, Transports};
use crate::net::Transport;

/// What the test handler answers a framing error with, as the core would.
pub(super) const BAD_FRAMING: &[u8] = b"SIP/2.0 400 Bad Framing\r\nContent-Length: 0\r\n\r\n";

/// How the test handler answers a framing error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum OnFramingError {
    /// Like the proxy core: `reply` then `close` from a spawned task.
    ReplyAsync,
    /// `try_reply` and `close` inside the handler call.
    ReplyInHandler,
    /// Leave the flow to the transport's linger timeout.
    Ignore,
}

/// Transports bound for a test, with every inbound event recorded in order.
pub(super) struct Harness {
    pub transports: Arc<Transports>,
    pub events: mpsc::UnboundedReceiver<InboundEvent>,
}

impl Harness {
    pub async fn start(specs: &[&str], cfg: TransportConfig) -> Harness {
        Self::start_with(specs, cfg, OnFramingError::ReplyAsync).await
    }

    pub async fn start_with(
        specs: &[&str],
        cfg: TransportConfig,
        on_framing_error: OnFramingError,
    ) -> Harness {
        let (tx, events) = mpsc::unbounded_channel();
        let me: Arc<OnceLock<Weak<Transports>>> = Arc::default();
        let handler = {
            let me = me.clone();
            move |event: InboundEvent| {
                if let InboundEvent::FramingError { source, .. } = &event
                    && let Some(transports) = me.get().and_then(Weak::upgrade)
                {
                    let (source, answer) = (*source, Bytes::from_static(BAD_FRAMING));
                    match on_framing_error {
                        OnFramingError::ReplyAsync => {
                            tokio::spawn(async move {
                                transports.reply(&source, answer).await.unwrap();
                                transports.close(&source);
                            });
                        }
                        OnFramingError::ReplyInHandler => {
                            transports.try_reply(&source, answer).unwrap();
                            transports.close(&source);
                        }
                        OnFramingError::Ignore => {}
                    }
                }
                let _ = tx.send(event);
            }
        };
        let specs: Vec<ListenerSpec> = specs.iter().map(|s| s.parse().unwrap()).collect();
        let transports = Transports::bind(&specs, cfg, Arc::new(handler))
            .await
            .unwrap();
        me.set(Arc::downgrade(&transports)).unwrap();
        Harness { transports, events }
    }

    /// The address of the first listener of `transport`.
    pub fn addr(&self, transport: Transport) -> SocketAddr {
        self.transports
            .local_addrs()
            .into_iter()
            .find(|(t, _)| *t == transport)
            .map(|(_, a)| a)
            .expect("no such listener")
    }

    pub async fn event(&mut self) -> InboundEvent {
        within(self.events.recv()).await.expect("handler dropped")
    }

    pub async fn message(&mut self) -> Inbound {
        match self.event().await {
            InboundEvent::Message(inbound) => inbound,
            other => panic!("expected a message, got {other:?}"),
        }
    }
}

pub(super) fn config() -> TransportConfig {
    TransportConfig {
        udp_sockets_per_listener: 2,
        ..TransportConfig::default()
    }
}

/// Bounds every wait in the tests.
pub(super) async fn within<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(5), f)
        .await
        .expect("timed out waiting")
}

/// A small valid request with a correct Content-Length.
pub(super) fn request(call_id: &str, body: &str) -> String {
    format!(
        "MESSAGE sip:bob@127.0.0.1 SIP/2.0\r\n\
         Via: SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bK-{call_id}\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 MESSAGE\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// Reads exactly `n` bytes from a peer socket.
pub(super) async fn read_n(stream: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0; n];
    within(stream.read_exact(&mut buf)).await.unwrap();
    buf
}

/// Reads until the transport closes the connection (read returns 0).
pub(super) async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut buf = Vec::new();
    within(stream.read_to_end(&mut buf)).await.unwrap();
    buf
}

pub(super) async fn connect(addr: SocketAddr) -> TcpStream {
    within(TcpStream::connect(addr)).await.unwrap()
}

pub(super) async fn write(stream: &mut TcpStream, data: &[u8]) {
    stream.write_all(data).await.unwrap();
}

//! One connection, whatever runs over it (TCP, TLS, WebSocket): its entry in
//! the connection table and its reader and writer tasks. The reader hands
//! complete SIP messages to the handler; the writer owns the write side and
//! drains an mpsc queue, so no lock is ever held across a socket write.
//!
//! What differs per transport is behind two small traits: [`Incoming`]
//! (bytes to frame, or whole WebSocket messages) and [`MessageSink`].

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::Poll;

use bytes::{Buf, Bytes, BytesMut};
use switchyard_codec::{FrameError, Framing, frame};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until, timeout};
use tracing::{Instrument, debug, trace};

use super::conn_table::{Conn, Outgoing};
use super::signal::{CloseSignal, ShutdownToken};
use super::slots::Slot;
use super::stats::{add, bump};
use super::{Inbound, InboundEvent, Shared};
use crate::net::{Source, Transport};

/// RFC 5626 §3.5.1: a CRLFCRLF ping is answered with a single CRLF pong.
const PING: &[u8] = b"\r\n\r\n";
const PONG: &[u8] = b"\r\n";
/// The most one read of a byte stream takes (a TLS record's plaintext).
const READ_CHUNK: usize = 16 * 1024;

/// What one read gave.
pub(super) enum Read {
    /// More bytes of a stream were appended to the buffer.
    Bytes(usize),
    /// One whole message (a WebSocket message: RFC 7118 §5, one SIP
    /// message per frame, no framing needed).
    Message(Bytes),
    Eof,
}

/// The read side of a connection.
pub(super) trait Incoming: Send + 'static {
    fn next(&mut self, buf: &mut BytesMut) -> impl Future<Output = io::Result<Read>> + Send;
}

/// The write side of a connection.
pub(super) trait MessageSink: Send + 'static {
    fn send(&mut self, data: Bytes) -> impl Future<Output = io::Result<()>> + Send;
    /// Ends the stream cleanly (FIN, TLS close_notify, WebSocket close).
    fn finish(&mut self) -> impl Future<Output = ()> + Send;
}

/// A byte stream's read half (TCP, TLS).
pub(super) struct ByteReader<R>(pub R);

thread_local! {
    /// Where every byte stream of a worker thread reads into. A read
    /// borrows it only for one `poll_read`, never across an await, so an
    /// idle connection holds no read buffer of its own: only a partial
    /// message is kept, in the connection's `buf`.
    static SCRATCH: std::cell::RefCell<Box<[u8]>> =
        std::cell::RefCell::new(vec![0; READ_CHUNK].into_boxed_slice());
}

impl<R: AsyncRead + Unpin + Send + 'static> Incoming for ByteReader<R> {
    async fn next(&mut self, buf: &mut BytesMut) -> io::Result<Read> {
        std::future::poll_fn(|cx| {
            SCRATCH.with_borrow_mut(|scratch| {
                let mut read = ReadBuf::new(scratch);
                match std::pin::Pin::new(&mut self.0).poll_read(cx, &mut read) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                    Poll::Ready(Ok(())) if read.filled().is_empty() => Poll::Ready(Ok(Read::Eof)),
                    Poll::Ready(Ok(())) => {
                        buf.extend_from_slice(read.filled());
                        Poll::Ready(Ok(Read::Bytes(read.filled().len())))
                    }
                }
            })
        })
        .await
    }
}

/// A byte stream's write half.
pub(super) struct ByteWriter<W>(pub W);

impl<W: AsyncWrite + Unpin + Send + 'static> MessageSink for ByteWriter<W> {
    async fn send(&mut self, data: Bytes) -> io::Result<()> {
        self.0.write_all(&data).await?;
        // TLS buffers inside; a plain socket makes this a no-op.
        self.0.flush().await
    }

    async fn finish(&mut self) {
        let _ = self.0.shutdown().await;
    }
}

/// A connected socket's two ends, with Nagle off: SIP messages are written
/// whole, and Nagle would only delay them.
pub(super) fn ends(stream: &tokio::net::TcpStream) -> io::Result<(SocketAddr, SocketAddr)> {
    stream.set_nodelay(true)?;
    Ok((stream.peer_addr()?, stream.local_addr()?))
}

/// Registers a connection in the table and starts its two tasks. Both hold
/// the slot: it is given back when the socket is, after the later ends.
#[allow(clippy::too_many_arguments)]
pub(super) fn spawn(
    shared: &Arc<Shared>,
    transport: Transport,
    remote: SocketAddr,
    local: SocketAddr,
    incoming: impl Incoming,
    sink: impl MessageSink,
    slot: Slot,
    token: &ShutdownToken,
) -> Conn {
    let (tx, rx) = mpsc::channel(shared.cfg.tcp_send_queue);
    let conn = Conn {
        id: shared.conns.next_id(),
        transport,
        remote,
        local,
        tx,
        close: Arc::new(CloseSignal::default()),
        draining: Arc::default(),
    };
    shared.conns.insert(conn.clone());
    let direction = slot.direction();
    let slot = Arc::new(slot);
    let span = tracing::debug_span!("conn", id = conn.id, %transport, %remote, %local, direction);
    debug!(parent: &span, "connection open");
    tokio::spawn(
        write_loop(
            shared.clone(),
            sink,
            rx,
            conn.close.clone(),
            remote,
            token.clone(),
            slot.clone(),
        )
        .instrument(span.clone()),
    );
    tokio::spawn(
        read_loop(shared.clone(), incoming, conn.clone(), token.clone(), slot).instrument(span),
    );
    conn
}

#[derive(Debug)]
enum CloseReason {
    Local,
    Shutdown,
    PeerClosed,
    Idle,
    SlowMessage,
    Framing,
    Io(io::Error),
}

async fn read_loop(
    shared: Arc<Shared>,
    mut incoming: impl Incoming,
    conn: Conn,
    mut token: ShutdownToken,
    _slot: Arc<Slot>,
) {
    let cfg = &shared.cfg;
    let source = conn.source();
    let mut buf = BytesMut::new();
    // Progress means a complete message or keep-alive; bytes alone are not, or
    // a slowloris trickling one byte a second would never time out.
    let mut last_progress = Instant::now();
    let mut partial_since: Option<Instant> = None;
    let why = loop {
        let idle_deadline = last_progress + cfg.tcp_idle_timeout;
        let (deadline, timeout_reason) = match partial_since {
            Some(t) if t + cfg.tcp_message_timeout < idle_deadline => {
                (t + cfg.tcp_message_timeout, CloseReason::SlowMessage)
            }
            _ => (idle_deadline, CloseReason::Idle),
        };
        let read = tokio::select! {
            biased;
            _ = conn.close.wait() => break CloseReason::Local,
            _ = token.wait() => break CloseReason::Shutdown,
            _ = sleep_until(deadline) => break timeout_reason,
            r = incoming.next(&mut buf) => r,
        };
        let now = Instant::now();
        match read {
            Ok(Read::Eof) => break CloseReason::PeerClosed,
            Ok(Read::Message(data)) => {
                add(&shared.stats.tcp_rx_bytes, data.len() as u64);
                last_progress = now;
                deliver_whole(&shared, &conn, &source, data);
                continue;
            }
            Ok(Read::Bytes(n)) => add(&shared.stats.tcp_rx_bytes, n as u64),
            Err(e) => break CloseReason::Io(e),
        }
        if drain_frames(&shared, &conn, &source, &mut buf, &mut last_progress, now).is_err() {
            break CloseReason::Framing;
        }
        // When the current partial message started: leftovers after a complete
        // frame start a new message now.
        partial_since = if buf.is_empty() {
            // An idle connection keeps no read buffer.
            buf = BytesMut::new();
            None
        } else if last_progress == now {
            Some(now)
        } else {
            partial_since.or(Some(now))
        };
    };
    match &why {
        CloseReason::Idle | CloseReason::SlowMessage => bump(&shared.stats.tcp_timed_out),
        CloseReason::Io(error) => {
            bump(&shared.stats.recv_errors);
            debug!(%error, "read failed");
        }
        _ => {}
    }
    if matches!(why, CloseReason::Framing) {
        // The stream position is lost, so stop reading, but keep the flow
        // writable: the core answers 400/513 from its own task and then calls
        // `close`. The linger bounds how long a silent core keeps it open.
        conn.draining.store(true, Ordering::Release);
        tokio::select! {
            _ = conn.close.wait() => {}
            _ = token.wait() => {}
            _ = tokio::time::sleep(cfg.tcp_error_linger) => {}
        }
    }
    debug!(reason = ?why, "connection closing");
    // Out of the table first, so no new message is queued to a dead flow; the
    // writer still flushes what is queued (e.g. a 400 for a framing error).
    shared.conns.remove(conn.remote, conn.id);
    conn.close.close();
}

/// A whole message (WebSocket): a keep-alive, or one SIP message.
fn deliver_whole(shared: &Shared, conn: &Conn, source: &Source, data: Bytes) {
    if data.iter().all(|b| matches!(b, b'\r' | b'\n')) {
        if data.as_ref() == PING {
            bump(&shared.stats.tcp_keepalives);
            let _ = conn.tx.try_send(Box::new(Bytes::from_static(PONG)));
        }
        return;
    }
    if data.len() > shared.cfg.max_message_size {
        bump(&shared.stats.tcp_framing_errors);
        return;
    }
    deliver(shared, source, data);
}

fn deliver(shared: &Shared, source: &Source, data: Bytes) {
    if !shared.admit(source.remote.ip()) {
        return;
    }
    bump(&shared.stats.tcp_rx_messages);
    trace!(len = data.len(), "stream message");
    let inbound = Inbound {
        data,
        source: *source,
    };
    shared.handler.on_inbound(InboundEvent::Message(inbound));
}

/// Hands every complete message in `buf` to the handler. On a framing error the
/// handler gets the unframeable bytes and the error is returned (the caller
/// closes: the stream position is lost, so nothing after it can be trusted).
fn drain_frames(
    shared: &Shared,
    conn: &Conn,
    source: &Source,
    buf: &mut BytesMut,
    last_progress: &mut Instant,
    now: Instant,
) -> Result<(), FrameError> {
    let max = shared.cfg.max_message_size;
    loop {
        let framing = match frame(buf, max) {
            // Defensive: never buffer more than one maximal message.
            Framing::Incomplete if buf.len() > max => Framing::Error(FrameError::TooLarge),
            other => other,
        };
        match framing {
            Framing::Incomplete => return Ok(()),
            Framing::KeepAlive(n) => {
                buf.advance(n);
                *last_progress = now;
                // Only a CRLFCRLF ping is answered. A lone CRLF is a pong or
                // padding before a message (RFC 3261 §7.5); answering it could
                // start an endless ping-pong with another proxy.
                if n == PING.len() {
                    bump(&shared.stats.tcp_keepalives);
                    // A full queue means plenty of traffic is flowing anyway.
                    let _ = conn.tx.try_send(Box::new(Bytes::from_static(PONG)));
                }
            }
            Framing::Complete(n) => {
                *last_progress = now;
                // Copy out (see the UDP receive loop for why) and keep the buffer.
                let data = Bytes::copy_from_slice(&buf[..n]);
                buf.advance(n);
                deliver(shared, source, data);
            }
            Framing::Error(error) => {
                bump(&shared.stats.tcp_framing_errors);
                debug!(%error, "framing error");
                let partial = buf.split().freeze();
                shared.handler.on_inbound(InboundEvent::FramingError {
                    source: *source,
                    partial,
                    error,
                });
                return Err(error);
            }
        }
    }
}

async fn write_loop(
    shared: Arc<Shared>,
    mut sink: impl MessageSink,
    mut rx: mpsc::Receiver<Outgoing>,
    close: Arc<CloseSignal>,
    remote: SocketAddr,
    // Not awaited: the writer stops via `close` (the reader closes on shutdown)
    // so queued bytes are flushed; holding it lets `shutdown` wait for the flush.
    _token: ShutdownToken,
    _slot: Arc<Slot>,
) {
    let write_timeout = shared.cfg.tcp_write_timeout;
    let stats = &shared.stats;
    let mut write = async |data: Bytes| -> bool {
        let len = data.len() as u64;
        let ok = matches!(timeout(write_timeout, sink.send(data)).await, Ok(Ok(())));
        if ok {
            bump(&stats.tcp_tx_messages);
            add(&stats.tcp_tx_bytes, len);
        } else {
            bump(&stats.send_errors);
            debug!(%remote, "write failed or timed out");
        }
        ok
    };
    loop {
        tokio::select! {
            // Queue first: whatever was queued before a close still goes out.
            biased;
            msg = rx.recv() => {
                // None: every sender is gone, nothing more can be queued.
                let Some(data) = msg else { break };
                if !write(*data).await {
                    break;
                }
            }
            _ = close.wait() => {
                while let Ok(data) = rx.try_recv() {
                    if !write(*data).await {
                        break;
                    }
                }
                break;
            }
        }
    }
    close.close();
    // From here a send fails (and `reply` reconnects) rather than queueing
    // into a connection that will never write it.
    rx.close();
    // FIN after the last queued byte; the socket is released when both halves drop.
    let _ = timeout(write_timeout, sink.finish()).await;
}

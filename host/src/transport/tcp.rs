//! TCP: listeners and the per-connection reader and writer tasks (outbound
//! connects are in `connector.rs`). The reader frames the stream with
//! `switchyard_codec::frame`; the writer owns the write half and drains an
//! mpsc queue, so no lock is ever held across a socket write.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::{Buf, Bytes, BytesMut};
use socket2::{Domain, Protocol, Socket, Type};
use switchyard_codec::{FrameError, Framing, frame};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until, timeout};
use tracing::{Instrument, debug, trace, warn};

use super::conn_table::Conn;
use super::signal::{CloseSignal, ShutdownToken};
use super::slots::Slot;
use super::stats::{add, bump};
use super::{Inbound, InboundEvent, Shared, TransportError};
use crate::net::{Source, Transport};

/// RFC 5626 §3.5.1: a CRLFCRLF ping is answered with a single CRLF pong.
const PING: &[u8] = b"\r\n\r\n";
const PONG: &[u8] = b"\r\n";
const READ_CHUNK: usize = 16 * 1024;

/// Returns the listener and its actual address (port 0 resolved).
pub(super) fn bind_listener(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), TransportError> {
    let listen = || -> io::Result<(TcpListener, SocketAddr)> {
        let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        if addr.is_ipv6() {
            sock.set_only_v6(true)?;
        }
        // A restarted proxy must be able to listen while old connections sit in
        // TIME_WAIT. (No SO_REUSEPORT: one accept loop is plenty.)
        sock.set_reuse_address(true)?;
        sock.set_nonblocking(true)?;
        sock.bind(&addr.into())?;
        sock.listen(1024)?;
        let listener = TcpListener::from_std(sock.into())?;
        let local = listener.local_addr()?;
        Ok((listener, local))
    };
    listen().map_err(|source| TransportError::Bind {
        transport: Transport::Tcp,
        addr,
        source,
    })
}

pub(super) async fn accept_loop(
    shared: Arc<Shared>,
    listener: TcpListener,
    mut token: ShutdownToken,
) {
    loop {
        let accepted = tokio::select! {
            biased;
            _ = token.wait() => break,
            r = listener.accept() => r,
        };
        match accepted {
            Ok((stream, remote)) => {
                // A connection takes a token too: each costs two tasks.
                if !shared.admit(remote.ip()) {
                    continue;
                }
                let slot = match shared.slots.inbound(remote.ip()) {
                    Ok(slot) => slot,
                    Err(why) => {
                        shared.count_refused(why);
                        debug!(%remote, ?why, "no inbound TCP slot, closing at once");
                        // Closed unread, with a RST rather than a FIN: a
                        // connection flood then leaves no TIME_WAIT here.
                        let _ = stream.set_zero_linger();
                        continue;
                    }
                };
                bump(&shared.stats.tcp_accepted);
                if let Err(e) = spawn_connection(&shared, stream, slot, &token) {
                    debug!(%remote, error = %e, "accepted connection unusable");
                }
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning on the error.
                bump(&shared.stats.recv_errors);
                warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

/// Registers a connected stream in the table and starts its two tasks. Both
/// hold the slot: it is given back when the socket is, after the later ends.
pub(super) fn spawn_connection(
    shared: &Arc<Shared>,
    stream: TcpStream,
    slot: Slot,
    token: &ShutdownToken,
) -> io::Result<Conn> {
    let remote = stream.peer_addr()?;
    let local = stream.local_addr()?;
    // SIP messages are written whole; Nagle would only delay them.
    stream.set_nodelay(true)?;
    let (rd, wr) = stream.into_split();
    let (tx, rx) = mpsc::channel(shared.cfg.tcp_send_queue);
    let conn = Conn {
        id: shared.conns.next_id(),
        remote,
        local,
        tx,
        close: Arc::new(CloseSignal::default()),
        draining: Arc::default(),
    };
    shared.conns.insert(conn.clone());
    let direction = slot.direction();
    let slot = Arc::new(slot);
    let span = tracing::debug_span!("tcp", id = conn.id, %remote, %local, direction);
    debug!(parent: &span, "connection open");
    tokio::spawn(
        write_loop(
            shared.clone(),
            wr,
            rx,
            conn.close.clone(),
            remote,
            token.clone(),
            slot.clone(),
        )
        .instrument(span.clone()),
    );
    tokio::spawn(read_loop(shared.clone(), rd, conn.clone(), token.clone(), slot).instrument(span));
    Ok(conn)
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
    mut rd: OwnedReadHalf,
    conn: Conn,
    mut token: ShutdownToken,
    _slot: Arc<Slot>,
) {
    let cfg = &shared.cfg;
    let source = Source {
        transport: Transport::Tcp,
        remote: conn.remote,
        local: conn.local,
    };
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
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
        buf.reserve(READ_CHUNK);
        let read = tokio::select! {
            biased;
            _ = conn.close.wait() => break CloseReason::Local,
            _ = token.wait() => break CloseReason::Shutdown,
            _ = sleep_until(deadline) => break timeout_reason,
            r = rd.read_buf(&mut buf) => r,
        };
        match read {
            Ok(0) => break CloseReason::PeerClosed,
            Ok(n) => add(&shared.stats.tcp_rx_bytes, n as u64),
            Err(e) => break CloseReason::Io(e),
        }
        let now = Instant::now();
        if drain_frames(&shared, &conn, &source, &mut buf, &mut last_progress, now).is_err() {
            break CloseReason::Framing;
        }
        // When the current partial message started: leftovers after a complete
        // frame start a new message now.
        partial_since = if buf.is_empty() {
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
            debug!(%error, "tcp read failed");
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
                    let _ = conn.tx.try_send(Bytes::from_static(PONG));
                }
            }
            Framing::Complete(n) => {
                *last_progress = now;
                if !shared.admit(source.remote.ip()) {
                    buf.advance(n);
                    continue;
                }
                // Copy out (see the UDP receive loop for why) and keep the buffer.
                let data = Bytes::copy_from_slice(&buf[..n]);
                buf.advance(n);
                bump(&shared.stats.tcp_rx_messages);
                trace!(len = n, "tcp message");
                let inbound = Inbound {
                    data,
                    source: *source,
                };
                shared.handler.on_inbound(InboundEvent::Message(inbound));
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
    mut wr: OwnedWriteHalf,
    mut rx: mpsc::Receiver<Bytes>,
    close: Arc<CloseSignal>,
    remote: SocketAddr,
    // Not awaited: the writer stops via `close` (the reader closes on shutdown)
    // so queued bytes are flushed; holding it lets `shutdown` wait for the flush.
    _token: ShutdownToken,
    _slot: Arc<Slot>,
) {
    let write_timeout = shared.cfg.tcp_write_timeout;
    let write = async |wr: &mut OwnedWriteHalf, data: Bytes| -> bool {
        let ok = matches!(
            timeout(write_timeout, wr.write_all(&data)).await,
            Ok(Ok(()))
        );
        if ok {
            bump(&shared.stats.tcp_tx_messages);
            add(&shared.stats.tcp_tx_bytes, data.len() as u64);
        } else {
            bump(&shared.stats.send_errors);
            debug!(%remote, "tcp write failed or timed out");
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
                if !write(&mut wr, data).await {
                    break;
                }
            }
            _ = close.wait() => {
                while let Ok(data) = rx.try_recv() {
                    if !write(&mut wr, data).await {
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
    let _ = timeout(write_timeout, wr.shutdown()).await;
}

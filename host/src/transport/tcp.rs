//! Listening sockets of the connection transports (TCP, TLS, WS, WSS) and
//! what happens to an accepted socket: admission, a slot, then the TLS and
//! WebSocket handshakes under one deadline, before its tasks start
//! (`stream.rs`). Outbound connects are in `connector.rs`.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;
use tokio_rustls::TlsAcceptor;
use tracing::{Instrument, debug, warn};

use super::conn_table::Conn;
use super::signal::ShutdownToken;
use super::slots::Slot;
use super::stats::bump;
use super::stream::{self, ByteReader, ByteWriter};
use super::{Shared, TransportError, ws};
use crate::net::Transport;

/// What a listening socket speaks once a connection is accepted.
pub(super) struct Listener {
    pub socket: TcpListener,
    pub transport: Transport,
    /// For `tls` and `wss`.
    pub tls: Option<TlsAcceptor>,
}

/// Returns the listener and its actual address (port 0 resolved).
pub(super) fn bind_listener(
    transport: Transport,
    addr: SocketAddr,
) -> Result<(TcpListener, SocketAddr), TransportError> {
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
        transport,
        addr,
        source,
    })
}

pub(super) async fn accept_loop(shared: Arc<Shared>, listener: Listener, mut token: ShutdownToken) {
    loop {
        let accepted = tokio::select! {
            biased;
            _ = token.wait() => break,
            r = listener.socket.accept() => r,
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
                if listener.transport == Transport::Tcp {
                    if let Err(e) = spawn_tcp(&shared, stream, slot, &token) {
                        debug!(%remote, error = %e, "accepted connection unusable");
                    }
                } else {
                    // Handshakes take round trips: never in the accept loop.
                    let (shared, token) = (shared.clone(), token.clone());
                    let (transport, tls) = (listener.transport, listener.tls.clone());
                    tokio::spawn(
                        async move {
                            if let Err(e) =
                                upgrade(&shared, transport, tls, stream, slot, &token).await
                            {
                                bump(&shared.stats.handshake_failures);
                                debug!(%remote, %transport, error = %e, "handshake failed");
                            }
                        }
                        .in_current_span(),
                    );
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

/// Starts a plain TCP connection's tasks.
pub(super) fn spawn_tcp(
    shared: &Arc<Shared>,
    stream: TcpStream,
    slot: Slot,
    token: &ShutdownToken,
) -> io::Result<Conn> {
    let (remote, local) = stream::ends(&stream)?;
    let (rd, wr) = stream.into_split();
    Ok(stream::spawn(
        shared,
        Transport::Tcp,
        remote,
        local,
        ByteReader(rd),
        ByteWriter(wr),
        slot,
        token,
    ))
}

/// TLS, then the WebSocket upgrade, as the listener's transport asks, all
/// within `tls.handshake_timeout_ms`; then the connection's tasks start.
async fn upgrade(
    shared: &Arc<Shared>,
    transport: Transport,
    tls: Option<TlsAcceptor>,
    stream: TcpStream,
    slot: Slot,
    token: &ShutdownToken,
) -> io::Result<Conn> {
    let (remote, local) = stream::ends(&stream)?;
    let limit = shared.cfg.tls.handshake_timeout();
    let max = shared.cfg.max_message_size;
    let wscfg = &shared.cfg.websocket;
    let timed_out = |_| io::Error::from(io::ErrorKind::TimedOut);
    let conn = match (transport, tls) {
        (Transport::Tls, Some(acceptor)) => {
            let tls = timeout(limit, acceptor.accept(stream))
                .await
                .map_err(timed_out)??;
            let (rd, wr) = tokio::io::split(tls);
            let (rd, wr) = (ByteReader(rd), ByteWriter(wr));
            stream::spawn(shared, transport, remote, local, rd, wr, slot, token)
        }
        (Transport::Wss, Some(acceptor)) => {
            let upgraded = timeout(limit, async {
                let tls = acceptor.accept(stream).await?;
                ws::accept(tls, wscfg, max).await
            });
            let (rd, wr) = ws::split(upgraded.await.map_err(timed_out)??);
            stream::spawn(shared, transport, remote, local, rd, wr, slot, token)
        }
        (Transport::Ws, _) => {
            let upgraded = timeout(limit, ws::accept(stream, wscfg, max));
            let (rd, wr) = ws::split(upgraded.await.map_err(timed_out)??);
            stream::spawn(shared, transport, remote, local, rd, wr, slot, token)
        }
        _ => return Err(io::Error::other("listener without its TLS acceptor")),
    };
    Ok(conn)
}

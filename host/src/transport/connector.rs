//! Outbound connects (TCP, and TLS on top): one in flight per transport and
//! destination, each holding an outbound slot, so that the inbound pool
//! never decides whether the proxy can reach its next hops. WebSocket is
//! never connected out: its clients are reached over their own connection.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::net::TcpSocket;
use tokio::sync::watch;
use tokio::time::timeout;
use tracing::debug;

use super::conn_table::Conn;
use super::signal::ShutdownToken;
use super::slots::Slot;
use super::stats::bump;
use super::stream::{self, ByteReader, ByteWriter};
use super::tcp::spawn_tcp;
use super::{Shared, TransportError};
use crate::net::Transport;

/// One in-flight connect per destination: concurrent sends to a new peer share
/// it instead of each opening a connection (and taking a slot).
type ConnectOutcome = Option<Result<Conn, ConnectFailure>>;

/// A failed connect in a form every sender that shared it can turn into
/// its own error.
#[derive(Debug, Clone, Copy)]
enum ConnectFailure {
    Io(io::ErrorKind),
    /// No outbound slot: nothing was attempted.
    NoSlot,
}

impl ConnectFailure {
    fn error(self, dest: SocketAddr) -> TransportError {
        match self {
            ConnectFailure::Io(kind) => connect_err(dest, kind.into()),
            ConnectFailure::NoSlot => TransportError::OutboundFull { dest },
        }
    }
}

#[derive(Debug, Default)]
pub(super) struct Connector {
    in_flight: Mutex<HashMap<(Transport, SocketAddr), watch::Receiver<ConnectOutcome>>>,
}

impl Connector {
    /// Connects to `dest`; for TLS, `name` is what its certificate must
    /// name (see [`super::tls::server_name`]).
    pub async fn connect(
        &self,
        shared: &Arc<Shared>,
        transport: Transport,
        dest: SocketAddr,
        name: Option<&str>,
        local_ip: Option<std::net::IpAddr>,
        token: &ShutdownToken,
    ) -> Result<Conn, TransportError> {
        let key = (transport, dest);
        let leader = {
            let mut in_flight = self.in_flight.lock();
            match in_flight.get(&key) {
                Some(rx) => Err(rx.clone()),
                None => {
                    let (tx, rx) = watch::channel(None);
                    in_flight.insert(key, rx);
                    Ok(tx)
                }
            }
        };
        let tx = match leader {
            Ok(tx) => tx,
            Err(mut rx) => {
                let outcome = rx.wait_for(Option::is_some).await.map(|v| v.clone());
                return match outcome {
                    Ok(Some(Ok(conn))) => Ok(conn),
                    Ok(Some(Err(failure))) => Err(failure.error(dest)),
                    // The leader was cancelled mid-connect.
                    _ => Err(connect_err(dest, io::ErrorKind::Interrupted.into())),
                };
            }
        };
        // Removes the in-flight entry even if this future is dropped mid-connect.
        let _entry = InFlightEntry {
            connector: self,
            key,
        };
        let slot = match shared.slots.outbound() {
            Ok(slot) => slot,
            Err(why) => {
                shared.count_refused(why);
                debug!(%dest, "no outbound TCP slot, not connecting");
                tx.send_replace(Some(Err(ConnectFailure::NoSlot)));
                return Err(ConnectFailure::NoSlot.error(dest));
            }
        };
        let result = open(shared, transport, dest, name, local_ip, slot, token).await;
        tx.send_replace(Some(
            result
                .as_ref()
                .map(Conn::clone)
                .map_err(|e| ConnectFailure::Io(e.kind())),
        ));
        match result {
            Ok(conn) => {
                bump(&shared.stats.tcp_connected);
                Ok(conn)
            }
            Err(e) => {
                bump(&shared.stats.tcp_connect_failures);
                debug!(%dest, %transport, error = %e, "connect failed");
                Err(connect_err(dest, e))
            }
        }
    }
}

struct InFlightEntry<'a> {
    connector: &'a Connector,
    key: (Transport, SocketAddr),
}

impl Drop for InFlightEntry<'_> {
    fn drop(&mut self) {
        self.connector.in_flight.lock().remove(&self.key);
    }
}

fn connect_err(dest: SocketAddr, source: io::Error) -> TransportError {
    TransportError::Connect { dest, source }
}

async fn open(
    shared: &Arc<Shared>,
    transport: Transport,
    dest: SocketAddr,
    name: Option<&str>,
    local_ip: Option<std::net::IpAddr>,
    slot: Slot,
    token: &ShutdownToken,
) -> io::Result<Conn> {
    if transport.is_websocket() || transport == Transport::Udp {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "WebSocket clients are reached over their own connection only",
        ));
    }
    let sock = if dest.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(ip) = local_ip {
        // Leave from the listener's address on a multi-homed host.
        sock.bind(SocketAddr::new(ip, 0))?;
    }
    let stream = timeout(shared.cfg.tcp_connect_timeout, sock.connect(dest))
        .await
        .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
    if transport == Transport::Tcp {
        return spawn_tcp(shared, stream, slot, token);
    }
    let connector = shared.tls.connector()?;
    let (_, local) = stream::ends(&stream)?;
    let server = super::tls::server_name(name, dest);
    let tls = timeout(
        shared.cfg.tls.handshake_timeout(),
        connector.connect(server, stream),
    )
    .await
    .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
    let (rd, wr) = tokio::io::split(tls);
    Ok(stream::spawn(
        shared,
        transport,
        dest,
        local,
        ByteReader(rd),
        ByteWriter(wr),
        slot,
        token,
    ))
}

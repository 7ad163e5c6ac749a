//! UDP listeners: N sockets per address sharing the port with SO_REUSEPORT,
//! and on each socket one receive task per runtime worker.
//!
//! The handler may handle a datagram on the receive task itself (the node
//! does, when nothing has to be waited for), so every socket has as many
//! readers as the runtime has workers: the kernel hashes one source (a
//! trunk, an SBC, SIPp) to one SO_REUSEPORT socket, and with a single
//! reader its datagrams would be handled on one core. Like Kamailio's UDP
//! workers sharing one socket, whichever reader is free takes the next one.
//! A datagram wakes every reader waiting on its socket, and all but one
//! find nothing to read, so on a machine with many cores a socket gets
//! [`MAX_READERS_PER_SOCKET`]: one source is then handled on up to that
//! many cores, and the other sockets serve the other sources.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use bytes::Bytes;
use socket2::{Domain, Protocol, Socket, Type};
use switchyard_codec::FrameError;
use tokio::net::UdpSocket;
use tracing::{Instrument, debug, trace, warn};

use super::signal::ShutdownToken;
use super::stats::{add, bump};
use super::{Inbound, InboundEvent, Shared, TransportError};
use crate::net::{Source, Transport};

/// The most receive tasks one socket gets, whatever the number of workers.
pub(super) const MAX_READERS_PER_SOCKET: usize = 4;

/// One UDP listener address and the sockets bound to it.
#[derive(Debug)]
pub(super) struct UdpListener {
    pub local: SocketAddr,
    sockets: Vec<(Arc<UdpSocket>, Arc<AtomicU64>)>,
    /// Round-robin cursor for sends; any socket of the group has the same
    /// source address, so the choice only spreads the send-side locking.
    next: AtomicUsize,
}

impl UdpListener {
    /// Binds `count` sockets to `addr` (port 0: a free port, the same for all).
    pub fn bind(
        addr: SocketAddr,
        count: usize,
        recv_buffer: usize,
    ) -> Result<Self, TransportError> {
        let bind_err = |source| TransportError::Bind {
            transport: Transport::Udp,
            addr,
            source,
        };
        let mut sockets = Vec::with_capacity(count.max(1));
        let local = if addr.port() == 0 {
            // The kernel gives the first socket a port nobody holds; the
            // others join it at once, so nothing can take the port between.
            let first = reuseport_socket(addr, recv_buffer).map_err(bind_err)?;
            let local = first.local_addr().map_err(bind_err)?;
            sockets.push(first);
            local
        } else {
            // SO_REUSEPORT would silently share the port with another process
            // of the same user (say, a second proxy) and split its traffic. A
            // probe bound without it fails if anything holds the port.
            let probe = std::net::UdpSocket::bind(addr).map_err(bind_err)?;
            probe.local_addr().map_err(bind_err)?
        };
        while sockets.len() < count.max(1) {
            sockets.push(reuseport_socket(local, recv_buffer).map_err(bind_err)?);
        }
        let sockets = sockets
            .into_iter()
            .map(|sock| (Arc::new(sock), Arc::new(AtomicU64::new(0))))
            .collect();
        Ok(UdpListener {
            local,
            sockets,
            next: AtomicUsize::new(0),
        })
    }

    /// Spawns `readers` receive tasks on every socket.
    pub fn spawn_receivers(&self, shared: &Arc<Shared>, token: &ShutdownToken, readers: usize) {
        for (index, (sock, rx_count)) in self.sockets.iter().enumerate() {
            for reader in 0..readers.max(1) {
                let span = tracing::debug_span!("udp", local = %self.local, socket = index, reader);
                let task = recv_loop(
                    shared.clone(),
                    sock.clone(),
                    self.local,
                    rx_count.clone(),
                    token.clone(),
                );
                tokio::spawn(task.instrument(span));
            }
        }
    }

    pub fn rx_per_socket(&self) -> impl Iterator<Item = (SocketAddr, u64)> + '_ {
        self.sockets
            .iter()
            .map(|(_, n)| (self.local, n.load(Ordering::Relaxed)))
    }

    fn socket(&self) -> &UdpSocket {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.sockets.len();
        &self.sockets[i].0
    }

    pub async fn send_to(
        &self,
        shared: &Shared,
        dest: SocketAddr,
        data: &[u8],
    ) -> Result<(), TransportError> {
        let result = self.socket().send_to(data, dest).await;
        self.account(shared, dest, data.len(), result)
    }

    /// Non-blocking send for use inside an `InboundHandler`.
    pub fn try_send_to(
        &self,
        shared: &Shared,
        dest: SocketAddr,
        data: &[u8],
    ) -> Result<(), TransportError> {
        match self.socket().try_send_to(data, dest) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                bump(&shared.stats.send_errors);
                Err(TransportError::WouldBlock { remote: dest })
            }
            result => self.account(shared, dest, data.len(), result),
        }
    }

    fn account(
        &self,
        shared: &Shared,
        dest: SocketAddr,
        len: usize,
        result: io::Result<usize>,
    ) -> Result<(), TransportError> {
        match result {
            Ok(_) => {
                bump(&shared.stats.udp_tx_messages);
                add(&shared.stats.udp_tx_bytes, len as u64);
                trace!(local = %self.local, %dest, len, "udp sent");
                Ok(())
            }
            Err(source) => {
                bump(&shared.stats.send_errors);
                debug!(local = %self.local, %dest, error = %source, "udp send failed");
                Err(TransportError::Send { dest, source })
            }
        }
    }
}

/// The listener to send a new UDP request to `dest` from: same address family,
/// preferring one whose address can actually reach `dest` (a loopback listener
/// for a loopback destination, a wildcard or routable one otherwise).
pub(super) fn pick_listener(listeners: &[UdpListener], dest: SocketAddr) -> Option<&UdpListener> {
    let score = |l: &UdpListener| {
        let ip = l.local.ip();
        if ip.is_unspecified() {
            1
        } else if ip.is_loopback() == dest.ip().is_loopback() {
            2
        } else {
            0
        }
    };
    listeners
        .iter()
        .filter(|l| l.local.is_ipv4() == dest.is_ipv4())
        .max_by_key(|l| score(l))
}

fn reuseport_socket(addr: SocketAddr, recv_buffer: usize) -> io::Result<UdpSocket> {
    let sock = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        // Lets [::]:5060 and 0.0.0.0:5060 be two separate listeners.
        sock.set_only_v6(true)?;
    }
    sock.set_reuse_port(true)?;
    if let Err(e) = sock.set_recv_buffer_size(recv_buffer) {
        warn!(%addr, error = %e, "could not set UDP receive buffer size");
    }
    sock.set_nonblocking(true)?;
    sock.bind(&addr.into())?;
    UdpSocket::from_std(sock.into())
}

async fn recv_loop(
    shared: Arc<Shared>,
    sock: Arc<UdpSocket>,
    local: SocketAddr,
    rx_count: Arc<AtomicU64>,
    mut token: ShutdownToken,
) {
    let max = shared.cfg.max_message_size;
    // Room for any datagram (and at least one byte more than allowed), so an
    // oversized one shows as n > max instead of a plausible truncated message.
    let mut buf = vec![0u8; (max + 1).max(65_536)];
    loop {
        let (n, remote) = tokio::select! {
            biased;
            _ = token.wait() => break,
            r = sock.recv_from(&mut buf) => match r {
                Ok(v) => v,
                Err(e) => {
                    // e.g. ECONNREFUSED echoed from an earlier send: not fatal.
                    bump(&shared.stats.recv_errors);
                    debug!(error = %e, "udp recv error");
                    continue;
                }
            },
        };
        bump(&rx_count);
        if !shared.admit(remote.ip()) {
            continue;
        }
        let datagram = &buf[..n];
        if n > max {
            // The core answers 513 if the header block (within the first
            // `max` bytes) parses well enough to address a response, and
            // drops it otherwise (RFC 3261 §18.1.1 / §21.5.14).
            bump(&shared.stats.udp_dropped_oversize);
            debug!(%remote, size = n, "oversized datagram");
            let source = Source {
                transport: Transport::Udp,
                remote,
                local,
            };
            shared.handler.on_inbound(InboundEvent::FramingError {
                source,
                partial: Bytes::copy_from_slice(&datagram[..max]),
                error: FrameError::TooLarge,
            });
            continue;
        }
        if let Some(response) = super::stun::binding_response(datagram, remote) {
            bump(&shared.stats.udp_keepalives);
            if let Err(e) = sock.send_to(&response, remote).await {
                debug!(%remote, error = %e, "STUN response not sent");
            }
            continue;
        }
        if is_keepalive(datagram) {
            bump(&shared.stats.udp_keepalives);
            continue;
        }
        bump(&shared.stats.udp_rx_messages);
        add(&shared.stats.udp_rx_bytes, n as u64);
        // Copying into an exact-size buffer keeps a long-lived message (held by a
        // transaction) from pinning a large shared receive buffer; ~600 bytes of
        // memcpy is noise next to parsing.
        let data = Bytes::copy_from_slice(datagram);
        let source = Source {
            transport: Transport::Udp,
            remote,
            local,
        };
        shared
            .handler
            .on_inbound(InboundEvent::Message(Inbound { data, source }));
    }
}

/// CRLF (or empty) datagrams are NAT keep-alives some UAs send over UDP; they
/// are not SIP messages and deserve no parse error.
fn is_keepalive(datagram: &[u8]) -> bool {
    datagram
        .iter()
        .all(|b| matches!(b, b'\r' | b'\n' | b' ' | b'\t' | 0))
}

//! The I/O layer under the proxy: UDP, TCP, TLS, WebSocket and secure
//! WebSocket listeners, outbound TCP and TLS connections, stream framing and
//! flow-aware sending (RFC 3261 §18, §26.2; RFC 7118).
//!
//! The proxy core sees only [`Transports`] (bind, send, reply, close) and
//! [`InboundHandler`] (complete messages in). Sockets, TLS, WebSocket
//! framing and connection reuse stay in here.
//!
//! Tasks per listener: one receive task per UDP socket (N sockets share the
//! port with SO_REUSEPORT), one accept task per stream listener, and a
//! reader and a writer task per connection, inbound or outbound, whatever
//! runs over it (`stream.rs`).

mod config;
mod conn_table;
mod connector;
mod error;
mod limiter;
mod signal;
mod slots;
mod stats;
mod stream;
mod stun;
mod tcp;
pub mod tls;
mod udp;
mod ws;

#[cfg(test)]
mod tests;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use bytes::Bytes;
use switchyard_codec::FrameError;
use tokio::sync::{mpsc, watch};
use tracing::{Instrument, info, trace};

pub use self::config::{ListenerSpec, MAX_SOURCE_RATE, TransportConfig};
use self::conn_table::ConnTable;
pub use self::error::{ListenerSpecError, TransportError};
pub use self::limiter::{SourceLimitConfig, SourceLimiter};
use self::signal::ShutdownToken;
use self::slots::{Refused, SlotCaps, TcpSlots};
use self::stats::Counters;
pub use self::stats::TransportStats;
use self::tls::TlsContext;
use self::udp::UdpListener;
pub use self::ws::WebSocketConfig;
use crate::net::{Destination, Source, Transport};

/// One complete SIP message and where it came from.
#[derive(Debug, Clone)]
pub struct Inbound {
    pub data: Bytes,
    pub source: Source,
}

#[derive(Debug, Clone)]
pub enum InboundEvent {
    Message(Inbound),
    /// A TCP stream could not be framed (no Content-Length, too large,
    /// malformed); `partial` holds the unframeable bytes. Reading stops, but
    /// the flow stays writable: answer 400/513 built from `partial` with
    /// [`Transports::reply`] (or `try_reply`), then call
    /// [`Transports::close`]. A flow the core leaves alone is closed after
    /// `tcp_error_linger`. It takes no new requests meanwhile.
    FramingError {
        source: Source,
        partial: Bytes,
        error: FrameError,
    },
}

impl InboundEvent {
    /// The flow it arrived on.
    pub fn source(&self) -> &Source {
        match self {
            InboundEvent::Message(m) => &m.source,
            InboundEvent::FramingError { source, .. } => source,
        }
    }
}

/// Receives everything the transports read. Called on the receiving task, so
/// it must not block: anything that waits goes on in a task of its own. A
/// UDP socket has a receive task per runtime worker, so handling a datagram
/// in place delays only that reader; a stream's messages have one reader,
/// their connection's.
pub trait InboundHandler: Send + Sync + 'static {
    fn on_inbound(&self, event: InboundEvent);
}

impl<F: Fn(InboundEvent) + Send + Sync + 'static> InboundHandler for F {
    fn on_inbound(&self, event: InboundEvent) {
        self(event)
    }
}

/// State the I/O tasks share. Tasks hold this, never [`Transports`], so
/// dropping the last `Arc<Transports>` stops them.
struct Shared {
    cfg: TransportConfig,
    handler: Arc<dyn InboundHandler>,
    stats: Counters,
    conns: ConnTable,
    /// Every TCP connection, inbound or outbound, holds one of these.
    slots: Arc<TcpSlots>,
    /// None when `per_source_rate` is 0.
    limiter: Option<SourceLimiter>,
    tls: Arc<TlsContext>,
}

impl Shared {
    /// The per-source rate limit, asked before a datagram, an inbound
    /// connection or a framed TCP message costs anything more. Over the
    /// limit it is dropped silently and counted: an answer would only
    /// amplify the flood, often towards a spoofed address.
    fn admit(&self, ip: IpAddr) -> bool {
        let Some(limiter) = &self.limiter else {
            return true;
        };
        if limiter.allow(ip, std::time::Instant::now()) {
            return true;
        }
        stats::count_rate_limited(&self.stats);
        trace!(%ip, "over the per-source rate, dropped");
        false
    }

    /// Counts a connection refused for want of a slot.
    fn count_refused(&self, why: Refused) {
        let counter = match why {
            Refused::Inbound => &self.stats.tcp_refused_inbound,
            Refused::PerSource => &self.stats.tcp_refused_per_source,
            Refused::Outbound => &self.stats.tcp_refused_outbound,
        };
        stats::bump(counter);
    }
}

/// All listeners and connections of a node. Share it as `Arc<Transports>`.
/// (A handler that needs to send should hold a `Weak` to it, or call
/// [`shutdown`](Self::shutdown): tasks keep the handler alive.)
pub struct Transports {
    shared: Arc<Shared>,
    udp: Vec<UdpListener>,
    /// The stream listeners' transports and bound addresses.
    streams: Vec<(Transport, SocketAddr)>,
    connector: connector::Connector,
    /// `true` = stop. Every task holds a receiver, so `closed()` on this sender
    /// tells when the last one has finished.
    stop: watch::Sender<bool>,
}

impl Transports {
    /// Binds every listener, then starts its tasks. Fails as a whole if any
    /// address cannot be bound (nothing is left running).
    pub async fn bind(
        specs: &[ListenerSpec],
        cfg: TransportConfig,
        handler: Arc<dyn InboundHandler>,
    ) -> Result<Arc<Self>, TransportError> {
        cfg.validate()?;
        let tls = Arc::new(TlsContext::load(&cfg.tls, specs).map_err(TransportError::Tls)?);
        let mut udp = Vec::new();
        let mut stream_listeners = Vec::new();
        for spec in specs {
            if spec.transport == Transport::Udp {
                udp.push(UdpListener::bind(
                    spec.addr,
                    cfg.udp_sockets_per_listener,
                    cfg.udp_recv_buffer,
                )?);
                continue;
            }
            let acceptor = match spec.transport.is_secure() {
                true => Some(tls.acceptor(spec).map_err(TransportError::Tls)?),
                false => None,
            };
            let (socket, local) = tcp::bind_listener(spec.transport, spec.addr)?;
            let listener = tcp::Listener {
                socket,
                transport: spec.transport,
                tls: acceptor,
            };
            stream_listeners.push((listener, local));
        }
        let limiter = cfg
            .source_limit
            .is_enabled()
            .then(|| SourceLimiter::new(cfg.source_limit.clone()));
        let caps = SlotCaps {
            inbound: cfg.tcp_max_inbound,
            outbound: cfg.tcp_max_outbound,
            per_source: cfg.tcp_max_per_source,
        };
        let slots = TcpSlots::new(caps, &cfg.source_limit.exempt);
        let shared = Arc::new(Shared {
            cfg,
            handler,
            stats: Counters::default(),
            conns: ConnTable::default(),
            slots,
            limiter,
            tls,
        });
        let (stop, stop_rx) = watch::channel(false);
        let token = ShutdownToken::new(stop_rx);
        // One reader per worker on every socket, up to a few (see `udp.rs`).
        let workers = tokio::runtime::Handle::current().metrics().num_workers();
        let readers = workers.min(udp::MAX_READERS_PER_SOCKET);
        for listener in &udp {
            listener.spawn_receivers(&shared, &token, readers);
            info!(local = %listener.local, sockets = shared.cfg.udp_sockets_per_listener, readers, "listening on UDP");
        }
        let mut streams = Vec::new();
        for (listener, local) in stream_listeners {
            let transport = listener.transport;
            let span = tracing::debug_span!("listener", %transport, %local);
            tokio::spawn(
                tcp::accept_loop(shared.clone(), listener, token.clone()).instrument(span),
            );
            info!(%local, "listening on {transport}");
            streams.push((transport, local));
        }
        Ok(Arc::new(Transports {
            shared,
            udp,
            streams,
            connector: connector::Connector::default(),
            stop,
        }))
    }

    /// The bound addresses, port 0 resolved: UDP listeners first, then the
    /// stream listeners, each in the order of the specs.
    pub fn local_addrs(&self) -> Vec<(Transport, SocketAddr)> {
        let udp = self.udp.iter().map(|l| (Transport::Udp, l.local));
        udp.chain(self.streams.iter().copied()).collect()
    }

    /// The node's TLS certificates and outbound trust.
    pub fn tls(&self) -> &TlsContext {
        &self.shared.tls
    }

    /// Sends a new message (typically a request) to `dest` and returns the flow
    /// it went out on. UDP leaves from a listener socket of the destination's
    /// family, so the peer sees our listening port (RFC 3261 §18.1.1). TCP
    /// and TLS reuse any open connection of that transport to `dest`,
    /// inbound or outbound, else connect (TLS verifying the peer's
    /// certificate against its address: see [`send_to`](Self::send_to)).
    pub async fn send(
        &self,
        transport: Transport,
        dest: SocketAddr,
        data: Bytes,
    ) -> Result<Source, TransportError> {
        self.send_to(&Destination::new(transport, dest), data).await
    }

    /// [`send`](Self::send) to a resolved destination: a new TLS connection
    /// verifies the certificate against the destination's `tls_name` (the
    /// SIP domain, RFC 5922 §7.2).
    pub async fn send_to(&self, dest: &Destination, data: Bytes) -> Result<Source, TransportError> {
        self.check_running()?;
        let transport = dest.transport;
        let (dest, name) = (dest.addr, dest.tls_name.as_deref());
        match transport {
            Transport::Udp => {
                let listener = udp::pick_listener(&self.udp, dest)
                    .ok_or(TransportError::NoListener { transport, dest })?;
                listener.send_to(&self.shared, dest, &data).await?;
                Ok(Source {
                    transport,
                    remote: dest,
                    local: listener.local,
                })
            }
            _ => self.send_stream(transport, dest, name, data).await,
        }
    }

    /// Sends a request over one existing flow (RFC 5626 §5.3): from the same
    /// local UDP socket to the same remote address, or on the same TCP
    /// connection. Never opens a connection: a flow that is gone is
    /// [`TransportError::ConnectionClosed`], which the caller answers 430.
    pub async fn send_on_flow(&self, flow: &Source, data: Bytes) -> Result<(), TransportError> {
        self.send_over(flow, data, true).await
    }

    /// Whether [`send_on_flow`](Self::send_on_flow) can use `flow` now: a
    /// UDP flow needs our socket, a TCP flow its open connection.
    pub fn has_flow(&self, flow: &Source) -> bool {
        match flow.transport {
            Transport::Udp => self.udp_listener(flow).is_ok(),
            _ => self
                .shared
                .conns
                .by_flow(flow)
                .is_some_and(|c| c.is_usable_for_new_requests()),
        }
    }

    /// Sends a response over the flow its request arrived on: the same TCP
    /// connection (even one closing to new requests), or from the same
    /// local UDP socket address. A TCP connection that is gone is
    /// [`TransportError::ConnectionClosed`]: the remote end was an
    /// ephemeral port, so RFC 3261 §18.2.2 has the caller connect to the
    /// Via's `received` address and sent-by port instead, with
    /// [`send`](Self::send).
    pub async fn reply(&self, source: &Source, data: Bytes) -> Result<(), TransportError> {
        self.send_over(source, data, false).await
    }

    /// One message over an existing flow; `new_request` refuses a TCP
    /// connection that takes no new requests any more.
    async fn send_over(
        &self,
        flow: &Source,
        data: Bytes,
        new_request: bool,
    ) -> Result<(), TransportError> {
        self.check_running()?;
        let closed = || TransportError::ConnectionClosed {
            remote: flow.remote,
        };
        match flow.transport {
            Transport::Udp => {
                self.udp_listener(flow)?
                    .send_to(&self.shared, flow.remote, &data)
                    .await
            }
            _ => {
                let conn = self
                    .shared
                    .conns
                    .by_flow(flow)
                    .filter(|c| !new_request || c.is_usable_for_new_requests())
                    .ok_or_else(closed)?;
                conn.tx.send(Box::new(data)).await.map_err(|_| closed())
            }
        }
    }

    /// [`reply`](Self::reply) without waiting, for use inside
    /// [`InboundHandler::on_inbound`] (e.g. the 400 for a framing error). A full
    /// queue is [`TransportError::WouldBlock`]; there is no reconnect.
    pub fn try_reply(&self, source: &Source, data: Bytes) -> Result<(), TransportError> {
        self.check_running()?;
        let remote = source.remote;
        match source.transport {
            Transport::Udp => self
                .udp_listener(source)?
                .try_send_to(&self.shared, remote, &data),
            _ => {
                let conn = self
                    .shared
                    .conns
                    .by_flow(source)
                    .ok_or(TransportError::ConnectionClosed { remote })?;
                conn.tx.try_send(Box::new(data)).map_err(|e| match e {
                    mpsc::error::TrySendError::Full(_) => TransportError::WouldBlock { remote },
                    mpsc::error::TrySendError::Closed(_) => {
                        TransportError::ConnectionClosed { remote }
                    }
                })
            }
        }
    }

    /// Closes a connection after flushing what is queued to it. No-op for UDP.
    pub fn close(&self, source: &Source) {
        if source.transport.is_connection()
            && let Some(conn) = self.shared.conns.by_flow(source)
        {
            conn.close.close();
        }
    }

    /// Stops every listener and connection and waits until all tasks are done
    /// (queued TCP writes are flushed first). Sends fail afterwards.
    pub async fn shutdown(&self) {
        self.stop.send_replace(true);
        self.shared.conns.close_all();
        self.stop.closed().await;
        info!("transports shut down");
    }

    pub fn stats(&self) -> TransportStats {
        let mut stats = self.shared.stats.snapshot();
        stats.tcp_open_connections = self.shared.conns.len() as u64;
        stats.open_connections = self.shared.conns.count_by_transport();
        stats.tls_certificate_reloads = self.shared.tls.reloads();
        let (inbound, outbound) = self.shared.slots.held();
        (stats.tcp_inbound_slots, stats.tcp_outbound_slots) = (inbound as u64, outbound as u64);
        stats.udp_rx_per_socket = self
            .udp
            .iter()
            .flat_map(UdpListener::rx_per_socket)
            .collect();
        stats
    }

    fn check_running(&self) -> Result<(), TransportError> {
        if *self.stop.borrow() {
            Err(TransportError::ShutDown)
        } else {
            Ok(())
        }
    }

    fn udp_listener(&self, source: &Source) -> Result<&UdpListener, TransportError> {
        self.udp
            .iter()
            .find(|l| l.local == source.local)
            .ok_or(TransportError::NoListener {
                transport: Transport::Udp,
                dest: source.remote,
            })
    }

    async fn send_stream(
        &self,
        transport: Transport,
        dest: SocketAddr,
        name: Option<&str>,
        data: Bytes,
    ) -> Result<Source, TransportError> {
        let mut data = data;
        if let Some(conn) = self.shared.conns.by_remote(transport, dest) {
            match conn.tx.send(Box::new(data)).await {
                Ok(()) => return Ok(conn.source()),
                // It closed under us: fall through to a fresh connection.
                Err(mpsc::error::SendError(d)) => data = *d,
            }
        }
        let token = ShutdownToken::new(self.stop.subscribe());
        let conn = self
            .connector
            .connect(
                &self.shared,
                transport,
                dest,
                name,
                self.tcp_source_ip(dest),
                &token,
            )
            .await?;
        conn.tx
            .send(Box::new(data))
            .await
            .map_err(|_| TransportError::ConnectionClosed { remote: dest })?;
        Ok(conn.source())
    }

    /// Outbound connections leave from a stream listener's address when one
    /// of the right family can reach `dest`; the port is always ephemeral.
    fn tcp_source_ip(&self, dest: SocketAddr) -> Option<IpAddr> {
        self.streams.iter().map(|(_, a)| a.ip()).find(|ip| {
            ip.is_ipv4() == dest.is_ipv4()
                && !ip.is_unspecified()
                && ip.is_loopback() == dest.ip().is_loopback()
        })
    }
}

impl Drop for Transports {
    fn drop(&mut self) {
        // Without this, tasks would run on until the runtime ends.
        self.stop.send_replace(true);
        self.shared.conns.close_all();
    }
}

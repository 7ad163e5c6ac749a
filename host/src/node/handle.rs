//! A started node: what its owner can ask of it (addresses, store,
//! status, reload) and how it stops (drain, then shutdown, saving the
//! registrations when `[store] persist` is set).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tracing::{info, warn};

use super::control::{self, ConfigSource};
use super::core::{Core, Shard};
use crate::config::Config;
use crate::location::{EmbeddedStore, LocationStore, persist};
use crate::net::Transport;
use crate::policy::tenants::Tenants;
use crate::transport::Transports;
use switchyard_proto::endpoint::Stats;

/// A started node. Dropping it does not stop it; call [`NodeHandle::shutdown`].
pub struct NodeHandle {
    pub(super) core: Arc<Core>,
    pub(super) transports: Arc<Transports>,
    pub(super) tasks: Vec<JoinHandle<()>>,
    pub(super) tenants: Option<Arc<Tenants>>,
    pub(super) admin_addr: Option<SocketAddr>,
    pub(super) persisted: Option<Persisted>,
    pub(super) control: Arc<control::Control>,
}

/// The embedded store and the file it is saved to (`[store] persist`).
pub(super) struct Persisted {
    pub store: Arc<EmbeddedStore>,
    pub path: std::path::PathBuf,
}

impl NodeHandle {
    /// The bound listener addresses (port 0 in the config resolved).
    pub fn local_addrs(&self) -> Vec<(Transport, SocketAddr)> {
        self.transports.local_addrs()
    }

    /// The node's certificates (reload, reload count).
    pub fn tls(&self) -> &crate::transport::tls::TlsContext {
        self.transports.tls()
    }

    /// The first bound address of `transport`.
    pub fn addr(&self, transport: Transport) -> SocketAddr {
        self.local_addrs()
            .into_iter()
            .find(|(t, _)| *t == transport)
            .map(|(_, a)| a)
            .expect("no listener for that transport")
    }

    pub fn store(&self) -> Arc<dyn LocationStore> {
        self.core.store.clone()
    }

    /// The node's tenants (None when the node was given its own resolver).
    pub fn tenants(&self) -> Option<&Arc<Tenants>> {
        self.tenants.as_ref()
    }

    /// Where the admin endpoint listens, if enabled.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    /// The configuration the node was started with.
    pub fn config(&self) -> &Config {
        &self.core.config
    }

    pub fn stats(&self) -> &Stats {
        &self.core.stats
    }

    /// The transports' counters (open TCP connections, drops...).
    pub fn transport_stats(&self) -> crate::transport::TransportStats {
        self.transports.stats()
    }

    /// The dialog layer: calls per tenant, recent CDRs.
    pub fn calls(&self) -> &crate::calls::CallService {
        &self.control.calls
    }

    /// Live (server, client) transactions and armed timers.
    pub fn live_transactions(&self) -> (usize, usize, usize) {
        self.core
            .wiring()
            .shards
            .iter()
            .map(Shard::counts)
            .fold((0, 0, 0), |a, b| (a.0 + b.0, a.1 + b.1, a.2 + b.2))
    }

    /// Stops taking new calls and waits, up to `limit`, until every server
    /// transaction has its final response and every call through this node
    /// has ended (a BYE, or `dialog_max_secs`): new INVITE, SUBSCRIBE and
    /// REFER get 503 + Retry-After (`switchyard_refused_draining_total`),
    /// while in-dialog requests (ACK, BYE, re-INVITE), REGISTER, CANCEL and
    /// responses go on. Returns whether everything ended in time. Call
    /// [`shutdown`](Self::shutdown) next.
    pub async fn drain(&self, limit: Duration) -> bool {
        self.control
            .draining
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let transactions = self.control.unanswered();
            let calls = self.control.live_dialogs();
            if transactions == 0 && calls == 0 {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                warn!(
                    transactions,
                    calls, "drain time over with calls still in progress"
                );
                return false;
            }
            // Nothing signals "the last one ended": look again shortly.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Where [`reload`](Self::reload) reads the configuration (set once,
    /// by `switchyard run --config`).
    pub fn set_config_source(&self, source: ConfigSource) {
        let _ = self.control.source.set(source);
    }

    /// Reads the configuration again and applies domains and tenants
    /// (SIGHUP, `POST /reload`); see `node/control.rs`.
    pub async fn reload(&self) -> anyhow::Result<crate::admin::ReloadReport> {
        self.control.reload().await
    }

    /// What `GET /status` shows.
    pub fn status(&self) -> crate::admin::NodeStatus {
        crate::admin::NodeControl::status(self.control.as_ref())
    }

    pub async fn shutdown(self) {
        self.transports.shutdown().await;
        // The last CDRs out, this node's call counts withdrawn.
        self.control.calls.finish(Duration::from_secs(5)).await;
        for t in self.tasks {
            t.abort();
        }
        // After the transports: no REGISTER can change the store any more.
        if let Some(p) = self.persisted
            && let Some(bindings) = persist::save_off_thread(p.store, p.path).await
        {
            info!(bindings, "registrations saved");
        }
    }
}

//! A running Switchyard node: binds the transports, owns the transaction
//! tables and timers, and connects them to the proxy core, registrar and
//! location store. `core.rs` shows the path of a message.

mod auth;
mod control;
pub(crate) mod core;
mod handle;
mod shared;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use self::core::{Core, Shard, Wiring};
use crate::auth::{
    Authenticator, CachedSubscribers, LocalLedger, NonceLedger, SubscriberStore, Subscribers,
};
use crate::cassandra::CassandraStore;
use crate::cluster::Cluster;
use crate::config::Config;
use crate::egress::Egress;
use crate::location::{EmbeddedStore, LocationStore, persist, purge_periodically};
use crate::policy::PolicyResolver;
use crate::policy::tenants::Tenants;
use crate::policy::wasm::{PolicyEngine, PolicyLocation};
use crate::proxy::identity::{Identity, LocalAddress};
use crate::transport::{TransportConfig, Transports};
use switchyard_location::{LocalCounters, SharedCounters};
use switchyard_proto::edge::{Edge, EdgeConfig};
use switchyard_proto::endpoint::{Endpoint, EndpointConfig, TenantMap};
use switchyard_proto::proxy_tx::TxSettings;

pub use self::control::ConfigSource;
pub use self::handle::NodeHandle;
use self::handle::Persisted;
pub use switchyard_proto::endpoint::{Counter, Stats};

/// What a node is built from besides its config; the defaults give the
/// single-node product (embedded store, built-in policy).
pub struct NodeParts {
    pub store: Option<Arc<dyn LocationStore>>,
    pub policies: Option<Arc<dyn PolicyResolver>>,
    /// Where the nodes add up their call counts; default: the Cassandra
    /// store's table, else this process only.
    pub counters: Option<Arc<dyn SharedCounters>>,
}

pub struct Node;

impl Node {
    pub async fn start(config: Config) -> anyhow::Result<NodeHandle> {
        Self::start_with(
            config,
            NodeParts {
                store: None,
                policies: None,
                counters: None,
            },
        )
        .await
    }

    pub async fn start_with(config: Config, parts: NodeParts) -> anyhow::Result<NodeHandle> {
        config
            .validate()
            .map_err(anyhow::Error::msg)
            .context("invalid configuration")?;
        // Lazily connected: the node comes up even while the cluster is
        // down and answers 503 + Retry-After until it is back.
        let cassandra = match (&parts.store, config.store.backend.as_str()) {
            (None, "cassandra") => Some(Arc::new(
                CassandraStore::lazy(config.store.cassandra.clone())
                    .context("the [store.cassandra] configuration")?,
            )),
            _ => None,
        };
        let (mut persisted, mut embedded_store) = (None, None);
        let read_cache = match (&parts.store, &cassandra) {
            (None, Some(cassandra)) if wants_engine(&config) => {
                shared::read_cache(&config, cassandra)
            }
            _ => None,
        };
        let store: Arc<dyn LocationStore> = match (parts.store, &cassandra) {
            (Some(store), _) => store,
            (None, Some(cassandra)) => match &read_cache {
                Some(cache) => cache.clone(),
                None => cassandra.clone(),
            },
            (None, None) => {
                let embedded = Arc::new(EmbeddedStore::with_shards(config.store.shards));
                if let Some(path) = &config.store.persist {
                    let restored = persist::load(&embedded, path, std::time::SystemTime::now())
                        .context("restoring the registrations ([store] persist)")?;
                    info!(bindings = restored, file = %path.display(), "registrations restored");
                    persisted = Some(Persisted {
                        store: embedded.clone(),
                        path: path.clone(),
                    });
                }
                embedded_store = Some(embedded.clone());
                embedded
            }
        };
        // Where the nodes add up their call counts: Cassandra's
        // shared_counters table, else this process only.
        let counters: Arc<dyn SharedCounters> = match (parts.counters, &cassandra) {
            (Some(counters), _) => counters,
            (None, Some(cassandra)) => cassandra.clone(),
            (None, None) => Arc::new(LocalCounters::default()),
        };
        let (calls, cdr_writer) = crate::calls::CallService::new(
            &config.node_id,
            &config.dialogs,
            configured_tenants(&config),
            counters,
            cassandra.clone(),
        )
        .context("opening the CDR file ([dialogs.cdr] file)")?;
        let (policies, tenants) = match parts.policies {
            Some(policies) => (policies, None),
            None => {
                let tenants = Arc::new(start_tenants(&config, &store, &calls).await?);
                (tenants.clone() as Arc<dyn PolicyResolver>, Some(tenants))
            }
        };
        if config.cluster.secret.is_none() {
            info!(
                "no [cluster] secret: flow tokens and GRUUs this node mints are valid on this node only"
            );
        }
        let egress = Egress::from_config(&config.egress).context("egress configuration")?;
        let (auth, subscriber_file) = start_auth(&config, cassandra.clone())?;
        let cluster = Arc::new(Cluster::new(
            &config.node_id,
            &config.cluster_domain(),
            &config.cluster.secrets(),
        ));
        let core = Arc::new_cyclic(|me| Core {
            me: me.clone(),
            config: config.clone(),
            wiring: OnceLock::new(),
            store: store.clone(),
            egress,
            auth: auth.clone(),
            stats: Default::default(),
            store_latency: Default::default(),
            hep: crate::hep::Hep::start(&config.hep),
            calls: calls.clone(),
        });
        // The transports reach the core through a weak link: the core owns
        // them (its wiring), so a strong one would keep both alive, sockets
        // bound, after shutdown, and a restarted node could not bind again.
        let inlet = Arc::downgrade(&core);
        let handler = Arc::new(move |event| {
            if let Some(core) = inlet.upgrade() {
                crate::transport::InboundHandler::on_inbound(core.as_ref(), event);
            }
        });
        let transport_config = TransportConfig {
            tls: config.tls.clone(),
            websocket: config.websocket.clone(),
            ..config.limits.transport()
        };
        let transports = Transports::bind(&config.listen, transport_config, handler)
            .await
            .context("binding listeners")?;
        let addresses = transports
            .local_addrs()
            .into_iter()
            .map(|(t, addr)| LocalAddress::new(t, &config.advertised_for(addr)))
            .collect();
        let bound: Vec<SocketAddr> = transports
            .local_addrs()
            .into_iter()
            .map(|(_, a)| a)
            .collect();
        let identity = Identity::new(&config.domains, addresses)
            .with_bound(bound.iter().copied(), &wildcard_interfaces(&bound));
        let edge = Edge::new(identity, cluster, edge_config(&config));
        let shards = shard_count();
        let settings = EndpointConfig {
            calls: calls.table.clone(),
            ..endpoint_config(&config)
        };
        let draining = settings.draining.clone();
        let shards: Vec<Shard> = (0..shards)
            .map(|i| {
                let config = EndpointConfig {
                    // At most 256 shards (`shard_count`): a byte of every branch id.
                    shard: i as u8,
                    max_completed: settings.max_completed.div_ceil(shards),
                    ..settings.clone()
                };
                let endpoint = Endpoint::new(
                    config,
                    edge.clone(),
                    policies.clone(),
                    core.stats.clone(),
                    rand::random(),
                );
                Shard::new(endpoint)
            })
            .collect();
        let _ = core.wiring.set(Wiring {
            transports: transports.clone(),
            shards,
            epoch: std::time::Instant::now(),
            timers_changed: Default::default(),
        });
        let mut tasks: Vec<JoinHandle<()>> = vec![
            tokio::spawn(Core::run_timers(Arc::downgrade(&core))),
            tokio::spawn(cdr_writer),
            tokio::spawn(crate::calls::CallService::sync_periodically(
                Arc::downgrade(&calls),
                config.dialogs.sync(),
            )),
        ];
        // Returns at once for stores that expire bindings themselves (Cassandra TTL).
        let every = Duration::from_millis(config.store.purge_interval_ms.max(10));
        tasks.push(tokio::spawn(purge_periodically(store.clone(), every)));
        tasks.extend(shared::spawn(
            &config,
            read_cache.as_ref(),
            cassandra.as_ref(),
            tenants.as_ref(),
        ));
        if let Some(p) = &persisted {
            let every = Duration::from_millis(config.store.persist_interval_ms);
            tasks.push(tokio::spawn(persist::save_periodically(
                p.store.clone(),
                p.path.clone(),
                every,
            )));
        }
        if let Some(file) = subscriber_file
            && let Some(path) = file.path().map(Path::to_path_buf)
        {
            tasks.push(
                crate::auth::watch(path.clone(), file)
                    .with_context(|| format!("watching {}", path.display()))?,
            );
        }
        let control = Arc::new(control::Control {
            core: core.clone(),
            tenants: tenants.clone(),
            source: Default::default(),
            applied: tokio::sync::Mutex::new(config.clone()),
            started: std::time::Instant::now(),
            draining,
            calls,
            embedded: embedded_store,
            cassandra: cassandra.clone(),
        });
        let mut admin_addr = None;
        if let Some(tenants) = &tenants {
            if config.admin.listen.is_some() {
                let subscribers = auth.as_ref().map(|a| a.subscribers().clone());
                let (addr, task) = crate::admin::serve(
                    &config.admin,
                    tenants.clone(),
                    control.clone(),
                    subscribers,
                )
                .await
                .context("starting the admin endpoint ([admin] listen)")?;
                admin_addr = Some(addr);
                tasks.push(task);
            }
            if let Some(dir) = &config.tenants.watch_dir {
                tasks.push(
                    crate::policy::watch::spawn(dir.clone(), tenants.clone())
                        .with_context(|| format!("watching {}", dir.display()))?,
                );
            }
        }
        for warning in config.warnings() {
            tracing::warn!("{warning}");
        }
        info!(node = %config.node_id, domains = ?config.domains, store = store.backend(), "node started");
        Ok(NodeHandle {
            core,
            transports,
            tasks,
            tenants,
            admin_addr,
            persisted,
            control,
        })
    }
}

/// The authenticator when `[auth] enabled`. Its nonce key comes from the
/// cluster secret, so every node accepts every node's nonces; a single
/// node without one draws a key per process. Subscribers: the
/// `[auth] subscribers` file when set (returned too, to be watched), else
/// the Cassandra `subscribers` table when that is the store, behind the
/// `[auth.cache]` read cache. Nonce counts are claimed in the Cassandra
/// `nonce_uses` table when Cassandra is the store (so a replay is refused
/// by every node), else in this process.
#[allow(clippy::type_complexity)]
fn start_auth(
    config: &Config,
    cassandra: Option<Arc<CassandraStore>>,
) -> anyhow::Result<(Option<Arc<Authenticator>>, Option<Arc<Subscribers>>)> {
    if !config.auth.enabled {
        return Ok((None, None));
    }
    let ledger: Arc<dyn NonceLedger> = match &cassandra {
        Some(cassandra) => cassandra.clone(),
        None => Arc::new(LocalLedger::new(LocalLedger::DEFAULT_CAPACITY)),
    };
    let cached =
        config.auth.subscribers.is_none() && cassandra.is_some() && config.auth.cache.enabled();
    let (store, file): (Arc<dyn SubscriberStore>, _) = match (&config.auth.subscribers, cassandra) {
        (Some(path), _) => {
            let file = Arc::new(Subscribers::open(path)?);
            if file.is_empty() {
                warn!(file = %path.display(), "[auth] has no subscribers yet: nobody can register or call out until `switchyard user add`");
            }
            (file.clone(), Some(file))
        }
        (None, Some(cassandra)) if cached => (
            Arc::new(CachedSubscribers::new(cassandra, &config.auth.cache)),
            None,
        ),
        (None, Some(cassandra)) => (cassandra, None),
        (None, None) => {
            warn!("[auth] has no subscriber file: nobody can register or call out");
            (Arc::new(Subscribers::empty()), None)
        }
    };
    info!(
        subscribers = store.backend(),
        cache = cached,
        nonce_ledger = ledger.backend(),
        "digest authentication on"
    );
    let secret = match &config.cluster.secret {
        Some(s) => s.as_bytes().to_vec(),
        None => rand::random::<[u8; 32]>().to_vec(),
    };
    let auth = Authenticator::new(config.auth.clone(), &secret, store, ledger)
        .map_err(anyhow::Error::msg)
        .context("[auth]")?;
    Ok((Some(Arc::new(auth)), file))
}

/// Endpoint shards per node: 32 per core, so two workers rarely want the
/// same shard lock at once (REGISTER at 8000/s on 2 cores: 58 µs of CPU
/// each with one shard, 54 with 8, 47–51 with 64; `bench/README.md`).
fn shard_count() -> usize {
    (std::thread::available_parallelism().map_or(1, |n| n.get()) * 32).min(256)
}

/// The endpoints' settings from the node's configuration.
fn endpoint_config(config: &Config) -> EndpointConfig {
    EndpointConfig {
        tx: TxSettings {
            timers: config.timers.transaction(),
            timer_c: config.timers.timer_c(),
        },
        max_transactions: config.limits.max_transactions,
        max_completed: config.limits.max_completed_transactions,
        live: Default::default(),
        draining: Default::default(),
        calls: Default::default(),
        track_calls: config.dialogs.enabled,
        max_breadth: config.limits.max_breadth,
        max_branches: config.limits.max_branches,
        registrar: config.registrar.clone(),
        node_id: config.node_id.clone(),
        auth: config.auth.enabled,
        trusted: config.auth.trusted.clone(),
        tenants: tenant_map(config),
        shard: 0,
    }
}

/// The tenants the configuration names (their call counts are read from
/// the other nodes even while this one has none of their calls).
pub(crate) fn configured_tenants(config: &Config) -> std::collections::BTreeSet<String> {
    let t = &config.tenants;
    let named = t
        .domains
        .values()
        .chain(t.policies.keys())
        .chain(t.chains.keys());
    named
        .chain(config.dialogs.tenants.keys())
        .chain(std::iter::once(&t.default))
        .cloned()
        .collect()
}

/// Domains to tenants, as the endpoints read them.
fn tenant_map(config: &Config) -> TenantMap {
    TenantMap {
        domains: config.tenants.domains.clone(),
        default: config.tenants.default.clone(),
        contact_rewrite: config.tenants.contact_rewrite.clone(),
        default_rewrite: config.cluster.contact_rewrite,
        trusted: config.tenants.trusted.clone(),
        third_party_register: config.tenants.third_party_register.clone(),
    }
}

/// The edge decisions' settings from the node's configuration.
fn edge_config(config: &Config) -> EdgeConfig {
    EdgeConfig {
        path_transport: config.cluster.path_transport.map(Into::into),
        clustered: config.cluster.secret.is_some(),
        registrar: config.registrar.clone(),
        dialog_max_secs: config.auth.dialog_max_secs,
    }
}

/// The machine's interface addresses, needed only when a listener is bound
/// to a wildcard address (every one of them is then ours).
fn wildcard_interfaces(bound: &[SocketAddr]) -> Vec<std::net::IpAddr> {
    if !bound.iter().any(|a| a.ip().is_unspecified()) {
        return Vec::new();
    }
    match if_addrs::get_if_addrs() {
        Ok(ifs) => ifs.into_iter().map(|i| i.ip()).collect(),
        Err(e) => {
            warn!(error = %e, "cannot list the interface addresses: a wildcard listener knows only its advertised address");
            Vec::new()
        }
    }
}

/// Whether any policy can be loaded: configured policies or chains, a
/// watched directory, or the admin endpoint.
fn wants_engine(config: &Config) -> bool {
    !config.tenants.policies.is_empty()
        || !config.tenants.chains.is_empty()
        || config.tenants.watch_dir.is_some()
        || config.admin.listen.is_some()
}

/// The tenants and, when any policy can be loaded (configured policies, a
/// watched directory or the admin endpoint), the WebAssembly engine.
async fn start_tenants(
    config: &Config,
    store: &Arc<dyn LocationStore>,
    calls: &Arc<crate::calls::CallService>,
) -> anyhow::Result<Tenants> {
    if !wants_engine(config) {
        return Ok(Tenants::native(config.tenants.clone()));
    }
    let shared = Arc::new(arc_swap::ArcSwap::from_pointee(config.tenants.clone()));
    let location = PolicyLocation::shared(store.clone(), shared.clone()).with_calls(calls.clone());
    let engine = PolicyEngine::new(config.policy.clone(), Some(location))
        .context("starting the policy engine ([policy])")?;
    Tenants::start(shared, Arc::new(engine))
        .await
        .context("loading tenant policies ([tenants.policies])")
}

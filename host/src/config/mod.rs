//! Configuration: one TOML file (every key optional) plus CLI overrides.
//!
//! Every key is documented with its default in `docs/operations.md`. Unknown
//! keys are refused so a typo never silently falls back to a default.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;

pub use switchyard_engine::{TenantPolicyConfig, TenantsConfig};

use crate::admin::AdminConfig;
use crate::auth::AuthConfig;
use crate::cassandra::CassandraConfig;
use crate::cluster::ClusterConfig;
use crate::egress::EgressConfig;
use crate::net::Transport;
use crate::policy::wasm::EngineConfig;
use crate::registrar::RegistrarConfig;
use crate::transaction::TimerConfig;
use crate::transport::tls::TlsConfig;
use crate::transport::{
    ListenerSpec, MAX_SOURCE_RATE, SourceLimitConfig, TransportConfig, WebSocketConfig,
};

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// This node's identity in the cluster; recorded in bindings it stores.
    pub node_id: String,
    /// Sockets to listen on, as `TRANSPORT:ADDR:PORT` with transport `udp`,
    /// `tcp`, `tls`, `ws` or `wss`.
    pub listen: Vec<ListenerSpec>,
    /// Host (and optional port) this node puts in Via, Record-Route and Path.
    /// Needed when listening on a wildcard address.
    pub advertise: Option<String>,
    /// SIP domains this proxy is authoritative for (registrar and location).
    pub domains: Vec<String>,
    pub tenants: TenantsConfig,
    pub timers: TimersConfig,
    pub limits: LimitsConfig,
    pub registrar: RegistrarConfig,
    pub store: StoreConfig,
    pub egress: EgressConfig,
    /// The WebAssembly policy engine: sandbox limits and caches.
    pub policy: EngineConfig,
    /// The local admin endpoint (`switchyard policy ...` talks to it).
    pub admin: AdminConfig,
    /// What the nodes of one cluster share: the token secret, the cluster
    /// domain, Contact rewriting, the transport between nodes.
    pub cluster: ClusterConfig,
    /// Digest authentication of the node's users (`docs/security.md`).
    pub auth: AuthConfig,
    /// Certificates for `tls`/`wss` listeners, client verification and
    /// outbound trust.
    pub tls: TlsConfig,
    /// The HTTP path and allowed origins of `ws`/`wss` listeners.
    pub websocket: WebSocketConfig,
    /// Stopping: how long SIGTERM/SIGINT lets calls in progress finish.
    pub lifecycle: LifecycleConfig,
    /// HEPv3 export of every SIP message to a Homer / sipcapture collector.
    pub hep: crate::hep::HepConfig,
    /// Calls: concurrent-call limits, lifetime, CDRs.
    pub dialogs: crate::calls::DialogsConfig,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LifecycleConfig {
    /// On SIGTERM or SIGINT the node refuses new calls (503 + Retry-After)
    /// and waits up to this long for every transaction in progress to get
    /// its final response, then closes its connections and exits 0. A
    /// second signal stops it at once.
    pub drain_ms: u64,
}

impl Default for LifecycleConfig {
    fn default() -> Self {
        LifecycleConfig { drain_ms: 30_000 }
    }
}

impl LifecycleConfig {
    pub fn drain(&self) -> Duration {
        Duration::from_millis(self.drain_ms)
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            node_id: "switchyard-1".into(),
            listen: vec![
                ListenerSpec {
                    transport: Transport::Udp,
                    addr: (Ipv4Addr::UNSPECIFIED, 5060).into(),
                },
                ListenerSpec {
                    transport: Transport::Tcp,
                    addr: (Ipv4Addr::UNSPECIFIED, 5060).into(),
                },
            ],
            advertise: None,
            domains: Vec::new(),
            tenants: TenantsConfig::default(),
            timers: TimersConfig::default(),
            limits: LimitsConfig::default(),
            registrar: RegistrarConfig::default(),
            store: StoreConfig::default(),
            egress: EgressConfig::default(),
            policy: EngineConfig::default(),
            admin: AdminConfig::default(),
            cluster: ClusterConfig::default(),
            auth: AuthConfig::default(),
            tls: TlsConfig::default(),
            websocket: WebSocketConfig::default(),
            lifecycle: LifecycleConfig::default(),
            hep: crate::hep::HepConfig::default(),
            dialogs: crate::calls::DialogsConfig::default(),
        }
    }
}

/// RFC 3261 timers, in milliseconds, and the proxy's INVITE Timer C.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TimersConfig {
    pub t1_ms: u64,
    pub t2_ms: u64,
    pub t4_ms: u64,
    /// §16.6 step 11: a proxied INVITE branch with no final response is
    /// cancelled after this long (RFC minimum 3 minutes; lower it for PBX-style
    /// ring timeouts).
    pub timer_c_ms: u64,
}

impl Default for TimersConfig {
    fn default() -> Self {
        TimersConfig {
            t1_ms: 500,
            t2_ms: 4000,
            t4_ms: 5000,
            timer_c_ms: 180_000,
        }
    }
}

impl TimersConfig {
    pub fn transaction(&self) -> TimerConfig {
        TimerConfig {
            t1: Duration::from_millis(self.t1_ms),
            t2: Duration::from_millis(self.t2_ms),
            t4: Duration::from_millis(self.t4_ms),
        }
    }

    pub fn timer_c(&self) -> Duration {
        Duration::from_millis(self.timer_c_ms)
    }
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest SIP message accepted, in bytes (larger: 513 or drop/close).
    pub max_message_size: usize,
    /// A TCP connection with no traffic at all for this long is closed.
    pub tcp_idle_timeout_ms: u64,
    /// A TCP message must be complete this long after its first byte
    /// (slowloris protection).
    pub tcp_message_timeout_ms: u64,
    /// UDP sockets per UDP listener (SO_REUSEPORT); 0 = one per core.
    pub udp_sockets: usize,
    /// Server transactions still at work (not the completed ones kept
    /// compact) at most; a new request beyond it gets 503 with
    /// Retry-After, statelessly, once (counted as
    /// `switchyard_overloaded_total`).
    pub max_transactions: usize,
    /// Completed transactions kept (compactly, ~150 B each) to absorb
    /// retransmissions until Timer J (non-INVITE) or L (INVITE answered
    /// 2xx); past it the oldest are forgotten early
    /// (`switchyard_completed_evicted_total`).
    pub max_completed_transactions: usize,
    /// Messages per second one source (IPv4 address, IPv6 /64) may send on
    /// average, checked before parsing; over it, dropped unanswered. 0 = off.
    pub per_source_rate: u32,
    /// Messages a quiet source may send at once before the rate applies.
    pub per_source_burst: u32,
    /// Sources never rate-limited: trunks, SBCs, cluster peers. Replaces
    /// the default (loopback). They have no `tcp_max_per_source` either.
    pub rate_limit_exempt: Vec<ipnet::IpNet>,
    /// RFC 5393 Max-Breadth: parallel branches of one request at most
    /// (and the value assumed when a request carries none, or lowered to).
    pub max_breadth: u32,
    /// Branches of one request in all, serial and failover included;
    /// targets beyond are dropped and counted.
    pub max_branches: usize,
    /// Accepted TCP connections open at most; beyond, a new one is closed
    /// at once (`switchyard_tcp_refused_inbound_total`).
    pub tcp_max_inbound: usize,
    /// TCP connections the node opens, a pool apart from the inbound one;
    /// beyond, a send needing a new connection fails like an unreachable
    /// next hop (`switchyard_tcp_refused_outbound_total`).
    pub tcp_max_outbound: usize,
    /// Accepted TCP connections one source (IPv4 address, IPv6 /64) may
    /// hold; beyond, a new one is closed at once
    /// (`switchyard_tcp_refused_per_source_total`).
    pub tcp_max_per_source: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        let transport = TransportConfig::default();
        LimitsConfig {
            max_message_size: 64 * 1024,
            tcp_idle_timeout_ms: 180_000,
            tcp_message_timeout_ms: 32_000,
            udp_sockets: 0,
            max_transactions: 1_000_000,
            max_completed_transactions: 4_000_000,
            per_source_rate: SourceLimitConfig::default().rate,
            per_source_burst: SourceLimitConfig::default().burst,
            rate_limit_exempt: SourceLimitConfig::default_exempt(),
            max_breadth: crate::proxy::fork::ForkLimits::DEFAULT_BREADTH,
            max_branches: 32,
            tcp_max_inbound: transport.tcp_max_inbound,
            tcp_max_outbound: transport.tcp_max_outbound,
            tcp_max_per_source: transport.tcp_max_per_source,
        }
    }
}

impl LimitsConfig {
    pub fn transport(&self) -> TransportConfig {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        TransportConfig {
            max_message_size: self.max_message_size,
            tcp_idle_timeout: Duration::from_millis(self.tcp_idle_timeout_ms),
            tcp_message_timeout: Duration::from_millis(self.tcp_message_timeout_ms),
            udp_sockets_per_listener: if self.udp_sockets == 0 {
                cores
            } else {
                self.udp_sockets
            },
            tcp_max_inbound: self.tcp_max_inbound,
            tcp_max_outbound: self.tcp_max_outbound,
            tcp_max_per_source: self.tcp_max_per_source,
            source_limit: SourceLimitConfig {
                rate: self.per_source_rate,
                burst: self.per_source_burst,
                exempt: self.rate_limit_exempt.clone(),
                ..SourceLimitConfig::default()
            },
            ..TransportConfig::default()
        }
    }
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `embedded` (in-process, single node) or `cassandra` (shared by a
    /// cluster of nodes; see `[store.cassandra]` and docs/cassandra.md).
    pub backend: String,
    /// Shards of the embedded store (lock striping).
    pub shards: usize,
    /// How often expired bindings are purged, in milliseconds (embedded
    /// store; Cassandra expires rows by TTL).
    pub purge_interval_ms: u64,
    /// Embedded store only: a file the registrations are saved to (when
    /// they changed, every `persist_interval_ms`, and at shutdown) and
    /// restored from at start, so a restart keeps them. Unset: memory only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub persist: Option<PathBuf>,
    /// How often changed registrations are saved to `persist`, in ms.
    pub persist_interval_ms: u64,
    /// The Cassandra / ScyllaDB backend's settings.
    pub cassandra: CassandraConfig,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            backend: "embedded".into(),
            shards: 64,
            purge_interval_ms: 1000,
            persist: None,
            persist_interval_ms: 10_000,
            cassandra: CassandraConfig::default(),
        }
    }
}

impl Config {
    /// Reads and validates a TOML file. Errors name the file, line and key.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: shown.clone(),
            source,
        })?;
        Self::parse(&text, &shown)
    }

    /// Parses TOML text; `origin` names it in error messages.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_string(),
            message: e.to_string(),
        })?;
        config.validate().map_err(|message| ConfigError::Invalid {
            path: origin.to_string(),
            message,
        })?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.listen.is_empty() {
            return Err("key `listen`: at least one listener is needed".into());
        }
        self.auth.validate()?;
        self.tenants.validate()?;
        self.dialogs.validate()?;
        let t = &self.timers;
        if t.t1_ms == 0 || t.t2_ms < t.t1_ms {
            return Err("key `timers`: need 0 < t1_ms <= t2_ms".into());
        }
        let r = &self.registrar;
        if r.min_expires > r.max_expires
            || r.default_expires < r.min_expires
            || r.default_expires > r.max_expires
        {
            return Err(
                "key `registrar`: need min_expires <= default_expires <= max_expires".into(),
            );
        }
        if r.max_contacts == 0 {
            return Err("key `registrar.max_contacts`: must be at least 1".into());
        }
        match self.store.backend.as_str() {
            "embedded" if self.store.persist_interval_ms == 0 => {
                return Err("key `store.persist_interval_ms`: must be at least 1".into());
            }
            "embedded" => {}
            "cassandra" if self.store.cassandra.contact_points.is_empty() => {
                return Err("key `store.cassandra.contact_points`: the cassandra backend needs at least one host:port".into());
            }
            "cassandra" if self.store.persist.is_some() => {
                return Err("key `store.persist`: only the embedded store is saved to a file (Cassandra keeps its own)".into());
            }
            "cassandra" => {}
            other => {
                return Err(format!(
                    "key `store.backend`: unknown backend {other:?} (available: \"embedded\", \"cassandra\")"
                ));
            }
        }
        self.cluster.validate()?;
        self.hep.validate()?;
        if self.limits.max_breadth == 0 || self.limits.max_branches == 0 {
            return Err(
                "key `limits.max_breadth` / `limits.max_branches`: must be at least 1".into(),
            );
        }
        if self.limits.max_message_size < 1024 {
            return Err("key `limits.max_message_size`: must be at least 1024 bytes".into());
        }
        for (key, value) in [
            ("tcp_max_inbound", self.limits.tcp_max_inbound),
            ("tcp_max_outbound", self.limits.tcp_max_outbound),
            ("tcp_max_per_source", self.limits.tcp_max_per_source),
        ] {
            if value == 0 {
                return Err(format!("key `limits.{key}`: must be at least 1 connection"));
            }
        }
        if self.limits.per_source_rate > MAX_SOURCE_RATE {
            return Err(format!(
                "key `limits.per_source_rate`: at most {MAX_SOURCE_RATE} messages/s (exempt a source that needs more)"
            ));
        }
        if self.limits.per_source_rate > 0 && self.limits.per_source_burst == 0 {
            return Err(
                "key `limits.per_source_burst`: must be at least 1 while `per_source_rate` is on"
                    .into(),
            );
        }
        Ok(())
    }

    /// A configuration for tests: the given listeners and domains, short
    /// timers, egress locked to loopback and no DNS.
    #[cfg(any(test, feature = "testing"))]
    pub fn for_tests(listen: &[&str], domains: &[&str]) -> Config {
        let mut c = Config {
            listen: listen
                .iter()
                .map(|s| s.parse().expect("listener spec"))
                .collect(),
            domains: domains.iter().map(|d| d.to_string()).collect(),
            ..Config::default()
        };
        c.egress.allow = vec!["127.0.0.0/8".parse().unwrap()];
        c.egress.dns = false;
        // Tests that are about authentication turn it on themselves.
        c.auth.enabled = false;
        c.timers.t1_ms = 100;
        c.timers.timer_c_ms = 10_000;
        c.limits.udp_sockets = 1;
        // Tests start many nodes: no fixed admin port.
        c.admin.listen = None;
        c
    }

    /// The known foot-guns of this configuration, one sentence each: what a
    /// node logs as warnings when it starts (and `check-config` prints).
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.advertise.is_none()
            && let Some(wild) = self.listen.iter().find(|l| l.addr.ip().is_unspecified())
        {
            out.push(format!(
                "{wild} listens on every address but `advertise` is not set: Via, \
                 Record-Route and Path will name 127.0.0.1, which no other host can reach"
            ));
        }
        if self.egress.allow.is_empty() {
            out.push(
                "[egress] allow is empty: requests may be relayed to any address, \
                 paid destinations included; list your carriers and networks"
                    .into(),
            );
        }
        let clustered = self.store.backend == "cassandra";
        match &self.cluster.secret {
            None if clustered => out.push(
                "the store is shared (cassandra) but [cluster] secret is not set: \
                 each node seals its own tokens and no other node can open them"
                    .into(),
            ),
            Some(secret) if secret.len() < 32 => out.push(format!(
                "[cluster] secret is {} characters; use 32 or more random ones",
                secret.len()
            )),
            _ => {}
        }
        out
    }

    /// The effective settings as TOML, every default filled in, with the
    /// secrets (cluster keys, the Cassandra and HEP passwords) replaced by
    /// `"<redacted>"`: what `check-config` prints.
    pub fn redacted_toml(&self) -> String {
        const SECRET_KEYS: [&str; 3] = ["secret", "previous_secrets", "password"];
        fn redact(value: &mut toml::Value) {
            match value {
                toml::Value::Table(table) => {
                    for (key, v) in table.iter_mut() {
                        if SECRET_KEYS.contains(&key.as_str()) {
                            *v = match v {
                                toml::Value::Array(items) => toml::Value::Array(
                                    items.iter().map(|_| "<redacted>".into()).collect(),
                                ),
                                _ => "<redacted>".into(),
                            };
                        } else {
                            redact(v);
                        }
                    }
                }
                toml::Value::Array(items) => items.iter_mut().for_each(redact),
                _ => {}
            }
        }
        let mut value = toml::Value::try_from(self).expect("the config serializes");
        redact(&mut value);
        toml::to_string_pretty(&value).expect("a TOML table")
    }

    /// The host of cluster URIs (temp-GRUUs, rewritten Contacts).
    pub fn cluster_domain(&self) -> String {
        self.cluster
            .domain
            .clone()
            .or_else(|| self.domains.first().cloned())
            .unwrap_or_else(|| "localhost".into())
    }

    /// The tenant a domain belongs to.
    pub fn tenant_of<'a>(&'a self, domain: &str) -> &'a str {
        self.tenants.tenant_of(domain)
    }

    /// Host[:port] to advertise in Via / Record-Route for a listener.
    pub fn advertised_for(&self, local: std::net::SocketAddr) -> String {
        if let Some(a) = &self.advertise {
            return a.clone();
        }
        let ip = if local.ip().is_unspecified() {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        } else {
            local.ip()
        };
        match ip {
            IpAddr::V4(v4) => format!("{v4}:{}", local.port()),
            IpAddr::V6(v6) => format!("[{v6}]:{}", local.port()),
        }
    }
}

#[cfg(test)]
mod tests;

//! The node as operators drive it: live reconfiguration (SIGHUP,
//! `switchyard reload`, `POST /reload`) and what the admin endpoint reads
//! ([`NodeControl`]).
//!
//! A reload reads the configuration file again and validates it whole; then
//! the tenants' policies that changed are compiled and checked; only when
//! everything passed are the domains, the tenant map and the new policy
//! versions published, shard by shard. Transactions already running keep
//! the policy version they started with. Settings outside `domains` and
//! `[tenants]` (listeners, store, limits, ...) take effect at the next
//! start; the reload reports which sections those are.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::Context;
use async_trait::async_trait;

use std::collections::BTreeMap;

use super::core::Core;
use crate::admin::latency::HistogramSnapshot;
use crate::admin::{Count, NodeControl, NodeStatus, ReloadReport, TransactionStats};
use crate::config::Config;
use crate::location::{EmbeddedStore, LocationStore};
use crate::net::Transport;
use crate::policy::tenants::Tenants;

/// Where a reload reads the configuration from: the file the node was
/// started with, with the command line's overrides applied again.
pub type ConfigSource = Arc<dyn Fn() -> anyhow::Result<Config> + Send + Sync>;

pub(crate) struct Control {
    pub core: Arc<Core>,
    pub tenants: Option<Arc<Tenants>>,
    pub source: std::sync::OnceLock<ConfigSource>,
    /// The configuration in force; the lock also serialises reloads.
    pub applied: tokio::sync::Mutex<Config>,
    pub started: Instant,
    pub draining: Arc<AtomicBool>,
    /// The dialog layer: calls, limits, CDRs.
    pub calls: Arc<crate::calls::CallService>,
    /// Set when the store is the embedded one (it can count bindings).
    pub embedded: Option<Arc<EmbeddedStore>>,
    /// Set when the store is Cassandra (its breaker).
    pub cassandra: Option<Arc<crate::cassandra::CassandraStore>>,
}

impl Control {
    pub async fn reload(&self) -> anyhow::Result<ReloadReport> {
        let source = self
            .source
            .get()
            .context("this node was not started from a configuration file: nothing to reload")?;
        let new = source()?;
        new.validate()
            .map_err(anyhow::Error::msg)
            .context("invalid configuration")?;
        let mut applied = self.applied.lock().await;
        let policies_changed = match &self.tenants {
            Some(tenants) => tenants.reconfigure(new.tenants.clone()).await?,
            None => Vec::new(),
        };
        let map = super::tenant_map(&new);
        for shard in &self.core.wiring().shards {
            shard.reconfigure(&new.domains, map.clone());
        }
        self.calls
            .reconfigure(&new.dialogs, super::configured_tenants(&new));
        let report = ReloadReport {
            policies_changed,
            domains: new.domains.clone(),
            tenants: new.tenants.domains.clone().into_iter().collect(),
            restart_needed: restart_needed(&applied, &new),
        };
        tracing::info!(
            policies_changed = ?report.policies_changed,
            domains = ?report.domains,
            restart_needed = ?report.restart_needed,
            "configuration reloaded"
        );
        *applied = new;
        Ok(report)
    }

    /// Calls through this node now.
    pub fn live_dialogs(&self) -> usize {
        self.calls.live()
    }

    /// Server transactions without a final response yet, on every shard.
    pub fn unanswered(&self) -> usize {
        self.core
            .wiring()
            .shards
            .iter()
            .map(|s| s.unanswered())
            .sum()
    }

    fn transactions(&self) -> TransactionStats {
        let (mut server, mut client, mut timers) = (0, 0, 0);
        for shard in &self.core.wiring().shards {
            let (s, c, t) = shard.counts();
            (server, client, timers) = (server + s, client + c, timers + t);
        }
        let unanswered = self.unanswered();
        let completed: usize = self
            .core
            .wiring()
            .shards
            .iter()
            .map(|s| s.completed())
            .sum();
        let stats = &self.core.stats;
        TransactionStats {
            server: server as u64,
            completed: completed as u64,
            client: client as u64,
            unanswered: unanswered as u64,
            timers: timers as u64,
            max: self.core.config.limits.max_transactions as u64,
            requests_total: stats.requests_in.get(),
            responses_total: stats.responses_in.get(),
            retransmissions_absorbed_total: stats.retransmissions_absorbed.get(),
            overloaded_total: stats.overloaded.get(),
        }
    }
}

/// The top-level sections (or keys) that differ between `old` and `new`
/// outside what a reload applies (`domains`, `[tenants]` but its
/// `watch_dir`).
fn restart_needed(old: &Config, new: &Config) -> Vec<String> {
    let comparable = |c: &Config| {
        let mut c = c.clone();
        c.domains = Vec::new();
        c.tenants = crate::policy::TenantsConfig {
            watch_dir: c.tenants.watch_dir.clone(),
            ..Default::default()
        };
        // Limits and call lifetimes apply at once; the switch, the sync
        // task's period and the CDR file at the next start.
        c.dialogs = crate::calls::DialogsConfig {
            enabled: c.dialogs.enabled,
            sync_ms: c.dialogs.sync_ms,
            cdr: c.dialogs.cdr.clone(),
            ..Default::default()
        };
        toml::Value::try_from(&c).unwrap_or(toml::Value::Boolean(false))
    };
    let (old, new) = (comparable(old), comparable(new));
    let (Some(old), Some(new)) = (old.as_table(), new.as_table()) else {
        return vec!["(unreadable)".into()];
    };
    let mut keys: Vec<String> = old
        .keys()
        .chain(new.keys())
        .filter(|k| old.get(*k) != new.get(*k))
        .cloned()
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

#[async_trait]
impl NodeControl for Control {
    fn counters(&self) -> Vec<Count> {
        let transport = self.core.wiring().transports.stats();
        let mut counts = node_counters(&self.core.stats, &transport);
        if let Some(hep) = &self.core.hep {
            counts.extend(hep_counters(hep));
        }
        counts.extend(call_counters(&self.core.stats, &self.calls.stats));
        counts
    }

    fn calls(&self) -> Vec<switchyard_admin::TenantCalls> {
        let counts = self.calls.counts();
        let tenants = counts.into_iter().map(|(tenant, (node, cluster))| {
            let node = u64::from(node);
            switchyard_admin::TenantCalls {
                tenant,
                node,
                cluster,
            }
        });
        tenants.collect()
    }

    fn cdrs(&self, after: Option<u64>, limit: usize) -> Vec<switchyard_admin::CdrLine> {
        let lines = self.calls.cdrs(after, limit).into_iter();
        lines
            .map(|(seq, record)| switchyard_admin::CdrLine { seq, record })
            .collect()
    }

    fn bindings_per_tenant(&self) -> Option<BTreeMap<String, u64>> {
        let store = self.embedded.as_ref()?;
        let tenants = match &self.tenants {
            Some(t) => t.config(),
            None => Arc::new(self.core.config.tenants.clone()),
        };
        let mut out = BTreeMap::new();
        for (domain, n) in store.bindings_by_domain() {
            *out.entry(tenants.tenant_of(&domain).to_owned())
                .or_insert(0) += n as u64;
        }
        Some(out)
    }

    fn store_latency(&self) -> Vec<(&'static str, HistogramSnapshot)> {
        let l = &self.core.store_latency;
        vec![
            ("register", l.register.snapshot()),
            ("lookup", l.lookup.snapshot()),
        ]
    }

    fn store_breaker(&self) -> Option<&'static str> {
        use crate::cassandra::BreakerState;
        Some(match self.cassandra.as_ref()?.breaker_state() {
            BreakerState::Closed { .. } => "closed",
            BreakerState::Open { .. } => "open",
            BreakerState::HalfOpen => "half_open",
        })
    }

    fn status(&self) -> NodeStatus {
        let wiring = self.core.wiring();
        let transport = wiring.transports.stats();
        let config = &self.core.config;
        NodeStatus {
            node_id: config.node_id.clone(),
            version: env!("CARGO_PKG_VERSION").into(),
            uptime_secs: self.started.elapsed().as_secs(),
            draining: self.draining.load(Ordering::Relaxed),
            store: self.core.store.backend().into(),
            bindings: self.embedded.as_ref().map(|s| s.binding_count() as u64),
            domains: self
                .applied
                .try_lock()
                .map_or_else(|_| config.domains.clone(), |c| c.domains.clone()),
            listeners: wiring
                .transports
                .local_addrs()
                .into_iter()
                .map(|(t, a)| format!("{t}:{a}"))
                .collect(),
            transactions: self.transactions(),
            dialogs: self.live_dialogs() as u64,
            connections: transport
                .open_connections
                .iter()
                .filter(|(t, _)| *t != Transport::Udp)
                .map(|(t, n)| (t.as_str().to_ascii_lowercase(), *n))
                .collect(),
        }
    }

    fn reload_tls(&self) -> Result<(), String> {
        self.core
            .wiring()
            .transports
            .tls()
            .reload()
            .map_err(|e| e.to_string())
    }

    async fn reload(&self) -> Result<ReloadReport, String> {
        Control::reload(self).await.map_err(|e| format!("{e:#}"))
    }

    fn store(&self) -> Arc<dyn LocationStore> {
        self.core.store.clone()
    }
}

/// The node counters the admin endpoint exports, with its transports'
/// per-source rate-limit drops and TCP connections refused at a cap.
fn node_counters(stats: &super::Stats, transport: &crate::transport::TransportStats) -> Vec<Count> {
    let count = |name, help, value| Count { name, help, value };
    vec![
        count(
            "switchyard_requests_total",
            "SIP requests received.",
            stats.requests_in.get(),
        ),
        count(
            "switchyard_responses_total",
            "SIP responses received.",
            stats.responses_in.get(),
        ),
        count(
            "switchyard_retransmissions_absorbed_total",
            "Retransmitted requests answered by their transaction.",
            stats.retransmissions_absorbed.get(),
        ),
        count(
            "switchyard_rejected_total",
            "Requests refused as malformed (400) or with too few Max-Forwards (483).",
            stats.rejected.get(),
        ),
        count(
            "switchyard_dropped_malformed_total",
            "Messages that did not parse, or responses that failed validation, dropped.",
            stats.dropped_malformed.get(),
        ),
        count(
            "switchyard_dropped_stray_total",
            "Responses matching no branch of ours, dropped.",
            stats.dropped_stray.get(),
        ),
        count(
            "switchyard_egress_refused_total",
            "Requests refused because the next hop is outside the egress allowlist.",
            stats.egress_refused.get(),
        ),
        count(
            "switchyard_auth_challenges_total",
            "Digest challenges sent (401/407).",
            stats.auth_challenged.get(),
        ),
        count(
            "switchyard_auth_failures_total",
            "Wrong credentials (403).",
            stats.auth_failed.get(),
        ),
        count(
            "switchyard_auth_throttled_total",
            "Sources throttled after repeated wrong credentials.",
            stats.auth_throttled.get(),
        ),
        count(
            "switchyard_relay_refused_total",
            "Requests from strangers to foreign domains refused (403).",
            stats.relay_refused.get(),
        ),
        count(
            "switchyard_overloaded_total",
            "New requests refused with 503 at the transaction cap.",
            stats.overloaded.get(),
        ),
        count(
            "switchyard_completed_evicted_total",
            "Completed transactions forgotten before Timer J at the completed-transaction cap.",
            stats.completed_evicted.get(),
        ),
        count(
            "switchyard_refused_draining_total",
            "New calls refused with 503 while draining.",
            stats.refused_draining.get(),
        ),
        count(
            "switchyard_branches_capped_total",
            "Fork targets left out by limits.max_branches.",
            stats.branches_capped.get(),
        ),
        count(
            "switchyard_contacts_capped_total",
            "REGISTERs refused at the per-AOR contact cap.",
            stats.contacts_capped.get(),
        ),
        count(
            "switchyard_rate_limited_total",
            "Messages dropped by the per-source rate limit.",
            transport.rate_limited,
        ),
        count(
            "switchyard_tcp_refused_inbound_total",
            "Inbound connections refused at limits.tcp_max_inbound.",
            transport.tcp_refused_inbound,
        ),
        count(
            "switchyard_tcp_refused_per_source_total",
            "Inbound connections refused at the per-source cap.",
            transport.tcp_refused_per_source,
        ),
        count(
            "switchyard_tcp_refused_outbound_total",
            "Outbound connections refused at limits.tcp_max_outbound.",
            transport.tcp_refused_outbound,
        ),
        count(
            "switchyard_handshake_failures_total",
            "TLS or WebSocket handshakes that failed or timed out.",
            transport.handshake_failures,
        ),
        count(
            "switchyard_tls_certificate_reloads_total",
            "Successful TLS certificate reloads.",
            transport.tls_certificate_reloads,
        ),
    ]
}

/// The dialog layer's counters.
fn call_counters(stats: &super::Stats, calls: &crate::calls::CallStats) -> [Count; 7] {
    let count = |name, help, value| Count { name, help, value };
    [
        count(
            "switchyard_calls_limited_tenant_total",
            "INVITEs refused by a tenant's concurrent-call limit.",
            stats.calls_limited_tenant.get(),
        ),
        count(
            "switchyard_calls_limited_user_total",
            "INVITEs refused by a user's concurrent-call limit.",
            stats.calls_limited_user.get(),
        ),
        count(
            "switchyard_cdrs_written_total",
            "CDRs written to the CDR file.",
            calls.cdrs_written.get(),
        ),
        count(
            "switchyard_cdr_errors_total",
            "CDRs that could not be written (the file's error is logged).",
            calls.cdr_errors.get(),
        ),
        count(
            "switchyard_cdr_dropped_total",
            "Call events dropped because the CDR writer fell behind.",
            calls.cdr_dropped.get(),
        ),
        count(
            "switchyard_dialog_hooks_total",
            "on-dialog-start and on-dialog-end calls made.",
            calls.dialog_hooks.get(),
        ),
        count(
            "switchyard_call_sync_errors_total",
            "Failed publishes or reads of the cluster's call counts.",
            calls.sync_errors.get(),
        ),
    ]
}

/// The HEP export's counters, when `[hep] collector` is set.
fn hep_counters(hep: &crate::hep::Hep) -> [Count; 2] {
    [
        Count {
            name: "switchyard_hep_exported_total",
            help: "SIP messages sent to the HEP collector.",
            value: hep.exported(),
        },
        Count {
            name: "switchyard_hep_dropped_total",
            help: "SIP messages not exported to HEP (queue full, too large, send refused).",
            value: hep.dropped(),
        },
    ]
}

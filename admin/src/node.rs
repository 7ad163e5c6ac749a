//! What the admin endpoint needs from the node it runs in, and the JSON
//! shapes of its answers (which the CLI parses back).

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use switchyard_location::LocationStore;

use crate::latency::HistogramSnapshot;

/// The running node, as the admin endpoint sees it. The host implements it;
/// tests can give a double.
#[async_trait]
pub trait NodeControl: Send + Sync + 'static {
    /// Counters for `/metrics`, names ending in `_total`.
    fn counters(&self) -> Vec<Count>;
    /// Registered contacts per tenant, when the store counts them cheaply
    /// (the embedded one).
    fn bindings_per_tenant(&self) -> Option<BTreeMap<String, u64>> {
        None
    }
    /// How long the location store took, by operation (`register`, `lookup`).
    fn store_latency(&self) -> Vec<(&'static str, HistogramSnapshot)> {
        Vec::new()
    }
    /// The store's circuit breaker (`closed`, `open`, `half_open`), if it
    /// has one.
    fn store_breaker(&self) -> Option<&'static str> {
        None
    }
    /// A snapshot of the node's state (`/status`).
    fn status(&self) -> NodeStatus;
    /// Reads the certificate files again (`POST /tls/reload`).
    fn reload_tls(&self) -> Result<(), String>;
    /// Reads the configuration file again and applies what can change at
    /// run time (`POST /reload`, SIGHUP); nothing changes on an error.
    async fn reload(&self) -> Result<ReloadReport, String>;
    /// The location store, for `/registrations`.
    fn store(&self) -> Arc<dyn LocationStore>;
    /// Calls per tenant now (`/calls`).
    fn calls(&self) -> Vec<TenantCalls> {
        Vec::new()
    }
    /// The latest CDRs of this node, after sequence number `after`
    /// (`/cdrs`), oldest first.
    fn cdrs(&self, _after: Option<u64>, _limit: usize) -> Vec<CdrLine> {
        Vec::new()
    }
}

/// One tenant of `GET /calls`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TenantCalls {
    pub tenant: String,
    /// Calls this node tracks.
    pub node: u64,
    /// Calls across the cluster, as this node last read the others' counts.
    pub cluster: i64,
}

/// One CDR of `GET /cdrs`: its sequence number on this node (pass the
/// last one seen as `after` to follow) and the record.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CdrLine {
    pub seq: u64,
    #[serde(flatten)]
    pub record: switchyard_proto::dialog::CallRecord,
}

/// One counter of the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Count {
    pub name: &'static str,
    pub help: &'static str,
    pub value: u64,
}

/// `GET /status`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct NodeStatus {
    pub node_id: String,
    pub version: String,
    pub uptime_secs: u64,
    /// True once SIGTERM started the drain (new calls get 503).
    pub draining: bool,
    /// `embedded` or `cassandra`.
    pub store: String,
    /// Bindings held, when the store can count them cheaply (embedded).
    pub bindings: Option<u64>,
    pub domains: Vec<String>,
    /// `transport:addr` of every listener.
    pub listeners: Vec<String>,
    pub transactions: TransactionStats,
    /// Calls this node tracks (from their INVITE to their BYE or end).
    pub dialogs: u64,
    /// Open connections by transport (`tcp`, `tls`, `ws`, `wss`).
    pub connections: BTreeMap<String, u64>,
}

/// `GET /transactions`: the transaction tables now, and their counters.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct TransactionStats {
    /// Live server transactions (completed ones absorbing retransmissions
    /// included).
    pub server: u64,
    /// Of `server`, the completed non-INVITEs kept compact for Timer J.
    #[serde(default)]
    pub completed: u64,
    pub client: u64,
    /// Server transactions without a final response yet.
    pub unanswered: u64,
    pub timers: u64,
    /// `[limits] max_transactions`.
    pub max: u64,
    pub requests_total: u64,
    pub responses_total: u64,
    pub retransmissions_absorbed_total: u64,
    /// New requests refused with 503 at the transaction cap.
    pub overloaded_total: u64,
}

/// `POST /reload`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ReloadReport {
    /// Tenants whose policy was replaced, added or removed.
    pub policies_changed: Vec<String>,
    /// The domains served from now on.
    pub domains: Vec<String>,
    /// Domain → tenant from now on.
    pub tenants: BTreeMap<String, String>,
    /// Sections that changed in the file but apply only at the next start
    /// (listeners, store, limits...), left as they were.
    pub restart_needed: Vec<String>,
}

/// One AOR of `GET /registrations`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Registration {
    pub aor: String,
    pub tenant: String,
    pub bindings: Vec<BindingView>,
}

/// One binding as operators read it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BindingView {
    pub contact: String,
    /// Seconds left.
    pub expires_in: u64,
    pub q: Option<String>,
    pub instance: Option<String>,
    pub reg_id: Option<u32>,
    pub path: Vec<String>,
    pub transport: String,
    /// Where the REGISTER came from (the NAT's public side).
    pub received: String,
    pub node: Option<String>,
    pub user_agent: Option<String>,
    pub call_id: String,
    pub cseq: u32,
    /// Unix seconds.
    pub registered_at: u64,
}

/// `GET /tenants`: a tenant, its domains and its policy.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TenantInfo {
    pub tenant: String,
    /// Empty for the default tenant: it has every domain no other has.
    pub domains: Vec<String>,
    pub default: bool,
    pub policy: serde_json::Value,
}

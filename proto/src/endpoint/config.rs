//! What an [`Endpoint`](super::Endpoint) is made with: its settings, the
//! tenants of its domains, and the clock readings it is driven by.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use ipnet::IpNet;

use crate::cluster::ContactRewrite;
use crate::proxy_tx::TxSettings;
use crate::registrar::RegistrarConfig;

/// The node's settings for every request (from its `switchyard.toml`).
#[derive(Debug, Clone)]
pub struct EndpointConfig {
    /// Transaction timers and Timer C.
    pub tx: TxSettings,
    /// New server transactions beyond this many live ones (all shards
    /// together, counted in [`EndpointConfig::live`]) get 503 statelessly.
    pub max_transactions: usize,
    /// Completed non-INVITEs this shard keeps for Timer J at most (the
    /// node's `limits.max_completed_transactions` over its shards); past
    /// it the oldest is forgotten early.
    pub max_completed: usize,
    /// The live server transactions of the node (shared by its shards).
    pub live: Arc<AtomicUsize>,
    /// Set while the node drains before it stops: new dialog-forming
    /// requests get 503 + Retry-After, everything else goes on.
    pub draining: Arc<AtomicBool>,
    /// The calls through the node (shared by its shards: a BYE may land on
    /// another shard than its INVITE did).
    pub calls: Arc<std::sync::Mutex<crate::dialog::Calls>>,
    /// `[dialogs] enabled`: INVITEs this node routes are tracked as calls.
    pub track_calls: bool,
    /// RFC 5393 Max-Breadth when the request carries none (and its cap).
    pub max_breadth: u32,
    /// Branches per request, failover included.
    pub max_branches: usize,
    /// The registrar's intervals and contact cap.
    pub registrar: RegistrarConfig,
    /// This node's id, stored with the bindings it writes.
    pub node_id: String,
    /// `[auth]` is on: new requests are vouched for as the table in
    /// `auth.rs` says, their credentials checked by
    /// [`IoKind::Authenticate`](super::IoKind::Authenticate).
    pub auth: bool,
    /// `[auth] trusted`: sources never challenged, that may relay.
    pub trusted: Vec<IpNet>,
    /// Which tenant a domain belongs to.
    pub tenants: TenantMap,
    /// This endpoint's shard of the node: written into the branch ids it
    /// mints (see [`super::shard_of`]), so responses come back to it.
    pub shard: u8,
}

/// Domains to tenants, and the per-tenant Contact rewriting mode.
#[derive(Debug, Clone, Default)]
pub struct TenantMap {
    /// Domain (lower case) → tenant.
    pub domains: BTreeMap<String, String>,
    /// The tenant of any other domain.
    pub default: String,
    /// Tenant → Contact rewriting mode, for those that set one.
    pub contact_rewrite: BTreeMap<String, ContactRewrite>,
    /// The mode of every other tenant (`cluster.contact_rewrite`).
    pub default_rewrite: ContactRewrite,
    /// Tenant → sources that speak for its users (`tenants.trusted`).
    pub trusted: BTreeMap<String, Vec<IpNet>>,
    /// Tenants whose users may register others' AORs.
    pub third_party_register: Vec<String>,
}

impl TenantMap {
    pub fn tenant_of<'a>(&'a self, domain: &str) -> &'a str {
        self.domains
            .iter()
            .find(|(d, _)| d.eq_ignore_ascii_case(domain))
            .map_or(self.default.as_str(), |(_, t)| t.as_str())
    }

    /// Whether `source` speaks for the users of `tenant`.
    pub fn trusts(&self, tenant: &str, source: std::net::IpAddr) -> bool {
        self.trusted
            .get(tenant)
            .is_some_and(|nets| nets.iter().any(|n| n.contains(&source)))
    }

    /// The Contact rewriting mode for a UA of `domain`.
    pub fn contact_rewrite_for(&self, domain: &str) -> ContactRewrite {
        self.contact_rewrite
            .get(self.tenant_of(domain))
            .copied()
            .unwrap_or(self.default_rewrite)
    }
}

/// The two clocks an endpoint is driven by: the monotonic one for timers,
/// the wall clock for what other nodes must agree on (binding expiry,
/// token lifetimes). Tests make both up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    pub instant: Instant,
    pub wall: SystemTime,
}

impl Now {
    pub fn new(instant: Instant, wall: SystemTime) -> Self {
        Now { instant, wall }
    }

    /// Unix seconds of the wall clock.
    pub fn unix_secs(&self) -> u64 {
        self.wall
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }
}

//! `[dialogs]`: call limits, call lifetime, CDRs, and how often the nodes
//! of a cluster exchange their call counts.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use switchyard_proto::dialog::{CallLimits, DialogSettings, LimitsTable};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DialogsConfig {
    /// Track calls at all. Off: no call counts, limits, CDRs or dialog
    /// hooks (a node that only relays, or the benchmark's baseline).
    pub enabled: bool,
    /// A call still up after this long is ended (its CDR says
    /// `max-duration`) and stops counting towards the limits.
    pub max_duration_secs: u64,
    /// End a call whose session was not refreshed within its RFC 4028
    /// `Session-Expires` (re-INVITE or UPDATE). Off: only recorded.
    pub enforce_session_timers: bool,
    /// Calls per tenant at once, across the cluster (0: no limit).
    pub max_calls: u32,
    /// Calls one user (caller or callee AOR of our domains) is in at once.
    pub max_calls_per_user: u32,
    /// The answer to a call over `max_calls`.
    pub tenant_status: u16,
    /// The answer to a call over `max_calls_per_user`.
    pub user_status: u16,
    /// Tenant → its own limits, replacing the four above for it.
    pub tenants: BTreeMap<String, TenantLimitsConfig>,
    /// How often the node publishes its call counts to the store and
    /// reads the other nodes' (their shares live 5 × this long).
    pub sync_ms: u64,
    pub cdr: CdrConfig,
}

impl Default for DialogsConfig {
    fn default() -> Self {
        let limits = CallLimits::default();
        DialogsConfig {
            enabled: true,
            max_duration_secs: 4 * 3600,
            enforce_session_timers: false,
            max_calls: limits.max_calls,
            max_calls_per_user: limits.max_calls_per_user,
            tenant_status: limits.tenant_status,
            user_status: limits.user_status,
            tenants: BTreeMap::new(),
            sync_ms: 1000,
            cdr: CdrConfig::default(),
        }
    }
}

/// `[dialogs.tenants.<tenant>]`; an unset key takes `[dialogs]`'s value.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TenantLimitsConfig {
    pub max_calls: Option<u32>,
    pub max_calls_per_user: Option<u32>,
    pub tenant_status: Option<u16>,
    pub user_status: Option<u16>,
}

/// `[dialogs.cdr]`: one JSON line per call, answered or not.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CdrConfig {
    /// The JSON-lines file (none: CDRs are only kept in memory for
    /// `switchyard cdr tail`).
    pub file: Option<PathBuf>,
    /// Rotate the file when it reaches this size: `cdr.jsonl` becomes
    /// `cdr.jsonl.1`, the older ones shift up.
    pub rotate_bytes: u64,
    /// Rotated files kept.
    pub keep: u32,
    /// The latest CDRs kept in memory for `GET /cdrs`.
    pub recent: usize,
    /// With the Cassandra store, also write every CDR to its `cdrs` table.
    pub cassandra: bool,
    /// How long the `cdrs` table keeps a CDR, in days.
    pub cassandra_ttl_days: u32,
}

impl Default for CdrConfig {
    fn default() -> Self {
        CdrConfig {
            file: None,
            rotate_bytes: 64 << 20,
            keep: 10,
            recent: 1000,
            cassandra: true,
            cassandra_ttl_days: 90,
        }
    }
}

impl DialogsConfig {
    pub fn settings(&self) -> DialogSettings {
        DialogSettings {
            max_duration: Duration::from_secs(self.max_duration_secs),
            enforce_session_timers: self.enforce_session_timers,
        }
    }

    pub fn limits(&self) -> LimitsTable {
        let default = CallLimits {
            max_calls: self.max_calls,
            max_calls_per_user: self.max_calls_per_user,
            tenant_status: self.tenant_status,
            user_status: self.user_status,
        };
        let tenants = self
            .tenants
            .iter()
            .map(|(name, t)| {
                let limits = CallLimits {
                    max_calls: t.max_calls.unwrap_or(default.max_calls),
                    max_calls_per_user: t.max_calls_per_user.unwrap_or(default.max_calls_per_user),
                    tenant_status: t.tenant_status.unwrap_or(default.tenant_status),
                    user_status: t.user_status.unwrap_or(default.user_status),
                };
                (name.clone(), limits)
            })
            .collect();
        LimitsTable { default, tenants }
    }

    pub fn sync(&self) -> Duration {
        Duration::from_millis(self.sync_ms)
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.max_duration_secs == 0 {
            return Err("key `dialogs.max_duration_secs`: must be at least 1".into());
        }
        if self.sync_ms < 10 {
            return Err("key `dialogs.sync_ms`: must be at least 10".into());
        }
        let statuses = self.tenants.iter().flat_map(|(name, t)| {
            [t.tenant_status, t.user_status]
                .into_iter()
                .flatten()
                .map(move |s| (format!("dialogs.tenants.{name}"), s))
        });
        let top = [self.tenant_status, self.user_status].map(|s| ("dialogs".to_string(), s));
        for (key, status) in top.into_iter().chain(statuses) {
            if !(400..=699).contains(&status) {
                return Err(format!(
                    "key `{key}`: a limit's status must be a final error (400..=699), not {status}"
                ));
            }
        }
        if self.cdr.cassandra_ttl_days == 0 || self.cdr.cassandra_ttl_days > 7300 {
            return Err("key `dialogs.cdr.cassandra_ttl_days`: must be 1..=7300".into());
        }
        if self.cdr.rotate_bytes < 4096 {
            return Err("key `dialogs.cdr.rotate_bytes`: must be at least 4096".into());
        }
        Ok(())
    }
}

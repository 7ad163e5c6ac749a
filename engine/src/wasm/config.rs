//! The `[policy]` table: sandbox limits and failure handling of the engine.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::EngineError;

/// Engine-wide settings (`[policy]` in the node's TOML). Every key is
/// optional; the defaults suit a proxy with a few hundred tenants.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    /// Budget of one hook call in its thread's CPU time, in milliseconds
    /// (default 5; at most 4 × this of wall clock). A guest past it is
    /// interrupted (counted `timeout`).
    pub hook_deadline_ms: u64,
    /// Budget of instantiating an instance and running its `init`, in
    /// milliseconds of CPU time (default 100): a policy may build tables from
    /// its config there, once per instance.
    pub init_deadline_ms: u64,
    /// Period of the epoch ticker that enforces the deadline, in milliseconds
    /// (default 1). From a call's first tick on, its thread's CPU time is
    /// checked at every tick (`cpu_deadline`).
    pub epoch_tick_ms: u64,
    /// Linear memory cap of one policy instance, in MiB (default 16). A guest
    /// growing past it gets an allocation failure (counted `out-of-memory`).
    pub max_memory_mib: u64,
    /// Policy instances the whole node may hold at once, across tenants and
    /// versions (default 1000). Sizes the pooling allocator.
    pub max_instances: u32,
    /// Instances one policy version may hold at once (default 64): at most
    /// this many hook calls of one version run concurrently. A call finding
    /// none free does not wait: it gets the failure-mode decision.
    pub max_instances_per_version: u32,
    /// An instance is recycled (dropped, a fresh one instantiated on demand)
    /// after this many calls (default 100 000), so leaks in a guest stay bounded.
    pub instance_max_calls: u64,
    /// Consecutive failures after which a version is quarantined (default 5).
    pub quarantine_after: u32,
    /// How long a quarantined version is skipped before it is tried again,
    /// in seconds (default 30).
    pub quarantine_secs: u64,
    /// `Retry-After` of the 503 a fail-closed tenant answers, in seconds (default 5).
    pub retry_after_secs: u32,
    /// Directory for precompiled modules (`.cwasm`, named by content hash and
    /// engine fingerprint), so a restart or reload skips compilation. None
    /// (default): compile results are cached in memory only. The directory
    /// must be writable by the proxy only: its files are loaded as native code.
    pub cache_dir: Option<PathBuf>,
    /// What `clock.utc-offset-minutes` reports, in minutes east of UTC
    /// (default 0). The node does not read the OS time zone.
    pub utc_offset_minutes: i32,
    /// How often `kv` counters are shared with the other nodes, in ms
    /// (default 1000), when the store is cluster-wide (Cassandra): each
    /// node publishes its shares and reads the others' this often. 0 keeps
    /// every counter per node. See `kv_sync.rs`.
    pub kv_sync_ms: u64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            hook_deadline_ms: 5,
            init_deadline_ms: 100,
            epoch_tick_ms: 1,
            max_memory_mib: 16,
            max_instances: 1000,
            max_instances_per_version: 64,
            instance_max_calls: 100_000,
            quarantine_after: 5,
            quarantine_secs: 30,
            retry_after_secs: 5,
            cache_dir: None,
            utc_offset_minutes: 0,
            kv_sync_ms: 1000,
        }
    }
}

impl EngineConfig {
    /// Refuses values the engine cannot honour, naming the key to change.
    pub fn validate(&self) -> Result<(), EngineError> {
        let bad = |key: &'static str, why: &'static str| Err(EngineError::Config { key, why });
        if self.epoch_tick_ms == 0 {
            return bad("epoch_tick_ms", "must be at least 1");
        }
        if self.hook_deadline_ms < self.epoch_tick_ms {
            return bad("hook_deadline_ms", "must be at least epoch_tick_ms");
        }
        if self.init_deadline_ms < self.epoch_tick_ms {
            return bad("init_deadline_ms", "must be at least epoch_tick_ms");
        }
        if self.max_memory_mib == 0 || self.max_memory_mib > 4096 {
            return bad("max_memory_mib", "must be between 1 and 4096");
        }
        if self.max_instances == 0 {
            return bad("max_instances", "must be at least 1");
        }
        if self.max_instances_per_version == 0 {
            return bad("max_instances_per_version", "must be at least 1");
        }
        if self.instance_max_calls == 0 {
            return bad("instance_max_calls", "must be at least 1");
        }
        if self.quarantine_after == 0 {
            return bad("quarantine_after", "must be at least 1");
        }
        if !(-14 * 60..=14 * 60).contains(&self.utc_offset_minutes) {
            return bad("utc_offset_minutes", "must be within ±840 (±14 h)");
        }
        Ok(())
    }

    pub(crate) fn memory_cap_bytes(&self) -> usize {
        usize::try_from(self.max_memory_mib << 20).unwrap_or(usize::MAX)
    }

    /// Epoch ticks a hook call may run: the deadline rounded up to whole ticks.
    pub(crate) fn deadline_ticks(&self) -> u64 {
        self.hook_deadline_ms.div_ceil(self.epoch_tick_ms).max(1)
    }

    /// Epoch ticks instantiation plus `init` may run.
    pub(crate) fn init_deadline_ticks(&self) -> u64 {
        self.init_deadline_ms.div_ceil(self.epoch_tick_ms).max(1)
    }

    pub(crate) fn tick(&self) -> Duration {
        Duration::from_millis(self.epoch_tick_ms)
    }

    pub(crate) fn quarantine(&self) -> Duration {
        Duration::from_secs(self.quarantine_secs)
    }
}

/// What a tenant's transactions get when its policy cannot decide (trap,
/// timeout, memory cap, invalid decision, quarantine, no free instance).
///
/// Envoy's `fail_open` defaults to false for the same reason this defaults to
/// fail-closed: a policy often enforces something (blocked callers, rate
/// limits, toll fraud rules), and silently skipping it is the worse surprise.
/// A 503 with `Retry-After` makes well-behaved UAs retry shortly.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureMode {
    /// Fall back to default routing: every hook's built-in default.
    FailOpen,
    /// Refuse: initial requests and REGISTERs get 503 "Policy Unavailable"
    /// with `Retry-After`; responses pass and branch failures fail as usual.
    #[default]
    FailClosed,
}

impl FailureMode {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureMode::FailOpen => "fail-open",
            FailureMode::FailClosed => "fail-closed",
        }
    }
}

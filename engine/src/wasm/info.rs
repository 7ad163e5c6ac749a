//! What `switchyard policy list` and the metrics endpoint show of a version.

use std::time::SystemTime;

use super::FailureMode;
use super::compile::CompiledFrom;
use super::failure::FailureKind;

/// A snapshot of a version for `switchyard policy list` and metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionInfo {
    pub tenant: String,
    /// A file path or `builtin:<name>`.
    pub source: String,
    /// sha256 of the module bytes, hex.
    pub hash: String,
    pub loaded_at: SystemTime,
    pub failure_mode: FailureMode,
    pub compiled_from: CompiledFrom,
    /// Hook calls, including those answered by the fallback.
    pub calls: u64,
    /// Failed calls by kind (every kind listed, in [`FailureKind::ALL`] order).
    pub failures: Vec<(FailureKind, u64)>,
    /// True while quarantined (or probing after a quarantine).
    pub quarantined: bool,
    /// Calls answered by the fallback because of the quarantine.
    pub quarantined_calls: u64,
    /// `on-complete` calls skipped because no idle instance was free.
    pub shed: u64,
    /// Calls answered by the fallback because no instance could be had
    /// (`max_instances_per_version` or the node's pool exhausted).
    pub exhausted: u64,
    /// Instances dropped after `instance_max_calls`.
    pub recycled: u64,
    /// Header edits of proxy-owned fields dropped from decisions.
    pub ignored_edits: u64,
    pub instances_live: usize,
    pub instances_idle: usize,
    /// Guest log lines dropped by the rate limit.
    pub logs_dropped: u64,
}

impl VersionInfo {
    /// The first 12 hex digits of the hash, for display.
    pub fn short_hash(&self) -> &str {
        &self.hash[..self.hash.len().min(12)]
    }

    pub fn total_failures(&self) -> u64 {
        self.failures.iter().map(|(_, n)| n).sum()
    }
}

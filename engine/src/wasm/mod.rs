//! The WebAssembly policy engine: runs tenants' policy components
//! (`wit/policy.wit`, worlds `switchyard:policy/policy@0.1.2` and
//! `dialog-policy`) behind the
//! [`Policy`](crate::Policy) trait. Each loaded module version is a
//! [`PolicyVersion`]; the node publishes one per tenant and swaps it live.
//!
//! # The sandbox
//!
//! A policy is untrusted code sharing the proxy's process, so it gets
//! nothing by default and every way it can misbehave is bounded:
//!
//! | concern      | bound                                                                  |
//! |--------------|------------------------------------------------------------------------|
//! | capabilities | only our imports: `log`, `metrics`, `clock`, per-tenant `kv`, cached `location`. No files, sockets, env or other clocks: std's `wasi:cli/io/clocks/filesystem` imports are linked to traps, anything else is refused at load. `wasi:random` is real randomness (std's `HashMap` needs it). |
//! | CPU          | a deadline per hook call (`hook_deadline_ms`, default 5 ms; instantiation plus `init` get `init_deadline_ms`, default 100 ms) of the thread's CPU time, checked by epoch interruption: a ticker thread advances the engine's epoch every `epoch_tick_ms`; once a call's ticks have passed, `cpu_deadline` lets it go on while its thread's CPU time is under budget, and never past 4 × the budget of wall clock |
//! | memory       | a cap per instance (`max_memory_mib`, default 16 MiB) from a store limiter and the pooling allocator's slot size; growth past it fails and the guest's abort is counted as out-of-memory |
//! | instances    | a pooling allocator sized for `max_instances` node-wide, `max_instances_per_version` per version; a call that finds none free gets the fallback at once, never waits |
//! | decisions    | validated (`convert.rs`): reply codes 300..=699, no CR/LF in header values, SIP URIs that parse, caps on edit size, targets and ctx; edits of proxy-owned fields are dropped |
//! | logs         | at most 100 guest lines per second per version, 1 KiB each                          |
//!
//! # Instances
//!
//! Instances (a `Store` each, so guests share no memory) are pooled per
//! version and reused, since instantiation costs tens of microseconds and a
//! call on a warm instance about one. Each call gets a fresh deadline. An
//! instance is dropped after a trap, timeout or out-of-memory (a trapped
//! store cannot be entered again) and recycled after `instance_max_calls`.
//! State a policy keeps in memory is therefore best-effort; the WIT tells
//! authors to use `ctx` and `kv`.
//!
//! # Failures
//!
//! A call that traps, times out, hits the memory cap, cannot instantiate or
//! returns a decision the host refuses is counted by kind, logged at warn
//! with the guest's backtrace, and answered by the tenant's [`FailureMode`]:
//!
//! | hook                | fail-open        | fail-closed (default)                    |
//! |---------------------|------------------|------------------------------------------|
//! | `on-request`        | default routing  | 503 "Policy Unavailable" + `Retry-After` |
//! | `on-register`       | allow            | 503 + `Retry-After`                      |
//! | `on-response`       | pass             | pass                                     |
//! | `on-branch-failure` | fail (best response upstream) | fail                        |
//! | `on-complete`       | nothing          | nothing                                  |
//!
//! After `quarantine_after` consecutive failures a version is quarantined for
//! `quarantine_secs`: its hooks get the failure-mode decision without calling
//! the guest. Then one call probes it; a success ends the quarantine, a
//! failure starts another. One tenant's policy failing never touches another
//! tenant's: separate stores, separate versions, separate breakers.
//!
//! # Loading
//!
//! [`PolicyEngine::load`] compiles (cached in memory by content hash, and on
//! disk as `.cwasm` when `cache_dir` is set), checks imports and the world,
//! runs `init` and a smoke call, and returns a version holding one warm
//! instance. Publishing it (an `ArcSwap`) is the caller's business.

mod bindings;
mod compile;
mod config;
mod convert;
mod cpu_deadline;
mod dialog;
mod engine;
mod failure;
mod host_api;
mod info;
mod instance;
mod kv;
mod kv_sync;
mod load;
mod metrics;
mod version;

use std::path::PathBuf;

pub use compile::CompiledFrom;
pub use config::{EngineConfig, FailureMode};
pub use dialog::CallCounts;
pub use engine::{PolicyEngine, PolicyLocation};
pub use failure::FailureKind;
pub use info::VersionInfo;
pub use kv::{CounterShare, TenantKv};
pub use kv_sync::KvSync;
pub use load::{LoadError, LoadSpec};
pub use metrics::{HISTOGRAM_BOUNDS, Histogram, MetricsSnapshot, TenantMetrics};
pub use version::PolicyVersion;

/// Why the engine could not be built.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("[policy] {key}: {why}")]
    Config {
        key: &'static str,
        why: &'static str,
    },
    #[error("[policy] cache_dir {}: cannot create: {source}", dir.display())]
    CacheDir {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start the policy epoch ticker thread: {0}")]
    Ticker(std::io::Error),
    #[error(
        "cannot set up the WebAssembly engine (check [policy] max_instances and max_memory_mib against the address space): {0}"
    )]
    Wasmtime(String),
}

impl EngineError {
    fn wasmtime(error: wasmtime::Error) -> EngineError {
        EngineError::Wasmtime(format!("{error:#}"))
    }
}

#[cfg(test)]
#[path = "testing.rs"]
pub(crate) mod testing;

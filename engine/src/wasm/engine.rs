//! The wasmtime engine every policy runs on: sandbox settings, the epoch
//! ticker, the linker with our imports, and the per-tenant state.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;

use parking_lot::Mutex;
use rand::RngCore;
use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::bindings;
use super::compile::CompileCache;
use super::host_api::HostState;
use super::kv::TenantKv;
use super::metrics::{MetricsSnapshot, TenantMetrics};
use super::{EngineConfig, EngineError};
use switchyard_location::LocationStore;

/// Guard pages after each linear memory. With memories reserved at their
/// cap (not 4 GiB) cranelift emits bounds checks anyway; the guard only
/// lets it fold small constant offsets into them.
const MEMORY_GUARD_BYTES: u64 = 64 << 10;
/// Core instances, memories and tables one component may contain: a Rust
/// `wasm32-wasip2` component has a main module plus a few adapter shims
/// sharing one memory. Generous, so other toolchains' components fit.
const CORE_INSTANCES_PER_COMPONENT: u32 = 16;
const MEMORIES_PER_COMPONENT: u32 = 2;
const TABLES_PER_COMPONENT: u32 = 8;
/// Largest `wasi:random` request served (std asks for 16 bytes).
const MAX_RANDOM_BYTES: u64 = 64 << 10;
/// The `wasi:random` version we define; wasmtime's linker matches any
/// semver-compatible `0.2.x` import to it.
const WASI_RANDOM_VERSION: &str = "0.2.6";

/// Loads and runs policy modules. One per node; cheap to clone.
#[derive(Clone)]
pub struct PolicyEngine {
    pub(crate) inner: Arc<EngineInner>,
}

/// Shared by the engine handle and every loaded version: a version keeps the
/// epoch ticker running (and so its deadline enforced) for as long as it lives.
pub(crate) struct EngineInner {
    pub engine: Engine,
    pub config: EngineConfig,
    /// Our imports and `wasi:random`; each load clones it and stubs the
    /// component's remaining (tolerated) imports with traps.
    pub linker: Linker<HostState>,
    pub compiled: CompileCache,
    pub location: Option<Arc<PolicyLocation>>,
    tenants: Mutex<HashMap<String, TenantState>>,
    _ticker: EpochTicker,
}

#[derive(Clone, Default)]
struct TenantState {
    kv: Arc<TenantKv>,
    metrics: Arc<TenantMetrics>,
}

/// The location store as policies may read it: a tenant's policy sees the
/// bindings of its own tenant's domains only (`[tenants] domains`), never
/// another tenant's users.
pub struct PolicyLocation {
    pub store: Arc<dyn LocationStore>,
    pub tenants: crate::SharedTenantsConfig,
    /// The node's call counts, for the `calls` import (none: it reads 0).
    pub calls: Option<Arc<dyn super::CallCounts>>,
}

impl PolicyLocation {
    /// `store` as seen through the fixed tenant map `tenants`.
    pub fn new(store: Arc<dyn LocationStore>, tenants: crate::TenantsConfig) -> Self {
        Self::shared(store, Arc::new(arc_swap::ArcSwap::from_pointee(tenants)))
    }

    /// `store` as seen through the node's live tenant map (reloads apply).
    pub fn shared(store: Arc<dyn LocationStore>, tenants: crate::SharedTenantsConfig) -> Self {
        PolicyLocation {
            store,
            tenants,
            calls: None,
        }
    }

    /// With the node's call counts behind the `calls` import.
    pub fn with_calls(mut self, calls: Arc<dyn super::CallCounts>) -> Self {
        self.calls = Some(calls);
        self
    }

    /// The unexpired bindings of `aor` in the store's cache (never waits
    /// for a remote backend), when its domain is `tenant`'s; else none.
    pub fn bindings(
        &self,
        tenant: &str,
        aor: &switchyard_location::Aor,
        now: std::time::SystemTime,
    ) -> Vec<switchyard_location::Binding> {
        if self.tenants.load().tenant_of(aor.domain()) != tenant {
            return Vec::new();
        }
        let mut bindings = self.store.cached(aor, now).unwrap_or_default();
        bindings.retain(|b| !b.is_expired(now));
        bindings
    }
}

impl PolicyEngine {
    /// Builds the engine: refuses an invalid config, reserves the instance
    /// pool, starts the epoch ticker. `location` backs the `location`
    /// import (None: lookups return nothing).
    pub fn new(
        config: EngineConfig,
        location: Option<PolicyLocation>,
    ) -> Result<PolicyEngine, EngineError> {
        config.validate()?;
        let engine = Engine::new(&wasmtime_config(&config)).map_err(EngineError::wasmtime)?;
        let linker = base_linker(&engine).map_err(EngineError::wasmtime)?;
        let compiled = CompileCache::new(&engine, config.cache_dir.clone());
        if let Some(dir) = &config.cache_dir {
            std::fs::create_dir_all(dir).map_err(|source| EngineError::CacheDir {
                dir: dir.clone(),
                source,
            })?;
        }
        let ticker = EpochTicker::start(engine.clone(), config.tick())?;
        Ok(PolicyEngine {
            inner: Arc::new(EngineInner {
                engine,
                config,
                linker,
                compiled,
                location: location.map(Arc::new),
                tenants: Mutex::new(HashMap::new()),
                _ticker: ticker,
            }),
        })
    }

    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    /// Policy instances alive now (pooled slots in use), out of
    /// `[policy] max_instances`.
    pub fn live_instances(&self) -> u64 {
        self.inner
            .engine
            .pooling_allocator_metrics()
            .map_or(0, |m| m.component_instances())
    }

    /// The tenant's key/value store, shared by all its policy versions.
    pub fn kv(&self, tenant: &str) -> Arc<TenantKv> {
        self.inner.tenant(tenant).kv
    }

    /// Every tenant's key/value store that exists on this node (created by
    /// the tenant's first hook call), for the kv sync.
    pub fn kv_stores(&self) -> Vec<(String, Arc<TenantKv>)> {
        let tenants = self.inner.tenants.lock();
        tenants
            .iter()
            .map(|(tenant, state)| (tenant.clone(), state.kv.clone()))
            .collect()
    }

    /// The tenant's guest-defined metrics.
    pub fn metrics(&self, tenant: &str) -> Arc<TenantMetrics> {
        self.inner.tenant(tenant).metrics
    }

    /// Every tenant's guest-defined metrics, sorted by tenant, for the admin
    /// `/metrics` endpoint.
    pub fn metrics_snapshot(&self) -> Vec<(String, MetricsSnapshot)> {
        let tenants = self.inner.tenants.lock().clone();
        let mut out: Vec<_> = tenants
            .into_iter()
            .map(|(tenant, state)| (tenant, state.metrics.snapshot()))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

impl EngineInner {
    pub(crate) fn tenant_state(&self, tenant: &str) -> (Arc<TenantKv>, Arc<TenantMetrics>) {
        let state = self.tenant(tenant);
        (state.kv, state.metrics)
    }

    fn tenant(&self, tenant: &str) -> TenantState {
        self.tenants
            .lock()
            .entry(tenant.to_owned())
            .or_default()
            .clone()
    }
}

fn wasmtime_config(config: &EngineConfig) -> Config {
    let cap = config.memory_cap_bytes();
    let total = config.max_instances;
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(total)
        .total_core_instances(total.saturating_mul(CORE_INSTANCES_PER_COMPONENT))
        .total_memories(total.saturating_mul(MEMORIES_PER_COMPONENT))
        .total_tables(total.saturating_mul(TABLES_PER_COMPONENT))
        .max_core_instances_per_component(CORE_INSTANCES_PER_COMPONENT)
        .max_memories_per_component(MEMORIES_PER_COMPONENT)
        .max_tables_per_component(TABLES_PER_COMPONENT)
        .max_memory_size(cap);
    let mut wasm = Config::new();
    wasm.wasm_component_model(true)
        .epoch_interruption(true)
        // Reserve each memory slot at the cap rather than wasmtime's 4 GiB
        // default: 1000 slots × (4 GiB + 2 GiB guard) exhausts the address
        // space (ENOMEM at startup). The price is explicit bounds checks.
        .memory_reservation(cap as u64)
        .memory_guard_size(MEMORY_GUARD_BYTES)
        .memory_reservation_for_growth(0)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    wasm
}

/// Our world's imports, plus `wasi:random` so std's `HashMap` (which seeds
/// itself from `insecure-seed`) works in a policy.
fn base_linker(engine: &Engine) -> wasmtime::Result<Linker<HostState>> {
    let mut linker = Linker::new(engine);
    bindings::Policy::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |state| state)?;

    let mut random = linker.instance(&format!("wasi:random/random@{WASI_RANDOM_VERSION}"))?;
    random.func_wrap("get-random-bytes", |_, (len,): (u64,)| random_bytes(len))?;
    random.func_wrap("get-random-u64", |_, (): ()| Ok((rand::rng().next_u64(),)))?;
    let mut insecure = linker.instance(&format!("wasi:random/insecure@{WASI_RANDOM_VERSION}"))?;
    insecure.func_wrap("get-insecure-random-bytes", |_, (len,): (u64,)| {
        random_bytes(len)
    })?;
    insecure.func_wrap("get-insecure-random-u64", |_, (): ()| {
        Ok((rand::rng().next_u64(),))
    })?;
    let mut seed = linker.instance(&format!("wasi:random/insecure-seed@{WASI_RANDOM_VERSION}"))?;
    seed.func_wrap("insecure-seed", |_, (): ()| {
        let mut rng = rand::rng();
        Ok(((rng.next_u64(), rng.next_u64()),))
    })?;
    Ok(linker)
}

fn random_bytes(len: u64) -> wasmtime::Result<(Vec<u8>,)> {
    if len > MAX_RANDOM_BYTES {
        wasmtime::bail!(
            "wasi:random request of {len} bytes exceeds the {MAX_RANDOM_BYTES}-byte limit"
        );
    }
    let mut bytes = vec![0u8; len as usize];
    rand::rng().fill_bytes(&mut bytes);
    Ok((bytes,))
}

/// Advances the engine's epoch every tick, which is what interrupts a guest
/// past its deadline. Stops (and is joined) when dropped.
struct EpochTicker {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    fn start(engine: Engine, tick: std::time::Duration) -> Result<Self, EngineError> {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("policy-epoch".into())
            .spawn(move || {
                // A disconnected channel (the ticker dropped) ends the loop.
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(tick) {
                    engine.increment_epoch();
                }
            })
            .map_err(EngineError::Ticker)?;
        Ok(EpochTicker {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
#[path = "location_tests.rs"]
mod location_tests;

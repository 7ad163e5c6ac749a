//! The host functions a policy imports: `log`, `metrics`, `clock`, `kv`,
//! `location` and `caller`, plus the store state they work on.
//!
//! Every import answers without blocking and without failing: a bad argument
//! (an invalid metric name, an oversized kv value, an unparsable AOR) is
//! ignored and counted, never turned into a trap, so a guest fails only by
//! its own doing.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use wasmtime::ResourceLimiter;

use super::bindings::{caller, clock, kv, location, log, metrics, types};
use super::kv::TenantKv;
use super::metrics::TenantMetrics;
use switchyard_location::Aor;

/// Guest log lines per second and version beyond which lines are dropped.
pub const LOG_LINES_PER_SEC: u32 = 100;
/// Longest guest log message, in bytes; longer ones are truncated.
pub const MAX_LOG_BYTES: usize = 1024;

/// What every instance of one policy version shares: who it is (for log
/// fields), the tenant's kv and metrics, the location store.
pub(crate) struct GuestContext {
    pub tenant: Arc<str>,
    /// Where the module came from: a path or `builtin:<name>`.
    pub source: Arc<str>,
    /// First 12 hex digits of the module's sha256.
    pub version: Arc<str>,
    pub kv: Arc<TenantKv>,
    pub metrics: Arc<TenantMetrics>,
    pub location: Option<Arc<super::engine::PolicyLocation>>,
    pub utc_offset_minutes: i32,
    log_window: Mutex<LogWindow>,
    /// Guest log lines dropped by the rate limit.
    pub logs_dropped: AtomicU64,
}

struct LogWindow {
    start: Instant,
    lines: u32,
    dropped: u64,
}

impl GuestContext {
    pub fn new(
        tenant: Arc<str>,
        source: Arc<str>,
        version: Arc<str>,
        kv: Arc<TenantKv>,
        metrics: Arc<TenantMetrics>,
        location: Option<Arc<super::engine::PolicyLocation>>,
        utc_offset_minutes: i32,
    ) -> Self {
        GuestContext {
            tenant,
            source,
            version,
            kv,
            metrics,
            location,
            utc_offset_minutes,
            log_window: Mutex::new(LogWindow {
                start: Instant::now(),
                lines: 0,
                dropped: 0,
            }),
            logs_dropped: AtomicU64::new(0),
        }
    }

    /// Whether a guest log line may be written now (a fixed one-second
    /// window). The first line of a new window reports what the previous
    /// one dropped.
    fn admit_log(&self, now: Instant) -> bool {
        let mut window = self.log_window.lock();
        if now.saturating_duration_since(window.start) >= Duration::from_secs(1) {
            if window.dropped > 0 {
                tracing::warn!(
                    tenant = %self.tenant,
                    policy = %self.source,
                    version = %self.version,
                    dropped = window.dropped,
                    "policy log lines dropped (more than {LOG_LINES_PER_SEC}/s)"
                );
            }
            *window = LogWindow {
                start: now,
                lines: 0,
                dropped: 0,
            };
        }
        if window.lines < LOG_LINES_PER_SEC {
            window.lines += 1;
            true
        } else {
            window.dropped += 1;
            self.logs_dropped.fetch_add(1, Ordering::Relaxed);
            false
        }
    }
}

/// The data of one instance's `Store`.
pub(crate) struct HostState {
    pub ctx: Arc<GuestContext>,
    pub memory: MemoryCap,
    /// The origin of the request whose `on-request` / `on-register` call
    /// is running; `None` in other hooks.
    pub origin: Option<crate::Origin>,
    /// The running call's budget, checked at each epoch deadline.
    pub deadline: super::cpu_deadline::CpuDeadline,
    /// The engine's epoch tick: a budget of N ticks is N of these.
    pub tick: std::time::Duration,
}

impl HostState {
    pub fn new(ctx: Arc<GuestContext>, cap_bytes: usize, tick: std::time::Duration) -> Self {
        HostState {
            ctx,
            memory: MemoryCap::new(cap_bytes),
            origin: None,
            deadline: super::cpu_deadline::CpuDeadline::start(tick),
            tick,
        }
    }
}

/// Caps the linear memory of one store (all its memories together) and
/// remembers whether the cap was hit, which is how an out-of-memory abort is
/// told apart from other traps.
pub(crate) struct MemoryCap {
    cap: usize,
    used: usize,
    /// Set when a growth was refused; cleared before each call.
    pub hit: bool,
}

/// Most table elements per table; Rust guests use a few hundred.
const MAX_TABLE_ELEMENTS: usize = 20_000;

impl MemoryCap {
    fn new(cap: usize) -> Self {
        MemoryCap {
            cap,
            used: 0,
            hit: false,
        }
    }
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let used = self.used - current.min(self.used) + desired;
        if used > self.cap {
            self.hit = true;
            return Ok(false);
        }
        self.used = used;
        Ok(true)
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        // Past the pool's per-memory maximum: the same outcome for the guest.
        self.hit = true;
        Ok(())
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

impl types::Host for HostState {}

impl caller::Host for HostState {
    fn current_origin(&mut self) -> Option<caller::Origin> {
        use crate::Origin;
        Some(match self.origin.as_ref()? {
            Origin::Unchecked => caller::Origin::Unchecked,
            Origin::Anonymous => caller::Origin::Anonymous,
            Origin::Trusted => caller::Origin::Trusted,
            Origin::Authenticated { user, realm } => {
                caller::Origin::Authenticated(caller::Identity {
                    user: user.clone(),
                    realm: realm.clone(),
                })
            }
        })
    }
}

impl log::Host for HostState {
    fn log(&mut self, level: log::Level, message: String) {
        let ctx = &self.ctx;
        if !ctx.admit_log(Instant::now()) {
            return;
        }
        let message = truncate(&message, MAX_LOG_BYTES);
        let (tenant, policy, version) = (&*ctx.tenant, &*ctx.source, &*ctx.version);
        // tracing needs the level at compile time.
        match level {
            log::Level::Trace => {
                tracing::trace!(target: "switchyard::policy::guest", tenant, policy, version, "{message}")
            }
            log::Level::Debug => {
                tracing::debug!(target: "switchyard::policy::guest", tenant, policy, version, "{message}")
            }
            log::Level::Info => {
                tracing::info!(target: "switchyard::policy::guest", tenant, policy, version, "{message}")
            }
            log::Level::Warn => {
                tracing::warn!(target: "switchyard::policy::guest", tenant, policy, version, "{message}")
            }
            log::Level::Error => {
                tracing::error!(target: "switchyard::policy::guest", tenant, policy, version, "{message}")
            }
        }
    }
}

fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

impl metrics::Host for HostState {
    fn counter_add(&mut self, name: String, value: u64) {
        self.ctx.metrics.counter_add(&name, value);
    }

    fn histogram_observe(&mut self, name: String, value: f64) {
        self.ctx.metrics.histogram_observe(&name, value);
    }
}

impl clock::Host for HostState {
    fn now_ms(&mut self) -> u64 {
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX)
    }

    fn utc_offset_minutes(&mut self) -> i32 {
        self.ctx.utc_offset_minutes
    }
}

impl kv::Host for HostState {
    fn get(&mut self, key: String) -> Option<Vec<u8>> {
        self.ctx.kv.get(&key, Instant::now())
    }

    fn set(&mut self, key: String, value: Vec<u8>, ttl_ms: u32) {
        self.ctx.kv.set(&key, &value, ttl_ms, Instant::now());
    }

    fn delete(&mut self, key: String) {
        self.ctx.kv.delete(&key);
    }

    fn incr(&mut self, key: String, delta: i64, ttl_ms: u32) -> i64 {
        self.ctx.kv.incr(&key, delta, ttl_ms, Instant::now())
    }
}

impl location::Host for HostState {
    /// Reads the store's cache only ([`LocationStore::cached`]): never waits
    /// for a remote backend. An unparsable AOR, an AOR of another tenant's
    /// domain or one the cache does not hold gives an empty list.
    fn lookup(&mut self, aor: String) -> Vec<types::Binding> {
        let Some(location) = &self.ctx.location else {
            return Vec::new();
        };
        let Ok(aor) = Aor::parse(&aor) else {
            return Vec::new();
        };
        let now = SystemTime::now();
        location
            .bindings(&self.ctx.tenant, &aor, now)
            .iter()
            .map(|b| super::convert::wit_binding(b, now))
            .collect()
    }
}

/// `+sip.instance` as the WIT documents it: without `<>` and quotes.
pub(crate) fn unquote_instance(instance: &str) -> &str {
    let trimmed = instance.trim_matches('"');
    trimmed
        .strip_prefix('<')
        .and_then(|t| t.strip_suffix('>'))
        .unwrap_or(trimmed)
}

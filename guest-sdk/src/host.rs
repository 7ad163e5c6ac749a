//! The host functions a policy may call. On `wasm32` each is one call into
//! the node; elsewhere (unit tests) each goes to [`crate::testing`]'s mock.

#[cfg(target_arch = "wasm32")]
use crate::bindings::switchyard::policy as imports;

/// Structured logging into the proxy's log, tagged by the host with the
/// tenant, policy and version.
///
/// ```
/// switchyard_policy::log::info("routing to voicemail");
/// switchyard_policy::info!("caller {} blocked", "666");
/// ```
pub mod log {
    pub use crate::bindings::switchyard::policy::log::Level;

    /// Logs `message` at `level`.
    pub fn log(level: Level, message: &str) {
        #[cfg(target_arch = "wasm32")]
        super::imports::log::log(level, message);
        #[cfg(not(target_arch = "wasm32"))]
        crate::testing::with_host(|h| h.logs.push((level, message.to_owned())));
    }

    /// Logs at trace level.
    pub fn trace(message: &str) {
        log(Level::Trace, message)
    }

    /// Logs at debug level.
    pub fn debug(message: &str) {
        log(Level::Debug, message)
    }

    /// Logs at info level.
    pub fn info(message: &str) {
        log(Level::Info, message)
    }

    /// Logs at warn level.
    pub fn warn(message: &str) {
        log(Level::Warn, message)
    }

    /// Logs at error level.
    pub fn error(message: &str) {
        log(Level::Error, message)
    }
}

/// Logs a `format!`-style message at trace level (see [`log`]).
#[macro_export]
macro_rules! trace {
    ($($arg:tt)*) => { $crate::log::trace(&::std::format!($($arg)*)) };
}

/// Logs a `format!`-style message at debug level (see [`log`]).
#[macro_export]
macro_rules! debug {
    ($($arg:tt)*) => { $crate::log::debug(&::std::format!($($arg)*)) };
}

/// Logs a `format!`-style message at info level (see [`log`]).
#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => { $crate::log::info(&::std::format!($($arg)*)) };
}

/// Logs a `format!`-style message at warn level (see [`log`]).
#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => { $crate::log::warn(&::std::format!($($arg)*)) };
}

/// Logs a `format!`-style message at error level (see [`log`]).
#[macro_export]
macro_rules! error {
    ($($arg:tt)*) => { $crate::log::error(&::std::format!($($arg)*)) };
}

/// Metrics exported by the node, labelled with the tenant. Names are
/// `[a-z0-9_]+` (others are dropped by the host); at most 64 names per tenant.
pub mod metrics {
    /// Adds `value` to the counter `name`.
    pub fn counter(name: &str, value: u64) {
        #[cfg(target_arch = "wasm32")]
        super::imports::metrics::counter_add(name, value);
        #[cfg(not(target_arch = "wasm32"))]
        crate::testing::with_host(|h| *h.counters.entry(name.to_owned()).or_default() += value);
    }

    /// Records one observation of `value` in the histogram `name`.
    pub fn histogram(name: &str, value: f64) {
        #[cfg(target_arch = "wasm32")]
        super::imports::metrics::histogram_observe(name, value);
        #[cfg(not(target_arch = "wasm32"))]
        crate::testing::with_host(|h| h.histograms.entry(name.to_owned()).or_default().push(value));
    }
}

/// Time: the only clock a policy has.
pub mod clock {
    /// Wall-clock time in milliseconds since the Unix epoch (UTC).
    pub fn now_ms() -> u64 {
        #[cfg(target_arch = "wasm32")]
        return super::imports::clock::now_ms();
        #[cfg(not(target_arch = "wasm32"))]
        return crate::testing::with_host(|h| h.now_ms);
    }

    /// Offset of the node's local time from UTC, in minutes.
    pub fn utc_offset_minutes() -> i32 {
        #[cfg(target_arch = "wasm32")]
        return super::imports::clock::utc_offset_minutes();
        #[cfg(not(target_arch = "wasm32"))]
        return crate::testing::with_host(|h| h.utc_offset_minutes);
    }
}

/// A small key/value store per tenant, in this node's memory, lost on
/// restart. On a Cassandra cluster counters (`incr`) are summed over the
/// nodes, each node's share synced every `[policy] kv_sync_ms`; other
/// values stay on their node. Keys up to 256 bytes, values up to
/// 4 KiB, 10 000 keys per tenant (a set beyond them is ignored).
pub mod kv {
    /// The value at `key`, unless missing or expired.
    pub fn get(key: &str) -> Option<Vec<u8>> {
        #[cfg(target_arch = "wasm32")]
        return super::imports::kv::get(key);
        #[cfg(not(target_arch = "wasm32"))]
        return crate::testing::with_host(|h| h.kv_get(key));
    }

    /// Stores `value` at `key` for `ttl_ms` milliseconds (0: until evicted
    /// or restart).
    pub fn set(key: &str, value: impl AsRef<[u8]>, ttl_ms: u32) {
        #[cfg(target_arch = "wasm32")]
        super::imports::kv::set(key, value.as_ref(), ttl_ms);
        #[cfg(not(target_arch = "wasm32"))]
        crate::testing::with_host(|h| h.kv_set(key, value.as_ref(), ttl_ms));
    }

    /// Removes `key`.
    pub fn delete(key: &str) {
        #[cfg(target_arch = "wasm32")]
        super::imports::kv::delete(key);
        #[cfg(not(target_arch = "wasm32"))]
        crate::testing::with_host(|h| {
            h.kv.remove(key);
        });
    }

    /// Adds `delta` to the integer at `key` (missing or expired counts as
    /// 0) and returns the new value. A new key gets `ttl_ms`; an existing
    /// key keeps its expiry: the counter of a fixed-window rate limit.
    pub fn incr(key: &str, delta: i64, ttl_ms: u32) -> i64 {
        #[cfg(target_arch = "wasm32")]
        return super::imports::kv::incr(key, delta, ttl_ms);
        #[cfg(not(target_arch = "wasm32"))]
        return crate::testing::with_host(|h| h.kv_incr(key, delta, ttl_ms));
    }
}

/// The location service (registrations), read without blocking.
pub mod location {
    use crate::Binding;

    /// Bindings of an address-of-record (`sip:user@domain`) as the node's
    /// store knows them without waiting. With the Cassandra store this is
    /// the node's read cache, at most `[store.cassandra.cache] max_age_ms`
    /// old: an AOR the node has not read recently returns nothing once and
    /// is fetched for the next call.
    /// The Request-URI's own bindings are already in
    /// [`crate::Request::bindings`]; use this for other AORs (ring groups).
    pub fn lookup(aor: &str) -> Vec<Binding> {
        #[cfg(target_arch = "wasm32")]
        return super::imports::location::lookup(aor);
        #[cfg(not(target_arch = "wasm32"))]
        return crate::testing::with_host(|h| h.locations.get(aor).cloned().unwrap_or_default());
    }
}

/// Calls in progress, counted by the node's dialog layer across the
/// cluster (WIT 0.1.2): this node's exactly, the others' at most
/// `[dialogs] sync_ms` old. Only the policy's own tenant is visible.
///
/// ```
/// use switchyard_policy::calls;
///
/// // A per-user limit from the policy's own configuration.
/// let busy = calls::user_calls("sip:101@acme.test") >= 2;
/// assert!(!busy);
/// ```
pub mod calls {
    /// Calls of the policy's tenant in progress.
    pub fn tenant_calls() -> u32 {
        #[cfg(target_arch = "wasm32")]
        return super::imports::calls::tenant_calls();
        #[cfg(not(target_arch = "wasm32"))]
        return crate::testing::with_host(|h| h.calls.values().sum());
    }

    /// Calls the user `aor` (`sip:user@domain` or `user@domain`) is in.
    pub fn user_calls(aor: &str) -> u32 {
        #[cfg(target_arch = "wasm32")]
        return super::imports::calls::user_calls(aor);
        #[cfg(not(target_arch = "wasm32"))]
        return crate::testing::with_host(|h| {
            let aor = aor.strip_prefix("sip:").unwrap_or(aor);
            h.calls.get(aor).copied().unwrap_or(0)
        });
    }
}

/// Who sent the request being handled, as the node established it
/// (`[auth]`; WIT 0.1.1).
///
/// ```
/// use switchyard_policy::caller::{self, Origin};
///
/// // A caller-ID check: only an authenticated user's own number leaves.
/// match caller::origin() {
///     Some(Origin::Authenticated(who)) => assert!(!who.user.is_empty()),
///     Some(Origin::Trusted) => {}  // a PBX or carrier: its From is its own business
///     _ => {}                      // a stranger: reaches our users only
/// }
/// ```
pub mod caller {
    pub use crate::bindings::switchyard::policy::caller::{Identity, Origin};

    /// How the request of the current `on_request` or `on_register` call
    /// was vouched for: authenticated (as whom), from a trusted source,
    /// anonymous, or unchecked (`[auth]` off). `None` in other hooks.
    pub fn origin() -> Option<Origin> {
        #[cfg(target_arch = "wasm32")]
        return super::imports::caller::current_origin();
        #[cfg(not(target_arch = "wasm32"))]
        return crate::testing::with_host(|h| h.origin.clone());
    }
}

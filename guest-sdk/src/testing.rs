//! An in-process stand-in for the host, for unit tests on the build machine
//! (every target but `wasm32`). The [`crate::log`], [`crate::metrics`],
//! [`crate::clock`], [`crate::kv`] and [`crate::location`] functions use it
//! there. Each test thread has its own mock, so tests run in parallel.
//!
//! ```
//! use switchyard_policy::{kv, testing};
//!
//! testing::reset();
//! testing::with_host(|h| h.now_ms = 1_000);
//! assert_eq!(kv::incr("calls", 1, 500), 1);
//! testing::advance_ms(600);
//! assert_eq!(kv::incr("calls", 1, 500), 1); // expired: a new window
//! ```

use std::cell::RefCell;
use std::collections::HashMap;

use crate::Binding;
use crate::log::Level;

/// The mock host's state; change it with [`with_host`].
#[derive(Debug, Default)]
pub struct MockHost {
    /// What `clock::now_ms` returns.
    pub now_ms: u64,
    /// What `clock::utc_offset_minutes` returns.
    pub utc_offset_minutes: i32,
    /// The key/value store: value and expiry time (ms, `None`: never).
    pub kv: HashMap<String, (Vec<u8>, Option<u64>)>,
    /// What `location::lookup` returns, by AOR.
    pub locations: HashMap<String, Vec<Binding>>,
    /// Every message logged, in order.
    pub logs: Vec<(Level, String)>,
    /// Counter totals by name.
    pub counters: HashMap<String, u64>,
    /// Histogram observations by name.
    pub histograms: HashMap<String, Vec<f64>>,
    /// What `caller::origin` returns.
    pub origin: Option<crate::caller::Origin>,
    /// Calls in progress by user (`user@domain`), for `calls::user_calls`;
    /// `calls::tenant_calls` is their sum.
    pub calls: HashMap<String, u32>,
}

impl MockHost {
    fn live(&mut self, key: &str) -> Option<&mut (Vec<u8>, Option<u64>)> {
        let now = self.now_ms;
        if matches!(self.kv.get(key), Some((_, Some(exp))) if *exp <= now) {
            self.kv.remove(key);
        }
        self.kv.get_mut(key)
    }

    fn expiry(&self, ttl_ms: u32) -> Option<u64> {
        (ttl_ms > 0).then(|| self.now_ms + u64::from(ttl_ms))
    }

    pub(crate) fn kv_get(&mut self, key: &str) -> Option<Vec<u8>> {
        self.live(key).map(|(v, _)| v.clone())
    }

    pub(crate) fn kv_set(&mut self, key: &str, value: &[u8], ttl_ms: u32) {
        let exp = self.expiry(ttl_ms);
        self.kv.insert(key.to_owned(), (value.to_vec(), exp));
    }

    /// Counters are stored as decimal ASCII (what `kv::get` returns after
    /// `kv::incr`); a value that is not a number counts as 0.
    pub(crate) fn kv_incr(&mut self, key: &str, delta: i64, ttl_ms: u32) -> i64 {
        let exp = self.expiry(ttl_ms);
        let entry = match self.live(key) {
            Some(entry) => entry,
            None => self
                .kv
                .entry(key.to_owned())
                .or_insert_with(|| (Vec::new(), exp)),
        };
        let current: i64 = std::str::from_utf8(&entry.0)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let new = current.saturating_add(delta);
        entry.0 = new.to_string().into_bytes();
        new
    }
}

thread_local! {
    static HOST: RefCell<MockHost> = RefCell::new(MockHost::default());
}

/// Runs `f` with this thread's mock host.
pub fn with_host<R>(f: impl FnOnce(&mut MockHost) -> R) -> R {
    HOST.with_borrow_mut(f)
}

/// Clears this thread's mock host (clock at 0, nothing stored or logged).
pub fn reset() {
    with_host(|h| *h = MockHost::default());
}

/// Moves the mock clock forward.
pub fn advance_ms(ms: u64) {
    with_host(|h| h.now_ms += ms);
}

/// Sets what `location::lookup(aor)` returns.
pub fn set_bindings(aor: &str, bindings: Vec<Binding>) {
    with_host(|h| {
        h.locations.insert(aor.to_owned(), bindings);
    });
}

/// The total of counter `name` so far.
pub fn counter(name: &str) -> u64 {
    with_host(|h| h.counters.get(name).copied().unwrap_or(0))
}

/// Every message logged so far.
pub fn logs() -> Vec<(Level, String)> {
    with_host(|h| h.logs.clone())
}

#[cfg(test)]
mod tests {
    use crate::{clock, kv, location, metrics, testing};

    #[test]
    fn kv_ttl_and_incr() {
        testing::reset();
        kv::set("a", b"x", 100);
        assert_eq!(kv::get("a").as_deref(), Some(&b"x"[..]));
        testing::advance_ms(100);
        assert_eq!(kv::get("a"), None);
        assert_eq!(kv::incr("n", 2, 0), 2);
        assert_eq!(kv::incr("n", -5, 0), -3);
        assert_eq!(kv::get("n").as_deref(), Some(&b"-3"[..]));
        kv::delete("n");
        assert_eq!(kv::get("n"), None);
        assert_eq!(clock::now_ms(), 100);
    }

    #[test]
    fn location_metrics_log() {
        testing::reset();
        testing::set_bindings(
            "sip:101@acme.test",
            vec![crate::Binding::new("sip:101@192.0.2.9")],
        );
        assert_eq!(location::lookup("sip:101@acme.test").len(), 1);
        assert!(location::lookup("sip:102@acme.test").is_empty());
        metrics::counter("calls", 2);
        metrics::counter("calls", 1);
        assert_eq!(testing::counter("calls"), 3);
        crate::info!("hello {}", 1);
        assert_eq!(testing::logs()[0].1, "hello 1");
    }
}

//! The per-tenant metrics registry behind the `metrics` import.
//!
//! Guests name their own counters and histograms; the node exports them
//! labelled with the tenant (the admin endpoint renders
//! [`TenantMetrics::snapshot`]). Names are validated and capped per tenant so
//! a guest cannot blow up the exporter's cardinality.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

/// Most metric names per tenant.
pub const MAX_METRICS: usize = 64;
/// Longest metric name, in bytes.
pub const MAX_NAME_BYTES: usize = 64;

/// Upper bounds (inclusive) of the histogram buckets, in the guest's unit
/// (milliseconds, counts, ...); an implicit `+Inf` bucket follows. A log
/// scale, since the unit is the guest's choice.
pub const HISTOGRAM_BOUNDS: [f64; 10] =
    [1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0];

/// One tenant's guest-defined metrics.
#[derive(Debug, Default)]
pub struct TenantMetrics {
    metrics: Mutex<BTreeMap<Box<str>, Metric>>,
    /// Updates dropped: invalid name, a 65th name, a name reused with the
    /// other kind, or a non-finite observation.
    dropped: AtomicU64,
}

#[derive(Debug, Clone)]
enum Metric {
    Counter(u64),
    Histogram(Histogram),
}

/// Count, sum and bucket counts of one histogram.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    pub count: u64,
    pub sum: f64,
    /// Observations per bucket (not cumulative): one per
    /// [`HISTOGRAM_BOUNDS`] entry, then the `+Inf` bucket.
    pub buckets: [u64; HISTOGRAM_BOUNDS.len() + 1],
}

impl Histogram {
    fn observe(&mut self, value: f64) {
        self.count += 1;
        self.sum += value;
        let bucket = HISTOGRAM_BOUNDS
            .iter()
            .position(|bound| value <= *bound)
            .unwrap_or(HISTOGRAM_BOUNDS.len());
        self.buckets[bucket] += 1;
    }
}

/// A point-in-time copy of one tenant's metrics, sorted by name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricsSnapshot {
    pub counters: Vec<(String, u64)>,
    pub histograms: Vec<(String, Histogram)>,
    /// Updates dropped since the node started.
    pub dropped: u64,
}

/// `[a-z0-9_]+`, at most [`MAX_NAME_BYTES`]: safe as a Prometheus name suffix.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_BYTES
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

impl TenantMetrics {
    pub fn new() -> Self {
        TenantMetrics::default()
    }

    pub fn counter_add(&self, name: &str, value: u64) {
        self.update(
            name,
            |metric| match metric {
                Metric::Counter(total) => {
                    *total = total.saturating_add(value);
                    true
                }
                Metric::Histogram(_) => false,
            },
            || Metric::Counter(0),
        );
    }

    pub fn histogram_observe(&self, name: &str, value: f64) {
        if !value.is_finite() {
            self.drop_one();
            return;
        }
        self.update(
            name,
            |metric| match metric {
                Metric::Histogram(h) => {
                    h.observe(value);
                    true
                }
                Metric::Counter(_) => false,
            },
            || Metric::Histogram(Histogram::default()),
        );
    }

    pub fn snapshot(&self) -> MetricsSnapshot {
        let metrics = self.metrics.lock();
        let mut snapshot = MetricsSnapshot {
            dropped: self.dropped.load(Ordering::Relaxed),
            ..MetricsSnapshot::default()
        };
        for (name, metric) in metrics.iter() {
            match metric {
                Metric::Counter(total) => snapshot.counters.push((name.to_string(), *total)),
                Metric::Histogram(h) => snapshot.histograms.push((name.to_string(), h.clone())),
            }
        }
        snapshot
    }

    fn update(
        &self,
        name: &str,
        apply: impl FnOnce(&mut Metric) -> bool,
        new: impl FnOnce() -> Metric,
    ) {
        if !valid_name(name) {
            self.drop_one();
            return;
        }
        let mut metrics = self.metrics.lock();
        let full = metrics.len() >= MAX_METRICS;
        let applied = match metrics.get_mut(name) {
            Some(metric) => apply(metric),
            None if full => false,
            None => {
                let mut metric = new();
                let applied = apply(&mut metric);
                metrics.insert(name.into(), metric);
                applied
            }
        };
        drop(metrics);
        if !applied {
            self.drop_one();
        }
    }

    fn drop_one(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_lowercase_digits_and_underscores() {
        assert!(valid_name("calls_total"));
        assert!(valid_name("x9"));
        for bad in ["", "Calls", "a-b", "a.b", "a b", "ä", &"a".repeat(65)] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn counters_and_histograms_accumulate() {
        let m = TenantMetrics::new();
        m.counter_add("calls", 2);
        m.counter_add("calls", 3);
        m.histogram_observe("latency_ms", 0.5);
        m.histogram_observe("latency_ms", 7.0);
        m.histogram_observe("latency_ms", 5000.0);
        let s = m.snapshot();
        assert_eq!(s.counters, vec![("calls".to_string(), 5)]);
        let (name, h) = &s.histograms[0];
        assert_eq!(name, "latency_ms");
        assert_eq!(h.count, 3);
        assert_eq!(h.sum, 5007.5);
        assert_eq!(h.buckets[0], 1); // <= 1
        assert_eq!(h.buckets[3], 1); // <= 10
        assert_eq!(h.buckets[HISTOGRAM_BOUNDS.len()], 1); // +Inf
        assert_eq!(s.dropped, 0);
    }

    #[test]
    fn invalid_names_kind_clashes_and_the_65th_name_are_dropped() {
        let m = TenantMetrics::new();
        m.counter_add("Bad-Name", 1);
        m.counter_add("calls", 1);
        m.histogram_observe("calls", 1.0);
        m.histogram_observe("nan", f64::NAN);
        for i in 0..MAX_METRICS {
            m.counter_add(&format!("c{i}"), 1);
        }
        let s = m.snapshot();
        assert_eq!(s.counters.len(), MAX_METRICS);
        assert!(s.histograms.is_empty());
        // "Bad-Name", the histogram on a counter, NaN, and the last `c63`.
        assert_eq!(s.dropped, 4);
    }
}

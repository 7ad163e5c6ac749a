//! A lock-free latency histogram for hot paths (every store call): three
//! relaxed atomic adds per observation, read as a Prometheus histogram.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds in microseconds: an in-process store answers in the first
/// buckets, a Cassandra quorum in the middle, an outage at the end.
pub const BOUNDS_US: [u64; 14] = [
    10, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000,
];

#[derive(Debug, Default)]
pub struct LatencyHistogram {
    buckets: [AtomicU64; BOUNDS_US.len() + 1],
    sum_us: AtomicU64,
}

/// What a scrape reads: per-bucket counts (upper bound in seconds, the last
/// `f64::MAX` for `+Inf`), the sum in seconds, the count.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    pub buckets: Vec<(f64, u64)>,
    pub sum_secs: f64,
    pub count: u64,
}

impl LatencyHistogram {
    pub fn observe(&self, took: Duration) {
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let bucket = BOUNDS_US.partition_point(|&bound| bound < us);
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let bounds = BOUNDS_US
            .iter()
            .map(|&us| us as f64 / 1e6)
            .chain([f64::MAX]);
        HistogramSnapshot {
            count: counts.iter().sum(),
            buckets: bounds.zip(counts).collect(),
            sum_secs: self.sum_us.load(Ordering::Relaxed) as f64 / 1e6,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_the_first_bucket_that_holds_them() {
        let h = LatencyHistogram::default();
        h.observe(Duration::from_micros(10)); // le 10 µs
        h.observe(Duration::from_micros(11)); // le 50 µs
        h.observe(Duration::from_secs(5)); // +Inf
        let s = h.snapshot();
        assert_eq!(s.count, 3);
        assert_eq!(s.buckets[0], (0.00001, 1));
        assert_eq!(s.buckets[1], (0.00005, 1));
        assert_eq!(s.buckets.last(), Some(&(f64::MAX, 1)));
        assert!((s.sum_secs - 5.000021).abs() < 1e-9);
    }
}

//! Store-call latency histogram and outcome counters (lock-free).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use switchyard_location::{RegisterError, StoreError};

/// Upper bounds of the latency buckets in milliseconds; a last bucket
/// counts everything slower.
pub const LATENCY_BOUNDS_MS: [u64; 12] = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000];

/// How a store call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// Refused by the registrar rules (an answer, not a failure).
    Rejected,
    Timeout,
    Unavailable,
    Overloaded,
    Contention,
    Backend,
}

impl Outcome {
    pub fn of_store(error: &StoreError) -> Outcome {
        match error {
            StoreError::Timeout(_) => Outcome::Timeout,
            StoreError::Unavailable(_) => Outcome::Unavailable,
            StoreError::Overloaded => Outcome::Overloaded,
            StoreError::Contention { .. } => Outcome::Contention,
            StoreError::Backend(_) => Outcome::Backend,
        }
    }

    pub fn of_register(error: &RegisterError) -> Outcome {
        match error {
            RegisterError::Rejected(_) => Outcome::Rejected,
            RegisterError::Store(error) => Outcome::of_store(error),
        }
    }

    /// Whether the cluster is to blame (trips the breaker).
    pub fn is_failure(self) -> bool {
        !matches!(self, Outcome::Ok | Outcome::Rejected | Outcome::Contention)
    }
}

/// Counters of one store. Calls refused by the open breaker count as
/// `unavailable` and also as `breaker_rejected`, with no latency sample.
#[derive(Debug, Default)]
pub struct StoreMetrics {
    counts: [AtomicU64; 7],
    breaker_rejected: AtomicU64,
    latency: [AtomicU64; LATENCY_BOUNDS_MS.len() + 1],
}

/// A point-in-time copy of [`StoreMetrics`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    pub ok: u64,
    pub rejected: u64,
    pub timeout: u64,
    pub unavailable: u64,
    pub overloaded: u64,
    pub contention: u64,
    pub backend: u64,
    pub breaker_rejected: u64,
    /// Calls per latency bucket ([`LATENCY_BOUNDS_MS`], then "slower").
    pub latency: Vec<u64>,
}

fn index(outcome: Outcome) -> usize {
    match outcome {
        Outcome::Ok => 0,
        Outcome::Rejected => 1,
        Outcome::Timeout => 2,
        Outcome::Unavailable => 3,
        Outcome::Overloaded => 4,
        Outcome::Contention => 5,
        Outcome::Backend => 6,
    }
}

impl StoreMetrics {
    /// Records a call that ran for `elapsed`.
    pub fn observe(&self, outcome: Outcome, elapsed: Duration) {
        self.counts[index(outcome)].fetch_add(1, Ordering::Relaxed);
        let ms = elapsed.as_millis();
        let bucket = LATENCY_BOUNDS_MS
            .iter()
            .position(|&bound| ms <= u128::from(bound))
            .unwrap_or(LATENCY_BOUNDS_MS.len());
        self.latency[bucket].fetch_add(1, Ordering::Relaxed);
    }

    /// Records a call the breaker refused.
    pub fn breaker_rejection(&self) {
        self.counts[index(Outcome::Unavailable)].fetch_add(1, Ordering::Relaxed);
        self.breaker_rejected.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> MetricsSnapshot {
        let count = |o| self.counts[index(o)].load(Ordering::Relaxed);
        MetricsSnapshot {
            ok: count(Outcome::Ok),
            rejected: count(Outcome::Rejected),
            timeout: count(Outcome::Timeout),
            unavailable: count(Outcome::Unavailable),
            overloaded: count(Outcome::Overloaded),
            contention: count(Outcome::Contention),
            backend: count(Outcome::Backend),
            breaker_rejected: self.breaker_rejected.load(Ordering::Relaxed),
            latency: self
                .latency
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_proto::registrar::RuleError;

    #[test]
    fn counts_outcomes_and_buckets_latency() {
        let metrics = StoreMetrics::default();
        metrics.observe(Outcome::Ok, Duration::from_micros(300));
        metrics.observe(Outcome::Ok, Duration::from_millis(7));
        metrics.observe(Outcome::Timeout, Duration::from_millis(2000));
        metrics.observe(Outcome::Backend, Duration::from_secs(9));
        metrics.breaker_rejection();
        let s = metrics.snapshot();
        assert_eq!(
            (
                s.ok,
                s.timeout,
                s.backend,
                s.unavailable,
                s.breaker_rejected
            ),
            (2, 1, 1, 1, 1)
        );
        assert_eq!(s.latency[0], 1, "≤ 1 ms");
        assert_eq!(s.latency[3], 1, "≤ 10 ms");
        assert_eq!(s.latency[10], 1, "≤ 2000 ms");
        assert_eq!(s.latency[12], 1, "slower than 5 s");
        assert_eq!(
            s.latency.iter().sum::<u64>(),
            4,
            "breaker rejections have no sample"
        );
    }

    #[test]
    fn only_cluster_faults_are_failures() {
        let rejected = RegisterError::Rejected(RuleError::OutOfOrder {
            call_id: "c".into(),
            stored: 2,
            request: 1,
        });
        assert!(!Outcome::of_register(&rejected).is_failure());
        let contention = StoreError::Contention { aor: "a".into() };
        assert!(!Outcome::of_store(&contention).is_failure());
        for error in [
            StoreError::Timeout(Duration::ZERO),
            StoreError::Unavailable(String::new()),
            StoreError::Overloaded,
            StoreError::Backend(String::new()),
        ] {
            assert!(Outcome::of_register(&RegisterError::Store(error)).is_failure());
        }
    }
}

//! A sans-IO circuit breaker: stops piling requests onto a cluster that is
//! not answering, and lets one probe through per cool-down to notice when it
//! is back.
//!
//! Closed → (N consecutive failures) → Open → (cool-down elapsed) → HalfOpen,
//! which admits exactly one probe: success closes, failure re-opens for
//! another cool-down. Time is an argument, so tests run in virtual time.

use std::time::{Duration, Instant};

use serde::Deserialize;

/// `[store.cassandra.breaker]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct BreakerConfig {
    /// Consecutive failed calls (timeouts, unreachable cluster) that open
    /// the breaker. Rejections by the registrar rules and LWT contention
    /// are answers, not failures, and do not count.
    pub failure_threshold: u32,
    /// How long the breaker stays open (calls fail fast with
    /// `StoreError::Unavailable`) before one probe call is let through.
    pub cool_down_ms: u64,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failure_threshold: 5,
            cool_down_ms: 5000,
        }
    }
}

/// Where the breaker is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through; counting consecutive failures.
    Closed { failures: u32 },
    /// Calls fail fast until `until`.
    Open { until: Instant },
    /// One probe is in flight; other calls fail fast until it reports.
    HalfOpen,
}

/// The breaker. Callers ask [`Breaker::admit`] before a call and report the
/// outcome with [`Breaker::record`] (only if admitted).
#[derive(Debug, Clone)]
pub struct Breaker {
    threshold: u32,
    cool_down: Duration,
    state: BreakerState,
}

/// The breaker refused a call; retry after `retry_in`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejected {
    pub retry_in: Duration,
}

impl Breaker {
    pub fn new(config: &BreakerConfig) -> Breaker {
        Breaker {
            threshold: config.failure_threshold.max(1),
            cool_down: Duration::from_millis(config.cool_down_ms),
            state: BreakerState::Closed { failures: 0 },
        }
    }

    pub fn state(&self) -> BreakerState {
        self.state
    }

    /// Whether a call may start at `now`. In half-open state only the first
    /// caller is admitted (the probe).
    pub fn admit(&mut self, now: Instant) -> Result<(), Rejected> {
        match self.state {
            BreakerState::Closed { .. } => Ok(()),
            BreakerState::Open { until } if now >= until => {
                self.state = BreakerState::HalfOpen;
                Ok(())
            }
            BreakerState::Open { until } => Err(Rejected {
                retry_in: until - now,
            }),
            BreakerState::HalfOpen => Err(Rejected {
                retry_in: Duration::ZERO,
            }),
        }
    }

    /// Reports an admitted call's outcome.
    pub fn record(&mut self, success: bool, now: Instant) {
        self.state = match (self.state, success) {
            (_, true) => BreakerState::Closed { failures: 0 },
            (BreakerState::Closed { failures }, false) if failures + 1 < self.threshold => {
                BreakerState::Closed {
                    failures: failures + 1,
                }
            }
            // Threshold reached, a failed probe, or a late failure of a call
            // admitted before the breaker opened: (re-)open.
            (_, false) => BreakerState::Open {
                until: now + self.cool_down,
            },
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> (Breaker, Instant) {
        let config = BreakerConfig {
            failure_threshold: 3,
            cool_down_ms: 1000,
        };
        (Breaker::new(&config), Instant::now())
    }

    #[test]
    fn opens_after_consecutive_failures_only() {
        let (mut b, t0) = breaker();
        b.record(false, t0);
        b.record(false, t0);
        b.record(true, t0); // a success resets the count
        b.record(false, t0);
        b.record(false, t0);
        assert_eq!(b.state(), BreakerState::Closed { failures: 2 });
        assert!(b.admit(t0).is_ok());
        b.record(false, t0);
        assert_eq!(
            b.state(),
            BreakerState::Open {
                until: t0 + Duration::from_secs(1)
            }
        );
        let rejected = b.admit(t0 + Duration::from_millis(400)).unwrap_err();
        assert_eq!(rejected.retry_in, Duration::from_millis(600));
    }

    #[test]
    fn half_open_admits_one_probe_then_closes_on_success() {
        let (mut b, t0) = breaker();
        for _ in 0..3 {
            b.record(false, t0);
        }
        let later = t0 + Duration::from_secs(1);
        assert!(b.admit(later).is_ok(), "probe admitted after the cool-down");
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert!(b.admit(later).is_err(), "only one probe at a time");
        b.record(true, later);
        assert_eq!(b.state(), BreakerState::Closed { failures: 0 });
        assert!(b.admit(later).is_ok());
    }

    #[test]
    fn failed_probe_reopens_for_a_full_cool_down() {
        let (mut b, t0) = breaker();
        for _ in 0..3 {
            b.record(false, t0);
        }
        let probe = t0 + Duration::from_millis(1500);
        b.admit(probe).unwrap();
        b.record(false, probe);
        assert_eq!(
            b.state(),
            BreakerState::Open {
                until: probe + Duration::from_secs(1)
            }
        );
        assert!(b.admit(probe + Duration::from_millis(999)).is_err());
        assert!(b.admit(probe + Duration::from_secs(1)).is_ok());
    }

    #[test]
    fn zero_threshold_behaves_as_one() {
        let mut b = Breaker::new(&BreakerConfig {
            failure_threshold: 0,
            cool_down_ms: 10,
        });
        let t0 = Instant::now();
        b.record(false, t0);
        assert!(matches!(b.state(), BreakerState::Open { .. }));
    }
}

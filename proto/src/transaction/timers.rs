//! Timer values (RFC 3261 §17 Table 4, RFC 6026 §8) and the two timer slots
//! every transaction needs.

use std::time::{Duration, Instant};

/// The base timer values; every other timer derives from them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerConfig {
    /// RTT estimate (default 500 ms).
    pub t1: Duration,
    /// Maximum retransmit interval for non-INVITE requests and INVITE
    /// responses (default 4 s).
    pub t2: Duration,
    /// Maximum duration a message remains in the network (default 5 s).
    pub t4: Duration,
}

impl Default for TimerConfig {
    fn default() -> Self {
        TimerConfig {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

impl TimerConfig {
    /// 64*T1: Timers B, F, H, J (RFC 3261 Table 4) and L, M (RFC 6026 §8.4,
    /// §8.7). Long enough for a UDP sender to exhaust its retransmissions.
    pub fn transaction_timeout(&self) -> Duration {
        self.t1 * 64
    }

    /// Timer D: "> 32 s for UDP". It must outlast the peer's Timer G
    /// retransmissions, which run for the peer's 64*T1, so follow a
    /// configured T1 upwards.
    pub fn timer_d(&self) -> Duration {
        self.transaction_timeout().max(Duration::from_secs(32))
    }
}

/// Timer names, for logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Timer {
    A,
    B,
    D,
    E,
    F,
    G,
    H,
    I,
    J,
    K,
    L,
    M,
}

/// A transaction runs at most one retransmission timer (A, E or G) and one
/// timer that ends a state (all the others) at any time.
#[derive(Debug, Default)]
pub(crate) struct Timers {
    retransmit: Option<Retransmit>,
    state: Option<(Timer, Instant)>,
}

#[derive(Debug, Clone, Copy)]
struct Retransmit {
    timer: Timer,
    at: Instant,
    interval: Duration,
}

/// A timer that [`Timers::pop_expired`] took out of its slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fired {
    /// A retransmission timer; `interval` is the one that just elapsed, so
    /// the machine can compute the next (doubling) one and re-arm.
    Retransmit {
        timer: Timer,
        interval: Duration,
    },
    State(Timer),
}

impl Timers {
    pub(crate) fn start_retransmit(&mut self, timer: Timer, now: Instant, interval: Duration) {
        self.retransmit = Some(Retransmit {
            timer,
            at: now + interval,
            interval,
        });
    }

    pub(crate) fn start_state(&mut self, timer: Timer, at: Instant) {
        self.state = Some((timer, at));
    }

    pub(crate) fn clear(&mut self) {
        *self = Timers::default();
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let retransmit = self.retransmit.map(|r| r.at);
        let state = self.state.map(|(_, at)| at);
        match (retransmit, state) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Removes and returns the earliest timer due at `now`. On a tie the
    /// state timer wins: there is no point retransmitting at the instant the
    /// transaction gives up.
    pub(crate) fn pop_expired(&mut self, now: Instant) -> Option<Fired> {
        let state_at = self.state.map(|(_, at)| at).filter(|&at| at <= now);
        let retransmit_at = self.retransmit.map(|r| r.at).filter(|&at| at <= now);
        match (state_at, retransmit_at) {
            (None, None) => None,
            (Some(s), r) if r.is_none_or(|r| s <= r) => {
                let (timer, _) = self.state.take()?;
                Some(Fired::State(timer))
            }
            _ => {
                let r = self.retransmit.take()?;
                Some(Fired::Retransmit {
                    timer: r.timer,
                    interval: r.interval,
                })
            }
        }
    }
}

//! What can go wrong in a hook call, what the transaction gets instead, and
//! the quarantine breaker that stops calling a policy that keeps failing.

use std::fmt;
use std::time::{Duration, Instant};

use wasmtime::{Trap, WasmBacktrace};

use crate::{FailureDecision, RegisterDecision, Reply, RequestAction, RequestDecision};

use super::FailureMode;

/// Why a hook produced no usable decision. Each kind has its own counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The guest trapped (panic, `unreachable`, out-of-bounds access, stack
    /// overflow). Its store is dropped.
    Trap,
    /// The guest ran past the hook deadline (epoch interruption).
    Timeout,
    /// The guest hit the memory cap.
    OutOfMemory,
    /// The guest answered with something the host refuses (a 2xx reply, a
    /// header injection, an oversized edit, a malformed URI).
    BadDecision,
    /// A new instance could not be created or its `init` failed.
    Instantiate,
}

impl FailureKind {
    pub const ALL: [FailureKind; 5] = [
        FailureKind::Trap,
        FailureKind::Timeout,
        FailureKind::OutOfMemory,
        FailureKind::BadDecision,
        FailureKind::Instantiate,
    ];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Trap => "trap",
            FailureKind::Timeout => "timeout",
            FailureKind::OutOfMemory => "out-of-memory",
            FailureKind::BadDecision => "bad-decision",
            FailureKind::Instantiate => "instantiate",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Classifies an error from a guest call. `memory_capped` is whether the
/// store's limiter refused a memory growth during the call: the guest's
/// allocator then aborts, which surfaces as an ordinary trap.
pub(crate) fn classify(error: &wasmtime::Error, memory_capped: bool) -> FailureKind {
    if memory_capped {
        return FailureKind::OutOfMemory;
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => FailureKind::Timeout,
        _ => FailureKind::Trap,
    }
}

/// The guest's backtrace as text (demangled function names), for the log.
pub(crate) fn backtrace(error: &wasmtime::Error) -> String {
    match error.downcast_ref::<WasmBacktrace>() {
        Some(trace) => trace.to_string(),
        None => String::from("(no wasm backtrace)"),
    }
}

/// The decisions a tenant's transactions get when its policy cannot decide.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fallback {
    pub mode: FailureMode,
    pub retry_after_secs: u32,
}

impl Fallback {
    fn unavailable(&self) -> Reply {
        Reply {
            code: 503,
            reason: "Policy Unavailable".into(),
            headers: vec![("Retry-After".into(), self.retry_after_secs.to_string())],
        }
    }

    pub fn request(&self) -> RequestDecision {
        match self.mode {
            super::FailureMode::FailOpen => RequestDecision::CONTINUE,
            super::FailureMode::FailClosed => RequestAction::Reply(self.unavailable()).into(),
        }
    }

    pub fn register(&self) -> RegisterDecision {
        match self.mode {
            super::FailureMode::FailOpen => RegisterDecision::Allow,
            super::FailureMode::FailClosed => RegisterDecision::Reject(self.unavailable()),
        }
    }

    /// Responses pass in both modes: dropping one cannot make anything safer.
    pub fn response(&self) -> crate::ResponseDecision {
        crate::ResponseDecision::PASS
    }

    /// The best response goes upstream in both modes (RFC 3261 §16.7 step 6).
    pub fn branch_failure(&self) -> FailureDecision {
        FailureDecision::Fail
    }
}

/// Consecutive-failure breaker (closed → open → half-open), sans-IO: the
/// caller passes the time.
///
/// Closed: every call goes to the guest. After `threshold` consecutive
/// failures of one hook it opens for `cooldown`: calls get the fallback
/// without touching the guest. When the cooldown has passed, one call at a
/// time is let through as a probe; a success closes the breaker, a failure
/// reopens it for another cooldown.
///
/// Failures are counted per hook: a policy whose `on-request` fails every
/// time is broken even though the `on-response` of the calls it let through
/// (fail-open) succeeds in between, so a success resets only its own hook's
/// count. A success while open (a call admitted before the breaker opened)
/// does not close it: only the probe does.
#[derive(Debug)]
pub(crate) struct Breaker {
    threshold: u32,
    cooldown: Duration,
    /// Consecutive failures by hook name (the five hooks at most).
    consecutive: Vec<(&'static str, u32)>,
    state: BreakerState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BreakerState {
    Closed,
    Open {
        until: Instant,
    },
    /// A probe call is running; others keep getting the fallback.
    Probing,
}

/// What the breaker lets a call do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admit {
    Call,
    /// The call is the half-open probe: report its outcome.
    Probe,
    Quarantined,
}

/// A change worth a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transition {
    Opened,
    Closed,
}

impl Breaker {
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Breaker {
            threshold: threshold.max(1),
            cooldown,
            consecutive: Vec::new(),
            state: BreakerState::Closed,
        }
    }

    pub fn admit(&mut self, now: Instant) -> Admit {
        match self.state {
            BreakerState::Closed => Admit::Call,
            BreakerState::Open { until } if now >= until => {
                self.state = BreakerState::Probing;
                Admit::Probe
            }
            BreakerState::Open { .. } | BreakerState::Probing => Admit::Quarantined,
        }
    }

    pub fn success(&mut self, hook: &'static str) -> Option<Transition> {
        if self.state == BreakerState::Probing {
            self.state = BreakerState::Closed;
            self.consecutive.clear();
            return Some(Transition::Closed);
        }
        self.consecutive.retain(|(h, _)| *h != hook);
        None
    }

    pub fn failure(&mut self, hook: &'static str, now: Instant) -> Option<Transition> {
        let count = match self.consecutive.iter_mut().find(|(h, _)| *h == hook) {
            Some((_, n)) => {
                *n = n.saturating_add(1);
                *n
            }
            None => {
                self.consecutive.push((hook, 1));
                1
            }
        };
        let open = match self.state {
            BreakerState::Probing => true,
            BreakerState::Closed => count >= self.threshold,
            BreakerState::Open { .. } => false,
        };
        if open {
            self.state = BreakerState::Open {
                until: now + self.cooldown,
            };
            return Some(Transition::Opened);
        }
        None
    }

    /// Whether any call's outcome can change the state: open, or a hook
    /// with failures not yet reset. Lets the caller skip the lock otherwise.
    pub fn is_troubled(&self) -> bool {
        self.state != BreakerState::Closed || !self.consecutive.is_empty()
    }

    /// A probe ended without an outcome for the guest (e.g. no instance was
    /// free): let the next call probe instead.
    pub fn probe_abandoned(&mut self, now: Instant) {
        if self.state == BreakerState::Probing {
            self.state = BreakerState::Open { until: now };
        }
    }

    pub fn is_open(&self) -> bool {
        self.state != BreakerState::Closed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQ: &str = "on-request";
    const RESP: &str = "on-response";

    #[test]
    fn another_hooks_success_does_not_reset_a_failing_hook() {
        // Fail-open: each call's on-request traps, its on-response succeeds.
        let now = Instant::now();
        let mut b = Breaker::new(3, Duration::from_secs(30));
        assert_eq!(b.failure(REQ, now), None);
        assert_eq!(b.success(RESP), None);
        assert_eq!(b.failure(REQ, now), None);
        assert_eq!(b.success(RESP), None);
        assert_eq!(b.failure(REQ, now), Some(Transition::Opened));
    }

    #[test]
    fn only_the_probe_closes_an_open_breaker() {
        let now = Instant::now();
        let mut b = Breaker::new(1, Duration::from_secs(30));
        b.failure(REQ, now);
        // A call admitted before the breaker opened finishes well.
        assert_eq!(b.success(RESP), None);
        assert!(b.is_open());
        assert_eq!(b.admit(now), Admit::Quarantined);
    }

    #[test]
    fn opens_after_threshold_consecutive_failures() {
        let now = Instant::now();
        let mut b = Breaker::new(3, Duration::from_secs(30));
        assert_eq!(b.failure(REQ, now), None);
        assert_eq!(b.failure(REQ, now), None);
        assert_eq!(b.success(REQ), None);
        assert!(!b.is_troubled());
        assert_eq!(b.failure(REQ, now), None);
        assert_eq!(b.failure(REQ, now), None);
        assert_eq!(b.admit(now), Admit::Call);
        assert_eq!(b.failure(REQ, now), Some(Transition::Opened));
        assert_eq!(b.admit(now), Admit::Quarantined);
        assert_eq!(b.admit(now + Duration::from_secs(29)), Admit::Quarantined);
    }

    #[test]
    fn half_open_probe_closes_on_success_and_reopens_on_failure() {
        let now = Instant::now();
        let mut b = Breaker::new(1, Duration::from_secs(30));
        b.failure(REQ, now);
        let later = now + Duration::from_secs(30);
        assert_eq!(b.admit(later), Admit::Probe);
        // Only one probe at a time.
        assert_eq!(b.admit(later), Admit::Quarantined);
        assert_eq!(b.failure(REQ, later), Some(Transition::Opened));
        assert_eq!(b.admit(later + Duration::from_secs(1)), Admit::Quarantined);
        let again = later + Duration::from_secs(30);
        assert_eq!(b.admit(again), Admit::Probe);
        assert_eq!(b.success(RESP), Some(Transition::Closed));
        assert_eq!(b.admit(again), Admit::Call);
        assert!(!b.is_open());
    }

    #[test]
    fn an_abandoned_probe_lets_the_next_call_probe() {
        let now = Instant::now();
        let mut b = Breaker::new(1, Duration::from_secs(1));
        b.failure(REQ, now);
        let later = now + Duration::from_secs(1);
        assert_eq!(b.admit(later), Admit::Probe);
        b.probe_abandoned(later);
        assert_eq!(b.admit(later), Admit::Probe);
    }

    #[test]
    fn fail_closed_answers_503_with_retry_after() {
        let closed = Fallback {
            mode: FailureMode::FailClosed,
            retry_after_secs: 7,
        };
        let RequestAction::Reply(reply) = closed.request().action else {
            panic!("fail-closed must reply");
        };
        assert_eq!(reply.code, 503);
        assert_eq!(
            reply.headers,
            vec![("Retry-After".to_string(), "7".to_string())]
        );
        assert!(matches!(closed.register(), RegisterDecision::Reject(r) if r.code == 503));
        let open = Fallback {
            mode: FailureMode::FailOpen,
            ..closed
        };
        assert_eq!(open.request(), RequestDecision::CONTINUE);
        assert_eq!(open.register(), RegisterDecision::Allow);
        assert_eq!(open.branch_failure(), FailureDecision::Fail);
    }
}

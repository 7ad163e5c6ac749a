//! State machine tests on virtual time: an arbitrary base `Instant` plus
//! offsets in milliseconds. Nothing sleeps; timers are driven by jumping
//! straight to each `poll_timeout()` deadline.

mod client;
mod key;
mod server;
mod timer_queue;

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{ClientEvent, ClientTransaction, ServerEvent, ServerTransaction};

/// Virtual time: `at(ms)` is `ms` milliseconds after an arbitrary base.
#[derive(Clone, Copy)]
pub(super) struct Clock(Instant);

impl Clock {
    pub(super) fn new() -> Self {
        Clock(Instant::now())
    }

    pub(super) fn at(self, ms: u64) -> Instant {
        self.0 + Duration::from_millis(ms)
    }

    pub(super) fn ms(self, t: Instant) -> u64 {
        u64::try_from((t - self.0).as_millis()).unwrap()
    }
}

/// What both transaction types expose to the driver.
pub(super) trait Machine {
    type Event;
    fn poll_timeout(&self) -> Option<Instant>;
    fn handle_timeout(&mut self, now: Instant);
    fn poll_transmit(&mut self) -> Option<Bytes>;
    fn poll_event(&mut self) -> Option<Self::Event>;
}

macro_rules! impl_machine {
    ($ty:ty, $event:ty) => {
        impl Machine for $ty {
            type Event = $event;
            fn poll_timeout(&self) -> Option<Instant> {
                <$ty>::poll_timeout(self)
            }
            fn handle_timeout(&mut self, now: Instant) {
                <$ty>::handle_timeout(self, now)
            }
            fn poll_transmit(&mut self) -> Option<Bytes> {
                <$ty>::poll_transmit(self)
            }
            fn poll_event(&mut self) -> Option<$event> {
                <$ty>::poll_event(self)
            }
        }
    };
}
impl_machine!(ClientTransaction, ClientEvent);
impl_machine!(ServerTransaction, ServerEvent);

/// Everything a machine did while its timers ran, stamped with the virtual
/// time in ms.
#[derive(Debug)]
pub(super) struct Trace<E> {
    pub sent: Vec<(u64, Bytes)>,
    pub events: Vec<(u64, E)>,
}

impl<E> Trace<E> {
    /// The times of the transmissions.
    pub(super) fn sent_at(&self) -> Vec<u64> {
        self.sent.iter().map(|&(t, _)| t).collect()
    }
}

/// Fires every timer due up to and including `until_ms`, each exactly at its
/// deadline, and records what the machine sent and reported.
pub(super) fn run<M: Machine>(m: &mut M, clock: Clock, until_ms: u64) -> Trace<M::Event> {
    let mut trace = Trace {
        sent: Vec::new(),
        events: Vec::new(),
    };
    let mut last = None;
    while let Some(deadline) = m.poll_timeout() {
        if deadline > clock.at(until_ms) {
            break;
        }
        assert!(last.is_none_or(|l| deadline > l), "timer did not advance");
        last = Some(deadline);
        m.handle_timeout(deadline);
        let t = clock.ms(deadline);
        while let Some(bytes) = m.poll_transmit() {
            trace.sent.push((t, bytes));
        }
        while let Some(event) = m.poll_event() {
            trace.events.push((t, event));
        }
    }
    trace
}

/// What a machine queued outside its timers (on an API call).
pub(super) fn sent<M: Machine>(m: &mut M) -> Vec<Bytes> {
    std::iter::from_fn(|| m.poll_transmit()).collect()
}

pub(super) fn events<M: Machine>(m: &mut M) -> Vec<M::Event> {
    std::iter::from_fn(|| m.poll_event()).collect()
}

pub(super) fn b(s: &'static str) -> Bytes {
    Bytes::from_static(s.as_bytes())
}

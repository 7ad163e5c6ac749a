//! The timer queue: ordering, cancellation, rescheduling, stale handles and a
//! 100k-entry workload checked against a simple model.

use std::collections::BTreeMap;

use super::Clock;
use crate::transaction::TimerQueue;

fn drain(queue: &mut TimerQueue<u32>, now: std::time::Instant) -> Vec<u32> {
    std::iter::from_fn(|| queue.pop_expired(now)).collect()
}

#[test]
fn pops_due_timers_in_deadline_order_and_nothing_early() {
    let clock = Clock::new();
    let mut queue = TimerQueue::new();
    for (key, ms) in [(3, 300), (1, 100), (2, 200), (4, 400)] {
        queue.schedule(key, clock.at(ms));
    }
    assert_eq!(queue.len(), 4);
    assert_eq!(queue.next_deadline(), Some(clock.at(100)));
    assert_eq!(queue.pop_expired(clock.at(99)), None);
    assert_eq!(drain(&mut queue, clock.at(300)), [1, 2, 3]);
    assert_eq!(queue.next_deadline(), Some(clock.at(400)));
    assert_eq!(drain(&mut queue, clock.at(10_000)), [4]);
    assert!(queue.is_empty());
    assert_eq!(queue.next_deadline(), None);
}

#[test]
fn cancel_returns_the_key_once_and_the_timer_never_fires() {
    let clock = Clock::new();
    let mut queue = TimerQueue::new();
    let a = queue.schedule(1, clock.at(100));
    let b = queue.schedule(2, clock.at(200));
    assert_eq!(queue.cancel(a), Some(1));
    assert_eq!(queue.cancel(a), None);
    assert_eq!(queue.len(), 1);
    assert_eq!(
        queue.next_deadline(),
        Some(clock.at(200)),
        "stale head skipped"
    );
    assert_eq!(drain(&mut queue, clock.at(1_000)), [2]);
    // Fired handles are stale too.
    assert_eq!(queue.cancel(b), None);
    assert!(!queue.reschedule(b, clock.at(5_000)));
    assert_eq!(queue.deadline(b), None);
}

#[test]
fn reschedule_moves_a_timer_both_ways_and_keeps_its_handle() {
    let clock = Clock::new();
    let mut queue = TimerQueue::new();
    let a = queue.schedule(1, clock.at(100));
    queue.schedule(2, clock.at(200));
    assert!(queue.reschedule(a, clock.at(300)));
    assert_eq!(queue.deadline(a), Some(clock.at(300)));
    assert_eq!(
        drain(&mut queue, clock.at(250)),
        [2],
        "not at its old deadline"
    );
    assert!(queue.reschedule(a, clock.at(150)));
    assert_eq!(drain(&mut queue, clock.at(250)), [1]);
    // Back and forth to the same deadline still fires once.
    let c = queue.schedule(3, clock.at(1_000));
    assert!(queue.reschedule(c, clock.at(2_000)));
    assert!(queue.reschedule(c, clock.at(1_000)));
    assert_eq!(drain(&mut queue, clock.at(5_000)), [3]);
    assert!(queue.is_empty());
}

#[test]
fn rescheduling_back_and_forth_does_not_grow_the_heap() {
    let clock = Clock::new();
    let mut queue = TimerQueue::new();
    let id = queue.schedule(1, clock.at(100));
    for i in 0..100_000 {
        assert!(queue.reschedule(id, clock.at(if i % 2 == 0 { 200 } else { 100 })));
    }
    // Every reschedule superseded the previous entry, so compaction keeps
    // the heap at its floor instead of accumulating live duplicates.
    assert!(queue.heap_len() <= 1025, "heap {}", queue.heap_len());
    assert_eq!(drain(&mut queue, clock.at(150)), [1]);
    assert_eq!(drain(&mut queue, clock.at(1_000)), [0u32; 0], "fires once");
}

#[test]
fn a_reused_slot_does_not_revive_old_handles() {
    let clock = Clock::new();
    let mut queue = TimerQueue::new();
    let old = queue.schedule(1, clock.at(100));
    queue.cancel(old);
    let new = queue.schedule(2, clock.at(100));
    assert_ne!(old, new);
    assert_eq!(queue.cancel(old), None);
    assert!(!queue.reschedule(old, clock.at(50)));
    assert_eq!(drain(&mut queue, clock.at(100)), [2]);
}

#[test]
fn pop_lets_the_caller_rearm_while_draining() {
    let clock = Clock::new();
    let mut queue = TimerQueue::new();
    queue.schedule(7, clock.at(100));
    let now = clock.at(100);
    let mut fired = 0;
    while let Some(key) = queue.pop_expired(now) {
        fired += 1;
        // A retransmission timer re-arms itself for later.
        queue.schedule(key, clock.at(600));
    }
    assert_eq!(fired, 1);
    assert_eq!(queue.next_deadline(), Some(clock.at(600)));
}

#[test]
fn set_deadline_follows_a_machine_through_its_lifetime() {
    use crate::net::Transport;
    use crate::transaction::{ClientTransaction, Kind, TimerConfig};

    let clock = Clock::new();
    let mut queue = TimerQueue::new();
    let mut tx = ClientTransaction::new(
        Kind::NonInvite,
        Transport::Udp,
        super::b("OPTIONS"),
        &TimerConfig::default(),
        clock.at(0),
    );
    let mut timer = None;
    queue.set_deadline(&mut timer, 9, tx.poll_timeout());
    assert_eq!(queue.next_deadline(), Some(clock.at(500)), "Timer E");

    // Drive the machine purely from the queue, as the proxy's timer task does.
    let mut fired_at = Vec::new();
    while let Some(next) = queue.next_deadline() {
        assert_eq!(queue.pop_expired(next), Some(9));
        tx.handle_timeout(next);
        fired_at.push(clock.ms(next));
        queue.set_deadline(&mut timer, 9, tx.poll_timeout());
    }
    assert!(tx.is_terminated());
    assert_eq!(fired_at.first(), Some(&500));
    assert_eq!(fired_at.last(), Some(&32_000), "Timer F");
    assert!(queue.is_empty());

    // A response that ends the machine early cancels its timer.
    let mut tx = ClientTransaction::new(
        Kind::NonInvite,
        Transport::Tcp,
        super::b("OPTIONS"),
        &TimerConfig::default(),
        clock.at(0),
    );
    queue.set_deadline(&mut timer, 10, tx.poll_timeout());
    assert_eq!(queue.len(), 1);
    tx.on_response(200, clock.at(5), |_| unreachable!());
    queue.set_deadline(&mut timer, 10, tx.poll_timeout());
    assert_eq!(timer, None);
    assert!(queue.is_empty());
}

/// A deterministic pseudo-random sequence (64-bit LCG, Knuth's constants).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

#[test]
fn hundred_thousand_timers_match_a_model() {
    const N: u32 = 100_000;
    let clock = Clock::new();
    let mut rng = Lcg(42);
    let mut queue = TimerQueue::new();
    // The model: key -> deadline in ms, for live timers only.
    let mut model = BTreeMap::new();
    let mut ids = Vec::with_capacity(N as usize);
    for key in 0..N {
        let ms = rng.next() % 64_000;
        ids.push(queue.schedule(key, clock.at(ms)));
        model.insert(key, ms);
    }
    // Cancel a third, move a fifth (some twice), like transactions
    // terminating early and timers being re-armed.
    for key in (0..N).step_by(3) {
        assert_eq!(queue.cancel(ids[key as usize]), Some(key));
        model.remove(&key);
    }
    for round in 0..2 {
        for key in (round..N).step_by(5) {
            let ms = rng.next() % 64_000;
            let live = model.contains_key(&key);
            assert_eq!(queue.reschedule(ids[key as usize], clock.at(ms)), live);
            if live {
                model.insert(key, ms);
            }
        }
    }
    assert_eq!(queue.len(), model.len());
    // Stale entries are compacted away: the heap stays within twice the
    // live timers.
    assert!(
        queue.heap_len() <= 2 * queue.len() + 1,
        "heap {}",
        queue.heap_len()
    );

    // Drain in steps of virtual time; every pop must be due, in order, and
    // exactly the model's live timers must come out.
    let mut popped = Vec::with_capacity(model.len());
    let mut last_ms = 0;
    for step in (0..=64_000).step_by(250) {
        let now = clock.at(step);
        while let Some(key) = queue.pop_expired(now) {
            let ms = model[&key];
            assert!(ms <= step, "key {key} due at {ms} popped at {step}");
            assert!(ms >= last_ms, "out of order: {ms} after {last_ms}");
            last_ms = ms;
            popped.push(key);
        }
        if let Some(next) = queue.next_deadline() {
            assert!(next > now, "a due timer was left behind");
        }
    }
    assert!(queue.is_empty());
    popped.sort_unstable();
    assert_eq!(popped, model.keys().copied().collect::<Vec<_>>());
}

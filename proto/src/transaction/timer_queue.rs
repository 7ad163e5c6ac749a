//! One deadline per key for many transactions, so a single task can drive
//! 100k+ of them.
//!
//! A binary heap of `(deadline, slot, version)` over a slab of slots, with
//! lazy cancellation: cancelling or rescheduling only touches the slot; heap
//! entries that no longer match their slot's version are skipped when they
//! surface. All operations are
//! O(log n) amortised. The heap is rebuilt when stale entries outnumber live
//! ones, so memory stays proportional to the live timers.
//!
//! Per live timer, on 64-bit Unix: one heap entry (24 bytes: a 16-byte
//! `Instant` and two `u32`) plus one slot (two `u32`, the key and an
//! `Instant`; 32 bytes for a `u64` key), i.e. 56 bytes, plus up to as many
//! stale heap entries as live ones before a rebuild, plus `Vec` growth slack.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

/// A handle to a scheduled timer. It goes stale once the timer fires or is
/// cancelled; stale handles are harmless (operations on them do nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimerId {
    slot: u32,
    generation: u32,
}

/// Deadlines keyed by `K` (e.g. a transaction's slab index).
#[derive(Debug)]
pub struct TimerQueue<K> {
    heap: BinaryHeap<Reverse<Entry>>,
    slots: Vec<Slot<K>>,
    /// Indices of vacant slots, reused before the vector grows.
    free: Vec<u32>,
    live: usize,
}

/// Ordered by deadline first, so the heap's top is the next timer due.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Entry {
    at: Instant,
    slot: u32,
    version: u32,
}

#[derive(Debug)]
struct Slot<K> {
    /// Bumped whenever the slot is vacated, which invalidates the handles
    /// to the timer that occupied it.
    generation: u32,
    /// Bumped on every (re)schedule: only the newest heap entry of an armed
    /// slot is current.
    version: u32,
    armed: Option<Armed<K>>,
}

#[derive(Debug)]
struct Armed<K> {
    key: K,
    at: Instant,
}

/// Rebuild only past this many heap entries: below it, stale entries cost
/// less than the rebuild.
const MIN_COMPACT: usize = 1024;

impl<K> Default for TimerQueue<K> {
    fn default() -> Self {
        TimerQueue {
            heap: BinaryHeap::new(),
            slots: Vec::new(),
            free: Vec::new(),
            live: 0,
        }
    }
}

impl<K> TimerQueue<K> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Arms a timer that makes [`pop_expired`](Self::pop_expired) yield
    /// `key` once `at` has passed.
    pub fn schedule(&mut self, key: K, at: Instant) -> TimerId {
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                let slot = u32::try_from(self.slots.len()).expect("more than 2^32 live timers");
                self.slots.push(Slot {
                    generation: 0,
                    version: 0,
                    armed: None,
                });
                slot
            }
        };
        self.slots[slot as usize].armed = Some(Armed { key, at });
        self.live += 1;
        self.push(slot, at);
        TimerId {
            slot,
            generation: self.slots[slot as usize].generation,
        }
    }

    /// Moves a live timer to `at`, keeping its handle. Returns `false` (and
    /// does nothing) if the timer already fired or was cancelled.
    pub fn reschedule(&mut self, id: TimerId, at: Instant) -> bool {
        let Some(armed) = self.armed_mut(id) else {
            return false;
        };
        if armed.at != at {
            armed.at = at;
            self.push(id.slot, at);
        }
        true
    }

    /// Disarms a timer and returns its key, or `None` if it already fired or
    /// was cancelled.
    pub fn cancel(&mut self, id: TimerId) -> Option<K> {
        self.armed_mut(id)?;
        Some(self.vacate(id.slot))
    }

    /// Keeps the timer of `key` in step with a state machine's
    /// `poll_timeout()`: schedules, moves or cancels it, and updates the
    /// handle the caller stores next to the machine. Call it after every
    /// interaction with the machine.
    pub fn set_deadline(&mut self, timer: &mut Option<TimerId>, key: K, deadline: Option<Instant>) {
        match (deadline, *timer) {
            (None, None) => {}
            (None, Some(id)) => {
                self.cancel(id);
                *timer = None;
            }
            (Some(at), Some(id)) if self.reschedule(id, at) => {}
            // Never armed, or it fired since: arm afresh.
            (Some(at), _) => *timer = Some(self.schedule(key, at)),
        }
    }

    /// The deadline of a live timer.
    pub fn deadline(&self, id: TimerId) -> Option<Instant> {
        let slot = self.slots.get(id.slot as usize)?;
        let armed = slot
            .armed
            .as_ref()
            .filter(|_| slot.generation == id.generation)?;
        Some(armed.at)
    }

    /// Removes and returns the key of one timer due at `now` (earliest
    /// first), or `None` when none is due. One at a time, so the caller can
    /// re-arm timers in this queue while draining it.
    pub fn pop_expired(&mut self, now: Instant) -> Option<K> {
        self.discard_stale();
        let Reverse(top) = *self.heap.peek()?;
        if top.at > now {
            return None;
        }
        self.heap.pop();
        Some(self.vacate(top.slot))
    }

    /// The earliest deadline of a live timer: when to call
    /// [`pop_expired`](Self::pop_expired) next.
    pub fn next_deadline(&mut self) -> Option<Instant> {
        self.discard_stale();
        self.heap.peek().map(|Reverse(entry)| entry.at)
    }

    /// Number of live timers.
    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    fn armed_mut(&mut self, id: TimerId) -> Option<&mut Armed<K>> {
        let slot = self.slots.get_mut(id.slot as usize)?;
        if slot.generation != id.generation {
            return None;
        }
        slot.armed.as_mut()
    }

    fn is_current(&self, entry: &Entry) -> bool {
        let slot = &self.slots[entry.slot as usize];
        slot.armed.is_some() && slot.version == entry.version
    }

    /// Pops stale entries until the top (if any) is a live timer.
    fn discard_stale(&mut self) {
        while let Some(Reverse(top)) = self.heap.peek() {
            if self.is_current(top) {
                return;
            }
            self.heap.pop();
        }
    }

    fn vacate(&mut self, slot: u32) -> K {
        let vacated = &mut self.slots[slot as usize];
        let armed = vacated.armed.take().expect("vacating a live slot");
        vacated.generation = vacated.generation.wrapping_add(1);
        self.free.push(slot);
        self.live -= 1;
        armed.key
    }

    /// Adds the heap entry for an armed slot's new deadline, superseding
    /// its previous one.
    fn push(&mut self, slot: u32, at: Instant) {
        let armed = &mut self.slots[slot as usize];
        armed.version = armed.version.wrapping_add(1);
        let version = armed.version;
        self.heap.push(Reverse(Entry { at, slot, version }));
        if self.heap.len() > MIN_COMPACT.max(2 * self.live) {
            let mut heap = std::mem::take(&mut self.heap);
            heap.retain(|Reverse(entry)| self.is_current(entry));
            self.heap = heap;
        }
    }

    #[cfg(test)]
    pub(super) fn heap_len(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
mod size {
    use super::*;

    /// The per-timer footprint the module docs promise, for the key type a
    /// proxy uses (a slab index).
    #[test]
    fn per_timer_footprint_is_56_bytes_on_64_bit_unix() {
        if cfg!(target_pointer_width = "64") && cfg!(unix) {
            assert_eq!(size_of::<Reverse<Entry>>(), 24);
            assert_eq!(size_of::<Slot<u64>>(), 32);
        }
    }
}

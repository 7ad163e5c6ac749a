//! A hook's time budget counted in its thread's CPU time.
//!
//! The ticker advances the engine's epoch every `epoch_tick_ms`; when a
//! call's deadline in ticks comes, wasmtime asks [`CpuDeadline`] whether it
//! may go on. It may while the thread has used less CPU than the budget
//! since the call began: on a busy machine the thread can be descheduled
//! for longer than a 5 ms budget while the guest has run for microseconds,
//! and a wall-clock deadline would fail that call for nothing. A guest
//! that loops uses CPU and is cut off as before. A wall-clock cap of
//! [`WALL_FACTOR`] times the budget still bounds a call whatever the CPU
//! accounting says.

use std::time::{Duration, Instant};

/// The wall-clock cap of a call, in budgets.
pub(crate) const WALL_FACTOR: u32 = 4;

/// The budget of the call running in a store.
pub(crate) struct CpuDeadline {
    cpu_start: Duration,
    wall_start: Instant,
    budget: Duration,
}

impl CpuDeadline {
    /// A call begins now on this thread with `budget`.
    pub fn start(budget: Duration) -> Self {
        CpuDeadline {
            cpu_start: thread_cpu_time(),
            wall_start: Instant::now(),
            budget,
        }
    }

    /// At an epoch deadline: whether the call may run on (one more tick).
    pub fn may_continue(&self) -> bool {
        let cpu = thread_cpu_time().saturating_sub(self.cpu_start);
        cpu < self.budget && self.wall_start.elapsed() < self.budget * WALL_FACTOR
    }
}

/// CPU time this thread has used (`CLOCK_THREAD_CPUTIME_ID`).
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant
    // every Linux and macOS libc defines. On failure `ts` stays zero, which
    // makes the call look like it used no CPU: the wall-clock cap applies.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_thread_spends_its_budget_and_a_sleeping_one_only_the_wall_cap() {
        let busy = CpuDeadline::start(Duration::from_millis(5));
        let until = Instant::now() + Duration::from_millis(8);
        while Instant::now() < until {
            std::hint::black_box(0u64);
        }
        assert!(!busy.may_continue(), "8 ms of CPU is past a 5 ms budget");
        let idle = CpuDeadline::start(Duration::from_millis(5));
        std::thread::sleep(Duration::from_millis(8));
        assert!(idle.may_continue(), "8 ms asleep used no CPU");
        std::thread::sleep(Duration::from_millis(15));
        assert!(!idle.may_continue(), "past 4 budgets of wall clock");
    }
}

//! A hook's time budget counted in its thread's CPU time.
//!
//! The ticker advances the engine's epoch every `epoch_tick_ms`. A call's
//! store has its epoch deadline at the next tick, and at every tick from
//! then on wasmtime asks [`CpuDeadline`] whether the call may go on. It may
//! while the thread has used less CPU than the budget: on a busy machine
//! the thread can be descheduled for longer than a 5 ms budget while the
//! guest has run for microseconds, and a wall-clock deadline would fail
//! that call for nothing. A guest that loops uses CPU and is cut off. A
//! wall-clock cap of [`WALL_FACTOR`] times the budget still bounds a call
//! whatever the CPU accounting says.
//!
//! The thread's CPU clock is a system call (no vDSO serves
//! `CLOCK_THREAD_CPUTIME_ID`), so it is first read at the call's first
//! tick, not when the call begins: the hooks that end within the tick they
//! started in, nearly all of them, never read it. What ran before that
//! first reading, less than one tick, goes uncounted.

use std::time::{Duration, Instant};

/// The wall-clock cap of a call, in budgets.
pub(crate) const WALL_FACTOR: u32 = 4;

/// The budget of the call running in a store.
pub(crate) struct CpuDeadline {
    /// The thread's CPU time at the call's first tick; `None` before it.
    cpu_start: Option<Duration>,
    wall_start: Instant,
    budget: Duration,
}

impl CpuDeadline {
    /// A call begins now with `budget`; arm the store's epoch deadline
    /// at the next tick.
    pub fn start(budget: Duration) -> Self {
        CpuDeadline {
            cpu_start: None,
            wall_start: Instant::now(),
            budget,
        }
    }

    /// At a tick: whether the call may run on (until the next tick).
    pub fn may_continue(&mut self) -> bool {
        let cpu_now = thread_cpu_time();
        let cpu = cpu_now.saturating_sub(*self.cpu_start.get_or_insert(cpu_now));
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
        let mut busy = CpuDeadline::start(Duration::from_millis(5));
        assert!(busy.may_continue(), "the first tick reads the clock");
        // 8 ms of this thread's CPU, however long a busy machine takes to
        // give it that much.
        let until = thread_cpu_time() + Duration::from_millis(8);
        while thread_cpu_time() < until {
            std::hint::black_box(0u64);
        }
        assert!(!busy.may_continue(), "8 ms of CPU is past a 5 ms budget");
        let began = Instant::now();
        let mut idle = CpuDeadline::start(Duration::from_millis(5));
        assert!(idle.may_continue());
        std::thread::sleep(Duration::from_millis(8));
        let goes_on = idle.may_continue();
        // Unless a busy machine overslept the sleep into the wall cap.
        if began.elapsed() < Duration::from_millis(20) {
            assert!(goes_on, "8 ms asleep used no CPU");
        }
        std::thread::sleep(Duration::from_millis(15));
        assert!(!idle.may_continue(), "past 4 budgets of wall clock");
    }
}

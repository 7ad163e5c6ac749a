//! Heap bytes per live call in the dialog layer (`switchyard_proto::dialog::Calls`),
//! counted by a wrapping global allocator: repeatable, unlike RSS.
//!
//! `cargo bench -p switchyard-proto --bench dialog_memory` (target ≤ 512 B;
//! `bench/README.md`, "Dialogs"). Calls look like SIPp's and softphones':
//! a 40-byte Call-ID, 20-byte tags, `user@domain` parties of our domain
//! (each counted per user), answered, with a policy that has no dialog hooks.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use switchyard_proto::dialog::{CallStart, Calls, DialogSettings, LimitsTable};
use switchyard_proto::endpoint::Now;

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn main() {
    let now = Now::new(Instant::now(), SystemTime::now());
    for calls_n in [10_000usize, 100_000] {
        let mut calls = Calls::new("node-1", DialogSettings::default(), LimitsTable::default());
        // Distinct users: every call adds two per-user counts (the worst case).
        let ids: Vec<(String, String, String, String)> = (0..calls_n)
            .map(|i| {
                (
                    format!("{i:08}-5f2c1a9e4b7d3c6a8e1f0b2d4c6a@127.0.0.1"),
                    format!("{i:08}SIPpTag00{i:03}"),
                    format!("caller{i}@bench.test"),
                    format!("user{i}@bench.test"),
                )
            })
            .collect();
        let before = LIVE.load(Ordering::Relaxed);
        let started = Instant::now();
        for (call_id, tag, caller, callee) in &ids {
            let key = calls
                .begin(
                    CallStart {
                        tenant: "bench",
                        call_id,
                        caller_tag: tag,
                        caller: (caller, true),
                        callee: (callee, true),
                        policy: None,
                        transit: false,
                    },
                    now,
                )
                .expect("no limits");
            let later = Now::new(now.instant + Duration::from_millis(5), now.wall);
            calls.final_response(key, 200, Some(1800), b"", later);
        }
        let elapsed = started.elapsed();
        let bytes = LIVE.load(Ordering::Relaxed) - before;
        println!(
            "{calls_n} live calls: {} bytes per call ({:.0} ns per begin + answer)",
            bytes / calls_n as isize,
            elapsed.as_nanos() as f64 / calls_n as f64
        );
        assert_eq!(calls.live(), calls_n);
    }
}

use std::time::{Duration, Instant};

use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// `rate` messages/s, bursts of `burst`, nothing exempt.
fn limiter(rate: u32, burst: u32) -> SourceLimiter {
    SourceLimiter::new(SourceLimitConfig {
        rate,
        burst,
        exempt: Vec::new(),
        max_sources: 1 << 20,
    })
}

/// How many of `n` messages from `from` at `at` pass.
fn passed(l: &SourceLimiter, from: &str, at: Instant, n: usize) -> usize {
    (0..n).filter(|_| l.allow(ip(from), at)).count()
}

#[test]
fn a_burst_passes_at_once_then_the_steady_rate() {
    let l = limiter(10, 5);
    let t0 = Instant::now();
    assert_eq!(passed(&l, "192.0.2.1", t0, 20), 5);
    // One token per 100 ms.
    assert_eq!(
        passed(&l, "192.0.2.1", t0 + Duration::from_millis(99), 3),
        0
    );
    assert_eq!(
        passed(&l, "192.0.2.1", t0 + Duration::from_millis(100), 3),
        1
    );
    // A sender trying every 10 ms for 10 s gets its burst, then 10/s.
    let got: usize = (0..1000)
        .map(|i| passed(&l, "192.0.2.2", t0 + Duration::from_millis(10 * i), 1))
        .sum();
    assert!((104..=105).contains(&got), "{got} in 10 s at 10/s");
}

#[test]
fn a_quiet_source_refills_up_to_the_burst_only() {
    let l = limiter(10, 5);
    let t0 = Instant::now();
    assert_eq!(passed(&l, "192.0.2.1", t0, 5), 5);
    assert_eq!(
        passed(&l, "192.0.2.1", t0 + Duration::from_millis(300), 10),
        3
    );
    // An hour of silence is still only a burst's worth.
    let later = t0 + Duration::from_secs(3600);
    assert_eq!(passed(&l, "192.0.2.1", later, 10), 5);
}

#[test]
fn sources_have_their_own_buckets() {
    let l = limiter(10, 5);
    let t0 = Instant::now();
    assert_eq!(passed(&l, "192.0.2.1", t0, 10), 5);
    assert_eq!(passed(&l, "192.0.2.2", t0, 10), 5);
    assert_eq!(passed(&l, "2001:db8::1", t0, 10), 5);
    assert_eq!(passed(&l, "192.0.2.1", t0, 1), 0);
}

#[test]
fn an_ipv6_64_is_one_source_and_mapped_ipv4_is_ipv4() {
    let l = limiter(10, 5);
    let t0 = Instant::now();
    assert_eq!(passed(&l, "2001:db8:1:2::1", t0, 3), 3);
    // Another address of the same /64 shares the bucket...
    assert_eq!(passed(&l, "2001:db8:1:2:ffff::9", t0, 5), 2);
    // ...the next /64 does not.
    assert_eq!(passed(&l, "2001:db8:1:3::1", t0, 5), 5);
    assert_eq!(passed(&l, "198.51.100.7", t0, 3), 3);
    assert_eq!(passed(&l, "::ffff:198.51.100.7", t0, 5), 2);
    assert_eq!(
        passed(&l, "::198.51.100.7", t0, 5),
        5,
        "IPv4-compatible is IPv6"
    );
}

#[test]
fn exempt_sources_are_never_limited() {
    let l = SourceLimiter::new(SourceLimitConfig {
        rate: 10,
        burst: 5,
        exempt: ["10.0.0.0/8", "2001:db8::/32", "::ffff:192.0.2.0/120"]
            .iter()
            .map(|n| n.parse().unwrap())
            .collect(),
        max_sources: 1 << 20,
    });
    let t0 = Instant::now();
    for from in ["10.1.2.3", "::ffff:10.1.2.3", "2001:db8:7::1", "192.0.2.9"] {
        assert_eq!(passed(&l, from, t0, 1000), 1000, "{from}");
    }
    assert_eq!(passed(&l, "11.0.0.1", t0, 10), 5);
    assert!(l.len() == 1, "exempt sources are not even tracked");
    // Loopback is exempt by default.
    let defaults = SourceLimiter::new(SourceLimitConfig::default());
    assert_eq!(passed(&defaults, "127.0.0.5", t0, 10_000), 10_000);
    assert_eq!(passed(&defaults, "::1", t0, 10_000), 10_000);
    assert_eq!(passed(&defaults, "192.0.2.1", t0, 10_000), 4000);
}

#[test]
fn the_table_stays_bounded_and_a_flooder_keeps_its_bucket() {
    // 100/s, bursts of 10; room for 4096 sources (64 per shard).
    let l = SourceLimiter::new(SourceLimitConfig {
        rate: 100,
        burst: 10,
        exempt: Vec::new(),
        max_sources: 4096,
    });
    let t0 = Instant::now();
    let mut flooder = 0;
    let mut fresh = 0u32;
    // Two seconds: every millisecond the flooder tries 5 times and 50 new
    // sources send one message each (100k sources in all, each tracked
    // for the 10 ms its single token takes to come back).
    for ms in 0..2000 {
        let now = t0 + Duration::from_millis(ms);
        flooder += passed(&l, "203.0.113.66", now, 5);
        for _ in 0..50 {
            fresh += 1;
            let src = IpAddr::V4((0x0a00_0000 + fresh).into());
            assert!(l.allow(src, now), "a new source's first message passes");
        }
        assert!(l.len() <= 4096, "{} tracked at {ms} ms", l.len());
    }
    // Sweeps dropped the idle sources, never the flooder: burst + 100/s.
    assert!((209..=211).contains(&flooder), "flooder got {flooder}");
}

#[test]
fn a_table_full_of_active_sources_still_admits_and_stays_bounded() {
    // One slot per shard, and every source sending at the same instant, so
    // nothing is ever idle: arbitrary eviction keeps the bound.
    let l = SourceLimiter::new(SourceLimitConfig {
        rate: 1,
        burst: 1,
        exempt: Vec::new(),
        max_sources: SHARDS,
    });
    let now = Instant::now();
    for n in 0..10_000u32 {
        assert!(l.allow(IpAddr::V4((0xc000_0000 + n).into()), now));
    }
    assert!(l.len() <= SHARDS, "{}", l.len());
}

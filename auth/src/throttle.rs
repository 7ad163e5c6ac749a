//! Brute-force throttling: wrong answers to a challenge are counted per
//! (source, user) and per source; past a threshold in a window, further
//! attempts are refused (403) without being evaluated, for a back-off that
//! doubles with each new block up to a ceiling. Keyed by source too, so a
//! guesser elsewhere never locks the real user out of their own phone.
//! Pure: time is the caller's; memory is bounded by `capacity` keys.

use std::collections::HashMap;
use std::net::IpAddr;

use serde::Deserialize;

/// `[auth.throttle]`.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ThrottleConfig {
    /// Wrong answers allowed per source and user in `window_secs`.
    pub max_failures: u32,
    /// Wrong answers allowed per source, all users together (a guesser
    /// walking through user names).
    pub max_failures_per_source: u32,
    pub window_secs: u64,
    /// The first block; each further block doubles it.
    pub backoff_secs: u64,
    pub max_backoff_secs: u64,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        ThrottleConfig {
            max_failures: 3,
            max_failures_per_source: 30,
            window_secs: 60,
            backoff_secs: 60,
            max_backoff_secs: 900,
        }
    }
}

/// A source: the IPv4 address, or the IPv6 /64 (one host's addresses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Source {
    V4(u32),
    V6(u64),
}

impl From<IpAddr> for Source {
    fn from(ip: IpAddr) -> Source {
        match ip {
            IpAddr::V4(v4) => Source::V4(v4.into()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Source::V4(v4.into()),
                None => Source::V6((u128::from(v6) >> 64) as u64),
            },
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Entry {
    window_start: u64,
    failures: u32,
    blocked_until: u64,
    /// The next block's length (0: none yet).
    next_backoff: u64,
    last_seen: u64,
}

pub struct Throttle {
    config: ThrottleConfig,
    /// (source, Some(user)) and (source, None) for the per-source count.
    entries: HashMap<(Source, Option<String>), Entry>,
    capacity: usize,
}

impl Throttle {
    pub fn new(config: ThrottleConfig, capacity: usize) -> Throttle {
        Throttle {
            config,
            entries: HashMap::new(),
            capacity: capacity.max(1),
        }
    }

    /// Whether attempts from `ip` as `user` are refused now.
    pub fn is_blocked(&self, ip: IpAddr, user: &str, now: u64) -> bool {
        let source = Source::from(ip);
        [Some(user.to_string()), None].into_iter().any(|u| {
            self.entries
                .get(&(source, u))
                .is_some_and(|e| e.blocked_until > now)
        })
    }

    /// A wrong answer from `ip` as `user`.
    pub fn failure(&mut self, ip: IpAddr, user: &str, now: u64) {
        let source = Source::from(ip);
        let c = self.config.clone();
        self.bump((source, Some(user.to_string())), c.max_failures, now);
        self.bump((source, None), c.max_failures_per_source, now);
    }

    /// A right answer: that pair starts afresh (the source's count stays).
    pub fn success(&mut self, ip: IpAddr, user: &str) {
        self.entries
            .remove(&(Source::from(ip), Some(user.to_string())));
    }

    fn bump(&mut self, key: (Source, Option<String>), limit: u32, now: u64) {
        if !self.entries.contains_key(&key) && self.entries.len() >= self.capacity {
            self.evict(now);
        }
        let c = &self.config;
        let e = self.entries.entry(key).or_default();
        // A quiet spell as long as the longest block, after the last
        // failure and the last block, forgives past blocks.
        if e.last_seen.max(e.blocked_until) + c.max_backoff_secs < now {
            e.next_backoff = 0;
        }
        e.last_seen = now;
        if now >= e.window_start + c.window_secs {
            e.window_start = now;
            e.failures = 0;
        }
        e.failures += 1;
        if e.failures >= limit {
            let backoff = e.next_backoff.max(c.backoff_secs).min(c.max_backoff_secs);
            e.blocked_until = now + backoff;
            e.next_backoff = (backoff * 2).min(c.max_backoff_secs);
            e.failures = 0;
            e.window_start = now;
        }
    }

    /// Makes room: entries neither blocked nor recent go first, else the
    /// least recently seen.
    fn evict(&mut self, now: u64) {
        let window = self.config.window_secs;
        self.entries
            .retain(|_, e| e.blocked_until > now || e.last_seen + window > now);
        if self.entries.len() >= self.capacity
            && let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.last_seen)
                .map(|(k, _)| k.clone())
        {
            self.entries.remove(&oldest);
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn three_wrong_guesses_block_that_source_and_user_with_doubling_backoff() {
        let mut t = Throttle::new(ThrottleConfig::default(), 1000);
        let (a, b) = (ip("127.0.0.5"), ip("127.0.0.6"));
        for now in [0, 1] {
            t.failure(a, "alice", now);
            assert!(!t.is_blocked(a, "alice", now));
        }
        t.failure(a, "alice", 2);
        assert!(t.is_blocked(a, "alice", 2));
        // Not the real alice elsewhere, nor bob from the same source.
        assert!(!t.is_blocked(b, "alice", 2));
        assert!(!t.is_blocked(a, "bob", 2));
        assert!(t.is_blocked(a, "alice", 61));
        assert!(!t.is_blocked(a, "alice", 62));
        // The next block is twice as long, up to 15 minutes.
        for now in 62..65 {
            t.failure(a, "alice", now);
        }
        assert!(t.is_blocked(a, "alice", 64 + 119));
        assert!(!t.is_blocked(a, "alice", 64 + 120));
        let mut now = 200;
        for _ in 0..6 {
            for _ in 0..3 {
                t.failure(a, "alice", now);
            }
            now += 901;
        }
        t.failure(a, "alice", now);
        t.failure(a, "alice", now);
        t.failure(a, "alice", now);
        assert!(t.is_blocked(a, "alice", now + 899));
        assert!(!t.is_blocked(a, "alice", now + 900));
    }

    #[test]
    fn failures_spread_over_windows_do_not_block_and_success_resets() {
        let mut t = Throttle::new(ThrottleConfig::default(), 1000);
        let a = ip("::1");
        t.failure(a, "alice", 0);
        t.failure(a, "alice", 1);
        t.failure(a, "alice", 70);
        assert!(!t.is_blocked(a, "alice", 70));
        t.failure(a, "alice", 71);
        t.success(a, "alice");
        t.failure(a, "alice", 72);
        assert!(!t.is_blocked(a, "alice", 72));
    }

    #[test]
    fn a_source_walking_through_users_is_blocked_as_a_whole() {
        let mut t = Throttle::new(ThrottleConfig::default(), 1000);
        let a = ip("2001:db8::1");
        for i in 0..30 {
            t.failure(a, &format!("user{i}"), 5);
        }
        assert!(t.is_blocked(a, "anyone", 5));
        // The same /64 is the same source.
        assert!(t.is_blocked(ip("2001:db8::99"), "anyone", 5));
        assert!(!t.is_blocked(ip("2001:db8:0:1::1"), "anyone", 5));
    }

    #[test]
    fn memory_is_bounded() {
        let mut t = Throttle::new(ThrottleConfig::default(), 10);
        for i in 0..100u32 {
            t.failure(IpAddr::from(i.to_be_bytes()), "u", u64::from(i));
        }
        assert!(t.len() <= 10, "{}", t.len());
    }
}

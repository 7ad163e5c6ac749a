//! The per-source rate limit (`[limits] per_source_rate`), checked on the
//! receive path before a datagram, a connection or a framed TCP message
//! costs a parse or a transaction: Kamailio's pike, as a token bucket per
//! source.
//!
//! A source is an IPv4 address or an IPv6 /64 (one host or one subscriber
//! line can use a whole /64, so a finer key would let it rotate addresses
//! for fresh buckets). IPv4-mapped IPv6 (`::ffff:a.b.c.d`, what a dual-stack
//! socket reports) is its IPv4 address.
//!
//! Sans-IO: the caller passes `now`. Shared by every receive task through
//! `&self`: the table is split into [`SHARDS`] maps behind their own
//! `parking_lot` mutex, each held for one hash-map probe.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use parking_lot::Mutex;

/// Lock stripes. A power of two well above the number of receive tasks, so
/// tasks rarely meet on one lock; a single flooding source always lands in
/// one shard, whose lock it then has mostly to itself.
const SHARDS: usize = 64;

/// How long a shard that a sweep could not free waits before sweeping
/// again (see [`Shard::make_room`]).
const SWEEP_BACKOFF: Duration = Duration::from_secs(1);

/// The limiter's settings; `rate == 0` turns it off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceLimitConfig {
    /// Messages (and TCP connections) per second a source may sustain.
    pub rate: u32,
    /// Messages a source that has been quiet may send at once: the bucket's
    /// size. A quiet source refills it at `rate`.
    pub burst: u32,
    /// Sources never limited: trunks, SBCs, cluster peers, local processes.
    pub exempt: Vec<IpNet>,
    /// Most sources tracked at once; bounds memory (see [`SourceLimiter`]).
    pub max_sources: usize,
}

impl SourceLimitConfig {
    /// Loopback: nothing off-host can send from 127.0.0.0/8 or ::1 (the
    /// kernel drops such packets arriving on other interfaces), and a local
    /// TLS terminator or SBC in front of the proxy would otherwise put every
    /// client it relays into one bucket.
    pub fn default_exempt() -> Vec<IpNet> {
        ["127.0.0.0/8", "::1/128"]
            .iter()
            .map(|n| n.parse().expect("valid CIDR"))
            .collect()
    }

    pub fn is_enabled(&self) -> bool {
        self.rate > 0
    }
}

impl Default for SourceLimitConfig {
    /// 2000 messages/s with a burst of 4000 and loopback exempt: the reasons
    /// are in `docs/operations.md` (`[limits]`).
    fn default() -> Self {
        SourceLimitConfig {
            rate: 2000,
            burst: 4000,
            exempt: Self::default_exempt(),
            max_sources: 1 << 20,
        }
    }
}

/// Token buckets per source, bounded in memory.
///
/// Each bucket is kept the GCRA way, as one number: the time its debt is
/// paid off (the "theoretical arrival time"). A message is allowed when,
/// with one more emission interval of debt, the debt stays within
/// `burst` intervals. That is exactly a token bucket of `burst` tokens
/// refilled at `rate`, without a second field or any float.
///
/// Memory: a tracked source is a `u64` key and a `u64` deadline, 16 bytes
/// per slot plus hashbrown's control byte; at its 7/8 maximum load and
/// power-of-two growth that is 19–39 bytes per source, about 36 MB when
/// all of the default 1M (2^20) sources are tracked. A source is only
/// tracked while its bucket is not full (a few milliseconds after a single
/// message at the default rate); full buckets are swept out when a shard
/// reaches its share of `max_sources`.
#[derive(Debug)]
pub struct SourceLimiter {
    /// 10^9 / rate, in nanoseconds: the time one token takes to refill.
    interval: u64,
    /// burst × interval: how far into the future the debt may run.
    tolerance: u64,
    exempt: Exempt,
    per_shard: usize,
    hasher: RandomState,
    shards: Box<[Mutex<Shard>]>,
    /// The origin of the nanosecond clock in the table: the first `now`
    /// seen (times before it count as it).
    epoch: OnceLock<Instant>,
}

#[derive(Debug, Default)]
struct Shard {
    /// Source key → when its bucket is full again (ns since the epoch).
    paid_off: HashMap<u64, u64>,
    /// No sweep before this (ns since the epoch).
    next_sweep: u64,
}

impl SourceLimiter {
    /// A limiter for `config`. A `rate` of 0 would allow everything; the
    /// transports simply build none then.
    pub fn new(config: SourceLimitConfig) -> Self {
        let rate = u64::from(config.rate.max(1));
        let interval = ((1_000_000_000 + rate / 2) / rate).max(1);
        SourceLimiter {
            interval,
            tolerance: interval * u64::from(config.burst.max(1)),
            exempt: Exempt::new(&config.exempt),
            per_shard: config.max_sources.div_ceil(SHARDS).max(1),
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            epoch: OnceLock::new(),
        }
    }

    /// Whether a message (or connection) from `ip` at `now` is within its
    /// source's rate. A refused one costs nothing: it takes no token.
    pub fn allow(&self, ip: IpAddr, now: Instant) -> bool {
        if self.exempt.contains(ip) {
            return true;
        }
        let key = source_key(ip);
        let epoch = *self.epoch.get_or_init(|| now);
        let now =
            u64::try_from(now.saturating_duration_since(epoch).as_nanos()).unwrap_or(u64::MAX);
        // Hashed outside the lock; the map hashes again inside (SipHash, so
        // spoofed sources cannot be chosen to collide).
        let index = self.hasher.hash_one(key) as usize % SHARDS;
        let mut shard = self.shards[index].lock();
        if let Some(paid_off) = shard.paid_off.get_mut(&key) {
            return self.spend(paid_off, now);
        }
        if shard.paid_off.len() >= self.per_shard {
            shard.make_room(now, self.per_shard);
        }
        let mut paid_off = now;
        let allowed = self.spend(&mut paid_off, now);
        shard.paid_off.insert(key, paid_off);
        allowed
    }

    /// GCRA: one more interval of debt, if the debt stays within the burst.
    fn spend(&self, paid_off: &mut u64, now: u64) -> bool {
        let after = (*paid_off).max(now).saturating_add(self.interval);
        if after - now > self.tolerance {
            return false;
        }
        *paid_off = after;
        true
    }

    /// Sources currently tracked (buckets not yet swept).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().paid_off.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Shard {
    /// Frees a slot in a full shard. Sources whose bucket is full again are
    /// indistinguishable from new ones, so the sweep drops them and loses
    /// nothing. A sweep that frees at least an eighth of the shard is paid
    /// for by the inserts that filled it; one that frees less means nearly
    /// every tracked source is sending above the rate, so the shard does
    /// not sweep again for [`SWEEP_BACKOFF`] and meanwhile evicts an
    /// arbitrary active source (which gets a fresh bucket: at worst one
    /// extra burst each). Memory stays bounded either way.
    fn make_room(&mut self, now: u64, cap: usize) {
        if now >= self.next_sweep {
            self.paid_off.retain(|_, paid_off| *paid_off > now);
            self.next_sweep = if self.paid_off.len() <= cap - cap / 8 {
                now
            } else {
                now + SWEEP_BACKOFF.as_nanos() as u64
            };
        }
        if self.paid_off.len() >= cap
            && let Some(&victim) = self.paid_off.keys().next()
        {
            self.paid_off.remove(&victim);
        }
    }
}

/// Sources no per-source limit applies to (`[limits] rate_limit_exempt`):
/// the rate limit and the TCP connections per source share the list.
#[derive(Debug, Clone)]
pub(super) struct Exempt(Vec<IpNet>);

impl Exempt {
    pub fn new(nets: &[IpNet]) -> Self {
        Exempt(nets.iter().map(|net| canonical(*net)).collect())
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }
}

/// One `u64` per source: an IPv6 source is its /64 prefix; an IPv4 address
/// (IPv4-mapped IPv6 included) goes in `ffff:ffff::/32`, multicast space,
/// which is never a source address, so the two can never share a key.
pub(super) fn source_key(ip: IpAddr) -> u64 {
    match ip.to_canonical() {
        IpAddr::V4(v4) => 0xffff_ffff_0000_0000 | u64::from(u32::from(v4)),
        IpAddr::V6(v6) => (u128::from(v6) >> 64) as u64,
    }
}

/// An IPv4-mapped IPv6 block (`::ffff:10.0.0.0/104`) as the IPv4 block it
/// means, so that it matches the canonical addresses `Exempt` checks.
fn canonical(net: IpNet) -> IpNet {
    if let IpNet::V6(v6) = net
        && let Some(v4) = v6.network().to_ipv4_mapped()
        && v6.prefix_len() >= 96
        && let Ok(v4net) = ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96)
    {
        return IpNet::V4(v4net);
    }
    net
}

#[cfg(test)]
#[path = "limiter_tests.rs"]
mod tests;

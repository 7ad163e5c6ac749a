//! TCP connection slots (`[limits] tcp_max_inbound`, `tcp_max_outbound`,
//! `tcp_max_per_source`): every open connection holds one [`Slot`], taken
//! before the connection costs anything and given back when its tasks end.
//!
//! Inbound and outbound connections draw on separate pools, so clients
//! that fill every inbound slot cannot keep the proxy from reaching its
//! next hops, and a burst of outbound connects cannot lock clients out.
//! Inbound connections are also capped per source (an IPv4 address or an
//! IPv6 /64, the rate limiter's key and exempt list), so one source cannot
//! take the whole inbound pool.
//!
//! No I/O: the counts sit behind one mutex held for a few integer updates,
//! and the [`Slot`] guard gives its share back on drop, so the counts stay
//! exact however a connection ends.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;
use parking_lot::Mutex;

use super::limiter::{Exempt, source_key};

/// Why no slot was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refused {
    /// All `tcp_max_inbound` inbound slots are taken.
    Inbound,
    /// The source holds `tcp_max_per_source` inbound connections already.
    PerSource,
    /// All `tcp_max_outbound` outbound slots are taken.
    Outbound,
}

/// The caps; each must be at least 1 (see `TransportConfig::validate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct SlotCaps {
    pub inbound: usize,
    pub outbound: usize,
    pub per_source: usize,
}

#[derive(Debug)]
pub(super) struct TcpSlots {
    caps: SlotCaps,
    exempt: Exempt,
    counts: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    inbound: usize,
    outbound: usize,
    /// Inbound connections per source key; a source leaves the map with its
    /// last connection, so the map never outgrows the inbound pool.
    per_source: HashMap<u64, usize>,
}

impl TcpSlots {
    pub fn new(caps: SlotCaps, exempt: &[IpNet]) -> Arc<Self> {
        Arc::new(TcpSlots {
            caps,
            exempt: Exempt::new(exempt),
            counts: Mutex::default(),
        })
    }

    /// A slot for a connection accepted from `ip`. An exempt source still
    /// takes one of the inbound pool, but has no per-source cap.
    pub fn inbound(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, Refused> {
        let key = (!self.exempt.contains(ip)).then(|| source_key(ip));
        let mut counts = self.counts.lock();
        if counts.inbound >= self.caps.inbound {
            return Err(Refused::Inbound);
        }
        if let Some(key) = key {
            let n = counts.per_source.entry(key).or_default();
            if *n >= self.caps.per_source {
                return Err(Refused::PerSource);
            }
            *n += 1;
        }
        counts.inbound += 1;
        Ok(self.slot(Direction::Inbound { source: key }))
    }

    /// A slot for a connection we are about to open.
    pub fn outbound(self: &Arc<Self>) -> Result<Slot, Refused> {
        let mut counts = self.counts.lock();
        if counts.outbound >= self.caps.outbound {
            return Err(Refused::Outbound);
        }
        counts.outbound += 1;
        Ok(self.slot(Direction::Outbound))
    }

    /// Slots held now: (inbound, outbound).
    pub fn held(&self) -> (usize, usize) {
        let counts = self.counts.lock();
        (counts.inbound, counts.outbound)
    }

    fn slot(self: &Arc<Self>, direction: Direction) -> Slot {
        Slot {
            slots: self.clone(),
            direction,
        }
    }

    fn release(&self, direction: Direction) {
        let mut counts = self.counts.lock();
        match direction {
            Direction::Outbound => counts.outbound -= 1,
            Direction::Inbound { source } => {
                counts.inbound -= 1;
                if let Some(key) = source
                    && let Some(n) = counts.per_source.get_mut(&key)
                {
                    *n -= 1;
                    if *n == 0 {
                        counts.per_source.remove(&key);
                    }
                }
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    /// `source` is None for an exempt source (not counted per source).
    Inbound {
        source: Option<u64>,
    },
    Outbound,
}

/// One connection's share of its pool, given back on drop.
#[derive(Debug)]
pub(super) struct Slot {
    slots: Arc<TcpSlots>,
    direction: Direction,
}

impl Slot {
    /// "inbound" or "outbound", for logs.
    pub fn direction(&self) -> &'static str {
        match self.direction {
            Direction::Inbound { .. } => "inbound",
            Direction::Outbound => "outbound",
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.slots.release(self.direction);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn slots(inbound: usize, outbound: usize, per_source: usize) -> Arc<TcpSlots> {
        let caps = SlotCaps {
            inbound,
            outbound,
            per_source,
        };
        TcpSlots::new(caps, &["192.0.2.0/24".parse().unwrap()])
    }

    #[test]
    fn a_source_gets_its_share_and_others_still_get_in() {
        let s = slots(10, 10, 2);
        let a1 = s.inbound(ip("198.51.100.1")).unwrap();
        let _a2 = s.inbound(ip("198.51.100.1")).unwrap();
        assert_eq!(
            s.inbound(ip("198.51.100.1")).unwrap_err(),
            Refused::PerSource
        );
        let _b = s.inbound(ip("198.51.100.2")).unwrap();
        // The refusal took nothing; a closed connection frees its share.
        assert_eq!(s.held(), (3, 0));
        drop(a1);
        let _a3 = s.inbound(ip("198.51.100.1")).unwrap();
        assert_eq!(s.held(), (3, 0));
    }

    #[test]
    fn ipv6_sources_are_counted_per_64_and_mapped_ipv4_as_ipv4() {
        let s = slots(10, 10, 1);
        let _v6 = s.inbound(ip("2001:db8:1:2::1")).unwrap();
        let same_64 = s.inbound(ip("2001:db8:1:2:ffff::9"));
        assert_eq!(same_64.unwrap_err(), Refused::PerSource);
        let _other_64 = s.inbound(ip("2001:db8:1:3::1")).unwrap();
        let _v4 = s.inbound(ip("198.51.100.7")).unwrap();
        let mapped = s.inbound(ip("::ffff:198.51.100.7"));
        assert_eq!(mapped.unwrap_err(), Refused::PerSource);
    }

    #[test]
    fn exempt_sources_have_no_per_source_cap_but_fill_the_pool() {
        let s = slots(3, 10, 1);
        let held: Vec<Slot> = (0..3)
            .map(|_| s.inbound(ip("192.0.2.5")).unwrap())
            .collect();
        assert_eq!(s.inbound(ip("192.0.2.5")).unwrap_err(), Refused::Inbound);
        assert_eq!(s.inbound(ip("198.51.100.1")).unwrap_err(), Refused::Inbound);
        drop(held);
        assert_eq!(s.held(), (0, 0));
        assert!(s.counts.lock().per_source.is_empty());
    }

    #[test]
    fn inbound_and_outbound_pools_are_apart() {
        let s = slots(2, 1, 2);
        let inbound: Vec<Slot> = ["198.51.100.1", "198.51.100.2"]
            .map(|a| s.inbound(ip(a)).unwrap())
            .into();
        // A full inbound pool leaves the outbound one untouched...
        let out = s.outbound().unwrap();
        assert_eq!(out.direction(), "outbound");
        assert_eq!(s.outbound().unwrap_err(), Refused::Outbound);
        // ...and a full outbound pool does not refuse inbound connections.
        drop(inbound);
        let _in = s.inbound(ip("198.51.100.3")).unwrap();
        assert_eq!(s.held(), (1, 1));
        drop(out);
        let _out = s.outbound().unwrap();
    }

    #[test]
    fn counts_are_exact_under_concurrency() {
        let s = slots(1000, 30, 50);
        // Eight threads race for one source's 50 slots and the 30 outbound
        // ones, keeping what they get: exactly the caps are handed out.
        let kept: Vec<Vec<Slot>> = std::thread::scope(|scope| {
            let threads: Vec<_> = (0..8)
                .map(|_| {
                    scope.spawn(|| {
                        (0..100)
                            .flat_map(|_| [s.inbound(ip("198.51.100.1")), s.outbound()])
                            .filter_map(Result::ok)
                            .collect()
                    })
                })
                .collect();
            threads.into_iter().map(|t| t.join().unwrap()).collect()
        });
        assert_eq!(kept.iter().map(Vec::len).sum::<usize>(), 80);
        assert_eq!(s.held(), (50, 30));
        drop(kept);
        assert_eq!(s.held(), (0, 0));
        assert!(s.counts.lock().per_source.is_empty());
    }
}

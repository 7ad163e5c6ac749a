//! RFC 3263 §4 server selection as a pure function.
//!
//! [`plan`] looks at a [`NextHop`] and the DNS records known so far
//! ([`Records`]) and either asks for one more lookup ([`Step::Lookup`]) or
//! returns the ordered list of [`Destination`]s to try ([`Step::Done`]). The
//! caller performs the lookup, adds the answer (an empty list for "no such
//! records") and calls `plan` again. No I/O happens here, so every rule is
//! unit-tested with hand-written records.
//!
//! Randomness (RFC 2782 weighted selection) comes from the caller's RNG; a
//! caller re-planning after each lookup must reseed it identically each time
//! so the walk repeats the same choices and converges.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use rand::Rng;

use super::EgressError;
use super::config::HostEntry;
use super::hop::{Destination, NextHop, Target, normalize_name};
use crate::net::Transport;

/// At most this many destinations are returned: enough for any sane failover
/// (RFC 3263 §4.3), and a bound on the lookups a hostile zone can make us do.
pub const MAX_DESTINATIONS: usize = 16;

/// A NAPTR record (RFC 3403), as far as RFC 3263 uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NaptrRecord {
    pub order: u16,
    pub preference: u16,
    pub flags: String,
    pub services: String,
    pub replacement: String,
}

/// An SRV record (RFC 2782).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrvRecord {
    pub priority: u16,
    pub weight: u16,
    pub port: u16,
    pub target: String,
}

/// A DNS question the planner needs answered. Names are normalised (lower
/// case, no trailing dot).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Query {
    Naptr(String),
    Srv(String),
    /// A and AAAA for a host name.
    Addr(String),
}

/// The planner's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Look this up, add the answer to [`Records`], and plan again.
    Lookup(Query),
    /// Resolution finished: try these in order. Never empty.
    Done(Vec<Destination>),
}

/// The DNS answers known so far. A name present with an empty list means the
/// lookup was made and found nothing (NXDOMAIN, no data, or a failure).
#[derive(Debug, Clone, Default)]
pub struct Records {
    naptr: HashMap<String, Vec<NaptrRecord>>,
    srv: HashMap<String, Vec<SrvRecord>>,
    addr: HashMap<String, Vec<IpAddr>>,
}

impl Records {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert_naptr(&mut self, name: &str, records: Vec<NaptrRecord>) {
        self.naptr.insert(normalize_name(name), records);
    }

    pub fn insert_srv(&mut self, name: &str, records: Vec<SrvRecord>) {
        self.srv.insert(normalize_name(name), records);
    }

    pub fn insert_addrs(&mut self, name: &str, addrs: Vec<IpAddr>) {
        self.addr.insert(normalize_name(name), addrs);
    }

    /// Records "nothing found" as the answer to `query`.
    pub fn insert_empty(&mut self, query: &Query) {
        match query {
            Query::Naptr(n) => self.insert_naptr(n, Vec::new()),
            Query::Srv(n) => self.insert_srv(n, Vec::new()),
            Query::Addr(n) => self.insert_addrs(n, Vec::new()),
        }
    }
}

/// Checks what RFC 3263 needs before any lookup: the transport must be one
/// we speak, and a SIPS URI is reached over TLS only (§4.1; RFC 5630 §3.1:
/// `transport=tcp` on a SIPS URI still means TLS over TCP).
pub fn check_hop(hop: &NextHop, supported: &[Transport]) -> Result<(), EgressError> {
    match explicit_transport(hop) {
        Some(t) if !supported.contains(&t) => {
            Err(EgressError::UnsupportedTransport(t.as_str().into()))
        }
        _ => Ok(()),
    }
}

/// The transport the URI itself fixes: its `transport=` parameter, TLS for
/// any SIPS URI.
fn explicit_transport(hop: &NextHop) -> Option<Transport> {
    if hop.secure {
        return Some(Transport::Tls);
    }
    hop.transport
}

/// §4.1: the URI's transport, else UDP for SIP and TLS for SIPS.
fn default_transport(hop: &NextHop) -> Transport {
    explicit_transport(hop).unwrap_or(Transport::Udp)
}

/// RFC 5922 §7.2: a TLS peer's certificate must name the SIP domain the
/// URI was resolved from (for an IP literal, the address itself).
fn named(dest: Destination, hop: &NextHop) -> Destination {
    match &hop.target {
        Target::Domain(name) if dest.transport.is_secure() => dest.with_tls_name(name),
        _ => dest,
    }
}

/// RFC 3263 §4.1 and §4.2: decides the next lookup, or the final ordered list.
///
/// `supported` lists the transports we can send on, in our order of
/// preference when DNS leaves the choice to us (SRV without NAPTR).
pub fn plan<R: Rng + ?Sized>(
    hop: &NextHop,
    supported: &[Transport],
    records: &Records,
    rng: &mut R,
) -> Result<Step, EgressError> {
    check_hop(hop, supported)?;
    let name = match &hop.target {
        // §4.2: "If the TARGET was a numeric IP address, the client uses that
        // address", with the URI port or the transport's default port; §4.1:
        // UDP when the URI names no transport.
        Target::Ip(ip) => {
            let transport = default_transport(hop);
            let addr = SocketAddr::new(*ip, hop.port.unwrap_or(transport.default_port()));
            return Ok(Step::Done(vec![Destination::new(transport, addr)]));
        }
        Target::Domain(name) => name.as_str(),
    };
    let mut walk = Walk {
        records,
        rng,
        out: Vec::new(),
    };
    match walk.domain(hop, name, supported) {
        Err(query) => Ok(Step::Lookup(query)),
        Ok(()) if walk.out.is_empty() => Err(EgressError::NotFound(name.to_owned())),
        Ok(()) => Ok(Step::Done(
            walk.out.into_iter().map(|d| named(d, hop)).collect(),
        )),
    }
}

/// Destinations for a target that has a static host entry (no DNS at all).
/// The URI's port wins over the entry's port, which wins over 5060.
pub fn from_static(
    hop: &NextHop,
    entries: &[HostEntry],
    supported: &[Transport],
) -> Result<Vec<Destination>, EgressError> {
    check_hop(hop, supported)?;
    let transport = default_transport(hop);
    let mut out: Vec<Destination> = Vec::with_capacity(entries.len());
    for entry in entries.iter().take(MAX_DESTINATIONS) {
        let port = hop.port.or(entry.port).unwrap_or(transport.default_port());
        let dest = named(
            Destination::new(transport, SocketAddr::new(entry.ip, port)),
            hop,
        );
        if !out.contains(&dest) {
            out.push(dest);
        }
    }
    if out.is_empty() {
        return Err(EgressError::NotFound(hop.target.to_string()));
    }
    Ok(out)
}

/// Orders SRV records per RFC 2782 "Usage rules": ascending priority; within
/// one priority, repeated weighted random draws, where a record's chance is
/// proportional to its weight and weight-0 records are placed first in the
/// running sum (so one is picked only when the draw is exactly 0).
pub fn order_srv<R: Rng + ?Sized>(records: &[SrvRecord], rng: &mut R) -> Vec<SrvRecord> {
    let mut sorted = records.to_vec();
    // Stable: within a priority, weight 0 first, otherwise the DNS order.
    sorted.sort_by_key(|r| (r.priority, r.weight != 0));
    let mut ordered = Vec::with_capacity(sorted.len());
    let mut rest = sorted.as_slice();
    while let Some(first) = rest.first() {
        let len = rest
            .iter()
            .take_while(|r| r.priority == first.priority)
            .count();
        let mut group: Vec<SrvRecord> = rest[..len].to_vec();
        rest = &rest[len..];
        while !group.is_empty() {
            let total: u32 = group.iter().map(|r| u32::from(r.weight)).sum();
            // RFC 2782 draws from 0..=total, which read literally hands the
            // extra draw 0 to the first record, skewing small weights (1:3
            // becomes 2:3). Draw 0 is kept only when a weight-0 record sits
            // there to take it: the "very small chance" the RFC intends.
            let lowest = if group[0].weight == 0 { 0 } else { 1 };
            let draw = rng.random_range(lowest..=total);
            let mut running = 0u32;
            let pick = group
                .iter()
                .position(|r| {
                    running += u32::from(r.weight);
                    running >= draw
                })
                .unwrap_or(0);
            ordered.push(group.remove(pick));
        }
    }
    ordered
}

/// The transport a NAPTR record leads to, if it is one RFC 3263 §4.1 lets us
/// use: flag "S" (terminal, SRV lookup next), a service we speak, and only
/// SIPS+D2T for a SIPS URI.
fn naptr_transport(
    record: &NaptrRecord,
    hop: &NextHop,
    supported: &[Transport],
) -> Option<Transport> {
    if !record.flags.eq_ignore_ascii_case("s") || normalize_name(&record.replacement).is_empty() {
        return None;
    }
    let transport = match record.services.to_ascii_uppercase().as_str() {
        "SIP+D2U" => Transport::Udp,
        "SIP+D2T" => Transport::Tcp,
        "SIPS+D2T" => Transport::Tls,
        // SIP+D2S is SCTP; SIP+D2W and SIPS+D2W WebSocket: never dialled out.
        _ => return None,
    };
    let allowed = !hop.secure || transport == Transport::Tls;
    (allowed && supported.contains(&transport)).then_some(transport)
}

/// The SRV name of a transport (§4.1: `_sips._tcp` for TLS).
fn srv_name(transport: Transport, domain: &str) -> String {
    let service = match transport {
        Transport::Udp => "_sip._udp",
        Transport::Tls | Transport::Wss => "_sips._tcp",
        Transport::Tcp | Transport::Ws => "_sip._tcp",
    };
    format!("{service}.{domain}")
}

/// One planning pass. `Err(query)` means "this answer is missing".
struct Walk<'a, R: ?Sized> {
    records: &'a Records,
    rng: &'a mut R,
    out: Vec<Destination>,
}

impl<R: Rng + ?Sized> Walk<'_, R> {
    fn domain(&mut self, hop: &NextHop, name: &str, supported: &[Transport]) -> Result<(), Query> {
        // §4.1: no transport and an explicit port means UDP; §4.2: explicit
        // port means A/AAAA only, no SRV.
        if let Some(port) = hop.port {
            return self.addrs(name, port, default_transport(hop));
        }
        // §4.2: transport given by the URI: SRV for that transport only.
        if let Some(transport) = explicit_transport(hop) {
            let found = self.srv(&srv_name(transport, name), transport)?;
            return self.fallback(found, name, transport);
        }
        // §4.1: NAPTR, keeping only services we support, in order/preference.
        let records = self.records;
        let naptr = records
            .naptr
            .get(name)
            .ok_or_else(|| Query::Naptr(name.to_owned()))?;
        let mut usable: Vec<(&NaptrRecord, Transport)> = naptr
            .iter()
            .filter_map(|r| naptr_transport(r, hop, supported).map(|t| (r, t)))
            .collect();
        usable.sort_by_key(|(r, _)| (r.order, r.preference));
        if let Some(&(_, preferred)) = usable.first() {
            // RFC 2915 processing: each NAPTR's SRV set in turn, so a server
            // whose preferred transport is down is reached on the next one.
            let mut found = false;
            for (record, transport) in usable {
                found |= self.srv(&normalize_name(&record.replacement), transport)?;
            }
            return self.fallback(found, name, preferred);
        }
        // §4.1: "If no NAPTR records are found, the client constructs SRV
        // queries for those transport protocols it supports". A NAPTR set
        // with nothing usable in it is treated the same way.
        // Queries are done with "_sip" for SIP URIs: TLS is not among them
        // (a SIPS URI never gets here, its transport is fixed).
        let mut found = false;
        for &transport in supported.iter().filter(|t| !t.is_secure()) {
            found |= self.srv(&srv_name(transport, name), transport)?;
        }
        // "If no SRV records are found, the client SHOULD use ... UDP for a
        // SIP URI."
        let transport = if supported.contains(&Transport::Udp) {
            Transport::Udp
        } else {
            supported.first().copied().unwrap_or(Transport::Udp)
        };
        self.fallback(found, name, transport)
    }

    /// §4.2: "If no SRV records were found, the client performs an A or AAAA
    /// record lookup of the domain name", at the transport's default port.
    fn fallback(&mut self, srv_found: bool, name: &str, transport: Transport) -> Result<(), Query> {
        if srv_found {
            Ok(())
        } else {
            self.addrs(name, transport.default_port(), transport)
        }
    }

    /// Walks one SRV set in RFC 2782 order. Returns whether any SRV record
    /// exists: a set holding only target "." ("decidedly not available")
    /// still counts, so it suppresses the A/AAAA fallback.
    fn srv(&mut self, name: &str, transport: Transport) -> Result<bool, Query> {
        if self.full() {
            return Ok(true);
        }
        let records = self.records;
        let set = records
            .srv
            .get(name)
            .ok_or_else(|| Query::Srv(name.to_owned()))?;
        for record in order_srv(set, self.rng) {
            let target = normalize_name(&record.target);
            if !target.is_empty() {
                self.addrs(&target, record.port, transport)?;
            }
        }
        Ok(!set.is_empty())
    }

    fn addrs(&mut self, name: &str, port: u16, transport: Transport) -> Result<(), Query> {
        if self.full() {
            return Ok(());
        }
        let ips = self
            .records
            .addr
            .get(name)
            .ok_or_else(|| Query::Addr(name.to_owned()))?;
        for &ip in ips {
            let dest = Destination::new(transport, SocketAddr::new(ip, port));
            if !self.full() && !self.out.contains(&dest) {
                self.out.push(dest);
            }
        }
        Ok(())
    }

    fn full(&self) -> bool {
        self.out.len() >= MAX_DESTINATIONS
    }
}

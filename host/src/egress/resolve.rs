//! The [`Resolver`] interface the proxy uses, and its RFC 3263 implementation:
//! static hosts first, then (if enabled) DNS driven by the pure planner in
//! [`select`](super::select).

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use rand::SeedableRng;
use rand::rngs::StdRng;
use tracing::debug;

use super::EgressError;
use super::config::HostEntry;
use super::dns::DnsLookup;
use super::hop::{Destination, NextHop, Target, normalize_name};
use super::select::{self, Query, Records, Step};
use crate::net::Transport;

/// Turns a next hop into the ordered list of destinations to try.
#[async_trait]
pub trait Resolver: Send + Sync {
    /// Never returns an empty list: "nothing found" is an error.
    async fn resolve(&self, hop: &NextHop) -> Result<Vec<Destination>, EgressError>;
}

/// Static host entries, keyed by normalised name.
#[derive(Debug, Clone, Default)]
pub struct StaticHosts {
    entries: HashMap<String, Vec<HostEntry>>,
}

impl StaticHosts {
    pub fn new<'a>(entries: impl IntoIterator<Item = (&'a String, &'a Vec<HostEntry>)>) -> Self {
        let entries = entries
            .into_iter()
            .map(|(name, list)| (normalize_name(name), list.clone()))
            .collect();
        StaticHosts { entries }
    }

    pub fn get(&self, name: &str) -> Option<&[HostEntry]> {
        self.entries.get(&normalize_name(name)).map(Vec::as_slice)
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Real DNS lookups per resolution: NAPTR + 2 SRV + A/AAAA of the SRV
/// targets. Past this budget, missing answers count as empty rather than being
/// asked, so a zone with hundreds of SRV targets cannot make us flood the
/// resolver.
const MAX_LOOKUPS: usize = 24;

/// RFC 3263 resolution with static hosts consulted before DNS.
pub struct Rfc3263Resolver {
    statics: StaticHosts,
    /// `None`: DNS disabled, only static hosts and IP literals resolve.
    dns: Option<Arc<dyn DnsLookup>>,
    transports: Vec<Transport>,
}

impl Rfc3263Resolver {
    /// `dns = None` disables DNS entirely (no resolver traffic). The
    /// transports default to UDP, TCP, then TLS.
    pub fn new(statics: StaticHosts, dns: Option<Arc<dyn DnsLookup>>) -> Self {
        Rfc3263Resolver {
            statics,
            dns,
            transports: vec![Transport::Udp, Transport::Tcp, Transport::Tls],
        }
    }

    /// The transports we can send on, in our preference order (used when
    /// SRV without NAPTR leaves the choice to us). Others are never selected.
    pub fn with_transports(mut self, transports: &[Transport]) -> Self {
        self.transports = transports.to_vec();
        self
    }

    /// Answers one planner question, from static hosts when possible.
    async fn answer(&self, query: &Query, records: &mut Records) -> Result<(), EgressError> {
        // A static entry also stands in for A/AAAA of an SRV target, like a
        // hosts file would (its port is ignored there: SRV gives the port).
        if let Query::Addr(name) = query
            && let Some(entries) = self.statics.get(name)
        {
            records.insert_addrs(name, entries.iter().map(|e| e.ip).collect());
            return Ok(());
        }
        let Some(dns) = &self.dns else {
            let name = match query {
                Query::Naptr(n) | Query::Srv(n) | Query::Addr(n) => n,
            };
            return Err(EgressError::NoStaticEntry(name.clone()));
        };
        match query {
            Query::Naptr(name) => records.insert_naptr(name, dns.naptr(name).await?),
            Query::Srv(name) => records.insert_srv(name, dns.srv(name).await?),
            Query::Addr(name) => records.insert_addrs(name, dns.addrs(name).await?),
        }
        Ok(())
    }
}

#[async_trait]
impl Resolver for Rfc3263Resolver {
    async fn resolve(&self, hop: &NextHop) -> Result<Vec<Destination>, EgressError> {
        if let Target::Domain(name) = &hop.target
            && let Some(entries) = self.statics.get(name)
        {
            let dests = select::from_static(hop, entries, &self.transports)?;
            debug!(%hop, ?dests, "resolved from static hosts");
            return Ok(dests);
        }
        // One seed per resolution: each re-plan replays the same RFC 2782
        // draws, so the walk converges instead of wandering to new targets.
        let seed: u64 = rand::random();
        let mut records = Records::new();
        let mut lookups = 0;
        let mut failure: Option<EgressError> = None;
        loop {
            let mut rng = StdRng::seed_from_u64(seed);
            let query = match select::plan(hop, &self.transports, &records, &mut rng) {
                Ok(Step::Done(dests)) => {
                    debug!(%hop, ?dests, lookups, "resolved");
                    return Ok(dests);
                }
                Ok(Step::Lookup(query)) => query,
                // Nothing found, but a lookup failed on the way: the failure
                // is the more useful report (SERVFAIL is not "no such host").
                Err(EgressError::NotFound(name)) => {
                    return Err(failure.unwrap_or(EgressError::NotFound(name)));
                }
                Err(e) => return Err(e),
            };
            if lookups >= MAX_LOOKUPS {
                records.insert_empty(&query);
                continue;
            }
            lookups += 1;
            match self.answer(&query, &mut records).await {
                Ok(()) => {}
                Err(e @ EgressError::Dns { .. }) => {
                    // RFC 3263 §4.3 failover spirit: a failed step is treated
                    // as "no records" so the next rule (e.g. A after SRV) runs.
                    debug!(?query, error = %e, "DNS lookup failed");
                    failure.get_or_insert(e);
                    records.insert_empty(&query);
                }
                Err(e) => return Err(e),
            }
        }
    }
}

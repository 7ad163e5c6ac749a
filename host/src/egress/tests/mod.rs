//! Tests for the egress module. `select_rfc3263` checks the pure RFC 3263
//! rules, `resolver` the static-host/DNS plumbing with an in-memory zone,
//! `dnsmasq` the real hickory path against a local dnsmasq.

mod dnsmasq;
mod resolver;
mod select_rfc3263;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use async_trait::async_trait;
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::select::{self, NaptrRecord, Query, Records, SrvRecord, Step};
use super::{Destination, DnsLookup, EgressError, NextHop};
use crate::net::Transport;

/// An in-memory DNS zone: answers the planner directly (pure tests) or via
/// [`DnsLookup`] (resolver tests), and remembers what it was asked.
#[derive(Default)]
pub(super) struct Zone {
    naptr: HashMap<String, Vec<NaptrRecord>>,
    srv: HashMap<String, Vec<SrvRecord>>,
    addr: HashMap<String, Vec<IpAddr>>,
    /// Names whose lookups fail (as a timeout would).
    broken: Vec<String>,
    asked: Mutex<Vec<Query>>,
}

impl Zone {
    pub(super) fn new() -> Self {
        Self::default()
    }

    pub(super) fn naptr(
        mut self,
        name: &str,
        order: u16,
        pref: u16,
        service: &str,
        repl: &str,
    ) -> Self {
        self.naptr
            .entry(name.into())
            .or_default()
            .push(NaptrRecord {
                order,
                preference: pref,
                flags: "s".into(),
                services: service.into(),
                replacement: repl.into(),
            });
        self
    }

    pub(super) fn srv(
        mut self,
        name: &str,
        priority: u16,
        weight: u16,
        port: u16,
        target: &str,
    ) -> Self {
        self.srv.entry(name.into()).or_default().push(SrvRecord {
            priority,
            weight,
            port,
            target: target.into(),
        });
        self
    }

    pub(super) fn a(mut self, name: &str, ips: &[&str]) -> Self {
        let ips = ips.iter().map(|ip| ip.parse::<IpAddr>().unwrap());
        self.addr.entry(name.into()).or_default().extend(ips);
        self
    }

    pub(super) fn broken(mut self, name: &str) -> Self {
        self.broken.push(name.into());
        self
    }

    pub(super) fn asked(&self) -> Vec<Query> {
        self.asked.lock().unwrap().clone()
    }

    fn fail_if_broken(&self, name: &str) -> Result<(), EgressError> {
        if self.broken.iter().any(|b| b == name) {
            return Err(EgressError::Dns {
                name: name.into(),
                reason: "timed out".into(),
            });
        }
        Ok(())
    }

    /// Runs the pure planner to completion against this zone, with a fixed
    /// seed, answering each query from the zone (missing names are empty).
    pub(super) fn plan(&self, hop: &NextHop) -> Result<Vec<Destination>, EgressError> {
        self.plan_with(hop, &[Transport::Udp, Transport::Tcp], 7)
    }

    pub(super) fn plan_with(
        &self,
        hop: &NextHop,
        supported: &[Transport],
        seed: u64,
    ) -> Result<Vec<Destination>, EgressError> {
        let mut records = Records::new();
        loop {
            let mut rng = StdRng::seed_from_u64(seed);
            match select::plan(hop, supported, &records, &mut rng)? {
                Step::Done(dests) => return Ok(dests),
                Step::Lookup(query) => {
                    self.asked.lock().unwrap().push(query.clone());
                    match &query {
                        Query::Naptr(n) => records.insert_naptr(n, get(&self.naptr, n)),
                        Query::Srv(n) => records.insert_srv(n, get(&self.srv, n)),
                        Query::Addr(n) => records.insert_addrs(n, get(&self.addr, n)),
                    }
                }
            }
        }
    }
}

fn get<T: Clone>(map: &HashMap<String, Vec<T>>, name: &str) -> Vec<T> {
    map.get(name).cloned().unwrap_or_default()
}

#[async_trait]
impl DnsLookup for Zone {
    async fn naptr(&self, name: &str) -> Result<Vec<NaptrRecord>, EgressError> {
        self.asked.lock().unwrap().push(Query::Naptr(name.into()));
        self.fail_if_broken(name)?;
        Ok(get(&self.naptr, name))
    }

    async fn srv(&self, name: &str) -> Result<Vec<SrvRecord>, EgressError> {
        self.asked.lock().unwrap().push(Query::Srv(name.into()));
        self.fail_if_broken(name)?;
        Ok(get(&self.srv, name))
    }

    async fn addrs(&self, name: &str) -> Result<Vec<IpAddr>, EgressError> {
        self.asked.lock().unwrap().push(Query::Addr(name.into()));
        self.fail_if_broken(name)?;
        Ok(get(&self.addr, name))
    }
}

pub(super) fn udp(addr: &str) -> Destination {
    Destination::new(Transport::Udp, addr.parse().unwrap())
}

pub(super) fn tcp(addr: &str) -> Destination {
    Destination::new(Transport::Tcp, addr.parse().unwrap())
}

pub(super) fn hop(uri_host: &str) -> NextHop {
    NextHop::from_uri_parts(uri_host, None, None, None, false).unwrap()
}

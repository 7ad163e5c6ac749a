//! The DNS lookups RFC 3263 needs, behind a small trait, and the
//! hickory-resolver implementation of it.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use async_trait::async_trait;
use hickory_resolver::config::{
    LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::rr::{RData, RecordType};
use hickory_resolver::proto::xfer::Protocol;
use hickory_resolver::{ResolveError, TokioResolver};

use super::EgressError;
use super::select::{NaptrRecord, SrvRecord};

/// Answers the three kinds of question RFC 3263 asks. "No such records"
/// (NXDOMAIN or an empty answer) is `Ok(vec![])`; `Err` is for failures
/// (timeout, SERVFAIL, unreachable server).
#[async_trait]
pub trait DnsLookup: Send + Sync {
    async fn naptr(&self, name: &str) -> Result<Vec<NaptrRecord>, EgressError>;
    async fn srv(&self, name: &str) -> Result<Vec<SrvRecord>, EgressError>;
    /// A and AAAA records of `name`.
    async fn addrs(&self, name: &str) -> Result<Vec<IpAddr>, EgressError>;
}

/// [`DnsLookup`] over hickory-resolver.
///
/// Hickory's cache keeps every answer (positive and negative) for its TTL,
/// which is the caching RFC 3263 §4.3 expects; nothing is cached on top.
pub struct HickoryDns {
    resolver: TokioResolver,
}

impl HickoryDns {
    /// A resolver querying `nameservers` (UDP, with TCP for truncated
    /// answers), or the system configuration when the list is empty.
    pub fn new(nameservers: &[SocketAddr], timeout: Duration) -> Result<Self, EgressError> {
        let provider = TokioConnectionProvider::default();
        let mut builder = if nameservers.is_empty() {
            TokioResolver::builder(provider).map_err(|e| {
                EgressError::Config(format!("cannot read the system DNS configuration: {e}"))
            })?
        } else {
            let mut config = ResolverConfig::new();
            for &addr in nameservers {
                config.add_name_server(NameServerConfig::new(addr, Protocol::Udp));
                config.add_name_server(NameServerConfig::new(addr, Protocol::Tcp));
            }
            let mut builder = TokioResolver::builder_with_config(config, provider);
            // Explicit nameservers mean "ask these": /etc/hosts would answer
            // differently from them and make tests depend on the machine.
            builder.options_mut().use_hosts_file = ResolveHosts::Never;
            builder
        };
        let options: &mut ResolverOpts = builder.options_mut();
        options.timeout = timeout;
        options.attempts = 1;
        // RFC 3263 §4.2 wants both A and AAAA; the caller filters by allowlist.
        options.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
        Ok(HickoryDns {
            resolver: builder.build(),
        })
    }
}

/// Queries are made for the fully-qualified name (trailing dot) so that the
/// system search list never turns `pbx.example` into `pbx.example.corp.lan`.
fn fqdn(name: &str) -> String {
    if name.ends_with('.') {
        name.to_owned()
    } else {
        format!("{name}.")
    }
}

/// Maps "no records" to an empty answer, anything else to an error.
fn empty_or_err<T>(name: &str, err: ResolveError) -> Result<Vec<T>, EgressError> {
    if err.is_no_records_found() || err.is_nx_domain() {
        Ok(Vec::new())
    } else {
        Err(EgressError::Dns {
            name: name.to_owned(),
            reason: err.to_string(),
        })
    }
}

#[async_trait]
impl DnsLookup for HickoryDns {
    async fn naptr(&self, name: &str) -> Result<Vec<NaptrRecord>, EgressError> {
        let lookup = match self.resolver.lookup(fqdn(name), RecordType::NAPTR).await {
            Ok(lookup) => lookup,
            Err(e) => return empty_or_err(name, e),
        };
        Ok(lookup
            .iter()
            .filter_map(|rdata| match rdata {
                RData::NAPTR(n) => Some(NaptrRecord {
                    order: n.order(),
                    preference: n.preference(),
                    flags: String::from_utf8_lossy(n.flags()).into_owned(),
                    services: String::from_utf8_lossy(n.services()).into_owned(),
                    replacement: n.replacement().to_ascii(),
                }),
                _ => None,
            })
            .collect())
    }

    async fn srv(&self, name: &str) -> Result<Vec<SrvRecord>, EgressError> {
        match self.resolver.srv_lookup(fqdn(name)).await {
            Ok(lookup) => Ok(lookup
                .iter()
                .map(|srv| SrvRecord {
                    priority: srv.priority(),
                    weight: srv.weight(),
                    port: srv.port(),
                    target: srv.target().to_ascii(),
                })
                .collect()),
            Err(e) => empty_or_err(name, e),
        }
    }

    async fn addrs(&self, name: &str) -> Result<Vec<IpAddr>, EgressError> {
        match self.resolver.lookup_ip(fqdn(name)).await {
            Ok(lookup) => {
                // Hickory races the A and AAAA queries, so its order varies
                // from run to run; a stable IPv4-then-IPv6 order keeps failover
                // (and tests) deterministic.
                let mut ips: Vec<IpAddr> = lookup.iter().collect();
                ips.sort_by_key(IpAddr::is_ipv6);
                Ok(ips)
            }
            Err(e) => empty_or_err(name, e),
        }
    }
}

//! Egress: where the proxy may send, and how it finds it.
//!
//! - [`NextHop`] is what the proxy wants to reach (from a URI); a
//!   [`Resolver`] turns it into an ordered list of [`Destination`]s per
//!   RFC 3263 §4 ([`Rfc3263Resolver`]: static hosts, then NAPTR → SRV →
//!   A/AAAA through a [`DnsLookup`], by default hickory-resolver).
//! - The [`Allowlist`] says which of those destinations may be used at all.
//! - [`Egress`] puts the two together: what the proxy core calls.
//!
//! The RFC 3263 decisions live in [`select`] as a pure function, so they are
//! tested without a network.

mod allow;
mod config;
mod dns;
mod hop;
mod resolve;
pub mod select;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::sync::Arc;

use tracing::warn;

pub use allow::Allowlist;
pub use config::{EgressConfig, HostEntry};
pub use dns::{DnsLookup, HickoryDns};
pub use hop::{DEFAULT_SIP_PORT, Destination, NextHop, Target};
pub use resolve::{Resolver, Rfc3263Resolver, StaticHosts};

/// Why a next hop cannot be used. `Clone` so results can be shared.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EgressError {
    /// The destination is outside the egress allowlist: answer 403, never send.
    #[error("egress to {0} is not allowed")]
    Forbidden(SocketAddr),
    /// The URI asks for a transport we do not speak (`transport=sctp`, SIPS/TLS).
    #[error("unsupported transport {0}")]
    UnsupportedTransport(String),
    /// The URI host is neither an IP address nor a valid domain name.
    #[error("invalid host {0:?}")]
    InvalidHost(String),
    /// Resolution completed and found no address.
    #[error("no address found for {0}")]
    NotFound(String),
    /// DNS is disabled (`dns = false`) and the name has no static host entry.
    #[error("{0} has no static host entry and DNS is disabled")]
    NoStaticEntry(String),
    /// A DNS query failed (timeout, SERVFAIL, ...) and nothing else was found.
    #[error("DNS lookup of {name} failed: {reason}")]
    Dns { name: String, reason: String },
    /// The egress configuration cannot be used.
    #[error("egress configuration: {0}")]
    Config(String),
}

/// Resolution plus allowlist: the one call the proxy core makes per next hop.
#[derive(Clone)]
pub struct Egress {
    allowlist: Allowlist,
    resolver: Arc<dyn Resolver>,
}

impl Egress {
    pub fn new(allowlist: Allowlist, resolver: Arc<dyn Resolver>) -> Self {
        Egress {
            allowlist,
            resolver,
        }
    }

    /// Builds the allowlist and resolver the config describes. With
    /// `dns = true` this creates a hickory resolver, so it must run inside a
    /// Tokio runtime.
    pub fn from_config(config: &EgressConfig) -> Result<Self, EgressError> {
        let dns: Option<Arc<dyn DnsLookup>> = if config.dns {
            Some(Arc::new(HickoryDns::new(
                &config.nameservers,
                config.dns_timeout(),
            )?))
        } else {
            None
        };
        let resolver = Rfc3263Resolver::new(StaticHosts::new(&config.hosts), dns);
        Ok(Egress::new(
            Allowlist::new(config.allow.iter().copied()),
            Arc::new(resolver),
        ))
    }

    pub fn allowlist(&self) -> &Allowlist {
        &self.allowlist
    }

    pub fn resolver(&self) -> &Arc<dyn Resolver> {
        &self.resolver
    }

    /// Resolves `hop` and keeps only the destinations the allowlist permits,
    /// in order. Forbidden ones are logged; if none is left the result is
    /// [`EgressError::Forbidden`] naming the first, for a 403.
    pub async fn resolve(&self, hop: &NextHop) -> Result<Vec<Destination>, EgressError> {
        let resolved = self.resolver.resolve(hop).await?;
        if self.allowlist.is_unrestricted() {
            return Ok(resolved);
        }
        let Some(first) = resolved.first().map(|d| d.addr) else {
            return Err(EgressError::NotFound(hop.target.to_string()));
        };
        let permitted: Vec<Destination> = resolved
            .into_iter()
            .filter(|dest| {
                let ok = self.allowlist.permits(dest.addr.ip());
                if !ok {
                    warn!(%hop, destination = %dest, allow = %self.allowlist, "egress refused: outside the allowlist");
                }
                ok
            })
            .collect();
        if permitted.is_empty() {
            Err(EgressError::Forbidden(first))
        } else {
            Ok(permitted)
        }
    }
}

//! Who "we" are: the domains we are authoritative for and the addresses we
//! put in Via / Record-Route, so a URI can be recognised as our own
//! (RFC 3261 §16.4 route pre-processing, §16.3 loop detection).

use std::net::IpAddr;

use switchyard_codec::{Host, Uri};

use crate::net::Transport;

/// One address this node answers on and advertises.
#[derive(Debug, Clone)]
pub struct LocalAddress {
    pub transport: Transport,
    /// `host[:port]` as written in our Via and Record-Route headers.
    pub advertised: String,
    host: String,
    port: u16,
}

impl LocalAddress {
    pub fn new(transport: Transport, advertised: &str) -> Self {
        let (host, port) = split_host_port(advertised);
        LocalAddress {
            transport,
            advertised: advertised.to_string(),
            host: host
                .trim_matches(|c| c == '[' || c == ']')
                .to_ascii_lowercase(),
            port: port.unwrap_or(5060),
        }
    }

    fn is_ipv6(&self) -> bool {
        self.host.contains(':')
    }

    /// Our Record-Route URI for this address (RFC 3261 §16.6 step 4, loose routing).
    pub fn record_route(&self) -> String {
        match self.transport {
            Transport::Udp => format!("<sip:{};lr>", self.advertised),
            Transport::Tcp => format!("<sip:{};transport=tcp;lr>", self.advertised),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Identity {
    domains: Vec<String>,
    addresses: Vec<LocalAddress>,
}

impl Identity {
    pub fn new(domains: &[String], addresses: Vec<LocalAddress>) -> Self {
        Identity {
            domains: domains.iter().map(|d| d.to_ascii_lowercase()).collect(),
            addresses,
        }
    }

    pub fn addresses(&self) -> &[LocalAddress] {
        &self.addresses
    }

    /// The address to advertise for traffic on `transport` (first match).
    pub fn address_for(&self, transport: Transport) -> &LocalAddress {
        self.addresses
            .iter()
            .find(|a| a.transport == transport)
            .unwrap_or(&self.addresses[0])
    }

    /// Is `host[:port]` from a Via one of our advertised addresses?
    pub fn is_sent_by_me(&self, host: &str, port: Option<u16>) -> bool {
        let host = host
            .trim_matches(|c| c == '[' || c == ']')
            .to_ascii_lowercase();
        let port = port.unwrap_or(5060);
        self.addresses
            .iter()
            .any(|a| a.port == port && a.host == host)
    }

    /// The address to advertise towards `dest`: same transport and, when
    /// there is one, same IP family (a v6-only phone needs a v6 Record-Route).
    pub fn address_towards(
        &self,
        transport: Transport,
        dest: std::net::SocketAddr,
    ) -> &LocalAddress {
        self.addresses
            .iter()
            .find(|a| a.transport == transport && a.is_ipv6() == dest.is_ipv6())
            .unwrap_or_else(|| self.address_for(transport))
    }

    /// Is this one of the domains our registrar serves?
    pub fn is_our_domain(&self, host: &Host<'_>) -> bool {
        match host {
            Host::Domain(d) => self.domains.iter().any(|ours| ours.eq_ignore_ascii_case(d)),
            _ => {
                let text = host_text(host);
                self.domains.contains(&text)
            }
        }
    }

    /// Does this URI address this node itself (one of our advertised
    /// host:port pairs)? Used for Route and strict-router Request-URI checks.
    pub fn is_me(&self, uri: &Uri<'_>) -> bool {
        self.is_sent_by_me(&host_text(&uri.host), uri.port)
    }

    /// A Request-URI naming the proxy itself rather than a user: no user part
    /// and either our address or one of our domains (OPTIONS pings, REGISTER).
    pub fn is_addressed_to_proxy(&self, uri: &Uri<'_>) -> bool {
        uri.user.is_none() && (self.is_me(uri) || self.is_our_domain(&uri.host))
    }
}

fn host_text(host: &Host<'_>) -> String {
    match host {
        Host::Domain(d) => d.to_ascii_lowercase(),
        Host::V4(ip) => IpAddr::V4(*ip).to_string(),
        Host::V6(ip) => IpAddr::V6(*ip).to_string(),
    }
}

fn split_host_port(s: &str) -> (&str, Option<u16>) {
    if s.starts_with('[') {
        let close = s.find(']').unwrap_or(s.len() - 1);
        let port = s[close + 1..]
            .strip_prefix(':')
            .and_then(|p| p.parse().ok());
        return (&s[..=close], port);
    }
    match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (h, p.parse().ok()),
        _ => (s, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ident() -> Identity {
        Identity::new(
            &["switchyard.test".to_string()],
            vec![
                LocalAddress::new(Transport::Udp, "127.0.0.2:5060"),
                LocalAddress::new(Transport::Tcp, "[::1]:5070"),
            ],
        )
    }

    #[test]
    fn recognises_own_addresses_with_default_port() {
        let id = ident();
        assert!(id.is_me(&Uri::parse("sip:127.0.0.2;lr").unwrap()));
        assert!(id.is_me(&Uri::parse("sip:127.0.0.2:5060;lr").unwrap()));
        assert!(!id.is_me(&Uri::parse("sip:127.0.0.2:5061;lr").unwrap()));
        assert!(id.is_me(&Uri::parse("sip:[::1]:5070;transport=tcp;lr").unwrap()));
        assert!(!id.is_me(&Uri::parse("sip:alice@127.0.0.3").unwrap()));
    }

    #[test]
    fn domains_are_case_insensitive() {
        let id = ident();
        let uri = Uri::parse("sip:alice@SwitchYard.Test").unwrap();
        assert!(id.is_our_domain(&uri.host));
        assert!(!id.is_addressed_to_proxy(&uri));
        assert!(id.is_addressed_to_proxy(&Uri::parse("sip:switchyard.test").unwrap()));
    }

    #[test]
    fn record_route_carries_transport() {
        let id = ident();
        assert_eq!(
            id.address_for(Transport::Udp).record_route(),
            "<sip:127.0.0.2:5060;lr>"
        );
        assert_eq!(
            id.address_for(Transport::Tcp).record_route(),
            "<sip:[::1]:5070;transport=tcp;lr>"
        );
    }
}

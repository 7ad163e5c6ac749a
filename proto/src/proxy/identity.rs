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
            port: port.unwrap_or(transport.default_port()),
        }
    }

    fn is_ipv6(&self) -> bool {
        self.host.contains(':')
    }

    /// Our Record-Route URI for this address (RFC 3261 §16.6 step 4, loose routing).
    pub fn record_route(&self) -> String {
        format!("<sip:{}{};lr>", self.advertised, self.transport.uri_param())
    }
}

#[derive(Debug, Clone, Default)]
pub struct Identity {
    domains: Vec<String>,
    addresses: Vec<LocalAddress>,
    /// Every `host:port` we receive on besides the advertised ones: the
    /// bound sockets, and a wildcard listener's port on each interface
    /// address (a request to `127.0.0.1:5060` reaches a `0.0.0.0:5060`
    /// listener, so that URI is ours).
    bound: Vec<(String, u16)>,
    /// Ports of wildcard IPv4 listeners: the whole of 127.0.0.0/8 reaches
    /// them, though only 127.0.0.1 is an interface address.
    wildcard_v4_ports: Vec<u16>,
}

impl Identity {
    pub fn new(domains: &[String], addresses: Vec<LocalAddress>) -> Self {
        Identity {
            domains: domains.iter().map(|d| d.to_ascii_lowercase()).collect(),
            addresses,
            bound: Vec::new(),
            wildcard_v4_ports: Vec::new(),
        }
    }

    /// The same addresses serving `domains` instead (a configuration reload).
    pub fn with_domains(&self, domains: &[String]) -> Self {
        Identity {
            domains: domains.iter().map(|d| d.to_ascii_lowercase()).collect(),
            ..self.clone()
        }
    }

    /// Adds the sockets the listeners are bound to. A wildcard address
    /// (`0.0.0.0`, `::`) stands for every address in `interfaces` of its
    /// family: the caller enumerates the machine's interfaces, so this type
    /// stays free of I/O.
    pub fn with_bound(
        mut self,
        bound: impl IntoIterator<Item = std::net::SocketAddr>,
        interfaces: &[IpAddr],
    ) -> Self {
        for addr in bound {
            if addr.ip().is_unspecified() && addr.is_ipv4() {
                self.wildcard_v4_ports.push(addr.port());
            }
            let ips: Vec<IpAddr> = if addr.ip().is_unspecified() {
                interfaces
                    .iter()
                    .copied()
                    .filter(|ip| ip.is_ipv4() == addr.is_ipv4())
                    .collect()
            } else {
                vec![addr.ip()]
            };
            for ip in ips {
                let entry = (ip.to_string(), addr.port());
                if !self.bound.contains(&entry) {
                    self.bound.push(entry);
                }
            }
        }
        self
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

    /// Is `host[:port]` (a Via sent-by, a URI's host and port) one of the
    /// addresses we advertise or receive on? No port means 5060.
    pub fn is_sent_by_me(&self, host: &str, port: Option<u16>) -> bool {
        self.is_local(host, port.unwrap_or(DEFAULT_PORT))
    }

    fn is_local(&self, host: &str, port: u16) -> bool {
        // Host names and IPv6 addresses compare without regard to case.
        let host = host.trim_matches(|c| c == '[' || c == ']');
        self.addresses
            .iter()
            .any(|a| a.port == port && a.host.eq_ignore_ascii_case(host))
            || self
                .bound
                .iter()
                .any(|(h, p)| *p == port && h.eq_ignore_ascii_case(host))
            || (self.wildcard_v4_ports.contains(&port)
                && host
                    .parse::<std::net::Ipv4Addr>()
                    .is_ok_and(|ip| ip.is_loopback()))
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

    /// Is this host one of the domains our registrar serves? The host
    /// alone: whether a URI in that domain is an address-of-record of ours
    /// also depends on its port ([`Self::is_our_aor`]).
    pub fn is_our_domain(&self, host: &Host<'_>) -> bool {
        match host {
            Host::Domain(d) => self.domains.iter().any(|ours| ours.eq_ignore_ascii_case(d)),
            _ => {
                let text = host_text(host);
                self.domains.contains(&text)
            }
        }
    }

    /// Does this URI address this node itself: its host and port (the
    /// scheme's default when absent) are one of our advertised or bound
    /// addresses? Used for Route and strict-router Request-URI checks.
    pub fn is_me(&self, uri: &Uri<'_>) -> bool {
        self.is_local(&host_text(&uri.host), uri.port.unwrap_or(default_port(uri)))
    }

    /// "Is this URI mine?" for target determination (RFC 3261 §16.5): a URI
    /// in a served domain that names no other host:port. A domain name
    /// counts with no port or the scheme's default one; an IP literal that
    /// is a served domain counts with no port or one of our own. A
    /// Request-URI that merely shares its host with a domain but carries
    /// another port is a UA's contact (a phone on the proxy's host), not an
    /// address-of-record.
    pub fn is_our_aor(&self, uri: &Uri<'_>) -> bool {
        if !self.is_our_domain(&uri.host) {
            return false;
        }
        match uri.port {
            None => true,
            Some(port) => {
                self.is_me(uri)
                    || (matches!(uri.host, Host::Domain(_)) && port == default_port(uri))
            }
        }
    }

    /// Would sending to this URI reach this node? Our own address, or one of
    /// our domain names (RFC 3263 resolves those to the proxies serving
    /// them). Forwarding such a URI unchanged could only loop.
    pub fn reaches_me(&self, uri: &Uri<'_>) -> bool {
        self.is_me(uri) || (matches!(uri.host, Host::Domain(_)) && self.is_our_aor(uri))
    }

    /// A Request-URI naming the proxy itself rather than a user of ours:
    /// our address with any user part (`sipsak -s sip:ping@proxy:5060`), or
    /// one of our domains with none (OPTIONS pings, REGISTER).
    pub fn is_addressed_to_proxy(&self, uri: &Uri<'_>) -> bool {
        if uri.user.is_some() && self.is_our_aor(uri) {
            return false;
        }
        self.is_me(uri) || self.is_our_aor(uri)
    }
}

/// RFC 3261 §19.1.2: 5060 for `sip:`, 5061 for `sips:`.
const DEFAULT_PORT: u16 = 5060;

/// The port a URI without one means: 5061 for SIPS, else its
/// `transport=`'s (RFC 3263 §4.2, RFC 7118 §5).
fn default_port(uri: &Uri<'_>) -> u16 {
    match uri.scheme {
        switchyard_codec::Scheme::Sips => 5061,
        _ => uri
            .transport()
            .and_then(Transport::from_token)
            .map_or(DEFAULT_PORT, Transport::default_port),
    }
}

fn host_text(host: &Host<'_>) -> String {
    match host {
        Host::Domain(d) => d.to_ascii_lowercase(),
        Host::V4(ip) => switchyard_codec::text::ip_string(IpAddr::V4(*ip)),
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
    fn aor_needs_our_port_or_none() {
        let id = Identity::new(
            &["127.0.0.1".to_string(), "switchyard.test".to_string()],
            vec![LocalAddress::new(Transport::Udp, "127.0.0.1:5090")],
        );
        let uri = |s| Uri::parse(s).unwrap();
        // The domain is the proxy's IP: a phone on the same host is a contact.
        assert!(id.is_our_aor(&uri("sip:bob@127.0.0.1")));
        assert!(id.is_our_aor(&uri("sip:bob@127.0.0.1:5090")));
        assert!(!id.is_our_aor(&uri("sip:bob@127.0.0.1:27184")));
        assert!(!id.is_our_aor(&uri("sip:bob@127.0.0.1:5060")));
        // A domain name: no port or the default one.
        assert!(id.is_our_aor(&uri("sip:bob@switchyard.test")));
        assert!(id.is_our_aor(&uri("sip:bob@switchyard.test:5060")));
        assert!(!id.is_our_aor(&uri("sip:bob@switchyard.test:5080")));
        assert!(id.is_our_aor(&uri("sips:bob@switchyard.test:5061")));
        assert!(!id.is_our_aor(&uri("sip:bob@other.test")));
        // Where sending would land on us.
        assert!(id.reaches_me(&uri("sip:bob@switchyard.test")));
        assert!(id.reaches_me(&uri("sip:bob@127.0.0.1:5090")));
        assert!(!id.reaches_me(&uri("sip:bob@127.0.0.1")));
        assert!(!id.reaches_me(&uri("sip:bob@127.0.0.1:27184")));
        // The proxy itself: its address with any user, a domain with none.
        assert!(id.is_addressed_to_proxy(&uri("sip:127.0.0.1:5090")));
        assert!(id.is_addressed_to_proxy(&uri("sip:switchyard.test")));
        assert!(!id.is_addressed_to_proxy(&uri("sip:bob@127.0.0.1:5090")));
        assert!(!id.is_addressed_to_proxy(&uri("sip:127.0.0.1:27184")));
    }

    #[test]
    fn wildcard_listener_is_every_interface() {
        let id = Identity::new(
            &["switchyard.test".to_string()],
            vec![LocalAddress::new(Transport::Udp, "127.0.0.1:5060")],
        )
        .with_bound(
            [
                "0.0.0.0:5060".parse().unwrap(),
                "[::]:5070".parse().unwrap(),
            ],
            &[
                "127.0.0.1".parse().unwrap(),
                "10.1.2.3".parse().unwrap(),
                "::1".parse().unwrap(),
            ],
        );
        let uri = |s| Uri::parse(s).unwrap();
        assert!(id.is_me(&uri("sip:ping@127.0.0.9")));
        assert!(id.is_me(&uri("sip:ping@10.1.2.3")));
        assert!(!id.is_me(&uri("sip:ping@10.1.2.4")));
        assert!(id.is_me(&uri("sip:ping@127.0.0.9:5060")));
        assert!(!id.is_me(&uri("sip:ping@127.0.0.9:5070")));
        assert!(id.is_addressed_to_proxy(&uri("sip:ping@127.0.0.9:5060")));
        assert!(id.is_me(&uri("sip:[::1]:5070")));
        assert!(!id.is_me(&uri("sip:[::1]:5060")));
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

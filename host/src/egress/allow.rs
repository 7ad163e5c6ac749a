//! The egress allowlist: which addresses the proxy may send requests to.
//!
//! Operators use it against toll fraud (a request routed to a premium-rate
//! gateway abroad), and every test runs with it set to 127.0.0.0/8 so that
//! torture messages naming foreign hosts can never leave the machine.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use ipnet::{IpNet, Ipv4Net};

use super::EgressError;

/// A set of CIDR blocks. Empty means "allow everything".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allowlist {
    nets: Vec<IpNet>,
}

impl Allowlist {
    /// An allowlist that permits every address.
    pub fn allow_all() -> Self {
        Allowlist::default()
    }

    /// An allowlist of the given blocks (an empty iterator allows all).
    ///
    /// IPv4-mapped IPv6 blocks (`::ffff:127.0.0.0/104`) are stored as their
    /// IPv4 equivalent so that one rule covers both spellings of an address.
    pub fn new(nets: impl IntoIterator<Item = IpNet>) -> Self {
        let nets = nets.into_iter().map(canonical_net).collect();
        Allowlist { nets }
    }

    /// True when no restriction is configured.
    pub fn is_unrestricted(&self) -> bool {
        self.nets.is_empty()
    }

    pub fn nets(&self) -> &[IpNet] {
        &self.nets
    }

    /// Whether the proxy may send to `ip`.
    ///
    /// An IPv4-mapped IPv6 address (`::ffff:10.0.0.1`, what a dual-stack socket
    /// reports) is judged as the IPv4 address it carries: otherwise a v4-only
    /// allowlist could be bypassed, or would wrongly refuse, depending on how the
    /// address happened to be written.
    pub fn permits(&self, ip: IpAddr) -> bool {
        if self.nets.is_empty() {
            return true;
        }
        let ip = ip.to_canonical();
        self.nets.iter().any(|net| net.contains(&ip))
    }

    /// [`permits`](Self::permits) as a `Result`, carrying the refused address
    /// so the proxy can log it and answer 403.
    pub fn check(&self, addr: SocketAddr) -> Result<(), EgressError> {
        if self.permits(addr.ip()) {
            Ok(())
        } else {
            Err(EgressError::Forbidden(addr))
        }
    }
}

impl fmt::Display for Allowlist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.nets.is_empty() {
            return f.write_str("any");
        }
        for (i, net) in self.nets.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{net}")?;
        }
        Ok(())
    }
}

/// Rewrites an IPv4-mapped IPv6 block (inside `::ffff:0:0/96`) as an IPv4 block.
fn canonical_net(net: IpNet) -> IpNet {
    if let IpNet::V6(v6) = net
        && let Some(v4) = v6.network().to_ipv4_mapped()
        && v6.prefix_len() >= 96
        && let Ok(v4net) = Ipv4Net::new(v4, v6.prefix_len() - 96)
    {
        return IpNet::V4(v4net);
    }
    net
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(nets: &[&str]) -> Allowlist {
        Allowlist::new(nets.iter().map(|n| n.parse::<IpNet>().unwrap()))
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn empty_allows_everything() {
        let allow = Allowlist::allow_all();
        assert!(allow.is_unrestricted());
        assert!(allow.permits(ip("192.0.2.1")));
        assert!(allow.permits(ip("2001:db8::1")));
    }

    #[test]
    fn loopback_only() {
        let allow = list(&["127.0.0.0/8", "::1/128"]);
        assert!(allow.permits(ip("127.0.0.1")));
        assert!(allow.permits(ip("127.255.0.7")));
        assert!(allow.permits(ip("::1")));
        assert!(!allow.permits(ip("128.0.0.1")));
        assert!(!allow.permits(ip("192.0.2.1")));
        assert!(!allow.permits(ip("10.0.0.1")));
        assert!(!allow.permits(ip("2001:db8::1")));
        assert!(!allow.permits(ip("::2")));
    }

    #[test]
    fn ipv4_mapped_addresses_are_judged_as_ipv4() {
        let allow = list(&["127.0.0.0/8"]);
        assert!(allow.permits(ip("::ffff:127.0.0.1")));
        assert!(!allow.permits(ip("::ffff:192.0.2.1")));
        // The IPv4-compatible (deprecated, not mapped) form is not rewritten.
        assert!(!allow.permits(ip("::127.0.0.1")));
    }

    #[test]
    fn ipv4_mapped_rules_cover_plain_ipv4() {
        let allow = list(&["::ffff:127.0.0.0/104"]);
        assert_eq!(allow.nets(), &["127.0.0.0/8".parse::<IpNet>().unwrap()]);
        assert!(allow.permits(ip("127.0.0.1")));
        assert!(allow.permits(ip("::ffff:127.0.0.1")));
        assert!(!allow.permits(ip("192.0.2.1")));
    }

    #[test]
    fn check_reports_the_refused_address() {
        let allow = list(&["127.0.0.0/8"]);
        let ok: SocketAddr = "127.0.0.1:5060".parse().unwrap();
        let bad: SocketAddr = "192.0.2.1:5060".parse().unwrap();
        assert_eq!(allow.check(ok), Ok(()));
        assert_eq!(allow.check(bad), Err(EgressError::Forbidden(bad)));
        assert_eq!(allow.to_string(), "127.0.0.0/8");
    }
}

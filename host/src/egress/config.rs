//! The `[egress]` section of the configuration.
//!
//! ```toml
//! [egress]
//! allow = ["127.0.0.0/8", "::1"]        # empty or absent: allow all
//! dns = false                           # static hosts only, no resolver traffic
//! nameservers = ["127.0.0.53:5353"]     # absent: /etc/resolv.conf
//! dns_timeout_ms = 2000
//!
//! [egress.hosts]
//! "uas.test" = ["127.0.0.1:5070"]       # port optional
//! "pbx.test" = ["127.0.0.2", "127.0.0.3:5080"]
//! ```

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Deserializer};

use super::EgressError;

/// Port assumed for a nameserver written without one.
const DNS_PORT: u16 = 53;

/// Egress settings, embedded in the main config as `[egress]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct EgressConfig {
    /// CIDR blocks the proxy may send requests to; a bare address means a
    /// single host (`/32` or `/128`). Empty allows every address. A request
    /// whose next hop resolves only to addresses outside these blocks is
    /// answered 403 and never sent.
    #[serde(deserialize_with = "de_nets")]
    pub allow: Vec<IpNet>,

    /// Whether to use DNS (RFC 3263 NAPTR/SRV/A/AAAA) for domain names that
    /// have no entry in `hosts`. With `false` only `hosts` and IP literals
    /// resolve, and no resolver traffic is ever sent. Default: `true`.
    pub dns: bool,

    /// Nameservers to query, as `ip` (port 53) or `ip:port`. Empty: use the
    /// system configuration (`/etc/resolv.conf`, including its hosts file).
    #[serde(deserialize_with = "de_nameservers")]
    pub nameservers: Vec<SocketAddr>,

    /// Per-query DNS timeout in milliseconds. Default: 2000 (RFC 3261 Timer B
    /// is 32 s, so a slow resolver must not eat the whole transaction).
    pub dns_timeout_ms: u64,

    /// Static host entries, consulted before DNS: name (case-insensitive) to
    /// a list of `ip` or `ip:port` (`[v6]:port`). The addresses are tried in
    /// the order given. A port here acts like an SRV record: the URI's
    /// explicit port, when there is one, still wins; otherwise 5060.
    pub hosts: HashMap<String, Vec<HostEntry>>,
}

impl Default for EgressConfig {
    fn default() -> Self {
        EgressConfig {
            allow: Vec::new(),
            dns: true,
            nameservers: Vec::new(),
            dns_timeout_ms: 2000,
            hosts: HashMap::new(),
        }
    }
}

impl EgressConfig {
    pub fn dns_timeout(&self) -> Duration {
        Duration::from_millis(self.dns_timeout_ms)
    }
}

/// One address of a static host entry: an IP and, optionally, a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(try_from = "String")]
pub struct HostEntry {
    pub ip: IpAddr,
    pub port: Option<u16>,
}

impl HostEntry {
    pub fn new(ip: IpAddr, port: Option<u16>) -> Self {
        HostEntry { ip, port }
    }
}

impl FromStr for HostEntry {
    type Err = EgressError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Ok(addr) = s.parse::<SocketAddr>() {
            return Ok(HostEntry::new(addr.ip(), Some(addr.port())));
        }
        let bare = s
            .strip_prefix('[')
            .and_then(|s| s.strip_suffix(']'))
            .unwrap_or(s);
        bare.parse::<IpAddr>()
            .map(|ip| HostEntry::new(ip, None))
            .map_err(|_| EgressError::Config(format!("{s:?} is not an `ip` or `ip:port`")))
    }
}

impl TryFrom<String> for HostEntry {
    type Error = EgressError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl fmt::Display for HostEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.port {
            Some(port) => write!(f, "{}", SocketAddr::new(self.ip, port)),
            None => write!(f, "{}", self.ip),
        }
    }
}

fn de_nets<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<IpNet>, D::Error> {
    let raw = Vec::<String>::deserialize(d)?;
    raw.iter()
        .map(|s| {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    serde::de::Error::custom(format!("{s:?} is not a CIDR block or address"))
                })
        })
        .collect()
}

fn de_nameservers<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<SocketAddr>, D::Error> {
    let raw = Vec::<String>::deserialize(d)?;
    raw.iter()
        .map(|s| {
            s.parse::<SocketAddr>()
                .or_else(|_| s.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, DNS_PORT)))
                .map_err(|_| serde::de::Error::custom(format!("{s:?} is not an `ip` or `ip:port`")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_allow_all_with_dns() {
        let cfg: EgressConfig = toml::from_str("").unwrap();
        assert_eq!(cfg, EgressConfig::default());
        assert!(cfg.dns);
        assert!(cfg.allow.is_empty());
        assert_eq!(cfg.dns_timeout(), Duration::from_secs(2));
    }

    #[test]
    fn full_section_parses() {
        let cfg: EgressConfig = toml::from_str(
            r#"
            allow = ["127.0.0.0/8", "::1"]
            dns = false
            nameservers = ["127.0.0.53:5353", "127.0.0.54"]
            dns_timeout_ms = 500
            [hosts]
            "UAS.test" = ["127.0.0.1:5070", "127.0.0.2", "[::1]:5071", "::1"]
            "#,
        )
        .unwrap();
        assert_eq!(
            cfg.allow,
            vec![
                "127.0.0.0/8".parse::<IpNet>().unwrap(),
                "::1/128".parse().unwrap()
            ]
        );
        assert!(!cfg.dns);
        assert_eq!(
            cfg.nameservers,
            vec![
                "127.0.0.53:5353".parse::<SocketAddr>().unwrap(),
                "127.0.0.54:53".parse().unwrap()
            ]
        );
        assert_eq!(cfg.dns_timeout(), Duration::from_millis(500));
        let entries: Vec<String> = cfg.hosts["UAS.test"]
            .iter()
            .map(|e| e.to_string())
            .collect();
        assert_eq!(
            entries,
            ["127.0.0.1:5070", "127.0.0.2", "[::1]:5071", "::1"]
        );
    }

    #[test]
    fn bad_values_are_rejected_with_the_offending_text() {
        let err = toml::from_str::<EgressConfig>(r#"allow = ["127.0.0.0/33"]"#).unwrap_err();
        assert!(err.to_string().contains("127.0.0.0/33"), "{err}");
        let err = toml::from_str::<EgressConfig>("[hosts]\na = [\"nope:1\"]").unwrap_err();
        assert!(err.to_string().contains("nope:1"), "{err}");
        let err = toml::from_str::<EgressConfig>("dnss = true").unwrap_err();
        assert!(err.to_string().contains("dnss"), "{err}");
    }
}

//! What the proxy wants to reach ([`NextHop`]) and where it will actually send
//! ([`Destination`]).

use std::fmt;
use std::net::IpAddr;

use super::EgressError;
use crate::net::Transport;

/// Default SIP port for UDP and TCP (RFC 3261 §19.1.2). TLS (5061) joins when
/// `Transport` grows a TLS variant.
pub const DEFAULT_SIP_PORT: u16 = 5060;

/// The RFC 3263 §4 TARGET: the URI's `maddr` if present, otherwise its host.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// A numeric IPv4 or IPv6 address: no DNS at all (RFC 3263 §4.2).
    Ip(IpAddr),
    /// A domain name, lower-cased and without a trailing dot.
    Domain(String),
}

impl Target {
    /// Parses a URI host (`example.com`, `127.0.0.1`, `[::1]` or bare `::1`).
    pub fn parse(host: &str) -> Result<Self, EgressError> {
        let unbracketed = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if let Ok(ip) = unbracketed.parse::<IpAddr>() {
            return Ok(Target::Ip(ip));
        }
        let name = normalize_name(host);
        // RFC 3261 §25.1 hostname: alphanumerics, '-' and '.'; '_' is tolerated
        // because SRV owner names and some private zones use it.
        let valid = !name.is_empty()
            && name.len() <= 253
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
        if valid {
            Ok(Target::Domain(name))
        } else {
            Err(EgressError::InvalidHost(host.to_owned()))
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
            Target::Ip(ip) => write!(f, "{ip}"),
            Target::Domain(name) => f.write_str(name),
        }
    }
}

/// The next hop the proxy wants to reach, as named by a SIP URI (the Request-URI
/// or the top Route). Only the parts RFC 3263 §4 looks at are kept.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NextHop {
    pub target: Target,
    /// Explicit port from the URI. `None` lets DNS (SRV) choose.
    pub port: Option<u16>,
    /// The `transport=` URI parameter. `None` lets DNS (NAPTR/SRV) choose.
    pub transport: Option<Transport>,
    /// A `sips:` URI: only TLS may be used (RFC 3261 §26.2.2, RFC 3263 §4.1).
    pub secure: bool,
}

impl NextHop {
    /// A `sip:` next hop with no port or transport: DNS decides everything.
    pub fn new(target: Target) -> Self {
        NextHop {
            target,
            port: None,
            transport: None,
            secure: false,
        }
    }

    pub fn with_port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    pub fn with_transport(mut self, transport: Transport) -> Self {
        self.transport = Some(transport);
        self
    }

    /// Builds a next hop from the pieces of a parsed SIP URI.
    ///
    /// `maddr` wins over `host` (RFC 3263 §4: "TARGET ... is the maddr
    /// parameter of the URI, if present, otherwise, the host value"). A
    /// `transport=` value we cannot speak is an error now rather than a
    /// silent fallback, so the proxy can answer instead of misrouting.
    pub fn from_uri_parts(
        host: &str,
        port: Option<u16>,
        transport: Option<&str>,
        maddr: Option<&str>,
        secure: bool,
    ) -> Result<Self, EgressError> {
        let target = Target::parse(maddr.unwrap_or(host))?;
        let transport = transport
            .map(|t| {
                Transport::from_token(t).ok_or_else(|| EgressError::UnsupportedTransport(t.into()))
            })
            .transpose()?;
        Ok(NextHop {
            target,
            port,
            transport,
            secure,
        })
    }
}

impl fmt::Display for NextHop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.secure { "sips:" } else { "sip:" })?;
        write!(f, "{}", self.target)?;
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        if let Some(transport) = self.transport {
            write!(f, ";transport={}", transport.as_str().to_ascii_lowercase())?;
        }
        Ok(())
    }
}

pub use switchyard_proto::net::Destination;

/// Canonical form for DNS names used as map keys: ASCII lower case (DNS is
/// case-insensitive, RFC 4343) and no trailing root dot.
pub(crate) fn normalize_name(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_parses_ip_literals_and_domains() {
        assert_eq!(
            Target::parse("127.0.0.1").unwrap(),
            Target::Ip("127.0.0.1".parse().unwrap())
        );
        assert_eq!(
            Target::parse("[::1]").unwrap(),
            Target::Ip("::1".parse().unwrap())
        );
        assert_eq!(
            Target::parse("::1").unwrap(),
            Target::Ip("::1".parse().unwrap())
        );
        assert_eq!(
            Target::parse("Atlanta.Example.COM.").unwrap(),
            Target::Domain("atlanta.example.com".into())
        );
        assert!(Target::parse("").is_err());
        assert!(Target::parse("bad host").is_err());
        assert!(Target::parse("[::1").is_err());
    }

    #[test]
    fn maddr_overrides_host_and_transport_is_parsed() {
        let hop = NextHop::from_uri_parts(
            "example.com",
            Some(5070),
            Some("TCP"),
            Some("127.0.0.9"),
            false,
        )
        .unwrap();
        assert_eq!(hop.target, Target::Ip("127.0.0.9".parse().unwrap()));
        assert_eq!(hop.port, Some(5070));
        assert_eq!(hop.transport, Some(Transport::Tcp));
        assert_eq!(hop.to_string(), "sip:127.0.0.9:5070;transport=tcp");
    }

    #[test]
    fn unknown_transport_parameter_is_an_error() {
        let err = NextHop::from_uri_parts("example.com", None, Some("sctp"), None, false);
        assert_eq!(err, Err(EgressError::UnsupportedTransport("sctp".into())));
    }

    #[test]
    fn destination_display() {
        let d = Destination::new(Transport::Tcp, "[::1]:5070".parse().unwrap());
        assert_eq!(d.to_string(), "TCP:[::1]:5070");
    }
}

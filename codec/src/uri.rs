//! SIP, SIPS and tel URIs (RFC 3261 §19.1, §25.1; RFC 3966; RFC 5118 for
//! IPv6 references). Other schemes are kept opaque: a proxy must carry
//! them (RFC 4475 §3.1.4.4) even if it cannot route to them.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::ParseError;
use crate::params::Params;
use crate::scan::{find_byte, find_byte2};

/// URI scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    Sip,
    Sips,
    Tel,
    /// Any other scheme; the full text is in [`Uri::raw`].
    Other,
}

/// The host part of a URI or Via `sent-by`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Host<'a> {
    /// A host name (or, for non-SIP schemes, the opaque part).
    Domain(&'a str),
    V4(Ipv4Addr),
    V6(Ipv6Addr),
}

impl<'a> Host<'a> {
    /// Appends the host as it is written in a URI (an IPv6 address in
    /// brackets): `Display` without `core::fmt` for the common cases.
    pub fn push_to(&self, out: &mut String) {
        match self {
            Host::Domain(d) => out.push_str(d),
            Host::V4(a) => crate::text::push_ipv4(out, *a),
            Host::V6(a) => {
                use std::fmt::Write as _;
                let _ = write!(out, "[{a}]");
            }
        }
    }

    /// Whether this host is the address `ip` (never for a name).
    pub fn is_ip(&self, ip: std::net::IpAddr) -> bool {
        match (self, ip) {
            (Host::V4(a), std::net::IpAddr::V4(b)) => *a == b,
            (Host::V6(a), std::net::IpAddr::V6(b)) => *a == b,
            _ => false,
        }
    }

    /// Parse `hostname / IPv4address / IPv6reference` (RFC 3261 §25.1).
    /// An IPv6 address must be bracketed (RFC 5118 §4.2).
    pub fn parse(s: &'a str) -> Result<Host<'a>, ParseError> {
        if let Some(inner) = s.strip_prefix('[') {
            let inner = inner
                .strip_suffix(']')
                .ok_or(ParseError::Uri("unterminated IPv6 reference"))?;
            return inner
                .parse()
                .map(Host::V6)
                .map_err(|_| ParseError::Uri("invalid IPv6 address"));
        }
        let b = s.as_bytes();
        if b.is_empty() {
            return Err(ParseError::Uri("empty host"));
        }
        let mut class = HOST_DIGIT_DOT | HOST_CHAR;
        for &c in b {
            class &= HOST_CLASS[c as usize];
        }
        Host::from_classified(s, class)
    }

    /// Finish [`Host::parse`] given the AND of the `HOST_CLASS` of every
    /// byte of `s` (callers that already scanned `s` pass it in).
    fn from_classified(s: &'a str, class: u8) -> Result<Host<'a>, ParseError> {
        let b = s.as_bytes();
        if b.is_empty() {
            return Err(ParseError::Uri("empty host"));
        }
        // All digits and dots: an IPv4 address (a hostname's top label
        // starts with a letter).
        let numeric = class & HOST_DIGIT_DOT != 0;
        let valid = class & HOST_CHAR != 0;
        if numeric {
            return s
                .parse()
                .map(Host::V4)
                .map_err(|_| ParseError::Uri("invalid IPv4 address"));
        }
        if !valid || b[0] == b'.' || b[0] == b'-' {
            return Err(ParseError::Uri("invalid host name"));
        }
        Ok(Host::Domain(s))
    }

    /// IP address, if the host is a literal.
    pub fn ip(&self) -> Option<std::net::IpAddr> {
        match *self {
            Host::V4(a) => Some(a.into()),
            Host::V6(a) => Some(a.into()),
            Host::Domain(_) => None,
        }
    }
}

impl fmt::Display for Host<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Domain(d) => f.write_str(d),
            Host::V4(a) => f.write_str(crate::text::ipv4_str(*a, &mut [0; 15])),
            Host::V6(a) => write!(f, "[{a}]"),
        }
    }
}

const U_BAD: u8 = 1;
const U_AT: u8 = 2;
const U_PCT: u8 = 4;

/// Byte classes for the first pass of [`Uri::parse`]: bytes never allowed
/// unescaped in a URI (CTLs, SP, DEL, `<`, `>`, `"`), `@` and `%`.
static URI_CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let c = i as u8;
        if c <= b' ' || c == 0x7f || c == b'<' || c == b'>' || c == b'"' {
            t[i] = U_BAD;
        } else if c == b'@' {
            t[i] = U_AT;
        } else if c == b'%' {
            t[i] = U_PCT;
        }
        i += 1;
    }
    t
};

const HOST_DIGIT_DOT: u8 = 1;
const HOST_CHAR: u8 = 2;

/// Byte classes for [`Host::parse`]: digits and '.' (IPv4), and the
/// characters of a hostname (alphanumerics, '-', '.', '_').
static HOST_CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let c = i as u8;
        if c.is_ascii_digit() || c == b'.' {
            t[i] |= HOST_DIGIT_DOT;
        }
        if c.is_ascii_alphanumeric() || c == b'-' || c == b'.' || c == b'_' {
            t[i] |= HOST_CHAR;
        }
        i += 1;
    }
    t
};

/// A parsed URI borrowing from the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Uri<'a> {
    pub scheme: Scheme,
    pub user: Option<&'a str>,
    pub password: Option<&'a str>,
    /// For `tel:` the global/local number; for other non-SIP schemes
    /// everything after the colon.
    pub host: Host<'a>,
    pub port: Option<u16>,
    pub params: Params<'a>,
    /// `?h=v&...` without the question mark.
    pub headers: Option<&'a str>,
    /// The whole URI as written.
    pub raw: &'a str,
}

impl<'a> Uri<'a> {
    /// Parse a URI. SIP and SIPS URIs are checked against RFC 3261 §25.1;
    /// any other `scheme:opaque` is accepted as [`Scheme::Other`].
    pub fn parse(s: &'a str) -> Result<Uri<'a>, ParseError> {
        let colon = find_byte(s, b':').ok_or(ParseError::Uri("missing scheme"))?;
        let scheme_str = &s[..colon];
        let b = scheme_str.as_bytes();
        if b.is_empty()
            || !b[0].is_ascii_alphabetic()
            || !b
                .iter()
                .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'))
        {
            return Err(ParseError::Uri("invalid scheme"));
        }
        let rest = &s[colon + 1..];
        let scheme = if scheme_str.eq_ignore_ascii_case("sip") {
            Scheme::Sip
        } else if scheme_str.eq_ignore_ascii_case("sips") {
            Scheme::Sips
        } else if scheme_str.eq_ignore_ascii_case("tel") {
            Scheme::Tel
        } else {
            Scheme::Other
        };
        // One table-driven pass: no whitespace or delimiters, where the
        // first `@` is, and whether any `%` needs checking (RFC 3261 §25.1
        // `escaped`; opaque URIs of other schemes are not checked).
        let rb = rest.as_bytes();
        let mut seen = 0u8;
        let mut at = None;
        for (i, &c) in rb.iter().enumerate() {
            let k = URI_CLASS[c as usize];
            if k != 0 {
                seen |= k;
                if k == U_AT && at.is_none() {
                    at = Some(i);
                }
            }
        }
        if seen & U_BAD != 0 {
            return Err(ParseError::Uri("whitespace or delimiter inside URI"));
        }
        if seen & U_PCT != 0 && scheme != Scheme::Other {
            check_escapes(rb)?;
        }
        if scheme == Scheme::Other {
            if rest.is_empty() {
                return Err(ParseError::Uri("empty opaque part"));
            }
            return Ok(Uri {
                scheme: Scheme::Other,
                user: None,
                password: None,
                host: Host::Domain(rest),
                port: None,
                params: Params::default(),
                headers: None,
                raw: s,
            });
        }
        if scheme == Scheme::Tel {
            let (number, params) = match find_byte(rest, b';') {
                Some(i) => (&rest[..i], &rest[i..]),
                None => (rest, ""),
            };
            if number.is_empty() {
                return Err(ParseError::Uri("empty telephone number"));
            }
            return Ok(Uri {
                scheme,
                user: None,
                password: None,
                host: Host::Domain(number),
                port: None,
                params: Params::parse(params).map_err(|_| ParseError::Uri("invalid parameter"))?,
                headers: None,
                raw: s,
            });
        }
        parse_sip(scheme, s, rest, at)
    }

    /// `transport` URI parameter (RFC 3261 §19.1.1).
    pub fn transport(&self) -> Option<&'a str> {
        self.params.get("transport").flatten()
    }

    /// `lr` flag: the element is a loose router (RFC 3261 §16.4, §19.1.1).
    pub fn is_lr(&self) -> bool {
        self.params.contains("lr")
    }

    /// `maddr` URI parameter.
    pub fn maddr(&self) -> Option<&'a str> {
        self.params.get("maddr").flatten()
    }

    /// `user` URI parameter (`phone`, `ip`, ...).
    pub fn user_param(&self) -> Option<&'a str> {
        self.params.get("user").flatten()
    }

    /// True for `sip:` and `sips:`.
    pub fn is_sip(&self) -> bool {
        matches!(self.scheme, Scheme::Sip | Scheme::Sips)
    }
}

/// `rest` is everything after `sip:`, already checked for stray bytes and
/// bad escapes; `at` is the position of its first `@`.
fn parse_sip<'a>(
    scheme: Scheme,
    raw: &'a str,
    rest: &'a str,
    at: Option<usize>,
) -> Result<Uri<'a>, ParseError> {
    // userinfo never contains an unescaped '@' and neither do the host,
    // params or headers, so the first '@' ends the userinfo.
    let (userinfo, hostpart) = match at {
        Some(i) => (Some(&rest[..i]), &rest[i + 1..]),
        None => (None, rest),
    };
    let (user, password) = match userinfo {
        Some(ui) => {
            let (u, p) = match find_byte(ui, b':') {
                Some(i) => (&ui[..i], Some(&ui[i + 1..])),
                None => (ui, None),
            };
            if u.is_empty() {
                return Err(ParseError::Uri("empty user part"));
            }
            (Some(u), p)
        }
        None => (None, None),
    };
    let (host, port, after) = if hostpart.starts_with('[') {
        let close =
            find_byte(hostpart, b']').ok_or(ParseError::Uri("unterminated IPv6 reference"))?;
        let end = find_byte2(&hostpart[close..], b';', b'?').map_or(hostpart.len(), |i| close + i);
        let (host, port) = split_host_port(&hostpart[..end])?;
        (host, port, &hostpart[end..])
    } else {
        // Scan the host once, classifying it on the way (see Host::parse).
        let hb = hostpart.as_bytes();
        let mut class = HOST_DIGIT_DOT | HOST_CHAR;
        let mut i = 0;
        while i < hb.len() && !matches!(hb[i], b':' | b';' | b'?') {
            class &= HOST_CLASS[hb[i] as usize];
            i += 1;
        }
        let host = Host::from_classified(&hostpart[..i], class)?;
        let mut port = None;
        if i < hb.len() && hb[i] == b':' {
            let start = i + 1;
            i = start;
            while i < hb.len() && hb[i] != b';' && hb[i] != b'?' {
                i += 1;
            }
            port = Some(parse_port(&hostpart[start..i])?);
        }
        (host, port, &hostpart[i..])
    };
    let (params, headers) = match find_byte(after, b'?') {
        Some(i) => (&after[..i], Some(&after[i + 1..])),
        None => (after, None),
    };
    let params = Params::parse(params).map_err(|_| ParseError::Uri("invalid URI parameter"))?;
    Ok(Uri {
        scheme,
        user,
        password,
        host,
        port,
        params,
        headers,
        raw,
    })
}

/// Split `host [":" port]`, where host may be a bracketed IPv6 reference.
pub(crate) fn split_host_port(s: &str) -> Result<(Host<'_>, Option<u16>), ParseError> {
    let (h, p) = if s.starts_with('[') {
        let close = s
            .find(']')
            .ok_or(ParseError::Uri("unterminated IPv6 reference"))?;
        match &s[close + 1..] {
            "" => (&s[..=close], None),
            tail => match tail.strip_prefix(':') {
                Some(p) => (&s[..=close], Some(p)),
                None => return Err(ParseError::Uri("garbage after IPv6 reference")),
            },
        }
    } else {
        match find_byte(s, b':') {
            Some(i) => (&s[..i], Some(&s[i + 1..])),
            None => (s, None),
        }
    };
    let port = match p {
        None => None,
        Some(p) => Some(parse_port(p)?),
    };
    Ok((Host::parse(h)?, port))
}

fn parse_port(p: &str) -> Result<u16, ParseError> {
    crate::scan::parse_port(p.as_bytes()).ok_or(ParseError::Uri("invalid port"))
}

/// Every `%` must start a `%HH` escape.
fn check_escapes(b: &[u8]) -> Result<(), ParseError> {
    let mut i = 0;
    while let Some(off) = b[i..].iter().position(|&c| c == b'%') {
        let p = i + off;
        if p + 2 >= b.len() || !b[p + 1].is_ascii_hexdigit() || !b[p + 2].is_ascii_hexdigit() {
            return Err(ParseError::Uri("invalid %-escape"));
        }
        i = p + 3;
    }
    Ok(())
}

impl fmt::Display for Uri<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.scheme {
            Scheme::Other => f.write_str(self.raw),
            Scheme::Tel => write!(f, "tel:{}{}", self.host, self.params),
            Scheme::Sip | Scheme::Sips => {
                f.write_str(if self.scheme == Scheme::Sip {
                    "sip:"
                } else {
                    "sips:"
                })?;
                if let Some(u) = self.user {
                    f.write_str(u)?;
                    if let Some(p) = self.password {
                        write!(f, ":{p}")?;
                    }
                    f.write_str("@")?;
                }
                write!(f, "{}", self.host)?;
                if let Some(p) = self.port {
                    write!(f, ":{p}")?;
                }
                write!(f, "{}", self.params)?;
                if let Some(h) = self.headers {
                    write!(f, "?{h}")?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sip_uri_parts() {
        let u = Uri::parse("sips:alice:secret@[2001:db8::10]:5061;transport=tcp;lr?Subject=hi")
            .unwrap();
        assert_eq!(u.scheme, Scheme::Sips);
        assert_eq!(u.user, Some("alice"));
        assert_eq!(u.password, Some("secret"));
        assert_eq!(u.host, Host::V6("2001:db8::10".parse().unwrap()));
        assert_eq!(u.port, Some(5061));
        assert_eq!(u.transport(), Some("tcp"));
        assert!(u.is_lr());
        assert_eq!(u.headers, Some("Subject=hi"));
        assert_eq!(
            u.to_string(),
            "sips:alice:secret@[2001:db8::10]:5061;transport=tcp;lr?Subject=hi"
        );
    }

    #[test]
    fn ipv6_port_ambiguity_rfc5118() {
        // RFC 5118 §4.3: the last group belongs to the address, no port.
        let u = Uri::parse("sip:[2001:db8::10:5070]").unwrap();
        assert_eq!(u.port, None);
        let u = Uri::parse("sip:[2001:db8::10]:5070").unwrap();
        assert_eq!(u.port, Some(5070));
        assert!(Uri::parse("sip:user@[2001:db8::10").is_err());
        assert!(Uri::parse("sip:user@2001:db8::10").is_err());
    }

    #[test]
    fn user_part_may_hold_semicolons_and_escapes() {
        let u = Uri::parse("sip:user;par=u%40example.net@example.com").unwrap();
        assert_eq!(u.user, Some("user;par=u%40example.net"));
        assert_eq!(u.host, Host::Domain("example.com"));
        assert!(u.params.is_empty());
        assert!(Uri::parse("sip:us%zzer@example.com").is_err());
        assert!(Uri::parse("sip:user@example.com%").is_err());
    }

    #[test]
    fn other_schemes_are_opaque_and_tel_is_typed() {
        let u = Uri::parse("isbn:2983792873").unwrap();
        assert_eq!(u.scheme, Scheme::Other);
        assert_eq!(u.to_string(), "isbn:2983792873");
        let t = Uri::parse("tel:+1-201-555-0123;phone-context=example.com").unwrap();
        assert_eq!(t.scheme, Scheme::Tel);
        assert_eq!(t.host, Host::Domain("+1-201-555-0123"));
        assert!(Uri::parse("no-scheme").is_err());
        assert!(Uri::parse("sip:user@exa mple.com").is_err());
        assert!(Uri::parse("sip:host:99999").is_err());
    }
}

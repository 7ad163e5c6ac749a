//! Via header values (RFC 3261 §20.42, §18.2.1; RFC 3581 rport; RFC 5118
//! §4.5 IPv6 in Via).

use crate::ParseError;
use crate::params::Params;
use crate::scan::{find_byte, is_lws, is_token, trim_lws};
use crate::uri::Host;

/// The RFC 3261 branch magic cookie (§8.1.1.7).
pub const BRANCH_MAGIC: &str = "z9hG4bK";

/// One Via value: `SIP/2.0/UDP host:port;branch=...`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Via<'a> {
    /// Protocol version from `sent-protocol` (`2.0`).
    pub version: &'a str,
    /// Transport token as written (`UDP`, `TCP`, `TLS`, `SCTP`, `WS`, or
    /// anything else: unknown transports are legal, RFC 4475 §3.1.1.10).
    pub transport: &'a str,
    pub host: Host<'a>,
    pub port: Option<u16>,
    pub params: Params<'a>,
    /// The whole value as written (LWS-trimmed).
    pub raw: &'a str,
}

impl<'a> Via<'a> {
    /// Parse one via-parm. Folded whitespace is allowed everywhere the
    /// grammar has LWS/SWS (around `/`, `:` and `;`).
    pub fn parse(value: &'a str) -> Result<Via<'a>, ParseError> {
        let v = trim_lws(value);
        let s1 = find_byte(v, b'/').ok_or(ParseError::Via("missing sent-protocol"))?;
        let name = trim_lws(&v[..s1]);
        let after1 = &v[s1 + 1..];
        let s2 = find_byte(after1, b'/').ok_or(ParseError::Via("missing transport"))?;
        let version = trim_lws(&after1[..s2]);
        let after2 = trim_lws(&after1[s2 + 1..]);
        let t_end = after2
            .bytes()
            .position(|b| is_lws(b) || b == b';')
            .unwrap_or(after2.len());
        let transport = &after2[..t_end];
        if !is_token(name) || !is_token(version) || !is_token(transport) {
            return Err(ParseError::Via("malformed sent-protocol"));
        }
        let rest = &after2[t_end..];
        if !rest.starts_with(|c: char| c.is_ascii() && is_lws(c as u8)) {
            return Err(ParseError::Via("missing sent-by"));
        }
        let rest = trim_lws(rest);
        let (sent_by, params) = match find_byte(rest, b';') {
            Some(i) => (trim_lws(&rest[..i]), trim_lws(&rest[i..])),
            None => (rest, ""),
        };
        let (host, port) = parse_sent_by(sent_by)?;
        let params = Params::parse(params).map_err(|e| match e {
            ParseError::Param(p) => ParseError::Via(p),
            other => other,
        })?;
        Ok(Via {
            version,
            transport,
            host,
            port,
            params,
            raw: v,
        })
    }

    /// `branch` parameter (RFC 3261 §8.1.1.7).
    pub fn branch(&self) -> Option<&'a str> {
        self.params.get("branch").flatten()
    }

    /// True if the branch starts with the RFC 3261 magic cookie (so it can
    /// be used as a transaction id, §17.2.3).
    pub fn has_rfc3261_branch(&self) -> bool {
        self.branch().is_some_and(|b| b.starts_with(BRANCH_MAGIC))
    }

    /// `received` parameter (RFC 3261 §18.2.1). IPv6 values may appear with
    /// or without brackets (RFC 5118 §4.5).
    pub fn received(&self) -> Option<&'a str> {
        self.params.get("received").flatten()
    }

    /// `rport` (RFC 3581): `Some(None)` when present without a (valid)
    /// value, as a client sends it; `Some(Some(port))` once filled in.
    pub fn rport(&self) -> Option<Option<u16>> {
        self.params
            .get("rport")
            .map(|v| v.and_then(|p| p.parse().ok()))
    }

    /// `maddr` parameter.
    pub fn maddr(&self) -> Option<&'a str> {
        self.params.get("maddr").flatten()
    }

    /// `sent-by` as text: `host[:port]`, IPv6 bracketed.
    pub fn sent_by(&self) -> String {
        match self.port {
            Some(p) => format!("{}:{p}", self.host),
            None => self.host.to_string(),
        }
    }
}

/// `host [ COLON port ]` where COLON may be surrounded by SWS.
fn parse_sent_by(s: &str) -> Result<(Host<'_>, Option<u16>), ParseError> {
    let b = s.as_bytes();
    if b.is_empty() {
        return Err(ParseError::Via("missing sent-by"));
    }
    // One pass: the port colon (the first ':' after an IPv6 reference's
    // ']'), and whether there is any LWS at all.
    let mut colon = None;
    let mut in_v6 = b[0] == b'[';
    let mut lws = false;
    for (i, &c) in b.iter().enumerate() {
        if in_v6 {
            in_v6 = c != b']';
        } else if c == b':' && colon.is_none() {
            colon = Some(i);
        }
        lws |= is_lws(c);
    }
    let (host, port) = match colon {
        Some(c) => (trim_lws(&s[..c]), Some(trim_lws(&s[c + 1..]))),
        None => (s, None),
    };
    if lws && (host.bytes().any(is_lws) || port.is_some_and(|p| p.bytes().any(is_lws))) {
        return Err(ParseError::Via("whitespace inside sent-by"));
    }
    let host = Host::parse(host).map_err(|e| match e {
        ParseError::Uri(p) => ParseError::Via(p),
        other => other,
    })?;
    let port = match port {
        None => None,
        Some(p) => {
            Some(crate::scan::parse_port(p.as_bytes()).ok_or(ParseError::Via("invalid port"))?)
        }
    };
    Ok((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typical_and_folded() {
        let v = Via::parse("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds;rport").unwrap();
        assert_eq!(v.transport, "UDP");
        assert_eq!(v.host, Host::V4("192.0.2.1".parse().unwrap()));
        assert_eq!(v.port, Some(5060));
        assert_eq!(v.branch(), Some("z9hG4bK776asdhds"));
        assert!(v.has_rfc3261_branch());
        assert_eq!(v.rport(), Some(None));
        assert_eq!(v.sent_by(), "192.0.2.1:5060");
        let v = Via::parse("SIP  /   2.0\r\n  /UDP\r\n    192.0.2.2;branch=390skdjuw").unwrap();
        assert_eq!(v.transport, "UDP");
        assert_eq!(v.port, None);
        let v = Via::parse("SIP/2.0/TCP host.example.com : 5070 ;branch=x").unwrap();
        assert_eq!(v.port, Some(5070));
    }

    #[test]
    fn ipv6_sent_by_and_received() {
        let v = Via::parse(
            "SIP/2.0/UDP [2001:db8::9:1]:5070;branch=z9hG4bKas3-111;received=[2001:db8::9:255];rport=5071",
        )
        .unwrap();
        assert_eq!(v.host, Host::V6("2001:db8::9:1".parse().unwrap()));
        assert_eq!(v.port, Some(5070));
        assert_eq!(v.received(), Some("[2001:db8::9:255]"));
        assert_eq!(v.rport(), Some(Some(5071)));
        assert_eq!(v.sent_by(), "[2001:db8::9:1]:5070");
        let v = Via::parse("SIP/2.0/UDP [2001:db8::9:1];received=2001:db8::9:255").unwrap();
        assert_eq!(v.received(), Some("2001:db8::9:255"));
    }

    #[test]
    fn rejects_garbage() {
        assert!(Via::parse("SIP/2.0/UDP 192.0.2.15;;").is_err());
        assert!(Via::parse(";").is_err());
        assert!(Via::parse("SIP/2.0/UDP").is_err());
        assert!(Via::parse("SIP/2.0/UDP [2001:db8::1").is_err());
    }
}

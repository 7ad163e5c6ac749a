//! Via header values (RFC 3261 §20.42, §18.2.1; RFC 3581 rport; RFC 5118
//! §4.5 IPv6 in Via).

use crate::ParseError;
use crate::params::Params;
use crate::scan::{find_byte, is_lws, is_token_byte, parse_port, trim_lws};
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
    /// grammar has LWS/SWS (around `/`, `:` and `;`). A single forward
    /// scan: this runs for every message the transaction layer matches.
    pub fn parse(value: &'a str) -> Result<Via<'a>, ParseError> {
        let v = trim_lws(value);
        let b = v.as_bytes();
        let mut i = 0;
        let token = |i: &mut usize| {
            let start = *i;
            while *i < b.len() && is_token_byte(b[*i]) {
                *i += 1;
            }
            &v[start..*i]
        };
        let lws = |i: &mut usize| {
            let start = *i;
            while *i < b.len() && is_lws(b[*i]) {
                *i += 1;
            }
            *i - start
        };
        let slash = |i: &mut usize| {
            lws(i);
            if *i < b.len() && b[*i] == b'/' {
                *i += 1;
                lws(i);
                true
            } else {
                false
            }
        };
        // sent-protocol = protocol-name SLASH protocol-version SLASH transport
        let name = token(&mut i);
        if name.is_empty() || !slash(&mut i) {
            return Err(ParseError::Via("missing sent-protocol"));
        }
        let version = token(&mut i);
        if version.is_empty() || !slash(&mut i) {
            return Err(ParseError::Via("malformed sent-protocol"));
        }
        let transport = token(&mut i);
        if transport.is_empty() {
            return Err(ParseError::Via("missing transport"));
        }
        if lws(&mut i) == 0 || i == b.len() {
            return Err(ParseError::Via("missing sent-by"));
        }
        // sent-by = host [ COLON port ]
        let host_start = i;
        if b[i] == b'[' {
            i +=
                find_byte(&v[i..], b']').ok_or(ParseError::Via("unterminated IPv6 reference"))? + 1;
        } else {
            while i < b.len() && !is_lws(b[i]) && b[i] != b':' && b[i] != b';' {
                i += 1;
            }
        }
        let host = Host::parse(&v[host_start..i]).map_err(|e| match e {
            ParseError::Uri(p) => ParseError::Via(p),
            other => other,
        })?;
        lws(&mut i);
        let port = if i < b.len() && b[i] == b':' {
            i += 1;
            lws(&mut i);
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            let port = parse_port(&b[start..i]).ok_or(ParseError::Via("invalid port"))?;
            lws(&mut i);
            Some(port)
        } else {
            None
        };
        let params = &v[i..];
        if !params.is_empty() && !params.starts_with(';') {
            return Err(ParseError::Via("unexpected text after sent-by"));
        }
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

//! `;name=value` parameter lists, as found after URIs (`uri-parameters`),
//! name-addrs (`contact-params`, `to-param`, ...) and Via (`via-params`).
//!
//! The list is kept as the raw text and scanned on demand: a proxy looks at
//! one or two parameters of a handful of headers, so building a map for each
//! would cost more than it saves.

use std::borrow::Cow;
use std::fmt;

use crate::ParseError;
use crate::scan::{find_byte, find_unquoted, quoted_len, trim_lws, unquote};

/// A parameter list borrowed from the message (`;a=1;b;c="x y"`).
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct Params<'a> {
    raw: &'a str,
}

impl<'a> Params<'a> {
    /// Wrap `raw`, which is empty or starts with `;`.
    pub(crate) fn new(raw: &'a str) -> Self {
        Params { raw }
    }

    /// Like [`Params::new`] but first checks every parameter against
    /// `generic-param` (RFC 3261 §25.1): a token name, and a token,
    /// host or quoted-string value.
    pub(crate) fn parse(raw: &'a str) -> Result<Self, ParseError> {
        check(raw.as_bytes())?;
        Ok(Params::new(raw))
    }

    /// The raw text, starting with `;` (or empty).
    pub fn as_str(&self) -> &'a str {
        self.raw
    }

    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// `Some(None)` for a flag parameter (`;lr`), `Some(Some(v))` for
    /// `;name=v` (raw, quotes kept), `None` if absent. Names compare
    /// case-insensitively (RFC 3261 §19.1.4, §7.3.1).
    pub fn get(&self, name: &str) -> Option<Option<&'a str>> {
        // A direct scan rather than `iter().find()`: lookups (branch, tag,
        // lr, received, rport) are the hot path and most names do not match,
        // so only each name is compared and non-matching values are skipped.
        let raw = self.raw;
        let b = raw.as_bytes();
        let want = name.as_bytes();
        let skip_lws = |mut i: usize| {
            while i < b.len() && crate::scan::is_lws(b[i]) {
                i += 1;
            }
            i
        };
        let mut i = 0;
        while i < b.len() {
            // `i` is at a ';' (or garbage in an unvalidated list).
            i = skip_lws(i + 1);
            let start = i;
            while i < b.len() && crate::scan::is_token_byte(b[i]) {
                i += 1;
            }
            let matched = i > start && b[start..i].eq_ignore_ascii_case(want);
            i = skip_lws(i);
            let value = if i < b.len() && b[i] == b'=' {
                let vs = skip_lws(i + 1);
                let ve = if vs < b.len() && b[vs] == b'"' {
                    vs + quoted_len(&raw[vs..]).unwrap_or(b.len() - vs)
                } else {
                    let mut e = vs;
                    while e < b.len() && b[e] != b';' && !crate::scan::is_lws(b[e]) {
                        e += 1;
                    }
                    e
                };
                i = ve;
                Some(&raw[vs..ve])
            } else {
                None
            };
            if matched {
                return Some(value);
            }
            // Move to the next top-level ';'.
            match find_unquoted(&raw[i..], b';') {
                Some(off) => i += off,
                None => return None,
            }
        }
        None
    }

    /// True if the parameter is present, with or without a value.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// The value with quotes removed and escapes resolved; `Some("")` for a
    /// flag parameter.
    pub fn get_unquoted(&self, name: &str) -> Option<Cow<'a, str>> {
        self.get(name)
            .map(|v| v.map(unquote).unwrap_or(Cow::Borrowed("")))
    }

    /// Every parameter in order: `(name, value)`, both LWS-trimmed.
    pub fn iter(&self) -> ParamIter<'a> {
        ParamIter {
            rest: self.raw.strip_prefix(';').map(|r| r.trim_start()),
        }
    }
}

/// Bytes allowed in an unquoted parameter value: `token`, plus what
/// `host` (IPv6 references) and `uri-parameter` values use.
#[inline]
fn is_value_byte(c: u8) -> bool {
    crate::scan::is_token_byte(c) || matches!(c, b'[' | b']' | b':' | b'/' | b'&' | b'$' | b'@')
}

/// One pass over `*( SEMI generic-param )` (RFC 3261 §25.1), LWS allowed
/// around `;` and `=`: every name a token, every value a token / host /
/// quoted-string, no empty parameters.
fn check(b: &[u8]) -> Result<(), ParseError> {
    let skip_lws = |mut i: usize| {
        while i < b.len() && crate::scan::is_lws(b[i]) {
            i += 1;
        }
        i
    };
    let mut i = skip_lws(0);
    while i < b.len() {
        if b[i] != b';' {
            return Err(ParseError::Param("expected ;"));
        }
        i = skip_lws(i + 1);
        let name_start = i;
        while i < b.len() && crate::scan::is_token_byte(b[i]) {
            i += 1;
        }
        if i == name_start {
            return Err(ParseError::Param(if i == b.len() || b[i] == b';' {
                "empty parameter"
            } else {
                "parameter name is not a token"
            }));
        }
        i = skip_lws(i);
        if i < b.len() && b[i] == b'=' {
            i = skip_lws(i + 1);
            if i < b.len() && b[i] == b'"' {
                // quoted_len works on str; the slice starts at an ASCII '"'.
                let rest =
                    std::str::from_utf8(&b[i..]).map_err(|_| ParseError::UnterminatedQuote)?;
                i += quoted_len(rest)?;
            } else {
                let value_start = i;
                while i < b.len() && is_value_byte(b[i]) {
                    i += 1;
                }
                if i == value_start {
                    return Err(ParseError::Param("empty parameter value"));
                }
            }
            i = skip_lws(i);
        }
        if i < b.len() && b[i] != b';' {
            return Err(ParseError::Param("invalid character in parameter"));
        }
    }
    Ok(())
}

impl fmt::Debug for Params<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl fmt::Display for Params<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.raw)
    }
}

/// Iterator over `(name, value)` pairs of a [`Params`].
#[derive(Debug, Clone)]
pub struct ParamIter<'a> {
    rest: Option<&'a str>,
}

impl<'a> Iterator for ParamIter<'a> {
    type Item = (&'a str, Option<&'a str>);
    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.rest?;
        let item = match find_unquoted(rest, b';') {
            Some(i) => {
                self.rest = Some(&rest[i + 1..]);
                &rest[..i]
            }
            None => {
                self.rest = None;
                rest
            }
        };
        Some(match find_byte(item, b'=') {
            Some(eq) => (trim_lws(&item[..eq]), Some(trim_lws(&item[eq + 1..]))),
            None => (trim_lws(item), None),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_flags_values_and_quoted() {
        let p = Params::parse(
            r#";lr;Transport=TCP;+sip.instance="<urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6>";reg-id=1"#,
        )
        .unwrap();
        assert_eq!(p.get("lr"), Some(None));
        assert_eq!(p.get("transport"), Some(Some("TCP")));
        assert_eq!(
            p.get_unquoted("+sip.instance").as_deref(),
            Some("<urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6>")
        );
        assert_eq!(p.get("reg-id"), Some(Some("1")));
        assert_eq!(p.get("missing"), None);
        assert_eq!(p.iter().count(), 4);
    }

    #[test]
    fn quoted_value_may_hold_semicolons() {
        let p = Params::parse(r#";a="x;y";b=2"#).unwrap();
        assert_eq!(p.get("a"), Some(Some(r#""x;y""#)));
        assert_eq!(p.get("b"), Some(Some("2")));
    }

    #[test]
    fn rejects_malformed() {
        assert!(Params::parse(";;").is_err());
        assert!(Params::parse(r#";a="unterminated"#).is_err());
        assert!(Params::parse(";a=").is_err());
        assert!(Params::parse(";a b=1").is_err());
    }
}

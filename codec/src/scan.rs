//! Low-level lexical helpers shared by the typed parsers: token classes,
//! LWS trimming (folded lines count as LWS), and quote- and `<>`-aware
//! splitting.

use std::borrow::Cow;

use crate::ParseError;

/// RFC 3261 §25.1 `token` characters.
#[inline]
pub(crate) fn is_token_byte(b: u8) -> bool {
    TOKEN[b as usize]
}

/// Lookup table for [`is_token_byte`]: one load per byte on hot paths.
static TOKEN: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let c = i as u8;
        t[i] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
            );
        i += 1;
    }
    t
};

/// Non-empty string made only of `token` characters.
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token_byte)
}

/// Linear white space, including the CR/LF of a folded line: callers only
/// ever see header values, where CRLF is always followed by WSP.
#[inline]
pub(crate) fn is_lws(b: u8) -> bool {
    // Most bytes are above SP, so the first compare usually decides.
    const MASK: u64 = (1 << b' ') | (1 << b'\t') | (1 << b'\r') | (1 << b'\n');
    b <= b' ' && (MASK >> b) & 1 != 0
}

/// Parse a decimal port: 1 to 5 digits, at most 65535.
#[inline]
pub(crate) fn parse_port(s: &[u8]) -> Option<u16> {
    if s.is_empty() || s.len() > 5 {
        return None;
    }
    let mut n: u32 = 0;
    for &c in s {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        n = n * 10 + d as u32;
    }
    u16::try_from(n).ok()
}

#[inline]
pub(crate) fn trim_lws(s: &str) -> &str {
    let b = s.as_bytes();
    let mut start = 0;
    let mut end = b.len();
    while start < end && is_lws(b[start]) {
        start += 1;
    }
    while end > start && is_lws(b[end - 1]) {
        end -= 1;
    }
    // Only ASCII bytes were skipped, so both ends are char boundaries.
    &s[start..end]
}

/// Position of `b` in `s`. A plain loop: the strings searched here are
/// short, where a SIMD search costs more in setup than it saves.
#[inline]
pub(crate) fn find_byte(s: &str, b: u8) -> Option<usize> {
    s.as_bytes().iter().position(|&c| c == b)
}

/// Position of the first `a` or `b` in `s`.
#[inline]
pub(crate) fn find_byte2(s: &str, a: u8, b: u8) -> Option<usize> {
    s.as_bytes().iter().position(|&c| c == a || c == b)
}

/// Index of the first `needle` byte outside quoted strings and `<...>`.
/// Jumps between interesting bytes with `memchr3`, since values are mostly
/// plain text.
#[inline]
pub(crate) fn find_unquoted(s: &str, needle: u8) -> Option<usize> {
    let b = s.as_bytes();
    if b.len() < 48 {
        return find_unquoted_short(b, needle);
    }
    let mut i = 0;
    while let Some(off) = memchr::memchr3(needle, b'"', b'<', &b[i..]) {
        let p = i + off;
        match b[p] {
            c if c == needle => return Some(p),
            b'"' => {
                // Skip the quoted string, honouring `\` escapes.
                let mut j = p + 1;
                loop {
                    match memchr::memchr2(b'"', b'\\', &b[j.min(b.len())..]) {
                        None => return None,
                        Some(q) if b[j + q] == b'\\' => j += q + 2,
                        Some(q) => {
                            i = j + q + 1;
                            break;
                        }
                    }
                }
            }
            _ => match memchr::memchr(b'>', &b[p + 1..]) {
                None => return None,
                Some(q) => i = p + 1 + q + 1,
            },
        }
        if i >= b.len() {
            return None;
        }
    }
    None
}

fn find_unquoted_short(b: &[u8], needle: u8) -> Option<usize> {
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == needle {
            return Some(i);
        } else if c == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
        } else if c == b'<' {
            while i < b.len() && b[i] != b'>' {
                i += 1;
            }
        }
        i += 1;
    }
    None
}

/// Splits a header value at top-level commas (RFC 3261 §7.3.1), ignoring
/// commas inside quoted strings and `<...>`. Elements are LWS-trimmed and
/// empty elements are yielded (so `a,,b` is visibly malformed to callers);
/// an all-blank value yields nothing.
#[derive(Debug, Clone)]
pub(crate) struct CommaSplit<'a> {
    rest: Option<&'a str>,
    /// Yield the whole value as one element (no splitting).
    whole: bool,
}

impl<'a> CommaSplit<'a> {
    pub(crate) fn new(value: &'a str) -> Self {
        let t = trim_lws(value);
        CommaSplit {
            rest: if t.is_empty() { None } else { Some(t) },
            whole: false,
        }
    }

    /// The LWS-trimmed value as a single element: for the headers whose
    /// commas separate parameters, not values (§7.3.1's exception).
    pub(crate) fn whole(value: &'a str) -> Self {
        CommaSplit {
            whole: true,
            ..CommaSplit::new(value)
        }
    }
}

impl<'a> Iterator for CommaSplit<'a> {
    type Item = &'a str;
    fn next(&mut self) -> Option<&'a str> {
        let rest = self.rest?;
        if self.whole {
            self.rest = None;
            return Some(rest);
        }
        match find_unquoted(rest, b',') {
            Some(i) => {
                self.rest = Some(&rest[i + 1..]);
                Some(trim_lws(&rest[..i]))
            }
            None => {
                self.rest = None;
                Some(trim_lws(rest))
            }
        }
    }
}

/// Length of the quoted string starting at `s[0] == '"'`, both quotes
/// included, honouring `\` escapes (RFC 3261 §25.1 `quoted-pair`).
pub(crate) fn quoted_len(s: &str) -> Result<usize, ParseError> {
    let b = s.as_bytes();
    debug_assert_eq!(b.first(), Some(&b'"'));
    let mut i = 1;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return Ok(i + 1),
            _ => i += 1,
        }
    }
    Err(ParseError::UnterminatedQuote)
}

/// Remove surrounding quotes and resolve `\` escapes. Unquoted input is
/// returned as is.
pub(crate) fn unquote(s: &str) -> Cow<'_, str> {
    let s = trim_lws(s);
    if s.len() < 2 || !s.starts_with('"') || !s.ends_with('"') {
        return Cow::Borrowed(s);
    }
    let inner = &s[1..s.len() - 1];
    if !inner.contains('\\') {
        return Cow::Borrowed(inner);
    }
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Parse a run of ASCII digits into a `u32`, rejecting empty input,
/// non-digits and overflow (RFC 4475 §3.1.2.4 overlarge scalars).
pub(crate) fn parse_u32(s: &str) -> Option<u32> {
    if s.is_empty() || s.len() > 10 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comma_split_respects_quotes_and_angles() {
        let v: Vec<_> = CommaSplit::new(r#""a, \"b" <sip:x@y;p=1,2>, <sip:z>;q=0.5 ,,"#).collect();
        assert_eq!(
            v,
            vec![r#""a, \"b" <sip:x@y;p=1,2>"#, "<sip:z>;q=0.5", "", ""]
        );
        assert_eq!(CommaSplit::new("  ").count(), 0);
    }

    #[test]
    fn unquote_resolves_escapes() {
        assert_eq!(unquote(r#""a\"b\\c""#), r#"a"b\c"#);
        assert_eq!(unquote("plain"), "plain");
        assert!(matches!(unquote(r#""x""#), Cow::Borrowed("x")));
    }

    #[test]
    fn quoted_len_detects_unterminated() {
        assert_eq!(quoted_len(r#""ab\"c" rest"#), Ok(7));
        assert_eq!(quoted_len(r#""abc"#), Err(ParseError::UnterminatedQuote));
    }
}

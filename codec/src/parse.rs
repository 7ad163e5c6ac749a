//! The one structural pass over a received message: start line, header
//! lines (folding, compact forms, case-insensitive names) and body offsets.
//! Nothing is copied; typed views are parsed later, on demand.

use bytes::Bytes;

use crate::ParseError;
use crate::header::HeaderName;
use crate::message::{HeaderSpan, SipMessage, Span, StartLine};
use crate::method::Method;
use crate::scan::{is_lws, is_token_byte};

impl SipMessage {
    /// Structural parse: start line, header lines (folding and compact
    /// forms understood), body. Lenient on purpose so that a malformed
    /// request can still be answered with a precise 400 by
    /// [`crate::validate_request`]; any `SIP/x.y` version is accepted here.
    pub fn parse(buf: Bytes) -> Result<SipMessage, ParseError> {
        let b: &[u8] = &buf;
        if b.len() >= u32::MAX as usize {
            return Err(ParseError::StartLine("message too large"));
        }
        // RFC 3261 §7.5: ignore CRLFs before the start line.
        let mut pos = 0;
        while pos < b.len() && (b[pos] == b'\r' || b[pos] == b'\n') {
            pos += 1;
        }
        if pos == b.len() {
            return Err(ParseError::Empty);
        }
        let (sl_end, mut next) = line_end(b, pos);
        let sl = &b[pos..sl_end];
        let (start, version, strict) = parse_start_line(sl, pos)?;

        let mut headers = Vec::with_capacity(16);
        let headers_start = next;
        let mut headers_end = b.len();
        let mut body_start = b.len();
        let mut line_no = 0;
        while next < b.len() {
            let line_start = next;
            let (content_end, after) = line_end(b, line_start);
            next = after;
            if content_end == line_start {
                headers_end = line_start;
                body_start = after;
                break;
            }
            line_no += 1;
            let first = b[line_start];
            if first == b' ' || first == b'\t' {
                // Continuation line (RFC 3261 §7.3.1): part of the previous
                // value, its CRLF + WSP count as LWS.
                let h: &mut HeaderSpan = headers
                    .last_mut()
                    .ok_or(ParseError::HeaderLine { line: line_no })?;
                let text_end = trim_end_wsp(b, line_start, content_end);
                if text_end > line_start {
                    if h.value.start == h.value.end {
                        let text_start = line_start
                            + b[line_start..text_end]
                                .iter()
                                .position(|&c| c != b' ' && c != b'\t')
                                .unwrap_or(0);
                        h.value.start = text_start as u32;
                    }
                    h.value.end = text_end as u32;
                }
                h.line.end = after as u32;
                continue;
            }
            // The field name is a token, then optional WSP, then ':'
            // (RFC 3261 §7.3.1 HCOLON): one pass finds and checks it.
            let name_end = line_start
                + b[line_start..content_end]
                    .iter()
                    .position(|&c| !is_token_byte(c))
                    .unwrap_or(content_end - line_start);
            let mut colon = name_end;
            while colon < content_end && (b[colon] == b' ' || b[colon] == b'\t') {
                colon += 1;
            }
            if name_end == line_start || colon >= content_end || b[colon] != b':' {
                return Err(ParseError::HeaderLine { line: line_no });
            }
            let name = &b[line_start..name_end];
            let mut vs = colon + 1;
            while vs < content_end && (b[vs] == b' ' || b[vs] == b'\t') {
                vs += 1;
            }
            let ve = trim_end_wsp(b, vs, content_end);
            headers.push(HeaderSpan {
                name: HeaderName::from_bytes(name),
                raw_name: Span::new(line_start, name_end),
                value: Span::new(vs, ve),
                line: Span::new(line_start, after),
            });
        }
        // Every &str handed out lies inside the head, so one UTF-8 check
        // here makes all later views safe (RFC 3261 §7.3.1: TEXT-UTF8).
        let head = &b[..headers_end];
        if !head.is_ascii() && std::str::from_utf8(head).is_err() {
            return Err(ParseError::StartLine("head is not valid UTF-8"));
        }
        Ok(SipMessage {
            start,
            version,
            start_line: Span::new(pos, sl_end),
            start_line_strict: strict,
            headers,
            headers_start: headers_start as u32,
            headers_end: headers_end as u32,
            body_start: body_start as u32,
            buf,
        })
    }
}

/// End of the line starting at `pos`: (content end, start of next line).
/// Accepts bare LF as a terminator (robustness, RFC 3261 §7.5 spirit).
#[inline]
fn line_end(b: &[u8], pos: usize) -> (usize, usize) {
    match memchr::memchr(b'\n', &b[pos..]) {
        Some(i) => {
            let nl = pos + i;
            let end = if nl > pos && b[nl - 1] == b'\r' {
                nl - 1
            } else {
                nl
            };
            (end, nl + 1)
        }
        None => (b.len(), b.len()),
    }
}

#[inline]
fn trim_end_wsp(b: &[u8], start: usize, mut end: usize) -> usize {
    while end > start && matches!(b[end - 1], b' ' | b'\t' | b'\r') {
        end -= 1;
    }
    end
}

fn parse_start_line(sl: &[u8], base: usize) -> Result<(StartLine, Span, bool), ParseError> {
    let sp1 = memchr::memchr(b' ', sl).ok_or(ParseError::StartLine("no spaces"))?;
    if sl.len() >= 4 && sl[..4].eq_ignore_ascii_case(b"SIP/") {
        // Status-Line = SIP-Version SP Status-Code SP Reason-Phrase
        let rest = &sl[sp1 + 1..];
        let code_len = rest.iter().position(|&c| c == b' ').unwrap_or(rest.len());
        let code = &rest[..code_len];
        if code.len() != 3 || !code.iter().all(u8::is_ascii_digit) || code[0] == b'0' {
            return Err(ParseError::StartLine("invalid status code"));
        }
        let status =
            (code[0] - b'0') as u16 * 100 + (code[1] - b'0') as u16 * 10 + (code[2] - b'0') as u16;
        let reason_start = (sp1 + 1 + code_len + 1).min(sl.len());
        if std::str::from_utf8(sl).is_err() {
            return Err(ParseError::StartLine("not UTF-8"));
        }
        let strict = code_len < rest.len();
        return Ok((
            StartLine::Response {
                status,
                reason: Span::new(base + reason_start, base + sl.len()),
            },
            Span::new(base, base + sp1),
            strict,
        ));
    }
    // Request-Line = Method SP Request-URI SP SIP-Version. Trailing SPs
    // (RFC 4475 §3.1.2.10) are tolerated here and flagged as non-strict.
    let full_len = sl.len();
    let mut sl_len = full_len;
    while sl_len > 0 && sl[sl_len - 1] == b' ' {
        sl_len -= 1;
    }
    let sl = &sl[..sl_len];
    let sp_last = memchr::memrchr(b' ', sl).unwrap_or(sp1);
    if sp_last == sp1 {
        return Err(ParseError::StartLine(
            "expected Method SP Request-URI SP SIP-Version",
        ));
    }
    let method_s =
        std::str::from_utf8(&sl[..sp1]).map_err(|_| ParseError::StartLine("not UTF-8"))?;
    let method = Method::parse(method_s).ok_or(ParseError::StartLine("invalid method"))?;
    let version = &sl[sp_last + 1..];
    if version.len() < 5 || !version[..4].eq_ignore_ascii_case(b"SIP/") {
        return Err(ParseError::StartLine("not a SIP request"));
    }
    // Trim extra SPs around the URI for the lenient view; strictness is
    // recorded for validation.
    let mut us = sp1 + 1;
    let mut ue = sp_last;
    while us < ue && sl[us] == b' ' {
        us += 1;
    }
    while ue > us && sl[ue - 1] == b' ' {
        ue -= 1;
    }
    if us == ue {
        return Err(ParseError::StartLine("empty Request-URI"));
    }
    let uri = &sl[us..ue];
    let strict =
        us == sp1 + 1 && ue == sp_last && sl_len == full_len && !uri.iter().any(|&c| is_lws(c));
    Ok((
        StartLine::Request {
            method,
            uri: Span::new(base + us, base + ue),
        },
        Span::new(base + sp_last + 1, base + sl.len()),
        strict,
    ))
}

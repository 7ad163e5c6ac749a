//! Receiver-side validation (RFC 3261 §8.2, §16.3 step 1, §18.3;
//! RFC 4475; RFC 5118). The proxy core separately applies the §16.3 rules
//! that need configuration (416, 420, 482, 483).

use std::fmt;

use crate::ParseError;
use crate::header::HeaderName;
use crate::message::SipMessage;

/// Why a request must be refused, ready to become a response line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub code: u16,
    /// Reason phrase naming the problem (RFC 3261 §21.4.1).
    pub reason: String,
}

impl Rejection {
    fn bad(reason: impl fmt::Display) -> Rejection {
        Rejection {
            code: 400,
            reason: format!("Bad Request ({reason})"),
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code, self.reason)
    }
}

impl std::error::Error for Rejection {}

impl From<ParseError> for Rejection {
    fn from(e: ParseError) -> Self {
        Rejection::bad(e)
    }
}

/// Check a request as a receiving proxy must before acting on it.
pub fn validate_request(msg: &SipMessage) -> Result<(), Rejection> {
    let Some(method) = msg.method() else {
        return Err(Rejection::bad("not a request"));
    };
    // RFC 3261 §8.2.2 / RFC 4475 §3.1.2.16.
    if msg.version() != "SIP/2.0" {
        return Err(Rejection {
            code: 505,
            reason: "Version Not Supported".into(),
        });
    }
    if !msg.start_line_strict {
        return Err(Rejection::bad("malformed Request-Line"));
    }
    // RFC 3261 §7: the header block ends with an empty line; without it a
    // datagram was truncated (or a stream mis-framed).
    if !msg.head_terminated() {
        return Err(Rejection::bad(
            "header block not terminated by an empty line",
        ));
    }
    let ruri = msg
        .request_uri()
        .map_err(|e| Rejection::bad(format_args!("Request-URI: {e}")))?;
    // RFC 3261 §19.1.5 / RFC 4475 §3.1.2.11: headers are not allowed in a
    // Request-URI.
    if ruri.is_sip() && ruri.headers.is_some() {
        return Err(Rejection::bad("headers in Request-URI"));
    }
    // RFC 3261 §8.1.1: To, From, CSeq, Call-ID, Max-Forwards, Via.
    for h in [
        HeaderName::To,
        HeaderName::From,
        HeaderName::CallId,
        HeaderName::CSeq,
        HeaderName::Via,
    ] {
        if msg.header(h).is_none() {
            return Err(ParseError::MissingHeader(h).into());
        }
    }
    // RFC 3261 §7.3.1 / RFC 4475 §3.1.4.8-9: single-valued headers at most
    // once. One pass with a bitset over the (few dozen) known names.
    let mut seen = 0u64;
    for h in msg.headers.iter() {
        if h.name.is_single_valued() {
            let bit = 1u64 << (h.name as u32);
            if seen & bit != 0 {
                return Err(ParseError::MultipleValues(h.name).into());
            }
            seen |= bit;
        }
    }
    msg.to()?;
    msg.from()?;
    msg.call_id()?;
    let cseq = msg.cseq()?;
    // RFC 3261 §8.1.1.5; RFC 4475 §3.1.2.17/18.
    if &cseq.method != method {
        // RFC 4475 §3.1.2.18: for an unknown method 501 is preferred.
        if matches!(method, crate::Method::Other(_)) {
            return Err(Rejection {
                code: 501,
                reason: "Not Implemented (CSeq method does not match Request-Line)".into(),
            });
        }
        return Err(Rejection::bad("CSeq method does not match Request-Line"));
    }
    // The top Via is the one this element acts on (RFC 3261 §16.3 checks
    // what processing needs; §18.2.1 adds received/rport to it). Lower
    // values are only read by the elements that put them there.
    msg.top_via()?;
    if let Some(mf) = msg.max_forwards()?
        && mf > 255
    {
        return Err(Rejection::bad("Max-Forwards out of range"));
    }
    msg.expires()?;
    // Route, Record-Route and Path are not checked here: route
    // pre-processing (RFC 3261 §16.4) parses the top Route it acts on, and
    // the rest are copied verbatim and parsed by whoever uses them (UAs,
    // the registrar), each answering 400 itself if it cannot.
    // Contact: `*` alone, or name-addrs (RFC 3261 §20.10). Checked without
    // collecting, as this runs for every request.
    let (mut star, mut count) = (false, 0);
    for v in msg.header_values(HeaderName::Contact) {
        count += 1;
        if v == "*" {
            star = true;
        } else {
            crate::NameAddr::parse(v).map_err(|e| e.in_header(HeaderName::Contact))?;
        }
    }
    if star && count > 1 {
        return Err(Rejection::bad("Contact * mixed with other contacts"));
    }
    // RFC 3261 §20.17: the only time zone allowed is GMT (RFC 4475
    // §3.1.2.12).
    if let Some(date) = msg.header(HeaderName::Date)
        && !date.trim_end().ends_with(" GMT")
    {
        return Err(Rejection::bad("Date must be in GMT"));
    }
    // RFC 3261 §18.3: Content-Length larger than the bytes received.
    match msg.content_length()? {
        Some(n) if n > msg.raw_body_len() => {
            return Err(Rejection::bad("Content-Length exceeds message body"));
        }
        _ => {}
    }
    Ok(())
}

/// Check a response before matching it to a client transaction; invalid
/// responses are silently dropped (RFC 3261 §18.1.2).
pub fn validate_response(msg: &SipMessage) -> Result<(), ParseError> {
    if msg.is_request() {
        return Err(ParseError::StartLine("not a response"));
    }
    if msg.version() != "SIP/2.0" {
        return Err(ParseError::StartLine("unsupported version"));
    }
    if !msg.head_terminated() {
        return Err(ParseError::HeaderLine {
            line: msg.headers.len(),
        });
    }
    msg.top_via()?;
    for v in msg.vias() {
        v?;
    }
    msg.from()?;
    msg.to()?;
    msg.call_id()?;
    msg.cseq()?;
    if let Some(n) = msg.content_length()?
        && n > msg.raw_body_len()
    {
        return Err(ParseError::InvalidHeader {
            header: HeaderName::ContentLength,
            problem: "exceeds message body",
        });
    }
    Ok(())
}

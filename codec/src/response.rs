//! Messages the proxy originates from a request it holds: responses
//! (RFC 3261 §8.2.6), CANCEL (§9.1) and the hop-by-hop ACK for a non-2xx
//! final response (§17.1.1.3).

use std::io::Write as _;

use bytes::Bytes;

use crate::header::HeaderName;
use crate::message::SipMessage;
use crate::scan::CommaSplit;

/// Builder returned by [`response_to`].
#[derive(Debug)]
pub struct ResponseBuilder<'a> {
    req: &'a SipMessage,
    code: u16,
    reason: &'a str,
    to_tag: Option<String>,
    /// RFC 3581 §4 / RFC 3261 §18.2.1 for the top Via: `received`, `rport`.
    received: (Option<&'a str>, Option<u16>),
    extra: Vec<(String, String)>,
}

/// Start a response to `req` per RFC 3261 §8.2.6.2: the Via lines (in
/// order), From, To, Call-ID and CSeq are copied; `Content-Length: 0` is
/// written last.
pub fn response_to<'a>(req: &'a SipMessage, code: u16, reason: &'a str) -> ResponseBuilder<'a> {
    ResponseBuilder {
        req,
        code,
        reason,
        to_tag: None,
        received: (None, None),
        extra: Vec::new(),
    }
}

impl<'a> ResponseBuilder<'a> {
    /// Add `;tag=` to To unless the request's To already has one
    /// (RFC 3261 §8.2.6.2: in-dialog requests keep their tag).
    pub fn to_tag(mut self, tag: &str) -> Self {
        self.to_tag = Some(tag.to_owned());
        self
    }

    /// RFC 3261 §18.2.1 and RFC 3581 §4: the server transport stamps the
    /// request's top Via with the address it came from (`received`) and,
    /// when the client asked with an empty `rport`, the port; the response
    /// carries that Via back, so a client behind a NAT learns its public
    /// address (RFC 5626 §4.4.1 keepalives rely on it).
    pub fn received(mut self, received: Option<&'a str>, rport: Option<u16>) -> Self {
        self.received = (received, rport);
        self
    }

    /// Add an extra header line (e.g. Contact, Expires, Min-Expires,
    /// Unsupported, Retry-After, Timestamp).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.extra.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn build(self) -> Bytes {
        let req = self.req;
        let mut out = Vec::with_capacity(req.as_bytes().len().min(1024) + 128);
        // Reason phrases are TEXT-UTF8 without CR/LF (RFC 3261 §25.1).
        let reason: String = self
            .reason
            .chars()
            .filter(|c| *c != '\r' && *c != '\n')
            .collect();
        _ = write!(out, "SIP/2.0 {} {}\r\n", self.code, reason);
        match self.received {
            (None, None) => copy_lines(&mut out, req, HeaderName::Via),
            (received, rport) => {
                let mut vias = req.header_all(HeaderName::Via);
                if let Some(line) = vias.next() {
                    // The top Via is the line's first value (§7.3.1).
                    let first = CommaSplit::new(line).next().unwrap_or(line);
                    let start = first.as_ptr() as usize - line.as_ptr() as usize;
                    let end = start + first.len();
                    out.extend_from_slice(b"Via: ");
                    out.extend_from_slice(&line.as_bytes()[..start]);
                    stamp_via(&mut out, first, received, rport);
                    out.extend_from_slice(&line.as_bytes()[end..]);
                    out.extend_from_slice(b"\r\n");
                }
                for v in vias {
                    out.extend_from_slice(b"Via: ");
                    out.extend_from_slice(v.as_bytes());
                    out.extend_from_slice(b"\r\n");
                }
            }
        }
        copy_lines(&mut out, req, HeaderName::From);
        if let Some(to) = req.header(HeaderName::To) {
            out.extend_from_slice(b"To: ");
            out.extend_from_slice(to.as_bytes());
            if let Some(tag) = &self.to_tag {
                let has_tag = req.to_tag().ok().flatten().is_some();
                if !has_tag {
                    _ = write!(out, ";tag={tag}");
                }
            }
            out.extend_from_slice(b"\r\n");
        }
        copy_lines(&mut out, req, HeaderName::CallId);
        copy_lines(&mut out, req, HeaderName::CSeq);
        for (n, v) in &self.extra {
            _ = write!(out, "{n}: {v}\r\n");
        }
        out.extend_from_slice(b"Content-Length: 0\r\n\r\n");
        Bytes::from(out)
    }
}

/// `via` with `received=` set (an existing one replaced) and an empty
/// `rport` filled in; a Via without `rport` keeps none.
fn stamp_via(out: &mut Vec<u8>, via: &str, received: Option<&str>, rport: Option<u16>) {
    let mut params = via.split(';');
    out.extend_from_slice(params.next().unwrap_or_default().as_bytes());
    for param in params {
        let name = param.split('=').next().unwrap_or_default().trim();
        if received.is_some() && name.eq_ignore_ascii_case("received") {
            continue;
        }
        out.push(b';');
        match rport {
            Some(port) if param.trim().eq_ignore_ascii_case("rport") => {
                _ = write!(out, "rport={port}");
            }
            _ => out.extend_from_slice(param.as_bytes()),
        }
    }
    if let Some(received) = received {
        _ = write!(out, ";received={received}");
    }
}

/// Copy every line of `name` with its canonical name and raw value.
fn copy_lines(out: &mut Vec<u8>, msg: &SipMessage, name: HeaderName) {
    for v in msg.header_all(name) {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
}

fn cseq_number(msg: &SipMessage) -> u32 {
    msg.cseq().map(|c| c.seq).unwrap_or(0)
}

/// Request line, top Via only, Max-Forwards 70, From, `to` value, Call-ID,
/// CSeq `<n> method`, the request's Route lines.
fn hop_request(fwd: &SipMessage, method: &str, to: Option<&str>) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    let uri = fwd.request_uri_str().unwrap_or("");
    _ = write!(out, "{method} {uri} SIP/2.0\r\n");
    if let Some(top) = fwd
        .header(HeaderName::Via)
        .and_then(|v| CommaSplit::new(v).next())
    {
        _ = write!(out, "Via: {top}\r\n");
    }
    out.extend_from_slice(b"Max-Forwards: 70\r\n");
    copy_lines(&mut out, fwd, HeaderName::From);
    if let Some(to) = to.or_else(|| fwd.header(HeaderName::To)) {
        _ = write!(out, "To: {to}\r\n");
    }
    copy_lines(&mut out, fwd, HeaderName::CallId);
    _ = write!(out, "CSeq: {} {method}\r\n", cseq_number(fwd));
    copy_lines(&mut out, fwd, HeaderName::Route);
    out.extend_from_slice(b"Content-Length: 0\r\n\r\n");
    out
}

/// CANCEL for a request this element sent (RFC 3261 §9.1): same
/// Request-URI, Call-ID, From, To and CSeq number, method CANCEL, only the
/// top Via (so the branch matches), the same Route headers.
pub fn build_cancel(forwarded_request: &SipMessage) -> Bytes {
    Bytes::from(hop_request(forwarded_request, "CANCEL", None))
}

/// ACK for a non-2xx final response to an INVITE this element sent
/// (RFC 3261 §17.1.1.3): like the INVITE (Request-URI, Call-ID, From, CSeq
/// number, top Via, Route) but with To taken from the response (it carries
/// the UAS tag) and method ACK.
pub fn build_ack_for_non2xx(forwarded_request: &SipMessage, response: &SipMessage) -> Bytes {
    Bytes::from(hop_request(
        forwarded_request,
        "ACK",
        response.header(HeaderName::To),
    ))
}

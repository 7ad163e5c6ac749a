//! [`SipMessage`]: one structural pass over the received bytes that records
//! where the start line, each header line and the body are. Everything else
//! (Via, To, CSeq, ...) is parsed lazily from those offsets, so a proxy pays
//! only for the headers it actually reads (RFC 3261 §16.3 reads few).

use std::fmt;

use bytes::Bytes;

use crate::ParseError;
use crate::header::{HeaderName, HeaderRef};
use crate::method::Method;
use crate::name_addr::{Contacts, NameAddr};
use crate::scan::{CommaSplit, is_lws, parse_u32, trim_lws};
use crate::uri::Uri;
use crate::via::Via;

/// Byte range `[start, end)` into the message buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Span {
    pub(crate) start: u32,
    pub(crate) end: u32,
}

impl Span {
    pub(crate) fn new(start: usize, end: usize) -> Span {
        Span {
            start: start as u32,
            end: end as u32,
        }
    }
    pub(crate) fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }
}

/// One header line, continuation lines included.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HeaderSpan {
    pub(crate) name: HeaderName,
    pub(crate) raw_name: Span,
    /// Value, LWS-trimmed at both ends.
    pub(crate) value: Span,
    /// Whole line(s) including the final line terminator.
    pub(crate) line: Span,
}

#[derive(Debug, Clone)]
pub(crate) enum StartLine {
    Request { method: Method, uri: Span },
    Response { status: u16, reason: Span },
}

/// CSeq value (RFC 3261 §20.16).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CSeq {
    pub seq: u32,
    pub method: Method,
}

/// A parsed SIP request or response. Cheap to clone (the buffer is
/// reference-counted); all accessors borrow from it.
#[derive(Clone)]
pub struct SipMessage {
    pub(crate) buf: Bytes,
    pub(crate) start: StartLine,
    pub(crate) version: Span,
    /// The start line without its terminator.
    pub(crate) start_line: Span,
    /// True when the start line has exactly single-SP separators
    /// (RFC 3261 §7.1; RFC 4475 §3.1.2.9/§3.1.2.10 test this).
    pub(crate) start_line_strict: bool,
    pub(crate) headers: Vec<HeaderSpan>,
    /// Offset of the first header line (where the first line is inserted).
    pub(crate) headers_start: u32,
    /// Offset just past the last header line (where headers are appended).
    pub(crate) headers_end: u32,
    pub(crate) body_start: u32,
}

impl SipMessage {
    /// Text of a span inside the head.
    #[inline]
    pub(crate) fn text(&self, s: Span) -> &str {
        let bytes = &self.buf[s.range()];
        debug_assert!(std::str::from_utf8(bytes).is_ok());
        // SAFETY: `parse` verified that the whole head (start line and
        // header block) is UTF-8, and every span lies inside the head with
        // both ends next to ASCII delimiters (SP, HTAB, CR, LF, ':'), so each
        // span is itself valid UTF-8. This is the one place the codec relies
        // on that invariant; it saves re-validating on every accessor call.
        unsafe { std::str::from_utf8_unchecked(bytes) }
    }

    /// The whole message as received.
    pub fn as_bytes(&self) -> &Bytes {
        &self.buf
    }

    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request { .. })
    }

    /// Request method (requests only).
    pub fn method(&self) -> Option<&Method> {
        match &self.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    /// Request-URI text as written (requests only).
    pub fn request_uri_str(&self) -> Option<&str> {
        match self.start {
            StartLine::Request { uri, .. } => Some(self.text(uri)),
            StartLine::Response { .. } => None,
        }
    }

    /// Parsed Request-URI.
    pub fn request_uri(&self) -> Result<Uri<'_>, ParseError> {
        let s = self
            .request_uri_str()
            .ok_or(ParseError::StartLine("not a request"))?;
        Uri::parse(s)
    }

    /// Status code (responses only).
    pub fn status(&self) -> Option<u16> {
        match self.start {
            StartLine::Response { status, .. } => Some(status),
            StartLine::Request { .. } => None,
        }
    }

    /// Reason phrase (responses only; may be empty).
    pub fn reason(&self) -> Option<&str> {
        match self.start {
            StartLine::Response { reason, .. } => Some(self.text(reason)),
            StartLine::Request { .. } => None,
        }
    }

    /// Protocol version from the start line, e.g. `SIP/2.0`.
    pub fn version(&self) -> &str {
        self.text(self.version)
    }

    /// The start line without its line terminator.
    pub fn start_line(&self) -> &str {
        self.text(self.start_line)
    }

    /// Every header line in order.
    pub fn headers(&self) -> impl Iterator<Item = HeaderRef<'_>> {
        self.headers.iter().map(|h| HeaderRef {
            name: h.name,
            raw_name: self.text(h.raw_name),
            value: self.text(h.value),
        })
    }

    /// Raw values of every line of `name`.
    pub fn header_all(&self, name: HeaderName) -> impl Iterator<Item = &str> {
        self.headers
            .iter()
            .filter(move |h| h.name == name)
            .map(|h| self.text(h.value))
    }

    /// Raw value of the first line of `name`.
    pub fn header(&self, name: HeaderName) -> Option<&str> {
        self.header_all(name).next()
    }

    /// Raw value of the first header whose name matches `raw_name`
    /// case-insensitively (for extension headers).
    pub fn header_by_name(&self, raw_name: &str) -> Option<&str> {
        let wanted = HeaderName::parse(raw_name);
        self.headers()
            .find(|h| {
                if wanted == HeaderName::Other {
                    h.raw_name.eq_ignore_ascii_case(raw_name)
                } else {
                    h.name == wanted
                }
            })
            .map(|h| h.value)
    }

    /// All values of `name` over all its lines, split at top-level commas
    /// (RFC 3261 §7.3.1; quote- and `<>`-aware), except the lines of
    /// WWW-Authenticate, Authorization and the Proxy- pair, each one value.
    pub fn header_values(&self, name: HeaderName) -> impl Iterator<Item = &str> {
        // Credentials and challenges: the line is the value (§7.3.1).
        let split = match name.is_one_value_per_line() {
            true => CommaSplit::whole,
            false => CommaSplit::new,
        };
        self.header_all(name).flat_map(split)
    }

    /// Number of lines carrying `name`.
    pub fn header_count(&self, name: HeaderName) -> usize {
        self.headers.iter().filter(|h| h.name == name).count()
    }

    fn required(&self, name: HeaderName) -> Result<&str, ParseError> {
        self.header(name).ok_or(ParseError::MissingHeader(name))
    }

    /// First Via value.
    pub fn top_via(&self) -> Result<Via<'_>, ParseError> {
        self.vias()
            .next()
            .unwrap_or(Err(ParseError::MissingHeader(HeaderName::Via)))
    }

    /// Every Via value, top first.
    pub fn vias(&self) -> impl Iterator<Item = Result<Via<'_>, ParseError>> {
        self.header_values(HeaderName::Via)
            .map(|v| Via::parse(v).map_err(|e| e.in_header(HeaderName::Via)))
    }

    pub fn from(&self) -> Result<NameAddr<'_>, ParseError> {
        self.name_addr(HeaderName::From)
    }

    pub fn to(&self) -> Result<NameAddr<'_>, ParseError> {
        self.name_addr(HeaderName::To)
    }

    /// The From tag, without parsing the From URI (see
    /// [`NameAddr::params_only`]): for a message already validated.
    pub fn from_tag(&self) -> Result<Option<&str>, ParseError> {
        self.header_tag(HeaderName::From)
    }

    /// The To tag, without parsing the To URI (see
    /// [`NameAddr::params_only`]): for a message already validated.
    pub fn to_tag(&self) -> Result<Option<&str>, ParseError> {
        self.header_tag(HeaderName::To)
    }

    fn header_tag(&self, name: HeaderName) -> Result<Option<&str>, ParseError> {
        let params = NameAddr::params_only(self.required(name)?).map_err(|e| e.in_header(name))?;
        Ok(params.get("tag").flatten())
    }

    fn name_addr(&self, name: HeaderName) -> Result<NameAddr<'_>, ParseError> {
        NameAddr::parse(self.required(name)?).map_err(|e| e.in_header(name))
    }

    /// Call-ID: `word [ "@" word ]` (RFC 3261 §20.8), no whitespace.
    pub fn call_id(&self) -> Result<&str, ParseError> {
        let v = trim_lws(self.required(HeaderName::CallId)?);
        // No whitespace or controls (LWS is all <= SP): a check that vectorises.
        if v.is_empty() || v.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(ParseError::InvalidHeader {
                header: HeaderName::CallId,
                problem: "empty or contains whitespace",
            });
        }
        Ok(v)
    }

    /// CSeq: `1*DIGIT LWS Method`; the number must be below 2**31
    /// (RFC 3261 §8.1.1.5).
    pub fn cseq(&self) -> Result<CSeq, ParseError> {
        let v = trim_lws(self.required(HeaderName::CSeq)?);
        let bad = |problem| ParseError::InvalidHeader {
            header: HeaderName::CSeq,
            problem,
        };
        let sp = v.bytes().position(is_lws).ok_or(bad("missing method"))?;
        let seq = parse_u32(&v[..sp])
            .filter(|&n| n < 1 << 31)
            .ok_or(bad("sequence number out of range"))?;
        let method = Method::parse(trim_lws(&v[sp..])).ok_or(bad("invalid method"))?;
        Ok(CSeq { seq, method })
    }

    fn scalar(&self, name: HeaderName) -> Result<Option<u32>, ParseError> {
        match self.header(name) {
            None => Ok(None),
            Some(v) => parse_u32(trim_lws(v))
                .map(Some)
                .ok_or(ParseError::InvalidHeader {
                    header: name,
                    problem: "not a number or out of range",
                }),
        }
    }

    /// Max-Forwards (RFC 3261 §20.22); `None` when absent.
    pub fn max_forwards(&self) -> Result<Option<u32>, ParseError> {
        self.scalar(HeaderName::MaxForwards)
    }

    /// Expires header (RFC 3261 §20.19); `None` when absent.
    pub fn expires(&self) -> Result<Option<u32>, ParseError> {
        self.scalar(HeaderName::Expires)
    }

    /// Min-Expires header; `None` when absent.
    pub fn min_expires(&self) -> Result<Option<u32>, ParseError> {
        self.scalar(HeaderName::MinExpires)
    }

    /// Content-Length (RFC 3261 §20.14); `None` when absent.
    pub fn content_length(&self) -> Result<Option<usize>, ParseError> {
        self.scalar(HeaderName::ContentLength)
            .map(|o| o.map(|n| n as usize))
    }

    /// Contact values, or `*` (RFC 3261 §10.2.2).
    pub fn contacts(&self) -> Result<Contacts<'_>, ParseError> {
        let mut values = self.header_values(HeaderName::Contact).peekable();
        if values.peek() == Some(&"*") {
            values.next();
            if values.next().is_some() {
                return Err(ParseError::InvalidHeader {
                    header: HeaderName::Contact,
                    problem: "* mixed with other contacts",
                });
            }
            return Ok(Contacts::Star);
        }
        values
            .map(|v| NameAddr::parse(v).map_err(|e| e.in_header(HeaderName::Contact)))
            .collect::<Result<_, _>>()
            .map(Contacts::List)
    }

    fn addr_list(&self, name: HeaderName) -> Result<Vec<NameAddr<'_>>, ParseError> {
        self.header_values(name)
            .map(|v| NameAddr::parse(v).map_err(|e| e.in_header(name)))
            .collect()
    }

    pub fn routes(&self) -> Result<Vec<NameAddr<'_>>, ParseError> {
        self.addr_list(HeaderName::Route)
    }

    pub fn record_routes(&self) -> Result<Vec<NameAddr<'_>>, ParseError> {
        self.addr_list(HeaderName::RecordRoute)
    }

    pub fn paths(&self) -> Result<Vec<NameAddr<'_>>, ParseError> {
        self.addr_list(HeaderName::Path)
    }

    /// First Route value without collecting the rest (the hot path of
    /// RFC 3261 §16.4 route pre-processing).
    pub fn top_route(&self) -> Option<Result<NameAddr<'_>, ParseError>> {
        self.header_values(HeaderName::Route)
            .next()
            .map(|v| NameAddr::parse(v).map_err(|e| e.in_header(HeaderName::Route)))
    }

    /// Option tags of Supported / Require / Proxy-Require / Unsupported.
    pub fn option_tags(&self, name: HeaderName) -> impl Iterator<Item = &str> {
        self.header_values(name).filter(|t| !t.is_empty())
    }

    /// The body: per Content-Length when it fits (extra datagram bytes are
    /// ignored, RFC 3261 §18.3), else everything after the blank line.
    pub fn body(&self) -> &[u8] {
        &self.buf[self.body_range()]
    }

    /// The body as a zero-copy `Bytes`.
    pub fn body_bytes(&self) -> Bytes {
        self.buf.slice(self.body_range())
    }

    fn body_range(&self) -> std::ops::Range<usize> {
        let start = self.body_start as usize;
        let avail = self.buf.len() - start;
        let len = match self.content_length() {
            Ok(Some(n)) if n <= avail => n,
            _ => avail,
        };
        start..start + len
    }

    /// End of the message proper: extra datagram bytes after the body
    /// announced by Content-Length are not part of it (RFC 3261 §18.3,
    /// RFC 4475 §3.1.1.8), so a forwarded copy must not carry them.
    pub(crate) fn message_end(&self) -> usize {
        self.body_range().end
    }

    /// True when the header block ends with the empty line RFC 3261 §7
    /// requires (false when the buffer simply runs out).
    pub fn head_terminated(&self) -> bool {
        self.body_start > self.headers_end
    }

    /// Bytes after the blank line, whatever Content-Length says.
    pub(crate) fn raw_body_len(&self) -> usize {
        self.buf.len() - self.body_start as usize
    }

    /// Start editing by splicing (see [`crate::Editor`]).
    pub fn edit(&self) -> crate::Editor<'_> {
        crate::Editor::new(self)
    }
}

impl fmt::Debug for SipMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SipMessage")
            .field("start_line", &self.start_line())
            .field("headers", &self.headers.len())
            .field("body_len", &self.body().len())
            .finish()
    }
}

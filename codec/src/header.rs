//! Header field names: canonical forms, compact forms (RFC 3261 §7.3.3)
//! and case-insensitive classification.

use std::fmt;

/// The headers the proxy, registrar and transaction layer look at. Every
/// other header is [`HeaderName::Other`]; its spelling is kept in
/// [`HeaderRef::raw_name`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HeaderName {
    Via,
    From,
    To,
    CallId,
    CSeq,
    Contact,
    MaxForwards,
    /// RFC 5393.
    MaxBreadth,
    Route,
    RecordRoute,
    Path,
    Expires,
    MinExpires,
    ContentLength,
    ContentType,
    Supported,
    Require,
    ProxyRequire,
    Unsupported,
    UserAgent,
    Server,
    Allow,
    Date,
    RetryAfter,
    /// Needed for `100 Trying` (RFC 3261 §8.2.6.1).
    Timestamp,
    Subject,
    ContentEncoding,
    Event,
    ReferTo,
    AllowEvents,
    Authorization,
    ProxyAuthorization,
    WwwAuthenticate,
    ProxyAuthenticate,
    Accept,
    Other,
}

impl HeaderName {
    /// Canonical spelling (`""` for [`HeaderName::Other`]).
    pub fn as_str(self) -> &'static str {
        use HeaderName::*;
        match self {
            Via => "Via",
            From => "From",
            To => "To",
            CallId => "Call-ID",
            CSeq => "CSeq",
            Contact => "Contact",
            MaxForwards => "Max-Forwards",
            MaxBreadth => "Max-Breadth",
            Route => "Route",
            RecordRoute => "Record-Route",
            Path => "Path",
            Expires => "Expires",
            MinExpires => "Min-Expires",
            ContentLength => "Content-Length",
            ContentType => "Content-Type",
            Supported => "Supported",
            Require => "Require",
            ProxyRequire => "Proxy-Require",
            Unsupported => "Unsupported",
            UserAgent => "User-Agent",
            Server => "Server",
            Allow => "Allow",
            Date => "Date",
            RetryAfter => "Retry-After",
            Timestamp => "Timestamp",
            Subject => "Subject",
            ContentEncoding => "Content-Encoding",
            Event => "Event",
            ReferTo => "Refer-To",
            AllowEvents => "Allow-Events",
            Authorization => "Authorization",
            ProxyAuthorization => "Proxy-Authorization",
            WwwAuthenticate => "WWW-Authenticate",
            ProxyAuthenticate => "Proxy-Authenticate",
            Accept => "Accept",
            Other => "",
        }
    }

    /// Classify a header field name: case-insensitive, compact forms
    /// included (RFC 3261 §7.3.3, RFC 3265, RFC 3515, RFC 3841, RFC 4028).
    pub fn parse(name: &str) -> HeaderName {
        HeaderName::from_bytes(name.as_bytes())
    }

    /// [`HeaderName::parse`] on raw bytes. Dispatches on length first so
    /// that at most a handful of case-insensitive comparisons run.
    pub fn from_bytes(b: &[u8]) -> HeaderName {
        use HeaderName::*;
        if b.len() == 1 {
            return match b[0].to_ascii_lowercase() {
                b'v' => Via,
                b'f' => From,
                b't' => To,
                b'i' => CallId,
                b'm' => Contact,
                b'l' => ContentLength,
                b'c' => ContentType,
                b'k' => Supported,
                b's' => Subject,
                b'e' => ContentEncoding,
                b'o' => Event,
                b'r' => ReferTo,
                b'u' => AllowEvents,
                _ => Other,
            };
        }
        let candidates: &[(&[u8], HeaderName)] = match b.len() {
            2 => &[(b"to", To)],
            3 => &[(b"via", Via)],
            4 => &[
                (b"from", From),
                (b"cseq", CSeq),
                (b"path", Path),
                (b"date", Date),
            ],
            5 => &[(b"route", Route), (b"allow", Allow), (b"event", Event)],
            6 => &[(b"server", Server), (b"accept", Accept)],
            7 => &[
                (b"call-id", CallId),
                (b"contact", Contact),
                (b"expires", Expires),
                (b"require", Require),
                (b"subject", Subject),
            ],
            8 => &[(b"refer-to", ReferTo)],
            9 => &[(b"supported", Supported), (b"timestamp", Timestamp)],
            10 => &[(b"user-agent", UserAgent)],
            11 => &[
                (b"min-expires", MinExpires),
                (b"unsupported", Unsupported),
                (b"retry-after", RetryAfter),
                (b"max-breadth", MaxBreadth),
            ],
            12 => &[
                (b"max-forwards", MaxForwards),
                (b"record-route", RecordRoute),
                (b"content-type", ContentType),
                (b"allow-events", AllowEvents),
            ],
            13 => &[
                (b"proxy-require", ProxyRequire),
                (b"authorization", Authorization),
            ],
            14 => &[(b"content-length", ContentLength)],
            16 => &[
                (b"content-encoding", ContentEncoding),
                (b"www-authenticate", WwwAuthenticate),
            ],
            18 => &[(b"proxy-authenticate", ProxyAuthenticate)],
            19 => &[(b"proxy-authorization", ProxyAuthorization)],
            _ => return Other,
        };
        // Candidates are lowercase letters and '-': OR-ing 0x20 folds ASCII
        // case, and no other token byte folds onto those (CR would fold onto
        // '-', but a name never holds CR).
        candidates
            .iter()
            .find(|(n, _)| b.iter().zip(n.iter()).all(|(x, y)| x | 0x20 == *y))
            .map_or(Other, |&(_, h)| h)
    }

    /// The credentials and challenges of RFC 3261 §7.3.1's exception: one
    /// value per line, whose commas separate parameters, not values.
    pub fn is_one_value_per_line(self) -> bool {
        use HeaderName::*;
        matches!(
            self,
            WwwAuthenticate | Authorization | ProxyAuthenticate | ProxyAuthorization
        )
    }

    /// Headers that RFC 3261 §7.3.1 allows to be split over several lines
    /// or combined with commas. Used by validation to spot duplicates of
    /// single-valued headers.
    pub(crate) fn is_single_valued(self) -> bool {
        use HeaderName::*;
        matches!(
            self,
            From | To
                | CallId
                | CSeq
                | MaxForwards
                | MaxBreadth
                | Expires
                | MinExpires
                | ContentLength
                | ContentType
                | ContentEncoding
                | Date
                | RetryAfter
                | Timestamp
                | Subject
                | UserAgent
                | Server
        )
    }
}

impl fmt::Display for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderName::Other => f.write_str("extension"),
            h => f.write_str(h.as_str()),
        }
    }
}

/// One header line as it appears in the message (folding included in
/// `value`; use the typed accessors for parsed views).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderRef<'a> {
    /// Classified name.
    pub name: HeaderName,
    /// Name exactly as written (e.g. `v`, `VIA`).
    pub raw_name: &'a str,
    /// Value with leading and trailing whitespace removed; continuation
    /// lines (CRLF + WSP) are kept and treated as LWS by every parser.
    pub value: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_and_case_insensitive() {
        assert_eq!(HeaderName::parse("v"), HeaderName::Via);
        assert_eq!(HeaderName::parse("V"), HeaderName::Via);
        assert_eq!(HeaderName::parse("vIA"), HeaderName::Via);
        assert_eq!(HeaderName::parse("i"), HeaderName::CallId);
        assert_eq!(HeaderName::parse("CALL-ID"), HeaderName::CallId);
        assert_eq!(HeaderName::parse("l"), HeaderName::ContentLength);
        assert_eq!(HeaderName::parse("m"), HeaderName::Contact);
        assert_eq!(HeaderName::parse("k"), HeaderName::Supported);
        assert_eq!(HeaderName::parse("X-Foo"), HeaderName::Other);
        assert_eq!(
            HeaderName::parse("a-very-long-extension-header-name"),
            HeaderName::Other
        );
        assert_eq!(HeaderName::MaxForwards.as_str(), "Max-Forwards");
    }
}

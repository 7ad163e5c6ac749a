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
        let b = name.as_bytes();
        if b.len() == 1 {
            return match b[0].to_ascii_lowercase() {
                b'v' => HeaderName::Via,
                b'f' => HeaderName::From,
                b't' => HeaderName::To,
                b'i' => HeaderName::CallId,
                b'm' => HeaderName::Contact,
                b'l' => HeaderName::ContentLength,
                b'c' => HeaderName::ContentType,
                b'k' => HeaderName::Supported,
                b's' => HeaderName::Subject,
                b'e' => HeaderName::ContentEncoding,
                b'o' => HeaderName::Event,
                b'r' => HeaderName::ReferTo,
                b'u' => HeaderName::AllowEvents,
                _ => HeaderName::Other,
            };
        }
        let mut lower = [0u8; 20];
        if b.len() > lower.len() {
            return HeaderName::Other;
        }
        for (d, s) in lower.iter_mut().zip(b) {
            *d = s.to_ascii_lowercase();
        }
        use HeaderName::*;
        match &lower[..b.len()] {
            b"via" => Via,
            b"from" => From,
            b"to" => To,
            b"call-id" => CallId,
            b"cseq" => CSeq,
            b"contact" => Contact,
            b"max-forwards" => MaxForwards,
            b"route" => Route,
            b"record-route" => RecordRoute,
            b"path" => Path,
            b"expires" => Expires,
            b"min-expires" => MinExpires,
            b"content-length" => ContentLength,
            b"content-type" => ContentType,
            b"supported" => Supported,
            b"require" => Require,
            b"proxy-require" => ProxyRequire,
            b"unsupported" => Unsupported,
            b"user-agent" => UserAgent,
            b"server" => Server,
            b"allow" => Allow,
            b"date" => Date,
            b"retry-after" => RetryAfter,
            b"timestamp" => Timestamp,
            b"subject" => Subject,
            b"content-encoding" => ContentEncoding,
            b"event" => Event,
            b"refer-to" => ReferTo,
            b"allow-events" => AllowEvents,
            b"authorization" => Authorization,
            b"proxy-authorization" => ProxyAuthorization,
            b"www-authenticate" => WwwAuthenticate,
            b"proxy-authenticate" => ProxyAuthenticate,
            b"accept" => Accept,
            _ => Other,
        }
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

//! A SIP message as bytes, parsed by `switchyard-codec` on first use.

use std::cell::OnceCell;
use std::fmt;

use switchyard_codec::{Bytes, HeaderName, NameAddr, SipMessage, Uri};

/// A SIP request or response as the host passed it: the raw bytes, parsed
/// lazily (once, on the first accessor that needs it) with
/// [`switchyard_codec::SipMessage::parse`].
///
/// The host validated the message before calling the hook, so parsing
/// fails only for bytes a test made up; accessors then return `None`.
pub struct Message {
    bytes: Bytes,
    parsed: OnceCell<Option<SipMessage>>,
}

impl Message {
    /// Wraps message bytes without parsing them.
    pub fn new(bytes: impl Into<Bytes>) -> Self {
        Message {
            bytes: bytes.into(),
            parsed: OnceCell::new(),
        }
    }

    /// The message exactly as received (start line, headers and body).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The parsed message (parsed on the first call), for everything the
    /// shortcuts below do not cover: Via, Contact, Route, body, ...
    pub fn sip(&self) -> Option<&SipMessage> {
        self.parsed
            .get_or_init(|| SipMessage::parse(self.bytes.clone()).ok())
            .as_ref()
    }

    /// Value of the first header field called `name` (case-insensitive,
    /// compact forms understood: `f` finds `From`), without the name and
    /// colon and with surrounding whitespace trimmed.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.sip()?.header_by_name(name)
    }

    /// Values of every header field called `name`, one per line, in order.
    /// Comma-separated values on one line are not split (use
    /// [`SipMessage::header_values`] via [`Message::sip`] for the
    /// headers RFC 3261 §7.3.1 allows to be combined).
    pub fn headers<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        let wanted = HeaderName::parse(name);
        self.sip()
            .into_iter()
            .flat_map(SipMessage::headers)
            .filter(move |h| {
                if wanted == HeaderName::Other {
                    h.name == HeaderName::Other && h.raw_name.eq_ignore_ascii_case(name)
                } else {
                    h.name == wanted
                }
            })
            .map(|h| h.value)
    }

    /// The From header, parsed.
    pub fn from(&self) -> Option<NameAddr<'_>> {
        self.sip()?.from().ok()
    }

    /// The To header, parsed.
    pub fn to(&self) -> Option<NameAddr<'_>> {
        self.sip()?.to().ok()
    }

    /// The From URI, e.g. `sip:alice@example.com`.
    pub fn from_uri(&self) -> Option<Uri<'_>> {
        self.from().map(|f| f.uri)
    }

    /// The To URI.
    pub fn to_uri(&self) -> Option<Uri<'_>> {
        self.to().map(|t| t.uri)
    }

    /// The user part of the From URI (the number of a `tel:` URI).
    pub fn from_user(&self) -> Option<&str> {
        self.from_uri().and_then(|u| uri_user(&u))
    }

    /// The user part of the To URI (the number of a `tel:` URI).
    pub fn to_user(&self) -> Option<&str> {
        self.to_uri().and_then(|u| uri_user(&u))
    }

    /// The Call-ID.
    pub fn call_id(&self) -> Option<&str> {
        self.sip()?.call_id().ok()
    }

    /// The status code of a response.
    pub fn status(&self) -> Option<u16> {
        self.sip()?.status()
    }

    /// The Request-URI of a request, parsed.
    pub fn request_uri(&self) -> Option<Uri<'_>> {
        self.sip()?.request_uri().ok()
    }

    /// The body (per Content-Length).
    pub fn body(&self) -> &[u8] {
        match self.sip() {
            Some(m) => m.body(),
            None => &[],
        }
    }
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let head = self.bytes.split(|&b| b == b'\n').next().unwrap_or(&[]);
        f.debug_struct("Message")
            .field("start_line", &String::from_utf8_lossy(head).trim_end())
            .field("len", &self.bytes.len())
            .finish()
    }
}

/// The user part of a SIP/SIPS URI or the number of a `tel:` URI.
pub(crate) fn uri_user<'a>(uri: &Uri<'a>) -> Option<&'a str> {
    match uri.scheme {
        switchyard_codec::Scheme::Tel => match uri.host {
            switchyard_codec::Host::Domain(number) => Some(number),
            _ => None,
        },
        _ => uri.user,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &str = "INVITE sip:101@acme.test SIP/2.0\r\n\
        Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-1\r\n\
        f: \"Alice\" <sip:alice@acme.test>;tag=a1\r\n\
        To: <tel:+15551234>\r\n\
        Call-ID: c1@192.0.2.1\r\n\
        CSeq: 1 INVITE\r\n\
        X-Tag: one\r\n\
        x-tag: two, three\r\n\
        Content-Length: 0\r\n\r\n";

    #[test]
    fn lazy_accessors() {
        let m = Message::new(INVITE.as_bytes().to_vec());
        assert!(m.parsed.get().is_none());
        assert_eq!(m.from_user(), Some("alice"));
        assert_eq!(m.to_user(), Some("+15551234"));
        assert_eq!(
            m.header("from"),
            Some("\"Alice\" <sip:alice@acme.test>;tag=a1")
        );
        assert_eq!(m.header("X-TAG"), Some("one"));
        assert_eq!(
            m.headers("x-tag").collect::<Vec<_>>(),
            ["one", "two, three"]
        );
        assert_eq!(m.headers("Call-ID").count(), 1);
        assert_eq!(m.call_id(), Some("c1@192.0.2.1"));
        assert_eq!(m.request_uri().and_then(|u| u.user), Some("101"));
        assert_eq!(m.status(), None);
    }

    #[test]
    fn garbage_gives_none() {
        let m = Message::new(b"\xff\xfe not sip".to_vec());
        assert!(m.sip().is_none());
        assert_eq!(m.header("From"), None);
        assert_eq!(m.headers("From").count(), 0);
        assert!(m.body().is_empty());
    }
}

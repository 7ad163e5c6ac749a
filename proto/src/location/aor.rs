//! Canonical address-of-record (RFC 3261 §10.3 step 5).

use std::fmt;
use std::sync::Arc;

use switchyard_codec::{Scheme, Uri};

/// An address-of-record in canonical form: `user@host` (or just `host` for a
/// user-less URI), with the host lowercased, the user case-preserved and
/// percent-escapes in the user decoded, scheme, port, parameters and headers
/// removed.
///
/// RFC 3261 §10.3 step 5 canonicalises the To URI to `sip:user@domain`;
/// §19.1.4 makes the host case-insensitive, the user case-sensitive and
/// escaped characters equal to their unescaped form, so two spellings of the
/// same AOR compare equal here. `sips:` and `sip:` map to the same AOR (a
/// registration over TLS is still a registration of that user).
///
/// Cheap to clone (`Arc<str>`): the embedded store keeps it both as map key and
/// in its expiry index. The tenant is derived from [`Aor::domain`] by the caller.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Aor(Arc<str>);

/// Why a string or URI is not usable as an address-of-record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AorError {
    #[error("address-of-record has no host")]
    MissingHost,
    #[error("address-of-record must be a sip: or sips: URI, got scheme {0:?}")]
    UnsupportedScheme(String),
}

impl Aor {
    /// Builds the canonical AOR from a user part (raw, possibly escaped) and a
    /// host (a domain, an IPv4 address or a bracketed IPv6 reference).
    pub fn new(user: Option<&str>, host: &str) -> Result<Aor, AorError> {
        if host.is_empty() {
            return Err(AorError::MissingHost);
        }
        let user = user.filter(|u| !u.is_empty()).map(percent_decode);
        let mut text = String::with_capacity(user.as_ref().map_or(0, |u| u.len() + 1) + host.len());
        if let Some(user) = user {
            text.push_str(&user);
            text.push('@');
        }
        let start = text.len();
        text.push_str(host);
        text[start..].make_ascii_lowercase();
        Ok(Aor(text.into()))
    }

    /// The AOR of a `sip:`/`sips:` URI, typically the To URI of a REGISTER
    /// (RFC 3261 §10.3 step 5).
    pub fn from_uri(uri: &Uri<'_>) -> Result<Aor, AorError> {
        match uri.scheme {
            Scheme::Sip | Scheme::Sips => Aor::new(uri.user, &uri.host.to_string()),
            _ => {
                let scheme = uri.raw.split(':').next().unwrap_or_default();
                Err(AorError::UnsupportedScheme(scheme.to_owned()))
            }
        }
    }

    /// Parses `user@host`, optionally with a `sip:`/`sips:` scheme, password,
    /// port, parameters and headers (all of which are dropped).
    pub fn parse(text: &str) -> Result<Aor, AorError> {
        let text = text.trim();
        let text = text
            .strip_prefix('<')
            .and_then(|t| t.strip_suffix('>'))
            .unwrap_or(text);
        let rest = match text.split_once(':') {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("sip") => rest,
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("sips") => rest,
            Some((scheme, rest))
                if scheme
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
                    && !rest.bytes().all(|b| b.is_ascii_digit()) =>
            {
                // Not `host:port` (digits after the colon), so a scheme we do
                // not register (tel:, mailto:, ...).
                return Err(AorError::UnsupportedScheme(scheme.to_owned()));
            }
            _ => text,
        };
        // Parameters and headers follow the hostport (RFC 3261 §25.1).
        let rest = rest.split([';', '?']).next().unwrap_or_default();
        let (user, hostport) = match rest.split_once('@') {
            Some((userinfo, hostport)) => {
                let user = userinfo.split(':').next().unwrap_or_default();
                (Some(user), hostport)
            }
            None => (None, rest),
        };
        Aor::new(user, strip_port(hostport))
    }

    /// The canonical text, `user@host`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The user part, if any (unescaped, case preserved).
    pub fn user(&self) -> Option<&str> {
        self.0.rsplit_once('@').map(|(user, _)| user)
    }

    /// The lowercased host part: the SIP domain the tenant is derived from.
    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map_or(&self.0, |(_, host)| host)
    }

    /// The AOR as a `sip:` URI, e.g. for a To header.
    pub fn to_uri(&self) -> String {
        format!("sip:{}", self.0)
    }
}

impl fmt::Display for Aor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Aor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Aor({:?})", &*self.0)
    }
}

impl std::str::FromStr for Aor {
    type Err = AorError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Aor::parse(s)
    }
}

/// `host:port` → `host`, keeping IPv6 references (`[::1]:5060`) intact.
fn strip_port(hostport: &str) -> &str {
    if hostport.starts_with('[') {
        match hostport.find(']') {
            Some(end) => &hostport[..=end],
            None => hostport,
        }
    } else {
        hostport.split(':').next().unwrap_or_default()
    }
}

/// Decodes `%XX` escapes (RFC 3261 §19.1.4: escaped and unescaped characters
/// compare equal). Invalid escapes and non-UTF-8 results are kept verbatim so
/// no two distinct inputs collapse by accident.
pub(crate) fn percent_decode(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains('%') {
        return text.into();
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let decoded = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match decoded {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    match String::from_utf8(out) {
        Ok(decoded) => decoded.into(),
        Err(_) => text.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_is_lowercased_user_is_not() {
        let aor = Aor::parse("sip:Alice@Example.ORG").unwrap();
        assert_eq!(aor.as_str(), "Alice@example.org");
        assert_ne!(aor, Aor::parse("sip:alice@example.org").unwrap());
        assert_eq!(aor.user(), Some("Alice"));
        assert_eq!(aor.domain(), "example.org");
    }

    #[test]
    fn scheme_port_params_headers_and_password_are_dropped() {
        let expected = Aor::parse("alice@example.org").unwrap();
        for text in [
            "sip:alice@example.org:5060",
            "sips:alice@example.org",
            "SIP:alice:secret@example.org;transport=tcp",
            "<sip:alice@example.org?subject=hi>",
        ] {
            assert_eq!(Aor::parse(text).unwrap(), expected, "{text}");
        }
    }

    #[test]
    fn escapes_in_user_compare_equal_to_plain_characters() {
        assert_eq!(
            Aor::parse("sip:%61lice@example.org").unwrap(),
            Aor::parse("sip:alice@example.org").unwrap()
        );
        // An invalid escape is kept as written rather than rejected.
        assert_eq!(Aor::parse("sip:a%zz@h").unwrap().as_str(), "a%zz@h");
    }

    #[test]
    fn ipv6_and_userless_aors() {
        let aor = Aor::parse("sip:bob@[2001:DB8::1]:5070").unwrap();
        assert_eq!(aor.as_str(), "bob@[2001:db8::1]");
        assert_eq!(aor.domain(), "[2001:db8::1]");
        let aor = Aor::parse("sip:Registrar.Example.org").unwrap();
        assert_eq!(aor.as_str(), "registrar.example.org");
        assert_eq!(aor.user(), None);
        assert_eq!(aor.to_uri(), "sip:registrar.example.org");
    }

    #[test]
    fn from_codec_uri_matches_parse() {
        let uri = Uri::parse("sips:Bob@Biloxi.Example.COM:5061;transport=tcp").unwrap();
        assert_eq!(
            Aor::from_uri(&uri).unwrap().as_str(),
            "Bob@biloxi.example.com"
        );
        let uri = Uri::parse("sip:carol@[::1]").unwrap();
        assert_eq!(
            Aor::from_uri(&uri).unwrap(),
            Aor::parse("carol@[::1]").unwrap()
        );
        let tel = Uri::parse("tel:+15551234").unwrap();
        assert_eq!(
            Aor::from_uri(&tel),
            Err(AorError::UnsupportedScheme("tel".into()))
        );
    }

    #[test]
    fn rejects_other_schemes_and_missing_host() {
        assert_eq!(
            Aor::parse("tel:+15551234"),
            Err(AorError::UnsupportedScheme("tel".into()))
        );
        assert_eq!(Aor::parse("sip:alice@"), Err(AorError::MissingHost));
        // Without a scheme, digits after the colon are a port.
        assert_eq!(Aor::parse("localhost:5060").unwrap().as_str(), "localhost");
    }
}

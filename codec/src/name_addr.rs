//! `name-addr` / `addr-spec` values of From, To, Contact, Route,
//! Record-Route and Path (RFC 3261 §20.10, §25.1).

use crate::ParseError;
use crate::params::Params;
use crate::scan::{find_byte, is_lws, is_token_byte, quoted_len, trim_lws, unquote};
use crate::uri::Uri;

/// An address with optional display name and header parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameAddr<'a> {
    /// Display name as written (quotes kept); `None` when absent.
    pub display: Option<&'a str>,
    pub uri: Uri<'a>,
    /// Header parameters after the URI (`;tag=`, `;expires=`, `;q=`,
    /// `;+sip.instance=`, ...).
    pub params: Params<'a>,
    /// The whole value as written (LWS-trimmed).
    pub raw: &'a str,
}

impl<'a> NameAddr<'a> {
    /// Parse one `name-addr` or `addr-spec` followed by parameters.
    ///
    /// Without `<>`, everything after the first `;` is a header parameter,
    /// and the URI may not contain `?` or `,` (RFC 3261 §20.10; RFC 4475
    /// §3.1.2.13).
    pub fn parse(value: &'a str) -> Result<NameAddr<'a>, ParseError> {
        let (display, uri_str, params_str, raw) = Self::split(value)?;
        let uri = Uri::parse(uri_str)?;
        let params = Params::parse(params_str)?;
        Ok(NameAddr {
            display,
            uri,
            params,
            raw,
        })
    }

    /// The header parameters of `value` alone: [`NameAddr::parse`] without
    /// parsing the URI, for the many places that want only a `tag`. A value
    /// whose URI is malformed still yields its parameters, so use this on
    /// a message that passed `validate_request`/`validate_response`.
    pub fn params_only(value: &'a str) -> Result<Params<'a>, ParseError> {
        let (_, _, params_str, _) = Self::split(value)?;
        Params::parse(params_str)
    }

    /// Display name, URI text, parameter text and the trimmed value.
    #[allow(clippy::type_complexity)]
    fn split(value: &'a str) -> Result<(Option<&'a str>, &'a str, &'a str, &'a str), ParseError> {
        let v = trim_lws(value);
        if v.is_empty() {
            return Err(ParseError::Address("empty address"));
        }
        let (display, rest) = if v.starts_with('"') {
            let len = quoted_len(v)?;
            let rest = trim_lws(&v[len..]);
            if !rest.starts_with('<') {
                return Err(ParseError::Address(
                    "quoted display name not followed by <URI>",
                ));
            }
            (Some(&v[..len]), rest)
        } else {
            match find_byte(v, b'<') {
                Some(lt) => {
                    let d = trim_lws(&v[..lt]);
                    // display-name = *(token LWS) / quoted-string
                    if !d.bytes().all(|b| is_token_byte(b) || is_lws(b)) {
                        return Err(ParseError::Address(
                            "display name is neither tokens nor a quoted string",
                        ));
                    }
                    ((!d.is_empty()).then_some(d), &v[lt..])
                }
                None => (None, v),
            }
        };
        let (uri_str, params_str) = if let Some(inner) = rest.strip_prefix('<') {
            let gt = find_byte(inner, b'>').ok_or(ParseError::UnterminatedAngle)?;
            let after = trim_lws(&inner[gt + 1..]);
            if !after.is_empty() && !after.starts_with(';') {
                return Err(ParseError::Address("unexpected text after >"));
            }
            // Whitespace inside <> (RFC 4475 §3.1.2.14) is rejected by
            // Uri::parse, which refuses LWS anywhere in a URI.
            (&inner[..gt], after)
        } else {
            let (u, p) = match find_byte(rest, b';') {
                Some(i) => (trim_lws(&rest[..i]), trim_lws(&rest[i..])),
                None => (rest, ""),
            };
            if u.contains(['?', ',']) {
                return Err(ParseError::Address(
                    "URI with headers or commas must be enclosed in <>",
                ));
            }
            if u.bytes().any(is_lws) {
                return Err(ParseError::Address("whitespace inside addr-spec"));
            }
            (u, p)
        };
        Ok((display, uri_str, params_str, v))
    }

    /// `tag` parameter (RFC 3261 §19.3).
    pub fn tag(&self) -> Option<&'a str> {
        self.params.get("tag").flatten()
    }

    /// Display name without quotes/escapes.
    pub fn display_name(&self) -> Option<std::borrow::Cow<'a, str>> {
        self.display.map(unquote)
    }

    /// Contact `expires` parameter. `None` when absent **or** out of range:
    /// RFC 4475 §3.1.2.4 lets an element treat an overlarge expiry as if it
    /// were absent (default applies).
    pub fn expires(&self) -> Option<u32> {
        self.params
            .get("expires")
            .flatten()
            .and_then(crate::scan::parse_u32)
    }

    /// Contact `q` parameter (RFC 3261 §20.10), clamped to 0.0..=1.0.
    pub fn q(&self) -> Option<f32> {
        let v = self.params.get("q").flatten()?;
        v.parse::<f32>().ok().filter(|q| (0.0..=1.0).contains(q))
    }

    /// `+sip.instance` (RFC 5626 §4.1), quotes removed: usually
    /// `<urn:uuid:...>`.
    pub fn sip_instance(&self) -> Option<std::borrow::Cow<'a, str>> {
        self.params.get_unquoted("+sip.instance")
    }

    /// `reg-id` (RFC 5626 §4.2).
    pub fn reg_id(&self) -> Option<u32> {
        self.params
            .get("reg-id")
            .flatten()
            .and_then(crate::scan::parse_u32)
    }
}

/// Contact header contents (RFC 3261 §20.10).
#[derive(Debug, Clone, PartialEq)]
pub enum Contacts<'a> {
    /// `Contact: *` (only valid in REGISTER with `Expires: 0`).
    Star,
    List(Vec<NameAddr<'a>>),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::uri::{Host, Scheme};

    #[test]
    fn params_only_agrees_with_parse_on_every_valid_shape() {
        let values = [
            "<sip:a@example.test>;tag=abc",
            "\"Alice; <x>\" <sip:a@example.test;transport=tcp>;tag=1;x",
            "Bob <sip:b@example.test;tag=uri-param>",
            "sip:c@example.test;tag=header-param",
            "sip:c@example.test",
            "  <sips:d@[2001:db8::1]:5061> ; TAG = spaced ",
            "tel:+15551234;tag=t",
        ];
        for value in values {
            let parsed = NameAddr::parse(value).unwrap();
            let params = NameAddr::params_only(value).unwrap();
            assert_eq!(params.get("tag"), parsed.params.get("tag"), "{value}");
            assert_eq!(params, parsed.params, "{value}");
        }
        for bad in ["", "\"unterminated <sip:a@b>", "<sip:a@b", "<sip:a@b> junk"] {
            assert!(NameAddr::params_only(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn gruu_contact_with_sip_instance() {
        let na = NameAddr::parse(
            r#"<sip:a@192.0.2.1>;+sip.instance="<urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6>";reg-id=1"#,
        )
        .unwrap();
        assert_eq!(na.uri.host, Host::V4("192.0.2.1".parse().unwrap()));
        assert_eq!(
            na.sip_instance().as_deref(),
            Some("<urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6>")
        );
        assert_eq!(na.reg_id(), Some(1));
    }

    #[test]
    fn display_names() {
        let na =
            NameAddr::parse(r#""J Rosenberg \\\"" <sip:jdrosen@example.com>;tag=98asjd8"#).unwrap();
        assert_eq!(na.display, Some(r#""J Rosenberg \\\"""#));
        assert_eq!(na.display_name().as_deref(), Some(r#"J Rosenberg \""#));
        assert_eq!(na.tag(), Some("98asjd8"));
        let na = NameAddr::parse("caller<sip:caller@example.com>;tag=323").unwrap();
        assert_eq!(na.display, Some("caller"));
        assert!(NameAddr::parse("Bell, Alexander <sip:a.g.bell@bell-tel.com>").is_err());
        assert!(NameAddr::parse(r#""Mr. J. User <sip:j.user@example.com>"#).is_err());
    }

    #[test]
    fn addr_spec_params_belong_to_header() {
        let na = NameAddr::parse("sip:user@example.com;tag=abc").unwrap();
        assert!(na.uri.params.is_empty());
        assert_eq!(na.tag(), Some("abc"));
        assert!(NameAddr::parse("sip:user@example.com?Route=%3Csip:x%3E").is_err());
        let na = NameAddr::parse("<http://www.example.com>").unwrap();
        assert_eq!(na.uri.scheme, Scheme::Other);
    }
}

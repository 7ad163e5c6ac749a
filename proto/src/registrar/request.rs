//! REGISTER → [`RegisterUpdate`]: everything RFC 3261 §10.3 steps 3–7 decide
//! from the request alone, before the location store is touched.

use std::borrow::Cow;

use switchyard_codec::{Contacts, HeaderName, Method, NameAddr, Scheme, SipMessage, Uri};

use crate::location::{Aor, AorError, BindingKey, q_from_str};
use crate::net::Source;
use crate::registrar::{ContactUpdate, ContactsUpdate, RegisterUpdate, RegistrarConfig};

/// The option tags this registrar implements (RFC 3261 §10.3 step 3).
const SUPPORTED: &[&str] = &["path", "outbound", "gruu"];

/// User-Agent values are kept for operators, not parsed: cap them so a
/// hostile UA cannot inflate every stored binding.
const MAX_USER_AGENT: usize = 256;

/// Why a REGISTER is refused before reaching the store; each variant is one
/// final response (see [`Reject::response`](crate::registrar::Reject::response)).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Reject {
    /// 400: the request is malformed; the text names the problem and is
    /// used as the reason phrase.
    #[error("{0}")]
    BadRequest(String),
    /// 404: the To URI is not an address-of-record we can register
    /// (§10.3 step 5).
    #[error("address-of-record not usable: {0}")]
    NotFound(AorError),
    /// 420 with `Unsupported`: the request requires extensions we lack
    /// (§10.3 step 3, §8.2.2.3).
    #[error("unsupported extensions: {}", .0.join(", "))]
    BadExtension(Vec<String>),
    /// 421 with `Require`: a Path was inserted but the UA did not declare
    /// support for `path` (RFC 3327 §5.3).
    #[error("extension {0} required")]
    ExtensionRequired(&'static str),
    /// 423 with `Min-Expires`: a contact asked for less than the minimum
    /// interval (§10.3 step 7, §10.2.8).
    #[error("interval too brief, minimum {min_expires} s")]
    IntervalTooBrief { min_expires: u32 },
    /// 439: a contact has a `reg-id` but the first hop is not an outbound
    /// edge (no `ob` on the topmost Path, RFC 5626 §6).
    #[error("first hop lacks outbound support")]
    FirstHopLacksOutbound,
}

/// What the node knows about a REGISTER besides its bytes.
#[derive(Debug, Clone, Copy)]
pub struct RegisterContext<'a> {
    /// Where it came from: the flow stored with the bindings.
    pub source: Source,
    /// This node's id, recorded on every binding written.
    pub node: Option<&'a str>,
    /// The REGISTER came straight from the UA: this node is its edge.
    pub first_hop: bool,
    /// The topmost Path is this cluster's own edge entry (authenticated),
    /// so it is accepted without `Supported: path` and not echoed to a UA
    /// that never asked for it (RFC 3327 §5.3 binds foreign Paths only).
    pub own_path: bool,
}

impl<'a> RegisterContext<'a> {
    /// A REGISTER that reached its registrar directly.
    pub fn direct(source: Source, node: Option<&'a str>) -> Self {
        RegisterContext {
            source,
            node,
            first_hop: true,
            own_path: false,
        }
    }
}

fn bad(problem: impl ToString) -> Reject {
    Reject::BadRequest(problem.to_string())
}

/// Validates a REGISTER and turns it into the update the store applies.
///
/// Returns the address-of-record from the To header (§10.3 step 5); whether
/// its domain is one we serve, and for which tenant, is the caller's policy.
/// `node` is this node's id, recorded on every binding written.
pub fn parse_register(
    msg: &SipMessage,
    config: &RegistrarConfig,
    source: Source,
    node: Option<&str>,
) -> Result<(Aor, RegisterUpdate), Reject> {
    parse_register_in(msg, config, &RegisterContext::direct(source, node))
}

/// [`parse_register`] with what the node knows about the request's path
/// (RFC 3327 Path acceptance, RFC 5626 §6 first-hop outbound support).
pub fn parse_register_in(
    msg: &SipMessage,
    config: &RegistrarConfig,
    ctx: &RegisterContext<'_>,
) -> Result<(Aor, RegisterUpdate), Reject> {
    let (source, node) = (ctx.source, ctx.node);
    if msg.method() != Some(&Method::Register) {
        return Err(bad("Not a REGISTER"));
    }
    let to = msg.to().map_err(bad)?;
    let aor = Aor::from_uri(&to.uri).map_err(Reject::NotFound)?;
    let call_id = msg.call_id().map_err(bad)?.to_owned();
    let cseq = msg.cseq().map_err(bad)?.seq;

    let unsupported: Vec<String> = msg
        .option_tags(HeaderName::Require)
        .filter(|tag| !SUPPORTED.iter().any(|s| s.eq_ignore_ascii_case(tag)))
        .map(str::to_owned)
        .collect();
    if !unsupported.is_empty() {
        return Err(Reject::BadExtension(unsupported));
    }

    // RFC 3327 §5.3: Path is stored only if the UA can cope with it; an edge
    // proxy that adds Path for a UA that cannot would make it unreachable.
    let hops = msg.paths().map_err(bad)?;
    let path: Vec<String> = hops.iter().map(|hop| hop.raw.to_owned()).collect();
    if !path.is_empty() && !supports(msg, "path") && !ctx.own_path {
        return Err(Reject::ExtensionRequired("path"));
    }
    // RFC 5626 §6: a flow (reg-id) needs an edge that keeps it: the
    // topmost Path says `ob`, or there is no Path and we are the first hop.
    let first_hop_outbound = match hops.first() {
        Some(top) => top.uri.params.get("ob").is_some(),
        None => ctx.first_hop,
    };

    let header_expires = match msg.header(HeaderName::Expires) {
        Some(value) => Some(delta_seconds(value).ok_or_else(|| bad("Invalid Expires header"))?),
        None => None,
    };
    let contacts = match msg.contacts().map_err(bad)? {
        // §10.3 step 6: `*` is only valid alone and with Expires: 0.
        Contacts::Star if header_expires == Some(0) => ContactsUpdate::RemoveAll,
        Contacts::Star => return Err(bad("Contact * requires Expires: 0")),
        Contacts::List(list) if list.is_empty() => ContactsUpdate::Fetch,
        Contacts::List(list) => {
            let updates = list
                .iter()
                .map(|contact| contact_update(contact, header_expires, config))
                .collect::<Result<Vec<_>, _>>()?;
            if !first_hop_outbound && updates.iter().any(|u| u.reg_id.is_some()) {
                return Err(Reject::FirstHopLacksOutbound);
            }
            // Checked after every contact parsed, so a malformed request gets
            // its 400 rather than a 423 it could never satisfy.
            if updates
                .iter()
                .any(|u| u.expires != 0 && u.expires < config.min_expires)
            {
                return Err(Reject::IntervalTooBrief {
                    min_expires: config.min_expires,
                });
            }
            ContactsUpdate::Set(updates)
        }
    };

    let user_agent = msg
        .header(HeaderName::UserAgent)
        .map(|ua| truncate(ua.trim(), MAX_USER_AGENT).to_owned())
        .filter(|ua| !ua.is_empty());
    let update = RegisterUpdate {
        call_id,
        cseq,
        contacts,
        path,
        source,
        node: node.map(str::to_owned),
        user_agent,
        max_bindings: None,
    };
    Ok((aor, update))
}

/// The longest a binding of this REGISTER can be granted (§10.3 step 7:
/// each Contact's `expires`, else the Expires header, else the default,
/// at most the maximum): what the edge's Path token must outlive. A
/// malformed value counts as the maximum; the registrar rejects it anyway.
pub fn longest_grant(msg: &SipMessage, config: &RegistrarConfig) -> u32 {
    let header = msg.header(HeaderName::Expires).map(delta_seconds);
    let Ok(Contacts::List(list)) = msg.contacts() else {
        return config.max_expires;
    };
    list.iter()
        .map(|c| match (c.params.get("expires"), header) {
            (Some(v), _) => v.and_then(delta_seconds),
            (None, Some(h)) => h,
            (None, None) => Some(config.default_expires),
        })
        .map(|e| e.map_or(config.max_expires, |e| e.min(config.max_expires)))
        .max()
        .unwrap_or(0)
}

/// Whether the request lists `tag` in Supported.
pub fn supports(msg: &SipMessage, tag: &str) -> bool {
    msg.option_tags(HeaderName::Supported)
        .any(|t| t.eq_ignore_ascii_case(tag))
}

/// One Contact value: expiry from its parameter, else the Expires header,
/// else the default (§10.3 step 7), shortened to the maximum.
fn contact_update(
    contact: &NameAddr<'_>,
    header_expires: Option<u32>,
    config: &RegistrarConfig,
) -> Result<ContactUpdate, Reject> {
    let params = &contact.params;
    let expires = match params.get("expires") {
        Some(value) => Some(
            value
                .and_then(delta_seconds)
                .ok_or_else(|| bad("Invalid Contact expires parameter"))?,
        ),
        None => None,
    };
    let expires = expires
        .or(header_expires)
        .unwrap_or(config.default_expires)
        .min(config.max_expires);
    let q = match params.get("q") {
        Some(value) => Some(
            value
                .and_then(q_from_str)
                .ok_or_else(|| bad("Invalid Contact q"))?,
        ),
        None => None,
    };
    let instance = contact
        .sip_instance()
        .map(Cow::into_owned)
        .filter(|instance| !instance.is_empty());
    let reg_id = match params.get("reg-id") {
        Some(value) => Some(
            value
                .and_then(|v| v.parse::<u32>().ok())
                .filter(|id| *id > 0)
                .ok_or_else(|| bad("Invalid Contact reg-id"))?,
        ),
        None => None,
    };
    // A reg-id names a flow of an instance (RFC 5626 §4.2); without the
    // instance it identifies nothing, so the contact URI stays the identity.
    let reg_id = reg_id.filter(|_| instance.is_some());
    let contact_key = contact_key(&contact.uri);
    let key = match &instance {
        Some(instance) => BindingKey::instance(instance, reg_id),
        None => BindingKey::Contact(contact_key.clone()),
    };
    Ok(ContactUpdate {
        key,
        contact: contact.uri.raw.to_owned(),
        contact_key,
        instance,
        reg_id,
        q,
        expires,
    })
}

/// The comparison form of a contact URI (RFC 3261 §19.1.4): scheme and
/// host lowercased, user and password unescaped and case-sensitive, the
/// port kept as written (an explicit default port is *not* equal to none),
/// the parameters that must match when present in either URI (`transport`,
/// `user`, `ttl`, `method`, `maddr`) lowercased and sorted, and the headers
/// sorted.
///
/// Other URI parameters are left out: §19.1.4 compares them only when both
/// URIs carry them, which no single key can express, and in practice they
/// are per-registration decorations (`ob`, `rinstance`) that should not
/// split one contact into two bindings.
pub fn contact_key(uri: &Uri<'_>) -> String {
    if !matches!(uri.scheme, Scheme::Sip | Scheme::Sips) {
        // tel:, mailto: and friends are stored, never routed by us: compare
        // them as written apart from the scheme's case.
        return match uri.raw.split_once(':') {
            Some((scheme, rest)) => format!("{}:{rest}", scheme.to_ascii_lowercase()),
            None => uri.raw.to_owned(),
        };
    }
    let mut key = String::with_capacity(uri.raw.len());
    key.push_str(if uri.scheme == Scheme::Sips {
        "sips:"
    } else {
        "sip:"
    });
    if let Some(user) = uri.user {
        key.push_str(&crate::location::percent_decode(user));
        if let Some(password) = uri.password {
            key.push(':');
            key.push_str(&crate::location::percent_decode(password));
        }
        key.push('@');
    }
    let host = key.len();
    uri.host.push_to(&mut key);
    key[host..].make_ascii_lowercase();
    if let Some(port) = uri.port {
        key.push(':');
        switchyard_codec::text::push_u16(&mut key, port);
    }
    let mut params: Vec<(String, Option<String>)> = uri
        .params
        .iter()
        .filter(|(name, _)| {
            ["transport", "user", "ttl", "method", "maddr"]
                .iter()
                .any(|significant| name.eq_ignore_ascii_case(significant))
        })
        .map(|(name, value)| {
            (
                name.to_ascii_lowercase(),
                value.map(str::to_ascii_lowercase),
            )
        })
        .collect();
    params.sort();
    for (name, value) in params {
        key.push(';');
        key.push_str(&name);
        if let Some(value) = value {
            key.push('=');
            key.push_str(&value);
        }
    }
    if let Some(headers) = uri.headers {
        let mut headers: Vec<&str> = headers.split('&').collect();
        headers.sort_unstable();
        key.push('?');
        key.push_str(&headers.join("&"));
    }
    key
}

/// `delta-seconds` (RFC 3261 §20.19): digits only; values past u32 saturate
/// (the maximum clamp applies anyway; RFC 4475 §3.1.2.4 lets us treat a
/// huge value as "very long" rather than as an error).
fn delta_seconds(text: &str) -> Option<u32> {
    let text = text.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(text.parse::<u32>().unwrap_or(u32::MAX))
}

fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;

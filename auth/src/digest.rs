//! SIP Digest authentication (RFC 3261 §22, updated by RFC 8760 to RFC 7616's
//! algorithms), sans-IO: parse credentials, compute and check responses,
//! format challenges. Nonces are minted and checked in [`super::nonce`].
//!
//! A request is authenticated in this order: [`parse`] the `Authorization` /
//! `Proxy-Authorization` value; check `realm` is ours; look up the stored
//! HA1 for (`username`, `realm`, `algorithm`); check the nonce
//! (`NonceKey::check`) and, with a qop, the nonce count (`NonceCounts`);
//! check `uri` against the Request-URI (RFC 7616 §3.4.6); then [`verify`].
//! A 401/407 carries one [`challenge`] per algorithm of
//! [`Algorithm::PREFERENCE`], strongest first (RFC 7616 §3.7, RFC 8760
//! §2.3); a UAC answers the topmost one it supports (RFC 8760 §2.4).
//!
//! Only HA1 = H(username:realm:password) is stored, never the password;
//! since H is part of HA1, a user needs one HA1 per offered algorithm.

use std::borrow::Cow;
use std::fmt::Write as _;

use md5::Md5;
use sha2::{Digest, Sha256, Sha512_256};

/// A Digest hash algorithm from RFC 7616 §6.1's registry.
///
/// The `-sess` variants are deliberately unsupported ([`Algorithm::parse`]
/// returns `None`): their HA1 = H(HA1:nonce:cnonce) is computed once, from
/// the nonce and the *first* cnonce of an authentication session, and reused
/// for later requests (RFC 7616 §3.4.2). Verifying later requests would need
/// per-session server state that our stateless nonces avoid; and since
/// [`challenge`] never offers them, a UAC has no reason to use them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Algorithm {
    /// RFC 3261's only algorithm; also what an absent `algorithm`
    /// parameter means (RFC 7616 §3.3).
    #[default]
    Md5,
    Sha256,
    /// FIPS 180-4 SHA-512/256 (its own initial values, not a truncated SHA-512).
    Sha512_256,
}

impl Algorithm {
    /// The order challenges are offered in, strongest first (RFC 7616 §3.7,
    /// RFC 8760 §2.3–2.4). MD5 stays last for the many UAs that only know it.
    pub const PREFERENCE: [Algorithm; 3] =
        [Algorithm::Sha512_256, Algorithm::Sha256, Algorithm::Md5];

    /// The `algorithm` parameter value (RFC 7616 §6.1).
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Sha512_256 => "SHA-512-256",
        }
    }

    /// Parses an `algorithm` value, case-insensitively (RFC 7616 §3.3 says
    /// the values are case-insensitive tokens). `-sess` variants → `None`.
    pub fn parse(s: &str) -> Option<Algorithm> {
        Self::PREFERENCE
            .into_iter()
            .find(|algorithm| algorithm.name().eq_ignore_ascii_case(s))
    }

    /// H(data) in lowercase hex, the representation RFC 7616 §3.2 and
    /// RFC 8760 §2.2 prescribe for every digest value.
    pub fn hash_hex(self, data: &[u8]) -> String {
        self.hash_joined(&[data])
    }

    /// H(p1 ":" p2 ":" …) without building the joined string.
    fn hash_joined<P: AsRef<[u8]>>(self, parts: &[P]) -> String {
        match self {
            Algorithm::Md5 => joined::<Md5, P>(parts),
            Algorithm::Sha256 => joined::<Sha256, P>(parts),
            Algorithm::Sha512_256 => joined::<Sha512_256, P>(parts),
        }
    }
}

fn joined<D: Digest, P: AsRef<[u8]>>(parts: &[P]) -> String {
    let mut hasher = D::new();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            hasher.update(b":");
        }
        hasher.update(part);
    }
    let digest = hasher.finalize();
    let mut hex = String::with_capacity(digest.len() * 2);
    for byte in digest {
        let _ = write!(hex, "{byte:02x}"); // writing to a String cannot fail
    }
    hex
}

/// HA1 = H(username ":" realm ":" password) (RFC 7616 §3.4.2), what the
/// credential store keeps per user, realm and algorithm.
pub fn ha1(alg: Algorithm, user: &str, realm: &str, password: &str) -> String {
    alg.hash_joined(&[user, realm, password])
}

/// Quality of protection (RFC 7616 §3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Qop {
    /// Authenticates method and Request-URI.
    Auth,
    /// Also authenticates the body (HA2 includes H(body)).
    AuthInt,
}

impl Qop {
    /// The qop value as hashed into the response.
    pub fn name(self) -> &'static str {
        match self {
            Qop::Auth => "auth",
            Qop::AuthInt => "auth-int",
        }
    }

    /// Case-insensitive. The response is then computed with the canonical
    /// lowercase name, which is what every known UA sends.
    pub fn parse(s: &str) -> Option<Qop> {
        [Qop::Auth, Qop::AuthInt]
            .into_iter()
            .find(|qop| qop.name().eq_ignore_ascii_case(s))
    }
}

/// Why an `Authorization` / `Proxy-Authorization` value was refused.
/// Offending values are clipped to 32 characters so they can be logged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    #[error("not Digest credentials")]
    NotDigest,
    #[error("Digest credentials lack {0}")]
    Missing(&'static str),
    #[error("Digest credentials are malformed")]
    Malformed,
    #[error("Digest parameter {0} given more than once")]
    Duplicate(&'static str),
    #[error("Digest parameter {0} has an invalid value")]
    InvalidValue(&'static str),
    #[error("unsupported Digest algorithm {0:?}")]
    UnsupportedAlgorithm(String),
    #[error("unsupported Digest qop {0:?}")]
    UnsupportedQop(String),
    #[error("Digest userhash=true is not supported")]
    UserhashUnsupported,
}

/// Parsed Digest credentials. Values borrow from the header value and are
/// owned only when a quoted string contained backslash escapes, so the
/// common case allocates nothing; quoted values are stored unquoted and
/// unescaped, as RFC 7616 §3.4.2's `unq()` hashes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials<'a> {
    pub username: Cow<'a, str>,
    pub realm: Cow<'a, str>,
    pub nonce: Cow<'a, str>,
    pub uri: Cow<'a, str>,
    pub response: Cow<'a, str>,
    /// [`Algorithm::Md5`] when the parameter is absent (RFC 7616 §3.3).
    pub algorithm: Algorithm,
    pub opaque: Option<Cow<'a, str>>,
    /// `None` is RFC 2069-style credentials, which RFC 3261 §22.4 still
    /// allows. With a qop, [`parse`] guarantees `cnonce` and `nc` (RFC 7616
    /// §3.4 requires them); without, it leaves them `None` even if sent.
    pub qop: Option<Qop>,
    pub cnonce: Option<Cow<'a, str>>,
    /// The nonce count, for the replay guard (`NonceCounts::accept`).
    pub nc: Option<u32>,
    /// The nonce count exactly as sent (8 hex digits): that text, not a
    /// reformatting of `nc`, is what the UA hashed.
    nc_text: Option<Cow<'a, str>>,
}

impl<'a> Credentials<'a> {
    /// Same as [`parse`].
    pub fn parse(value: &'a str) -> Result<Credentials<'a>, DigestError> {
        parse(value)
    }
}

/// The parameters we read. Any other auth-param is ignored (RFC 7616 §3.4
/// keeps auth-param for extensions), RFC 7616's RFC 5987-encoded
/// `username*` included.
const KNOWN: [&str; 11] = [
    "username",
    "realm",
    "nonce",
    "uri",
    "response",
    "algorithm",
    "userhash",
    "opaque",
    "qop",
    "cnonce",
    "nc",
];

/// Parses an `Authorization` or `Proxy-Authorization` header value:
/// `Digest` (case-insensitive) then comma-separated `name=value` pairs.
///
/// Tolerant where RFC 7616 §3.4 only constrains senders: any value may be a
/// token or a quoted string (some UAs quote `qop`, `nc` or `algorithm`),
/// whitespace (CR and LF included, for unfolded values) may surround `=`
/// and `,`, empty list elements are skipped, names are case-insensitive.
/// Strict where ambiguity could be exploited: a known parameter given twice
/// is an error, not first- or last-wins.
pub fn parse(value: &str) -> Result<Credentials<'_>, DigestError> {
    let value = value.trim_start_matches(is_lws);
    let (scheme, mut rest) = value.split_at(value.find(is_lws).unwrap_or(value.len()));
    if !scheme.eq_ignore_ascii_case("Digest") {
        return Err(DigestError::NotDigest);
    }
    let mut values = Values::default();
    while let Some((name, value)) = next_param(&mut rest)? {
        match slot(&mut values, name) {
            Some((Some(_), known)) => return Err(DigestError::Duplicate(known)),
            Some((slot, _)) => *slot = Some(value),
            None => {}
        }
    }
    let mut take = |name: &str| slot(&mut values, name)?.0.take();
    let algorithm = match take("algorithm") {
        None => Algorithm::default(),
        Some(name) => {
            Algorithm::parse(&name).ok_or_else(|| DigestError::UnsupportedAlgorithm(clip(&name)))?
        }
    };
    // RFC 7616 §3.4.4: with userhash=true, `username` is H(user:realm);
    // resolving it needs a reverse index we do not keep.
    match take("userhash") {
        Some(flag) if flag.eq_ignore_ascii_case("true") => {
            return Err(DigestError::UserhashUnsupported);
        }
        Some(flag) if !flag.eq_ignore_ascii_case("false") => {
            return Err(DigestError::InvalidValue("userhash"));
        }
        _ => {}
    }
    let qop = match take("qop") {
        None => None,
        Some(name) => {
            Some(Qop::parse(&name).ok_or_else(|| DigestError::UnsupportedQop(clip(&name)))?)
        }
    };
    let (mut cnonce, mut nc_text, mut nc) = (None, None, None);
    if qop.is_some() {
        cnonce = Some(take("cnonce").ok_or(DigestError::Missing("cnonce"))?);
        let text = take("nc").ok_or(DigestError::Missing("nc"))?;
        nc = Some(parse_nc(&text).ok_or(DigestError::InvalidValue("nc"))?);
        nc_text = Some(text);
    }
    Ok(Credentials {
        username: take("username").ok_or(DigestError::Missing("username"))?,
        realm: take("realm").ok_or(DigestError::Missing("realm"))?,
        nonce: take("nonce").ok_or(DigestError::Missing("nonce"))?,
        uri: take("uri").ok_or(DigestError::Missing("uri"))?,
        response: take("response").ok_or(DigestError::Missing("response"))?,
        algorithm,
        opaque: take("opaque"),
        qop,
        cnonce,
        nc,
        nc_text,
    })
}

type Slot<'a> = Option<Cow<'a, str>>;
type Values<'a> = [Slot<'a>; KNOWN.len()];

/// The value slot of a known parameter (names are case-insensitive).
fn slot<'v, 'a>(
    values: &'v mut Values<'a>,
    name: &str,
) -> Option<(&'v mut Slot<'a>, &'static str)> {
    values
        .iter_mut()
        .zip(KNOWN)
        .find(|(_, known)| known.eq_ignore_ascii_case(name))
}

/// `nc-value = 8LHEX` (RFC 7616 §3.4); uppercase hex tolerated.
fn parse_nc(text: &str) -> Option<u32> {
    if text.len() != 8 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(text, 16).ok()
}

fn clip(value: &str) -> String {
    value.chars().take(32).collect()
}

fn is_lws(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// RFC 3261 §25.1 `token` characters.
fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-.!%*_+`'~".contains(c)
}

/// Reads the next `name=value` and the separator after it.
fn next_param<'a>(input: &mut &'a str) -> Result<Option<(&'a str, Cow<'a, str>)>, DigestError> {
    let s = input.trim_start_matches(|c| is_lws(c) || c == ',');
    if s.is_empty() {
        *input = s;
        return Ok(None);
    }
    let (name, s) = s.split_at(s.find(|c| !is_token_char(c)).unwrap_or(s.len()));
    if name.is_empty() {
        return Err(DigestError::Malformed);
    }
    let s = s.trim_start_matches(is_lws);
    let s = s.strip_prefix('=').ok_or(DigestError::Malformed)?;
    let s = s.trim_start_matches(is_lws);
    let (value, s) = match s.strip_prefix('"') {
        Some(quoted) => quoted_string(quoted)?,
        None => {
            let (value, s) = s.split_at(s.find(|c| is_lws(c) || c == ',').unwrap_or(s.len()));
            if value.is_empty() || value.contains('"') {
                return Err(DigestError::Malformed);
            }
            (Cow::Borrowed(value), s)
        }
    };
    let s = s.trim_start_matches(is_lws);
    if !s.is_empty() && !s.starts_with(',') {
        return Err(DigestError::Malformed);
    }
    *input = s;
    Ok(Some((name, value)))
}

/// The rest of a quoted string after its opening quote (RFC 3261 §25.1
/// `quoted-pair`: a backslash escapes the next character); returns the
/// unescaped content and what follows the closing quote.
fn quoted_string(s: &str) -> Result<(Cow<'_, str>, &str), DigestError> {
    let mut unescaped: Option<String> = None;
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => {
                let value = match unescaped {
                    Some(owned) => Cow::Owned(owned),
                    None => Cow::Borrowed(&s[..i]),
                };
                return Ok((value, &s[i + 1..]));
            }
            '\\' => {
                let (_, escaped) = chars.next().ok_or(DigestError::Malformed)?;
                unescaped
                    .get_or_insert_with(|| s[..i].to_owned())
                    .push(escaped);
            }
            c => {
                if let Some(owned) = unescaped.as_mut() {
                    owned.push(c);
                }
            }
        }
    }
    Err(DigestError::Malformed)
}

/// The request-digest of RFC 7616 §3.4.1: HA2 = H(method:uri) for `auth`
/// and RFC 2069-style credentials, H(method:uri:H(body)) for `auth-int`
/// (§3.4.3); the response is H(HA1:nonce:nc:cnonce:qop:HA2) with a qop,
/// H(HA1:nonce:HA2) without (RFC 3261 §22.4 keeps that form for RFC 2069
/// compatibility). `qop` is (qop, nc as sent, cnonce); `ha1_hex` is the
/// lowercase hex from [`ha1`] for the same algorithm.
pub fn response(
    alg: Algorithm,
    ha1_hex: &str,
    nonce: &str,
    qop: Option<(Qop, &str, &str)>,
    method: &str,
    uri: &str,
    body: &[u8],
) -> String {
    let ha2 = match qop {
        Some((Qop::AuthInt, _, _)) => alg.hash_joined(&[method, uri, &alg.hash_hex(body)]),
        _ => alg.hash_joined(&[method, uri]),
    };
    match qop {
        Some((qop, nc, cnonce)) => alg.hash_joined(&[ha1_hex, nonce, nc, cnonce, qop.name(), &ha2]),
        None => alg.hash_joined(&[ha1_hex, nonce, &ha2]),
    }
}

/// Whether `creds.response` is right for this request, given the stored
/// HA1 for `creds.algorithm`. Only the cryptographic check: realm, nonce,
/// nonce count and `uri` are the caller's (see the module docs).
///
/// The comparison is constant-time over the digest, so timing reveals
/// nothing about how many leading characters were right. Only the length
/// may exit early, and it is public (fixed per algorithm). Uppercase hex
/// is tolerated although RFC 7616 §3.2 asks for lowercase. Credentials
/// edited after [`parse`] into a qop without `cnonce` are refused.
pub fn verify(creds: &Credentials<'_>, ha1_hex: &str, method: &str, body: &[u8]) -> bool {
    let qop = match (creds.qop, &creds.nc_text, &creds.cnonce) {
        (None, _, _) => None,
        (Some(qop), Some(nc), Some(cnonce)) => Some((qop, nc.as_ref(), cnonce.as_ref())),
        (Some(_), _, _) => return false,
    };
    let (alg, nonce, uri) = (creds.algorithm, &creds.nonce, &creds.uri);
    let expected = response(alg, ha1_hex, nonce, qop, method, uri, body);
    let (expected, received) = (expected.as_bytes(), creds.response.as_bytes());
    if expected.len() != received.len() {
        return false;
    }
    let diff = expected
        .iter()
        .zip(received)
        .fold(0u8, |acc, (e, r)| acc | (e ^ r.to_ascii_lowercase()));
    std::hint::black_box(diff) == 0
}

/// A `WWW-Authenticate` / `Proxy-Authenticate` value (RFC 7616 §3.3):
/// `Digest realm="…", nonce="…", algorithm=…, qop="auth"[, opaque="…"][, stale=true]`.
///
/// Offers `qop="auth"` only, as Kamailio does by default: `auth-int` hashes
/// the body exactly as the UAC sent it, which SDP-rewriting middleboxes
/// break and many UAs do not implement. [`verify`] still accepts
/// `auth-int` from a UA that uses it. Always offering a qop (RFC 8760
/// makes qop support mandatory for SIP) is what makes nonce counts usable.
///
/// Quoted values are escaped (`"` and `\`); control characters are
/// dropped, since a CR or LF would split the header (a realm containing
/// them could never match anyway, and configuration should refuse it).
pub fn challenge(
    alg: Algorithm,
    realm: &str,
    nonce: &str,
    opaque: Option<&str>,
    stale: bool,
) -> String {
    let (realm, nonce, alg) = (quote(realm), quote(nonce), alg.name());
    let opaque = opaque
        .map(|o| format!(", opaque={}", quote(o)))
        .unwrap_or_default();
    // RFC 7616 §3.3: stale=true lets the UA retry with the new nonce
    // without asking its user for the password again.
    let stale = if stale { ", stale=true" } else { "" };
    format!("Digest realm={realm}, nonce={nonce}, algorithm={alg}, qop=\"auth\"{opaque}{stale}")
}

fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() && c != '\t' => {}
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
#[path = "digest_tests.rs"]
mod tests;

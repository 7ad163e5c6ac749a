//! Request processing of RFC 3261 §16.3 (validation), §16.4 (route
//! pre-processing) and §16.6 (building each forwarded copy). Pure functions
//! over a parsed message: the node decides what to do with the results.

use super::edit::HeaderEdit;
use std::hash::{Hash, Hasher};

use bytes::Bytes;
use switchyard_codec::{HeaderName, Method, Scheme, SipMessage, Uri};

use super::identity::Identity;

/// A response the proxy sends itself instead of forwarding: a refusal
/// (validation, routing, authentication, registrar), a policy's reply, a
/// redirect, the 200 to OPTIONS. The one type every layer answers with;
/// the transaction builds the bytes (To tag, Via, Call-ID...).
#[derive(Debug, Clone, PartialEq)]
pub struct LocalAnswer {
    pub code: u16,
    /// Empty for the standard reason phrase of `code`.
    pub reason: String,
    /// Extra header fields (Retry-After, Min-Expires, WWW-Authenticate...).
    pub headers: Vec<(String, String)>,
}

impl LocalAnswer {
    pub fn new(code: u16, reason: impl Into<String>) -> Self {
        LocalAnswer {
            code,
            reason: reason.into(),
            headers: Vec::new(),
        }
    }

    /// The reason phrase to send: the given one, else the standard one.
    pub fn reason_phrase(&self) -> &str {
        match self.reason.as_str() {
            "" => super::reason::standard(self.code),
            r => r,
        }
    }
}

/// Magic cookie (§8.1.1.7) plus our own marker, so we recognise our branches.
pub const BRANCH_PREFIX: &str = "z9hG4bKsy";

/// §16.3: everything that must hold before a request is proxied. Syntax
/// (step 1) is the codec's `validate_request`, run by the caller first.
pub fn validate(msg: &SipMessage, identity: &Identity) -> Result<(), LocalAnswer> {
    // Step 2: URI scheme. We route sip: and sips:; tel: needs a policy.
    let uri = msg
        .request_uri()
        .map_err(|_| LocalAnswer::new(400, "Bad Request-URI"))?;
    if !matches!(uri.scheme, Scheme::Sip | Scheme::Sips) {
        return Err(LocalAnswer::new(416, "Unsupported URI Scheme"));
    }
    // Step 3: Max-Forwards. OPTIONS at zero is answered by the proxy (§11), the caller handles that.
    let mf = msg
        .max_forwards()
        .map_err(|_| LocalAnswer::new(400, "Bad Max-Forwards"))?;
    // RFC 4475 §3.1.4.11: only an OPTIONS addressed to the proxy itself is
    // answered at zero hops; anything else stops here.
    let options_for_us =
        msg.method() == Some(&Method::Options) && identity.is_addressed_to_proxy(&uri);
    if mf == Some(0) && !options_for_us {
        return Err(LocalAnswer::new(483, "Too Many Hops"));
    }
    // Step 4: loop detection, by recomputing the loop hash we put in our branches.
    // Our branch with this request's hash, in a Via that is ours.
    let hash = loop_hash(msg);
    let mut sent_by = String::new();
    for via in msg.vias().flatten() {
        let Some(b) = via.branch() else { continue };
        if b.strip_prefix(BRANCH_PREFIX)
            .and_then(|rest| rest.split('.').next())
            != Some(hash.as_str())
        {
            continue;
        }
        sent_by.clear();
        via.host.push_to(&mut sent_by);
        let host_len = sent_by.len();
        sent_by.push(':');
        switchyard_codec::text::push_u16(&mut sent_by, via.port.unwrap_or(5060));
        let ours = identity.addresses().iter().any(|a| {
            sent_by.eq_ignore_ascii_case(&a.advertised)
                || (via.port.is_none() && sent_by[..host_len].eq_ignore_ascii_case(&a.advertised))
        });
        if ours {
            return Err(LocalAnswer::new(482, "Loop Detected"));
        }
    }
    // Step 5: Proxy-Require. We implement no proxy extensions yet.
    let unsupported: Vec<&str> = msg.option_tags(HeaderName::ProxyRequire).collect();
    if !unsupported.is_empty() {
        let mut r = LocalAnswer::new(420, "Bad Extension");
        r.headers
            .push(("Unsupported".into(), unsupported.join(", ")));
        return Err(r);
    }
    Ok(())
}

/// Hashes what identifies a request within its dialog and transaction
/// across hops: Request-URI, From tag, Call-ID and CSeq number. Shared by
/// loop detection and RFC 2543 transaction matching, which each add theirs.
pub fn hash_request_identity(msg: &SipMessage, h: &mut impl Hasher) {
    msg.request_uri_str().hash(h);
    msg.from_tag().ok().flatten().hash(h);
    msg.call_id().ok().hash(h);
    msg.cseq().ok().map(|c| c.seq).hash(h);
}

/// The loop-detection part of our branch (§16.6 step 8): a hash of the fields
/// that stay the same when a request comes back to us unchanged. A spiral
/// (same request, new Request-URI) hashes differently and is allowed.
pub fn loop_hash(msg: &SipMessage) -> String {
    let mut h = std::hash::DefaultHasher::new();
    hash_request_identity(msg, &mut h);
    msg.to_tag().ok().flatten().hash(&mut h);
    for v in msg.header_values(HeaderName::ProxyRequire) {
        v.hash(&mut h);
    }
    format!("{:08x}", h.finish() as u32)
}

/// A fresh branch for one forwarded copy: cookie, loop hash, and a random
/// part from the caller's `rng` (seed it in tests for repeatable bytes).
pub fn new_branch(loop_hash: &str, rng: &mut impl rand::Rng) -> String {
    format!("{BRANCH_PREFIX}{loop_hash}.{:016x}", rng.random::<u64>())
}

/// The request's route state after §16.4 pre-processing.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteState {
    /// The Request-URI to use (replaced when the previous hop was a strict router).
    pub request_uri: String,
    /// Remaining Route values, top first, after removing our own.
    pub routes: Vec<String>,
    /// Whether Route headers or the Request-URI changed and must be rewritten.
    pub changed: bool,
    /// The Route values naming us that were removed, top first: an edge
    /// node finds its flow tokens in them (RFC 5626 §5.3).
    pub popped: Vec<String>,
}

/// §16.4: if the Request-URI is ours (a strict router put our Record-Route
/// URI there), the real target is the last Route value; then every top Route
/// value that names us is removed.
pub fn preprocess_routes(msg: &SipMessage, identity: &Identity) -> Result<RouteState, LocalAnswer> {
    let mut routes: Vec<String> = msg
        .routes()
        .map_err(|_| LocalAnswer::new(400, "Bad Route header"))?
        .iter()
        .map(|r| r.raw.trim().to_string())
        .collect();
    let mut request_uri = msg.request_uri_str().unwrap_or_default().to_string();
    let mut changed = false;
    let mut popped = Vec::new();
    let ruri_is_me = msg
        .request_uri()
        .map(|u| identity.is_me(&u))
        .unwrap_or(false);
    if ruri_is_me && let Some(last) = routes.pop() {
        request_uri = strip_angle(&last).to_string();
        changed = true;
    }
    while let Some(top) = routes.first() {
        let is_me = Uri::parse(strip_angle(top))
            .map(|u| identity.is_me(&u))
            .unwrap_or(false);
        if !is_me {
            break;
        }
        popped.push(routes.remove(0));
        changed = true;
    }
    Ok(RouteState {
        request_uri,
        routes,
        changed,
        popped,
    })
}

/// The `uri` inside `<...>` (drops display name and header parameters).
pub fn strip_angle(value: &str) -> &str {
    let v = value.trim();
    match (v.find('<'), v.rfind('>')) {
        (Some(a), Some(b)) if a < b => &v[a + 1..b],
        _ => v.split(';').next().unwrap_or(v),
    }
}

/// How one forwarded copy differs from the received request (§16.6).
#[derive(Debug, Clone)]
pub struct ForwardSpec<'a> {
    pub request_uri: &'a str,
    /// The complete Route set to send (pushed Path first), when it changed.
    pub routes: Option<&'a [String]>,
    /// Record-Route values to push (top first), for dialog-forming requests.
    pub record_route: &'a [String],
    /// Our Via header value, with its branch.
    pub via: &'a str,
    /// RFC 3581: values to write into the received top Via.
    pub received: Option<&'a str>,
    pub rport: Option<u16>,
    /// A policy's header edits (already checked with [`HeaderEdit::is_allowed`]).
    pub headers: &'a [HeaderEdit],
    /// RFC 5393: the branch's Max-Breadth, written when it differs from
    /// the request's (a fork shares it out); `None` leaves it as received.
    pub max_breadth: Option<u32>,
}

/// Builds the bytes of a forwarded request by splicing the original.
pub fn build_forward(msg: &SipMessage, spec: &ForwardSpec<'_>) -> Bytes {
    let mut e = msg.edit();
    if msg.request_uri_str() != Some(spec.request_uri) {
        e.set_request_uri(spec.request_uri);
    }
    let mf = msg.max_forwards().ok().flatten().unwrap_or(71);
    e.set_max_forwards(mf.saturating_sub(1).min(70));
    if let Some(routes) = spec.routes {
        e.remove_headers(HeaderName::Route);
        if !routes.is_empty() {
            e.push_header(HeaderName::Route, &routes.join(", "));
        }
    }
    if !spec.record_route.is_empty() {
        e.push_header(HeaderName::RecordRoute, &spec.record_route.join(", "));
    }
    if spec.received.is_some() || spec.rport.is_some() {
        e.set_top_via_received(spec.received, spec.rport);
    }
    if let Some(breadth) = spec.max_breadth {
        e.remove_headers(HeaderName::MaxBreadth);
        e.push_header(HeaderName::MaxBreadth, &breadth.to_string());
    }
    HeaderEdit::apply_all(spec.headers, &mut e);
    e.push_header(HeaderName::Via, spec.via);
    e.finish()
}

/// RFC 5393 §5.3.1: the request's Max-Breadth, lowered to ours
/// (`limit`, which also stands in for a missing or unreadable value).
pub fn max_breadth(msg: &SipMessage, limit: u32) -> u32 {
    msg.header(HeaderName::MaxBreadth)
        .and_then(|v| v.trim().parse::<u32>().ok())
        .map_or(limit, |b| b.min(limit))
}

/// What a branch's Max-Breadth header must say: its share when the
/// request forks or already carried one; nothing for a request without
/// one that goes to a single target.
pub fn branch_max_breadth(msg: &SipMessage, share: u32, request: u32) -> Option<u32> {
    let carried = msg.header(HeaderName::MaxBreadth).is_some();
    (carried || share < request).then_some(share)
}

/// Methods that create dialogs and therefore get our Record-Route (§16.6 step 4;
/// we record-route every initial request except REGISTER, like Kamailio's `record_route()`).
pub fn wants_record_route(method: &Method) -> bool {
    !matches!(method, Method::Register | Method::Cancel | Method::Ack)
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;

/// RFC 3581 §4 / RFC 3261 §18.2.1: record where the request really came from
/// in the top Via, so responses find their way back through NAT.
pub fn rfc3581(msg: &SipMessage, source: &crate::net::Source) -> (Option<String>, Option<u16>) {
    let Ok(via) = msg.top_via() else {
        return (None, None);
    };
    let ip = source.remote.ip();
    let wants_rport = matches!(via.rport(), Some(None));
    let host_matches = via.host.is_ip(ip);
    let received = (!host_matches || wants_rport).then(|| switchyard_codec::text::ip_string(ip));
    let rport = wants_rport.then_some(source.remote.port());
    (received, rport)
}

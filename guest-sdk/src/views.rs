//! Typed, lazily parsed views of the records each hook receives.

use serde::de::DeserializeOwned;
use switchyard_codec::{NameAddr, Uri};

use crate::bindings::exports::switchyard::policy::hooks as raw;
use crate::message::{Message, uri_user};
use crate::{Binding, Source, Transport};

fn ctx_json<T: DeserializeOwned>(ctx: &[u8]) -> Option<T> {
    if ctx.is_empty() {
        return None;
    }
    serde_json::from_slice(ctx).ok()
}

/// The address part of `ip:port` or `[v6]:port`.
fn ip_of(remote: &str) -> &str {
    if let Some(rest) = remote.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match remote.rsplit_once(':') {
        Some((ip, _)) => ip,
        None => remote,
    }
}

impl Source {
    /// A source for tests: `remote` as `ip:port`, local `127.0.0.1:5060`.
    pub fn new(transport: Transport, remote: impl Into<String>) -> Self {
        Source {
            transport,
            remote: remote.into(),
            local: "127.0.0.1:5060".into(),
        }
    }

    /// The peer's IP address without the port (no brackets for IPv6).
    pub fn ip(&self) -> &str {
        ip_of(&self.remote)
    }
}

impl Binding {
    /// A binding for tests: q 1.0, one hour left, no Path, no instance.
    pub fn new(contact: impl Into<String>) -> Self {
        Binding {
            contact: contact.into(),
            path: Vec::new(),
            q: 1000,
            expires_in: 3600,
            instance: None,
            reg_id: None,
        }
    }

    /// Sets the Path vector (top first).
    pub fn with_path(mut self, path: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.path = path.into_iter().map(Into::into).collect();
        self
    }

    /// Sets q in thousandths (q=0.5 is 500).
    pub fn with_q(mut self, q: u16) -> Self {
        self.q = q;
        self
    }
}

/// An initial (out-of-dialog) request, the input of [`crate::Policy::on_request`].
#[derive(Debug)]
pub struct Request {
    tenant: String,
    method: String,
    request_uri: String,
    message: Message,
    source: Source,
    bindings: Vec<Binding>,
    ctx: Vec<u8>,
}

impl Request {
    pub(crate) fn from_raw(r: raw::Request) -> Self {
        Request {
            tenant: r.tenant,
            method: r.method,
            request_uri: r.request_uri,
            message: Message::new(r.message),
            source: r.source,
            bindings: r.bindings,
            ctx: r.ctx,
        }
    }

    /// Builds a request from SIP text, as the host would pass it (for
    /// tests): method and Request-URI come from the start line, the source
    /// is UDP from `192.0.2.1:5060`, no bindings, empty ctx. `None` if the
    /// text is not a SIP request.
    pub fn parse(tenant: &str, message: impl Into<Vec<u8>>) -> Option<Self> {
        let message = Message::new(message.into());
        let sip = message.sip()?;
        let method = sip.method()?.as_str().to_owned();
        let request_uri = sip.request_uri_str()?.to_owned();
        Some(Request {
            tenant: tenant.to_owned(),
            method,
            request_uri,
            message,
            source: Source::new(Transport::Udp, "192.0.2.1:5060"),
            bindings: Vec::new(),
            ctx: Vec::new(),
        })
    }

    /// Replaces the prefetched bindings (for tests).
    pub fn with_bindings(mut self, bindings: Vec<Binding>) -> Self {
        self.bindings = bindings;
        self
    }

    /// Replaces the source (for tests).
    pub fn with_source(mut self, source: Source) -> Self {
        self.source = source;
        self
    }

    /// The tenant the request was routed to.
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// The method, e.g. `INVITE` (case-sensitive, RFC 3261 §7.1).
    pub fn method(&self) -> &str {
        &self.method
    }

    /// True for INVITE.
    pub fn is_invite(&self) -> bool {
        self.method == "INVITE"
    }

    /// The Request-URI text, after RFC 3261 §16.4 pre-processing.
    pub fn request_uri_str(&self) -> &str {
        &self.request_uri
    }

    /// The Request-URI, parsed (cheap: one pass over the URI, no copy).
    pub fn request_uri(&self) -> Option<Uri<'_>> {
        Uri::parse(&self.request_uri).ok()
    }

    /// The user part of the Request-URI (the number of a `tel:` URI): the
    /// dialled extension or number.
    pub fn ruri_user(&self) -> Option<&str> {
        self.request_uri().and_then(|u| uri_user(&u))
    }

    /// The Request-URI's address-of-record, `sip:user@host` without port
    /// or parameters (what [`crate::location::lookup`] takes); `None` for
    /// a URI without user part or of another scheme.
    pub fn ruri_aor(&self) -> Option<String> {
        let uri = self.request_uri()?;
        if !uri.is_sip() {
            return None;
        }
        Some(crate::aor(uri.user?, &uri.host.to_string()))
    }

    /// The whole message, parsed lazily.
    pub fn message(&self) -> &Message {
        &self.message
    }

    /// See [`Message::header`].
    pub fn header(&self, name: &str) -> Option<&str> {
        self.message.header(name)
    }

    /// See [`Message::headers`].
    pub fn headers<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.message.headers(name)
    }

    /// The From header, parsed.
    pub fn from(&self) -> Option<NameAddr<'_>> {
        self.message.from()
    }

    /// The To header, parsed.
    pub fn to(&self) -> Option<NameAddr<'_>> {
        self.message.to()
    }

    /// The From URI.
    pub fn from_uri(&self) -> Option<Uri<'_>> {
        self.message.from_uri()
    }

    /// The To URI.
    pub fn to_uri(&self) -> Option<Uri<'_>> {
        self.message.to_uri()
    }

    /// The user part of the From URI: the caller.
    pub fn from_user(&self) -> Option<&str> {
        self.message.from_user()
    }

    /// The user part of the To URI.
    pub fn to_user(&self) -> Option<&str> {
        self.message.to_user()
    }

    /// Where the request came from.
    pub fn source(&self) -> &Source {
        &self.source
    }

    /// Bindings of the Request-URI's address-of-record, prefetched by the
    /// host when it is in one of the tenant's domains (else empty).
    pub fn bindings(&self) -> &[Binding] {
        &self.bindings
    }

    /// The transaction's ctx (empty at the start of a transaction).
    pub fn ctx(&self) -> &[u8] {
        &self.ctx
    }
}

/// A REGISTER, the input of [`crate::Policy::on_register`].
#[derive(Debug)]
pub struct Register {
    tenant: String,
    aor: String,
    contacts: Vec<String>,
    expires: Option<u32>,
    bindings: Vec<Binding>,
    message: Message,
    source: Source,
}

impl Register {
    pub(crate) fn from_raw(r: raw::Register) -> Self {
        Register {
            tenant: r.tenant,
            aor: r.aor,
            contacts: r.contacts,
            expires: r.expires,
            bindings: r.bindings,
            message: Message::new(r.message),
            source: r.source,
        }
    }

    /// Builds a REGISTER view from SIP text (for tests): the AOR is the To
    /// URI without parameters, contacts and Expires come from the headers;
    /// no stored bindings, UDP source `192.0.2.1:5060`.
    pub fn parse(tenant: &str, message: impl Into<Vec<u8>>) -> Option<Self> {
        let message = Message::new(message.into());
        let sip = message.sip()?;
        let to = sip.to().ok()?.uri;
        let aor = match (to.user, to.port) {
            (Some(user), None) => format!("sip:{user}@{}", to.host),
            (Some(user), Some(port)) => format!("sip:{user}@{}:{port}", to.host),
            (None, _) => format!("sip:{}", to.host),
        };
        let contacts = sip
            .header_values(switchyard_codec::HeaderName::Contact)
            .map(str::to_owned)
            .collect();
        let expires = sip.expires().ok().flatten();
        Some(Register {
            tenant: tenant.to_owned(),
            aor,
            contacts,
            expires,
            bindings: Vec::new(),
            source: Source::new(Transport::Udp, "192.0.2.1:5060"),
            message,
        })
    }

    /// Replaces the stored bindings (for tests).
    pub fn with_bindings(mut self, bindings: Vec<Binding>) -> Self {
        self.bindings = bindings;
        self
    }

    /// Replaces the source (for tests).
    pub fn with_source(mut self, source: Source) -> Self {
        self.source = source;
        self
    }

    /// The tenant.
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// The address-of-record, e.g. `sip:101@acme.test`.
    pub fn aor(&self) -> &str {
        &self.aor
    }

    /// The address-of-record, parsed.
    pub fn aor_uri(&self) -> Option<Uri<'_>> {
        Uri::parse(&self.aor).ok()
    }

    /// The user part of the AOR (the extension or account).
    pub fn aor_user(&self) -> Option<&str> {
        self.aor_uri().and_then(|u| uri_user(&u))
    }

    /// The Contact header values as received (`*` for a remove-all).
    pub fn contacts(&self) -> &[String] {
        &self.contacts
    }

    /// True for `Contact: *` (remove every binding).
    pub fn is_remove_all(&self) -> bool {
        self.contacts.iter().any(|c| c.trim() == "*")
    }

    /// The Expires header, if any.
    pub fn expires(&self) -> Option<u32> {
        self.expires
    }

    /// Bindings already stored for the AOR.
    pub fn bindings(&self) -> &[Binding] {
        &self.bindings
    }

    /// The whole message, parsed lazily.
    pub fn message(&self) -> &Message {
        &self.message
    }

    /// See [`Message::header`].
    pub fn header(&self, name: &str) -> Option<&str> {
        self.message.header(name)
    }

    /// Where the REGISTER came from.
    pub fn source(&self) -> &Source {
        &self.source
    }
}

/// A response received on a branch, the input of [`crate::Policy::on_response`].
#[derive(Debug)]
pub struct Response {
    tenant: String,
    status: u16,
    message: Message,
    ctx: Vec<u8>,
}

impl Response {
    pub(crate) fn from_raw(r: raw::Response) -> Self {
        Response {
            tenant: r.tenant,
            status: r.status,
            message: Message::new(r.message),
            ctx: r.ctx,
        }
    }

    /// Builds a response view from SIP text (for tests), with this ctx.
    pub fn parse(tenant: &str, message: impl Into<Vec<u8>>, ctx: Vec<u8>) -> Option<Self> {
        let message = Message::new(message.into());
        let status = message.status()?;
        Some(Response {
            tenant: tenant.to_owned(),
            status,
            message,
            ctx,
        })
    }

    /// The tenant.
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// True for 100..=199.
    pub fn is_provisional(&self) -> bool {
        self.status < 200
    }

    /// The whole response, parsed lazily.
    pub fn message(&self) -> &Message {
        &self.message
    }

    /// See [`Message::header`].
    pub fn header(&self, name: &str) -> Option<&str> {
        self.message.header(name)
    }

    /// The transaction's ctx.
    pub fn ctx(&self) -> &[u8] {
        &self.ctx
    }

    /// The ctx deserialized from JSON (see [`crate::RequestDecision::with_ctx_json`]);
    /// `None` when empty or not this type.
    pub fn ctx_json<T: DeserializeOwned>(&self) -> Option<T> {
        ctx_json(&self.ctx)
    }
}

/// Why the last branches failed.
#[derive(Debug)]
pub enum Cause {
    /// A final response was received; this is the best one (RFC 3261 §16.7 step 6).
    Response(Message),
    /// Every branch timed out (the proxy's local 408).
    Timeout,
    /// The next hops were unreachable (the proxy's local 503).
    Unreachable,
}

/// Every branch of the current targets failed, the input of
/// [`crate::Policy::on_branch_failure`].
#[derive(Debug)]
pub struct BranchFailure {
    tenant: String,
    request: Message,
    best_status: u16,
    cause: Cause,
    targets_tried: Vec<String>,
    ctx: Vec<u8>,
}

impl BranchFailure {
    pub(crate) fn from_raw(f: raw::BranchFailure) -> Self {
        BranchFailure {
            tenant: f.tenant,
            request: Message::new(f.request),
            best_status: f.best_status,
            cause: match f.cause {
                raw::FailureCause::Response(bytes) => Cause::Response(Message::new(bytes)),
                raw::FailureCause::Timeout => Cause::Timeout,
                raw::FailureCause::Unreachable => Cause::Unreachable,
            },
            targets_tried: f.targets_tried,
            ctx: f.ctx,
        }
    }

    /// Builds a failure (for tests): the original request as SIP text, the
    /// status that would go upstream, why, and the ctx the earlier hooks left.
    pub fn new(
        tenant: &str,
        request: impl Into<Vec<u8>>,
        best_status: u16,
        cause: Cause,
        targets_tried: Vec<String>,
        ctx: Vec<u8>,
    ) -> Self {
        BranchFailure {
            tenant: tenant.to_owned(),
            request: Message::new(request.into()),
            best_status,
            cause,
            targets_tried,
            ctx,
        }
    }

    /// The tenant.
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// The original request as received, parsed lazily.
    pub fn request(&self) -> &Message {
        &self.request
    }

    /// The status that would be sent upstream: the best response's, or the
    /// proxy's local 408 (timeout) / 503 (unreachable).
    pub fn best_status(&self) -> u16 {
        self.best_status
    }

    /// Why the branches failed.
    pub fn cause(&self) -> &Cause {
        &self.cause
    }

    /// The best final response, if one was received.
    pub fn best_response(&self) -> Option<&Message> {
        match &self.cause {
            Cause::Response(m) => Some(m),
            _ => None,
        }
    }

    /// True when every branch timed out without a final response.
    pub fn is_timeout(&self) -> bool {
        matches!(self.cause, Cause::Timeout)
    }

    /// True when the next hops were unreachable.
    pub fn is_unreachable(&self) -> bool {
        matches!(self.cause, Cause::Unreachable)
    }

    /// Request-URIs of every branch tried so far, in order.
    pub fn targets_tried(&self) -> &[String] {
        &self.targets_tried
    }

    /// The transaction's ctx.
    pub fn ctx(&self) -> &[u8] {
        &self.ctx
    }

    /// The ctx deserialized from JSON; `None` when empty or not this type.
    pub fn ctx_json<T: DeserializeOwned>(&self) -> Option<T> {
        ctx_json(&self.ctx)
    }
}

/// The end of a transaction, the input of [`crate::Policy::on_complete`].
#[derive(Debug)]
pub struct Summary {
    tenant: String,
    method: String,
    final_status: u16,
    duration_ms: u32,
    targets_tried: Vec<String>,
    ctx: Vec<u8>,
}

impl Summary {
    pub(crate) fn from_raw(s: raw::Summary) -> Self {
        Summary {
            tenant: s.tenant,
            method: s.method,
            final_status: s.final_status,
            duration_ms: s.duration_ms,
            targets_tried: s.targets_tried,
            ctx: s.ctx,
        }
    }

    /// Builds a summary (for tests).
    pub fn new(tenant: &str, method: &str, final_status: u16, duration_ms: u32) -> Self {
        Summary {
            tenant: tenant.to_owned(),
            method: method.to_owned(),
            final_status,
            duration_ms,
            targets_tried: Vec::new(),
            ctx: Vec::new(),
        }
    }

    /// The tenant.
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// The request's method.
    pub fn method(&self) -> &str {
        &self.method
    }

    /// Final status sent upstream; 0 when none was.
    pub fn final_status(&self) -> u16 {
        self.final_status
    }

    /// From request received to final response sent.
    pub fn duration_ms(&self) -> u32 {
        self.duration_ms
    }

    /// Request-URIs of every branch tried, in order.
    pub fn targets_tried(&self) -> &[String] {
        &self.targets_tried
    }

    /// The transaction's ctx.
    pub fn ctx(&self) -> &[u8] {
        &self.ctx
    }

    /// The ctx deserialized from JSON; `None` when empty or not this type.
    pub fn ctx_json<T: DeserializeOwned>(&self) -> Option<T> {
        ctx_json(&self.ctx)
    }
}

impl Request {
    /// The ctx deserialized from JSON; `None` when empty or not this type.
    pub fn ctx_json<T: DeserializeOwned>(&self) -> Option<T> {
        ctx_json(&self.ctx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_ip() {
        assert_eq!(ip_of("192.0.2.1:5060"), "192.0.2.1");
        assert_eq!(ip_of("[2001:db8::1]:5060"), "2001:db8::1");
        assert_eq!(ip_of("192.0.2.1"), "192.0.2.1");
    }

    #[test]
    fn request_from_text() {
        let req = Request::parse(
            "acme",
            "INVITE tel:+15551234;phone-context=x SIP/2.0\r\nFrom: <sip:bob@acme.test>;tag=1\r\nTo: <tel:+15551234>\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\r\n",
        )
        .unwrap();
        assert!(req.is_invite());
        assert_eq!(req.ruri_user(), Some("+15551234"));
        assert_eq!(req.from_user(), Some("bob"));
        assert_eq!(req.source().ip(), "192.0.2.1");
    }

    #[test]
    fn register_from_text() {
        let reg = Register::parse(
            "acme",
            "REGISTER sip:acme.test SIP/2.0\r\nFrom: <sip:101@acme.test>;tag=1\r\nTo: <sip:101@acme.test>\r\nCall-ID: x\r\nCSeq: 1 REGISTER\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nContact: <sip:101@192.0.2.5>, <sip:101@192.0.2.6>\r\nExpires: 600\r\n\r\n",
        )
        .unwrap();
        assert_eq!(reg.aor(), "sip:101@acme.test");
        assert_eq!(reg.aor_user(), Some("101"));
        assert_eq!(reg.contacts().len(), 2);
        assert_eq!(reg.expires(), Some(600));
        assert!(!reg.is_remove_all());
    }
}

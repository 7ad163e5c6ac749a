//! Host hook types ↔ generated WIT types, and the validation of everything a
//! guest decides.
//!
//! Inbound (host → guest) fills owned records, in place for the hot hooks
//! (see [`Scratch`]). Outbound (guest → host) is untrusted
//! input: a decision that could corrupt the proxy's output (a 2xx reply, a
//! header value with CR/LF, a malformed URI, oversized edits) is refused as a
//! whole and counted as a failure; an edit of a field the proxy owns (Via,
//! CSeq, ...) is dropped and counted, the rest of the decision stands.

use std::fmt::{self, Write as _};
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use switchyard_codec::text::socket_addr_string;
use switchyard_codec::{Scheme, Uri};

use super::bindings::{hooks, types};
use super::host_api::unquote_instance;
use crate::{
    BranchFailure, CompletionSummary, FailureCause, FailureDecision, HeaderEdit, RegisterDecision,
    RegisterInfo, RegisterLimits, Reply, RequestAction, RequestDecision, RequestInfo,
    ResponseAction, ResponseDecision, ResponseInfo, TargetGroup,
};
use switchyard_location::Binding;
use switchyard_proto::net::{Source, Transport};
use switchyard_proto::proxy::fork::Target;

/// Total bytes of header names and values one decision may add.
pub const MAX_HEADER_BYTES: usize = 8 << 10;
/// Most targets in one relay, over all groups.
pub const MAX_TARGETS: usize = 32;
/// Most Route entries per target.
pub const MAX_ROUTES: usize = 8;
/// Largest per-transaction ctx, in bytes.
pub const MAX_CTX_BYTES: usize = 4 << 10;
/// Longest reason phrase, in bytes.
pub const MAX_REASON_BYTES: usize = 128;
/// Longest URI, in bytes.
pub const MAX_URI_BYTES: usize = 1024;

/// A guest decision the host refuses, with what was wrong for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadDecision(pub String);

impl fmt::Display for BadDecision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn bad<T>(what: impl Into<String>) -> Result<T, BadDecision> {
    Err(BadDecision(what.into()))
}

// ---- host → guest -------------------------------------------------------

/// The owned WIT records of the hot hooks, kept per instance and refilled in
/// place: once the buffers have grown to a typical message, lowering a
/// request copies bytes but allocates nothing.
pub(crate) struct Scratch {
    pub request: hooks::Request,
    pub response: hooks::Response,
    /// The source `request.source` was formatted from: formatting socket
    /// addresses costs more than the rest of the refill, and consecutive
    /// requests often share a source (a trunk, an edge proxy).
    formatted: Option<Source>,
}

impl Scratch {
    pub fn new() -> Self {
        Scratch {
            request: hooks::Request {
                tenant: String::new(),
                method: String::new(),
                request_uri: String::new(),
                message: Vec::new(),
                source: types::Source {
                    transport: types::Transport::Udp,
                    remote: String::new(),
                    local: String::new(),
                },
                bindings: Vec::new(),
                ctx: Vec::new(),
            },
            response: hooks::Response {
                tenant: String::new(),
                status: 0,
                message: Vec::new(),
                ctx: Vec::new(),
            },
            formatted: None,
        }
    }

    pub fn fill_request(
        &mut self,
        req: &RequestInfo<'_>,
        ctx: &[u8],
        now: SystemTime,
    ) -> &hooks::Request {
        let dst = &mut self.request;
        set_str(&mut dst.tenant, req.tenant);
        set_str(&mut dst.method, req.method);
        set_str(&mut dst.request_uri, req.request_uri);
        set_bytes(&mut dst.message, req.message);
        if self.formatted != Some(req.source) {
            fill_source(&mut dst.source, &req.source);
            self.formatted = Some(req.source);
        }
        dst.bindings.truncate(req.bindings.len());
        for (i, binding) in req.bindings.iter().enumerate() {
            match dst.bindings.get_mut(i) {
                Some(slot) => fill_binding(slot, binding, now),
                None => dst.bindings.push(wit_binding(binding, now)),
            }
        }
        set_bytes(&mut dst.ctx, ctx);
        &self.request
    }

    pub fn fill_response(&mut self, resp: &ResponseInfo<'_>, ctx: &[u8]) -> &hooks::Response {
        let dst = &mut self.response;
        set_str(&mut dst.tenant, resp.tenant);
        dst.status = resp.status;
        set_bytes(&mut dst.message, resp.message);
        set_bytes(&mut dst.ctx, ctx);
        &self.response
    }
}

fn set_str(dst: &mut String, src: &str) {
    dst.clear();
    dst.push_str(src);
}

fn set_bytes(dst: &mut Vec<u8>, src: &[u8]) {
    dst.clear();
    dst.extend_from_slice(src);
}

fn set_addr(dst: &mut String, addr: SocketAddr) {
    dst.clear();
    // Writing to a String cannot fail.
    let _ = write!(dst, "{addr}");
}

fn fill_source(dst: &mut types::Source, src: &Source) {
    dst.transport = wit_transport(src.transport);
    set_addr(&mut dst.remote, src.remote);
    set_addr(&mut dst.local, src.local);
}

fn wit_transport(transport: Transport) -> types::Transport {
    match transport {
        Transport::Udp => types::Transport::Udp,
        Transport::Tcp => types::Transport::Tcp,
        Transport::Tls => types::Transport::Tls,
        Transport::Ws => types::Transport::Ws,
        Transport::Wss => types::Transport::Wss,
    }
}

pub(crate) fn wit_source(src: &Source) -> types::Source {
    types::Source {
        transport: wit_transport(src.transport),
        remote: socket_addr_string(src.remote),
        local: socket_addr_string(src.local),
    }
}

fn fill_binding(dst: &mut types::Binding, b: &Binding, now: SystemTime) {
    set_str(&mut dst.contact, &b.contact);
    dst.path.clone_from(&b.path);
    dst.q = b.q_or_default();
    dst.expires_in = b.remaining_secs(now);
    match (&mut dst.instance, b.instance.as_deref()) {
        (Some(slot), Some(instance)) => set_str(slot, unquote_instance(instance)),
        (slot, instance) => *slot = instance.map(|i| unquote_instance(i).to_owned()),
    }
    dst.reg_id = b.reg_id;
}

/// A stored binding as the WIT describes it (q defaults to 1000, expiry in
/// seconds from `now`, `+sip.instance` without `<>` and quotes).
pub(crate) fn wit_binding(b: &Binding, now: SystemTime) -> types::Binding {
    types::Binding {
        contact: b.contact.clone(),
        path: b.path.clone(),
        q: b.q_or_default(),
        expires_in: b.remaining_secs(now),
        instance: b
            .instance
            .as_deref()
            .map(|i| unquote_instance(i).to_owned()),
        reg_id: b.reg_id,
    }
}

pub(crate) fn wit_register(
    reg: &RegisterInfo<'_>,
    stored: &[Binding],
    now: SystemTime,
) -> hooks::Register {
    hooks::Register {
        tenant: reg.tenant.to_owned(),
        aor: reg.aor.to_owned(),
        contacts: reg.contacts.iter().map(|c| (*c).to_owned()).collect(),
        expires: reg.expires,
        bindings: stored.iter().map(|b| wit_binding(b, now)).collect(),
        message: reg.message.to_vec(),
        source: wit_source(&reg.source),
    }
}

pub(crate) fn wit_branch_failure(f: &BranchFailure<'_>, ctx: &[u8]) -> hooks::BranchFailure {
    hooks::BranchFailure {
        tenant: f.tenant.to_owned(),
        request: f.request.to_vec(),
        best_status: f.best_status,
        cause: match f.cause {
            FailureCause::Response(bytes) => hooks::FailureCause::Response(bytes.to_vec()),
            FailureCause::Timeout => hooks::FailureCause::Timeout,
            FailureCause::Unreachable => hooks::FailureCause::Unreachable,
        },
        targets_tried: f.targets_tried.to_vec(),
        ctx: ctx.to_vec(),
    }
}

pub(crate) fn wit_summary(s: &CompletionSummary<'_>, ctx: &[u8]) -> hooks::Summary {
    hooks::Summary {
        tenant: s.tenant.to_owned(),
        method: s.method.to_owned(),
        final_status: s.final_status,
        duration_ms: millis(s.duration),
        targets_tried: s.targets_tried.to_vec(),
        ctx: ctx.to_vec(),
    }
}

/// `duration` in whole milliseconds, saturating.
fn millis(duration: Duration) -> u32 {
    u32::try_from(duration.as_millis()).unwrap_or(u32::MAX)
}

// ---- guest → host -------------------------------------------------------

/// Converts and checks decisions; counts the header edits it dropped.
#[derive(Debug, Default)]
pub(crate) struct Decoder {
    /// Edits of proxy-owned fields dropped from the decisions decoded.
    pub ignored_edits: u64,
    header_bytes: usize,
}

impl Decoder {
    pub fn request(
        &mut self,
        d: hooks::RequestDecision,
    ) -> Result<(RequestDecision, Option<Vec<u8>>), BadDecision> {
        let action = match d.action {
            hooks::RequestAction::Proceed => RequestAction::Continue,
            hooks::RequestAction::Reply(reply) => RequestAction::Reply(self.reply(reply)?),
            hooks::RequestAction::Relay(groups) => RequestAction::Relay(self.groups(groups)?),
            hooks::RequestAction::Redirect(contacts) => {
                RequestAction::Redirect(redirect(contacts)?)
            }
        };
        let headers = self.edits(d.headers)?;
        let request_uri = match d.request_uri {
            Some(uri) => Some(sip_uri(uri, "request-uri")?),
            None => None,
        };
        let decision = RequestDecision {
            action,
            headers,
            request_uri,
        };
        Ok((decision, ctx(d.ctx)?))
    }

    pub fn register(
        &mut self,
        d: hooks::RegisterDecision,
    ) -> Result<RegisterDecision, BadDecision> {
        Ok(match d {
            hooks::RegisterDecision::Allow => RegisterDecision::Allow,
            hooks::RegisterDecision::Reject(reply) => RegisterDecision::Reject(self.reply(reply)?),
            hooks::RegisterDecision::Limit(limits) => RegisterDecision::Limit(RegisterLimits {
                max_contacts: limits.max_contacts,
                max_expires: limits.max_expires,
            }),
        })
    }

    pub fn response(
        &mut self,
        d: hooks::ResponseDecision,
    ) -> Result<(ResponseDecision, Option<Vec<u8>>), BadDecision> {
        let action = match d.action {
            hooks::ResponseAction::Pass => ResponseAction::Pass,
            hooks::ResponseAction::Drop => ResponseAction::Drop,
        };
        let headers = self.edits(d.headers)?;
        Ok((ResponseDecision { action, headers }, ctx(d.ctx)?))
    }

    pub fn branch_failure(
        &mut self,
        d: hooks::FailureDecision,
    ) -> Result<(FailureDecision, Option<Vec<u8>>), BadDecision> {
        let decision = match d.action {
            hooks::FailureAction::Fail => FailureDecision::Fail,
            hooks::FailureAction::Relay(groups) => FailureDecision::Relay(self.groups(groups)?),
            hooks::FailureAction::Reply(reply) => FailureDecision::Reply(self.reply(reply)?),
        };
        Ok((decision, ctx(d.ctx)?))
    }

    fn reply(&mut self, reply: types::Reply) -> Result<Reply, BadDecision> {
        if !(300..=699).contains(&reply.code) {
            return bad(format!("reply code {} is not 300..=699", reply.code));
        }
        if reply.reason.len() > MAX_REASON_BYTES
            || reply.reason.bytes().any(|b| b.is_ascii_control())
        {
            return bad("reply reason is too long or contains control characters");
        }
        let mut headers = Vec::with_capacity(reply.headers.len());
        for header in reply.headers {
            let edit = HeaderEdit::Add {
                name: header.name,
                value: header.value,
            };
            if let Some(HeaderEdit::Add { name, value }) = self.edit(edit)? {
                headers.push((name, value));
            }
        }
        Ok(Reply {
            code: reply.code,
            reason: reply.reason,
            headers,
        })
    }

    fn edits(&mut self, edits: Vec<types::HeaderEdit>) -> Result<Vec<HeaderEdit>, BadDecision> {
        let mut out = Vec::with_capacity(edits.len());
        for edit in edits {
            let edit = match edit {
                types::HeaderEdit::Add(h) => HeaderEdit::Add {
                    name: h.name,
                    value: h.value,
                },
                types::HeaderEdit::Set(h) => HeaderEdit::Set {
                    name: h.name,
                    value: h.value,
                },
                types::HeaderEdit::Remove(name) => HeaderEdit::Remove { name },
            };
            out.extend(self.edit(edit)?);
        }
        Ok(out)
    }

    /// Refuses header injection and oversized edits; drops (and counts)
    /// edits [`HeaderEdit::is_allowed`] rejects for other reasons.
    fn edit(&mut self, edit: HeaderEdit) -> Result<Option<HeaderEdit>, BadDecision> {
        let value = match &edit {
            HeaderEdit::Add { value, .. } | HeaderEdit::Set { value, .. } => value.as_str(),
            HeaderEdit::Remove { .. } => "",
        };
        if value.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
            return bad(format!(
                "header {:?}: value contains CR, LF or NUL",
                truncated(edit.name())
            ));
        }
        self.header_bytes += edit.name().len() + value.len();
        if self.header_bytes > MAX_HEADER_BYTES {
            return bad(format!("header edits exceed {MAX_HEADER_BYTES} bytes"));
        }
        if edit.is_allowed() {
            Ok(Some(edit))
        } else {
            self.ignored_edits += 1;
            Ok(None)
        }
    }

    fn groups(&mut self, groups: Vec<types::TargetGroup>) -> Result<Vec<TargetGroup>, BadDecision> {
        if groups.is_empty() {
            return bad("relay without target groups");
        }
        let total: usize = groups.iter().map(|g| g.targets.len()).sum();
        if total > MAX_TARGETS {
            return bad(format!("relay to {total} targets (at most {MAX_TARGETS})"));
        }
        groups
            .into_iter()
            .enumerate()
            .map(|(i, group)| {
                if group.targets.is_empty() {
                    return bad(format!("relay group {i} has no targets"));
                }
                let targets = group
                    .targets
                    .into_iter()
                    .map(target)
                    .collect::<Result<_, _>>()?;
                let timeout = (group.timeout_ms > 0)
                    .then(|| Duration::from_millis(u64::from(group.timeout_ms)));
                Ok(TargetGroup { targets, timeout })
            })
            .collect()
    }
}

fn target(target: types::Target) -> Result<Target, BadDecision> {
    if target.route.len() > MAX_ROUTES {
        return bad(format!(
            "target with {} routes (at most {MAX_ROUTES})",
            target.route.len()
        ));
    }
    let route = target
        .route
        .into_iter()
        .map(|entry| {
            let inner = entry.trim();
            let inner = inner
                .strip_prefix('<')
                .and_then(|t| t.strip_suffix('>'))
                .unwrap_or(inner);
            check_sip_uri(inner, "route")?;
            Ok(entry)
        })
        .collect::<Result<_, _>>()?;
    let mut out = Target::new(sip_uri(target.uri, "target")?);
    out.route = route;
    Ok(out)
}

fn redirect(contacts: Vec<String>) -> Result<Vec<String>, BadDecision> {
    if contacts.is_empty() || contacts.len() > MAX_TARGETS {
        return bad(format!(
            "redirect with {} contacts (1..={MAX_TARGETS})",
            contacts.len()
        ));
    }
    for contact in &contacts {
        // Any scheme may be a redirect contact (tel:, mailto:), but it must
        // be one well-formed URI.
        if contact.len() > MAX_URI_BYTES || Uri::parse(contact).is_err() {
            return bad(format!(
                "redirect contact {:?} is not a URI",
                truncated(contact)
            ));
        }
    }
    Ok(contacts)
}

fn sip_uri(uri: String, what: &str) -> Result<String, BadDecision> {
    check_sip_uri(&uri, what)?;
    Ok(uri)
}

fn check_sip_uri(uri: &str, what: &str) -> Result<(), BadDecision> {
    let ok = uri.len() <= MAX_URI_BYTES
        && matches!(Uri::parse(uri), Ok(parsed) if matches!(parsed.scheme, Scheme::Sip | Scheme::Sips));
    if ok {
        Ok(())
    } else {
        bad(format!(
            "{what} {:?} is not a SIP or SIPS URI",
            truncated(uri)
        ))
    }
}

fn ctx(ctx: Option<Vec<u8>>) -> Result<Option<Vec<u8>>, BadDecision> {
    match ctx {
        Some(data) if data.len() > MAX_CTX_BYTES => bad(format!(
            "ctx of {} bytes (at most {MAX_CTX_BYTES})",
            data.len()
        )),
        ctx => Ok(ctx),
    }
}

/// The start of a guest string, for a log line.
fn truncated(text: &str) -> &str {
    let mut end = text.len().min(64);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
#[path = "convert_tests.rs"]
mod tests;

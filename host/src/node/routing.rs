//! Deciding where a new request goes: RFC 3261 §16.3 validation, §16.4 route
//! pre-processing, the registrar, the policy's `on_request` hook and §16.5
//! target determination from the location store.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use switchyard_codec::{Method, SipMessage, Uri};
use tracing::{debug, warn};

use super::core::Core;
use super::proxy_tx::{Forwarding, Output, TxRef};
use crate::location::{Aor, Binding};
use crate::net::Source;
use crate::policy::{PolicyCtx, RegisterDecision, RegisterInfo, RequestDecision, RequestInfo};
use crate::proxy::fork::Target;
use crate::proxy::request::{self, Reject};

pub(crate) async fn route(
    core: &Arc<Core>,
    tx: &TxRef,
    msg: &SipMessage,
    source: Source,
) -> Vec<Output> {
    let now = Instant::now();
    let method = msg.method().cloned().unwrap_or(Method::Options);
    let mut out = Vec::new();
    if method == Method::Invite {
        // §16.2: answer 100 at once (before any store lookup) so the UAC
        // stops retransmitting over UDP.
        let trying = tx.lock().respond(100, "Trying", &[], now);
        core.execute(tx, trying).await;
    }
    let identity = &core.wiring().identity;
    if let Err(rej) = request::validate(msg, identity) {
        if rej.code == 483 || rej.code == 482 {
            core.stats.rejected.inc();
        }
        out.extend(tx.lock().reject(&rej, now));
        return out;
    }
    let routes = match request::preprocess_routes(msg, identity) {
        Ok(r) => r,
        Err(rej) => {
            out.extend(tx.lock().reject(&rej, now));
            return out;
        }
    };
    let Ok(ruri) = Uri::parse(&routes.request_uri) else {
        out.extend(tx.lock().reject(&Reject::new(400, "Bad Request-URI"), now));
        return out;
    };
    let to_us = routes.routes.is_empty();
    let our_domain = identity.is_our_domain(&ruri.host);
    let tenant = core.config.tenant_of(&ruri.host.to_string()).to_string();
    let policy = core.policies.policy_for(&tenant);
    let mut pctx = PolicyCtx::default();

    // Requests for the proxy itself.
    if to_us
        && (msg.max_forwards().ok().flatten() == Some(0) || identity.is_addressed_to_proxy(&ruri))
    {
        match method {
            Method::Options => {
                let allow = [
                    ("Allow".to_string(), ALLOW.to_string()),
                    ("Accept".into(), "application/sdp".into()),
                ];
                out.extend(tx.lock().respond(200, "OK", &allow, now));
                return out;
            }
            Method::Register if our_domain => {}
            _ if msg.max_forwards().ok().flatten() == Some(0) => {
                out.extend(tx.lock().reject(&Reject::new(483, "Too Many Hops"), now));
                return out;
            }
            _ => {}
        }
    }

    if method == Method::Register && to_us && our_domain {
        let info = RegisterInfo {
            tenant: &tenant,
            aor: msg.to().map(|t| t.raw).unwrap_or(""),
            contacts: msg
                .header_values(switchyard_codec::HeaderName::Contact)
                .count(),
            expires: msg.expires().ok().flatten(),
            source: source.remote,
        };
        if let RegisterDecision::Reject { code, reason } = policy.on_register(&info, &mut pctx) {
            out.extend(tx.lock().reject(&Reject::new(code, reason), now));
            return out;
        }
        let data = crate::registrar::handle(
            core.store.as_ref(),
            msg,
            &core.config.registrar,
            source,
            Some(&core.config.node_id),
            SystemTime::now(),
        )
        .await;
        let code = status_of(&data);
        out.extend(tx.lock().respond_bytes(code, data, now));
        return out;
    }

    let initial = msg.to().map(|t| t.tag().is_none()).unwrap_or(true);
    let mut bindings: Vec<Binding> = Vec::new();
    let mut targets = if !to_us {
        // Loose routing: the Request-URI stays, the next hop is the top Route.
        vec![Target::new(routes.request_uri.clone())]
    } else if our_domain && ruri.user.is_some() {
        let Ok(aor) = Aor::new(ruri.user, &ruri.host.to_string()) else {
            out.extend(tx.lock().reject(&Reject::new(404, "Not Found"), now));
            return out;
        };
        match core.store.lookup(&aor, SystemTime::now()).await {
            Ok(b) => bindings = b,
            Err(e) => {
                warn!(%aor, error = %e, "location lookup failed");
                let mut rej = Reject::new(503, "Location Store Unavailable");
                rej.headers
                    .push(("Retry-After".into(), e.retry_after_secs().to_string()));
                out.extend(tx.lock().reject(&rej, now));
                return out;
            }
        }
        bindings.iter().map(target_of).collect()
    } else if identity.is_addressed_to_proxy(&ruri) {
        out.extend(tx.lock().reject(&Reject::new(404, "Not Found"), now));
        return out;
    } else {
        vec![Target::new(routes.request_uri.clone())]
    };

    if initial {
        let info = RequestInfo {
            tenant: &tenant,
            method: method.as_str(),
            request_uri: &routes.request_uri,
            message: msg.as_bytes(),
            transport: source.transport,
            source: source.remote,
            bindings: &bindings,
        };
        match policy.on_request(&info, &mut pctx) {
            RequestDecision::Continue => {}
            RequestDecision::Reply {
                code,
                reason,
                headers,
            } => {
                out.extend(tx.lock().respond(code, &reason, &headers, now));
                return out;
            }
            RequestDecision::Relay { targets: t } => targets = t,
            RequestDecision::Redirect { contacts } => {
                let contact = contacts
                    .iter()
                    .map(|c| format!("<{c}>"))
                    .collect::<Vec<_>>()
                    .join(", ");
                out.extend(tx.lock().respond(
                    302,
                    "Moved Temporarily",
                    &[("Contact".into(), contact)],
                    now,
                ));
                return out;
            }
        }
    }
    debug!(targets = targets.len(), initial, "forking");

    let (received, rport) = rfc3581(msg, &source);
    let forwarding = Forwarding {
        record_route: initial && request::wants_record_route(&method),
        routes,
        received,
        rport,
        loop_hash: request::loop_hash(msg),
    };
    let mut guard = tx.lock();
    guard.tenant = tenant;
    out.extend(guard.start_fork(targets, forwarding, policy, pctx, now));
    out
}

pub(crate) const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, INFO, UPDATE, PRACK, SUBSCRIBE, NOTIFY, REFER, MESSAGE";

fn target_of(b: &Binding) -> Target {
    Target {
        uri: b.contact.clone(),
        q: b.q_or_default(),
        route: b.path.clone(),
    }
}

/// RFC 3581 §4 / RFC 3261 §18.2.1: record where the request really came from
/// in the top Via, so responses find their way back through NAT.
pub(crate) fn rfc3581(msg: &SipMessage, source: &Source) -> (Option<String>, Option<u16>) {
    let Ok(via) = msg.top_via() else {
        return (None, None);
    };
    let ip = source.remote.ip().to_string();
    let wants_rport = matches!(via.rport(), Some(None));
    let host_matches = via.host.to_string().trim_matches(|c| c == '[' || c == ']') == ip;
    let received = (!host_matches || wants_rport).then_some(ip);
    let rport = wants_rport.then_some(source.remote.port());
    (received, rport)
}

/// The status code of a response we built ourselves (`SIP/2.0 NNN ...`).
fn status_of(response: &[u8]) -> u16 {
    response
        .get(8..11)
        .and_then(|d| std::str::from_utf8(d).ok())
        .and_then(|d| d.parse().ok())
        .unwrap_or(500)
}

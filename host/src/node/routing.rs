//! Deciding where a new request goes: RFC 3261 §16.3 validation, §16.4 route
//! pre-processing, the registrar, the policy's `on_request` hook and §16.5
//! target determination from the location store.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use switchyard_codec::{Method, SipMessage, Uri};
use tracing::{debug, warn};

use super::auth::{AuthStep, unix_now};
use super::core::{Core, TxRef};
use crate::cluster::ContactRewrite;
use crate::location::{Aor, Binding};
use crate::net::Source;
use crate::policy::{
    Origin, PolicyCtx, RegisterDecision, RegisterInfo, Reply, RequestAction, RequestInfo,
    TargetGroup,
};
use crate::proxy::fork::{ForkLimits, Target};
use crate::proxy::request::{self, Reject};
use crate::registrar::Limits;
use switchyard_proto::edge::{self, ClusterTarget, one_flow_per_instance, target_of};
use switchyard_proto::proxy_tx::{Forwarding, Output};

pub(crate) async fn route(
    core: &Arc<Core>,
    tx: &TxRef,
    msg: &SipMessage,
    source: Source,
) -> Vec<Output> {
    let now = Instant::now();
    let method = msg.method().cloned().unwrap_or(Method::Options);
    let mut out = Vec::new();
    let identity = &core.wiring().edge.identity;
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
    let initial = msg.to().map(|t| t.tag().is_none()).unwrap_or(true);
    let our_domain = identity.is_our_aor(&ruri);
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

    let register_for_us = method == Method::Register && to_us && our_domain;
    let origin = match core
        .authenticate(msg, source.remote.ip(), &ruri, &routes, register_for_us)
        .await
    {
        AuthStep::Proceed(origin) => origin,
        AuthStep::Challenge(c) => {
            let now = Instant::now();
            out.extend(tx.lock().respond_once(c.code, c.reason, &c.headers, now));
            return out;
        }
        AuthStep::Forbid(rej) => {
            out.extend(
                tx.lock()
                    .respond_once(rej.code, &rej.reason, &rej.headers, Instant::now()),
            );
            return out;
        }
    };
    // Every await (the subscriber store, the nonce ledger, the location
    // store, a send) moves the clock: timers are armed from a fresh `now`.
    let now = Instant::now();
    if method == Method::Invite {
        // §16.2: answer 100 at once (before any store lookup) so the UAC
        // stops retransmitting over UDP; not before the request is known
        // to be one we route (a spoofed INVITE gets one answer, not two).
        let trying = tx.lock().respond(100, "Trying", &[], now);
        core.execute(tx, trying).await;
    }
    let now = Instant::now();

    if register_for_us {
        let aor = msg.to().ok().map(|t| t.uri.to_string());
        let info = RegisterInfo {
            tenant: &tenant,
            origin: &origin,
            aor: aor.as_deref().unwrap_or(""),
            contacts: msg
                .header_values(switchyard_codec::HeaderName::Contact)
                .collect(),
            expires: msg.expires().ok().flatten(),
            message: msg.as_bytes(),
            source,
        };
        let limits = match policy.on_register(&info, &mut pctx) {
            RegisterDecision::Allow => Limits::default(),
            RegisterDecision::Limit(l) => Limits {
                max_bindings: l.max_contacts,
                max_expires: l.max_expires,
            },
            RegisterDecision::Reject(reply) => {
                out.extend(reply_with(tx, &reply, now));
                return out;
            }
        };
        // The edge's Path (RFC 3327 §4): a REGISTER straight from a UA is
        // stored with our flow token, so every node routes to it through us.
        let first_hop = edge::is_first_hop(msg);
        let with_path = if first_hop {
            core.edge().add_edge_path(msg, source, unix_now())
        } else {
            None
        };
        let register = with_path.as_ref().unwrap_or(msg);
        let ctx = crate::registrar::RegisterContext {
            source,
            node: Some(&core.config.node_id),
            first_hop,
            own_path: with_path.is_some() || core.edge().top_path_is_ours(msg, unix_now()),
        };
        let data = crate::registrar::handle_in(
            core.store.as_ref(),
            register,
            &core.config.registrar,
            &ctx,
            limits,
            Some(&core.cluster),
            SystemTime::now(),
        )
        .await;
        let now = Instant::now();
        let code = status_of(&data);
        if code == 403 {
            // The registrar's only 403: `max_contacts` reached.
            core.stats.contacts_capped.inc();
        }
        out.extend(tx.lock().respond_bytes(code, data, now));
        return out;
    }

    // RFC 5626 §5.3: our own Record-Route entry with the flow token of the
    // UA this in-dialog request is going to.
    let edge = core.edge();
    let dialog_flow = edge.flow_from_routes(&routes.popped, &routes.routes, source, unix_now());
    let mut targets = match default_targets(core, &routes.request_uri, &ruri, to_us, initial).await
    {
        Ok(t) => t,
        Err(rej) => {
            out.extend(reject_unvouched(tx, &origin, &rej, Instant::now()));
            return out;
        }
    };
    let mut now = Instant::now();

    let mut headers = Vec::new();
    if initial {
        let info = RequestInfo {
            tenant: &tenant,
            method: method.as_str(),
            origin: &origin,
            request_uri: &routes.request_uri,
            message: msg.as_bytes(),
            source,
            bindings: &targets.bindings,
        };
        let decision = policy.on_request(&info, &mut pctx);
        headers = decision.headers;
        match decision.action {
            RequestAction::Continue => {
                if let Some(new_uri) = decision.request_uri {
                    // A rewritten Request-URI is routed as if it had arrived
                    // that way: looked up again when it is ours.
                    let Ok(parsed) = Uri::parse(&new_uri) else {
                        warn!(uri = %new_uri, "policy rewrote the Request-URI to an invalid URI");
                        out.extend(tx.lock().reject(&Reject::new(500, "Policy Error"), now));
                        return out;
                    };
                    targets = match default_targets(core, &new_uri, &parsed, to_us, initial).await {
                        Ok(t) => t,
                        Err(rej) => {
                            out.extend(reject_unvouched(tx, &origin, &rej, Instant::now()));
                            return out;
                        }
                    };
                    now = Instant::now();
                }
            }
            RequestAction::Reply(reply) => {
                out.extend(reply_with(tx, &reply, now));
                return out;
            }
            RequestAction::Relay(groups) => {
                targets.targets = TargetGroup::into_targets(groups);
            }
            RequestAction::Redirect(contacts) => {
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
    if matches!(origin, Origin::Authenticated { .. }) && method != Method::Register {
        // Our realm's credentials end here (Kamailio's consume_credentials).
        headers.push(crate::policy::HeaderEdit::Remove {
            name: "Proxy-Authorization".into(),
        });
    }
    let mut targets = targets.targets;
    if method == Method::Register
        && let Some(path) = edge.foreign_register_path(msg, source, unix_now())
    {
        headers.push(path);
    }
    if let Some(flow) = dialog_flow {
        for t in &mut targets {
            t.flow.get_or_insert(flow);
        }
    }
    if targets.is_empty() && origin == Origin::Anonymous {
        // §16.5's empty target set (nobody registered): 480, which the
        // fork would send with a transaction's retransmissions.
        let rej = Reject::new(480, "Temporarily Unavailable");
        out.extend(reject_unvouched(tx, &origin, &rej, now));
        return out;
    }
    debug!(targets = targets.len(), initial, "forking");

    let record_route = initial && request::wants_record_route(&method);
    // The edge's side of a dialog-forming request from its UA: the UA's
    // Contact may be rewritten, and when the UA can only be reached on the
    // flow it came on, its token goes into our Record-Route.
    let edge_of_caller = record_route && edge::is_first_hop(msg);
    let ua_flow = (edge_of_caller && edge::dialog_needs_flow(msg, source)).then_some(source);
    let token_expiry_secs = edge.dialog_token_expiry(unix_now());
    if edge_of_caller {
        let domain = msg
            .from()
            .map(|f| f.uri.host.to_string())
            .unwrap_or_default();
        let mode = core.contact_rewrite_for(&domain);
        if let Some(edit) = edge.rewrite_contact(msg, source, mode, token_expiry_secs) {
            headers.push(edit);
        }
    }
    let callee_domain = msg.to().map(|t| t.uri.host.to_string()).unwrap_or_default();
    let (received, rport) = rfc3581(msg, &source);
    let forwarding = Forwarding {
        record_route,
        ua_flow,
        callee_rewrite: record_route.then(|| core.contact_rewrite_for(&callee_domain)),
        token_expiry_secs,
        routes,
        received,
        rport,
        loop_hash: request::loop_hash(msg),
        headers,
        dialog_token: (record_route && core.auth.is_some()).then(|| {
            core.cluster.seal_dialog(crate::cluster::DialogToken {
                started_secs: super::auth::unix_now(),
            })
        }),
        fork_limits: ForkLimits {
            breadth: request::max_breadth(msg, core.config.limits.max_breadth),
            max_branches: core.config.limits.max_branches,
        },
    };
    let mut guard = tx.lock();
    guard.tenant = tenant;
    // In-dialog requests take no hooks at all: their Request-URI is a
    // contact (no tenant domain), and their policy's on-request never ran,
    // so on-response and on-branch-failure would see another tenant's
    // policy with an empty ctx.
    // A tenant without a policy has nothing to say after routing: its
    // responses, failures and completions skip the hook round.
    let policy = initial.then_some(policy).filter(|p| !p.is_default());
    out.extend(guard.start_fork(targets, forwarding, policy, pctx, now));
    out
}

/// The target set of RFC 3261 §16.5 and the bindings it came from.
pub(super) struct DefaultTargets {
    pub targets: Vec<Target>,
    pub bindings: Vec<Binding>,
}

/// §16.5: the bindings of an AOR in our domains, else the Request-URI
/// itself (loose routing keeps it; the next hop is the top Route).
/// A routing failure (404, 480...) answered to a request nobody vouched
/// for (`[auth]` on, a stranger) is sent once, without the transaction's
/// retransmissions: its source may be spoofed, and a scan of numbers from
/// forged addresses would otherwise get every 404 up to eleven times
/// (Timer G). Authenticated and trusted callers get the full transaction.
fn reject_unvouched(tx: &TxRef, origin: &Origin, rej: &Reject, now: Instant) -> Vec<Output> {
    if *origin == Origin::Anonymous {
        tx.lock()
            .respond_once(rej.code, &rej.reason, &rej.headers, now)
    } else {
        tx.lock().reject(rej, now)
    }
}

pub(super) async fn lookup(core: &Core, aor: &Aor) -> Result<Vec<Binding>, Reject> {
    core.store
        .lookup(aor, SystemTime::now())
        .await
        .map_err(|e| {
            warn!(%aor, error = %e, "location lookup failed");
            let mut rej = Reject::new(503, "Location Store Unavailable");
            rej.headers
                .push(("Retry-After".into(), e.retry_after_secs().to_string()));
            rej
        })
}

/// §16.5 target determination for a request with no Route left:
/// - a GRUU or a Contact an edge rewrote: resolved from the URI (any node);
/// - an in-dialog request: its Request-URI is the peer's remote target
///   (§12.2), forwarded as it is, whatever its host: a phone on the
///   proxy's own host has a Contact in "our" domain with another port;
/// - an address-of-record of ours: the location store;
/// - otherwise the Request-URI itself.
async fn default_targets(
    core: &Core,
    request_uri: &str,
    ruri: &Uri<'_>,
    to_us: bool,
    initial: bool,
) -> Result<DefaultTargets, Reject> {
    let identity = &core.wiring().edge.identity;
    let only = |uri: &str| DefaultTargets {
        targets: vec![Target::new(uri)],
        bindings: Vec::new(),
    };
    if !to_us {
        return Ok(only(request_uri));
    }
    if let Some(targets) = cluster_targets(core, ruri).await {
        return targets;
    }
    if !initial && !identity.reaches_me(ruri) {
        return Ok(only(request_uri));
    }
    if identity.is_our_aor(ruri) && ruri.user.is_some() {
        let aor = Aor::new(ruri.user, &ruri.host.to_string())
            .map_err(|_| Reject::new(404, "Not Found"))?;
        let bindings = lookup(core, &aor).await?;
        return Ok(DefaultTargets {
            targets: one_flow_per_instance(&bindings).map(target_of).collect(),
            bindings,
        });
    }
    if identity.is_addressed_to_proxy(ruri) {
        return Err(Reject::new(404, "Not Found"));
    }
    Ok(only(request_uri))
}

/// Sends a policy's reply (empty reason: the standard phrase).
fn reply_with(tx: &TxRef, reply: &Reply, now: Instant) -> Vec<Output> {
    let reason = match reply.reason.as_str() {
        "" => crate::proxy::reason::standard(reply.code),
        r => r,
    };
    tx.lock().respond(reply.code, reason, &reply.headers, now)
}

pub(crate) const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, INFO, UPDATE, PRACK, SUBSCRIBE, NOTIFY, REFER, MESSAGE";

/// The targets of a GRUU or a rewritten Contact (RFC 5627 §5.5, any node
/// resolves them from the URI and the location store); `None` for any
/// other URI.
pub(super) async fn cluster_targets(
    core: &Core,
    ruri: &Uri<'_>,
) -> Option<Result<DefaultTargets, Reject>> {
    let (aor, instance, generation_ms) = match edge::classify(core.edge(), ruri, unix_now())? {
        ClusterTarget::Contact(target) => {
            return Some(Ok(DefaultTargets {
                targets: vec![target],
                bindings: Vec::new(),
            }));
        }
        ClusterTarget::Refused(rej) => return Some(Err(rej)),
        ClusterTarget::Gruu {
            aor,
            instance,
            generation_ms,
        } => (aor, instance, generation_ms),
    };
    let found = lookup(core, &aor)
        .await
        .and_then(|b| edge::gruu_targets(b, &instance, generation_ms));
    Some(found.map(|bindings| DefaultTargets {
        targets: one_flow_per_instance(&bindings).map(target_of).collect(),
        bindings,
    }))
}

impl Core {
    /// The Contact rewriting mode for a UA of `domain`: its tenant's, else
    /// `cluster.contact_rewrite`.
    fn contact_rewrite_for(&self, domain: &str) -> ContactRewrite {
        let tenant = self.config.tenant_of(domain);
        self.config
            .tenants
            .contact_rewrite
            .get(tenant)
            .copied()
            .unwrap_or(self.config.cluster.contact_rewrite)
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

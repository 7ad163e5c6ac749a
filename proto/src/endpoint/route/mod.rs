//! Where a new request goes, as explicit steps (RFC 3261 §16.3–16.5, the
//! registrar, the policy's routing hooks). Each step either answers, or
//! asks for one [`Io`](super::Io) and resumes in [`Endpoint::resume_routing`]
//! when it is done:
//!
//! ```text
//! start_routing: §16.3 validate, §16.4 Route pre-processing, requests for the proxy itself
//!   └▶ [Authenticate]                       ([auth] on)
//!       └▶ after_auth: 100 Trying (INVITE)
//!           ├▶ REGISTER for us: [Policy on-register] ─▶ edge Path (RFC 3327) ─▶ [Register | Lookup] ─▶ 200/4xx/503
//!           └▶ targets: GRUU / rewritten Contact (RFC 5627) / [Lookup] AOR / Request-URI
//!               └▶ [Policy on-request] (initial requests) ─▶ maybe a new Request-URI: targets again
//!                   └▶ finish: flows, Record-Route, Contact rewriting ─▶ ProxyTx::start_fork
//! ```

use std::sync::Arc;

use switchyard_codec::{HeaderName, Method, SipMessage, Uri};

mod finish;
mod register;

use self::register::Registered;
use super::auth::{AuthRole, AuthStep};
use super::io::{Decision, RoutingHook};
use super::{Endpoint, IoKind, IoResult, Now, PolicyCall, Waiter};
use crate::edge::{self, ClusterTarget, one_flow_per_instance, target_of};
use crate::location::{Aor, Binding, RegisterError, StoreError};
use crate::policy::{
    HeaderEdit, Origin, Policy, PolicyCtx, RegisterDecision, RequestAction, TargetGroup,
};
use crate::proxy::fork::Target;
use crate::proxy::request::{self, LocalAnswer, RouteState};
use crate::registrar::Limits;

/// A new request between two routing steps.
pub(super) struct Routing {
    routes: RouteState,
    to_us: bool,
    initial: bool,
    register_for_us: bool,
    tenant: String,
    policy: Arc<dyn Policy>,
    origin: Origin,
    pctx: PolicyCtx,
    /// The policy's header edits for every forwarded copy.
    headers: Vec<HeaderEdit>,
    targets: Vec<Target>,
    bindings: Vec<Binding>,
    /// `on-request` ran (a rewritten Request-URI is not shown to it again).
    asked_policy: bool,
    stage: Stage,
}

/// What the outstanding I/O is for.
enum Stage {
    /// The digest check; the proof must name the claimed user.
    Authenticate {
        role: AuthRole,
        realm: String,
        claimed_user: Option<String>,
    },
    /// Routing has not asked for anything yet.
    Start,
    RegisterPolicy,
    /// The registrar's store call for this REGISTER (with our Path).
    Registrar {
        register: Arc<SipMessage>,
        own_path: bool,
        outbound: bool,
        at: std::time::SystemTime,
    },
    /// The bindings of an AOR of ours, or of a GRUU's instance.
    Bindings {
        gruu: Option<(String, Option<u64>)>,
    },
    RequestPolicy,
}

/// The methods we answer in Allow.
pub const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, INFO, UPDATE, PRACK, SUBSCRIBE, NOTIFY, REFER, MESSAGE";

impl Endpoint {
    fn request_of(&self, tx: u64) -> Option<Arc<SipMessage>> {
        self.txs.get(&tx).map(|e| e.tx.request.clone())
    }

    /// Answers locally through the transaction (with its retransmissions).
    fn answer(&mut self, tx: u64, rej: &LocalAnswer, now: Now) {
        if let Some(entry) = self.txs.get_mut(&tx) {
            let out = entry
                .tx
                .respond(rej.code, rej.reason_phrase(), &rej.headers, now.instant);
            self.apply(tx, out, now);
        }
    }

    /// Answers once, without retransmissions: for refusals whose source may
    /// be spoofed (401/407/403, and routing failures nobody vouched for:
    /// a scan of numbers from forged addresses would otherwise get every
    /// 404 up to eleven times, Timer G).
    fn answer_once(&mut self, tx: u64, rej: &LocalAnswer, now: Now) {
        if let Some(entry) = self.txs.get_mut(&tx) {
            let out =
                entry
                    .tx
                    .respond_once(rej.code, rej.reason_phrase(), &rej.headers, now.instant);
            self.apply(tx, out, now);
        }
    }

    fn answer_unvouched(&mut self, tx: u64, origin: &Origin, rej: &LocalAnswer, now: Now) {
        if *origin == Origin::Anonymous {
            self.answer_once(tx, rej, now);
        } else {
            self.answer(tx, rej, now);
        }
    }

    /// The first steps, which need no I/O.
    pub(super) fn start_routing(&mut self, tx: u64, now: Now) {
        let Some(msg) = self.request_of(tx) else {
            return;
        };
        let identity = &self.edge.identity;
        if let Err(rej) = request::validate(&msg, identity) {
            if rej.code == 483 || rej.code == 482 {
                self.stats.rejected.inc();
            }
            return self.answer(tx, &rej, now);
        }
        let routes = match request::preprocess_routes(&msg, identity) {
            Ok(r) => r,
            Err(rej) => return self.answer(tx, &rej, now),
        };
        let Ok(ruri) = Uri::parse(&routes.request_uri) else {
            return self.answer(tx, &LocalAnswer::new(400, "Bad Request-URI"), now);
        };
        let method = msg.method().cloned().unwrap_or(Method::Options);
        let to_us = routes.routes.is_empty();
        let initial = msg.to_tag().map_or(true, |t| t.is_none());
        let our_domain = identity.is_our_aor(&ruri);
        let zero_hops = msg.max_forwards().ok().flatten() == Some(0);
        // Requests for the proxy itself.
        if to_us && (zero_hops || identity.is_addressed_to_proxy(&ruri)) {
            match method {
                Method::Options => {
                    let allow = [
                        ("Allow".to_string(), ALLOW.to_string()),
                        ("Accept".into(), "application/sdp".into()),
                    ];
                    let ok = LocalAnswer {
                        code: 200,
                        reason: "OK".into(),
                        headers: allow.to_vec(),
                    };
                    return self.answer(tx, &ok, now);
                }
                Method::Register if our_domain => {}
                _ if zero_hops => {
                    return self.answer(tx, &LocalAnswer::new(483, "Too Many Hops"), now);
                }
                _ => {}
            }
        }
        let tenant = self
            .config
            .tenants
            .tenant_of(&ruri.host.to_string())
            .to_string();
        tracing::Span::current().record("tenant", tenant.as_str());
        if let Some(entry) = self.txs.get_mut(&tx) {
            entry.tx.tenant.clone_from(&tenant);
        }
        let policy = self.policies.policy_for(&tenant);
        let register_for_us = method == Method::Register && to_us && our_domain;
        let source = self.txs[&tx].tx.source();
        let step = self.config.auth.then(|| {
            let client = source.remote.ip();
            let secs = now.unix_secs();
            self.auth_step(&msg, client, &ruri, &routes.popped, register_for_us, secs)
        });
        let routing = Routing {
            routes,
            to_us,
            initial,
            register_for_us,
            tenant,
            policy,
            origin: Origin::Unchecked,
            pctx: PolicyCtx::default(),
            headers: Vec::new(),
            targets: Vec::new(),
            bindings: Vec::new(),
            asked_policy: false,
            stage: Stage::Start,
        };
        let Some(step) = step else {
            return self.after_auth(tx, routing, now);
        };
        match step {
            AuthStep::Proceed(origin) => {
                let mut routing = routing;
                routing.origin = origin;
                self.after_auth(tx, routing, now)
            }
            AuthStep::Refuse(answer) => self.answer_once(tx, &answer, now),
            AuthStep::Verify {
                role,
                realm,
                claimed_user,
            } => {
                let auth = super::AuthRequest {
                    source,
                    request: msg.clone(),
                    role,
                    realm: realm.clone(),
                };
                let mut routing = routing;
                routing.stage = Stage::Authenticate {
                    role,
                    realm,
                    claimed_user,
                };
                self.ask(
                    IoKind::Authenticate(auth),
                    Waiter::Route {
                        tx,
                        routing: Box::new(routing),
                    },
                );
            }
        }
    }

    /// An [`Io`](super::Io) of a routing step is done.
    pub(super) fn resume_routing(
        &mut self,
        tx: u64,
        mut routing: Routing,
        result: IoResult,
        now: Now,
    ) {
        match (std::mem::replace(&mut routing.stage, Stage::Start), result) {
            (
                Stage::Authenticate {
                    role,
                    realm,
                    claimed_user,
                },
                IoResult::Authenticated(verdict),
            ) => {
                let Some(msg) = self.request_of(tx) else {
                    return;
                };
                match self.auth_verdict(&msg, (role, realm, claimed_user), verdict) {
                    Ok(origin) => {
                        routing.origin = origin;
                        self.after_auth(tx, routing, now);
                    }
                    Err(answer) => self.answer_once(tx, &answer, now),
                }
            }
            (Stage::RegisterPolicy, IoResult::Policy(answer)) => {
                routing.pctx = answer.ctx;
                let limits = match answer.decision {
                    Decision::Register(RegisterDecision::Allow) => Limits::default(),
                    Decision::Register(RegisterDecision::Limit(l)) => Limits {
                        max_bindings: l.max_contacts,
                        max_expires: l.max_expires,
                    },
                    Decision::Register(RegisterDecision::Reject(reply)) => {
                        return self.answer(tx, &reply, now);
                    }
                    Decision::Request(_) => return,
                };
                self.registrar(tx, routing, limits, now);
            }
            (
                Stage::Registrar {
                    register,
                    own_path,
                    outbound,
                    at,
                },
                result,
            ) => {
                let result = match result {
                    IoResult::Registered(r) => r,
                    // A query (no Contact): the bindings as they are.
                    IoResult::Bindings(r) => r.map_err(RegisterError::Store),
                    _ => return,
                };
                let registered = Registered {
                    register: &register,
                    own_path,
                    outbound,
                    at,
                };
                self.registered(tx, registered, result, now)
            }
            (Stage::Bindings { gruu }, IoResult::Bindings(found)) => {
                let found = found.map_err(|e| store_unavailable("Location Store Unavailable", &e));
                let found = match gruu {
                    Some((instance, generation)) => {
                        found.and_then(|b| edge::gruu_targets(b, &instance, generation))
                    }
                    None => found,
                };
                match found {
                    Ok(bindings) => {
                        routing.targets = one_flow_per_instance(&bindings).map(target_of).collect();
                        routing.bindings = bindings;
                        self.after_targets(tx, routing, now);
                    }
                    Err(rej) => self.answer_unvouched(tx, &routing.origin, &rej, now),
                }
            }
            (Stage::RequestPolicy, IoResult::Policy(answer)) => {
                routing.pctx = answer.ctx;
                let Decision::Request(decision) = answer.decision else {
                    return;
                };
                routing.headers = decision.headers;
                match decision.action {
                    RequestAction::Continue => match decision.request_uri {
                        // A rewritten Request-URI is routed as if it had
                        // arrived that way: looked up again when it is ours.
                        Some(uri) if Uri::parse(&uri).is_err() => {
                            tracing::warn!(%uri, "policy rewrote the Request-URI to an invalid URI");
                            self.answer(tx, &LocalAnswer::new(500, "Policy Error"), now);
                        }
                        Some(uri) => self.targets(tx, routing, &uri, now),
                        None => self.finish(tx, routing, now),
                    },
                    RequestAction::Reply(reply) => self.answer(tx, &reply, now),
                    RequestAction::Relay(groups) => {
                        routing.targets = TargetGroup::into_targets(groups);
                        self.finish(tx, routing, now);
                    }
                    RequestAction::Redirect(contacts) => {
                        let contact = contacts
                            .iter()
                            .map(|c| format!("<{c}>"))
                            .collect::<Vec<_>>()
                            .join(", ");
                        let mut moved = LocalAnswer::new(302, "Moved Temporarily");
                        moved.headers.push(("Contact".into(), contact));
                        self.answer(tx, &moved, now);
                    }
                }
            }
            _ => tracing::debug!("routing step answered with an unexpected result"),
        }
    }

    fn after_auth(&mut self, tx: u64, routing: Routing, now: Now) {
        let Some(msg) = self.request_of(tx) else {
            return;
        };
        if msg.method() == Some(&Method::Invite) {
            // §16.2: answer 100 at once (before any store lookup) so the
            // UAC stops retransmitting over UDP; not before the request is
            // known to be one we route (a spoofed INVITE gets one answer).
            let entry = self.txs.get_mut(&tx).expect("live transaction");
            let out = entry.tx.respond(100, "Trying", &[], now.instant);
            self.apply(tx, out, now);
        }
        if !routing.register_for_us {
            let uri = routing.routes.request_uri.clone();
            return self.targets(tx, routing, &uri, now);
        }
        if routing.policy.is_default() {
            return self.registrar(tx, routing, Limits::default(), now);
        }
        let call = RoutingHook::Register {
            origin: routing.origin.clone(),
            aor: msg.to().ok().map(|t| t.uri.to_string()).unwrap_or_default(),
            contacts: msg
                .header_values(HeaderName::Contact)
                .map(str::to_owned)
                .collect(),
            expires: msg.expires().ok().flatten(),
            source: self.txs[&tx].tx.source(),
            message: msg,
        };
        self.ask_policy(tx, routing, call, Stage::RegisterPolicy);
    }

    fn ask_policy(&mut self, tx: u64, mut routing: Routing, call: RoutingHook, stage: Stage) {
        let call = PolicyCall {
            policy: routing.policy.clone(),
            tenant: routing.tenant.clone(),
            ctx: std::mem::take(&mut routing.pctx),
            call,
        };
        routing.stage = stage;
        self.ask(
            IoKind::Policy(call),
            Waiter::Route {
                tx,
                routing: Box::new(routing),
            },
        );
    }

    /// §16.5 target determination:
    /// - no Route left and a GRUU or a Contact an edge rewrote: resolved
    ///   from the URI (any node);
    /// - an in-dialog request: its Request-URI is the peer's remote target
    ///   (§12.2), forwarded as it is, whatever its host (a phone on the
    ///   proxy's own host has a Contact in "our" domain with another port);
    /// - an address-of-record of ours: the location store;
    /// - otherwise the Request-URI itself (loose routing keeps it; the
    ///   next hop is the top Route).
    fn targets(&mut self, tx: u64, mut routing: Routing, uri: &str, now: Now) {
        routing.targets = vec![Target::new(uri)];
        routing.bindings = Vec::new();
        let Ok(ruri) = Uri::parse(uri) else {
            return self.answer(tx, &LocalAnswer::new(400, "Bad Request-URI"), now);
        };
        if !routing.to_us {
            return self.after_targets(tx, routing, now);
        }
        let identity = &self.edge.identity;
        let lookup = match edge::classify(&self.edge, &ruri, now.unix_secs()) {
            Some(ClusterTarget::Contact(target)) => {
                routing.targets = vec![target];
                return self.after_targets(tx, routing, now);
            }
            Some(ClusterTarget::Refused(rej)) => {
                return self.answer_unvouched(tx, &routing.origin, &rej, now);
            }
            Some(ClusterTarget::Gruu {
                aor,
                instance,
                generation_ms,
            }) => Some((aor, Some((instance, generation_ms)))),
            None if !routing.initial && !identity.reaches_me(&ruri) => None,
            None if identity.is_our_aor(&ruri) && ruri.user.is_some() => {
                match Aor::new(ruri.user, &ruri.host.to_string()) {
                    Ok(aor) => Some((aor, None)),
                    Err(_) => {
                        let rej = LocalAnswer::new(404, "Not Found");
                        return self.answer_unvouched(tx, &routing.origin, &rej, now);
                    }
                }
            }
            None if identity.is_addressed_to_proxy(&ruri) => {
                let rej = LocalAnswer::new(404, "Not Found");
                return self.answer_unvouched(tx, &routing.origin, &rej, now);
            }
            None => None,
        };
        let Some((aor, gruu)) = lookup else {
            return self.after_targets(tx, routing, now);
        };
        routing.stage = Stage::Bindings { gruu };
        self.ask(
            IoKind::Lookup { aor, at: now.wall },
            Waiter::Route {
                tx,
                routing: Box::new(routing),
            },
        );
    }

    /// The targets are known: the policy's `on-request` for an initial
    /// request (once), then the fork.
    fn after_targets(&mut self, tx: u64, mut routing: Routing, now: Now) {
        if !routing.initial || routing.asked_policy || routing.policy.is_default() {
            return self.finish(tx, routing, now);
        }
        let Some(msg) = self.request_of(tx) else {
            return;
        };
        routing.asked_policy = true;
        let call = RoutingHook::Request {
            origin: routing.origin.clone(),
            request_uri: routing.routes.request_uri.clone(),
            source: self.txs[&tx].tx.source(),
            message: msg,
            bindings: std::mem::take(&mut routing.bindings),
        };
        self.ask_policy(tx, routing, call, Stage::RequestPolicy);
    }
}

/// 503 with the Retry-After the store error suggests (RFC 3261 §21.5.4).
pub(super) fn store_unavailable(reason: &'static str, error: &StoreError) -> LocalAnswer {
    tracing::warn!(%error, "location lookup failed");
    let mut rej = LocalAnswer::new(503, reason);
    rej.headers
        .push(("Retry-After".into(), error.retry_after_secs().to_string()));
    rej
}

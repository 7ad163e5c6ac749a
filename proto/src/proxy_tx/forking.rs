//! The downstream half of a [`ProxyTx`]: starting branches (§16.6),
//! cancelling them (§16.10), acting on the response context's decisions
//! (§16.7) and relaying responses upstream.

use std::time::Instant;

use bytes::Bytes;
use switchyard_codec::{self as codec, HeaderName, SipMessage};
use tracing::debug;

use super::{BranchSlot, Output, ProxyTx, Role, reason_for};
use crate::edge::Edge;
use crate::net::Destination;
use crate::net::Source;
use crate::policy::Reply;
use crate::proxy::fork::{BranchId, FinalResponse, ForkAction, ForkLimits, Target};
use crate::proxy::request::{self, ForwardSpec, LocalAnswer, RouteState};
use crate::transaction::{ClientEvent, ClientKey, ClientTransaction, Kind};

/// How to build every forwarded copy of this request (fixed once routed).
#[derive(Debug, Clone)]
pub struct Forwarding {
    pub routes: RouteState,
    pub record_route: bool,
    /// The UA's flow when we are its edge (a first-hop dialog-forming
    /// request): its token goes into our Record-Route.
    pub ua_flow: Option<Source>,
    /// For dialog-forming requests: how to rewrite the Contact of answers
    /// that come back on one of our flows (the callee's tenant setting).
    pub callee_rewrite: Option<crate::cluster::ContactRewrite>,
    /// Unix seconds until which the flow tokens minted for this request
    /// (Record-Route, rewritten Contacts) are honoured.
    pub token_expiry_secs: u64,
    pub received: Option<String>,
    pub rport: Option<u16>,
    pub loop_hash: String,
    /// The policy's header edits for every forwarded copy.
    pub headers: Vec<crate::policy::HeaderEdit>,
    /// The sealed dialog token our Record-Route entries carry (`[auth]`).
    pub dialog_token: Option<String>,
    /// Max-Breadth and the branch cap for this request.
    pub fork_limits: ForkLimits,
}

impl ProxyTx {
    /// The next hop for a branch has been resolved (or refused).
    pub fn start_branch(
        &mut self,
        branch: BranchId,
        target: Target,
        dest: Result<Destination, LocalAnswer>,
        edge: &Edge,
        rng: &mut impl rand::Rng,
        now: Instant,
    ) -> Vec<Output> {
        self.branches[branch].resolving = false;
        // Cancelled (or finished) while the next hop was being resolved:
        // the request must not go out any more (§16.10).
        let cancelled = self.finished || self.fork.as_ref().is_none_or(|f| f.is_cancelled(branch));
        let dest = match dest {
            Ok(_) if cancelled => Err(LocalAnswer::new(487, "Request Terminated")),
            other => other,
        };
        let dest = match dest {
            Ok(d) => d,
            Err(rej) => {
                if let Some(f) = &mut self.fork {
                    f.on_local_failure(branch, rej.code);
                }
                return self.pump(now);
            }
        };
        let Some(fw) = &self.forwarding else {
            return Vec::new();
        };
        let identity = &edge.identity;
        let out_addr = identity.address_towards(dest.transport, dest.addr);
        let branch_id = request::new_branch(&fw.loop_hash, rng);
        let via = format!(
            "SIP/2.0/{} {};branch={branch_id}",
            dest.transport, out_addr.advertised
        );
        let mut record_route = Vec::new();
        if fw.record_route {
            // Double Record-Route when the request changes transport, so each
            // side of the dialog reaches us the way it can (RFC 5658 style);
            // the side facing a flow we hold carries its token (RFC 5626).
            let in_addr = identity.address_towards(self.source.transport, self.source.remote);
            record_route = edge.record_route(
                (&out_addr.advertised, out_addr.transport),
                target.flow,
                (&in_addr.advertised, in_addr.transport),
                fw.ua_flow,
                fw.dialog_token.as_deref(),
                fw.token_expiry_secs,
                self.request
                    .request_uri()
                    .is_ok_and(|u| u.scheme == switchyard_codec::Scheme::Sips),
            );
        }
        let routes: Option<Vec<String>> = if !target.route.is_empty() {
            Some(
                target
                    .route
                    .iter()
                    .cloned()
                    .chain(fw.routes.routes.iter().cloned())
                    .collect(),
            )
        } else if fw.routes.changed {
            Some(fw.routes.routes.clone())
        } else {
            None
        };
        let data = request::build_forward(
            &self.request,
            &ForwardSpec {
                request_uri: &target.uri,
                routes: routes.as_deref(),
                record_route: &record_route,
                via: &via,
                received: fw.received.as_deref(),
                rport: fw.rport,
                headers: &fw.headers,
                max_breadth: request::branch_max_breadth(
                    &self.request,
                    target.max_breadth,
                    fw.fork_limits.breadth,
                ),
            },
        );
        let kind = if self.invite {
            Kind::Invite
        } else {
            Kind::NonInvite
        };
        let method = self
            .request
            .method()
            .map(|m| m.as_str().to_string())
            .unwrap_or_default();
        let key = ClientKey::new(&branch_id, &method);
        let client = ClientTransaction::new(kind, dest.transport, data.clone(), &self.timers, now);
        let slot = &mut self.branches[branch];
        slot.flow = target.flow;
        slot.send_failure = match (target.flow, target.via_edge) {
            (Some(_), _) => 430,
            (None, true) => 480,
            (None, false) => 503,
        };
        slot.key = Some(key.clone());
        slot.client = Some(client);
        slot.dest = Some(dest);
        slot.request = data;
        if self.invite {
            slot.timer_c = Some(now + self.timer_c);
            slot.no_answer = target.timeout.map(|t| now + t);
        }
        let mut out = vec![Output::Register {
            key,
            role: Role::Branch(branch),
        }];
        out.extend(self.pump(now));
        out
    }

    pub(super) fn on_fork_action(
        &mut self,
        action: ForkAction<SipMessage>,
        now: Instant,
        out: &mut Vec<Output>,
    ) {
        match action {
            ForkAction::StartBranch(branch, target) => {
                debug_assert_eq!(branch, self.branches.len());
                self.branches.push(BranchSlot {
                    key: None,
                    client: None,
                    dest: None,
                    request: Bytes::new(),
                    cancel: None,
                    timer_c: None,
                    no_answer: None,
                    resolving: true,
                    flow: None,
                    send_failure: 503,
                });
                self.targets_tried.push(target.uri.clone());
                let hop = self.next_hop(&target);
                out.push(Output::Start {
                    branch,
                    target,
                    hop,
                });
            }
            ForkAction::CancelBranch(b) => {
                let slot = &mut self.branches[b];
                if slot.cancel.is_some() || slot.request.is_empty() {
                    return;
                }
                let Ok(forwarded) = SipMessage::parse(slot.request.clone()) else {
                    return;
                };
                let data = codec::build_cancel(&forwarded);
                let Some(branch_id) = forwarded
                    .top_via()
                    .ok()
                    .and_then(|v| v.branch().map(str::to_owned))
                else {
                    return;
                };
                let key = ClientKey::new(&branch_id, "CANCEL");
                let Some(dest) = slot.dest.clone() else {
                    return;
                };
                let c = ClientTransaction::new(
                    Kind::NonInvite,
                    dest.transport,
                    data,
                    &self.timers,
                    now,
                );
                out.push(Output::Register {
                    key: key.clone(),
                    role: Role::Cancel(b),
                });
                slot.cancel = Some((key, c));
                slot.timer_c = Some(now + self.timers.transaction_timeout());
            }
            ForkAction::Forward(msg) => self.forward_upstream(msg, now, out),
            ForkAction::Final(FinalResponse::Received(msg)) => {
                if msg.status() == Some(503) {
                    // §16.7 step 6: a 503 is never relayed; the downstream
                    // element's overload is not the caller's business.
                    out.extend(self.respond(500, "Server Internal Error", &[], now));
                } else {
                    self.forward_upstream(msg, now, out);
                }
            }
            ForkAction::Final(FinalResponse::Local(408)) if !self.invite => {
                // RFC 4320 §4.2: no 408 to a non-INVITE; the client's own
                // Timer F fires at the same moment ours did.
                self.final_status = Some(408);
                self.server.abandon();
                out.extend(self.pump(now));
            }
            ForkAction::Final(FinalResponse::Local(code)) if self.policy_reply.is_some() => {
                let reply = self
                    .policy_reply
                    .take()
                    .unwrap_or_else(|| Reply::new(code, ""));
                out.extend(self.reject(&reply, now));
            }
            ForkAction::Final(FinalResponse::Local(code)) => {
                // §16.7 step 6 applies to our own 503s (unreachable next hop) too.
                let code = if code == 503 { 500 } else { code };
                out.extend(self.respond(code, reason_for(code), &[], now));
            }
            ForkAction::Exhausted => self.on_exhausted(out),
            ForkAction::Dropped(n) => out.push(Output::TargetsDropped(n)),
        }
    }

    /// §16.7 step 9: remove our Via and send through the server transaction.
    /// Sends directly when the server transaction no longer exists to carry
    /// a late 2xx (after Timer L; the 2xx must still reach the caller).
    fn forward_upstream(&mut self, msg: SipMessage, now: Instant, out: &mut Vec<Output>) {
        let Some(status) = msg.status() else {
            return;
        };
        let data = msg.edit().remove_first_value(HeaderName::Via).finish();
        if status >= 200 && self.final_status.is_none() {
            self.final_status = Some(status);
            self.call_final(status, Some(&msg), out);
        }
        match self.server.respond(status, data.clone(), now) {
            Ok(()) => {}
            Err(_) if (200..300).contains(&status) => out.push(Output::Reply {
                source: self.source,
                data,
            }),
            Err(e) => debug!(error = %e, status, "response not forwarded"),
        }
    }

    pub fn next_hop(&self, target: &Target) -> String {
        let routes = self.forwarding.as_ref().map(|f| &f.routes.routes);
        let first = target
            .route
            .first()
            .or_else(|| routes.and_then(|r| r.first()));
        match first {
            Some(r) => request::strip_angle(r).to_string(),
            None => target.uri.clone(),
        }
    }
}

/// Queues a client transaction's transmissions and returns its events.
pub(super) fn drain_client(
    c: &mut ClientTransaction,
    branch: BranchId,
    dest: &Destination,
    out: &mut Vec<Output>,
) -> Vec<ClientEvent> {
    while let Some(data) = c.poll_transmit() {
        out.push(Output::Send {
            branch,
            dest: dest.clone(),
            data,
        });
    }
    std::iter::from_fn(|| c.poll_event()).collect()
}

pub(super) fn build_ack(forwarded: &Bytes, response: &SipMessage) -> Bytes {
    match SipMessage::parse(forwarded.clone()) {
        Ok(req) => codec::build_ack_for_non2xx(&req, response),
        Err(_) => Bytes::new(),
    }
}

//! Stateless forwarding (RFC 3261 §16.11): ACKs for 2xx, which are
//! end-to-end and have no transaction at the proxy, CANCELs that match
//! none of ours, and responses that match no client transaction (a 2xx
//! retransmitted after the INVITE transaction ended, §16.7).

use switchyard_codec::{HeaderName, SipMessage, Uri};

use super::{Endpoint, IoKind, IoResult, Now, Transmit, Waiter};
use crate::edge::{self, ClusterTarget};
use crate::net::{Destination, Source, Transport};
use crate::proxy::request::{self, ForwardSpec, RouteState};

/// A stateless forward waiting for its next hop (or a GRUU's bindings).
pub(super) struct StatelessJob {
    msg: SipMessage,
    source: Source,
    /// `None` for a response: sent as it is, our Via taken off.
    routes: Option<RouteState>,
    /// Resolving a GRUU's instance (RFC 5627) before the next hop.
    gruu: Option<(String, Option<u64>)>,
}

impl Endpoint {
    pub(super) fn forward_request(&mut self, now: Now, source: Source, msg: SipMessage) {
        // §16.3 step 3 holds statelessly too: nothing is sent on at zero hops.
        if msg.max_forwards().ok().flatten() == Some(0) {
            self.stats.rejected.inc();
            return;
        }
        let Ok(routes) = request::preprocess_routes(&msg, &self.edge.identity) else {
            return;
        };
        let Ok(ruri) = Uri::parse(&routes.request_uri) else {
            return;
        };
        let secs = now.unix_secs();
        // With authentication on, nothing is relayed statelessly that did
        // not come through us: an ACK for a 2xx carries our Record-Route
        // and its dialog token, one to a GRUU or a rewritten Contact names
        // one of ours; an ACK for our own 401/407 (no Route) or a
        // stranger's made-up ACK ends here.
        if self.config.auth && !self.edge.came_through_us(&routes.popped, &ruri, secs) {
            tracing::debug!("stateless request without our route dropped");
            return;
        }
        let flow = self
            .edge
            .flow_from_routes(&routes.popped, &routes.routes, source, secs);
        // The ACK for a 2xx goes to the callee's Contact (§13.2.2.4),
        // which may be its GRUU (linphone's dialog Contact) or a Contact
        // an edge rewrote: resolved like any request to one.
        let to_us = routes.routes.is_empty();
        let classified = to_us
            .then(|| edge::classify(&self.edge, &ruri, secs))
            .flatten();
        let loops_back = to_us && self.edge.identity.reaches_me(&ruri);
        let mut job = StatelessJob {
            msg,
            source,
            routes: Some(routes),
            gruu: None,
        };
        match classified {
            Some(ClusterTarget::Contact(target)) => self.retarget(job, target, flow, now),
            Some(ClusterTarget::Refused(rej)) => {
                tracing::debug!(
                    reason = rej.reason,
                    "stateless request to a GRUU not forwarded"
                );
            }
            Some(ClusterTarget::Gruu {
                aor,
                instance,
                generation_ms,
            }) => {
                job.gruu = Some((instance, generation_ms));
                let at = now.wall;
                self.ask(IoKind::Lookup { aor, at }, Waiter::Stateless(Box::new(job)));
            }
            // Without a Route, a URI that leads back to us has no target
            // we could know without state (an ACK to an AOR, a late
            // CANCEL): dropped rather than looped. A phone's Contact on
            // our host with another port is not that: it is forwarded.
            None if flow.is_none() && loops_back => {
                tracing::debug!("stateless request addressed to ourselves dropped");
            }
            None => self.send_stateless(job, flow),
        }
    }

    /// A stateless request's Request-URI replaced by the target it routes
    /// to (a GRUU's contact, a rewritten Contact's original).
    fn retarget(
        &mut self,
        mut job: StatelessJob,
        mut target: crate::proxy::fork::Target,
        flow: Option<Source>,
        now: Now,
    ) {
        let (_, own_flow) = self
            .edge
            .take_own_routes(&mut target.route, now.unix_secs());
        let flow = flow.or(own_flow).or(target.flow);
        if let Some(routes) = &mut job.routes {
            routes.request_uri = target.uri;
            routes.routes = target.route;
            routes.changed = true;
        }
        self.send_stateless(job, flow);
    }

    /// On a flow of ours, or to the resolved next hop.
    fn send_stateless(&mut self, job: StatelessJob, flow: Option<Source>) {
        if let Some(flow) = flow {
            let data = self.stateless_copy(&job, flow.transport, flow.remote);
            self.transmits.push_back(Transmit::Send {
                dest: Destination::flow(flow),
                data,
                failure: None,
            });
            return;
        }
        let Some(routes) = &job.routes else { return };
        let hop = match routes.routes.first() {
            Some(r) => request::strip_angle(r).to_string(),
            None => routes.request_uri.clone(),
        };
        self.ask(
            IoKind::Resolve { hop, flow: None },
            Waiter::Stateless(Box::new(job)),
        );
    }

    pub(super) fn resume_stateless(&mut self, mut job: StatelessJob, result: IoResult, now: Now) {
        match result {
            IoResult::Bindings(found) => {
                let Some((instance, generation)) = job.gruu.take() else {
                    return;
                };
                let found = found
                    .map_err(|e| super::route::store_unavailable("Location Store Unavailable", &e))
                    .and_then(|b| edge::gruu_targets(b, &instance, generation));
                match found {
                    Ok(bindings) => {
                        let Some(binding) = edge::one_flow_per_instance(&bindings).next() else {
                            return;
                        };
                        let target = edge::target_of(binding);
                        self.retarget(job, target, None, now);
                    }
                    Err(rej) => {
                        tracing::debug!(
                            reason = rej.reason,
                            "stateless request to a GRUU not forwarded"
                        );
                    }
                }
            }
            IoResult::Resolved(Ok(dest)) => {
                let data = match &job.routes {
                    Some(_) => self.stateless_copy(&job, dest.transport, dest.addr),
                    None => job.msg.edit().remove_first_value(HeaderName::Via).finish(),
                };
                self.transmits.push_back(Transmit::Send {
                    dest,
                    data,
                    failure: None,
                });
            }
            IoResult::Resolved(Err(rej)) => {
                tracing::debug!(reason = rej.reason, "stateless forward: no next hop");
            }
            _ => {}
        }
    }

    /// The forwarded copy of a stateless request: our Via, routes as
    /// pre-processed, RFC 3581 parameters (§16.11 builds it like §16.6).
    fn stateless_copy(
        &mut self,
        job: &StatelessJob,
        transport: Transport,
        to: std::net::SocketAddr,
    ) -> bytes::Bytes {
        let routes = job.routes.as_ref().expect("a request");
        let (received, rport) = request::rfc3581(&job.msg, &job.source);
        let via = format!(
            "SIP/2.0/{} {};branch={}",
            transport,
            self.edge.identity.address_towards(transport, to).advertised,
            request::new_branch(&request::loop_hash(&job.msg), &mut self.rng)
        );
        request::build_forward(
            &job.msg,
            &ForwardSpec {
                request_uri: &routes.request_uri,
                routes: routes.changed.then_some(&routes.routes[..]),
                record_route: &[],
                via: &via,
                received: received.as_deref(),
                rport,
                headers: &[],
                max_breadth: None,
            },
        )
    }

    /// §16.7 for a response with no transaction: our Via off, then to the
    /// next Via's received/rport (RFC 3581) or sent-by, held to the egress
    /// allowlist like a request.
    pub(super) fn forward_response(&mut self, _now: Now, source: Source, msg: SipMessage) {
        // Our branch prefix alone can be forged: the sent-by must be ours too.
        let identity = &self.edge.identity;
        let ours = msg.top_via().ok().is_some_and(|v| {
            v.branch()
                .is_some_and(|b| b.starts_with(request::BRANCH_PREFIX))
                && identity.is_sent_by_me(&v.host.to_string(), v.port)
        });
        if !ours {
            self.stats.dropped_stray.inc();
            return;
        }
        let Some(Ok(next)) = msg.vias().nth(1) else {
            self.stats.dropped_stray.inc();
            return;
        };
        let transport = Transport::from_token(next.transport).unwrap_or(Transport::Udp);
        let port = next.rport().flatten().or(next.port).unwrap_or(5060);
        let host = next
            .received()
            .map(str::to_owned)
            .unwrap_or_else(|| next.host.to_string());
        let host = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host
        };
        let hop = format!("sip:{host}:{port}{}", transport.uri_param());
        let job = StatelessJob {
            msg,
            source,
            routes: None,
            gruu: None,
        };
        self.ask(
            IoKind::Resolve { hop, flow: None },
            Waiter::Stateless(Box::new(job)),
        );
    }
}

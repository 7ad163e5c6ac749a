//! Stateless forwarding (RFC 3261 §16.11): ACKs for 2xx, which are end-to-end
//! and have no transaction at the proxy, and responses that match no client
//! transaction (a 2xx retransmitted after the INVITE transaction ended).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use switchyard_codec::{HeaderName, SipMessage};
use tracing::debug;

use super::auth::unix_now;
use super::core::Core;
use super::routing::rfc3581;
use crate::egress::{Destination, NextHop, Target as HopTarget};
use crate::net::{Source, Transport};
use crate::proxy::request::{self, ForwardSpec, Reject};

/// Resolves a next-hop URI (RFC 3263) and applies the egress allowlist.
/// Failures become the status the branch ends with: 403 for a forbidden
/// destination, 503 when nothing could be found or reached.
pub(crate) async fn resolve(core: &Core, hop: &str) -> Result<Destination, Reject> {
    let uri =
        switchyard_codec::Uri::parse(hop).map_err(|_| Reject::new(400, "Bad Next Hop URI"))?;
    let next = NextHop::from_uri_parts(
        &uri.host.to_string(),
        uri.port,
        uri.transport(),
        uri.maddr(),
        uri.scheme == switchyard_codec::Scheme::Sips,
    )
    .map_err(|e| Reject::new(503, e.to_string()))?;
    match core.egress.resolve(&next).await {
        Ok(dests) => dests
            .first()
            .copied()
            .ok_or_else(|| Reject::new(503, "No Destination")),
        Err(crate::egress::EgressError::Forbidden(addr)) => {
            core.stats.egress_refused.inc();
            Err(Reject::new(403, format!("Forbidden Destination {addr}")))
        }
        Err(e) => Err(Reject::new(503, e.to_string())),
    }
}

pub(crate) async fn forward_request(core: &Arc<Core>, msg: &SipMessage, source: Source) {
    let identity = &core.wiring().edge.identity;
    // §16.3 step 3 holds statelessly too: nothing is sent on at zero hops.
    if msg.max_forwards().ok().flatten() == Some(0) {
        core.stats.rejected.inc();
        return;
    }
    let Ok(mut routes) = request::preprocess_routes(msg, identity) else {
        return;
    };
    let Ok(original_ruri) = switchyard_codec::Uri::parse(&routes.request_uri) else {
        return;
    };
    // Checked before the Request-URI is retargeted below.
    let through_us = core.auth.is_none() || core.came_through_us(&routes.popped, &original_ruri);
    // An end-to-end ACK (or other stateless request) for a UA behind us:
    // our Record-Route entry names the flow (RFC 5626 §5.3).
    let edge = core.edge();
    let mut flow = edge.flow_from_routes(&routes.popped, &routes.routes, source, unix_now());
    if routes.routes.is_empty() {
        let Ok(ruri) = switchyard_codec::Uri::parse(&routes.request_uri) else {
            return;
        };
        // The ACK for a 2xx goes to the callee's Contact (§13.2.2.4),
        // which may be its GRUU (linphone's dialog Contact) or a Contact
        // an edge rewrote: resolved like any request to one.
        let target = match super::routing::cluster_targets(core, &ruri).await {
            Some(Ok(found)) => found.targets.into_iter().next(),
            Some(Err(rej)) => {
                debug!(
                    reason = rej.reason,
                    "stateless request to a GRUU not forwarded"
                );
                return;
            }
            // Without a Route, a URI that leads back to us has no target
            // we could know without state (an ACK to an AOR, a late
            // CANCEL): drop it rather than loop. A phone's Contact on
            // our host with another port is not that: it is forwarded.
            None if flow.is_none() && identity.reaches_me(&ruri) => {
                debug!("stateless request addressed to ourselves dropped");
                return;
            }
            None => None,
        };
        if let Some(mut target) = target {
            let (_, own_flow) = edge.take_own_routes(&mut target.route, unix_now());
            flow = flow.or(own_flow).or(target.flow);
            routes.request_uri = target.uri;
            routes.routes = target.route;
            routes.changed = true;
        }
    }
    // With authentication on, nothing is relayed statelessly that did not
    // come through us: an ACK for a 2xx carries our Record-Route and its
    // dialog token, one to a GRUU was resolved above; an ACK for our own
    // 401/407 (no Route) or a stranger's made-up ACK ends here.
    if !through_us {
        debug!("stateless request without our route dropped");
        return;
    }
    if let Some(flow) = flow {
        let data = stateless_copy(core, msg, &routes, source, flow.transport, flow.remote);
        if let Err(e) = core.wiring().transports.send_on_flow(&flow, data).await {
            debug!(to = %flow.remote, error = %e, "stateless forward on a flow failed");
        }
        return;
    }
    let hop = match routes.routes.first() {
        Some(r) => request::strip_angle(r).to_string(),
        None => routes.request_uri.clone(),
    };
    let dest = match resolve(core, &hop).await {
        Ok(d) => d,
        Err(rej) => {
            debug!(hop, reason = rej.reason, "stateless request not forwarded");
            return;
        }
    };
    let data = stateless_copy(core, msg, &routes, source, dest.transport, dest.addr);
    if let Err(e) = core
        .wiring()
        .transports
        .send(dest.transport, dest.addr, data)
        .await
    {
        debug!(to = %dest.addr, error = %e, "stateless forward failed");
    }
}

/// The forwarded copy of a stateless request: our Via, routes as
/// pre-processed, RFC 3581 parameters (§16.11 builds it like §16.6).
fn stateless_copy(
    core: &Core,
    msg: &SipMessage,
    routes: &request::RouteState,
    source: Source,
    transport: Transport,
    to: SocketAddr,
) -> bytes::Bytes {
    let identity = &core.wiring().edge.identity;
    let (received, rport) = rfc3581(msg, &source);
    let via = format!(
        "SIP/2.0/{} {};branch={}",
        transport,
        identity.address_towards(transport, to).advertised,
        request::new_branch(&request::loop_hash(msg), &mut rand::rng())
    );
    request::build_forward(
        msg,
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

/// §16.7 for a response with no transaction: drop our Via and send it to the
/// next Via's received/rport (RFC 3581) or sent-by.
pub(crate) async fn forward_response(core: &Arc<Core>, msg: SipMessage, _source: Source) {
    // Our branch prefix alone can be forged: the sent-by must be ours too,
    // and the destination is held to the egress allowlist like a request.
    let identity = &core.wiring().edge.identity;
    let ours = msg.top_via().ok().is_some_and(|v| {
        v.branch()
            .is_some_and(|b| b.starts_with(request::BRANCH_PREFIX))
            && identity.is_sent_by_me(&v.host.to_string(), v.port)
    });
    if !ours {
        core.stats.dropped_stray.inc();
        return;
    }
    let Some(Ok(next)) = msg.vias().nth(1) else {
        core.stats.dropped_stray.inc();
        return;
    };
    let transport = Transport::from_token(next.transport).unwrap_or(Transport::Udp);
    let port = next.rport().flatten().or(next.port).unwrap_or(5060);
    let host = next
        .received()
        .map(str::to_owned)
        .unwrap_or_else(|| next.host.to_string());
    let addr = match host
        .trim_matches(|c| c == '[' || c == ']')
        .parse::<IpAddr>()
    {
        Ok(ip) => SocketAddr::new(ip, port),
        Err(_) => match HopTarget::parse(&host) {
            Ok(t) => match core
                .egress
                .resolver()
                .resolve(&NextHop::new(t).with_port(port))
                .await
            {
                Ok(d) if !d.is_empty() => d[0].addr,
                _ => return,
            },
            Err(_) => return,
        },
    };
    if !core.egress.allowlist().permits(addr.ip()) {
        core.stats.egress_refused.inc();
        return;
    }
    let data = msg.edit().remove_first_value(HeaderName::Via).finish();
    if let Err(e) = core.wiring().transports.send(transport, addr, data).await {
        debug!(to = %addr, error = %e, "stateless response forward failed");
    }
}

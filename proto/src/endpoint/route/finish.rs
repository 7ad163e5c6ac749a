//! The last routing step: the edge's part of a forwarded request (flows,
//! Record-Route with tokens, Contact rewriting), then the fork (§16.6).

use std::sync::Arc;

use switchyard_codec::{Method, SipMessage, Uri};

use super::Routing;
use crate::dialog::{CallKey, CallStart};
use crate::edge;
use crate::endpoint::{Endpoint, Now};
use crate::policy::{HeaderEdit, Origin, Policy};
use crate::proxy::fork::ForkLimits;
use crate::proxy::request::{self, LocalAnswer};
use crate::proxy_tx::Forwarding;

impl Endpoint {
    /// The dialog layer's side of an INVITE this node routes: counted, or
    /// refused by a concurrent-call limit (its CDR is written either way);
    /// or, `transit`, one it relays to a UA's flow for another node.
    /// The call belongs to the Request-URI's tenant when that is one of
    /// our domains, else to the caller's (an outbound call).
    fn begin_call(
        &mut self,
        msg: &SipMessage,
        routed_tenant: &str,
        policy: &Arc<dyn Policy>,
        transit: bool,
        now: Now,
    ) -> Result<CallKey, LocalAnswer> {
        let identity = &self.edge.identity;
        let party = |uri: &Uri<'_>| {
            let aor = format!("{}@{}", uri.user.unwrap_or(""), uri.host).to_ascii_lowercase();
            (aor, identity.is_our_aor(uri))
        };
        let (Ok(from), Ok(to), Ok(call_id)) = (msg.from(), msg.to(), msg.call_id()) else {
            return Err(LocalAnswer::new(400, "Bad Request"));
        };
        let (caller, callee) = (party(&from.uri), party(&to.uri));
        let ruri_ours = msg.request_uri().is_ok_and(|u| identity.is_our_aor(&u));
        let tenants = &self.config.tenants;
        let tenant = if !ruri_ours && caller.1 {
            tenants.tenant_of(&from.uri.host.to_string())
        } else {
            routed_tenant
        };
        let start = CallStart {
            tenant,
            call_id,
            caller_tag: from.tag().unwrap_or(""),
            caller: (&caller.0, caller.1),
            callee: (&callee.0, callee.1),
            policy: policy.wants_dialog_hooks().then(|| policy.clone()),
            transit,
        };
        let result = self.calls().begin(start, now);
        result.map_err(|refused| {
            let refused = *refused;
            match refused.hit.scope {
                "tenant" => self.stats.calls_limited_tenant.inc(),
                _ => self.stats.calls_limited_user.inc(),
            }
            tracing::info!(
                status = refused.hit.status,
                scope = refused.hit.scope,
                "call over its limit"
            );
            self.call_events.push_back(refused.event);
            LocalAnswer::new(refused.hit.status, refused.hit.reason)
        })
    }

    /// The last step: the edge's part (flows, Record-Route with tokens,
    /// Contact rewriting), then the fork (§16.6).
    pub(super) fn finish(&mut self, tx: u64, routing: Routing, now: Now) {
        let Some(msg) = self.request_of(tx) else {
            return;
        };
        let source = self.txs[&tx].tx.source();
        let secs = now.unix_secs();
        let method = msg.method().cloned().unwrap_or(Method::Options);
        let Routing {
            routes,
            initial,
            policy,
            origin,
            pctx,
            mut headers,
            mut targets,
            tenant,
            ..
        } = routing;
        if matches!(origin, Origin::Authenticated { .. }) && method != Method::Register {
            // Our realm's credentials end here (Kamailio's consume_credentials).
            headers.push(HeaderEdit::Remove {
                name: "Proxy-Authorization".into(),
            });
        }
        if method == Method::Register
            && let Some(path) = self.edge.foreign_register_path(&msg, source, secs)
        {
            headers.push(path);
        }
        // RFC 5626 §5.3: our own Record-Route entry with the flow token of
        // the UA this in-dialog request is going to.
        if let Some(flow) = self
            .edge
            .flow_from_routes(&routes.popped, &routes.routes, source, secs)
        {
            for t in &mut targets {
                t.flow.get_or_insert(flow);
            }
        }
        if targets.is_empty() && origin == Origin::Anonymous {
            // §16.5's empty target set (nobody registered): 480, which the
            // fork would send with a transaction's retransmissions.
            let rej = LocalAnswer::new(480, "Temporarily Unavailable");
            return self.answer_once(tx, &rej, now);
        }
        tracing::debug!(targets = targets.len(), initial, "forking");
        let record_route = initial && request::wants_record_route(&method);
        // A call: ours when we routed it, a transit entry when we relay
        // it to a UA's flow for the node that did (see `crate::dialog`).
        let tracked = self.config.track_calls && method == Method::Invite && record_route;
        let transit = self.edge.arrived_as_edge(&routes.popped, secs);
        let call = match tracked.then(|| self.begin_call(&msg, &tenant, &policy, transit, now)) {
            Some(Err(hit)) => return self.answer(tx, &hit, now),
            Some(Ok(key)) => Some(key),
            None => None,
        };
        // The edge's side of a dialog-forming request from its UA: the UA's
        // Contact may be rewritten, and when the UA can only be reached on
        // the flow it came on, its token goes into our Record-Route.
        let edge_of_caller = record_route && edge::is_first_hop(&msg);
        let ua_flow = (edge_of_caller && edge::dialog_needs_flow(&msg, source)).then_some(source);
        let token_expiry_secs = self.edge.dialog_token_expiry(secs);
        let tenants = &self.config.tenants;
        if edge_of_caller {
            let domain = msg
                .from()
                .map(|f| f.uri.host.to_string())
                .unwrap_or_default();
            let mode = tenants.contact_rewrite_for(&domain);
            if let Some(edit) = self
                .edge
                .rewrite_contact(&msg, source, mode, token_expiry_secs)
            {
                headers.push(edit);
            }
        }
        let callee_domain = msg.to().map(|t| t.uri.host.to_string()).unwrap_or_default();
        let (received, rport) = request::rfc3581(&msg, &source);
        let forwarding = Forwarding {
            record_route,
            ua_flow,
            callee_rewrite: record_route.then(|| tenants.contact_rewrite_for(&callee_domain)),
            token_expiry_secs,
            routes,
            received,
            rport,
            loop_hash: request::loop_hash(&msg),
            headers,
            dialog_token: (record_route && self.config.auth).then(|| {
                self.edge
                    .cluster
                    .seal_dialog(crate::cluster::DialogToken { started_secs: secs })
            }),
            fork_limits: ForkLimits {
                breadth: request::max_breadth(&msg, self.config.max_breadth),
                max_branches: self.config.max_branches,
            },
        };
        // In-dialog requests take no hooks at all: their Request-URI is a
        // contact (no tenant domain), and their policy's on-request never
        // ran, so on-response and on-branch-failure would see another
        // tenant's policy with an empty ctx. A tenant without a policy has
        // nothing to say after routing either.
        let policy = initial.then_some(policy).filter(|p| !p.is_default());
        let Some(entry) = self.txs.get_mut(&tx) else {
            return;
        };
        entry.tx.tenant = tenant;
        entry.tx.call = call;
        let out = entry
            .tx
            .start_fork(targets, forwarding, policy, pctx, now.instant);
        self.apply(tx, out, now);
    }
}

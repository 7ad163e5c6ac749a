//! The edge node's part in a cluster (RFC 3327 Path, RFC 5626 outbound):
//! the node a UA talks to directly puts itself on the path of everything
//! for that UA, with a flow token saying which connection leads to it, and
//! is the only node that ever sends on that flow.
//!
//! Pure decisions over a message, the node's [`Identity`] and its
//! [`Cluster`] keys; times are Unix seconds given by the caller.

mod nat;
mod targets;

use std::sync::Arc;

use switchyard_codec::{HeaderName, NameAddr, SipMessage, Uri};

pub use self::nat::dialog_needs_flow;
use self::nat::{behind_nat, same_flow, tcp_to_itself, token_expiry, via_behind_nat};
pub use self::targets::{
    ClusterTarget, classify, contact_target, gruu_targets, one_flow_per_instance, target_of,
};
use crate::cluster::{Cluster, ContactRewrite, FlowToken, RewrittenContact};
use crate::net::{Source, Transport};
use crate::policy::HeaderEdit;
use crate::proxy::identity::Identity;
use crate::proxy::request::strip_angle;
use crate::registrar::RegistrarConfig;

/// What the edge decisions depend on besides the node's addresses.
#[derive(Debug, Clone)]
pub struct EdgeConfig {
    /// `cluster.path_transport`; `None`: chosen as [`Edge::path_transport`] says.
    pub path_transport: Option<Transport>,
    /// A cluster secret is configured (several nodes may share tokens).
    pub clustered: bool,
    /// Bounds the lifetime of the flow token in our Path.
    pub registrar: RegistrarConfig,
    /// The lifetime of the flow tokens in our Record-Route entries and
    /// rewritten Contacts (`auth.dialog_max_secs`).
    pub dialog_max_secs: u64,
}

/// This node as the edge of its UAs' flows.
#[derive(Debug, Clone)]
pub struct Edge {
    pub identity: Identity,
    pub cluster: Arc<Cluster>,
    pub config: EdgeConfig,
}

/// A request straight from a UA: one Via, so no proxy before us. The
/// same test as Kamailio's `is_first_hop()`.
pub fn is_first_hop(msg: &SipMessage) -> bool {
    msg.vias().take(2).count() == 1
}

impl Edge {
    pub fn new(identity: Identity, cluster: Arc<Cluster>, config: EdgeConfig) -> Self {
        Edge {
            identity,
            cluster,
            config,
        }
    }

    /// The transport our Path and Record-Route entries name for a UA's
    /// flow (`cluster.path_transport`). Default: on a cluster (a shared
    /// secret), TCP when we listen on it, so other nodes notice a dead edge
    /// at once; on a single node, the flow's own transport, since the
    /// entry only ever leads back to ourselves and the UA sees it in the
    /// 200 OK of its REGISTER.
    pub fn path_transport(&self, flow: Transport) -> Transport {
        if let Some(t) = self.config.path_transport {
            return t;
        }
        let listens = |t| self.identity.addresses().iter().any(|a| a.transport == t);
        if self.config.clustered && listens(Transport::Tcp) {
            Transport::Tcp
        } else if listens(flow) {
            flow
        } else {
            self.identity.addresses()[0].transport
        }
    }

    /// Our `host:port` on the path transport.
    fn path_address(&self, flow: Transport) -> (String, Transport) {
        let t = self.path_transport(flow);
        let addr = self.identity.address_for(t);
        (addr.advertised.clone(), addr.transport)
    }

    /// RFC 3327 §4 / RFC 5626 §5.1: a REGISTER from a UA gets our Path,
    /// with `ob` when the UA registers a flow (`reg-id`). The flow it came
    /// on goes into the Path as a token when the UA can only be reached on
    /// it (the token is *pinned*): an outbound flow, a TCP connection, or a
    /// UA behind NAT. For a UA reachable at its Contact (or registering a
    /// third party's), requests still pass through us, then go to the
    /// Contact. Returns the request as the registrar must see it.
    pub fn add_edge_path(
        &self,
        msg: &SipMessage,
        source: Source,
        now_secs: u64,
    ) -> Option<SipMessage> {
        let path = self.edge_path(msg, source, &self.config.registrar, now_secs);
        msg.with_header_pushed(HeaderName::Path, &path)
    }

    /// Our Path entry for a REGISTER that came straight from a UA, its
    /// flow token valid as long as `registrar` can grant the binding.
    fn edge_path(
        &self,
        msg: &SipMessage,
        source: Source,
        registrar: &RegistrarConfig,
        now_secs: u64,
    ) -> String {
        let ob = msg
            .header_values(HeaderName::Contact)
            .any(|c| NameAddr::parse(c).is_ok_and(|na| na.params.get("reg-id").is_some()));
        let (edge, transport) = self.path_address(source.transport);
        // RFC 7118 §5: a WebSocket client never listens; its connection is
        // the only way to it.
        let pinned = ob
            || source.transport.is_websocket()
            || via_behind_nat(msg, source)
            || tcp_to_itself(msg, source);
        let lifetime = crate::registrar::longest_grant(msg, registrar);
        let expires = token_expiry(now_secs, u64::from(lifetime));
        self.cluster
            .path_value((&edge, transport), source, pinned, ob, expires)
    }

    /// When a flow token minted now for a dialog stops being honoured: the
    /// longest a dialog may last (`auth.dialog_max_secs`).
    pub fn dialog_token_expiry(&self, now_secs: u64) -> u64 {
        token_expiry(now_secs, self.config.dialog_max_secs)
    }

    /// RFC 3327 §4.1 for a REGISTER we forward to another domain's
    /// registrar: as its UA's first hop we add our Path entry, so that
    /// registrar routes requests for the UA back through us and its flow,
    /// but only when the UA said `Supported: path` (§5.1: without it the
    /// registrar could not tell the UA its route set).
    pub fn foreign_register_path(
        &self,
        msg: &SipMessage,
        source: Source,
        now_secs: u64,
    ) -> Option<HeaderEdit> {
        // Another registrar may grant up to what the UA asked for.
        let theirs = RegistrarConfig {
            max_expires: u32::MAX,
            ..RegistrarConfig::default()
        };
        (is_first_hop(msg) && crate::registrar::supports(msg, "path")).then(|| HeaderEdit::Add {
            name: "Path".into(),
            value: self.edge_path(msg, source, &theirs, now_secs),
        })
    }

    /// Whether the REGISTER's topmost Path is an edge entry of this cluster.
    pub fn top_path_is_ours(&self, msg: &SipMessage, now_secs: u64) -> bool {
        msg.paths()
            .ok()
            .and_then(|p| p.into_iter().next())
            .is_some_and(|top| {
                top.uri
                    .user
                    .is_some_and(|u| self.cluster.open_flow(u, now_secs).is_ok())
            })
    }

    /// Removes the leading Route values that name this node (a binding's
    /// Path pushed as a route set starts with ours when we are the edge)
    /// and returns the flow one of them holds. `None`, with the list
    /// untouched past what is ours, when we hold no flow in them.
    pub fn take_own_routes(
        &self,
        route: &mut Vec<String>,
        now_secs: u64,
    ) -> (bool, Option<Source>) {
        let identity = &self.identity;
        let now = now_secs;
        let mut popped = false;
        let mut flow = None;
        while let Some(top) = route.first() {
            let Ok(uri) = Uri::parse(strip_angle(top)) else {
                break;
            };
            if !identity.is_me(&uri) {
                break;
            }
            flow = flow.or_else(|| self.cluster.own_flow(uri.user, now).map(|f| f.flow));
            route.remove(0);
            popped = true;
        }
        (popped, flow)
    }

    /// Whether the request reached us through a flow-token Route entry
    /// this node minted (a binding's Path pointing at us, pinned or not):
    /// we are the edge on the way to a UA for another node, which routed it.
    pub fn arrived_as_edge(&self, popped: &[String], now_secs: u64) -> bool {
        popped
            .iter()
            .filter_map(|r| Uri::parse(strip_angle(r)).ok())
            .filter_map(|u| self.cluster.open_flow(u.user?, now_secs).ok())
            .any(|f| f.node == self.cluster.node_id)
    }

    /// Whether a Route value is another node's edge entry (has a flow token).
    pub fn is_edge_route(&self, value: &str, now_secs: u64) -> bool {
        Uri::parse(strip_angle(value))
            .ok()
            .and_then(|u| {
                u.user
                    .map(|user| self.cluster.open_flow(user, now_secs).is_ok())
            })
            .unwrap_or(false)
    }

    /// RFC 5626 §5.3 for an in-dialog request: among the Route values of
    /// ours that it carried (our Record-Route), the flow token of a flow we
    /// hold that the request did *not* arrive on is the UA it is going to.
    /// Only when no route is left after ours: the UA is the next hop.
    pub fn flow_from_routes(
        &self,
        popped: &[String],
        remaining: &[String],
        source: Source,
        now_secs: u64,
    ) -> Option<Source> {
        if !remaining.is_empty() {
            return None;
        }
        let now = now_secs;
        popped
            .iter()
            .filter_map(|r| Uri::parse(strip_angle(r)).ok())
            .filter_map(|u| self.cluster.own_flow(u.user, now))
            .map(|f| f.flow)
            .find(|f| !same_flow(f, &source))
    }

    /// Our Record-Route entries for one branch: the side facing each flow
    /// we hold carries its token, so in-dialog requests coming from the
    /// other side reach the UA on that flow from whichever node they enter.
    /// For a SIPS request, an entry on TLS is a SIPS URI (RFC 3261 §16.6
    /// step 4, RFC 5630 §4.1: `sips:`, no `transport=tls`).
    #[allow(clippy::too_many_arguments)]
    pub fn record_route(
        &self,
        out: (&str, Transport),
        out_flow: Option<Source>,
        inbound: (&str, Transport),
        in_flow: Option<Source>,
        dialog: Option<&str>,
        expires: u64,
        sips: bool,
    ) -> Vec<String> {
        let rr = |at: (&str, Transport), flow| {
            let value = self.cluster.record_route_value(at, flow, dialog, expires);
            if sips && at.1 == Transport::Tls {
                value
                    .replacen("<sip:", "<sips:", 1)
                    .replacen(Transport::Tls.uri_param(), "", 1)
            } else {
                value
            }
        };
        if out == inbound && (out_flow.is_none() || in_flow.is_none()) {
            return vec![rr(out, out_flow.or(in_flow))];
        }
        vec![rr(out, out_flow), rr(inbound, in_flow)]
    }

    /// The edit replacing a UA's Contact with a cluster-routable one
    /// (sealed: the original URI, this edge, the flow), when the mode asks
    /// for it. A Contact that is a GRUU is left alone: it routes already.
    pub fn rewrite_contact(
        &self,
        msg: &SipMessage,
        flow: Source,
        mode: ContactRewrite,
        expires_secs: u64,
    ) -> Option<HeaderEdit> {
        if mode == ContactRewrite::Off {
            return None;
        }
        let value = msg.header(HeaderName::Contact)?;
        let contact = NameAddr::parse(value).ok()?;
        if contact.uri.params.get("gr").is_some()
            || contact
                .uri
                .user
                .is_some_and(|u| u.starts_with(crate::cluster::REWRITTEN_PREFIX))
        {
            return None;
        }
        if mode == ContactRewrite::Nat && !behind_nat(&contact.uri, flow) {
            return None;
        }
        let (edge, edge_transport) = self.path_address(flow.transport);
        let rewritten = self.cluster.rewritten_contact(&RewrittenContact {
            contact: contact.uri.raw.to_owned(),
            edge,
            edge_transport,
            flow: FlowToken {
                node: self.cluster.node_id.clone(),
                flow,
                pinned: true,
                expires_secs,
            },
        });
        // Header parameters (`expires`, `+sip.instance`...) stay as sent.
        let params = value.trim().rsplit_once('>').map_or("", |(_, p)| p);
        Some(HeaderEdit::Set {
            name: "Contact".into(),
            value: format!("<{rewritten}>{params}"),
        })
    }

    /// Whether an in-dialog request came through us (`[auth]` on): one of
    /// the Route values of ours it carried holds a dialog token of this
    /// cluster that has not outlived `dialog_max_secs`, or it is for a
    /// GRUU or a Contact we rewrote (which reach only the registered
    /// instance).
    pub fn came_through_us(&self, popped: &[String], ruri: &Uri<'_>, now_secs: u64) -> bool {
        let max = self.config.dialog_max_secs;
        let ours = popped.iter().any(|r| {
            Uri::parse(strip_angle(r))
                .ok()
                .and_then(|u| self.cluster.dialog_of(&u))
                .is_some_and(|d| d.is_ok_and(|d| d.started_secs.saturating_add(max) >= now_secs))
        });
        ours || self.targets_a_flow_of_ours(ruri, now_secs)
    }

    /// A GRUU, or a Contact an edge of this cluster rewrote.
    fn targets_a_flow_of_ours(&self, ruri: &Uri<'_>, now_secs: u64) -> bool {
        self.cluster.gruu_of(ruri).is_some() || self.cluster.rewritten_of(ruri, now_secs).is_some()
    }

    /// Whether a Request-URI leads to one of our users: an AOR of ours, a
    /// GRUU or a Contact we rewrote.
    pub fn targets_us(&self, ruri: &Uri<'_>, now_secs: u64) -> bool {
        self.identity.is_our_aor(ruri) || self.targets_a_flow_of_ours(ruri, now_secs)
    }

    /// A response's Contact rewritten as [`Self::rewrite_contact`] does, for
    /// a UA answering on one of our flows (1xx–2xx only).
    pub fn rewrite_response_contact(
        &self,
        msg: &SipMessage,
        flow: Source,
        mode: ContactRewrite,
        expires_secs: u64,
    ) -> Option<SipMessage> {
        if !matches!(msg.status(), Some(101..=299)) {
            return None;
        }
        let edit = self.rewrite_contact(msg, flow, mode, expires_secs)?;
        let mut e = msg.edit();
        HeaderEdit::apply_all(&[edit], &mut e);
        SipMessage::parse(e.finish()).ok()
    }
}

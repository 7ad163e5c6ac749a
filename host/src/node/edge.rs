//! The edge node's part in a cluster (RFC 3327 Path, RFC 5626 outbound):
//! the node a UA talks to directly puts itself on the path of everything
//! for that UA, with a flow token saying which connection leads to it, and
//! is the only node that ever sends on that flow.
//!
//! Pure decisions over a message and the node's [`Cluster`] view; the
//! routing code calls them at the points named in `docs/architecture.md`.

use switchyard_codec::{HeaderName, NameAddr, SipMessage, Uri};

use super::auth::unix_now;
use super::core::Core;
use crate::cluster::{ContactRewrite, RewrittenContact};
use crate::net::{Source, Transport};
use crate::policy::HeaderEdit;
use crate::proxy::request::strip_angle;
use crate::registrar::RegistrarConfig;

/// A request straight from a UA: one Via, so no proxy before us. The
/// same test as Kamailio's `is_first_hop()`.
pub(crate) fn is_first_hop(msg: &SipMessage) -> bool {
    msg.vias().take(2).count() == 1
}

impl Core {
    /// The transport our Path and Record-Route entries name for a UA's
    /// flow (`cluster.path_transport`). Default: on a cluster (a shared
    /// secret), TCP when we listen on it, so other nodes notice a dead edge
    /// at once; on a single node, the flow's own transport, since the
    /// entry only ever leads back to ourselves and the UA sees it in the
    /// 200 OK of its REGISTER.
    pub(crate) fn path_transport(&self, flow: Transport) -> Transport {
        if let Some(t) = self.config.cluster.path_transport {
            return t.into();
        }
        let listens = |t| {
            self.wiring()
                .identity
                .addresses()
                .iter()
                .any(|a| a.transport == t)
        };
        if self.config.cluster.secret.is_some() && listens(Transport::Tcp) {
            Transport::Tcp
        } else if listens(flow) {
            flow
        } else {
            self.wiring().identity.addresses()[0].transport
        }
    }

    /// Our `host:port` on the path transport.
    fn path_address(&self, flow: Transport) -> (String, Transport) {
        let t = self.path_transport(flow);
        let addr = self.wiring().identity.address_for(t);
        (addr.advertised.clone(), addr.transport)
    }

    /// RFC 3327 §4 / RFC 5626 §5.1: a REGISTER from a UA gets our Path,
    /// with `ob` when the UA registers a flow (`reg-id`). The flow it came
    /// on goes into the Path as a token when the UA can only be reached on
    /// it (the token is *pinned*): an outbound flow, a TCP connection, or a
    /// UA behind NAT. For a UA reachable at its Contact (or registering a
    /// third party's), requests still pass through us, then go to the
    /// Contact. Returns the request as the registrar must see it.
    pub(crate) fn add_edge_path(&self, msg: &SipMessage, source: Source) -> Option<SipMessage> {
        let mut e = msg.edit();
        let path = self.edge_path(msg, source, &self.config.registrar);
        e.push_header(HeaderName::Path, &path);
        SipMessage::parse(e.finish()).ok()
    }

    /// Our Path entry for a REGISTER that came straight from a UA, its
    /// flow token valid as long as `registrar` can grant the binding.
    fn edge_path(&self, msg: &SipMessage, source: Source, registrar: &RegistrarConfig) -> String {
        let ob = msg
            .header_values(HeaderName::Contact)
            .any(|c| NameAddr::parse(c).is_ok_and(|na| na.params.get("reg-id").is_some()));
        let (edge, transport) = self.path_address(source.transport);
        let pinned = ob || via_behind_nat(msg, source) || tcp_to_itself(msg, source);
        let lifetime = crate::registrar::longest_grant(msg, registrar);
        let expires = token_expiry(u64::from(lifetime));
        self.cluster
            .path_value((&edge, transport), source, pinned, ob, expires)
    }

    /// When a flow token minted now for a dialog stops being honoured: the
    /// longest a dialog may last (`auth.dialog_max_secs`).
    fn dialog_token_expiry(&self) -> u64 {
        token_expiry(self.config.auth.dialog_max_secs)
    }

    /// RFC 3327 §4.1 for a REGISTER we forward to another domain's
    /// registrar: as its UA's first hop we add our Path entry, so that
    /// registrar routes requests for the UA back through us and its flow,
    /// but only when the UA said `Supported: path` (§5.1: without it the
    /// registrar could not tell the UA its route set).
    pub(crate) fn foreign_register_path(
        &self,
        msg: &SipMessage,
        source: Source,
    ) -> Option<HeaderEdit> {
        // Another registrar may grant up to what the UA asked for.
        let theirs = RegistrarConfig {
            max_expires: u32::MAX,
            ..RegistrarConfig::default()
        };
        (is_first_hop(msg) && crate::registrar::supports(msg, "path")).then(|| HeaderEdit::Add {
            name: "Path".into(),
            value: self.edge_path(msg, source, &theirs),
        })
    }

    /// Whether the REGISTER's topmost Path is an edge entry of this cluster.
    pub(crate) fn top_path_is_ours(&self, msg: &SipMessage) -> bool {
        msg.paths()
            .ok()
            .and_then(|p| p.into_iter().next())
            .is_some_and(|top| {
                top.uri
                    .user
                    .is_some_and(|u| self.cluster.open_flow(u, unix_now()).is_ok())
            })
    }

    /// Removes the leading Route values that name this node (a binding's
    /// Path pushed as a route set starts with ours when we are the edge)
    /// and returns the flow one of them holds. `None`, with the list
    /// untouched past what is ours, when we hold no flow in them.
    pub(crate) fn take_own_routes(&self, route: &mut Vec<String>) -> (bool, Option<Source>) {
        let identity = &self.wiring().identity;
        let now = unix_now();
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

    /// Whether a Route value is another node's edge entry (has a flow token).
    pub(crate) fn is_edge_route(&self, value: &str) -> bool {
        Uri::parse(strip_angle(value))
            .ok()
            .and_then(|u| {
                u.user
                    .map(|user| self.cluster.open_flow(user, unix_now()).is_ok())
            })
            .unwrap_or(false)
    }

    /// RFC 5626 §5.3 for an in-dialog request: among the Route values of
    /// ours that it carried (our Record-Route), the flow token of a flow we
    /// hold that the request did *not* arrive on is the UA it is going to.
    /// Only when no route is left after ours: the UA is the next hop.
    pub(crate) fn flow_from_routes(
        &self,
        popped: &[String],
        remaining: &[String],
        source: Source,
    ) -> Option<Source> {
        if !remaining.is_empty() {
            return None;
        }
        let now = unix_now();
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
    pub(crate) fn record_route(
        &self,
        out: (&str, Transport),
        out_flow: Option<Source>,
        inbound: (&str, Transport),
        in_flow: Option<Source>,
        dialog: Option<&str>,
    ) -> Vec<String> {
        let expires = self.dialog_token_expiry();
        let rr = |at: (&str, Transport), flow| {
            self.cluster.record_route_value(at, flow, dialog, expires)
        };
        if out == inbound && (out_flow.is_none() || in_flow.is_none()) {
            return vec![rr(out, out_flow.or(in_flow))];
        }
        vec![rr(out, out_flow), rr(inbound, in_flow)]
    }

    /// The Contact rewriting mode for a UA of `domain`.
    pub(crate) fn contact_rewrite_for(&self, domain: &str) -> ContactRewrite {
        let tenant = self.config.tenant_of(domain);
        self.config
            .tenants
            .contact_rewrite
            .get(tenant)
            .copied()
            .unwrap_or(self.config.cluster.contact_rewrite)
    }

    /// The edit replacing a UA's Contact with a cluster-routable one
    /// (sealed: the original URI, this edge, the flow), when the mode asks
    /// for it. A Contact that is a GRUU is left alone: it routes already.
    pub(crate) fn rewrite_contact(
        &self,
        msg: &SipMessage,
        flow: Source,
        mode: ContactRewrite,
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
            flow: crate::cluster::FlowToken {
                node: self.cluster.node_id.clone(),
                flow,
                pinned: true,
                expires_secs: self.dialog_token_expiry(),
            },
        });
        // Header parameters (`expires`, `+sip.instance`...) stay as sent.
        let params = value.trim().rsplit_once('>').map_or("", |(_, p)| p);
        Some(HeaderEdit::Set {
            name: "Contact".into(),
            value: format!("<{rewritten}>{params}"),
        })
    }
}

/// Unix seconds `lifetime` from now, plus a minute for the clocks of the
/// cluster's nodes to disagree.
fn token_expiry(lifetime: u64) -> u64 {
    const CLOCK_SKEW_SECS: u64 = 60;
    unix_now()
        .saturating_add(lifetime)
        .saturating_add(CLOCK_SKEW_SECS)
}

/// A UA registering itself over TCP (a Contact on the connection's host):
/// it is reached over its connection (RFC 3261 §18 connection reuse; many
/// TCP UAs do not listen at all). A third party registering another host's
/// Contact over TCP is not.
fn tcp_to_itself(msg: &SipMessage, source: Source) -> bool {
    source.transport == Transport::Tcp
        && msg.header_values(HeaderName::Contact).any(|c| {
            NameAddr::parse(c).is_ok_and(|na| {
                let host = na.uri.host.to_string();
                host.trim_matches(|c| c == '[' || c == ']')
                    .parse::<std::net::IpAddr>()
                    .ok()
                    == Some(source.remote.ip())
            })
        })
}

/// Whether a UA sending a dialog-forming request must be reached on the
/// flow it came on rather than at its Contact: TCP, behind NAT by its Via
/// or by its Contact, or asking for outbound (`ob` on its Contact URI).
pub(crate) fn dialog_needs_flow(msg: &SipMessage, source: Source) -> bool {
    if source.transport == Transport::Tcp || via_behind_nat(msg, source) {
        return true;
    }
    let Some(contact) = msg
        .header(HeaderName::Contact)
        .and_then(|c| NameAddr::parse(c).ok())
    else {
        return false;
    };
    contact.uri.params.get("ob").is_some() || behind_nat(&contact.uri, source)
}

/// RFC 3581's test: the top Via's sent-by is not where the request came
/// from, so a NAT (or a sender that lies) is in between. Over TCP only the
/// address counts: a client's Via names its listening port, never the
/// ephemeral port its connection comes from.
fn via_behind_nat(msg: &SipMessage, source: Source) -> bool {
    let Ok(via) = msg.top_via() else {
        return true;
    };
    let host = via.host.to_string();
    let host = host.trim_matches(|c| c == '[' || c == ']');
    host.parse::<std::net::IpAddr>().ok() != Some(source.remote.ip())
        || (source.transport == Transport::Udp && via.port.unwrap_or(5060) != source.remote.port())
}

/// A Contact whose host:port is not where the UA's packets come from:
/// RFC 3581's NAT test, applied to the Contact. As for the Via, over TCP
/// only the address counts: the connection's port is ephemeral, never the
/// one a UA listens on and puts in its Contact.
fn behind_nat(contact: &Uri<'_>, flow: Source) -> bool {
    let host = contact.host.to_string();
    let host = host.trim_matches(|c| c == '[' || c == ']');
    let default_port = 5060;
    host.parse::<std::net::IpAddr>().ok() != Some(flow.remote.ip())
        || (flow.transport == Transport::Udp
            && contact.port.unwrap_or(default_port) != flow.remote.port())
}

/// The same flow: transport and remote address (the local side of a UDP
/// flow can be any of our sockets of a listener).
fn same_flow(a: &Source, b: &Source) -> bool {
    a.transport == b.transport && a.remote == b.remote
}

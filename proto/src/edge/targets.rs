//! Request-URIs that carry their own routing (RFC 5627 GRUUs and the
//! Contacts an edge rewrote), resolved on any node from the URI and the
//! shared location store alone, and the targets bindings make (§16.5).

use switchyard_codec::{Host, Uri};

use super::Edge;
use crate::cluster::{GruuRef, RewrittenContact};
use crate::location::{Aor, Binding};
use crate::proxy::fork::Target;
use crate::proxy::request::LocalAnswer;
use crate::registrar::millis;

/// What a Request-URI that routes itself resolves to.
#[derive(Debug, Clone, PartialEq)]
pub enum ClusterTarget {
    /// A Contact an edge of this cluster rewrote: its original URI,
    /// reached through that edge (or on our flow).
    Contact(Target),
    /// A GRUU of one of our domains: the contacts of one instance of an
    /// AOR; a temporary GRUU only those registered at or before its
    /// generation. Needs a location lookup, then [`gruu_targets`].
    Gruu {
        aor: Aor,
        instance: String,
        generation_ms: Option<u64>,
    },
    /// A GRUU or rewritten Contact we cannot have issued (forged, altered,
    /// expired, another cluster's): 404.
    Refused(LocalAnswer),
}

/// RFC 5627 §5.5 (proxy behaviour) and the rewritten Contacts of
/// [`Edge::rewrite_contact`]; `None` for any other URI, or a public GRUU of
/// another domain (that domain's to resolve).
pub fn classify(edge: &Edge, ruri: &Uri<'_>, now_secs: u64) -> Option<ClusterTarget> {
    let not_found = || ClusterTarget::Refused(LocalAnswer::new(404, "Not Found"));
    if let Some(rewritten) = edge.cluster.rewritten_of(ruri, now_secs) {
        return Some(match rewritten {
            Ok(contact) => ClusterTarget::Contact(contact_target(edge, contact)),
            Err(_) => not_found(),
        });
    }
    let (aor, instance, generation_ms) = match edge.cluster.gruu_of(ruri)? {
        GruuRef::Public { .. } if !edge.identity.is_our_aor(ruri) => return None,
        GruuRef::Public { aor, instance } => (aor, instance, None),
        GruuRef::Temp(t) => (t.aor, t.instance, Some(t.generation_ms)),
        GruuRef::Invalid => {
            tracing::debug!(uri = ruri.raw, "GRUU refused");
            return Some(not_found());
        }
    };
    let Ok(aor) = Aor::parse(&aor) else {
        return Some(not_found());
    };
    if !edge.identity.is_our_domain(&Host::Domain(aor.domain())) {
        return Some(not_found());
    }
    Some(ClusterTarget::Gruu {
        aor,
        instance,
        generation_ms,
    })
}

/// The targets of a GRUU once its AOR's bindings are known: its instance's
/// contacts (one flow each); none is 480.
pub fn gruu_targets(
    bindings: Vec<Binding>,
    instance: &str,
    generation_ms: Option<u64>,
) -> Result<Vec<Binding>, LocalAnswer> {
    let bindings: Vec<Binding> = bindings
        .into_iter()
        .filter(|b| {
            b.instance
                .as_deref()
                .is_some_and(|i| i.eq_ignore_ascii_case(instance))
                && generation_ms.is_none_or(|g| millis(b.registered_at) <= g)
        })
        .collect();
    if bindings.is_empty() {
        return Err(LocalAnswer::new(480, "Temporarily Unavailable"));
    }
    Ok(bindings)
}

/// A rewritten Contact's target: the original URI, sent on the flow when
/// we are its edge, else through the edge named in the token.
pub fn contact_target(edge: &Edge, contact: RewrittenContact) -> Target {
    let mut target = Target::new(contact.contact);
    if contact.flow.node == edge.cluster.node_id {
        target.flow = Some(contact.flow.flow);
    } else {
        target.route =
            vec![
                edge.cluster
                    .edge_route(&contact.edge, contact.edge_transport, &contact.flow),
            ];
    }
    target
}

/// RFC 5626 §5.3: a UA instance with several flows (reg-ids) is reached
/// on one of them, the most recently refreshed, not forked to all.
/// Bindings without an instance are all kept.
pub fn one_flow_per_instance(bindings: &[Binding]) -> impl Iterator<Item = &Binding> {
    bindings.iter().filter(|b| {
        let Some(instance) = &b.instance else {
            return true;
        };
        !bindings.iter().any(|other| {
            other
                .instance
                .as_deref()
                .is_some_and(|i| i.eq_ignore_ascii_case(instance))
                && (other.expires_at, &other.contact_key) > (b.expires_at, &b.contact_key)
        })
    })
}

/// A binding as a fork target: its contact, q and Path as the route set.
pub fn target_of(b: &Binding) -> Target {
    Target {
        uri: b.contact.clone(),
        q: b.q_or_default(),
        route: b.path.clone(),
        ..Target::new("")
    }
}

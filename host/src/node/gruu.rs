//! Request-URIs that carry their own routing (RFC 5627 GRUUs and the
//! Contacts an edge rewrote): resolved on any node, from the URI and the
//! shared location store alone.

use switchyard_codec::Uri;
use tracing::debug;

use super::core::Core;
use super::routing::{DefaultTargets, lookup, target_of};
use crate::cluster::GruuRef;
use crate::location::{Aor, Binding};
use crate::proxy::fork::Target;
use crate::proxy::request::Reject;
use crate::registrar::millis;

/// The targets of a GRUU or a rewritten Contact; `None` for any other URI.
///
/// RFC 5627 §5.5 (proxy behaviour): a GRUU reaches the contacts of its
/// instance only; an instance with none is 480; a GRUU we cannot have
/// issued (forged, altered, another cluster's) is 404.
pub(super) async fn cluster_targets(
    core: &Core,
    ruri: &Uri<'_>,
) -> Option<Result<DefaultTargets, Reject>> {
    if let Some(rewritten) = core.cluster.rewritten_of(ruri, super::auth::unix_now()) {
        return Some(match rewritten {
            Ok(contact) => Ok(DefaultTargets {
                targets: vec![contact_target(core, contact)],
                bindings: Vec::new(),
            }),
            Err(_) => Err(Reject::new(404, "Not Found")),
        });
    }
    let (aor, instance, generation) = match core.cluster.gruu_of(ruri)? {
        // Another domain's GRUU is that domain's to resolve: routed as
        // any other URI.
        GruuRef::Public { .. } if !core.wiring().identity.is_our_aor(ruri) => return None,
        GruuRef::Public { aor, instance } => (aor, instance, None),
        GruuRef::Temp(t) => (t.aor, t.instance, Some(t.generation_ms)),
        GruuRef::Invalid => {
            debug!(uri = ruri.raw, "GRUU refused");
            return Some(Err(Reject::new(404, "Not Found")));
        }
    };
    let Ok(aor) = Aor::parse(&aor) else {
        return Some(Err(Reject::new(404, "Not Found")));
    };
    if !core
        .wiring()
        .identity
        .is_our_domain(&switchyard_codec::Host::Domain(aor.domain()))
    {
        return Some(Err(Reject::new(404, "Not Found")));
    }
    let bindings = match lookup(core, &aor).await {
        Ok(b) => b,
        Err(rej) => return Some(Err(rej)),
    };
    let bindings: Vec<Binding> = bindings
        .into_iter()
        .filter(|b| {
            b.instance
                .as_deref()
                .is_some_and(|i| i.eq_ignore_ascii_case(&instance))
                && generation.is_none_or(|g| millis(b.registered_at) <= g)
        })
        .collect();
    if bindings.is_empty() {
        return Some(Err(Reject::new(480, "Temporarily Unavailable")));
    }
    Some(Ok(DefaultTargets {
        targets: one_flow_per_instance(&bindings).map(target_of).collect(),
        bindings,
    }))
}

/// A rewritten Contact's target: the original URI, sent on the flow when
/// we are its edge, else through the edge named in the token.
fn contact_target(core: &Core, contact: crate::cluster::RewrittenContact) -> Target {
    let mut target = Target::new(contact.contact);
    if contact.flow.node == core.cluster.node_id {
        target.flow = Some(contact.flow.flow);
    } else {
        target.route =
            vec![
                core.cluster
                    .edge_route(&contact.edge, contact.edge_transport, &contact.flow),
            ];
    }
    target
}

/// RFC 5626 §5.3: a UA instance with several flows (reg-ids) is reached
/// on one of them, the most recently refreshed, not forked to all.
/// Bindings without an instance are all kept.
pub(super) fn one_flow_per_instance(bindings: &[Binding]) -> impl Iterator<Item = &Binding> {
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

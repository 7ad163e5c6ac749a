//! The registrar (RFC 3261 §10.3): REGISTER in, location-store update,
//! 200 OK listing the current bindings out.
//!
//! The rules are sans-IO, in the protocol crate
//! (`switchyard_proto::registrar`, re-exported here); this module glues
//! them around a [`LocationStore`]: [`handle`] parses, makes one store call
//! and builds the response bytes.

use std::time::SystemTime;

use bytes::Bytes;
use switchyard_codec::SipMessage;

use crate::cluster::Cluster;
use crate::location::{LocationStore, RegisterError};
use crate::net::Source;

pub use switchyard_proto::registrar::*;

/// Answers a REGISTER end to end: parse, one store call, response bytes.
///
/// A query (no Contact) costs one `lookup`, everything else one `register`.
/// Store failures become 503 with Retry-After, out-of-order requests 500.
pub async fn handle(
    store: &dyn LocationStore,
    msg: &SipMessage,
    config: &RegistrarConfig,
    source: Source,
    node: Option<&str>,
    now: SystemTime,
) -> Bytes {
    handle_limited(store, msg, config, source, node, Limits::default(), now).await
}

/// [`handle`] with a policy's [`Limits`] applied.
pub async fn handle_limited(
    store: &dyn LocationStore,
    msg: &SipMessage,
    config: &RegistrarConfig,
    source: Source,
    node: Option<&str>,
    limits: Limits,
    now: SystemTime,
) -> Bytes {
    let ctx = RegisterContext::direct(source, node);
    handle_in(store, msg, config, &ctx, limits, None, now).await
}

/// The whole registrar: [`handle_limited`] with what the node knows about
/// the request's path ([`RegisterContext`]) and the cluster that mints
/// GRUUs (RFC 5627) when the UA supports them.
pub async fn handle_in(
    store: &dyn LocationStore,
    msg: &SipMessage,
    config: &RegistrarConfig,
    ctx: &RegisterContext<'_>,
    limits: Limits,
    cluster: Option<&Cluster>,
    now: SystemTime,
) -> Bytes {
    let (aor, mut update) = match parse_register_in(msg, config, ctx) {
        Ok(parsed) => parsed,
        Err(reject) => {
            tracing::debug!(%reject, "REGISTER rejected");
            return reject.response(msg);
        }
    };
    let outbound = limit(&mut update, config, limits);
    let bindings = if update.contacts == ContactsUpdate::Fetch {
        store.lookup(&aor, now).await.map_err(RegisterError::Store)
    } else {
        store
            .register(&aor, &update, now)
            .await
            .map(|outcome| outcome.bindings)
    };
    match &bindings {
        Ok(bindings) => tracing::debug!(%aor, bindings = bindings.len(), "REGISTER accepted"),
        Err(RegisterError::Rejected(error)) => {
            tracing::debug!(%aor, %error, "REGISTER refused by the rules");
        }
        Err(RegisterError::Store(error)) => {
            tracing::warn!(%aor, %error, backend = store.backend(), "location store failed");
        }
    }
    let (received, rport) = switchyard_proto::proxy::request::rfc3581(msg, &ctx.source);
    let extras = OkExtras {
        echo_path: supports(msg, "path") || !ctx.own_path,
        outbound,
        gruu: cluster.filter(|_| supports(msg, "gruu")),
        received: (received.as_deref(), rport),
    };
    final_response(msg, &bindings, now, &extras).1
}

#[cfg(test)]
#[path = "handle_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "edge_tests.rs"]
mod edge_tests;

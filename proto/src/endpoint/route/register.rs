//! The registrar step (RFC 3261 §10.3) with the edge's Path (RFC 3327):
//! parse the REGISTER, ask the store, answer with the bindings.

use std::sync::Arc;

use switchyard_codec::SipMessage;

use super::{Routing, Stage};
use crate::edge;
use crate::endpoint::{Endpoint, IoKind, Now, Waiter};
use crate::location::{Binding, RegisterError};
use crate::registrar::{self, ContactsUpdate, Limits, OkExtras, RegisterContext, RuleError};

impl Endpoint {
    /// RFC 3261 §10.3 with the edge's Path (RFC 3327 §4): a REGISTER
    /// straight from a UA is stored with our flow token, so every node
    /// routes to it through us.
    pub(super) fn registrar(&mut self, tx: u64, mut routing: Routing, limits: Limits, now: Now) {
        let Some(msg) = self.request_of(tx) else {
            return;
        };
        let source = self.txs[&tx].tx.source();
        let secs = now.unix_secs();
        let first_hop = edge::is_first_hop(&msg);
        let with_path = first_hop
            .then(|| self.edge.add_edge_path(&msg, source, secs))
            .flatten();
        let own_path = with_path.is_some() || self.edge.top_path_is_ours(&msg, secs);
        let register = with_path.map(Arc::new).unwrap_or(msg);
        let ctx = RegisterContext {
            source,
            node: Some(&self.config.node_id),
            first_hop,
            own_path,
        };
        let config = &self.config.registrar;
        let (aor, mut update) = match registrar::parse_register_in(&register, config, &ctx) {
            Ok(parsed) => parsed,
            Err(reject) => {
                tracing::debug!(%reject, "REGISTER rejected");
                return self.answer(tx, &reject.answer(), now);
            }
        };
        let outbound = registrar::limit(&mut update, config, limits);
        let at = now.wall;
        let kind = if update.contacts == ContactsUpdate::Fetch {
            IoKind::Lookup { aor, at }
        } else {
            IoKind::Register { aor, update, at }
        };
        routing.stage = Stage::Registrar {
            register,
            own_path,
            outbound,
            at,
        };
        self.ask(
            kind,
            Waiter::Route {
                tx,
                routing: Box::new(routing),
            },
        );
    }

    pub(super) fn registered(
        &mut self,
        tx: u64,
        done: Registered<'_>,
        result: Result<Vec<Binding>, RegisterError>,
        now: Now,
    ) {
        let Registered {
            register,
            own_path,
            outbound,
            at,
        } = done;
        match &result {
            Ok(bindings) => tracing::debug!(bindings = bindings.len(), "REGISTER stored"),
            Err(RegisterError::Rejected(error)) => {
                tracing::debug!(%error, "REGISTER refused by the rules");
                if matches!(error, RuleError::TooManyBindings { .. }) {
                    self.stats.contacts_capped.inc();
                }
            }
            Err(RegisterError::Store(error)) => tracing::warn!(%error, "location store failed"),
        }
        let Some(source) = self.txs.get(&tx).map(|e| e.tx.source()) else {
            return;
        };
        let (received, rport) = crate::proxy::request::rfc3581(register, &source);
        let extras = OkExtras {
            echo_path: registrar::supports(register, "path") || !own_path,
            outbound,
            gruu: registrar::supports(register, "gruu").then_some(&*self.edge.cluster),
            received: (received.as_deref(), rport),
        };
        let (code, data) = registrar::final_response(register, &result, at, &extras);
        self.respond_bytes(tx, code, data, now);
    }

    fn respond_bytes(&mut self, tx: u64, code: u16, data: bytes::Bytes, now: Now) {
        if let Some(entry) = self.txs.get_mut(&tx) {
            let out = entry.tx.respond_bytes(code, data, now.instant);
            self.apply(tx, out, now);
        }
    }
}

/// A REGISTER whose store call is done.
pub(super) struct Registered<'a> {
    pub register: &'a SipMessage,
    pub own_path: bool,
    pub outbound: bool,
    /// The wall clock the store applied it at.
    pub at: std::time::SystemTime,
}

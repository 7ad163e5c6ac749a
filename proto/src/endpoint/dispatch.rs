//! The first step of every message: which transaction it belongs to.
//!
//! ```text
//! request ─▶ validate (codec) ─▶ ACK    ─▶ our INVITE's non-2xx? absorb : forward statelessly (§16.11)
//!                               ├▶ CANCEL ─▶ pending INVITE? 200 + cancel branches : 481 / forward (§16.10)
//!                               └▶ other  ─▶ retransmission? absorb : new ProxyTx ─▶ route
//! response ─▶ validate ─▶ client transaction? its ProxyTx (§16.7) : forward statelessly
//! ```

use std::sync::atomic::Ordering;

use switchyard_codec::{self as codec, HeaderName, Method, SipMessage};

use super::{Endpoint, Entry, Now};
use crate::net::Source;
use crate::proxy_tx::ProxyTx;
use crate::transaction::{ClientKey, ServerKey, is_rfc3261_branch, response_delta};

impl Endpoint {
    pub(super) fn on_request(&mut self, now: Now, source: Source, msg: SipMessage) {
        self.stats.requests_in.inc();
        let is_ack = msg.method() == Some(&Method::Ack);
        if let Err(rej) = codec::validate_request(&msg) {
            self.stats.rejected.inc();
            if !is_ack {
                let resp = local_response(&msg, &source, rej.code, &rej.reason, &[]);
                self.reply(source, resp);
            }
            return;
        }
        let Some(key) = server_key(&msg) else {
            if !is_ack {
                let resp = local_response(&msg, &source, 400, "Bad Via or Method", &[]);
                self.reply(source, resp);
            }
            return;
        };
        // INFO: its fields (Call-ID, branch, tenant once routed) are on
        // every line logged while the request is handled at the default
        // level; at `warn` the span costs nothing.
        let span = tracing::info_span!(
            "sip",
            call_id = msg.call_id().unwrap_or("-"),
            branch = %key.branch(),
            tenant = tracing::field::Empty,
        );
        let _entered = span.enter();
        // In-dialog ACK, BYE, re-INVITE, UPDATE of a call we track.
        if crate::dialog::may_change_a_call(&msg) {
            let event = self.calls().in_dialog(&msg, now);
            self.call_events.extend(event);
        }
        match msg.method() {
            Some(Method::Ack) => self.on_ack(now, source, msg, key),
            Some(Method::Cancel) => self.on_cancel(now, source, msg, key),
            _ => self.on_new_or_retransmitted(now, source, msg, key),
        }
    }

    fn on_new_or_retransmitted(
        &mut self,
        now: Now,
        source: Source,
        msg: SipMessage,
        key: ServerKey,
    ) {
        if let Some(&id) = self.servers.get(&key) {
            // §17.2.1/§17.2.2: a retransmission is absorbed by its
            // transaction, which re-sends its last response.
            self.stats.retransmissions_absorbed.inc();
            if let Some(entry) = self.txs.get_mut(&id) {
                let out = entry.tx.on_retransmission(now.instant);
                self.apply(id, out, now);
            }
            return;
        }
        let origin = super::origin(&source, msg.as_bytes());
        if let Some(delta) = self.completed.get(&key, &origin) {
            // Its transaction completed and was kept compact: rebuild the
            // response from this copy of the request.
            self.stats.retransmissions_absorbed.inc();
            // (An empty delta: an INVITE answered 2xx, which only absorbs.)
            if !delta.is_empty()
                && let Some(data) = response_delta::decode(delta, msg.as_bytes())
            {
                self.reply(source, data);
            }
            return;
        }
        if self.config.live.load(Ordering::Relaxed) >= self.config.max_transactions {
            // Overloaded: answered once, statelessly (RFC 3261 §21.5.4,
            // RFC 6357); a retransmission is answered again, maybe by
            // then with a transaction.
            self.stats.overloaded.inc();
            let resp = local_response(
                &msg,
                &source,
                503,
                "Service Unavailable",
                &[("Retry-After", "5")],
            );
            self.reply(source, resp);
            return;
        }
        if self.config.draining.load(Ordering::Relaxed) && starts_a_dialog(&msg) {
            // Shutting down: no new calls here, the caller (or its
            // outbound proxy) tries another node (RFC 3261 §21.5.4).
            self.stats.refused_draining.inc();
            let resp = local_response(
                &msg,
                &source,
                503,
                "Service Unavailable",
                &[("Retry-After", "30")],
            );
            self.reply(source, resp);
            return;
        }
        let id = self.next_tx;
        self.next_tx += 1;
        let to_tag = format!("sy{:012x}", rand::Rng::random::<u64>(&mut self.rng) >> 16);
        let tx = ProxyTx::new(
            id,
            msg,
            source,
            key.clone(),
            &self.config.tx,
            to_tag,
            now.instant,
        );
        self.servers.insert(key, id);
        self.config.live.fetch_add(1, Ordering::Relaxed);
        self.txs.insert(
            id,
            Entry {
                tx: Box::new(tx),
                timer: None,
            },
        );
        self.start_routing(id, now);
    }

    /// ACK for a non-2xx final belongs to our INVITE server transaction
    /// (hop-by-hop, §17.2.1); any other ACK is end-to-end and is forwarded
    /// statelessly along the dialog's route (§16.11 / RFC 6026).
    fn on_ack(&mut self, now: Now, source: Source, msg: SipMessage, key: ServerKey) {
        let invite = ServerKey::new(key.branch(), key.sent_by(), "INVITE");
        if let Some(&id) = self.servers.get(&invite)
            && let Some(entry) = self.txs.get_mut(&id)
            && let Some(out) = entry.tx.on_ack(now.instant)
        {
            self.apply(id, out, now);
            return;
        }
        self.forward_request(now, source, msg);
    }

    /// §16.10: a CANCEL matching a pending INVITE is answered 200 at once,
    /// then every branch is cancelled. One that matches nothing is
    /// forwarded statelessly when it names a next hop, and answered 481
    /// when it was for our own domain (we could only guess its targets).
    fn on_cancel(&mut self, now: Now, source: Source, msg: SipMessage, key: ServerKey) {
        let invite = ServerKey::new(key.branch(), key.sent_by(), "INVITE");
        if self.completed.contains(&invite) {
            // Answered 2xx already (and kept compact): nothing to cancel,
            // but the INVITE is known (§9.2, §16.10).
            let resp = local_response(&msg, &source, 200, "OK", &[]);
            self.reply(source, resp);
            return;
        }
        let Some(&id) = self.servers.get(&invite) else {
            let ours = msg
                .request_uri()
                .is_ok_and(|u| self.edge.identity.is_our_aor(&u));
            if ours && msg.header(HeaderName::Route).is_none() {
                let resp =
                    local_response(&msg, &source, 481, "Call/Transaction Does Not Exist", &[]);
                self.reply(source, resp);
            } else {
                self.forward_request(now, source, msg);
            }
            return;
        };
        let resp = local_response(&msg, &source, 200, "OK", &[]);
        self.reply(source, resp);
        if let Some(entry) = self.txs.get_mut(&id) {
            let out = entry.tx.cancel(now.instant);
            self.apply(id, out, now);
        }
    }

    pub(super) fn on_response(&mut self, now: Now, source: Source, msg: SipMessage) {
        self.stats.responses_in.inc();
        if codec::validate_response(&msg).is_err() {
            self.stats.dropped_malformed.inc();
            return;
        }
        let Some(key) = client_key(&msg) else {
            self.stats.dropped_stray.inc();
            return;
        };
        let found = self.clients.get(&key).copied();
        match found.and_then(|(id, role)| Some((id, role, self.txs.get_mut(&id)?))) {
            Some((id, role, entry)) => {
                let span = super::tx_span(&entry.tx);
                let _entered = span.enter();
                let out = entry.tx.on_response(role, msg, &self.edge, now.instant);
                self.apply(id, out, now);
            }
            // §16.7: no matching transaction (e.g. a retransmitted 2xx
            // after the INVITE transaction ended): forward it statelessly.
            _ => self.forward_response(now, source, msg),
        }
    }
}

/// A response we answer statelessly, its top Via stamped with where the
/// request came from (RFC 3261 §18.2.1, RFC 3581 §4).
fn local_response(
    msg: &SipMessage,
    source: &Source,
    code: u16,
    reason: &str,
    headers: &[(&str, &str)],
) -> bytes::Bytes {
    let (received, rport) = crate::proxy::request::rfc3581(msg, source);
    let mut b = codec::response_to(msg, code, reason).received(received.as_deref(), rport);
    for (name, value) in headers {
        b = b.header(name, value);
    }
    b.build()
}

/// §17.2.3: the server transaction key from the top Via (ACK and CANCEL
/// callers map it to the INVITE's key themselves).
pub(super) fn server_key(msg: &SipMessage) -> Option<ServerKey> {
    let via = msg.top_via().ok()?;
    let method = msg.method()?;
    let mut sent_by = String::with_capacity(32);
    via.host.push_to(&mut sent_by);
    if let Some(port) = via.port {
        sent_by.push(':');
        switchyard_codec::text::push_u16(&mut sent_by, port);
    }
    match via.branch() {
        Some(branch) if is_rfc3261_branch(branch) => {
            Some(ServerKey::new(branch, &sent_by, method.as_str()))
        }
        _ => Some(ServerKey::new(
            &rfc2543_branch(msg),
            &sent_by,
            method.as_str(),
        )),
    }
}

/// §17.2.3's fallback for RFC 2543 clients (no magic cookie): the
/// transaction is identified by Request-URI, From tag, Call-ID, CSeq number
/// and top Via. The To tag is left out so the ACK of a non-2xx matches too.
fn rfc2543_branch(msg: &SipMessage) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    crate::proxy::request::hash_request_identity(msg, &mut h);
    msg.top_via().ok().map(|v| v.raw.to_owned()).hash(&mut h);
    format!("rfc2543-{:016x}", h.finish())
}

/// §17.1.3: the client transaction key from the top Via branch and CSeq method.
fn client_key(msg: &SipMessage) -> Option<ClientKey> {
    let via = msg.top_via().ok()?;
    let cseq = msg.cseq().ok()?;
    Some(ClientKey::new(via.branch()?, cseq.method.as_str()))
}

/// An out-of-dialog request that creates a dialog (RFC 3261 §12; RFC 6665
/// SUBSCRIBE, RFC 3515 REFER): what a draining node turns away.
fn starts_a_dialog(msg: &SipMessage) -> bool {
    let creates = matches!(
        msg.method(),
        Some(Method::Invite | Method::Subscribe | Method::Refer)
    );
    creates && msg.to_tag().map_or(true, |t| t.is_none())
}

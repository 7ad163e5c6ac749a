//! What makes N nodes one proxy (RFC 3327 Path, RFC 5626 outbound, RFC 5627
//! GRUU), as pure functions over a shared secret:
//!
//! - [`seal`]: authenticated encryption of tokens with key rotation;
//! - [`tokens`]: what a flow token, a temp-GRUU and a rewritten Contact carry;
//! - [`uris`]: the URIs they travel in (Path, Record-Route, GRUUs, Contacts)
//!   and how a node recognises them again.
//!
//! No state is shared between nodes except the location store: a node that
//! receives a request for a GRUU or a rewritten Contact decodes everything
//! it needs from the URI itself, and only the edge node that owns a flow
//! ever sends on it.

pub mod seal;
pub mod tokens;
mod uris;

#[cfg(test)]
mod tests;

pub use seal::{InvalidToken, Kind, Sealer};
pub use tokens::{DialogToken, FlowToken, RewrittenContact, TempGruu};
pub use uris::{GruuRef, REWRITTEN_PREFIX, TEMP_GRUU_PREFIX};

use crate::net::Source;
use tokens::{Reader, Writer};

/// This node's view of the cluster: its id, the keys, the domain it
/// writes into cluster URIs.
#[derive(Debug)]
pub struct Cluster {
    pub node_id: String,
    /// Host of temp-GRUUs and rewritten Contacts: a name every node
    /// answers for (the service domain in front of the nodes).
    pub domain: String,
    sealer: Sealer,
}

impl Cluster {
    pub fn new<S: AsRef<[u8]>>(node_id: &str, domain: &str, secrets: &[S]) -> Cluster {
        Cluster {
            node_id: node_id.to_owned(),
            domain: domain.to_ascii_lowercase(),
            sealer: Sealer::new(secrets),
        }
    }

    /// A sealed token for a flow this node holds (`pinned`: see
    /// [`FlowToken::pinned`]), honoured until `expires_secs`.
    pub fn flow_token(&self, flow: Source, pinned: bool, expires_secs: u64) -> String {
        self.seal_flow(&FlowToken {
            node: self.node_id.clone(),
            flow,
            pinned,
            expires_secs,
        })
    }

    /// A sealed flow token for any node's flow (re-sealed from a token
    /// that node minted, e.g. inside a rewritten Contact).
    pub fn seal_flow(&self, flow: &FlowToken) -> String {
        self.seal(Kind::Flow, |w| flow.encode(w))
    }

    /// A flow token of this cluster that has not expired at `now_secs`.
    /// An expired token is as good as a forged one: the request it rides
    /// on is routed like any other, held to the egress allowlist.
    pub fn open_flow(&self, token: &str, now_secs: u64) -> Result<FlowToken, InvalidToken> {
        let flow = self.open(Kind::Flow, token, FlowToken::decode)?;
        flow.is_live(now_secs).then_some(flow).ok_or(InvalidToken)
    }

    /// A live pinned flow token from a Route/Path user part, when it is
    /// ours to send on.
    pub fn own_flow(&self, user: Option<&str>, now_secs: u64) -> Option<FlowToken> {
        self.open_flow(user?, now_secs)
            .ok()
            .filter(|f| f.node == self.node_id && f.pinned)
    }

    pub fn seal_dialog(&self, dialog: DialogToken) -> String {
        self.seal(Kind::Dialog, |w| dialog.encode(w))
    }

    pub fn open_dialog(&self, token: &str) -> Result<DialogToken, InvalidToken> {
        self.open(Kind::Dialog, token, DialogToken::decode)
    }

    pub fn seal_temp_gruu(&self, gruu: &TempGruu) -> String {
        self.seal(Kind::TempGruu, |w| gruu.encode(w))
    }

    pub fn open_temp_gruu(&self, token: &str) -> Result<TempGruu, InvalidToken> {
        self.open(Kind::TempGruu, token, TempGruu::decode)
    }

    pub fn seal_contact(&self, contact: &RewrittenContact) -> String {
        self.seal(Kind::Contact, |w| contact.encode(w))
    }

    /// A rewritten Contact whose flow has not expired at `now_secs`.
    pub fn open_contact(
        &self,
        token: &str,
        now_secs: u64,
    ) -> Result<RewrittenContact, InvalidToken> {
        let contact = self.open(Kind::Contact, token, RewrittenContact::decode)?;
        contact
            .flow
            .is_live(now_secs)
            .then_some(contact)
            .ok_or(InvalidToken)
    }

    /// Encodes a token with `encode` and seals it as `kind`.
    fn seal(&self, kind: Kind, encode: impl FnOnce(&mut Writer)) -> String {
        let mut w = Writer::default();
        encode(&mut w);
        self.sealer.seal(kind, &w.0)
    }

    /// Opens a token sealed as `kind` and decodes all of it with `decode`.
    fn open<T>(
        &self,
        kind: Kind,
        token: &str,
        decode: fn(&mut Reader<'_>) -> Result<T, InvalidToken>,
    ) -> Result<T, InvalidToken> {
        let plain = self.sealer.open(kind, token)?;
        let mut r = Reader(&plain);
        let value = decode(&mut r)?;
        r.finish()?;
        Ok(value)
    }
}

/// When the edge node replaces a UA's Contact with a cluster-routable one
/// (see `docs/operations.md`, "Contact rewriting").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ContactRewrite {
    /// Never: in-dialog requests rely on Record-Route alone.
    Off,
    /// When the UA is behind NAT: its Contact's host:port differs from
    /// the address its request came from (RFC 3581 received/rport).
    #[default]
    Nat,
    /// For every UA without a GRUU.
    Always,
}

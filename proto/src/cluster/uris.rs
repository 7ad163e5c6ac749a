//! The URIs cluster state travels in, built and recognised.
//!
//! | URI | form | who decodes it |
//! |---|---|---|
//! | Path / Record-Route (RFC 3327, RFC 5626 §5) | `<sip:FLOW@edge:port;lr[;ob]>` | the edge, when it pops its own entry |
//! | public GRUU (RFC 5627 §3.1) | `sip:user@domain;gr=urn:uuid:…` | any node: AOR + instance, then the store |
//! | temp-GRUU (RFC 5627 §3.2) | `sip:tgruu.TOKEN@domain;gr` | any node: sealed AOR + instance + generation |
//! | rewritten Contact | `sip:sy.TOKEN@domain` | any node: sealed contact + edge + flow |

use switchyard_codec::Uri;

use super::{Cluster, FlowToken, InvalidToken, RewrittenContact, TempGruu};
use crate::net::{Source, Transport};

/// User-part prefix of temp-GRUUs we mint.
pub const TEMP_GRUU_PREFIX: &str = "tgruu.";
/// The Record-Route URI parameter carrying the dialog token.
pub const DIALOG_PARAM: &str = "dlg";
/// User-part prefix of Contacts we rewrote.
pub const REWRITTEN_PREFIX: &str = "sy.";

/// A Request-URI that is a GRUU (it has a `gr` parameter, RFC 5627 §3.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GruuRef {
    /// `user@domain;gr=<instance>`: the AOR and instance are in clear.
    Public { aor: String, instance: String },
    /// One of our temp-GRUUs, opened.
    Temp(TempGruu),
    /// A `gr` URI that is neither: forged, altered or from another cluster.
    Invalid,
}

impl Cluster {
    /// Our Path entry for a REGISTER that arrived on `flow` (RFC 3327 §4,
    /// RFC 5626 §5.1): the flow token as user part (`pinned` when the UA
    /// is reached on that flow only), `ob` when the UA asked for outbound
    /// (a `reg-id` on its Contact). The token expires with the
    /// registration (`expires_secs`, Unix seconds).
    pub fn path_value(
        &self,
        edge: (&str, Transport),
        flow: Source,
        pinned: bool,
        ob: bool,
        expires_secs: u64,
    ) -> String {
        let (edge, edge_transport) = edge;
        format!(
            "<sip:{}@{edge}{};lr{}>",
            self.flow_token(flow, pinned, expires_secs),
            edge_transport.uri_param(),
            if ob { ";ob" } else { "" }
        )
    }

    /// A Route to another node's flow (from a token that node sealed).
    pub fn edge_route(&self, edge: &str, edge_transport: Transport, flow: &FlowToken) -> String {
        format!(
            "<sip:{}@{edge}{};lr>",
            self.seal_flow(flow),
            edge_transport.uri_param()
        )
    }

    /// Our Record-Route entry; with `flow`, it carries the UA side's flow
    /// token so in-dialog requests from the far side reach the UA over it;
    /// with `dialog`, a sealed [`DialogToken`](super::DialogToken) in its
    /// `dlg` parameter, without which (`[auth]` on) no in-dialog request
    /// is routed. The flow token expires at `expires_secs` (Unix seconds,
    /// the longest a dialog may last).
    pub fn record_route_value(
        &self,
        (advertised, transport): (&str, Transport),
        flow: Option<Source>,
        dialog: Option<&str>,
        expires_secs: u64,
    ) -> String {
        let user = match flow {
            Some(flow) => format!("{}@", self.flow_token(flow, true, expires_secs)),
            None => String::new(),
        };
        let dialog = dialog.map_or(String::new(), |d| format!(";{DIALOG_PARAM}={d}"));
        format!(
            "<sip:{user}{advertised}{};lr{dialog}>",
            transport.uri_param()
        )
    }

    /// The dialog token of a Route value of ours, opened. `None`: it has
    /// none; `Some(Err)`: forged, altered or another cluster's.
    pub fn dialog_of(&self, uri: &Uri<'_>) -> Option<Result<super::DialogToken, InvalidToken>> {
        let token = uri.params.get(DIALOG_PARAM)??;
        Some(self.open_dialog(token))
    }

    /// The public GRUU of `instance` (stored as `<urn:uuid:…>`) under the
    /// AOR `aor` (`user@domain`).
    pub fn pub_gruu(aor: &str, instance: &str) -> String {
        let urn = instance.trim_start_matches('<').trim_end_matches('>');
        format!("sip:{aor};gr={urn}")
    }

    /// A fresh temp-GRUU: opaque, sealed, different every time it is minted.
    pub fn temp_gruu(&self, gruu: &TempGruu) -> String {
        format!(
            "sip:{TEMP_GRUU_PREFIX}{}@{};gr",
            self.seal_temp_gruu(gruu),
            self.domain
        )
    }

    /// Whether `uri` is a GRUU, and which. `None`: no `gr` parameter.
    pub fn gruu_of(&self, uri: &Uri<'_>) -> Option<GruuRef> {
        let gr = uri.params.get("gr")?;
        let Some(user) = uri.user else {
            return Some(GruuRef::Invalid);
        };
        Some(match gr {
            Some(urn) if !urn.is_empty() => GruuRef::Public {
                aor: format!("{user}@{}", uri.host.to_string().to_ascii_lowercase()),
                instance: format!("<{urn}>"),
            },
            _ => match user.strip_prefix(TEMP_GRUU_PREFIX) {
                Some(token) => self
                    .open_temp_gruu(token)
                    .map_or(GruuRef::Invalid, GruuRef::Temp),
                None => GruuRef::Invalid,
            },
        })
    }

    /// The Contact URI the edge puts in place of a UA's own.
    pub fn rewritten_contact(&self, contact: &RewrittenContact) -> String {
        format!(
            "sip:{REWRITTEN_PREFIX}{}@{}",
            self.seal_contact(contact),
            self.domain
        )
    }

    /// A Request-URI that is one of our rewritten Contacts, opened.
    /// `None`: not one (no prefix); `Some(Err)`: forged, altered or
    /// expired at `now_secs`.
    pub fn rewritten_of(
        &self,
        uri: &Uri<'_>,
        now_secs: u64,
    ) -> Option<Result<RewrittenContact, InvalidToken>> {
        let token = uri.user?.strip_prefix(REWRITTEN_PREFIX)?;
        Some(self.open_contact(token, now_secs))
    }
}

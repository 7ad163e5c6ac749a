//! Which new requests must authenticate, and as whom (`[auth]`):
//!
//! | request | realm | answer without proof | proof must name |
//! |---|---|---|---|
//! | REGISTER for a served domain | the To domain | 401 | the To user |
//! | initial request, From in a served domain | the From domain | 407 | the From user |
//! | initial request from elsewhere to a served domain | - | routed | - |
//! | initial request from elsewhere to elsewhere | - | 403 (no open relay) | - |
//!
//! Trusted sources (`auth.trusted`) are never challenged and may relay.
//! In-dialog requests, ACK and CANCEL are not challenged (RFC 3261 §22.1:
//! they cannot be).

use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use switchyard_codec::{Method, SipMessage, Uri};

use super::core::Core;
use crate::auth::{Challenge, Role, Verdict};
use crate::proxy::request::Reject;

/// What authentication makes of a new request.
pub(super) enum AuthStep {
    /// Go on; `user` when the request proved who sent it.
    Proceed { user: Option<String> },
    /// Answer with this challenge.
    Challenge(Challenge),
    /// Answer 403.
    Forbid(Reject),
}

impl Core {
    /// The authentication step for a new request whose target is `ruri`.
    pub(super) fn authenticate(
        &self,
        msg: &SipMessage,
        client: IpAddr,
        ruri: &Uri<'_>,
        register_for_us: bool,
    ) -> AuthStep {
        let proceed = AuthStep::Proceed { user: None };
        let Some(auth) = &self.auth else {
            return proceed;
        };
        let initial = msg.to().map(|t| t.tag().is_none()).unwrap_or(true);
        let method = msg.method();
        if !initial || matches!(method, Some(Method::Ack | Method::Cancel)) {
            return proceed;
        }
        let identity = &self.wiring().identity;
        let now = unix_now();
        let (role, claimed) = if register_for_us {
            (Role::Registrar, msg.to().ok().map(|t| t.uri))
        } else {
            if auth.is_trusted(client) {
                return proceed;
            }
            let from = msg.from().ok().map(|f| f.uri);
            match from {
                Some(uri) if identity.is_our_domain(&uri.host) => (Role::Proxy, Some(uri)),
                // A stranger may only reach our domains.
                _ if self.targets_us(ruri) => return proceed,
                _ => {
                    self.stats.relay_refused.inc();
                    return AuthStep::Forbid(Reject::new(403, "Relaying Denied"));
                }
            }
        };
        let Some(claimed) = claimed else {
            return AuthStep::Forbid(Reject::new(403, "Forbidden"));
        };
        let realm = claimed.host.to_string().to_ascii_lowercase();
        match auth.verify(msg, role, &realm, client, now) {
            // The proof must be for the identity the request claims: a
            // user may register only their own AOR, and call only as
            // themselves (RFC 3261 §10.3 step 3, caller-ID spoofing).
            Verdict::Authenticated { user } if claimed.user == Some(user.as_str()) => {
                AuthStep::Proceed { user: Some(user) }
            }
            Verdict::Authenticated { user } => {
                tracing::debug!(%user, claimed = claimed.raw, "authenticated as someone else");
                self.stats.auth_failed.inc();
                AuthStep::Forbid(Reject::new(403, "Forbidden"))
            }
            Verdict::Throttled => {
                self.stats.auth_throttled.inc();
                AuthStep::Forbid(Reject::new(403, "Forbidden"))
            }
            Verdict::Challenge { stale } => {
                if msg.header(role_header(role)).is_some() && !stale {
                    self.stats.auth_failed.inc();
                }
                self.stats.auth_challenged.inc();
                AuthStep::Challenge(auth.challenge(
                    role,
                    &realm,
                    client,
                    now,
                    stale,
                    rand::random(),
                ))
            }
        }
    }

    /// Whether a Request-URI leads to one of our users: an AOR of ours,
    /// a GRUU or a Contact we rewrote.
    fn targets_us(&self, ruri: &Uri<'_>) -> bool {
        self.wiring().identity.is_our_aor(ruri)
            || self.cluster.gruu_of(ruri).is_some()
            || self.cluster.rewritten_of(ruri).is_some()
    }
}

fn role_header(role: Role) -> switchyard_codec::HeaderName {
    match role {
        Role::Registrar => switchyard_codec::HeaderName::Authorization,
        Role::Proxy => switchyard_codec::HeaderName::ProxyAuthorization,
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

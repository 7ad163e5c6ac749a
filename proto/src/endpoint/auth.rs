//! Which new requests must authenticate, and as whom (`[auth]`):
//!
//! | request | realm | answer without proof | proof must name |
//! |---|---|---|---|
//! | REGISTER for a served domain | the To domain | 401 | the To user |
//! | initial request, From in a served domain | the From domain | 407 | the From user |
//! | initial request from elsewhere to a served domain | - | routed | - |
//! | initial request from elsewhere to elsewhere | - | 403 (no open relay) | - |
//!
//! Trusted sources (`auth.trusted`) are never challenged and may relay;
//! a tenant's trusted sources (`tenants.trusted`) likewise, for requests
//! from that tenant's domains. In-dialog requests, ACK and CANCEL are not
//! challenged (RFC 3261 §22.1: they cannot be): an in-dialog request is
//! routed only when it came through our Record-Route (its sealed dialog
//! token, within `auth.dialog_max_secs`) or goes to a GRUU or rewritten
//! Contact; otherwise 403. Without that, `;tag=x` on the To header of an
//! INVITE would skip authentication and every policy.
//!
//! The endpoint decides all of that; the digest check itself (nonce,
//! subscriber's HA1, nonce-count ledger) is the driver's
//! [`IoKind::Authenticate`](super::IoKind::Authenticate).

use std::net::IpAddr;

use switchyard_codec::{HeaderName, Method, SipMessage, Uri};

use super::Endpoint;
use crate::policy::Origin;
use crate::proxy::request::LocalAnswer;

/// The role a request is challenged in (RFC 3261 §22.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthRole {
    /// 401 + WWW-Authenticate, credentials in Authorization.
    Registrar,
    /// 407 + Proxy-Authenticate, credentials in Proxy-Authorization.
    Proxy,
}

impl AuthRole {
    fn credentials_header(self) -> HeaderName {
        match self {
            AuthRole::Registrar => HeaderName::Authorization,
            AuthRole::Proxy => HeaderName::ProxyAuthorization,
        }
    }
}

/// What the digest check of [`IoKind::Authenticate`](super::IoKind) found.
#[derive(Debug, Clone, PartialEq)]
pub enum AuthVerdict {
    /// Proven: this user of the realm sent it.
    Authenticated { user: String },
    /// Too many wrong answers from this source lately: refused unexamined.
    Throttled,
    /// No (valid) credentials: this 401/407 challenges them; `stale` when
    /// the nonce had expired or was replayed (the password was right).
    Challenge { answer: LocalAnswer, stale: bool },
    /// The subscriber store or the nonce ledger is down (503).
    Unavailable(LocalAnswer),
}

/// What the table decides before any credentials are looked at.
pub(super) enum AuthStep {
    Proceed(Origin),
    Refuse(LocalAnswer),
    /// Ask the driver to check the credentials for `realm`; the proof
    /// must then name `claimed_user`.
    Verify {
        role: AuthRole,
        realm: String,
        claimed_user: Option<String>,
    },
}

impl Endpoint {
    fn is_trusted(&self, client: IpAddr) -> bool {
        self.config.trusted.iter().any(|net| net.contains(&client))
    }

    /// The table above, for a new request whose target is `ruri`.
    pub(super) fn auth_step(
        &self,
        msg: &SipMessage,
        client: IpAddr,
        ruri: &Uri<'_>,
        popped: &[String],
        register_for_us: bool,
        now_secs: u64,
    ) -> AuthStep {
        let trusted = self.is_trusted(client);
        let proceed = AuthStep::Proceed(if trusted {
            Origin::Trusted
        } else {
            Origin::Anonymous
        });
        if matches!(msg.method(), Some(Method::Ack | Method::Cancel)) {
            return proceed;
        }
        let initial = msg.to_tag().map_or(true, |t| t.is_none());
        if !initial {
            if trusted || self.edge.came_through_us(popped, ruri, now_secs) {
                return proceed;
            }
            self.stats.relay_refused.inc();
            return AuthStep::Refuse(LocalAnswer::new(403, "Forbidden (No Dialog Of Ours)"));
        }
        let identity = &self.edge.identity;
        let tenants = &self.config.tenants;
        let (role, claimed) = if register_for_us {
            (AuthRole::Registrar, msg.to().ok().map(|t| t.uri))
        } else {
            if trusted {
                return proceed;
            }
            match msg.from().ok().map(|f| f.uri) {
                // A tenant's own PBX or gateway speaks for its users.
                Some(uri)
                    if identity.is_our_domain(&uri.host)
                        && tenants.trusts(tenants.tenant_of(&uri.host.to_string()), client) =>
                {
                    return AuthStep::Proceed(Origin::Trusted);
                }
                Some(uri) if identity.is_our_domain(&uri.host) => (AuthRole::Proxy, Some(uri)),
                // A stranger may only reach our domains.
                _ if self.edge.targets_us(ruri, now_secs) => return proceed,
                _ => {
                    self.stats.relay_refused.inc();
                    return AuthStep::Refuse(LocalAnswer::new(403, "Relaying Denied"));
                }
            }
        };
        let Some(claimed) = claimed else {
            return AuthStep::Refuse(LocalAnswer::new(403, "Forbidden"));
        };
        AuthStep::Verify {
            role,
            realm: claimed.host.to_string().to_ascii_lowercase(),
            claimed_user: claimed.user.map(str::to_owned),
        }
    }

    /// The digest verdict as the request's origin, or the answer refusing
    /// it. The proof must be for the identity the request claims: a user
    /// may register only their own AOR, and call only as themselves
    /// (RFC 3261 §10.3 step 3, caller-ID spoofing), unless the tenant
    /// allows third-party registration.
    pub(super) fn auth_verdict(
        &self,
        msg: &SipMessage,
        (role, realm, claimed_user): (AuthRole, String, Option<String>),
        verdict: AuthVerdict,
    ) -> Result<Origin, LocalAnswer> {
        let forbidden = || LocalAnswer::new(403, "Forbidden");
        match verdict {
            AuthVerdict::Authenticated { user }
                if claimed_user.as_deref() == Some(user.as_str()) =>
            {
                Ok(Origin::Authenticated { user, realm })
            }
            AuthVerdict::Authenticated { user }
                if role == AuthRole::Registrar
                    && self
                        .config
                        .tenants
                        .third_party_register
                        .iter()
                        .any(|t| t == self.config.tenants.tenant_of(&realm)) =>
            {
                Ok(Origin::Authenticated { user, realm })
            }
            AuthVerdict::Authenticated { user } => {
                tracing::debug!(%user, claimed = ?claimed_user, "authenticated as someone else");
                self.stats.auth_failed.inc();
                Err(forbidden())
            }
            AuthVerdict::Throttled => {
                self.stats.auth_throttled.inc();
                Err(forbidden())
            }
            AuthVerdict::Challenge { answer, stale } => {
                if msg.header(role.credentials_header()).is_some() && !stale {
                    self.stats.auth_failed.inc();
                }
                self.stats.auth_challenged.inc();
                Err(answer)
            }
            AuthVerdict::Unavailable(answer) => Err(answer),
        }
    }
}

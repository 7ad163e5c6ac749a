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
//! from that tenant's domains.
//! In-dialog requests, ACK and CANCEL are not challenged (RFC 3261 §22.1:
//! they cannot be): an in-dialog request is routed only when it came
//! through our Record-Route (its sealed dialog token, within
//! `auth.dialog_max_secs`) or goes to a GRUU or rewritten Contact;
//! otherwise 403. Without that, `;tag=x` on the To header of an INVITE
//! would skip authentication and every policy.

use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use switchyard_codec::{Method, SipMessage, Uri};

use super::core::Core;
use crate::auth::{Challenge, Check, Concluded, Role, Verdict};
use crate::location::StoreError;
use crate::policy::Origin;
use crate::proxy::request::LocalAnswer;
use switchyard_proto::endpoint::AuthRequest;

/// What authentication makes of a new request.
enum AuthStep {
    /// Go on, the request vouched for as this (what policies see).
    Proceed(Origin),
    /// Answer with this challenge.
    Challenge(Challenge),
    /// Answer with this refusal (403; 503 when the subscriber store or the
    /// nonce ledger is down).
    Forbid(LocalAnswer),
}

impl Core {
    /// The endpoint's [`IoKind::Authenticate`](switchyard_proto::endpoint::IoKind):
    /// who sent the request, or the answer that refuses it (sent once).
    pub(super) async fn authenticate(&self, request: &AuthRequest) -> Result<Origin, LocalAnswer> {
        let Ok(ruri) = Uri::parse(&request.request_uri) else {
            return Err(LocalAnswer::new(400, "Bad Request-URI"));
        };
        let step = self
            .authenticate_as(
                &request.request,
                request.source.remote.ip(),
                &ruri,
                &request.popped,
                request.register_for_us,
            )
            .await;
        match step {
            AuthStep::Proceed(origin) => Ok(origin),
            AuthStep::Challenge(c) => Err(LocalAnswer {
                code: c.code,
                reason: c.reason.to_owned(),
                headers: c.headers,
            }),
            AuthStep::Forbid(rej) => Err(rej),
        }
    }

    /// The authentication step for a new request whose target is `ruri`.
    async fn authenticate_as(
        &self,
        msg: &SipMessage,
        client: IpAddr,
        ruri: &Uri<'_>,
        popped: &[String],
        register_for_us: bool,
    ) -> AuthStep {
        let Some(auth) = &self.auth else {
            return AuthStep::Proceed(Origin::Unchecked);
        };
        let proceed = AuthStep::Proceed(if auth.is_trusted(client) {
            Origin::Trusted
        } else {
            Origin::Anonymous
        });
        let initial = msg.to().map(|t| t.tag().is_none()).unwrap_or(true);
        let method = msg.method();
        if matches!(method, Some(Method::Ack | Method::Cancel)) {
            return proceed;
        }
        if !initial {
            if auth.is_trusted(client) || self.edge().came_through_us(popped, ruri, unix_now()) {
                return proceed;
            }
            self.stats.relay_refused.inc();
            return AuthStep::Forbid(LocalAnswer::new(403, "Forbidden (No Dialog Of Ours)"));
        }
        let identity = &self.wiring().edge.identity;
        let now = unix_now();
        let (role, claimed) = if register_for_us {
            (Role::Registrar, msg.to().ok().map(|t| t.uri))
        } else {
            if auth.is_trusted(client) {
                return proceed;
            }
            let from = msg.from().ok().map(|f| f.uri);
            match from {
                // A tenant's own PBX or gateway speaks for its users.
                Some(uri)
                    if identity.is_our_domain(&uri.host)
                        && self
                            .config
                            .tenants
                            .trusts(self.config.tenant_of(&uri.host.to_string()), client) =>
                {
                    return AuthStep::Proceed(Origin::Trusted);
                }
                Some(uri) if identity.is_our_domain(&uri.host) => (Role::Proxy, Some(uri)),
                // A stranger may only reach our domains.
                _ if self.edge().targets_us(ruri, unix_now()) => return proceed,
                _ => {
                    self.stats.relay_refused.inc();
                    return AuthStep::Forbid(LocalAnswer::new(403, "Relaying Denied"));
                }
            }
        };
        let Some(claimed) = claimed else {
            return AuthStep::Forbid(LocalAnswer::new(403, "Forbidden"));
        };
        let realm = claimed.host.to_string().to_ascii_lowercase();
        let verdict = match auth.check(msg, role, &realm, client, now) {
            Check::Done(verdict) => verdict,
            Check::Lookup(pending) => {
                let subscriber = match auth
                    .subscribers()
                    .subscriber(pending.realm(), pending.user())
                    .await
                {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(error = %e, "subscriber lookup failed");
                        return AuthStep::Forbid(store_unavailable(
                            "Subscriber Store Unavailable",
                            &e,
                        ));
                    }
                };
                match auth.conclude(pending, subscriber.as_ref(), msg) {
                    Concluded::Done(verdict) => verdict,
                    // Fail closed: without the claim a replay would pass.
                    Concluded::Claim(claim) => match auth
                        .ledger()
                        .claim(claim.nonce(), claim.nc(), claim.ttl_secs())
                        .await
                    {
                        Ok(fresh) => claim.settle(fresh),
                        Err(e) => {
                            tracing::warn!(error = %e, "nonce-count claim failed");
                            return AuthStep::Forbid(store_unavailable(
                                "Nonce Ledger Unavailable",
                                &e,
                            ));
                        }
                    },
                }
            }
        };
        match verdict {
            // The proof must be for the identity the request claims: a
            // user may register only their own AOR, and call only as
            // themselves (RFC 3261 §10.3 step 3, caller-ID spoofing).
            Verdict::Authenticated { user } if claimed.user == Some(user.as_str()) => {
                AuthStep::Proceed(Origin::Authenticated { user, realm })
            }
            // Another user's AOR, in a tenant whose policy decides that.
            Verdict::Authenticated { user }
                if role == Role::Registrar
                    && self
                        .config
                        .tenants
                        .third_party_register
                        .iter()
                        .any(|t| t == self.config.tenant_of(&realm)) =>
            {
                AuthStep::Proceed(Origin::Authenticated { user, realm })
            }
            Verdict::Authenticated { user } => {
                tracing::debug!(%user, claimed = claimed.raw, "authenticated as someone else");
                self.stats.auth_failed.inc();
                AuthStep::Forbid(LocalAnswer::new(403, "Forbidden"))
            }
            Verdict::Throttled => {
                self.stats.auth_throttled.inc();
                AuthStep::Forbid(LocalAnswer::new(403, "Forbidden"))
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
}

/// 503 with the Retry-After the store error suggests, like every other
/// store outage.
fn store_unavailable(reason: &'static str, error: &StoreError) -> LocalAnswer {
    let mut rej = LocalAnswer::new(503, reason);
    rej.headers
        .push(("Retry-After".into(), error.retry_after_secs().to_string()));
    rej
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

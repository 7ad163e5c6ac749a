//! The digest check the endpoint asks for ([`IoKind::Authenticate`]):
//! which requests must authenticate, and as whom, is the endpoint's
//! decision (`switchyard_proto::endpoint`, `auth.rs`); this is the I/O
//! part: the nonce, the subscriber's HA1 from its store, the nonce-count
//! claim in the ledger, and the challenge when the proof is missing or
//! wrong.
//!
//! [`IoKind::Authenticate`]: switchyard_proto::endpoint::IoKind::Authenticate

use std::time::{SystemTime, UNIX_EPOCH};

use switchyard_proto::endpoint::{AuthRequest, AuthRole, AuthVerdict};

use super::core::Core;
use crate::auth::{Check, Concluded, Role, Verdict};
use crate::location::StoreError;
use crate::proxy::request::LocalAnswer;

impl Core {
    pub(super) async fn authenticate(&self, request: &AuthRequest) -> AuthVerdict {
        let Some(auth) = &self.auth else {
            // The endpoint asks only when `[auth]` is on.
            return AuthVerdict::Unavailable(LocalAnswer::new(500, "Authentication Off"));
        };
        let role = match request.role {
            AuthRole::Registrar => Role::Registrar,
            AuthRole::Proxy => Role::Proxy,
        };
        let (msg, realm) = (&*request.request, request.realm.as_str());
        let client = request.source.remote.ip();
        let now = unix_now();
        let verdict = match auth.check(msg, role, realm, client, now) {
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
                        return unavailable("Subscriber Store Unavailable", &e);
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
                            return unavailable("Nonce Ledger Unavailable", &e);
                        }
                    },
                }
            }
        };
        match verdict {
            Verdict::Authenticated { user } => AuthVerdict::Authenticated { user },
            Verdict::Throttled => AuthVerdict::Throttled,
            Verdict::Challenge { stale } => {
                let c = auth.challenge(role, realm, client, now, stale, rand::random());
                AuthVerdict::Challenge {
                    answer: LocalAnswer {
                        code: c.code,
                        reason: c.reason.to_owned(),
                        headers: c.headers,
                    },
                    stale,
                }
            }
        }
    }
}

/// 503 with the Retry-After the store error suggests, like every other
/// store outage.
fn unavailable(reason: &'static str, error: &StoreError) -> AuthVerdict {
    let mut answer = LocalAnswer::new(503, reason);
    answer
        .headers
        .push(("Retry-After".into(), error.retry_after_secs().to_string()));
    AuthVerdict::Unavailable(answer)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

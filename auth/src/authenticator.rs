//! One authentication decision, sans-IO in up to three steps (like
//! quinn-proto's "I need this, come back with it"):
//!
//! 1. [`Authenticator::check`] reads the request, the realm it must prove
//!    itself in, the time and the client's address, and either decides at
//!    once or asks for one subscriber ([`Check::Lookup`]);
//! 2. [`Authenticator::conclude`] takes what the store returned and either
//!    decides or, for a right answer, asks for its nonce count to be
//!    claimed ([`Concluded::Claim`]);
//! 3. [`Claim::settle`] takes the ledger's answer: first use, or a replay.
//!
//! The caller does the lookup ([`SubscriberStore`](super::SubscriberStore)),
//! the claim ([`NonceLedger`](super::NonceLedger)), time and randomness.

use std::net::IpAddr;

use parking_lot::Mutex;
use switchyard_codec::{HeaderName, SipMessage};

use super::digest::{self, Algorithm, Credentials};
use super::ledger::NonceLedger;
use super::nonce::{MAX_CLOCK_SKEW_SECS, NonceCheck, NonceKey};
use super::store::SubscriberStore;
use super::subscribers::Subscriber;
use super::throttle::Throttle;
use super::{AuthConfig, Challenge};

/// Where credentials travel: a registrar asks with 401 and
/// `WWW-Authenticate` / `Authorization`, a proxy with 407 and
/// `Proxy-Authenticate` / `Proxy-Authorization` (RFC 3261 §22.2, §22.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Registrar,
    Proxy,
}

impl Role {
    fn credentials_header(self) -> HeaderName {
        match self {
            Role::Registrar => HeaderName::Authorization,
            Role::Proxy => HeaderName::ProxyAuthorization,
        }
    }

    pub fn status(self) -> (u16, &'static str) {
        match self {
            Role::Registrar => (401, "Unauthorized"),
            Role::Proxy => (407, "Proxy Authentication Required"),
        }
    }

    pub fn challenge_header(self) -> &'static str {
        match self {
            Role::Registrar => "WWW-Authenticate",
            Role::Proxy => "Proxy-Authenticate",
        }
    }
}

/// What to do with the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Proven: this user of the realm sent it.
    Authenticated { user: String },
    /// Not proven (no credentials, wrong password, unknown user, another
    /// realm, a forged nonce): challenge again. `stale`: the credentials
    /// were right but the nonce expired or was replayed, so the phone may
    /// retry without asking its user (RFC 7616 §3.3).
    Challenge { stale: bool },
    /// Too many wrong answers from this source (for this user): refused
    /// without looking at the answer, until the back-off ends.
    Throttled,
}

/// The first step's outcome.
pub enum Check<'m> {
    /// Decided without the subscriber (no or bad credentials, throttled).
    Done(Verdict),
    /// Look the subscriber up, then [`Authenticator::conclude`].
    Lookup(Box<Pending<'m>>),
}

/// The second step's outcome.
pub enum Concluded {
    /// Decided: a wrong answer, a stale nonce, no nonce count.
    Done(Verdict),
    /// The answer is right: claim its nonce count in the ledger
    /// ([`NonceLedger::claim`] with [`Claim::nonce`], [`Claim::nc`],
    /// [`Claim::ttl_secs`]), then [`Claim::settle`].
    Claim(Claim),
}

/// A right answer whose nonce count must be claimed before it counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    user: String,
    nonce: String,
    nc: u32,
    ttl_secs: u64,
}

impl Claim {
    pub fn nonce(&self) -> &str {
        &self.nonce
    }

    pub fn nc(&self) -> u32 {
        self.nc
    }

    /// How long the claim must be remembered: until the nonce is Stale on
    /// every node.
    pub fn ttl_secs(&self) -> u64 {
        self.ttl_secs
    }

    /// Third step: `fresh` is what the ledger answered. A replayed count
    /// gets a stale challenge: the phone that really sent it retries with
    /// a fresh nonce without asking its user (RFC 7616 §3.3).
    pub fn settle(self, fresh: bool) -> Verdict {
        if fresh {
            Verdict::Authenticated { user: self.user }
        } else {
            Verdict::Challenge { stale: true }
        }
    }
}

/// Credentials waiting for their subscriber.
pub struct Pending<'m> {
    creds: Credentials<'m>,
    /// When the nonce was issued; None when it is Stale.
    issued_at: Option<u64>,
    realm: String,
    client: IpAddr,
    now_unix_secs: u64,
}

impl Pending<'_> {
    /// The realm to look up (lowercase).
    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// The user name the credentials claim.
    pub fn user(&self) -> &str {
        &self.creds.username
    }
}

pub struct Authenticator {
    config: AuthConfig,
    offered: Vec<Algorithm>,
    key: NonceKey,
    ledger: std::sync::Arc<dyn NonceLedger>,
    throttle: Mutex<Throttle>,
    subscribers: std::sync::Arc<dyn SubscriberStore>,
    /// HA1 for users that do not exist: derived from a secret, so an
    /// unknown user costs the same hashing as a known one with a wrong
    /// password and gets the same answer (no user enumeration).
    decoy: NonceKey,
}

/// Sources (and source-user pairs) the throttle remembers (~100 bytes
/// each).
const THROTTLED: usize = 100_000;

impl Authenticator {
    /// `secret`: the cluster secret when there is one, so every node
    /// accepts every node's nonces; else per process. `ledger`: where the
    /// caller claims nonce counts (shared by the cluster when it can be).
    pub fn new(
        config: AuthConfig,
        secret: &[u8],
        subscribers: std::sync::Arc<dyn SubscriberStore>,
        ledger: std::sync::Arc<dyn NonceLedger>,
    ) -> Result<Authenticator, String> {
        config.validate()?;
        Ok(Authenticator {
            offered: config.offered()?,
            throttle: Mutex::new(Throttle::new(config.throttle.clone(), THROTTLED)),
            config,
            key: NonceKey::derive(secret),
            ledger,
            subscribers,
            decoy: NonceKey::derive(&[secret, b"decoy"].concat()),
        })
    }

    pub fn config(&self) -> &AuthConfig {
        &self.config
    }

    /// Where [`Check::Lookup`] looks subscribers up.
    pub fn subscribers(&self) -> &std::sync::Arc<dyn SubscriberStore> {
        &self.subscribers
    }

    /// Where [`Concluded::Claim`] claims nonce counts.
    pub fn ledger(&self) -> &std::sync::Arc<dyn NonceLedger> {
        &self.ledger
    }

    /// Whether `source` is trusted: never challenged, may relay.
    pub fn is_trusted(&self, source: IpAddr) -> bool {
        self.config.trusted.iter().any(|net| net.contains(&source))
    }

    /// First step of checking the request's credentials for `realm`
    /// (RFC 3261 §22.4): what can be decided without the subscriber.
    pub fn check<'m>(
        &self,
        msg: &'m SipMessage,
        role: Role,
        realm: &str,
        client: IpAddr,
        now_unix_secs: u64,
    ) -> Check<'m> {
        let challenge = Check::Done(Verdict::Challenge { stale: false });
        // A phone may answer several challenges at once (one per
        // algorithm): take the first for our realm in an algorithm we offer.
        let Some(creds) = msg
            .header_values(role.credentials_header())
            .filter_map(|v| Credentials::parse(v).ok())
            .find(|c| c.realm.eq_ignore_ascii_case(realm) && self.offered.contains(&c.algorithm))
        else {
            return challenge;
        };
        if self
            .throttle
            .lock()
            .is_blocked(client, &creds.username, now_unix_secs)
        {
            return Check::Done(Verdict::Throttled);
        }
        // RFC 7616 §3.4.6: the digest-uri must name this request.
        if msg.request_uri_str() != Some(creds.uri.as_ref()) {
            return challenge;
        }
        let nonce = self.key.check(
            &creds.nonce,
            realm,
            client,
            now_unix_secs,
            self.config.nonce_lifetime_secs,
        );
        let issued_at = match nonce {
            NonceCheck::Invalid => return challenge,
            NonceCheck::Stale => None,
            NonceCheck::Valid { issued_at } => Some(issued_at),
        };
        Check::Lookup(Box::new(Pending {
            creds,
            issued_at,
            realm: realm.to_ascii_lowercase(),
            client,
            now_unix_secs,
        }))
    }

    /// Second step: `subscriber` is what the store holds for
    /// [`Pending::realm`] and [`Pending::user`] (None: no such user, which
    /// costs and answers the same as a wrong password).
    pub fn conclude(
        &self,
        pending: Box<Pending<'_>>,
        subscriber: Option<&Subscriber>,
        msg: &SipMessage,
    ) -> Concluded {
        let challenge = Concluded::Done(Verdict::Challenge { stale: false });
        let Pending {
            creds,
            issued_at,
            realm,
            client,
            now_unix_secs,
        } = *pending;
        let ha1 = match subscriber {
            Some(s) => s.ha1(creds.algorithm).to_string(),
            None => self.decoy_ha1(creds.algorithm, &creds.username, &realm),
        };
        let method = msg.method().map(|m| m.as_str()).unwrap_or_default();
        if !digest::verify(&creds, &ha1, method, msg.body()) {
            self.throttle
                .lock()
                .failure(client, &creds.username, now_unix_secs);
            return challenge;
        }
        self.throttle.lock().success(client, &creds.username);
        let Some(issued_at) = issued_at else {
            return Concluded::Done(Verdict::Challenge { stale: true });
        };
        // Every challenge offers qop, so an answer without it (RFC 2069)
        // has no nonce-count to guard against replay: refused. The count
        // includes the request it comes with (RFC 7616 §3.4), so starts
        // at 1.
        let Some(nc) = creds.nc.filter(|nc| *nc >= 1) else {
            return challenge;
        };
        // Remembered until no node calls the nonce Valid any more: the rest
        // of its lifetime, plus the skew another node's clock may have.
        let ttl_secs = issued_at
            .saturating_add(self.config.nonce_lifetime_secs)
            .saturating_sub(now_unix_secs)
            .saturating_add(MAX_CLOCK_SKEW_SECS)
            .max(1);
        Concluded::Claim(Claim {
            user: creds.username.to_string(),
            nonce: creds.nonce.to_string(),
            nc,
            ttl_secs,
        })
    }

    /// The challenge headers: one per offered algorithm, strongest first
    /// (RFC 8760 §2.4), each with a fresh nonce bound to `realm` and the
    /// client's address. `salt` is the caller's randomness.
    pub fn challenge(
        &self,
        role: Role,
        realm: &str,
        client: IpAddr,
        now_unix_secs: u64,
        stale: bool,
        salt: u64,
    ) -> Challenge {
        let nonce = self.key.issue(now_unix_secs, realm, client, salt);
        let (code, reason) = role.status();
        Challenge {
            code,
            reason,
            headers: self
                .offered
                .iter()
                .map(|alg| {
                    (
                        role.challenge_header().to_string(),
                        digest::challenge(*alg, realm, &nonce, None, stale),
                    )
                })
                .collect(),
        }
    }

    fn decoy_ha1(&self, alg: Algorithm, user: &str, realm: &str) -> String {
        // Any deterministic value nobody can compute: the nonce key's MAC
        // of the name, hashed like a real HA1.
        let seed = self.decoy.issue(0, realm, IpAddr::from([0, 0, 0, 0]), 0);
        digest::ha1(alg, user, realm, &seed)
    }
}

#[cfg(test)]
#[path = "authenticator_tests.rs"]
mod tests;

//! `[auth]`: digest authentication of the node's own users.

use std::path::PathBuf;

use ipnet::IpNet;
use serde::Deserialize;

use super::cache::CacheConfig;
use super::digest::Algorithm;
use super::throttle::ThrottleConfig;

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Challenge every REGISTER (401) and every initial request whose From
    /// is in a served domain (407), and refuse to relay between two foreign
    /// domains (403). On by default: with no subscribers, nobody registers
    /// until `switchyard user add`. `switchyard run --no-auth` turns it off
    /// (benchmarks, closed labs).
    pub enabled: bool,
    /// The subscriber file of the embedded store: HA1s per realm and user,
    /// written by `switchyard user add`. Re-read when it changes.
    pub subscribers: Option<PathBuf>,
    /// How long a nonce is accepted; after that the answer is a fresh
    /// challenge with `stale=true`, which phones retry silently.
    pub nonce_lifetime_secs: u64,
    /// Algorithms offered in order of preference, one challenge each
    /// (RFC 8760 §2.3): `SHA-512-256`, `SHA-256`, `MD5`. The default is
    /// MD5 alone, as Kamailio and Asterisk offer: baresip 1.0 (libre 1.1)
    /// refuses the whole set of challenges when any one of them has an
    /// algorithm other than MD5, and linphone 5.1 answers only the topmost
    /// one (MD5 or SHA-256). List `SHA-256` first for linphone-only fleets
    /// and `SHA-512-256` first for RFC 8760 phones.
    pub algorithms: Vec<String>,
    /// Sources whose initial requests are not challenged and may relay:
    /// PBXs, media servers, carriers' gateways.
    pub trusted: Vec<IpNet>,
    /// How long a dialog's Record-Route token is honoured: in-dialog
    /// requests of a longer call are refused (403).
    pub dialog_max_secs: u64,
    /// Brute-force throttling of wrong answers (`[auth.throttle]`).
    pub throttle: ThrottleConfig,
    /// The read cache in front of the Cassandra `subscribers` table
    /// (`[auth.cache]`).
    pub cache: CacheConfig,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            enabled: true,
            subscribers: None,
            nonce_lifetime_secs: 300,
            algorithms: vec!["MD5".into()],
            trusted: Vec::new(),
            dialog_max_secs: 86_400,
            throttle: ThrottleConfig::default(),
            cache: CacheConfig::default(),
        }
    }
}

impl AuthConfig {
    /// The offered algorithms, parsed.
    pub fn offered(&self) -> Result<Vec<Algorithm>, String> {
        let mut out = Vec::new();
        for name in &self.algorithms {
            let alg = Algorithm::parse(name).ok_or_else(|| {
                format!(
                    "key `auth.algorithms`: unknown algorithm {name:?} (SHA-512-256, SHA-256 or MD5)"
                )
            })?;
            if !out.contains(&alg) {
                out.push(alg);
            }
        }
        Ok(out)
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.offered()?.is_empty() {
            return Err("key `auth.algorithms`: offer at least one algorithm".into());
        }
        let t = &self.throttle;
        if t.max_failures == 0
            || t.max_failures_per_source == 0
            || t.backoff_secs > t.max_backoff_secs
        {
            return Err(
                "key `auth.throttle`: need max_failures >= 1 and backoff_secs <= max_backoff_secs"
                    .into(),
            );
        }
        if self.nonce_lifetime_secs == 0 {
            return Err("key `auth.nonce_lifetime_secs`: must be at least 1".into());
        }
        self.cache.validate()
    }
}

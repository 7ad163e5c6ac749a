//! Stateless Digest nonces that every node sharing a key can check, and a
//! per-node nonce-count replay guard. Sans-IO: the caller supplies the
//! clock, the client address and the randomness.
//!
//! RFC 7616 §3.3 suggests a nonce of a timestamp plus a keyed hash of it;
//! this is that, with the realm and the client's address bound in:
//!
//! `base64url(timestamp ‖ salt ‖ HMAC-SHA256(key, timestamp ‖ salt ‖ realm ‖ 0 ‖ class)[..16])`
//!
//! (8-byte big-endian timestamp and salt, no padding: 43 characters, all
//! valid in a quoted string). A nonce minted on one node checks on any
//! other, so no nonce table is replicated. The MAC makes nonces unforgeable
//! and the timestamp bounds how long a captured one can be replayed
//! (RFC 7616 §5.5); [`NonceCounts`] narrows replay further on one node, and
//! a [`NonceLedger`](super::NonceLedger) across a cluster.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// How far in the future a nonce's timestamp may be: the other nodes'
/// clocks may run slightly ahead of ours.
pub const MAX_CLOCK_SKEW_SECS: u64 = 5;

/// 128 bits of HMAC-SHA256 are plenty against forgery (RFC 2104 §5 allows
/// truncation to half the output) and keep the nonce short.
const MAC_LEN: usize = 16;
const HEAD_LEN: usize = 16;
const RAW_LEN: usize = HEAD_LEN + MAC_LEN;
/// base64 without padding of `RAW_LEN` bytes.
const NONCE_LEN: usize = (RAW_LEN * 4).div_ceil(3);

/// The key nonces are authenticated with. Every node of a cluster must use
/// the same one, or nonces from one node are Invalid on the others.
#[derive(Clone)]
pub struct NonceKey {
    /// HMAC state with the key already absorbed, cloned for each nonce.
    mac: HmacSha256,
}

impl std::fmt::Debug for NonceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NonceKey(..)")
    }
}

/// The outcome of [`NonceKey::check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceCheck {
    /// Ours, for this realm and client, within its lifetime.
    Valid { issued_at: u64 },
    /// Ours but expired: challenge again with `stale=true` (RFC 7616 §3.3),
    /// and the UA retries without prompting for the password.
    Stale,
    /// Not ours, tampered with, for another realm or client, or dated in
    /// the future: challenge again without `stale`. Deliberately coarse.
    Invalid,
}

impl NonceKey {
    pub fn new(key: [u8; 32]) -> NonceKey {
        let mac = HmacSha256::new_from_slice(&key).expect("HMAC accepts keys of any length");
        NonceKey { mac }
    }

    /// HKDF-SHA256 (RFC 5869) of a shared secret. No salt: the secret is
    /// meant to be high-entropy already; the info string separates this key
    /// from any other key derived from the same secret.
    pub fn derive(secret: &[u8]) -> NonceKey {
        let mut key = [0u8; 32];
        Hkdf::<Sha256>::new(None, secret)
            .expand(b"switchyard nonce v1", &mut key)
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        NonceKey::new(key)
    }

    /// A nonce for a challenge sent at `now_unix_secs` to `client` for
    /// `realm`. `salt` should be random (`rand::random()`): it makes two
    /// nonces issued in the same second to the same client differ, so their
    /// nonce counts are tracked separately.
    pub fn issue(&self, now_unix_secs: u64, realm: &str, client: IpAddr, salt: u64) -> String {
        let mut raw = Vec::with_capacity(RAW_LEN);
        raw.extend_from_slice(&now_unix_secs.to_be_bytes());
        raw.extend_from_slice(&salt.to_be_bytes());
        let tag = self.mac(&raw, realm, client).finalize().into_bytes();
        raw.extend_from_slice(&tag[..MAC_LEN]);
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// Checks a nonce from credentials. The MAC is checked (in constant
    /// time) before the timestamp is believed, so only a nonce we issued
    /// can be Stale. A nonce dated more than [`MAX_CLOCK_SKEW_SECS`] ahead
    /// is Invalid; one older than `lifetime_secs` is Stale.
    pub fn check(
        &self,
        nonce: &str,
        realm: &str,
        client: IpAddr,
        now_unix_secs: u64,
        lifetime_secs: u64,
    ) -> NonceCheck {
        // Refuse before decoding anything of the wrong size.
        if nonce.len() != NONCE_LEN {
            return NonceCheck::Invalid;
        }
        // The engine refuses non-zero trailing bits, so each nonce has a
        // single spelling and `NonceCounts` cannot be sidestepped.
        let Ok(raw) = URL_SAFE_NO_PAD.decode(nonce) else {
            return NonceCheck::Invalid;
        };
        let Some((head, tag)) = raw.split_first_chunk::<HEAD_LEN>() else {
            return NonceCheck::Invalid;
        };
        if tag.len() != MAC_LEN
            || self
                .mac(head, realm, client)
                .verify_truncated_left(tag)
                .is_err()
        {
            return NonceCheck::Invalid;
        }
        let Some((timestamp, _)) = head.split_first_chunk::<8>() else {
            return NonceCheck::Invalid;
        };
        let issued_at = u64::from_be_bytes(*timestamp);
        if issued_at > now_unix_secs.saturating_add(MAX_CLOCK_SKEW_SECS) {
            return NonceCheck::Invalid;
        }
        if now_unix_secs.saturating_sub(issued_at) > lifetime_secs {
            return NonceCheck::Stale;
        }
        NonceCheck::Valid { issued_at }
    }

    /// The MAC over `head ‖ realm ‖ 0 ‖ client class`. The 0 ends the
    /// realm; realms come from configuration and contain no NUL.
    fn mac(&self, head: &[u8], realm: &str, client: IpAddr) -> HmacSha256 {
        let mut mac = self.mac.clone();
        mac.update(head);
        mac.update(realm.as_bytes());
        mac.update(&[0]);
        // The client class: the whole IPv4 address, or the IPv6 /64 (a host
        // that changes its interface identifier, e.g. RFC 8981 temporary
        // addresses, keeps its nonce). `to_canonical` maps ::ffff:a.b.c.d
        // to a.b.c.d; otherwise every IPv4 client of a dual-stack socket
        // would share the class ::ffff:0:0/64.
        match client.to_canonical() {
            IpAddr::V4(v4) => {
                mac.update(&[4]);
                mac.update(&v4.octets());
            }
            IpAddr::V6(v6) => {
                mac.update(&[6]);
                mac.update(&v6.octets()[..8]);
            }
        }
        mac
    }
}

/// The highest nonce count seen per nonce, so a captured request cannot be
/// replayed to this node while its nonce is still valid (RFC 7616 §3.4 and
/// §5.5: the server checks nc increases). Pure and not thread-safe: the
/// caller wraps it in a mutex or shards it.
///
/// Per node: the same request replayed to another node of the cluster is
/// only refused there if it reached that node before; a cluster shares a
/// [`NonceLedger`](super::NonceLedger) in its store instead. This is the
/// ledger of a single node ([`LocalLedger`](super::LocalLedger)).
///
/// Memory is bounded by `capacity` entries of one nonce string (43 bytes
/// for ours, shared between the map and the age queue) plus about 80 bytes
/// of bookkeeping: roughly 130 bytes per entry, 13 MB for 100 000. Call
/// [`NonceCounts::accept`] only for nonces that [`NonceKey::check`] found
/// Valid, so an attacker cannot fill it with junk.
#[derive(Debug)]
pub struct NonceCounts {
    capacity: usize,
    highest: HashMap<Arc<str>, u32>,
    /// (forget after, nonce), in the order first seen: the front is the
    /// oldest.
    by_age: VecDeque<(u64, Arc<str>)>,
}

impl NonceCounts {
    /// A guard holding at most `capacity` nonces (at least 1).
    pub fn new(capacity: usize) -> Self {
        NonceCounts {
            capacity: capacity.max(1),
            highest: HashMap::new(),
            by_age: VecDeque::new(),
        }
    }

    /// Whether a request with this nonce count may proceed: true iff `nc`
    /// is above every count seen with `nonce` (the first use of a nonce
    /// needs nc ≥ 1), and then `nc` is remembered.
    ///
    /// An entry is dropped once its nonce has expired: `ttl_secs` (at
    /// most the nonce lifetime) plus [`MAX_CLOCK_SKEW_SECS`] after first
    /// seen, which is never before `check` starts calling the nonce Stale.
    /// When full, the oldest entry is dropped to make room: its nonce's
    /// past requests could then be replayed here until the nonce expires.
    /// Size `capacity` above the number of challenges answered per lifetime
    /// so that never happens.
    pub fn accept(&mut self, nonce: &str, nc: u32, now_unix_secs: u64, ttl_secs: u64) -> bool {
        self.expire(now_unix_secs);
        if let Some(highest) = self.highest.get_mut(nonce) {
            if nc <= *highest {
                return false;
            }
            *highest = nc;
            return true;
        }
        if nc == 0 {
            return false;
        }
        while self.highest.len() >= self.capacity {
            let Some((_, oldest)) = self.by_age.pop_front() else {
                break;
            };
            self.highest.remove(&oldest);
        }
        let nonce: Arc<str> = Arc::from(nonce);
        self.highest.insert(Arc::clone(&nonce), nc);
        let forget_after = now_unix_secs
            .saturating_add(ttl_secs)
            .saturating_add(MAX_CLOCK_SKEW_SECS);
        self.by_age.push_back((forget_after, nonce));
        true
    }

    /// How many nonces are tracked.
    pub fn len(&self) -> usize {
        self.highest.len()
    }

    pub fn is_empty(&self) -> bool {
        self.highest.is_empty()
    }

    /// Drops entries from the front while they are past their deadline.
    /// Entries are in the order first seen, so one with a later deadline
    /// (a longer TTL, or a clock that stepped back) may keep a younger one
    /// behind it a little longer, which is the safe way to be wrong.
    fn expire(&mut self, now_unix_secs: u64) {
        while let Some((forget_after, _)) = self.by_age.front() {
            if now_unix_secs <= *forget_after {
                break;
            }
            if let Some((_, nonce)) = self.by_age.pop_front() {
                self.highest.remove(&nonce);
            }
        }
    }
}

#[cfg(test)]
#[path = "nonce_tests.rs"]
mod tests;

//! Authenticated encryption of everything one node hands another through a
//! SIP message: flow tokens, temp-GRUUs, rewritten Contacts.
//!
//! ChaCha20-Poly1305 (RFC 8439) with a random 96-bit nonce per token, under
//! a key derived from the cluster secret by HKDF-SHA256. The token's kind is
//! the associated data, so a valid flow token pasted into a GRUU is refused.
//! Tokens are sealed with the current key and opened with any configured
//! key, which is how a secret is rotated without breaking live dialogs.
//! The cipher is aws-lc-rs's (the TLS stack's), whose assembly seals a
//! token of a few dozen bytes in a fraction of the instructions a portable
//! implementation needs; the algorithm, and so every token, is the same.
//!
//! Wire form: `base64url(version ‖ nonce ‖ ciphertext ‖ tag)`, no padding:
//! only unreserved characters, so it is valid in a SIP URI user part.

use aws_lc_rs::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hkdf::Hkdf;
use sha2::Sha256;

const VERSION: u8 = 1;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// What a token is; sealed into its associated data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Flow,
    TempGruu,
    Contact,
    Dialog,
}

impl Kind {
    fn label(self) -> &'static [u8] {
        match self {
            Kind::Flow => b"switchyard flow v2",
            Kind::TempGruu => b"switchyard temp-gruu v1",
            Kind::Contact => b"switchyard contact v2",
            Kind::Dialog => b"switchyard dialog v1",
        }
    }
}

/// Why a token was refused. Deliberately coarse: a forger learns nothing
/// about which check failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("token is not valid for this cluster")]
pub struct InvalidToken;

/// The cluster's keys: the first seals, all of them open.
pub struct Sealer {
    keys: Vec<LessSafeKey>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sealer({} keys)", self.keys.len())
    }
}

/// The token key HKDF-SHA256 derives from a cluster secret.
fn token_key(secret: &[u8]) -> [u8; 32] {
    let hk = Hkdf::<Sha256>::new(Some(b"switchyard cluster"), secret);
    let mut key = [0u8; 32];
    hk.expand(b"token key", &mut key)
        .expect("32 bytes is a valid HKDF-SHA256 length");
    key
}

impl Sealer {
    /// `secrets[0]` is the current secret; the rest are still accepted.
    /// Panics on an empty list (configuration validation refuses it).
    pub fn new<S: AsRef<[u8]>>(secrets: &[S]) -> Sealer {
        assert!(!secrets.is_empty(), "a cluster needs at least one secret");
        let keys = secrets
            .iter()
            .map(|secret| {
                let key = UnboundKey::new(&CHACHA20_POLY1305, &token_key(secret.as_ref()))
                    .expect("a 32-byte key is a ChaCha20-Poly1305 key");
                LessSafeKey::new(key)
            })
            .collect();
        Sealer { keys }
    }

    pub fn seal(&self, kind: Kind, plaintext: &[u8]) -> String {
        let nonce: [u8; NONCE_LEN] = rand::random();
        let mut out = Vec::with_capacity(1 + NONCE_LEN + plaintext.len() + TAG_LEN);
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plaintext);
        let tag = self.keys[0]
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(kind.label()),
                &mut out[1 + NONCE_LEN..],
            )
            .expect("ChaCha20-Poly1305 sealing cannot fail for small inputs");
        out.extend_from_slice(tag.as_ref());
        URL_SAFE_NO_PAD.encode(out)
    }

    pub fn open(&self, kind: Kind, token: &str) -> Result<Vec<u8>, InvalidToken> {
        // Longer than any token we mint: refuse before decoding.
        if token.len() > 1024 {
            return Err(InvalidToken);
        }
        let raw = URL_SAFE_NO_PAD.decode(token).map_err(|_| InvalidToken)?;
        if raw.len() < 1 + NONCE_LEN + TAG_LEN || raw[0] != VERSION {
            return Err(InvalidToken);
        }
        let (nonce, sealed) = raw[1..].split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| InvalidToken)?;
        self.keys
            .iter()
            .find_map(|key| {
                let mut in_out = sealed.to_vec();
                let plain = key
                    .open_in_place(
                        Nonce::assume_unique_for_key(nonce),
                        Aad::from(kind.label()),
                        &mut in_out,
                    )
                    .ok()?
                    .len();
                in_out.truncate(plain);
                Some(in_out)
            })
            .ok_or(InvalidToken)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_is_fresh_each_time() {
        let s = Sealer::new(&["secret"]);
        let a = s.seal(Kind::Flow, b"hello");
        let b = s.seal(Kind::Flow, b"hello");
        assert_ne!(a, b, "a random nonce per token");
        assert_eq!(s.open(Kind::Flow, &a).unwrap(), b"hello");
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
    }

    #[test]
    fn refuses_other_kinds_keys_and_any_altered_byte() {
        let s = Sealer::new(&["secret"]);
        let token = s.seal(Kind::TempGruu, b"alice");
        assert_eq!(s.open(Kind::Flow, &token), Err(InvalidToken));
        assert_eq!(
            Sealer::new(&["other"]).open(Kind::TempGruu, &token),
            Err(InvalidToken)
        );
        let raw = URL_SAFE_NO_PAD.decode(&token).unwrap();
        for i in 0..raw.len() {
            let mut bad = raw.clone();
            bad[i] ^= 0x01;
            assert_eq!(
                s.open(Kind::TempGruu, &URL_SAFE_NO_PAD.encode(&bad)),
                Err(InvalidToken),
                "byte {i}"
            );
        }
        for junk in ["", "x", "!!!", &"A".repeat(2000)] {
            assert_eq!(s.open(Kind::TempGruu, junk), Err(InvalidToken));
        }
    }

    /// The token format is RFC 8439 ChaCha20-Poly1305, whoever implements
    /// it: tokens of the portable RustCrypto cipher (which sealed every
    /// token before this one) open here, and ours open there, so nodes of
    /// either build share a cluster and no minted token goes invalid.
    #[test]
    fn tokens_are_those_of_any_rfc_8439_implementation() {
        use chacha20poly1305::aead::{Aead, KeyInit, Payload};
        use chacha20poly1305::{ChaCha20Poly1305, Key};
        let other = ChaCha20Poly1305::new(Key::from_slice(&token_key(b"secret")));
        let ours = Sealer::new(&["secret"]);
        let nonce = [7u8; NONCE_LEN];
        let sealed = other
            .encrypt(
                (&nonce).into(),
                Payload {
                    msg: b"minted elsewhere",
                    aad: Kind::Flow.label(),
                },
            )
            .unwrap();
        let token = URL_SAFE_NO_PAD.encode([&[VERSION][..], &nonce, &sealed].concat());
        assert_eq!(ours.open(Kind::Flow, &token).unwrap(), b"minted elsewhere");

        let raw = URL_SAFE_NO_PAD
            .decode(ours.seal(Kind::Dialog, b"minted here"))
            .unwrap();
        assert_eq!(raw[0], VERSION);
        let (nonce, sealed) = raw[1..].split_at(NONCE_LEN);
        let opened = other.decrypt(
            nonce.into(),
            Payload {
                msg: sealed,
                aad: Kind::Dialog.label(),
            },
        );
        assert_eq!(opened.unwrap(), b"minted here");
    }

    #[test]
    fn rotation_opens_with_the_old_key_and_seals_with_the_new() {
        let old = Sealer::new(&["k1"]);
        let rotating = Sealer::new(&["k2", "k1"]);
        let new_only = Sealer::new(&["k2"]);
        let minted_before = old.seal(Kind::Contact, b"x");
        assert_eq!(rotating.open(Kind::Contact, &minted_before).unwrap(), b"x");
        let minted_during = rotating.seal(Kind::Contact, b"y");
        assert_eq!(new_only.open(Kind::Contact, &minted_during).unwrap(), b"y");
        assert_eq!(old.open(Kind::Contact, &minted_during), Err(InvalidToken));
    }
}

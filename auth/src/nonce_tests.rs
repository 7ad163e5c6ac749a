use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::*;

const NOW: u64 = 1_700_000_000;
const LIFETIME: u64 = 300;
const REALM: &str = "sip.test";

fn key() -> NonceKey {
    NonceKey::derive(b"cluster secret for tests")
}

fn v4(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
}

fn v6(prefix_word: u16, host: u16) -> IpAddr {
    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, prefix_word, 0, 0, 0, host))
}

#[test]
fn issued_nonce_checks_valid() {
    let key = key();
    let nonce = key.issue(NOW, REALM, v4(1), 42);
    assert_eq!(nonce.len(), NONCE_LEN);
    assert_eq!(NONCE_LEN, 43);
    assert!(
        nonce
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    );
    let valid = NonceCheck::Valid { issued_at: NOW };
    assert_eq!(key.check(&nonce, REALM, v4(1), NOW, LIFETIME), valid);
    assert_eq!(
        key.check(&nonce, REALM, v4(1), NOW + LIFETIME, LIFETIME),
        valid
    );
    // Reproducible; the salt makes same-second nonces differ.
    assert_eq!(key.issue(NOW, REALM, v4(1), 42), nonce);
    assert_ne!(key.issue(NOW, REALM, v4(1), 43), nonce);
}

#[test]
fn any_changed_character_is_invalid() {
    let key = key();
    let nonce = key.issue(NOW, REALM, v4(1), 7);
    for i in 0..nonce.len() {
        for replacement in ['A', 'z', '-', '_'] {
            let mut tampered = nonce.clone();
            tampered.replace_range(i..=i, &replacement.to_string());
            if tampered == nonce {
                continue;
            }
            let got = key.check(&tampered, REALM, v4(1), NOW, LIFETIME);
            assert_eq!(got, NonceCheck::Invalid, "position {i}: {tampered}");
        }
    }
}

#[test]
fn garbage_is_invalid() {
    let key = key();
    let nonce = key.issue(NOW, REALM, v4(1), 7);
    let long = format!("{nonce}A");
    let padded = format!("{}=", &nonce[..42]);
    let not_base64 = format!("{}!", &nonce[..42]);
    let multibyte = format!("{}\u{e9}", &nonce[..41]);
    for bad in [
        "",
        "abc",
        &nonce[..42],
        &long,
        &padded,
        &not_base64,
        &multibyte,
        &"A".repeat(43),
    ] {
        assert_eq!(
            key.check(bad, REALM, v4(1), NOW, LIFETIME),
            NonceCheck::Invalid,
            "{bad:?}"
        );
    }
}

#[test]
fn realm_and_client_are_bound() {
    let key = key();
    let nonce = key.issue(NOW, REALM, v4(1), 7);
    assert_eq!(
        key.check(&nonce, "other.test", v4(1), NOW, LIFETIME),
        NonceCheck::Invalid
    );
    assert_eq!(
        key.check(&nonce, "sip.tes", v4(1), NOW, LIFETIME),
        NonceCheck::Invalid
    );
    assert_eq!(
        key.check(&nonce, REALM, v4(2), NOW, LIFETIME),
        NonceCheck::Invalid
    );
    assert_eq!(
        key.check(&nonce, REALM, v6(0, 1), NOW, LIFETIME),
        NonceCheck::Invalid
    );
}

#[test]
fn ipv4_mapped_ipv6_is_the_ipv4_client() {
    let key = key();
    let nonce = key.issue(NOW, REALM, v4(1), 7);
    let mapped = IpAddr::V6(Ipv4Addr::new(192, 0, 2, 1).to_ipv6_mapped());
    assert_eq!(
        key.check(&nonce, REALM, mapped, NOW, LIFETIME),
        NonceCheck::Valid { issued_at: NOW }
    );
    let other = IpAddr::V6(Ipv4Addr::new(192, 0, 2, 2).to_ipv6_mapped());
    assert_eq!(
        key.check(&nonce, REALM, other, NOW, LIFETIME),
        NonceCheck::Invalid
    );
}

#[test]
fn ipv6_clients_are_matched_by_64() {
    let key = key();
    let nonce = key.issue(NOW, REALM, v6(1, 0x10), 7);
    let valid = NonceCheck::Valid { issued_at: NOW };
    assert_eq!(key.check(&nonce, REALM, v6(1, 0x99), NOW, LIFETIME), valid);
    assert_eq!(
        key.check(&nonce, REALM, v6(2, 0x10), NOW, LIFETIME),
        NonceCheck::Invalid
    );
}

#[test]
fn lifetime_and_clock_skew() {
    let key = key();
    let nonce = key.issue(NOW, REALM, v4(1), 7);
    assert_eq!(
        key.check(&nonce, REALM, v4(1), NOW + LIFETIME + 1, LIFETIME),
        NonceCheck::Stale
    );
    assert_eq!(
        key.check(&nonce, REALM, v4(1), u64::MAX, LIFETIME),
        NonceCheck::Stale
    );
    // Issued by a node whose clock runs ahead: tolerated up to the skew.
    let valid = NonceCheck::Valid { issued_at: NOW };
    let behind = NOW - MAX_CLOCK_SKEW_SECS;
    assert_eq!(key.check(&nonce, REALM, v4(1), behind, LIFETIME), valid);
    assert_eq!(
        key.check(&nonce, REALM, v4(1), behind - 1, LIFETIME),
        NonceCheck::Invalid
    );
    let far_future = key.issue(NOW + 86_400 * 365, REALM, v4(1), 7);
    assert_eq!(
        key.check(&far_future, REALM, v4(1), NOW, LIFETIME),
        NonceCheck::Invalid
    );
    let max = key.issue(u64::MAX, REALM, v4(1), 7);
    assert_eq!(
        key.check(&max, REALM, v4(1), NOW, LIFETIME),
        NonceCheck::Invalid
    );
    assert_eq!(
        key.check(&max, REALM, v4(1), u64::MAX, 0),
        NonceCheck::Valid {
            issued_at: u64::MAX
        }
    );
}

#[test]
fn other_keys_reject() {
    let nonce = key().issue(NOW, REALM, v4(1), 7);
    let valid = NonceCheck::Valid { issued_at: NOW };
    assert_eq!(key().check(&nonce, REALM, v4(1), NOW, LIFETIME), valid);
    let other = NonceKey::derive(b"another secret");
    assert_eq!(
        other.check(&nonce, REALM, v4(1), NOW, LIFETIME),
        NonceCheck::Invalid
    );
    let raw = NonceKey::new([7; 32]);
    assert_eq!(
        raw.check(&nonce, REALM, v4(1), NOW, LIFETIME),
        NonceCheck::Invalid
    );
    let nonce = raw.issue(NOW, REALM, v4(1), 7);
    assert_eq!(
        NonceKey::new([7; 32]).check(&nonce, REALM, v4(1), NOW, LIFETIME),
        valid
    );
    assert_eq!(format!("{raw:?}"), "NonceKey(..)");
}

#[test]
fn counts_must_increase() {
    let mut counts = NonceCounts::new(16);
    assert!(counts.is_empty());
    assert!(!counts.accept("a", 0, NOW, LIFETIME), "nc starts at 1");
    assert!(counts.accept("a", 1, NOW, LIFETIME));
    assert!(counts.accept("a", 2, NOW, LIFETIME));
    assert!(counts.accept("a", 5, NOW + 1, LIFETIME), "gaps are fine");
    assert!(!counts.accept("a", 5, NOW + 1, LIFETIME), "replay");
    assert!(!counts.accept("a", 4, NOW + 1, LIFETIME), "decrease");
    assert!(
        counts.accept("b", 3, NOW + 1, LIFETIME),
        "first use of another nonce"
    );
    assert!(!counts.accept("b", 1, NOW + 1, LIFETIME));
    assert!(counts.accept("a", u32::MAX, NOW + 2, LIFETIME));
    assert!(!counts.accept("a", u32::MAX, NOW + 2, LIFETIME));
    assert_eq!(counts.len(), 2);
}

#[test]
fn counts_expire_with_their_nonce() {
    let mut counts = NonceCounts::new(16);
    assert!(counts.accept("a", 1, NOW, LIFETIME));
    assert!(counts.accept("b", 1, NOW + 10, LIFETIME));
    let last_kept = NOW + LIFETIME + MAX_CLOCK_SKEW_SECS;
    assert!(
        !counts.accept("a", 1, last_kept, LIFETIME),
        "still remembered"
    );
    // Once the nonce is past any check() lifetime, its entry goes.
    assert!(counts.accept("c", 1, last_kept + 1, LIFETIME));
    assert_eq!(counts.len(), 2);
    assert!(!counts.accept("b", 1, last_kept + 1, LIFETIME));
    assert!(counts.accept("a", 1, last_kept + 1, LIFETIME), "forgotten");
    // A clock step back drops nothing.
    assert!(!counts.accept("c", 1, NOW, LIFETIME));
    assert_eq!(counts.len(), 3);
}

#[test]
fn counts_are_bounded() {
    let mut counts = NonceCounts::new(3);
    for (i, nonce) in ["a", "b", "c", "d", "e"].into_iter().enumerate() {
        assert!(counts.accept(nonce, 1, NOW + i as u64, LIFETIME));
        assert!(counts.len() <= 3);
    }
    // The oldest went first: a and b are gone, c to e remain.
    assert!(!counts.accept("c", 1, NOW + 5, LIFETIME));
    assert!(!counts.accept("e", 1, NOW + 5, LIFETIME));
    assert!(counts.accept("c", 2, NOW + 5, LIFETIME));
    assert!(
        counts.accept("a", 1, NOW + 5, LIFETIME),
        "evicted, so first use again"
    );
    assert_eq!(counts.len(), 3);
    let mut tiny = NonceCounts::new(0);
    assert!(tiny.accept("a", 1, NOW, LIFETIME));
    assert!(
        !tiny.accept("a", 1, NOW, LIFETIME),
        "capacity 0 holds one entry"
    );
    assert!(tiny.accept("b", 1, NOW, LIFETIME));
    assert_eq!(tiny.len(), 1);
}

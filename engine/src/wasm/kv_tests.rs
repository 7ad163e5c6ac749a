use super::*;

fn t0() -> Instant {
    Instant::now()
}

#[test]
fn set_get_delete() {
    let kv = TenantKv::new();
    let now = t0();
    assert_eq!(kv.get("a", now), None);
    kv.set("a", b"one", 0, now);
    assert_eq!(kv.get("a", now).as_deref(), Some(&b"one"[..]));
    kv.set("a", b"two", 0, now);
    assert_eq!(kv.get("a", now).as_deref(), Some(&b"two"[..]));
    kv.delete("a");
    assert_eq!(kv.get("a", now), None);
}

#[test]
fn values_expire_after_their_ttl() {
    let kv = TenantKv::new();
    let now = t0();
    kv.set("short", b"x", 100, now);
    kv.set("forever", b"y", 0, now);
    assert!(kv.get("short", now + Duration::from_millis(99)).is_some());
    assert_eq!(kv.get("short", now + Duration::from_millis(100)), None);
    assert!(
        kv.get("forever", now + Duration::from_secs(86_400))
            .is_some()
    );
}

#[test]
fn incr_counts_in_a_fixed_window() {
    let kv = TenantKv::new();
    let now = t0();
    assert_eq!(kv.incr("hits", 1, 1000, now), 1);
    assert_eq!(
        kv.incr("hits", 2, 1000, now + Duration::from_millis(500)),
        3
    );
    // An existing key keeps its expiry: the window started at `now`.
    assert_eq!(
        kv.incr("hits", 1, 1000, now + Duration::from_millis(999)),
        4
    );
    assert_eq!(
        kv.incr("hits", 1, 1000, now + Duration::from_millis(1000)),
        1
    );
    // Counters read back as decimal text.
    let later = now + Duration::from_millis(1001);
    assert_eq!(kv.get("hits", later).as_deref(), Some(&b"1"[..]));
    assert_eq!(kv.incr("hits", -5, 0, later), -4);
}

#[test]
fn incr_treats_non_numbers_as_zero_and_saturates() {
    let kv = TenantKv::new();
    let now = t0();
    kv.set("text", b"hello", 0, now);
    assert_eq!(kv.incr("text", 7, 0, now), 7);
    kv.set("big", i64::MAX.to_string().as_bytes(), 0, now);
    assert_eq!(kv.incr("big", 1, 0, now), i64::MAX);
}

#[test]
fn oversized_keys_and_values_are_ignored_and_counted() {
    let kv = TenantKv::new();
    let now = t0();
    let long_key = "k".repeat(MAX_KEY_BYTES + 1);
    kv.set(&long_key, b"v", 0, now);
    kv.set("k", &vec![0u8; MAX_VALUE_BYTES + 1], 0, now);
    assert_eq!(kv.incr(&long_key, 3, 0, now), 3);
    assert!(kv.is_empty());
    assert_eq!(kv.rejected(), 3);
    kv.set(
        &"k".repeat(MAX_KEY_BYTES),
        &vec![0u8; MAX_VALUE_BYTES],
        0,
        now,
    );
    assert_eq!(kv.len(), 1);
}

#[test]
fn a_full_store_refuses_new_keys_until_some_expire() {
    let kv = TenantKv::new();
    let now = t0();
    for i in 0..MAX_KEYS {
        kv.set(&format!("k{i}"), b"v", 1000, now);
    }
    kv.set("one-more", b"v", 0, now);
    assert_eq!(kv.get("one-more", now), None);
    assert_eq!(kv.rejected(), 1);
    // Existing keys can still be rewritten.
    kv.set("k0", b"w", 1000, now);
    assert_eq!(kv.get("k0", now).as_deref(), Some(&b"w"[..]));
    // Once the others expired, the next write purges them and fits.
    let later = now + Duration::from_secs(2);
    kv.set("one-more", b"v", 0, later);
    assert_eq!(kv.get("one-more", later).as_deref(), Some(&b"v"[..]));
    assert_eq!(kv.len(), 1);
}

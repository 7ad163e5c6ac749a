//! Completed server transactions, kept at a few dozen bytes each.
//!
//! After its final response a non-INVITE server transaction only absorbs
//! retransmissions of its request, re-sending the response, until Timer J
//! (64·T1, 32 s over UDP; RFC 3261 §17.2.2). At 30 000 REGISTERs a second
//! that is a million transactions doing nothing else, so they leave the
//! transaction table for this one. So does an INVITE answered 2xx once its
//! branch is answered: in RFC 6026's Accepted state (Timer L) it only
//! absorbs retransmitted INVITEs, with an empty response. Per transaction
//! the table keeps:
//!
//! - a 128-bit keyed hash of its [`ServerKey`] (SipHash-1-3, keys from the
//!   endpoint's RNG, so nobody can make two keys collide on purpose);
//! - a 32-bit keyed hash of the request's origin (the endpoint hashes its
//!   source and its bytes): only a retransmission, the same message from
//!   the same place, is answered from here (the response is rebuilt from
//!   it). Anything else with the key (a spoofed copy from elsewhere, a
//!   broken client reusing a branch) is not matched: it is a new request,
//!   and never gets another's response;
//! - its deadline;
//! - the response as a [`response_delta`](super::response_delta) against
//!   the request, which the retransmission supplies again.
//!
//! Records are appended to 64 KiB chunks in the order they complete, and
//! expire in that order (every one has the same lifetime, Timer J, from
//! its final response); a chunk goes back to the allocator, or waits as
//! the spare, once its last record expired. The index is a
//! [`hashbrown::HashTable`] of record offsets, 8 bytes a slot: the key it
//! is compared with lives in the record.
//!
//! A transaction that waited for its branches (Timer K, up to 5 s) before
//! coming here expires with the records around it, at most that much
//! after its own Timer J.

use std::collections::VecDeque;
use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};

use hashbrown::HashTable;
use siphasher::sip128::{Hasher128, SipHasher13};

use super::ServerKey;

/// Bytes per chunk. A record larger than a quarter of it is not kept.
const CHUNK: usize = 64 * 1024;
/// deadline (ms since the table's epoch) + key + source + delta length.
const HEADER: usize = 8 + 16 + 4 + 2;

/// See the module documentation.
pub struct CompletedTable {
    keys: (u64, u64),
    epoch: Option<Instant>,
    index: HashTable<u64>,
    chunks: VecDeque<Vec<u8>>,
    /// The sequence number of `chunks[0]`: an offset is `seq * CHUNK + pos`.
    first_seq: u64,
    /// The next record to expire, in `chunks[0]`.
    head: usize,
    spare: Option<Vec<u8>>,
    len: usize,
}

impl CompletedTable {
    /// A table whose hashes are keyed with `keys`: draw them from a
    /// random source.
    pub fn new(keys: (u64, u64)) -> Self {
        CompletedTable {
            keys,
            epoch: None,
            index: HashTable::new(),
            chunks: VecDeque::new(),
            first_seq: 0,
            head: 0,
            spare: None,
            len: 0,
        }
    }

    /// Keeps a completed transaction until `deadline`. `false` (nothing
    /// kept) for a delta larger than a quarter chunk: its transaction
    /// stays whole.
    pub fn insert<S: Hash>(
        &mut self,
        key: &ServerKey,
        source: &S,
        deadline: Instant,
        delta: &[u8],
    ) -> bool {
        let size = HEADER + delta.len();
        if size > CHUNK / 4 {
            return false;
        }
        let epoch = *self.epoch.get_or_insert(deadline);
        let at = deadline.saturating_duration_since(epoch).as_millis() as u64;
        let hash = self.key_hash(key);
        let src = self.source_hash(source);
        let tail_full = self.chunks.back().is_none_or(|c| c.len() + size > CHUNK);
        if tail_full {
            let mut chunk = self.spare.take().unwrap_or_default();
            chunk.clear();
            chunk.reserve_exact(CHUNK);
            self.chunks.push_back(chunk);
        }
        let seq = self.first_seq + self.chunks.len() as u64 - 1;
        let tail = self.chunks.back_mut().expect("a tail chunk");
        let offset = seq * CHUNK as u64 + tail.len() as u64;
        tail.extend_from_slice(&at.to_le_bytes());
        tail.extend_from_slice(&hash.to_le_bytes());
        tail.extend_from_slice(&src.to_le_bytes());
        tail.extend_from_slice(&(delta.len() as u16).to_le_bytes());
        tail.extend_from_slice(delta);
        let (chunks, first_seq) = (&self.chunks, self.first_seq);
        let key_at = |off: &u64| record(chunks, first_seq, *off).key;
        match self.index.entry(
            hash as u64,
            |off| key_at(off) == hash,
            |off| key_at(off) as u64,
        ) {
            // The same key again (cannot happen while the first absorbs
            // retransmissions, but harmless): the newer record answers.
            hashbrown::hash_table::Entry::Occupied(mut e) => *e.get_mut() = offset,
            hashbrown::hash_table::Entry::Vacant(e) => {
                e.insert(offset);
                self.len += 1;
            }
        }
        true
    }

    /// A request whose key matched no live transaction: if it is the
    /// retransmission of a completed one (same key, same origin), the
    /// delta of the response to re-send.
    pub fn get<S: Hash>(&self, key: &ServerKey, origin: &S) -> Option<&[u8]> {
        if self.len == 0 {
            return None;
        }
        let hash = self.key_hash(key);
        let (chunks, first_seq) = (&self.chunks, self.first_seq);
        let off = self.index.find(hash as u64, |off| {
            record(chunks, first_seq, *off).key == hash
        })?;
        let rec = record(chunks, first_seq, *off);
        (rec.source == self.source_hash(origin)).then_some(rec.delta)
    }

    /// Whether a transaction with this key is kept (whatever its origin).
    pub fn contains(&self, key: &ServerKey) -> bool {
        if self.len == 0 {
            return false;
        }
        let hash = self.key_hash(key);
        let (chunks, first_seq) = (&self.chunks, self.first_seq);
        self.index
            .find(hash as u64, |off| {
                record(chunks, first_seq, *off).key == hash
            })
            .is_some()
    }

    /// Forgets every transaction whose deadline passed; how many.
    pub fn expire(&mut self, now: Instant) -> usize {
        let Some(epoch) = self.epoch else { return 0 };
        let before = self.len;
        while let Some((_, rec)) = self.peek() {
            if epoch + Duration::from_millis(rec.at) > now {
                break;
            }
            self.pop();
        }
        before - self.len
    }

    /// Forgets the oldest transaction before its deadline (at a cap).
    pub fn evict_oldest(&mut self) {
        let before = self.len;
        // Records replaced by a newer one for their key count for nothing.
        while self.len == before && self.peek().is_some() {
            self.pop();
        }
    }

    /// Drops the oldest record.
    fn pop(&mut self) {
        let Some((offset, rec)) = self.peek() else {
            return;
        };
        let (key, size) = (rec.key, HEADER + rec.delta.len());
        if let Ok(e) = self.index.find_entry(key as u64, |o| *o == offset) {
            e.remove();
            self.len -= 1;
        }
        self.head += size;
    }

    /// The earliest deadline kept.
    pub fn next_deadline(&mut self) -> Option<Instant> {
        let epoch = self.epoch?;
        let (_, rec) = self.peek()?;
        Some(epoch + Duration::from_millis(rec.at))
    }

    /// Completed transactions kept.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The oldest record not yet expired, dropping exhausted chunks.
    fn peek(&mut self) -> Option<(u64, Record<'_>)> {
        loop {
            let first = self.chunks.front()?;
            if self.head < first.len() {
                break;
            }
            // Everything in the first chunk expired.
            let chunk = self.chunks.pop_front().expect("a first chunk");
            self.first_seq += 1;
            self.head = 0;
            if self.spare.is_none() {
                self.spare = Some(chunk);
            }
        }
        let offset = self.first_seq * CHUNK as u64 + self.head as u64;
        Some((offset, record(&self.chunks, self.first_seq, offset)))
    }

    fn key_hash(&self, key: &ServerKey) -> u128 {
        let mut h = SipHasher13::new_with_keys(self.keys.0, self.keys.1);
        h.write(key.as_str().as_bytes());
        h.finish128().as_u128()
    }

    fn source_hash<S: Hash>(&self, source: &S) -> u32 {
        let mut h = SipHasher13::new_with_keys(self.keys.1, self.keys.0);
        source.hash(&mut h);
        h.finish() as u32
    }
}

struct Record<'a> {
    at: u64,
    key: u128,
    source: u32,
    delta: &'a [u8],
}

/// The record at `offset` (one the table wrote: offsets come from it).
fn record(chunks: &VecDeque<Vec<u8>>, first_seq: u64, offset: u64) -> Record<'_> {
    let chunk = &chunks[(offset / CHUNK as u64 - first_seq) as usize];
    let b = &chunk[(offset % CHUNK as u64) as usize..];
    let len = usize::from(u16::from_le_bytes([b[28], b[29]]));
    Record {
        at: u64::from_le_bytes(b[..8].try_into().expect("8 bytes")),
        key: u128::from_le_bytes(b[8..24].try_into().expect("16 bytes")),
        source: u32::from_le_bytes(b[24..28].try_into().expect("4 bytes")),
        delta: &b[HEADER..HEADER + len],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: usize) -> ServerKey {
        ServerKey::new(&format!("z9hG4bK-{n}"), "127.0.0.1:5060", "REGISTER")
    }

    #[test]
    fn a_kept_transaction_answers_its_own_origin_only() {
        let t0 = Instant::now();
        let mut table = CompletedTable::new((1, 2));
        assert!(table.insert(&key(1), &"alice", t0 + Duration::from_secs(32), b"delta"));
        assert_eq!(table.get(&key(1), &"alice"), Some(&b"delta"[..]));
        assert_eq!(table.get(&key(1), &"mallory"), None);
        assert_eq!(table.get(&key(2), &"alice"), None);
        assert_eq!(table.len(), 1);
    }

    #[test]
    fn records_expire_at_their_deadline_in_order_and_chunks_are_let_go() {
        let t0 = Instant::now();
        let mut table = CompletedTable::new((3, 4));
        let delta = [7u8; 200];
        let n = 3 * CHUNK / (HEADER + delta.len()) + 10;
        for i in 0..n {
            let deadline = t0 + Duration::from_millis(i as u64);
            assert!(table.insert(&key(i), &i, deadline, &delta));
        }
        assert!(table.chunks.len() >= 4);
        assert_eq!(table.next_deadline(), Some(t0));
        table.expire(t0 + Duration::from_millis(n as u64 / 2));
        assert_eq!(table.len(), n - n / 2 - 1);
        assert!(table.get(&key(n / 2), &(n / 2)).is_none());
        assert!(table.get(&key(n / 2 + 1), &(n / 2 + 1)).is_some());
        assert!(table.chunks.len() <= 3, "expired chunks dropped");
        table.expire(t0 + Duration::from_secs(60));
        assert!(table.is_empty());
        assert_eq!(table.next_deadline(), None);
        // The index no longer points into the dropped chunks.
        assert!(table.insert(&key(1), &1, t0 + Duration::from_secs(90), &delta));
        assert_eq!(table.get(&key(1), &1), Some(&delta[..]));
    }

    #[test]
    fn a_record_due_before_the_first_one_waits_for_its_turn_and_nothing_expires_early() {
        let t0 = Instant::now();
        let mut table = CompletedTable::new((9, 10));
        assert!(table.insert(&key(1), &1, t0 + Duration::from_secs(10), b"a"));
        assert!(table.insert(&key(2), &2, t0 + Duration::from_secs(5), b"b"));
        table.expire(t0 + Duration::from_secs(6));
        assert_eq!(table.len(), 2, "expiry goes in insertion order");
        table.expire(t0 + Duration::from_secs(10));
        assert!(table.is_empty());
    }

    #[test]
    fn eviction_forgets_the_oldest_first() {
        let t0 = Instant::now();
        let mut table = CompletedTable::new((11, 12));
        for i in 0..3 {
            assert!(table.insert(&key(i), &i, t0 + Duration::from_secs(32), b"x"));
        }
        table.evict_oldest();
        assert_eq!(table.len(), 2);
        assert!(table.get(&key(0), &0usize).is_none());
        assert!(table.get(&key(1), &1usize).is_some());
    }

    #[test]
    fn a_record_over_a_quarter_chunk_is_refused() {
        let mut table = CompletedTable::new((5, 6));
        let big = vec![0u8; CHUNK / 4];
        assert!(!table.insert(&key(1), &1, Instant::now(), &big));
        assert!(table.is_empty());
    }

    #[test]
    fn a_key_kept_twice_answers_with_the_newer_record_and_counts_once() {
        let t0 = Instant::now();
        let mut table = CompletedTable::new((7, 8));
        assert!(table.insert(&key(1), &1, t0, b"old"));
        assert!(table.insert(&key(1), &1, t0 + Duration::from_secs(1), b"new"));
        assert_eq!(table.len(), 1);
        assert_eq!(table.get(&key(1), &1), Some(&b"new"[..]));
        // The older record's expiry leaves the newer one in place.
        table.expire(t0);
        assert_eq!(table.get(&key(1), &1), Some(&b"new"[..]));
        table.expire(t0 + Duration::from_secs(1));
        assert!(table.is_empty());
    }
}

//! The read cache's table: one entry per AOR, at most `cap` of them, the
//! least recently filled evicted first. Pure (no clock, no I/O).

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, SystemTime};

use crate::{Aor, AorFilter, Binding};

/// What the store said about one AOR, and when.
#[derive(Debug, Clone)]
pub(super) struct Entry {
    pub bindings: Vec<Binding>,
    /// The `now` of the read (or REGISTER) that produced it.
    pub read_at: SystemTime,
    /// Orders fills: a read that started before another fill finished must
    /// not overwrite it (see `ReadCache::ticket`).
    pub ticket: u64,
}

impl Entry {
    /// Younger than `max_age` at `now`. A read stamped after `now` (a
    /// caller's clock behind the filler's) counts as fresh.
    pub fn fresh(&self, now: SystemTime, max_age: Duration) -> bool {
        now.duration_since(self.read_at)
            .map_or(true, |age| age < max_age)
    }
}

/// How a fill changed the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Filled {
    Stored {
        evicted: usize,
    },
    /// A newer fill of the AOR was already there.
    Superseded,
}

/// Entries plus their fill order. The order queue holds one record per
/// fill; records of entries filled again since are skipped when evicting,
/// and the queue is rebuilt once it holds twice as many records as entries.
#[derive(Debug)]
pub(super) struct Entries {
    map: HashMap<Aor, Entry>,
    order: VecDeque<(Aor, u64)>,
    cap: usize,
}

impl Entries {
    pub fn new(cap: usize) -> Entries {
        Entries {
            map: HashMap::new(),
            order: VecDeque::new(),
            cap: cap.max(1),
        }
    }

    pub fn get(&self, aor: &Aor) -> Option<&Entry> {
        self.map.get(aor)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn fill(&mut self, aor: &Aor, entry: Entry) -> Filled {
        if let Some(held) = self.map.get(aor)
            && held.ticket > entry.ticket
        {
            return Filled::Superseded;
        }
        self.order.push_back((aor.clone(), entry.ticket));
        self.map.insert(aor.clone(), entry);
        let mut evicted = 0;
        while self.map.len() > self.cap {
            let Some((oldest, ticket)) = self.order.pop_front() else {
                break;
            };
            if self.map.get(&oldest).is_some_and(|e| e.ticket == ticket) {
                self.map.remove(&oldest);
                evicted += 1;
            }
        }
        if self.order.len() > 2 * self.cap + 16 {
            self.compact();
        }
        Filled::Stored { evicted }
    }

    /// Up to `limit` cached AORs matching `filter`, least recently filled
    /// first (those need a refresh soonest).
    pub fn matching(&self, filter: &AorFilter, limit: usize) -> Vec<Aor> {
        self.order
            .iter()
            .filter(|(aor, ticket)| {
                self.map.get(aor).is_some_and(|e| e.ticket == *ticket) && filter.matches(aor)
            })
            .map(|(aor, _)| aor.clone())
            .take(limit)
            .collect()
    }

    /// Drops the records of entries filled again (or evicted) since.
    fn compact(&mut self) {
        let map = &self.map;
        self.order
            .retain(|(aor, ticket)| map.get(aor).is_some_and(|e| e.ticket == *ticket));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aor(user: &str) -> Aor {
        Aor::parse(&format!("{user}@cache.test")).unwrap()
    }

    fn entry(ticket: u64) -> Entry {
        Entry {
            bindings: Vec::new(),
            read_at: SystemTime::UNIX_EPOCH,
            ticket,
        }
    }

    #[test]
    fn the_least_recently_filled_entry_is_evicted() {
        let mut entries = Entries::new(2);
        entries.fill(&aor("a"), entry(1));
        entries.fill(&aor("b"), entry(2));
        // Filling `a` again makes `b` the oldest.
        entries.fill(&aor("a"), entry(3));
        assert_eq!(
            entries.fill(&aor("c"), entry(4)),
            Filled::Stored { evicted: 1 }
        );
        assert!(entries.get(&aor("b")).is_none());
        assert!(entries.get(&aor("a")).is_some() && entries.get(&aor("c")).is_some());
        assert_eq!(entries.len(), 2);
    }

    #[test]
    fn an_older_read_never_overwrites_a_newer_fill() {
        let mut entries = Entries::new(4);
        entries.fill(&aor("a"), entry(5));
        assert_eq!(entries.fill(&aor("a"), entry(4)), Filled::Superseded);
        assert_eq!(entries.get(&aor("a")).unwrap().ticket, 5);
    }

    #[test]
    fn refilling_one_aor_keeps_the_order_queue_bounded() {
        let mut entries = Entries::new(3);
        for ticket in 0..1000 {
            entries.fill(&aor("hot"), entry(ticket));
        }
        assert!(entries.order.len() <= 2 * 3 + 16, "{}", entries.order.len());
        assert_eq!(entries.len(), 1);
    }

    #[test]
    fn matching_lists_each_aor_once_oldest_first() {
        let mut entries = Entries::new(8);
        entries.fill(&aor("a"), entry(1));
        entries.fill(&aor("b"), entry(2));
        entries.fill(&aor("a"), entry(3));
        let other = Aor::parse("x@elsewhere.test").unwrap();
        entries.fill(&other, entry(4));
        let filter = AorFilter {
            domains: vec!["cache.test".into()],
            ..AorFilter::default()
        };
        assert_eq!(entries.matching(&filter, 10), [aor("b"), aor("a")]);
        assert_eq!(entries.matching(&filter, 1), [aor("b")]);
    }

    #[test]
    fn freshness_is_judged_by_the_callers_now() {
        let e = Entry {
            read_at: SystemTime::UNIX_EPOCH + Duration::from_secs(10),
            ..entry(1)
        };
        let max_age = Duration::from_secs(2);
        let at = |s: u64| SystemTime::UNIX_EPOCH + Duration::from_millis(s);
        assert!(e.fresh(at(9_000), max_age), "clock behind the filler's");
        assert!(e.fresh(at(11_999), max_age));
        assert!(!e.fresh(at(12_000), max_age));
    }
}

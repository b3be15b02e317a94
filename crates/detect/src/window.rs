//! Small, bounded sliding-window structures the detectors share.

use model::event::{Event, EventTime};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::hash::Hash;

/// When a detector last swept its state (expired idle sources, closed quiet incidents). Sweeps
/// walk every entry, so not on every event: every quarter window, at least every 30 s of
/// event time.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Sweep(EventTime);

impl Sweep {
    /// Whether a sweep is due at `now`; if so, it is taken to happen now.
    pub fn due(&mut self, now: EventTime, window: i64) -> bool {
        let due = now - self.0 >= (window / 4).max(30_000);
        if due {
            self.0 = now;
        }
        due
    }
}

/// Removes the incidents quiet for longer than `window` and returns those with something
/// left to report, by last activity then key (a stable order, whatever the map's).
/// `progress` tells of an incident its last activity and whether it grew since it was last
/// reported (in batch mode: whether it was never reported).
pub fn close_quiet<I>(
    incidents: &mut FxHashMap<compact_str::CompactString, I>,
    now: EventTime,
    window: i64,
    progress: impl Fn(&I) -> (EventTime, bool),
) -> Vec<(compact_str::CompactString, I)> {
    let mut v: Vec<_> = incidents
        .extract_if(|_, i| now - progress(i).0 > window)
        .filter(|(_, i)| progress(i).1)
        .collect();
    v.sort_by(|a, b| progress(&a.1).0.cmp(&progress(&b.1).0).then(a.0.cmp(&b.0)));
    v
}

/// The last few event times, at most `cap`: enough to answer "N within W?".
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Recent {
    times: VecDeque<EventTime>,
}

impl Recent {
    pub fn push(&mut self, t: EventTime, cap: usize) {
        while self.times.len() >= cap.max(1) {
            self.times.pop_front();
        }
        self.times.push_back(t);
    }

    /// `n` events within `window`, the newest at the back.
    pub fn reached(&self, n: usize, window: i64) -> bool {
        self.times.len() >= n
            && match (self.times.get(self.times.len() - n), self.times.back()) {
                (Some(a), Some(b)) => b - a <= window,
                _ => false,
            }
    }

    pub fn first(&self) -> Option<EventTime> {
        self.times.front().copied()
    }

    pub fn last(&self) -> Option<EventTime> {
        self.times.back().copied()
    }

    /// How many of the kept times are within `window` before `now`.
    pub fn count_within(&self, now: EventTime, window: i64) -> usize {
        self.times
            .iter()
            .rev()
            .take_while(|t| now - **t <= window)
            .count()
    }

    /// The earliest kept time within `window` before `now`. Times from parallel sessions, and
    /// from the proxy beside the log, arrive slightly out of order: the first kept is not
    /// always the earliest, and an incident must not start after it ended.
    pub fn first_within(&self, now: EventTime, window: i64) -> Option<EventTime> {
        self.times
            .iter()
            .rev()
            .take_while(|t| now - **t <= window)
            .min()
            .copied()
    }

    pub fn len(&self) -> usize {
        self.times.len()
    }

    pub fn is_empty(&self) -> bool {
        self.times.is_empty()
    }
}

/// Times within a sliding window, counted: `Tally` without keys.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Window {
    times: VecDeque<EventTime>,
}

impl Window {
    /// Adds `n` events at `t`, forgetting those more than `window` before it; at most `cap`.
    pub fn push(&mut self, t: EventTime, n: u32, window: i64, cap: usize) {
        self.expire(t - window);
        for _ in 0..n {
            if self.times.len() >= cap.max(1) {
                self.times.pop_front();
            }
            self.times.push_back(t);
        }
    }

    pub fn expire(&mut self, before: EventTime) {
        while self.times.front().is_some_and(|x| *x < before) {
            self.times.pop_front();
        }
    }

    pub fn total(&self) -> usize {
        self.times.len()
    }

    pub fn is_empty(&self) -> bool {
        self.times.is_empty()
    }
}

/// Keyed counts of the events within a sliding window, bounded to `cap` events.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Tally<K: Eq + Hash> {
    items: VecDeque<(EventTime, K)>,
    counts: FxHashMap<K, u32>,
}

impl<K: Eq + Hash> Default for Tally<K> {
    fn default() -> Self {
        Tally {
            items: VecDeque::new(),
            counts: FxHashMap::default(),
        }
    }
}

impl<K: Eq + Hash + Clone> Tally<K> {
    pub fn push(&mut self, t: EventTime, k: K, window: i64, cap: usize) {
        self.expire(t - window);
        while self.items.len() >= cap.max(1) {
            self.pop();
        }
        *self.counts.entry(k.clone()).or_insert(0) += 1;
        self.items.push_back((t, k));
    }

    fn pop(&mut self) {
        if let Some((_, k)) = self.items.pop_front() {
            if let Some(c) = self.counts.get_mut(&k) {
                *c -= 1;
                if *c == 0 {
                    self.counts.remove(&k);
                }
            }
        }
    }

    /// Drops events older than `before`.
    pub fn expire(&mut self, before: EventTime) {
        while self.items.front().is_some_and(|(t, _)| *t < before) {
            self.pop();
        }
    }

    pub fn total(&self) -> usize {
        self.items.len()
    }

    pub fn distinct(&self) -> usize {
        self.counts.len()
    }

    pub fn count(&self, k: &K) -> u32 {
        self.counts.get(k).copied().unwrap_or(0)
    }

    /// The key with the most events and its count.
    pub fn top(&self) -> Option<(&K, u32)> {
        self.counts
            .iter()
            .max_by_key(|(_, c)| **c)
            .map(|(k, c)| (k, *c))
    }

    pub fn keys(&self) -> impl Iterator<Item = (&K, u32)> {
        self.counts.iter().map(|(k, c)| (k, *c))
    }

    pub fn first(&self) -> Option<EventTime> {
        self.items.front().map(|(t, _)| *t)
    }

    pub fn last(&self) -> Option<EventTime> {
        self.items.back().map(|(t, _)| *t)
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// How often an ongoing incident is reported again even if its count has not doubled, so
/// that its alert stays open (the alert book closes alerts quiet for the quiet period, which
/// must therefore be longer than this).
pub const HEARTBEAT_MS: EventTime = 10 * 60_000;

/// When an incident was last reported. An incident is reported again when its count has
/// doubled since (a 10,000-attempt attack yields about a dozen updates, not 10,000), or
/// when it has grown and the last report is a heartbeat old.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Reported {
    pub count: u64,
    pub at: EventTime,
}

impl Reported {
    pub fn due(&self, count: u64, now: EventTime) -> bool {
        count >= self.count.saturating_mul(2).max(1)
            || (count != self.count && now - self.at >= HEARTBEAT_MS)
    }

    pub fn mark(&mut self, count: u64, now: EventTime) {
        self.count = count;
        self.at = now;
    }
}

/// Keeps up to `cap` sample events (the first ones: they show how the attack began).
pub fn keep_sample(samples: &mut Vec<Event>, ev: &Event, cap: usize) {
    if samples.len() < cap {
        samples.push(ev.clone());
    }
}

/// A list of distinct names with counts, bounded, for evidence. Indexed, since an attack
/// from thousands of sources adds to it once per failed login.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NameCounts {
    /// The first names seen (up to the cap given to `add`), with their counts.
    pub items: Vec<(String, u64)>,
    /// Distinct names seen beyond the listed ones.
    pub more: u64,
    /// Position in `items` of every name seen, `UNLISTED` for the others; rebuilt from
    /// `items` after a restore (names beyond the list are then counted again if seen again).
    #[serde(skip)]
    index: FxHashMap<String, usize>,
}

const UNLISTED: usize = usize::MAX;

#[derive(Debug, Serialize)]
pub struct NameCount<'a> {
    pub name: &'a str,
    pub count: u64,
}
/// Distinct names remembered at most, to count them (memory bound).
const MAX_NAMES: usize = 100_000;

impl NameCounts {
    pub fn add(&mut self, name: &str, cap: usize) {
        if self.index.len() < self.items.len() {
            self.index = self
                .items
                .iter()
                .enumerate()
                .map(|(i, (n, _))| (n.clone(), i))
                .collect();
        }
        match self.index.get(name) {
            Some(&UNLISTED) => {}
            Some(&i) => self.items[i].1 += 1,
            None if self.items.len() < cap => {
                self.index.insert(name.to_string(), self.items.len());
                self.items.push((name.to_string(), 1));
            }
            None => {
                self.more += 1;
                if self.index.len() < MAX_NAMES {
                    self.index.insert(name.to_string(), UNLISTED);
                }
            }
        }
    }

    pub fn contains(&self, name: &str) -> bool {
        if self.index.len() >= self.items.len() {
            self.index.get(name).is_some_and(|i| *i != UNLISTED)
        } else {
            self.items.iter().any(|(n, _)| n == name)
        }
    }

    pub fn distinct(&self) -> u64 {
        self.items.len() as u64 + self.more
    }

    pub fn top(&self) -> Option<&str> {
        self.items
            .iter()
            .max_by_key(|(_, c)| *c)
            .map(|(n, _)| n.as_str())
    }

    /// The names, most frequent first, as `[{"name", "count"}]`.
    pub fn json(&self) -> Vec<NameCount<'_>> {
        let mut v: Vec<NameCount<'_>> = self
            .items
            .iter()
            .map(|(n, c)| NameCount { name: n, count: *c })
            .collect();
        v.sort_by(|a, b| b.count.cmp(&a.count).then(a.name.cmp(b.name)));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_window() {
        let mut r = Recent::default();
        for t in [0, 100, 200] {
            r.push(t, 3);
        }
        assert!(r.reached(3, 200));
        assert!(!r.reached(3, 199));
        r.push(10_000, 3);
        assert!(!r.reached(3, 1000));
        assert_eq!(r.len(), 3);
    }

    #[test]
    fn name_counts_count_distinct_names_beyond_the_list() {
        let mut n = NameCounts::default();
        for i in 0..10 {
            n.add(&format!("s{}", i % 4), 2);
        }
        assert_eq!(n.items, vec![("s0".to_string(), 3), ("s1".to_string(), 3)]);
        assert_eq!(n.distinct(), 4);
        assert!(n.contains("s1") && !n.contains("s3"));
    }

    #[test]
    fn tally_expires_and_bounds() {
        let mut t: Tally<String> = Tally::default();
        t.push(0, "a".into(), 100, 10);
        t.push(50, "b".into(), 100, 10);
        t.push(120, "b".into(), 100, 10);
        assert_eq!((t.total(), t.distinct()), (2, 1));
        for i in 0..20 {
            t.push(130 + i, format!("k{i}"), 100, 5);
        }
        assert_eq!(t.total(), 5);
        assert_eq!(t.distinct(), 5);
    }
}

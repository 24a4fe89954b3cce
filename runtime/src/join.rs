//! Joins of two keyed streams: [`WindowJoin`] (same key, same window) and
//! [`IntervalJoin`] (same key, `right.ts` within `[left.ts - lower, left.ts + upper]`).
//!
//! Join buffers are stage state like any other: they are saved under the stage's name in
//! checkpoints (`{"order_123": {"left": [...], "right": [...]}}`) and restored exactly.
//! The stage's watermark is the minimum of both inputs' watermarks; buffered events are
//! evicted once no future event can match them, and events arriving behind the watermark
//! are reported as late (their partners may be gone).

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::checkpoint::Checkpointable;
use crate::fingerprint::{combine, fnv1a};
use crate::state::{Key, KeyedState};
use crate::window::align;

/// Buffered events of one key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JoinBuffers<L, R> {
    /// Left events.
    pub left: Vec<L>,
    /// Right events.
    pub right: Vec<R>,
}

impl<L, R> Default for JoinBuffers<L, R> {
    fn default() -> Self {
        JoinBuffers {
            left: Vec::new(),
            right: Vec::new(),
        }
    }
}

impl<L: Checkpointable, R: Checkpointable> Checkpointable for JoinBuffers<L, R> {
    const LAYOUT: u64 = combine(combine(fnv1a("JoinBuffers"), L::LAYOUT), R::LAYOUT);
}

/// A closed window of a [`WindowJoin`]: every left event pairs with every right event.
#[derive(Debug, Clone, PartialEq)]
pub struct JoinFired<K, L, R> {
    /// Window start.
    pub start: i64,
    /// Window end.
    pub end: i64,
    /// The key.
    pub key: K,
    /// Left events, in arrival order.
    pub left: Vec<L>,
    /// Right events, in arrival order.
    pub right: Vec<R>,
}

/// Windowed equi-join: events of both sides with the same key in the same window pair up
/// when the window closes (tumbling: `slide == size`).
///
/// ```
/// use simplestream_runtime::join::WindowJoin;
/// let mut j: WindowJoin<u32, &'static str, &'static str> = WindowJoin::default();
/// assert!(!j.add_left(1_000, 7, "order", 10_000, 10_000, 0));
/// assert!(!j.add_right(9_000, 7, "payment", 10_000, 10_000, 0));
/// let mut fired = Vec::new();
/// j.advance(10_000, 10_000, 0, &mut fired);
/// assert_eq!((fired[0].left.clone(), fired[0].right.clone()), (vec!["order"], vec!["payment"]));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound(
    serialize = "K: Key, L: Serialize, R: Serialize",
    deserialize = "K: Key, L: serde::de::DeserializeOwned, R: serde::de::DeserializeOwned"
))]
pub struct WindowJoin<K: Key, L, R> {
    /// The stage's watermark.
    pub watermark: i64,
    /// Open windows by start.
    pub windows: BTreeMap<i64, KeyedState<K, JoinBuffers<L, R>>>,
}

impl<K: Key, L, R> Default for WindowJoin<K, L, R> {
    fn default() -> Self {
        WindowJoin {
            watermark: i64::MIN,
            windows: BTreeMap::new(),
        }
    }
}

impl<K: Key, L: Clone, R: Clone> WindowJoin<K, L, R> {
    /// Calls `f` with the buffers of `key` in every open window holding `ts`, newest
    /// first, telling it whether this is the last call (so the event can be moved, not
    /// cloned, into it); true if some window holding `ts` had closed.
    fn add(
        &mut self,
        ts: i64,
        key: K,
        size: i64,
        slide: i64,
        lateness: i64,
        mut f: impl FnMut(&mut JoinBuffers<L, R>, bool),
    ) -> bool {
        let newest = align(ts, slide);
        let wm = self.watermark;
        let closed = |start: i64| start.saturating_add(size).saturating_add(lateness) <= wm;
        // Open windows run from `newest` down to the oldest still open.
        let mut oldest_open = newest;
        let mut late = false;
        let mut start = newest;
        while start > ts.saturating_sub(size) {
            if closed(start) {
                late = true;
            } else {
                oldest_open = start;
            }
            start -= slide;
        }
        if closed(newest) {
            return late;
        }
        let mut start = newest;
        while start >= oldest_open {
            let last = start - slide < oldest_open;
            let keyed = self.windows.entry(start).or_default();
            match keyed.as_map_mut().get_mut(&key) {
                Some(b) => f(b, last),
                None => f(keyed.entry(key.clone()), last),
            }
            start -= slide;
        }
        late
    }

    /// Buffers a left event in each open window holding `ts`; true if some window had closed.
    pub fn add_left(
        &mut self,
        ts: i64,
        key: K,
        v: L,
        size: i64,
        slide: i64,
        lateness: i64,
    ) -> bool {
        let mut v = Some(v);
        self.add(ts, key, size, slide, lateness, |b, last| {
            let e = if last { v.take() } else { v.clone() };
            b.left.extend(e);
        })
    }

    /// Buffers a right event; true if some window holding it had closed.
    pub fn add_right(
        &mut self,
        ts: i64,
        key: K,
        v: R,
        size: i64,
        slide: i64,
        lateness: i64,
    ) -> bool {
        let mut v = Some(v);
        self.add(ts, key, size, slide, lateness, |b, last| {
            let e = if last { v.take() } else { v.clone() };
            b.right.extend(e);
        })
    }

    /// Moves the watermark; closed windows with events on both sides go to `fired`, in
    /// (end, key) order.
    pub fn advance(
        &mut self,
        wm: i64,
        size: i64,
        lateness: i64,
        fired: &mut Vec<JoinFired<K, L, R>>,
    ) {
        if wm <= self.watermark {
            return;
        }
        self.watermark = wm;
        while let Some(entry) = self.windows.first_entry() {
            let start = *entry.key();
            if start.saturating_add(size).saturating_add(lateness) > wm {
                break;
            }
            let mut keyed = entry.remove();
            // Only keys with events on both sides make pairs: filter, then sort those.
            let base = fired.len();
            let end = start + size;
            fired.extend(
                keyed
                    .as_map_mut()
                    .drain()
                    .filter(|(_, b)| !b.left.is_empty() && !b.right.is_empty())
                    .map(|(key, b)| JoinFired {
                        start,
                        end,
                        key,
                        left: b.left,
                        right: b.right,
                    }),
            );
            fired[base..].sort_unstable_by(|a, b| a.key.cmp(&b.key));
        }
    }

    /// End of input: closes every window.
    pub fn flush(&mut self, size: i64, lateness: i64, fired: &mut Vec<JoinFired<K, L, R>>) {
        if let Some((&last, _)) = self.windows.last_key_value() {
            let wm = last.saturating_add(size).saturating_add(lateness);
            self.advance(wm, size, lateness, fired);
        }
    }

    /// Buffered events, both sides.
    pub fn buffered(&self) -> usize {
        self.windows
            .values()
            .flat_map(|k| k.iter())
            .map(|(_, b)| b.left.len() + b.right.len())
            .sum()
    }
}

impl<K: Key, L: Checkpointable, R: Checkpointable> Checkpointable for WindowJoin<K, L, R> {
    const LAYOUT: u64 = combine(
        combine(combine(fnv1a("WindowJoin"), K::LAYOUT), L::LAYOUT),
        R::LAYOUT,
    );
}

/// A buffered event with its time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timed<T> {
    /// Event time, ms.
    pub ts: i64,
    /// The event.
    pub event: T,
}

impl<T: Checkpointable> Checkpointable for Timed<T> {
    const LAYOUT: u64 = combine(fnv1a("Timed"), T::LAYOUT);
}

/// A pair produced by an [`IntervalJoin`].
#[derive(Debug, Clone, PartialEq)]
pub struct Pair<K, L, R> {
    /// The key.
    pub key: K,
    /// Left event.
    pub left: L,
    /// Right event.
    pub right: R,
    /// The later of the two event times.
    pub ts: i64,
}

/// Interval join: a left event at `t` pairs with every right event of the same key at
/// `t - lower ..= t + upper`, as soon as both have arrived.
///
/// ```
/// use simplestream_runtime::join::IntervalJoin;
/// let mut j: IntervalJoin<u32, &'static str, &'static str> = IntervalJoin::default();
/// let mut pairs = Vec::new();
/// j.add_left(10_000, 1, "order", 1_000, 5_000, &mut pairs);
/// j.add_right(14_000, 1, "payment", 1_000, 5_000, &mut pairs); // within +5 s
/// j.add_right(16_000, 1, "too late", 1_000, 5_000, &mut pairs); // outside
/// assert_eq!(pairs.len(), 1);
/// assert_eq!((pairs[0].left, pairs[0].right, pairs[0].ts), ("order", "payment", 14_000));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound(
    serialize = "K: Key, L: Serialize, R: Serialize",
    deserialize = "K: Key, L: serde::de::DeserializeOwned, R: serde::de::DeserializeOwned"
))]
pub struct IntervalJoin<K: Key, L, R> {
    /// The stage's watermark.
    pub watermark: i64,
    /// Buffered events per key, in arrival order.
    pub buffers: KeyedState<K, JoinBuffers<Timed<L>, Timed<R>>>,
    /// Eviction queue: one `(time, key)` per buffered key, in the order keys were armed.
    /// A FIFO (not a sorted set) keeps arming O(1); it is saved with the state so that a
    /// restored join evicts exactly when the original would have.
    pub timers: VecDeque<(i64, K)>,
}

impl<K: Key, L, R> Default for IntervalJoin<K, L, R> {
    fn default() -> Self {
        IntervalJoin {
            watermark: i64::MIN,
            buffers: KeyedState::default(),
            timers: VecDeque::new(),
        }
    }
}

/// Time of the oldest buffered event of a key.
fn oldest<L, R>(b: &JoinBuffers<Timed<L>, Timed<R>>) -> Option<i64> {
    b.left
        .iter()
        .map(|t| t.ts)
        .chain(b.right.iter().map(|t| t.ts))
        .min()
}

impl<K: Key, L: Clone, R: Clone> IntervalJoin<K, L, R> {
    /// A left event at `ts`: pairs with buffered right events in `[ts - lower, ts + upper]`,
    /// then is buffered. Returns false (and does nothing) if it is late: some right event
    /// it could match may already have been evicted.
    pub fn add_left(
        &mut self,
        ts: i64,
        key: K,
        v: L,
        lower: i64,
        upper: i64,
        pairs: &mut Vec<Pair<K, L, R>>,
    ) -> bool {
        if ts.saturating_add(upper) < self.watermark {
            return false;
        }
        let b = self.buffers.entry(key.clone());
        let old = oldest(b);
        for r in &b.right {
            if r.ts >= ts.saturating_sub(lower) && r.ts <= ts.saturating_add(upper) {
                pairs.push(Pair {
                    key: key.clone(),
                    left: v.clone(),
                    right: r.event.clone(),
                    ts: ts.max(r.ts),
                });
            }
        }
        b.left.push(Timed { ts, event: v });
        self.rearm(key, old, ts);
        true
    }

    /// A right event at `ts`: pairs with buffered left events at `[ts - upper, ts + lower]`,
    /// then is buffered. Returns false (and does nothing) if it is late.
    pub fn add_right(
        &mut self,
        ts: i64,
        key: K,
        v: R,
        lower: i64,
        upper: i64,
        pairs: &mut Vec<Pair<K, L, R>>,
    ) -> bool {
        if ts.saturating_add(lower) < self.watermark {
            return false;
        }
        let b = self.buffers.entry(key.clone());
        let old = oldest(b);
        for l in &b.left {
            if ts >= l.ts.saturating_sub(lower) && ts <= l.ts.saturating_add(upper) {
                pairs.push(Pair {
                    key: key.clone(),
                    left: l.event.clone(),
                    right: v.clone(),
                    ts: ts.max(l.ts),
                });
            }
        }
        b.right.push(Timed { ts, event: v });
        self.rearm(key, old, ts);
        true
    }

    /// Arms the key's timer when it had nothing buffered (one entry per buffered key).
    fn rearm(&mut self, key: K, old: Option<i64>, ts: i64) {
        if old.is_none() {
            self.timers.push_back((ts, key));
        }
    }

    /// Moves the watermark and evicts events that can no longer match a future event that
    /// is not late: on either side, once `ts + lower + upper < wm`.
    pub fn advance(&mut self, wm: i64, lower: i64, upper: i64) {
        if wm <= self.watermark {
            return;
        }
        self.watermark = wm;
        let horizon = lower.saturating_add(upper);
        let keep = |ts: i64| ts.saturating_add(horizon) >= wm;
        // Events older than the front may wait behind it: evicting late never changes
        // output (they cannot match anything that is not late), and the saved queue
        // makes a restored run evict at the same moments.
        while let Some((t, _)) = self.timers.front() {
            if keep(*t) {
                break;
            }
            let (_, key) = self.timers.pop_front().expect("checked non-empty");
            let Some(b) = self.buffers.as_map_mut().get_mut(&key) else {
                continue;
            };
            b.left.retain(|l| keep(l.ts));
            b.right.retain(|r| keep(r.ts));
            match oldest(b) {
                None => {
                    self.buffers.remove(&key);
                }
                Some(ts) => self.timers.push_back((ts, key)),
            }
        }
    }

    /// Buffered events, both sides.
    pub fn buffered(&self) -> usize {
        self.buffers
            .iter()
            .map(|(_, b)| b.left.len() + b.right.len())
            .sum()
    }
}

impl<K: Key, L: Checkpointable, R: Checkpointable> Checkpointable for IntervalJoin<K, L, R> {
    const LAYOUT: u64 = combine(
        combine(combine(fnv1a("IntervalJoin"), K::LAYOUT), L::LAYOUT),
        R::LAYOUT,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A right event that is not late must find every left event it matches, whatever
    /// order events arrived in (regression: lefts were evicted at `ts + upper < wm`).
    #[test]
    fn interval_join_keeps_lefts_that_a_non_late_right_can_still_match() {
        let (lower, upper) = (2_000, 5_000);
        for right_first in [false, true] {
            let mut j: IntervalJoin<u32, i64, i64> = IntervalJoin::default();
            let mut pairs = Vec::new();
            j.add_left(0, 1, 0, lower, upper, &mut pairs);
            j.add_left(5_001, 2, 5_001, lower, upper, &mut pairs);
            if right_first {
                assert!(j.add_right(4_000, 1, 4_000, lower, upper, &mut pairs));
            }
            j.advance(5_001, lower, upper);
            assert!(j.add_right(5_001, 2, 5_001, lower, upper, &mut pairs));
            if !right_first {
                assert!(
                    j.add_right(4_000, 1, 4_000, lower, upper, &mut pairs),
                    "4000 + lower >= 5001: not late"
                );
            }
            let mut got: Vec<(u32, i64, i64)> =
                pairs.iter().map(|p| (p.key, p.left, p.right)).collect();
            got.sort();
            assert_eq!(
                got,
                vec![(1, 0, 4_000), (2, 5_001, 5_001)],
                "right_first = {right_first}"
            );
        }
    }

    #[test]
    fn interval_join_evicts_once_nothing_can_match_and_timers_survive_restore() {
        let (lower, upper) = (1_000, 1_000);
        let mut j: IntervalJoin<u32, i64, i64> = IntervalJoin::default();
        let mut pairs = Vec::new();
        j.add_left(10_000, 1, 0, lower, upper, &mut pairs);
        j.add_left(9_000, 1, 0, lower, upper, &mut pairs); // older: the key's timer moves
        j.add_right(50_000, 2, 0, lower, upper, &mut pairs);
        let restored: IntervalJoin<u32, i64, i64> =
            serde_json::from_str(&serde_json::to_string(&j).unwrap()).unwrap();
        assert_eq!(restored, j, "the eviction queue is restored exactly");
        // 9000 + 2000 < 11001, but key 1's timer is at 10000 (its first event): the older
        // event waits (it cannot match anything that is not late, so output is the same).
        j.advance(11_001, lower, upper);
        assert_eq!(j.buffered(), 3);
        j.advance(12_001, lower, upper);
        assert_eq!(j.buffered(), 1, "key 1 evicted, key 2 kept");
        assert!(j.buffers.get(&1).is_none());
    }
}

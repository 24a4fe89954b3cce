//! Joins of two keyed streams: [`WindowJoin`] (same key, same window) and
//! [`IntervalJoin`] (same key, `right.ts` within `[left.ts - lower, left.ts + upper]`).
//!
//! Join buffers are stage state like any other: they are saved under the stage's name in
//! checkpoints (`{"order_123": {"left": [...], "right": [...]}}`) and restored exactly.
//! The stage's watermark is the minimum of both inputs' watermarks; buffered events are
//! evicted once no future event can match them, and events arriving behind the watermark
//! are reported as late (their partners may be gone).

use std::collections::VecDeque;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::checkpoint::Checkpointable;
use crate::delta::History;
use crate::fingerprint::{combine, fnv1a};
use crate::spill::SpillState;
use crate::state::{line_align, Key, Natural};
use crate::window::{restored_history, span, OpenWindows};

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

/// What a window join whose only reader folds its pairs keeps of one key in one window,
/// instead of the events (see `pipeline!`'s join fusion): how many events arrived on each
/// side, and the reader's accumulator of the columns that read one side, folded as they
/// arrived. The key's pairs are `left * right`; it makes none unless both are non-zero.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JoinFolds<A> {
    /// Left events.
    pub left: u64,
    /// Right events.
    pub right: u64,
    /// The reader's accumulator, one-side columns only.
    pub acc: A,
}

impl<A> JoinFolds<A> {
    /// True if the key has events on both sides, hence pairs.
    #[inline]
    pub fn has_pairs(&self) -> bool {
        self.left != 0 && self.right != 0
    }
}

impl<A: Checkpointable> Checkpointable for JoinFolds<A> {
    const LAYOUT: u64 = combine(fnv1a("JoinFolds"), A::LAYOUT);
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
/// let mut j: WindowJoin<u32, String, String> = WindowJoin::default();
/// assert!(!j.add_left(1_000, 7, "order".into(), 10_000, 10_000, 0));
/// assert!(!j.add_right(9_000, 7, "payment".into(), 10_000, 10_000, 0));
/// let mut fired = Vec::new();
/// j.advance(10_000, 10_000, 0, &mut fired);
/// assert_eq!(fired[0].left, ["order"]);
/// assert_eq!(fired[0].right, ["payment"]);
/// ```
///
/// Like [`Windows`](crate::window::Windows), open windows are a deque sorted by start
/// (found by arithmetic, not a tree search), and the hash maps and event vectors of closed
/// windows are kept for new ones (see [`recycle`](Self::recycle)). Checkpoints hold
/// `{"watermark":..,"windows":{"<start>":{"<key>":{"left":[..],"right":[..]}}}}`.
#[derive(Serialize, Deserialize)]
#[serde(bound(
    serialize = "K: Key, L: Checkpointable + Clone, R: Checkpointable + Clone",
    deserialize = "K: Key, L: Checkpointable + Clone, R: Checkpointable + Clone"
))]
#[serde(from = "WindowJoinRepr<K, L, R>")]
pub struct WindowJoin<K: Key, L, R> {
    /// The stage's watermark.
    pub watermark: i64,
    /// Open windows, sorted by start.
    pub(crate) windows: OpenWindows<JoinWindow<K, L, R>>,
    /// The clock every window's buffers are stamped by (see `KeyedState::follow`).
    #[serde(skip)]
    pub(crate) history: History,
    /// Reusable storage (not state).
    #[serde(skip)]
    spare: Spare<K, L, R>,
}

/// One window of a [`WindowJoin`]: buffers per key, spilling to disk with the disk
/// backend.
type JoinWindow<K, L, R> = SpillState<K, JoinBuffers<L, R>>;

#[derive(Deserialize)]
#[serde(bound(deserialize = "K: Key, L: Checkpointable + Clone, R: Checkpointable + Clone"))]
struct WindowJoinRepr<K: Key, L, R> {
    watermark: i64,
    windows: OpenWindows<JoinWindow<K, L, R>>,
}

impl<K: Key, L: Checkpointable + Clone, R: Checkpointable + Clone> From<WindowJoinRepr<K, L, R>>
    for WindowJoin<K, L, R>
{
    fn from(r: WindowJoinRepr<K, L, R>) -> Self {
        WindowJoin {
            watermark: r.watermark,
            history: restored_history(&r.windows),
            windows: r.windows,
            spare: Spare::default(),
        }
    }
}

/// Emptied maps and vectors of closed windows, for new ones.
struct Spare<K, L, R> {
    maps: Vec<JoinWindow<K, L, R>>,
    left: Vec<Vec<L>>,
    right: Vec<Vec<R>>,
}

impl<K, L, R> Default for Spare<K, L, R> {
    fn default() -> Self {
        Spare {
            maps: Vec::new(),
            left: Vec::new(),
            right: Vec::new(),
        }
    }
}

/// One key's buffers in a window, with the spare vectors to grow them from.
struct Newest<'a, K, L, R> {
    left: &'a mut Vec<L>,
    right: &'a mut Vec<R>,
    spare: &'a mut Spare<K, L, R>,
}

/// Emptied maps kept: a window opens about when one closes.
const SPARE_MAPS: usize = 1;
/// Emptied event vectors kept per side: about one window's keys, bounded.
const SPARE_VECS: usize = 1 << 16;

impl<K: Key, L, R> Default for WindowJoin<K, L, R> {
    fn default() -> Self {
        WindowJoin {
            watermark: i64::MIN,
            windows: OpenWindows::default(),
            history: History::default(),
            spare: Spare::default(),
        }
    }
}

impl<K: Key, L: Checkpointable + Clone, R: Checkpointable + Clone> Clone for WindowJoin<K, L, R> {
    fn clone(&self) -> Self {
        WindowJoin {
            watermark: self.watermark,
            windows: self.windows.clone(),
            history: self.history.clone(),
            spare: Spare::default(),
        }
    }
}

impl<K: Key, L, R> PartialEq for WindowJoin<K, L, R>
where
    L: Checkpointable + Clone + PartialEq,
    R: Checkpointable + Clone + PartialEq,
{
    fn eq(&self, other: &Self) -> bool {
        self.watermark == other.watermark && self.windows == other.windows
    }
}

impl<K: Key + fmt::Debug, L, R> fmt::Debug for WindowJoin<K, L, R>
where
    L: Checkpointable + Clone + fmt::Debug,
    R: Checkpointable + Clone + fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WindowJoin")
            .field("watermark", &self.watermark)
            .field("windows", &self.windows)
            .finish()
    }
}

impl<K: Key, L: Checkpointable + Clone, R: Checkpointable + Clone> WindowJoin<K, L, R> {
    /// Calls `f` with the buffers of `key` in every open window holding `ts`, newest
    /// first, telling it whether the event can be moved (not cloned) into them (the last
    /// call, if the event is not also late) and giving it the spare vectors; true if some
    /// window holding `ts` had closed.
    fn add(
        &mut self,
        ts: i64,
        key: K,
        size: i64,
        slide: i64,
        lateness: i64,
        mut f: impl FnMut(&mut JoinBuffers<L, R>, bool, &mut Spare<K, L, R>),
    ) -> bool {
        // Usually the newest windows, all open: no window alignment nor slot search.
        if let Some(first) = self
            .windows
            .tail_holding(ts, size, slide, lateness, self.watermark)
        {
            for i in (first..self.windows.len()).rev() {
                let keyed = &mut self.windows[i].1;
                keyed.follow(&mut self.history.clock);
                f(keyed.entry_ref(&key), i == first, &mut self.spare);
            }
            return false;
        }
        let Some((oldest_open, newest, late)) = span(ts, size, slide, lateness, self.watermark)
        else {
            return true;
        };
        // Open windows, from `newest` down to the oldest still open.
        let mut start = newest;
        while start >= oldest_open {
            // The event moves into the last window, unless it is also late (kept for that).
            let last = start == oldest_open && !late;
            let spare_maps = &mut self.spare.maps;
            let i = self
                .windows
                .slot(start, slide, || spare_maps.pop().unwrap_or_default());
            let keyed = &mut self.windows[i].1;
            keyed.follow(&mut self.history.clock);
            f(keyed.entry_ref(&key), last, &mut self.spare);
            if start == oldest_open {
                break;
            }
            start -= slide;
        }
        late
    }

    /// For tumbling windows (`size == slide`), when `ts` falls in the newest window and it
    /// is open: the buffers of `key` there (stamped as changed) and the spare vectors. The
    /// event then moves straight in, without the general path's per-window callback.
    #[inline(always)]
    fn tumbling_newest(
        &mut self,
        ts: i64,
        key: &K,
        size: i64,
        slide: i64,
        lateness: i64,
    ) -> Option<Newest<'_, K, L, R>> {
        if size != slide {
            return None;
        }
        let first = self
            .windows
            .tail_holding(ts, size, slide, lateness, self.watermark)?;
        let keyed = &mut self.windows[first].1;
        keyed.follow(&mut self.history.clock);
        let b = keyed.entry_ref(key);
        Some(Newest {
            left: &mut b.left,
            right: &mut b.right,
            spare: &mut self.spare,
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
        while let Some((start, mut keyed)) = self.windows.pop_due(size, lateness, wm) {
            // Only keys with events on both sides make pairs: filter, then sort those.
            let base = fired.len();
            let end = start.saturating_add(size);
            keyed.drain_each(|key, b| {
                if b.left.is_empty() || b.right.is_empty() {
                    self.recycle(b.left, b.right);
                } else {
                    fired.push(JoinFired {
                        start,
                        end,
                        key,
                        left: b.left,
                        right: b.right,
                    });
                }
            });
            fired[base..].sort_unstable_by(|a, b| a.key.cmp(&b.key));
            if self.spare.maps.len() < SPARE_MAPS {
                self.spare.maps.push(keyed);
            }
        }
    }

    /// End of input: closes every window.
    pub fn flush(&mut self, size: i64, lateness: i64, fired: &mut Vec<JoinFired<K, L, R>>) {
        let wm = self.windows.flush_watermark(size, lateness, self.watermark);
        self.advance(wm, size, lateness, fired);
    }

    /// Gives back the vectors of a fired window (emptied here) for new windows to reuse:
    /// buffering an event then allocates only when a key has more events than before.
    pub fn recycle(&mut self, mut left: Vec<L>, mut right: Vec<R>) {
        if left.capacity() > 0 && self.spare.left.len() < SPARE_VECS {
            left.clear();
            self.spare.left.push(left);
        }
        if right.capacity() > 0 && self.spare.right.len() < SPARE_VECS {
            right.clear();
            self.spare.right.push(right);
        }
    }

    /// An empty vector of right events (a reused one if there is one).
    pub fn spare_right(&mut self) -> Vec<R> {
        self.spare.right.pop().unwrap_or_default()
    }

    /// Buffered events, both sides.
    pub fn buffered(&self) -> usize {
        self.windows
            .iter()
            .flat_map(|(_, k)| k.iter())
            .map(|(_, b)| b.left.len() + b.right.len())
            .sum()
    }

    /// The open windows, oldest first: start and buffers per key.
    pub fn windows(&self) -> impl Iterator<Item = (i64, &JoinWindow<K, L, R>)> {
        self.windows.iter().map(|(start, k)| (*start, k))
    }
}

impl<K: Key, L: Checkpointable + Clone, R: Checkpointable + Clone> WindowJoin<K, L, R> {
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
        self.add_left_or_late(ts, key, v, size, slide, lateness)
            .is_some()
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
        self.add_right_or_late(ts, key, v, size, slide, lateness)
            .is_some()
    }

    /// [`add_left`](Self::add_left) that gives the event back when it is late for some
    /// window (a copy if it was also buffered), so that it is cloned only when needed.
    pub fn add_left_or_late(
        &mut self,
        ts: i64,
        key: K,
        v: L,
        size: i64,
        slide: i64,
        lateness: i64,
    ) -> Option<L> {
        if let Some(b) = self.tumbling_newest(ts, &key, size, slide, lateness) {
            push(b.left, Some(v), &mut b.spare.left);
            return None;
        }
        let mut v = Some(v);
        let late = self.add(ts, key, size, slide, lateness, |b, last, spare| {
            let e = if last { v.take() } else { v.clone() };
            push(&mut b.left, e, &mut spare.left);
        });
        v.filter(|_| late)
    }

    /// [`add_right`](Self::add_right) that gives the event back when it is late.
    pub fn add_right_or_late(
        &mut self,
        ts: i64,
        key: K,
        v: R,
        size: i64,
        slide: i64,
        lateness: i64,
    ) -> Option<R> {
        if let Some(b) = self.tumbling_newest(ts, &key, size, slide, lateness) {
            push(b.right, Some(v), &mut b.spare.right);
            return None;
        }
        let mut v = Some(v);
        let late = self.add(ts, key, size, slide, lateness, |b, last, spare| {
            let e = if last { v.take() } else { v.clone() };
            push(&mut b.right, e, &mut spare.right);
        });
        v.filter(|_| late)
    }
}

/// Appends `e` (if any) to `buf`, which takes a spare vector rather than allocating.
#[inline]
fn push<T>(buf: &mut Vec<T>, e: Option<T>, spare: &mut Vec<Vec<T>>) {
    if let Some(e) = e {
        if buf.capacity() == 0 {
            if let Some(v) = spare.pop() {
                *buf = v;
            }
        }
        buf.push(e);
    }
}

impl<K: Key, L: Checkpointable + Clone, R: Checkpointable + Clone> Checkpointable
    for WindowJoin<K, L, R>
{
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

/// The [`line_align`] of an [`IntervalJoin`]'s buffers of key `K`, left events `L` and
/// right events `R`: what `pipeline!` aligns them with (a `u64` key's entry is 64 bytes).
pub const fn interval_line_align<K, L, R>() -> usize {
    line_align::<K, JoinBuffers<Timed<L>, Timed<R>>>()
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
/// let mut j: IntervalJoin<u32, String, String> = IntervalJoin::default();
/// let mut pairs = Vec::new();
/// j.add_left(10_000, 1, "order".into(), 1_000, 5_000, &mut pairs);
/// j.add_right(14_000, 1, "payment".into(), 1_000, 5_000, &mut pairs); // within +5 s
/// j.add_right(16_000, 1, "too late".into(), 1_000, 5_000, &mut pairs); // outside
/// assert_eq!(pairs.len(), 1);
/// assert_eq!((&*pairs[0].left, &*pairs[0].right, pairs[0].ts), ("order", "payment", 14_000));
/// ```
///
/// The event vectors of evicted keys are kept for new keys (a bounded number per
/// side, not state: not saved, not compared, not cloned), so that a steady stream of new
/// keys does not allocate and free two small vectors per key. `B` aligns the buffers'
/// table entries (see [`interval_line_align`]). With the disk backend the buffers spill;
/// the eviction queue stays in memory.
#[derive(Serialize, Deserialize)]
#[serde(bound(
    serialize = "K: Key, L: Checkpointable + Clone, R: Checkpointable + Clone",
    deserialize = "K: Key, L: Checkpointable + Clone, R: Checkpointable + Clone"
))]
pub struct IntervalJoin<K: Key, L, R, B = Natural> {
    /// The stage's watermark.
    pub watermark: i64,
    /// Buffered events per key, in arrival order.
    pub buffers: SpillState<K, JoinBuffers<Timed<L>, Timed<R>>, B>,
    /// Eviction queue: one `(time, key)` per buffered event, in arrival order. A FIFO (not
    /// a sorted set) keeps arming O(1); one entry per event (not per key, re-armed at the
    /// back) evicts each event about when it expires rather than up to a horizon later,
    /// which kept a fifth more keys alive. It is saved with the state so that a restored
    /// join evicts exactly when the original would have.
    pub timers: Timers<K>,
    /// Emptied event vectors of evicted keys (reusable storage, not state).
    #[serde(skip)]
    spare: TimedSpare<L, R>,
}

/// The eviction queue of an [`IntervalJoin`]: `(time, key)` per buffered event, oldest
/// first, saved as that list. Each timer also holds the change stamp of the buffers at its
/// push (0 for restored timers: older than any later delta; a clone's first delta is whole,
/// its buffers being a history of their own), so that a delta finds the timers pushed since
/// its version; in the same entry, so that arming and popping a timer is one queue operation.
#[derive(Clone)]
pub struct Timers<K>(VecDeque<Timer<K>>);

#[derive(Clone)]
struct Timer<K> {
    ts: i64,
    key: K,
    stamp: u64,
}

impl<K> Default for Timers<K> {
    fn default() -> Self {
        Timers(VecDeque::new())
    }
}

impl<K> Timers<K> {
    /// Number of timers.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when no timer is queued.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The timers, oldest first.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (i64, &K)> {
        self.0.iter().map(|t| (t.ts, &t.key))
    }

    /// The timers from position `from` on, oldest first.
    pub(crate) fn range(&self, from: usize) -> impl ExactSizeIterator<Item = (i64, &K)> {
        self.0.range(from..).map(|t| (t.ts, &t.key))
    }

    /// How many timers were pushed after stamp `after` (the newest ones).
    pub(crate) fn pushed_after(&self, after: u64) -> usize {
        self.0.len() - self.0.partition_point(|t| t.stamp <= after)
    }

    #[inline]
    fn push(&mut self, ts: i64, key: K, stamp: u64) {
        self.0.push_back(Timer { ts, key, stamp });
    }

    #[inline]
    fn front_ts(&self) -> Option<i64> {
        self.0.front().map(|t| t.ts)
    }

    #[inline]
    fn pop_key(&mut self) -> Option<K> {
        self.0.pop_front().map(|t| t.key)
    }

    /// Removes every timer.
    pub(crate) fn clear(&mut self) {
        self.0.clear();
    }

    /// Takes out the `n` oldest timers' keys.
    pub(crate) fn drain_oldest(&mut self, n: usize) -> impl Iterator<Item = K> + '_ {
        self.0.drain(..n).map(|t| t.key)
    }

    /// Appends timers of a delta, and counts every timer as older than any later delta.
    pub(crate) fn extend_restored(&mut self, timers: Vec<(i64, K)>) {
        for t in self.0.iter_mut() {
            t.stamp = 0;
        }
        self.0.extend(
            timers
                .into_iter()
                .map(|(ts, key)| Timer { ts, key, stamp: 0 }),
        );
    }
}

impl<K: PartialEq> PartialEq for Timers<K> {
    fn eq(&self, other: &Self) -> bool {
        self.0.len() == other.0.len() && self.iter().eq(other.iter())
    }
}

impl<K: fmt::Debug> fmt::Debug for Timers<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<K: Serialize> Serialize for Timers<K> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl<'de, K: Deserialize<'de>> Deserialize<'de> for Timers<K> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = VecDeque::<(i64, K)>::deserialize(d)?;
        Ok(Timers(
            v.into_iter()
                .map(|(ts, key)| Timer { ts, key, stamp: 0 })
                .collect(),
        ))
    }
}

/// Emptied event vectors kept per side by an [`IntervalJoin`]: about the number of keys
/// evicted by one watermark step, bounded.
const SPARE_TIMED: usize = 1 << 12;

/// Vectors with more capacity than this are freed rather than kept (a key with many
/// events should not pin its memory after eviction).
const SPARE_TIMED_CAP: usize = 16;

/// Emptied event vectors of an [`IntervalJoin`].
struct TimedSpare<L, R> {
    left: Vec<Vec<Timed<L>>>,
    right: Vec<Vec<Timed<R>>>,
}

impl<L, R> Default for TimedSpare<L, R> {
    fn default() -> Self {
        TimedSpare {
            left: Vec::new(),
            right: Vec::new(),
        }
    }
}

impl<L, R> TimedSpare<L, R> {
    /// Keeps the (emptied) vectors of an evicted key.
    #[inline]
    fn keep(&mut self, b: JoinBuffers<Timed<L>, Timed<R>>) {
        keep_vec(&mut self.left, b.left);
        keep_vec(&mut self.right, b.right);
    }
}

/// Keeps `v` (cleared) in `spare` if it has a small, non-zero capacity and there is room.
#[inline]
fn keep_vec<T>(spare: &mut Vec<Vec<T>>, mut v: Vec<T>) {
    if v.capacity() != 0 && v.capacity() <= SPARE_TIMED_CAP && spare.len() < SPARE_TIMED {
        v.clear();
        spare.push(v);
    }
}

impl<K: Key, L, R, B> Default for IntervalJoin<K, L, R, B> {
    fn default() -> Self {
        IntervalJoin {
            watermark: i64::MIN,
            buffers: SpillState::default(),
            timers: Timers::default(),
            spare: TimedSpare::default(),
        }
    }
}

impl<K: Key, L: Checkpointable + Clone, R: Checkpointable + Clone, B> Clone
    for IntervalJoin<K, L, R, B>
{
    fn clone(&self) -> Self {
        IntervalJoin {
            watermark: self.watermark,
            buffers: self.buffers.clone(),
            timers: self.timers.clone(),
            spare: TimedSpare::default(),
        }
    }
}

impl<K, L, R, B> PartialEq for IntervalJoin<K, L, R, B>
where
    K: Key,
    L: Checkpointable + Clone + PartialEq,
    R: Checkpointable + Clone + PartialEq,
{
    fn eq(&self, other: &Self) -> bool {
        self.watermark == other.watermark
            && self.buffers == other.buffers
            && self.timers == other.timers
    }
}

impl<K, L, R, B> fmt::Debug for IntervalJoin<K, L, R, B>
where
    K: Key + fmt::Debug,
    L: Checkpointable + Clone + fmt::Debug,
    R: Checkpointable + Clone + fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IntervalJoin")
            .field("watermark", &self.watermark)
            .field("buffers", &self.buffers)
            .field("timers", &self.timers)
            .finish()
    }
}

impl<K: Key, L: Checkpointable + Clone, R: Checkpointable + Clone, B> IntervalJoin<K, L, R, B> {
    /// A left event at `ts`: pairs with buffered right events in `[ts - lower, ts + upper]`,
    /// then is buffered. Returns false (and does nothing) if it is late: some right event
    /// it could match may already have been evicted.
    // Always inlined (both sides): called once per event by the generated push.
    #[inline(always)]
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
        let b = self.buffers.entry_ref(&key);
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
        push(
            &mut b.left,
            Some(Timed { ts, event: v }),
            &mut self.spare.left,
        );
        self.push_timer(ts, key);
        true
    }

    /// A right event at `ts`: pairs with buffered left events at `[ts - upper, ts + lower]`,
    /// then is buffered. Returns false (and does nothing) if it is late.
    #[inline(always)]
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
        let b = self.buffers.entry_ref(&key);
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
        push(
            &mut b.right,
            Some(Timed { ts, event: v }),
            &mut self.spare.right,
        );
        self.push_timer(ts, key);
        true
    }

    /// Arms the eviction timer of an event just buffered under `key`.
    #[inline]
    fn push_timer(&mut self, ts: i64, key: K) {
        self.timers.push(ts, key, self.buffers.last_stamp());
    }

    /// Moves the watermark and evicts events that can no longer match a future event that
    /// is not late: on either side, once `ts + lower + upper < wm`.
    // Always inlined: its one caller is the generated watermark step, run per event, where
    // `lower` and `upper` are constants (LLVM's own choice left it out of line).
    #[inline(always)]
    pub fn advance(&mut self, wm: i64, lower: i64, upper: i64) {
        if wm <= self.watermark {
            return;
        }
        self.watermark = wm;
        let horizon = lower.saturating_add(upper);
        // `ts + horizon >= wm` (saturating) is `ts >= wm - horizon` (saturating) when
        // `horizon >= 0`: one comparison per event.
        let cut = (horizon >= 0).then(|| wm.saturating_sub(horizon));
        let keep = |ts: i64| match cut {
            Some(cut) => ts >= cut,
            None => ts.saturating_add(horizon) >= wm,
        };
        if self.buffers.disk.is_some() {
            self.read_back_expired(&keep);
        }
        self.evict(keep);
    }

    /// Evicts the events whose timers are due (`keep` is false of their time). Events
    /// older than the front may wait behind it: evicting late never changes output
    /// (they cannot match anything that is not late), and the saved queue makes a
    /// restored run evict at the same moments.
    #[inline(always)]
    fn evict(&mut self, keep: impl Fn(i64) -> bool) {
        while let Some(t) = self.timers.front_ts() {
            if keep(t) {
                break;
            }
            let key = self.timers.pop_key().expect("checked non-empty");
            // Events still kept have entries of their own further back.
            let emptied = self.buffers.update_or_remove_untracked(&key, |b| {
                b.left.retain(|l| keep(l.ts));
                b.right.retain(|r| keep(r.ts));
                b.left.is_empty() && b.right.is_empty()
            });
            if let Some(b) = emptied {
                self.spare.keep(b);
            }
        }
    }

    /// With the disk backend, before [`evict`](Self::evict): the keys about to be
    /// evicted, read back in one pass (they are the ones touched longest ago: most are
    /// on disk); and the disk's files dropped if the last eviction left no key there.
    #[cold]
    #[inline(never)]
    fn read_back_expired(&mut self, keep: &impl Fn(i64) -> bool) {
        self.buffers.release_empty_tier();
        if self.buffers.spilled() {
            let expired = self.timers.iter().take_while(|(t, _)| !keep(*t));
            self.buffers.prefetch(expired.map(|(_, k)| k));
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

impl<K: Key, L: Checkpointable + Clone, R: Checkpointable + Clone, B> Checkpointable
    for IntervalJoin<K, L, R, B>
{
    const LAYOUT: u64 = combine(
        // "v2": one timer per event. A checkpoint of the old form (one per key, re-armed)
        // would leave events without a timer here, so it is refused as foreign.
        combine(combine(fnv1a("IntervalJoin v2"), K::LAYOUT), L::LAYOUT),
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
        // 9000 + 2000 < 11001, but its timer is behind 10000's (arrival order): the older
        // event waits (it cannot match anything that is not late, so output is the same).
        j.advance(11_001, lower, upper);
        assert_eq!(j.buffered(), 3);
        j.advance(12_001, lower, upper);
        assert_eq!(j.buffered(), 1, "key 1 evicted, key 2 kept");
        assert!(j.buffers.get(&1).is_none());
    }

    /// The eviction queue is saved as a list of `[time, key]`, whatever it keeps beside.
    #[test]
    fn interval_join_timers_are_saved_as_time_key_pairs() {
        let (lower, upper) = (1_000, 1_000);
        let mut j: IntervalJoin<u32, i64, i64> = IntervalJoin::default();
        let mut pairs = Vec::new();
        j.add_left(10_000, 1, 5, lower, upper, &mut pairs);
        j.add_right(10_500, 2, 6, lower, upper, &mut pairs);
        let v = serde_json::to_value(&j).unwrap();
        assert_eq!(v["timers"], serde_json::json!([[10_000, 1], [10_500, 2]]));
        let back: IntervalJoin<u32, i64, i64> = serde_json::from_value(v).unwrap();
        assert_eq!(back, j);
        assert_eq!(format!("{:?}", back.timers), "[(10000, 1), (10500, 2)]");
    }

    /// Vectors of evicted keys are reused by new keys; they are not state.
    #[test]
    fn interval_join_reuses_vectors_of_evicted_keys_without_changing_state() {
        let (lower, upper) = (1_000, 1_000);
        let mut j: IntervalJoin<u32, i64, i64> = IntervalJoin::default();
        let mut pairs = Vec::new();
        j.add_left(0, 1, 0, lower, upper, &mut pairs);
        j.add_right(500, 1, 1, lower, upper, &mut pairs);
        j.advance(2_501, lower, upper); // 500 + 2000 < 2501: both gone
        assert!(j.buffers.is_empty());
        assert_eq!((j.spare.left.len(), j.spare.right.len()), (1, 1));
        let fresh: IntervalJoin<u32, i64, i64> =
            serde_json::from_str(&serde_json::to_string(&j).unwrap()).unwrap();
        assert_eq!(fresh, j, "spare vectors are not compared");
        assert_eq!(format!("{fresh:?}"), format!("{j:?}"));
        assert_eq!(
            serde_json::to_value(&j).unwrap()["spare"],
            serde_json::Value::Null
        );
        j.add_left(3_000, 2, 2, lower, upper, &mut pairs);
        j.add_right(3_100, 2, 3, lower, upper, &mut pairs);
        assert_eq!((j.spare.left.len(), j.spare.right.len()), (0, 0));
        assert_eq!(
            pairs
                .iter()
                .map(|p| (p.key, p.left, p.right, p.ts))
                .collect::<Vec<_>>(),
            vec![(1, 0, 1, 500), (2, 2, 3, 3_100)]
        );
        assert_eq!(
            j.clone().spare.left.len(),
            0,
            "a clone starts without spares"
        );
    }

    /// Times at and near both ends of `i64`.
    fn extremes() -> Vec<i64> {
        let mut v = vec![0, -1];
        for d in [0, 1, 999, 1_000, 9_999, 10_000, 25_000] {
            v.push(i64::MIN + d);
            v.push(i64::MAX - d);
        }
        v
    }

    #[test]
    fn window_join_at_the_ends_of_time() {
        for ts in extremes() {
            for (size, slide) in [(10_000, 10_000), (10_000, 3_000)] {
                // All windows holding `ts` fit in i64 (computed in i128, which cannot overflow).
                let (t, sz, sl) = (ts as i128, size as i128, slide as i128);
                let newest = t.div_euclid(sl) * sl;
                let oldest = newest - (sz - 1 - (t - newest)).max(0) / sl * sl;
                let fits = oldest >= i64::MIN as i128 && newest + sz <= i64::MAX as i128;
                let n = if fits {
                    ((newest - oldest) / sl + 1) as usize
                } else {
                    0
                };
                let mut j: WindowJoin<u8, i64, i64> = WindowJoin::default();
                assert_eq!(
                    j.add_left_or_late(ts, 1, ts, size, slide, 0).is_some(),
                    !fits,
                    "{ts}"
                );
                assert_eq!(
                    j.add_right_or_late(ts, 1, ts, size, slide, 0).is_some(),
                    !fits
                );
                assert_eq!(j.buffered(), 2 * n, "{ts}");
                let mut fired = Vec::new();
                j.flush(size, 0, &mut fired);
                assert_eq!(fired.len(), n, "{ts}");
                for f in &fired {
                    assert!(
                        f.start < f.end && f.start <= ts && ts < f.end,
                        "{ts}: {f:?}"
                    );
                    assert_eq!(
                        (f.left.as_slice(), f.right.as_slice()),
                        (&[ts][..], &[ts][..])
                    );
                }
            }
        }
    }

    #[test]
    fn interval_join_at_the_ends_of_time() {
        let (lower, upper) = (2_000, 5_000);
        for ts in extremes() {
            let mut j: IntervalJoin<u8, i64, i64> = IntervalJoin::default();
            let mut pairs = Vec::new();
            let other = if ts > 0 { ts - 1_000 } else { ts + 1_000 };
            assert!(j.add_left(ts, 1, ts, lower, upper, &mut pairs));
            assert!(j.add_right(other, 1, other, lower, upper, &mut pairs));
            let (t, o) = (ts as i128, other as i128);
            let matches = o >= t - lower as i128 && o <= t + upper as i128;
            let want: Vec<(i64, i64, i64)> = if matches {
                vec![(ts, other, ts.max(other))]
            } else {
                Vec::new()
            };
            let got: Vec<(i64, i64, i64)> = pairs.iter().map(|p| (p.left, p.right, p.ts)).collect();
            assert_eq!(got, want, "{ts}");
            // Evicted once nothing that is not late can match them (`e + lower + upper <
            // wm`); near the end of time, something still can.
            j.advance(i64::MAX, lower, upper);
            let kept = [t, o]
                .iter()
                .filter(|&&e| e + (lower + upper) as i128 >= i64::MAX as i128)
                .count();
            assert_eq!(j.buffered(), kept, "{ts}");
        }
    }
}

//! Event-time windows: [`Tumbling`] and [`Sliding`] (both [`Windows`]) and [`Session`].
//!
//! Each is pure state (what a checkpoint stores); the window's parameters (size, slide,
//! gap, allowed lateness) come from the pipeline's code on every call, so they are
//! constants in generated code and never stale after a restore.
//!
//! Semantics, shared by all three:
//! - a window `[start, end)` closes when the stage's watermark reaches
//!   `end + allowed_lateness`; it is then emitted once, and its state dropped;
//! - an event is *late* when a window it belongs to has already closed; it is then
//!   reported (the pipeline sends it to the late output) and never silently dropped;
//! - windows close in `(end, key)` order, so output does not depend on hash order.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;

use serde::ser::SerializeStruct;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::aggregate::Accumulator;
use crate::checkpoint::Checkpointable;
use crate::fingerprint::{combine, fnv1a};
use crate::state::{Key, KeyedState};

/// A closed window's result.
#[derive(Debug, Clone, PartialEq)]
pub struct Fired<K, A> {
    /// Inclusive start, ms.
    pub start: i64,
    /// Exclusive end, ms.
    pub end: i64,
    /// The key.
    pub key: K,
    /// The accumulated state.
    pub acc: A,
}

/// Start of the window of `size` that holds `ts` (windows are aligned to the epoch).
///
/// ```
/// assert_eq!(simplestream_runtime::window::align(1_000_123, 1000), 1_000_000);
/// assert_eq!(simplestream_runtime::window::align(-1, 1000), -1000);
/// ```
#[inline]
pub fn align(ts: i64, size: i64) -> i64 {
    ts - ts.rem_euclid(size)
}

/// Windows aligned to the epoch, `[start, start + size)`: tumbling windows (a new one
/// every `size`) and sliding windows (a new one every `slide`) share this state.
///
/// ```
/// use simplestream_runtime::window::Tumbling;
/// let mut w: Tumbling<String, u64> = Tumbling::default();
/// *w.acc_for(1_500, "a".into(), 1_000, 0).unwrap() += 1;
/// let mut fired = Vec::new();
/// w.advance(2_000, 1_000, 0, &mut fired);
/// assert_eq!((fired[0].start, fired[0].end, fired[0].acc), (1_000, 2_000, 1));
/// assert!(w.acc_for(1_999, "a".into(), 1_000, 0).is_none(), "window closed: late");
/// ```
///
/// Open windows are kept sorted by start in a deque rather than a tree: events land in
/// the newest few windows, whose position follows from the start (windows are aligned
/// to the slide), so finding a window costs a subtraction and a division, not a tree
/// search. A new window's table grows from empty: sizing it like the last closed window
/// saved rehashing (2.5 % of q5's instructions) but held two full tables at once where
/// windows overlap (`tumbling_5min`: 106 -> 137 B per key of peak memory). Checkpoints hold a map from start to keyed
/// state, `{"watermark":..,"windows":{"<start>":{..}}}`, as a tree map would give.
pub struct Windows<K: Key, A> {
    /// This stage's watermark: every window ending at or before `watermark - lateness` closed.
    pub watermark: i64,
    /// Open windows, sorted by start.
    open: VecDeque<(i64, KeyedState<K, A>)>,
}

impl<K: Key, A> Default for Windows<K, A> {
    fn default() -> Self {
        Windows {
            watermark: i64::MIN,
            open: VecDeque::new(),
        }
    }
}

impl<K: Key, A: Clone> Clone for Windows<K, A> {
    fn clone(&self) -> Self {
        Windows {
            watermark: self.watermark,
            open: self.open.clone(),
        }
    }
}

impl<K: Key + fmt::Debug, A: fmt::Debug> fmt::Debug for Windows<K, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Windows")
            .field("watermark", &self.watermark)
            .field("windows", &WindowsMap(&self.open))
            .finish()
    }
}

impl<K: Key, A: PartialEq> PartialEq for Windows<K, A> {
    fn eq(&self, other: &Self) -> bool {
        self.watermark == other.watermark && self.open == other.open
    }
}

/// The open windows as a map from start to keyed state (their checkpoint form).
struct WindowsMap<'a, T>(&'a VecDeque<(i64, T)>);

impl<T: Serialize> Serialize for WindowsMap<'_, T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(start, keyed)| (start, keyed)))
    }
}

impl<T: fmt::Debug> fmt::Debug for WindowsMap<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(start, keyed)| (start, keyed)))
            .finish()
    }
}

impl<K: Key, A: Serialize> Serialize for Windows<K, A> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Windows", 2)?;
        st.serialize_field("watermark", &self.watermark)?;
        st.serialize_field("windows", &WindowsMap(&self.open))?;
        st.end()
    }
}

/// What a checkpoint holds (the same fields a tree map of windows gave).
#[derive(Deserialize)]
#[serde(rename = "Windows", bound(deserialize = "K: Key, A: Checkpointable"))]
struct WindowsRepr<K: Key, A> {
    watermark: i64,
    windows: BTreeMap<i64, KeyedState<K, A>>,
}

impl<'de, K: Key, A: Checkpointable> Deserialize<'de> for Windows<K, A> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let r = WindowsRepr::<K, A>::deserialize(d)?;
        Ok(Windows {
            watermark: r.watermark,
            open: r.windows.into_iter().collect(),
        })
    }
}

impl<K: Key, A: Default> Windows<K, A> {
    /// Index of the open window starting at `start`, created (empty) if missing.
    #[inline]
    fn slot(&mut self, start: i64, slide: i64) -> usize {
        let n = self.open.len();
        match self.open.back() {
            Some(&(last, _)) if last == start => n - 1,
            Some(&(last, _)) if last > start => self.slot_before(start, last, slide),
            _ => {
                let keyed = KeyedState::default();
                self.open.push_back((start, keyed));
                n
            }
        }
    }

    /// [`slot`](Self::slot) for a window older than the newest (`last`).
    fn slot_before(&mut self, start: i64, last: i64, slide: i64) -> usize {
        // Windows are aligned to `slide`: without gaps, the position is the distance from
        // the newest in slides (checked; with gaps, a binary search).
        let back = ((last - start) / slide) as usize;
        if back < self.open.len() {
            let i = self.open.len() - 1 - back;
            if self.open[i].0 == start {
                return i;
            }
        }
        match self.open.binary_search_by_key(&start, |w| w.0) {
            Ok(i) => i,
            Err(i) => {
                let keyed = KeyedState::default();
                self.open.insert(i, (start, keyed));
                i
            }
        }
    }

    /// Adds an event to every open window holding `ts`; returns true if some window
    /// holding it had already closed (the event is late for that window).
    // Always inlined: the window parameters are constants at the call site, so that
    // aligning a time is a multiplication rather than a division.
    #[inline(always)]
    pub fn add(
        &mut self,
        ts: i64,
        key: K,
        size: i64,
        slide: i64,
        lateness: i64,
        mut f: impl FnMut(&mut A),
    ) -> bool {
        // Windows [start, start + size) with start <= ts < start + size, aligned to `slide`.
        let newest = align(ts, slide);
        let oldest = newest - (size - 1 - (ts - newest)).max(0) / slide * slide;
        // The closed ones (oldest first) make the event late for them.
        let mut first_open = oldest;
        while first_open <= newest
            && first_open.saturating_add(size).saturating_add(lateness) <= self.watermark
        {
            first_open += slide;
        }
        let late = first_open > oldest;
        if first_open > newest {
            return late;
        }
        // Usually the windows are the newest ones, all open already: the deque's tail.
        let k = ((newest - first_open) / slide) as usize;
        let n = self.open.len();
        if k < n && self.open[n - 1].0 == newest && self.open[n - 1 - k].0 == first_open {
            for (_, keyed) in self.open.range_mut(n - 1 - k..) {
                match keyed.as_map_mut().get_mut(&key) {
                    Some(acc) => f(acc),
                    None => f(keyed.entry(key.clone())),
                }
            }
            return late;
        }
        // Otherwise one search for the oldest window; the others follow it in the deque.
        let mut i = self.slot(first_open, slide);
        let mut start = first_open;
        loop {
            let keyed = &mut self.open[i].1;
            match keyed.as_map_mut().get_mut(&key) {
                Some(acc) => f(acc),
                None => f(keyed.entry(key.clone())),
            }
            start += slide;
            if start > newest {
                break;
            }
            i += 1;
            if i >= self.open.len() || self.open[i].0 != start {
                i = self.slot(start, slide);
            }
        }
        late
    }

    /// The accumulator for `key` in the window holding `ts`, or `None` if that window closed.
    // Always inlined: the window parameters are constants at the call site, so that
    // aligning a time is a multiplication rather than a division.
    #[inline(always)]
    pub fn acc_for(&mut self, ts: i64, key: K, size: i64, lateness: i64) -> Option<&mut A> {
        let start = align(ts, size);
        if start.saturating_add(size).saturating_add(lateness) <= self.watermark {
            return None;
        }
        // Most events fall in the newest window.
        let keyed = if self.open.back().is_some_and(|w| w.0 == start) {
            &mut self.open.back_mut().expect("checked non-empty").1
        } else {
            let i = self.slot(start, size);
            &mut self.open[i].1
        };
        Some(keyed.entry(key))
    }

    /// Sets the watermark to `wm` if that moves it forward; true if it moved. Then call
    /// [`close_next`](Self::close_next) until it returns false.
    #[inline]
    pub fn set_watermark(&mut self, wm: i64) -> bool {
        if wm <= self.watermark {
            return false;
        }
        self.watermark = wm;
        true
    }

    /// Closes the oldest window if the watermark has passed its end plus `lateness`,
    /// appending its rows to `fired` sorted by key; false if no window is due. One window
    /// at a time keeps the rows in flight to one window's worth.
    #[inline]
    pub fn close_next(&mut self, size: i64, lateness: i64, fired: &mut Vec<Fired<K, A>>) -> bool {
        self.close_next_in(size, lateness, true, fired)
    }

    /// [`close_next`](Self::close_next), with the rows sorted by key only if `sorted`:
    /// generated pipelines skip the sort when the rows only feed aggregates whose result
    /// does not depend on their order (see `Aggregate::ORDER_INSENSITIVE`).
    #[inline]
    pub fn close_next_in(
        &mut self,
        size: i64,
        lateness: i64,
        sorted: bool,
        fired: &mut Vec<Fired<K, A>>,
    ) -> bool {
        let Some(&(start, _)) = self.open.front() else {
            return false;
        };
        if start.saturating_add(size).saturating_add(lateness) > self.watermark {
            return false;
        }
        let (_, mut keyed) = self.open.pop_front().expect("checked non-empty");
        let base = fired.len();
        let end = start + size;
        fired.extend(keyed.as_map_mut().drain().map(|(key, acc)| Fired {
            start,
            end,
            key,
            acc,
        }));
        if sorted {
            fired[base..].sort_unstable_by(|a, b| a.key.cmp(&b.key));
        }
        // The emptied map is dropped, not kept for the next window: keeping one held a
        // whole window's table alive (105 -> 137 B per key of peak memory on
        // `tumbling_5min`, 100k keys) and was not faster.
        drop(keyed);
        true
    }

    /// Moves the watermark to `wm`, pushing every window that closes onto `fired`.
    pub fn advance(&mut self, wm: i64, size: i64, lateness: i64, fired: &mut Vec<Fired<K, A>>) {
        if self.set_watermark(wm) {
            while self.close_next(size, lateness, fired) {}
        }
    }

    /// The watermark at which every open window closes (for the end of input).
    pub fn flush_watermark(&self, size: i64, lateness: i64) -> i64 {
        match self.open.back() {
            Some(&(last, _)) => last.saturating_add(size).saturating_add(lateness),
            None => self.watermark,
        }
    }

    /// End of input: closes every window, and keeps them closed for events that come later.
    pub fn flush(&mut self, size: i64, lateness: i64, fired: &mut Vec<Fired<K, A>>) {
        let wm = self.flush_watermark(size, lateness);
        self.advance(wm, size, lateness, fired);
    }

    /// Number of open (window, key) pairs.
    pub fn open_entries(&self) -> usize {
        self.open.iter().map(|(_, k)| k.len()).sum()
    }

    /// The open windows, oldest first: start and keyed state.
    pub fn windows(&self) -> impl Iterator<Item = (i64, &KeyedState<K, A>)> {
        self.open.iter().map(|(start, k)| (*start, k))
    }
}

impl<K: Key, A: Checkpointable> Checkpointable for Windows<K, A> {
    const LAYOUT: u64 = combine(combine(fnv1a("Windows"), K::LAYOUT), A::LAYOUT);
}

/// Tumbling windows: [`Windows`] used with [`acc_for`](Windows::acc_for).
pub type Tumbling<K, A> = Windows<K, A>;

/// Sliding (hopping) windows: [`Windows`] used with [`add`](Windows::add), size `size`, a
/// new one every `slide`.
///
/// ```
/// use simplestream_runtime::window::Sliding;
/// let mut w: Sliding<u32, u64> = Sliding::default();
/// let late = w.add(1_500, 7, 2_000, 1_000, 0, |acc| *acc += 1);
/// assert!(!late);
/// assert_eq!(w.open_entries(), 2, "in [0,2000) and [1000,3000)");
/// ```
pub type Sliding<K, A> = Windows<K, A>;

/// Windows over all events, with no key (`.window(..)` without `key_by` in `pipeline!`):
/// one accumulator per window, found by arithmetic, no hashing. Tumbling and sliding, like
/// [`Windows`], with the same closing and lateness rules.
///
/// ```
/// use simplestream_runtime::window::GlobalWindows;
/// let mut w: GlobalWindows<u64> = GlobalWindows::default();
/// *w.acc_for(1_500, 1_000, 0).unwrap() += 1;
/// *w.acc_for(1_700, 1_000, 0).unwrap() += 1;
/// let mut fired = Vec::new();
/// w.advance(2_000, 1_000, 0, &mut fired);
/// assert_eq!((fired[0].start, fired[0].end, fired[0].acc), (1_000, 2_000, 2));
/// assert!(w.acc_for(1_999, 1_000, 0).is_none(), "window closed: late");
/// ```
///
/// Checkpoints hold `{"watermark":..,"windows":{"<start>":<accumulator>}}`.
#[derive(Clone, PartialEq)]
pub struct GlobalWindows<A> {
    /// This stage's watermark: every window ending at or before `watermark - lateness` closed.
    pub watermark: i64,
    /// Open windows, sorted by start.
    open: VecDeque<(i64, A)>,
}

impl<A> Default for GlobalWindows<A> {
    fn default() -> Self {
        GlobalWindows {
            watermark: i64::MIN,
            open: VecDeque::new(),
        }
    }
}

impl<A: fmt::Debug> fmt::Debug for GlobalWindows<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GlobalWindows")
            .field("watermark", &self.watermark)
            .field("windows", &WindowsMap(&self.open))
            .finish()
    }
}

impl<A: Serialize> Serialize for GlobalWindows<A> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("GlobalWindows", 2)?;
        st.serialize_field("watermark", &self.watermark)?;
        st.serialize_field("windows", &WindowsMap(&self.open))?;
        st.end()
    }
}

/// What a checkpoint of [`GlobalWindows`] holds.
#[derive(Deserialize)]
#[serde(rename = "GlobalWindows", bound(deserialize = "A: Checkpointable"))]
struct GlobalWindowsRepr<A> {
    watermark: i64,
    windows: BTreeMap<i64, A>,
}

impl<'de, A: Checkpointable> Deserialize<'de> for GlobalWindows<A> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let r = GlobalWindowsRepr::<A>::deserialize(d)?;
        Ok(GlobalWindows {
            watermark: r.watermark,
            open: r.windows.into_iter().collect(),
        })
    }
}

impl<A: Default> GlobalWindows<A> {
    /// Index of the open window starting at `start`, created if missing.
    fn slot(&mut self, start: i64, slide: i64) -> usize {
        let n = self.open.len();
        match self.open.back() {
            Some(&(last, _)) if last == start => n - 1,
            Some(&(last, _)) if last > start => {
                let back = ((last - start) / slide) as usize;
                if back < n && self.open[n - 1 - back].0 == start {
                    return n - 1 - back;
                }
                match self.open.binary_search_by_key(&start, |w| w.0) {
                    Ok(i) => i,
                    Err(i) => {
                        self.open.insert(i, (start, A::default()));
                        i
                    }
                }
            }
            _ => {
                self.open.push_back((start, A::default()));
                n
            }
        }
    }

    /// The accumulator of the tumbling window holding `ts`, or `None` if it closed.
    #[inline(always)]
    pub fn acc_for(&mut self, ts: i64, size: i64, lateness: i64) -> Option<&mut A> {
        let start = align(ts, size);
        if start.saturating_add(size).saturating_add(lateness) <= self.watermark {
            return None;
        }
        // Most events fall in the newest window.
        if self.open.back().is_some_and(|w| w.0 == start) {
            return self.open.back_mut().map(|w| &mut w.1);
        }
        let i = self.slot(start, size);
        Some(&mut self.open[i].1)
    }

    /// Adds an event to every open sliding window holding `ts`; true if some window
    /// holding it had already closed (the event is late for that one).
    #[inline(always)]
    pub fn add(
        &mut self,
        ts: i64,
        size: i64,
        slide: i64,
        lateness: i64,
        mut f: impl FnMut(&mut A),
    ) -> bool {
        let newest = align(ts, slide);
        let oldest = newest - (size - 1 - (ts - newest)).max(0) / slide * slide;
        let mut start = oldest;
        while start <= newest
            && start.saturating_add(size).saturating_add(lateness) <= self.watermark
        {
            start += slide;
        }
        let late = start > oldest;
        while start <= newest {
            let i = self.slot(start, slide);
            f(&mut self.open[i].1);
            start += slide;
        }
        late
    }

    /// Sets the watermark to `wm` if that moves it forward; true if it moved.
    #[inline]
    pub fn set_watermark(&mut self, wm: i64) -> bool {
        if wm <= self.watermark {
            return false;
        }
        self.watermark = wm;
        true
    }

    /// Closes the oldest window if the watermark has passed its end plus `lateness`,
    /// appending its result to `fired`; false if no window is due. (`sorted` is there for
    /// the same call as [`Windows::close_next_in`]: one row per window needs no sort.)
    #[inline]
    pub fn close_next_in(
        &mut self,
        size: i64,
        lateness: i64,
        _sorted: bool,
        fired: &mut Vec<Fired<(), A>>,
    ) -> bool {
        match self.open.front() {
            Some(&(start, _))
                if start.saturating_add(size).saturating_add(lateness) <= self.watermark => {}
            _ => return false,
        }
        let (start, acc) = self.open.pop_front().expect("checked non-empty");
        fired.push(Fired {
            start,
            end: start + size,
            key: (),
            acc,
        });
        true
    }

    /// Moves the watermark to `wm`, pushing every window that closes onto `fired`.
    pub fn advance(&mut self, wm: i64, size: i64, lateness: i64, fired: &mut Vec<Fired<(), A>>) {
        if self.set_watermark(wm) {
            while self.close_next_in(size, lateness, true, fired) {}
        }
    }

    /// The watermark at which every open window closes (for the end of input).
    pub fn flush_watermark(&self, size: i64, lateness: i64) -> i64 {
        match self.open.back() {
            Some(&(last, _)) => last.saturating_add(size).saturating_add(lateness),
            None => self.watermark,
        }
    }

    /// Number of open windows.
    pub fn open_entries(&self) -> usize {
        self.open.len()
    }

    /// The open windows, oldest first: start and accumulator.
    pub fn windows(&self) -> impl Iterator<Item = (i64, &A)> {
        self.open.iter().map(|(start, a)| (*start, a))
    }
}

impl<A: Checkpointable> Checkpointable for GlobalWindows<A> {
    const LAYOUT: u64 = combine(fnv1a("GlobalWindows"), A::LAYOUT);
}

/// One open session of a key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionWindow<A> {
    /// Time of the first event.
    pub start: i64,
    /// Time of the last event plus the gap.
    pub end: i64,
    /// The accumulated state.
    pub acc: A,
}

/// Session windows: a key's events closer than `gap` to each other form one session.
///
/// ```
/// use simplestream_runtime::window::Session;
/// let mut w: Session<u32, u64> = Session::default();
/// w.add(1_000, 1, 500, 0, |a| *a += 1);
/// w.add(1_400, 1, 500, 0, |a| *a += 1); // within the gap: same session
/// w.add(5_000, 1, 500, 0, |a| *a += 1); // a new one
/// let mut fired = Vec::new();
/// w.advance(10_000, 0, &mut fired);
/// assert_eq!(fired.iter().map(|f| (f.start, f.end, f.acc)).collect::<Vec<_>>(),
///            vec![(1_000, 1_900, 2), (5_000, 5_500, 1)]);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound(
    serialize = "K: Key, A: Serialize",
    deserialize = "K: Key, A: Checkpointable"
))]
#[serde(from = "SessionRepr<K, A>")]
pub struct Session<K: Key, A> {
    /// This stage's watermark.
    pub watermark: i64,
    /// Open sessions per key, sorted by start, never overlapping.
    pub sessions: KeyedState<K, Vec<SessionWindow<A>>>,
    /// (end, key) of every open session: closes them in order. Rebuilt on restore.
    #[serde(skip)]
    timers: BTreeSet<(i64, K)>,
}

#[derive(Deserialize)]
#[serde(bound(deserialize = "K: Key, A: Checkpointable"))]
struct SessionRepr<K: Key, A> {
    watermark: i64,
    sessions: KeyedState<K, Vec<SessionWindow<A>>>,
}

impl<K: Key, A> From<SessionRepr<K, A>> for Session<K, A> {
    fn from(r: SessionRepr<K, A>) -> Self {
        let mut timers = BTreeSet::new();
        for (k, list) in r.sessions.iter() {
            for s in list {
                timers.insert((s.end, k.clone()));
            }
        }
        Session {
            watermark: r.watermark,
            sessions: r.sessions,
            timers,
        }
    }
}

impl<K: Key, A> Default for Session<K, A> {
    fn default() -> Self {
        Session {
            watermark: i64::MIN,
            sessions: KeyedState::default(),
            timers: BTreeSet::new(),
        }
    }
}

impl<K: Key, A: Accumulator> Session<K, A> {
    /// Adds an event; returns true (and adds nothing) if it is late: its session would
    /// already have closed.
    pub fn add(
        &mut self,
        ts: i64,
        key: K,
        gap: i64,
        lateness: i64,
        f: impl FnOnce(&mut A),
    ) -> bool {
        let end = ts.saturating_add(gap);
        if end.saturating_add(lateness) <= self.watermark {
            return true;
        }
        let list = self.sessions.entry(key.clone());
        let mut merged = SessionWindow {
            start: ts,
            end,
            acc: A::default(),
        };
        f(&mut merged.acc);
        // Pull out every session this one touches ([start, end) intervals overlap).
        let mut i = 0;
        while i < list.len() {
            let s = &list[i];
            if s.start < merged.end && merged.start < s.end {
                let s = list.remove(i);
                self.timers.remove(&(s.end, key.clone()));
                merged.start = merged.start.min(s.start);
                merged.end = merged.end.max(s.end);
                let mut acc = s.acc;
                acc.merge(&merged.acc);
                merged.acc = acc;
            } else {
                i += 1;
            }
        }
        let pos = list.partition_point(|s| s.start < merged.start);
        self.timers.insert((merged.end, key));
        list.insert(pos, merged);
        false
    }

    /// Moves the watermark to `wm`, pushing every session that closes onto `fired`.
    pub fn advance(&mut self, wm: i64, lateness: i64, fired: &mut Vec<Fired<K, A>>) {
        if wm <= self.watermark {
            return;
        }
        self.watermark = wm;
        while let Some((end, _)) = self.timers.first() {
            if end.saturating_add(lateness) > wm {
                break;
            }
            let (end, key) = self.timers.pop_first().expect("checked non-empty");
            let Some(list) = self.sessions.as_map_mut().get_mut(&key) else {
                continue;
            };
            if let Some(pos) = list.iter().position(|s| s.end == end) {
                let s = list.remove(pos);
                if list.is_empty() {
                    self.sessions.remove(&key);
                }
                fired.push(Fired {
                    start: s.start,
                    end: s.end,
                    key,
                    acc: s.acc,
                });
            }
        }
    }

    /// End of input: closes every session.
    pub fn flush(&mut self, lateness: i64, fired: &mut Vec<Fired<K, A>>) {
        if let Some((end, _)) = self.timers.last() {
            let wm = end.saturating_add(lateness);
            self.advance(wm, lateness, fired);
        }
    }

    /// Number of open sessions.
    pub fn open_entries(&self) -> usize {
        self.timers.len()
    }
}

impl<K: Key, A: Checkpointable> Checkpointable for Session<K, A> {
    const LAYOUT: u64 = combine(combine(fnv1a("Session"), K::LAYOUT), A::LAYOUT);
}

impl<A: Checkpointable> Checkpointable for SessionWindow<A> {
    const LAYOUT: u64 = combine(fnv1a("SessionWindow"), A::LAYOUT);
}

impl Accumulator for u64 {
    fn merge(&mut self, other: &Self) {
        *self += *other;
    }
}

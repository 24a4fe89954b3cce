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

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::aggregate::Accumulator;
use crate::checkpoint::Checkpointable;
use crate::delta::History;
use crate::fingerprint::{combine, fnv1a};
use crate::spill::SpillState;
use crate::state::{Key, Natural, Probe, Take};

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

/// The start of the window of `size` holding `ts`, if that window's start and end are
/// both representable in `i64` ms (not for times within `size` of `i64::MIN`/`MAX`).
///
/// ```
/// use simplestream_runtime::window::window_start;
/// assert_eq!(window_start(1_000_123, 1000), Some(1_000_000));
/// assert_eq!(window_start(i64::MAX - 5, 1000), None, "it would end after i64::MAX");
/// assert_eq!(window_start(i64::MIN + 5, 1000), None, "it would start before i64::MIN");
/// ```
#[inline(always)]
pub fn window_start(ts: i64, size: i64) -> Option<i64> {
    let start = ts.checked_sub(ts.rem_euclid(size))?;
    start.checked_add(size)?;
    Some(start)
}

/// Why an event went to the late output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LateReason {
    /// A window it belongs to had already closed.
    Closed,
    /// Its windows cannot be represented: they would start before `i64::MIN` or end
    /// after `i64::MAX` ms.
    OutOfRange,
}

impl LateReason {
    /// True for [`Closed`](Self::Closed) (late records then carry no `reason` field).
    pub fn is_closed(&self) -> bool {
        *self == LateReason::Closed
    }

    /// The reason for a late event at `ts` of windows of `size`, a new one every `slide`
    /// (tumbling: `slide == size`).
    pub fn windowed(ts: i64, size: i64, slide: i64) -> LateReason {
        match span(ts, size, slide, 0, i64::MIN) {
            Some(_) => LateReason::Closed,
            None => LateReason::OutOfRange,
        }
    }

    /// The reason for a late event at `ts` of sessions with `gap`.
    pub fn session(ts: i64, gap: i64) -> LateReason {
        match ts.checked_add(gap) {
            Some(_) => LateReason::Closed,
            None => LateReason::OutOfRange,
        }
    }
}

impl Serialize for LateReason {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(match self {
            LateReason::Closed => "window closed",
            LateReason::OutOfRange => {
                "event time out of range: its windows would start before i64::MIN or end after i64::MAX ms"
            }
        })
    }
}

/// The windows of `size` (a new one every `slide`) holding `ts`, given the watermark:
/// `(first_open, newest, late)`, the starts of the oldest still open and of the newest
/// (no window open when `first_open > newest`), and whether some of them had closed.
/// `None` if they cannot all be represented: the oldest would start before `i64::MIN`,
/// or the newest end (or the start after it) after `i64::MAX`.
#[inline(always)]
pub(crate) fn span(
    ts: i64,
    size: i64,
    slide: i64,
    lateness: i64,
    wm: i64,
) -> Option<(i64, i64, bool)> {
    // Windows [start, start + size) with start <= ts < start + size, aligned to `slide`.
    let newest = ts.checked_sub(ts.rem_euclid(slide))?;
    // Every start stepped to below stays at most `newest + slide`.
    newest.checked_add(size.max(slide))?;
    if size == slide {
        // Tumbling: one window (a constant test where the sizes are constants).
        let closed = newest.saturating_add(size).saturating_add(lateness) <= wm;
        return Some((if closed { newest + slide } else { newest }, newest, closed));
    }
    let oldest = newest.checked_sub((size - 1 - (ts - newest)).max(0) / slide * slide)?;
    // The closed ones are the oldest (a window closes at end + lateness).
    let mut first_open = oldest;
    while first_open <= newest && first_open.saturating_add(size).saturating_add(lateness) <= wm {
        first_open += slide;
    }
    Some((first_open, newest, first_open > oldest))
}

/// Open windows sorted by start, each with its state `T` (keyed accumulators, one
/// accumulator, join buffers): the storage of [`Windows`], [`GlobalWindows`] and
/// [`WindowJoin`](crate::join::WindowJoin).
///
/// A deque rather than a tree: events land in the newest few windows, whose position
/// follows from the start (windows are aligned to the slide), so finding one costs a
/// subtraction and a division, not a tree search. Checkpoints hold a map from start to
/// state, `{"<start>": ..}`, as a tree map would give.
#[derive(Clone, PartialEq)]
pub(crate) struct OpenWindows<T>(VecDeque<(i64, T)>);

impl<T> Default for OpenWindows<T> {
    fn default() -> Self {
        OpenWindows(VecDeque::new())
    }
}

impl<T> std::ops::Deref for OpenWindows<T> {
    type Target = VecDeque<(i64, T)>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl<T> std::ops::DerefMut for OpenWindows<T> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl<T> OpenWindows<T> {
    /// Index of the window starting at `start`, created with `new` if missing.
    #[inline]
    pub(crate) fn slot(&mut self, start: i64, slide: i64, new: impl FnOnce() -> T) -> usize {
        let n = self.0.len();
        match self.0.back() {
            Some(&(last, _)) if last == start => n - 1,
            Some(&(last, _)) if last > start => self.slot_before(start, last, slide, new),
            _ => {
                self.0.push_back((start, new()));
                n
            }
        }
    }

    /// Where the windows holding `ts` begin, when they are the deque's last `size /
    /// slide`, all open: `ts` is in the first slide of the newest window, and the oldest
    /// of them is in place and open at `wm`. None otherwise (or when `slide` does not
    /// divide `size`). Most events of an ordered stream take this test alone, without
    /// aligning `ts` or stepping past closed windows as [`span`] does.
    #[inline(always)]
    pub(crate) fn tail_holding(
        &self,
        ts: i64,
        size: i64,
        slide: i64,
        lateness: i64,
        wm: i64,
    ) -> Option<usize> {
        if size % slide != 0 {
            return None;
        }
        let &(newest, _) = self.0.back()?;
        // `ts - newest` fits in u64 when `ts >= newest`.
        if ts < newest || (ts.wrapping_sub(newest) as u64) >= slide as u64 {
            return None;
        }
        let first = self.0.len().checked_sub((size / slide) as usize)?;
        let oldest = self.0[first].0;
        // Starts are aligned, sorted and distinct: the windows from `first` on are
        // consecutive when the oldest is `size - slide` before the newest (a wrapped
        // difference is above every start, so it matches none).
        if oldest != newest.wrapping_sub(size - slide)
            || oldest.saturating_add(size).saturating_add(lateness) <= wm
        {
            return None;
        }
        Some(first)
    }

    /// [`slot`](Self::slot) for a window older than the newest (`last`).
    fn slot_before(&mut self, start: i64, last: i64, slide: i64, new: impl FnOnce() -> T) -> usize {
        // Aligned to `slide`: without gaps, the position is the distance from the newest
        // in slides (checked; with gaps, a binary search).
        let back =
            usize::try_from((last as i128 - start as i128) / slide as i128).unwrap_or(usize::MAX);
        let n = self.0.len();
        if back < n && self.0[n - 1 - back].0 == start {
            return n - 1 - back;
        }
        match self.0.binary_search_by_key(&start, |w| w.0) {
            Ok(i) => i,
            Err(i) => {
                self.0.insert(i, (start, new()));
                i
            }
        }
    }

    /// Removes the oldest window if the watermark `wm` has passed its end plus `lateness`.
    #[inline]
    pub(crate) fn pop_due(&mut self, size: i64, lateness: i64, wm: i64) -> Option<(i64, T)> {
        match self.0.front() {
            Some(&(start, _)) if start.saturating_add(size).saturating_add(lateness) <= wm => {
                self.0.pop_front()
            }
            _ => None,
        }
    }

    /// The watermark at which every open window has closed (`wm` if none is open).
    pub(crate) fn flush_watermark(&self, size: i64, lateness: i64, wm: i64) -> i64 {
        match self.0.back() {
            Some(&(last, _)) => last.saturating_add(size).saturating_add(lateness),
            None => wm,
        }
    }
}

impl<T: Serialize> Serialize for OpenWindows<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(start, t)| (start, t)))
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for OpenWindows<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let m = BTreeMap::<i64, T>::deserialize(d)?;
        Ok(OpenWindows(m.into_iter().collect()))
    }
}

impl<T: fmt::Debug> fmt::Debug for OpenWindows<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(start, t)| (start, t)))
            .finish()
    }
}

/// A value and the stamp of its last change. Checkpoints hold the value alone; two
/// values compare equal whatever their stamps.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub(crate) struct Stamped<A> {
    pub(crate) value: A,
    #[serde(skip)]
    pub(crate) changed: u64,
}

impl<A: fmt::Debug> fmt::Debug for Stamped<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.value.fmt(f)
    }
}

impl<A: PartialEq> PartialEq for Stamped<A> {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}

/// Windows aligned to the epoch, `[start, start + size)`: tumbling windows (a new one
/// every `size`) and sliding windows (a new one every `slide`) share this state.
///
/// ```
/// use simplestream_runtime::window::Tumbling;
/// let mut w: Tumbling<String, u64> = Tumbling::default();
/// *w.acc_for(1_500, "a", 1_000, 0).unwrap() += 1;
/// let mut fired = Vec::new();
/// w.advance(2_000, 1_000, 0, &mut fired);
/// assert_eq!((fired[0].start, fired[0].end, fired[0].acc), (1_000, 2_000, 1));
/// assert!(w.acc_for(1_999, "a", 1_000, 0).is_none(), "window closed: late");
/// ```
///
/// Open windows are kept sorted by start in a deque, found by arithmetic rather than a
/// tree search (`OpenWindows`, shared with the global windows and the window join). A
/// new window takes the emptied table of a closed one if it was small (at most
/// [`SPARE_CAPACITY`] keys; at most [`SPARE_TABLES`] kept), else grows from empty: keeping
/// large tables held two full tables at once where windows overlap (`tumbling_5min`:
/// 106 -> 137 B per key of peak memory), while small ones cost little memory and save
/// their growth (rehashing and allocation) per window. Checkpoints hold
/// `{"watermark":..,"windows":{"<start>":{..}}}`. `B` aligns the tables' entries (see
/// [`Aligned`](crate::state::Aligned)).
#[derive(Serialize, Deserialize)]
#[serde(bound(
    serialize = "K: Key, A: Checkpointable + Clone",
    deserialize = "K: Key, A: Checkpointable + Clone"
))]
#[serde(from = "WindowsRepr<K, A, B>")]
pub struct Windows<K: Key, A, B = Natural> {
    /// This stage's watermark: every window ending at or before `watermark - lateness` closed.
    pub watermark: i64,
    /// Open windows, sorted by start; each window's table spills to disk with the disk
    /// backend.
    pub(crate) windows: OpenWindows<SpillState<K, A, B>>,
    /// The clock every window's map stamps its changes by (see `KeyedState::follow`).
    #[serde(skip)]
    pub(crate) history: History,
    /// Emptied small tables of closed windows, for new windows (not state).
    #[serde(skip)]
    spare: Spare<SpillState<K, A, B>>,
}

#[derive(Deserialize)]
#[serde(bound(deserialize = "K: Key, A: Checkpointable + Clone"))]
struct WindowsRepr<K: Key, A, B> {
    watermark: i64,
    windows: OpenWindows<SpillState<K, A, B>>,
}

impl<K: Key, A: Checkpointable + Clone, B> From<WindowsRepr<K, A, B>> for Windows<K, A, B> {
    fn from(r: WindowsRepr<K, A, B>) -> Self {
        Windows {
            watermark: r.watermark,
            history: restored_history(&r.windows),
            windows: r.windows,
            spare: Spare::default(),
        }
    }
}

/// The clock of windows just decoded: past every stamp their tables gave the entries
/// read (the disk backend stamps them in order, for eviction), so that none counts as
/// changed since the checkpoint.
pub(crate) fn restored_history<K: Key, V: Checkpointable + Clone, B>(
    windows: &OpenWindows<SpillState<K, V, B>>,
) -> History {
    let mut history = History::default();
    history.clock = windows
        .iter()
        .map(|(_, t)| t.last_stamp())
        .max()
        .unwrap_or(0);
    history
}

impl<K: Key, A: Checkpointable + Clone, B> Clone for Windows<K, A, B> {
    fn clone(&self) -> Self {
        Windows {
            watermark: self.watermark,
            windows: self.windows.clone(),
            history: self.history.clone(),
            spare: Spare::default(),
        }
    }
}

impl<K: Key, A: Checkpointable + Clone + PartialEq, B> PartialEq for Windows<K, A, B> {
    fn eq(&self, other: &Self) -> bool {
        self.watermark == other.watermark && self.windows == other.windows
    }
}

impl<K: Key + fmt::Debug, A: Checkpointable + Clone + fmt::Debug, B> fmt::Debug
    for Windows<K, A, B>
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Windows")
            .field("watermark", &self.watermark)
            .field("windows", &self.windows)
            .finish()
    }
}

/// Largest table (in keys it can hold) a closed window leaves for a new one.
pub const SPARE_CAPACITY: usize = 1 << 14;
/// Emptied tables kept at most.
pub const SPARE_TABLES: usize = 2;

/// Reusable storage beside state: never saved, compared or cloned.
struct Spare<T>(Vec<T>);

impl<T> Default for Spare<T> {
    fn default() -> Self {
        Spare(Vec::new())
    }
}

impl<T> Clone for Spare<T> {
    fn clone(&self) -> Self {
        Spare::default()
    }
}

impl<T> PartialEq for Spare<T> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl<T> fmt::Debug for Spare<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("..")
    }
}

impl<K: Key, A, B> Default for Windows<K, A, B> {
    fn default() -> Self {
        Windows {
            watermark: i64::MIN,
            windows: OpenWindows::default(),
            history: History::default(),
            spare: Spare::default(),
        }
    }
}

impl<K: Key, A: Checkpointable + Clone + Default, B> Windows<K, A, B> {
    /// Adds an event to every open window holding `ts`; returns true if some window
    /// holding it had already closed (the event is late for that window).
    // Always inlined: the window parameters are constants at the call site, so that
    // aligning a time is a multiplication rather than a division.
    #[inline(always)]
    pub fn add<Q>(
        &mut self,
        ts: i64,
        key: &Q,
        size: i64,
        slide: i64,
        lateness: i64,
        mut f: impl FnMut(&mut A),
    ) -> bool
    where
        Q: Probe<K> + ?Sized,
    {
        if let Some(first) = self
            .windows
            .tail_holding(ts, size, slide, lateness, self.watermark)
        {
            for (_, keyed) in self.windows.range_mut(first..) {
                keyed.follow(&mut self.history.clock);
                f(keyed.entry_ref(key));
            }
            return false;
        }
        let Some((first_open, newest, late)) = span(ts, size, slide, lateness, self.watermark)
        else {
            return true;
        };
        if first_open > newest {
            return late;
        }
        // Usually the windows are the newest ones, all open already: the deque's tail.
        let k = ((newest - first_open) / slide) as usize;
        let n = self.windows.len();
        if k < n && self.windows[n - 1].0 == newest && self.windows[n - 1 - k].0 == first_open {
            for (_, keyed) in self.windows.range_mut(n - 1 - k..) {
                keyed.follow(&mut self.history.clock);
                f(keyed.entry_ref(key));
            }
            return late;
        }
        // Otherwise one search for the oldest window; the others follow it in the deque.
        let spare = &mut self.spare.0;
        let mut i = self
            .windows
            .slot(first_open, slide, || spare.pop().unwrap_or_default());
        let mut start = first_open;
        loop {
            let keyed = &mut self.windows[i].1;
            keyed.follow(&mut self.history.clock);
            f(keyed.entry_ref(key));
            start += slide;
            if start > newest {
                break;
            }
            i += 1;
            if i >= self.windows.len() || self.windows[i].0 != start {
                let spare = &mut self.spare.0;
                i = self
                    .windows
                    .slot(start, slide, || spare.pop().unwrap_or_default());
            }
        }
        late
    }

    /// The accumulator for `key` in the window holding `ts`, or `None` if that window closed.
    // Always inlined: the window parameters are constants at the call site, so that
    // aligning a time is a multiplication rather than a division.
    #[inline(always)]
    pub fn acc_for<Q>(&mut self, ts: i64, key: &Q, size: i64, lateness: i64) -> Option<&mut A>
    where
        Q: Probe<K> + ?Sized,
    {
        let keyed = self.window_for(ts, size, lateness)?;
        Some(keyed.entry_ref(key))
    }

    /// [`acc_for`](Self::acc_for) of a key the caller owns and no longer needs: a key new
    /// to the window is moved into its table (see [`KeyedState::entry_taking`](crate::state::KeyedState::entry_taking)); a late
    /// event's key is left as it was.
    #[inline(always)]
    pub fn acc_for_taking<Q: Take<K>>(
        &mut self,
        ts: i64,
        key: &mut Q,
        size: i64,
        lateness: i64,
    ) -> Option<&mut A> {
        let keyed = self.window_for(ts, size, lateness)?;
        Some(keyed.entry_taking(key))
    }

    /// The table of the open window holding `ts`, made ready for one change; `None` if
    /// that window closed.
    #[inline(always)]
    fn window_for(
        &mut self,
        ts: i64,
        size: i64,
        lateness: i64,
    ) -> Option<&mut SpillState<K, A, B>> {
        let start = window_start(ts, size)?;
        if start.saturating_add(size).saturating_add(lateness) <= self.watermark {
            return None;
        }
        // Most events fall in the newest window.
        let keyed = if self.windows.back().is_some_and(|w| w.0 == start) {
            &mut self.windows.back_mut().expect("checked non-empty").1
        } else {
            let spare = &mut self.spare.0;
            let i = self
                .windows
                .slot(start, size, || spare.pop().unwrap_or_default());
            &mut self.windows[i].1
        };
        keyed.follow(&mut self.history.clock);
        Some(keyed)
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
        self.close_next_where(size, lateness, sorted, |_| true, fired)
    }

    /// [`close_next_in`](Self::close_next_in) keeping only the rows whose accumulator
    /// `keep` accepts, dropped before sorting (a window join folding at arrival hands on
    /// only keys with events on both sides, a few of its keys).
    #[inline]
    pub fn close_next_where(
        &mut self,
        size: i64,
        lateness: i64,
        sorted: bool,
        mut keep: impl FnMut(&A) -> bool,
        fired: &mut Vec<Fired<K, A>>,
    ) -> bool {
        let Some((start, mut keyed)) = self.windows.pop_due(size, lateness, self.watermark) else {
            return false;
        };
        let base = fired.len();
        let end = start.saturating_add(size);
        keyed.drain_each(|key, acc| {
            if keep(&acc) {
                fired.push(Fired {
                    start,
                    end,
                    key,
                    acc,
                });
            }
        });
        if sorted {
            crate::state::sort_tail_by_key(fired, base, |f| &f.key);
        }
        if keyed.capacity() <= SPARE_CAPACITY && self.spare.0.len() < SPARE_TABLES {
            self.spare.0.push(keyed);
        }
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
        self.windows.flush_watermark(size, lateness, self.watermark)
    }

    /// End of input: closes every window, and keeps them closed for events that come later.
    pub fn flush(&mut self, size: i64, lateness: i64, fired: &mut Vec<Fired<K, A>>) {
        let wm = self.flush_watermark(size, lateness);
        self.advance(wm, size, lateness, fired);
    }

    /// Number of open (window, key) pairs.
    pub fn open_entries(&self) -> usize {
        self.windows.iter().map(|(_, k)| k.len()).sum()
    }

    /// True when no window is open.
    ///
    /// ```
    /// use simplestream_runtime::window::Tumbling;
    /// let mut w: Tumbling<u32, u64> = Tumbling::default();
    /// assert!(w.is_empty());
    /// *w.acc_for(1_500, &7, 1_000, 0).unwrap() += 1;
    /// assert!(!w.is_empty());
    /// ```
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.windows.is_empty()
    }

    /// The open windows, oldest first: start and keyed state.
    pub fn windows(&self) -> impl Iterator<Item = (i64, &SpillState<K, A, B>)> {
        self.windows.iter().map(|(start, k)| (*start, k))
    }
}

impl<K: Key, A: Checkpointable + Clone, B> Checkpointable for Windows<K, A, B> {
    const LAYOUT: u64 = combine(combine(fnv1a("Windows"), K::LAYOUT), A::LAYOUT);
}

/// Tumbling windows: [`Windows`] used with [`acc_for`](Windows::acc_for).
pub type Tumbling<K, A, B = Natural> = Windows<K, A, B>;

/// Sliding (hopping) windows: [`Windows`] used with [`add`](Windows::add), size `size`, a
/// new one every `slide`.
///
/// ```
/// use simplestream_runtime::window::Sliding;
/// let mut w: Sliding<u32, u64> = Sliding::default();
/// let late = w.add(1_500, &7, 2_000, 1_000, 0, |acc| *acc += 1);
/// assert!(!late);
/// assert_eq!(w.open_entries(), 2, "in [0,2000) and [1000,3000)");
/// ```
pub type Sliding<K, A, B = Natural> = Windows<K, A, B>;

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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound(serialize = "A: Serialize", deserialize = "A: Checkpointable"))]
pub struct GlobalWindows<A> {
    /// This stage's watermark: every window ending at or before `watermark - lateness` closed.
    pub watermark: i64,
    /// Open windows, sorted by start, each stamped with its last change.
    pub(crate) windows: OpenWindows<Stamped<A>>,
    /// The clock the windows are stamped by.
    #[serde(skip)]
    pub(crate) history: History,
}

impl<A> Default for GlobalWindows<A> {
    fn default() -> Self {
        GlobalWindows {
            watermark: i64::MIN,
            windows: OpenWindows::default(),
            history: History::default(),
        }
    }
}

impl<A: Default> GlobalWindows<A> {
    /// The accumulator of the tumbling window holding `ts`, or `None` if it closed.
    #[inline(always)]
    pub fn acc_for(&mut self, ts: i64, size: i64, lateness: i64) -> Option<&mut A> {
        let start = window_start(ts, size)?;
        if start.saturating_add(size).saturating_add(lateness) <= self.watermark {
            return None;
        }
        // Most events fall in the newest window.
        let w = if self.windows.back().is_some_and(|w| w.0 == start) {
            &mut self.windows.back_mut().expect("checked non-empty").1
        } else {
            let i = self.windows.slot(start, size, Stamped::default);
            &mut self.windows[i].1
        };
        w.changed = self.history.tick();
        Some(&mut w.value)
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
        let Some((mut start, newest, late)) = span(ts, size, slide, lateness, self.watermark)
        else {
            return true;
        };
        while start <= newest {
            let i = self.windows.slot(start, slide, Stamped::default);
            let w = &mut self.windows[i].1;
            w.changed = self.history.tick();
            f(&mut w.value);
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
        let Some((start, acc)) = self.windows.pop_due(size, lateness, self.watermark) else {
            return false;
        };
        fired.push(Fired {
            start,
            end: start.saturating_add(size),
            key: (),
            acc: acc.value,
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
        self.windows.flush_watermark(size, lateness, self.watermark)
    }

    /// Number of open windows.
    pub fn open_entries(&self) -> usize {
        self.windows.len()
    }

    /// The open windows, oldest first: start and accumulator.
    pub fn windows(&self) -> impl Iterator<Item = (i64, &A)> {
        self.windows.iter().map(|(start, a)| (*start, &a.value))
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

/// Puts session `s` into a key's `list` (sorted by start, never overlapping), merged with
/// every session it overlaps, as an event bridging them would merge them. For
/// migrations whose converted keys meet: their sessions become one key's.
///
/// ```
/// use simplestream_runtime::window::{merge_session, SessionWindow};
/// let w = |start, end, acc| SessionWindow { start, end, acc };
/// let mut list: Vec<SessionWindow<u64>> = vec![w(0, 10, 1), w(20, 30, 2)];
/// merge_session(&mut list, w(5, 25, 4));
/// merge_session(&mut list, w(40, 50, 8));
/// assert_eq!(list, vec![w(0, 30, 7), w(40, 50, 8)]);
/// ```
pub fn merge_session<A: Accumulator>(list: &mut Vec<SessionWindow<A>>, s: SessionWindow<A>) {
    let mut merged = s;
    list.retain_mut(|x| {
        let overlaps = x.start < merged.end && merged.start < x.end;
        if overlaps {
            merged.start = merged.start.min(x.start);
            merged.end = merged.end.max(x.end);
            merged.acc.merge(&x.acc);
        }
        !overlaps
    });
    let pos = list.partition_point(|x| x.start < merged.start);
    list.insert(pos, merged);
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
#[derive(Serialize, Deserialize)]
#[serde(bound(
    serialize = "K: Key, A: Checkpointable + Clone",
    deserialize = "K: Key, A: Checkpointable + Clone"
))]
#[serde(from = "SessionRepr<K, A>")]
pub struct Session<K: Key, A> {
    /// This stage's watermark.
    pub watermark: i64,
    /// Open sessions per key, sorted by start, never overlapping; they spill to disk with
    /// the disk backend.
    pub sessions: SpillState<K, Vec<SessionWindow<A>>>,
    /// (end, key) of every open session: closes them in order. Rebuilt on restore; always
    /// in memory.
    #[serde(skip)]
    timers: BTreeSet<(i64, K)>,
}

#[derive(Deserialize)]
#[serde(bound(deserialize = "K: Key, A: Checkpointable + Clone"))]
struct SessionRepr<K: Key, A> {
    watermark: i64,
    sessions: SpillState<K, Vec<SessionWindow<A>>>,
}

impl<K: Key, A: Checkpointable + Clone> From<SessionRepr<K, A>> for Session<K, A> {
    fn from(r: SessionRepr<K, A>) -> Self {
        let mut timers = BTreeSet::new();
        for (k, list) in r.sessions.iter() {
            for s in list.iter() {
                timers.insert((s.end, k.clone().into_owned()));
            }
        }
        Session {
            watermark: r.watermark,
            sessions: r.sessions,
            timers,
        }
    }
}

impl<K: Key, A: Checkpointable + Clone> Clone for Session<K, A> {
    fn clone(&self) -> Self {
        Session {
            watermark: self.watermark,
            sessions: self.sessions.clone(),
            timers: self.timers.clone(),
        }
    }
}

impl<K: Key, A: Checkpointable + Clone + PartialEq> PartialEq for Session<K, A> {
    fn eq(&self, other: &Self) -> bool {
        self.watermark == other.watermark && self.sessions == other.sessions
    }
}

impl<K: Key + fmt::Debug, A: Checkpointable + Clone + fmt::Debug> fmt::Debug for Session<K, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("watermark", &self.watermark)
            .field("sessions", &self.sessions)
            .finish()
    }
}

impl<K: Key, A> Default for Session<K, A> {
    fn default() -> Self {
        Session {
            watermark: i64::MIN,
            sessions: SpillState::default(),
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
        let Some(end) = ts.checked_add(gap) else {
            return true;
        };
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
            let Some(list) = self.sessions.get_mut(&key) else {
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
        self.sessions.release_empty_tier();
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

impl<K: Key, A: Checkpointable + Clone> Session<K, A> {
    /// Forgets every timer (before the sessions are replaced).
    pub(crate) fn clear_timers(&mut self) {
        self.timers.clear();
    }

    /// Removes the timers of `key`'s sessions (before they are replaced).
    pub(crate) fn unset_timers(&mut self, key: &K) {
        if let Some(list) = self.sessions.get(key) {
            for s in list.iter() {
                self.timers.remove(&(s.end, key.clone()));
            }
        }
    }

    /// Arms a timer for each of `key`'s sessions.
    pub(crate) fn set_timers(&mut self, key: &K) {
        if let Some(list) = self.sessions.get(key) {
            for s in list.iter() {
                self.timers.insert((s.end, key.clone()));
            }
        }
    }
}

impl<K: Key, A: Checkpointable + Clone> Checkpointable for Session<K, A> {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Tumbling windows of 1 s holding `keys` keys in [0, 1000), closed.
    fn closed_window(keys: u64) -> Tumbling<u64, u64> {
        let mut w: Tumbling<u64, u64> = Tumbling::default();
        for k in 0..keys {
            *w.acc_for(500, &k, 1_000, 0).expect("open") += 1;
        }
        let mut fired = Vec::new();
        w.advance(1_000, 1_000, 0, &mut fired);
        assert_eq!(fired.len() as u64, keys);
        w
    }

    #[test]
    fn a_new_window_takes_a_small_closed_table_and_no_large_one() {
        let mut w = closed_window(100);
        assert_eq!(w.spare.0.len(), 1, "the emptied table is kept");
        *w.acc_for(1_500, &7, 1_000, 0).expect("open") += 1;
        assert!(w.spare.0.is_empty(), "and taken by the next window");
        let (_, table) = w.windows().next().expect("one window");
        assert!(table.capacity() >= 100, "with its capacity");
        let entries: Vec<(u64, u64)> = table.iter().map(|(k, v)| (*k, *v)).collect();
        assert_eq!(entries, vec![(7, 1)], "and nothing else");
        let big = closed_window(SPARE_CAPACITY as u64 + 1);
        assert!(big.spare.0.is_empty(), "a large table is dropped");
    }

    /// Event times at and near both ends of `i64`, and a few ordinary ones.
    fn extremes() -> Vec<i64> {
        let mut v = vec![0, -1, 1_635_739_200_000];
        for d in [
            0, 1, 2, 191, 192, 193, 807, 808, 999, 1_000, 9_999, 10_000, 25_000,
        ] {
            v.push(i64::MIN + d);
            v.push(i64::MAX - d);
        }
        v
    }

    /// Starts of the windows of `size` every `slide` holding `ts`, computed in `i128`
    /// (a reference that cannot overflow), and whether all of them fit in `i64`.
    fn reference(ts: i64, size: i64, slide: i64) -> (Vec<i128>, bool) {
        let (ts, size, slide) = (ts as i128, size as i128, slide as i128);
        let newest = ts.div_euclid(slide) * slide;
        let starts: Vec<i128> = (0..)
            .map(|k| newest - k * slide)
            .take_while(|s| s + size > ts)
            .collect();
        let fits = starts
            .iter()
            .all(|&s| s >= i64::MIN as i128 && s + size <= i64::MAX as i128);
        (starts, fits)
    }

    fn check_fired<K, A>(fired: &[Fired<K, A>], ts: i64, want: &[i128]) {
        let mut got: Vec<i128> = fired.iter().map(|f| f.start as i128).collect();
        got.sort();
        let mut want = want.to_vec();
        want.sort();
        assert_eq!(got, want, "ts {ts}");
        for f in fired {
            assert!(
                f.start < f.end && f.start <= ts && ts < f.end,
                "ts {ts}: [{}, {})",
                f.start,
                f.end
            );
        }
    }

    #[test]
    fn tumbling_windows_at_the_ends_of_time() {
        for ts in extremes() {
            for size in [1, 1_000, 10_000] {
                let (starts, fits) = reference(ts, size, size);
                assert_eq!(
                    window_start(ts, size).is_some(),
                    fits,
                    "ts {ts} size {size}"
                );
                let reason = LateReason::windowed(ts, size, size);
                assert_eq!(reason == LateReason::OutOfRange, !fits, "ts {ts}");
                let mut w: Tumbling<u8, u64> = Tumbling::default();
                let mut g: GlobalWindows<u64> = GlobalWindows::default();
                assert_eq!(w.acc_for(ts, &1, size, 0).map(|a| *a += 1).is_some(), fits);
                assert_eq!(g.acc_for(ts, size, 0).map(|a| *a += 1).is_some(), fits);
                let (mut fired, mut gfired) = (Vec::new(), Vec::new());
                w.flush(size, 0, &mut fired);
                g.advance(g.flush_watermark(size, 0), size, 0, &mut gfired);
                let want = if fits { starts } else { Vec::new() };
                check_fired(&fired, ts, &want);
                check_fired(&gfired, ts, &want);
            }
        }
    }

    #[test]
    fn sliding_windows_at_the_ends_of_time_terminate_and_stay_ordered() {
        for ts in extremes() {
            for (size, slide) in [(10_000, 3_000), (10_000, 10_000), (1_000, 1)] {
                let (starts, fits) = reference(ts, size, slide);
                let reason = LateReason::windowed(ts, size, slide);
                assert_eq!(reason == LateReason::OutOfRange, !fits, "ts {ts}");
                let mut w: Sliding<u8, u64> = Sliding::default();
                let mut g: GlobalWindows<u64> = GlobalWindows::default();
                assert_eq!(w.add(ts, &1, size, slide, 0, |a| *a += 1), !fits, "ts {ts}");
                assert_eq!(g.add(ts, size, slide, 0, |a| *a += 1), !fits, "ts {ts}");
                let (mut fired, mut gfired) = (Vec::new(), Vec::new());
                w.flush(size, 0, &mut fired);
                g.advance(g.flush_watermark(size, 0), size, 0, &mut gfired);
                let want = if fits { starts } else { Vec::new() };
                check_fired(&fired, ts, &want);
                check_fired(&gfired, ts, &want);
            }
        }
    }

    #[test]
    fn windows_far_apart_in_time_share_one_deque() {
        // Starts near both ends open at once: their distance does not fit in i64.
        let mut w: Tumbling<u8, u64> = Tumbling::default();
        for ts in [i64::MAX - 5_000, i64::MIN + 5_000, 0, i64::MIN + 15_000] {
            *w.acc_for(ts, &1, 1_000, 0).unwrap() += 1;
        }
        let mut fired = Vec::new();
        w.flush(1_000, 0, &mut fired);
        let starts: Vec<i64> = fired.iter().map(|f| f.start).collect();
        assert_eq!(starts.len(), 4);
        assert!(starts.windows(2).all(|p| p[0] < p[1]), "{starts:?}");
    }

    #[test]
    fn sessions_at_the_ends_of_time() {
        for ts in extremes() {
            let gap = 4_000;
            let fits = (ts as i128 + gap as i128) <= i64::MAX as i128;
            assert_eq!(
                LateReason::session(ts, gap) == LateReason::OutOfRange,
                !fits
            );
            let mut w: Session<u8, u64> = Session::default();
            assert_eq!(w.add(ts, 1, gap, 0, |a| *a += 1), !fits, "ts {ts}");
            let mut fired = Vec::new();
            w.flush(0, &mut fired);
            assert_eq!(fired.len(), fits as usize, "ts {ts}");
            for f in &fired {
                assert_eq!((f.start, f.end), (ts, ts + gap));
            }
        }
    }

    /// Where `tail_holding` answers, it names the windows `span` finds (all open, none
    /// late); it answers for an event in the newest window's first slide.
    #[test]
    fn the_tail_test_finds_the_windows_span_finds() {
        let (size, slide) = (2_000, 500);
        let mut w: Sliding<u64, u64> = Sliding::default();
        let mut answered = 0;
        // Times stepping forward with some going back, the watermark trailing by 1 s.
        let times = (0..400i64).map(|i| 10_000 + i * 37 - (i % 7) * 300);
        for ts in times {
            for lateness in [0, 700] {
                let wm = w.watermark;
                if let Some(first) = w.windows.tail_holding(ts, size, slide, lateness, wm) {
                    answered += 1;
                    let (first_open, newest, late) =
                        span(ts, size, slide, lateness, wm).expect("in range");
                    assert!(!late, "{ts}");
                    let starts: Vec<i64> = w.windows.range(first..).map(|(s, _)| *s).collect();
                    let want: Vec<i64> = (0..)
                        .map(|j| first_open + j * slide)
                        .take_while(|s| *s <= newest)
                        .collect();
                    assert_eq!(starts, want, "{ts} at {wm}");
                }
            }
            w.add(ts, &1, size, slide, 0, |a| *a += 1);
            let mut fired = Vec::new();
            if w.set_watermark(ts - 1_000) {
                while w.close_next(size, 0, &mut fired) {}
            }
        }
        assert!(
            (1..800).contains(&answered),
            "both paths taken: {answered} of 800"
        );
        // Sizes that slides do not divide, and an empty deque, never take it.
        assert_eq!(
            w.windows.tail_holding(30_000, 2_000, 600, 0, i64::MIN),
            None
        );
        let empty: Sliding<u64, u64> = Sliding::default();
        assert_eq!(
            empty.windows.tail_holding(0, size, slide, 0, i64::MIN),
            None
        );
    }

    #[test]
    fn late_reasons_serialize_for_the_late_output() {
        assert_eq!(
            serde_json::to_string(&LateReason::OutOfRange).unwrap(),
            "\"event time out of range: its windows would start before i64::MIN or end after i64::MAX ms\""
        );
        assert!(LateReason::Closed.is_closed());
    }
}

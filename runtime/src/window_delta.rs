//! Deltas of windowed state ([`Windows`], [`GlobalWindows`], [`WindowJoin`]): the stage's
//! watermark, the starts of the open windows (a window missing from them has closed: the
//! tombstone of a closed window), and in each open window what changed since the version
//! the delta is taken against (every entry of a window opened since).
//!
//! A stage's windows share one clock ([`History`]), so one version orders the changes of
//! all of them: keyed windows stamp per key, global windows per window, a window join per
//! key's buffers.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::checkpoint::Checkpointable;
use crate::codec::{CheckpointError, StageWriter};
use crate::delta::{History, Tracked, Version};
use crate::join::{JoinBuffers, WindowJoin};
use crate::spill::SpillState;
use crate::state::{Key, KeyedState};
use crate::window::{GlobalWindows, OpenWindows, Stamped, Windows};
use crate::Codec;

/// What changed in windows whose state is `T` per window (the decoded delta).
///
/// ```
/// use simplestream_runtime::{Codec, codec::StageWriter, delta::Tracked, window::Tumbling};
/// let mut w: Tumbling<String, u64> = Tumbling::default();
/// *w.acc_for(1_500, "a", 1_000, 0).unwrap() += 1;
/// *w.acc_for(2_500, "a", 1_000, 0).unwrap() += 1;
/// let since = w.version();
/// *w.acc_for(2_700, "b", 1_000, 0).unwrap() += 1;
/// w.advance(2_000, 1_000, 0, &mut Vec::new()); // [1000, 2000) closes
/// let mut out = Vec::new();
/// let mut sw = StageWriter::new(Codec::Json, &mut out);
/// w.write_delta(Some(since), "w", &mut sw).unwrap();
/// sw.finish();
/// assert_eq!(out, br#"{"w":{"reset":false,"watermark":2000,"open":[2000],"changed":{"2000":{"b":1}}}}"#);
/// ```
#[derive(Deserialize)]
#[serde(bound(deserialize = "T: Deserialize<'de>"))]
pub struct WindowsDelta<T> {
    /// The stage starts empty before this delta.
    pub reset: bool,
    /// The stage's watermark.
    pub watermark: i64,
    /// Starts of the open windows; every other window has closed.
    pub open: Vec<i64>,
    /// Per window that changed: its changed entries (keyed) or its value (global).
    pub changed: BTreeMap<i64, T>,
}

/// The view of windows that a delta writes.
#[derive(Serialize)]
struct View<T: Serialize> {
    reset: bool,
    watermark: i64,
    open: Vec<i64>,
    changed: Changed<T>,
}

/// `(start, changes)` pairs, written as a map like a snapshot's windows.
struct Changed<T>(Vec<(i64, T)>);

impl<T: Serialize> Serialize for Changed<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(start, t)| (start, t)))
    }
}

/// Entries, borrowed from memory or read from disk, written as a map.
pub(crate) struct Pairs<'a, K: Clone, V: Clone>(Vec<(Cow<'a, K>, Cow<'a, V>)>);

impl<K: Clone + Serialize, V: Clone + Serialize> Serialize for Pairs<'_, K, V> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (k.as_ref(), v.as_ref())))
    }
}

/// Writes the delta of keyed windows since `since`: whole if a window's table lost
/// track of some changes since.
fn write_keyed<K: Key, V: Checkpointable + Clone, B>(
    windows: &OpenWindows<SpillState<K, V, B>>,
    (watermark, history): (i64, &History),
    since: Option<Version>,
    name: &'static str,
    w: &mut StageWriter<'_>,
) -> Result<(), CheckpointError> {
    let after = history
        .after(since)
        .filter(|a| !windows.iter().any(|(_, t)| t.lost_changes_after(*a)));
    let sorted = w.codec() == Codec::Json;
    let mut changed = Vec::new();
    for (start, table) in windows.iter() {
        let entries = table
            .changed_entries(after, sorted)
            .map_err(|detail| CheckpointError::Encode { detail })?;
        if after.is_none() || !entries.is_empty() {
            changed.push((*start, Pairs(entries)));
        }
    }
    let view = View {
        reset: after.is_none(),
        watermark,
        open: windows.iter().map(|(start, _)| *start).collect(),
        changed: Changed(changed),
    };
    w.field(name, &view)
}

/// Drops the windows that closed and upserts the changed entries, stamped by `clock`.
fn apply_keyed<K: Key, V: Checkpointable + Clone, B>(
    windows: &mut OpenWindows<SpillState<K, V, B>>,
    clock: &mut u64,
    delta: WindowsDelta<KeyedState<K, V>>,
) {
    windows.retain(|(start, _)| delta.open.binary_search(start).is_ok());
    for (start, mut entries) in delta.changed {
        let i = window_at(windows, start);
        let table = &mut windows[i].1;
        for (k, v) in entries.drain() {
            table.follow(clock);
            table.insert(k, v);
        }
    }
}

/// Index of the window starting at `start`, inserted (empty) in order if missing.
fn window_at<T: Default>(windows: &mut OpenWindows<T>, start: i64) -> usize {
    match windows.binary_search_by_key(&start, |w| w.0) {
        Ok(i) => i,
        Err(i) => {
            windows.insert(i, (start, T::default()));
            i
        }
    }
}

impl<K: Key, A: Checkpointable + Clone, B> Tracked for Windows<K, A, B> {
    type Delta = WindowsDelta<KeyedState<K, A>>;

    fn version(&self) -> Version {
        self.history.version()
    }

    fn write_delta(
        &self,
        since: Option<Version>,
        name: &'static str,
        w: &mut StageWriter<'_>,
    ) -> Result<(), CheckpointError> {
        write_keyed(
            &self.windows,
            (self.watermark, &self.history),
            since,
            name,
            w,
        )
    }

    fn apply_delta(&mut self, delta: Self::Delta) {
        if delta.reset {
            *self = Windows::default();
        }
        self.watermark = delta.watermark;
        apply_keyed(&mut self.windows, &mut self.history.clock, delta);
    }
}

impl<K: Key, L: Checkpointable + Clone, R: Checkpointable + Clone> Tracked for WindowJoin<K, L, R> {
    type Delta = WindowsDelta<KeyedState<K, JoinBuffers<L, R>>>;

    fn version(&self) -> Version {
        self.history.version()
    }

    fn write_delta(
        &self,
        since: Option<Version>,
        name: &'static str,
        w: &mut StageWriter<'_>,
    ) -> Result<(), CheckpointError> {
        write_keyed(
            &self.windows,
            (self.watermark, &self.history),
            since,
            name,
            w,
        )
    }

    fn apply_delta(&mut self, delta: Self::Delta) {
        if delta.reset {
            *self = WindowJoin::default();
        }
        self.watermark = delta.watermark;
        apply_keyed(&mut self.windows, &mut self.history.clock, delta);
    }
}

impl<A: Checkpointable> Tracked for GlobalWindows<A> {
    type Delta = WindowsDelta<A>;

    fn version(&self) -> Version {
        self.history.version()
    }

    fn write_delta(
        &self,
        since: Option<Version>,
        name: &'static str,
        w: &mut StageWriter<'_>,
    ) -> Result<(), CheckpointError> {
        let after = self.history.after(since);
        let changed = self
            .windows
            .iter()
            .filter(|(_, a)| after.is_none_or(|after| a.changed > after))
            .map(|(start, a)| (*start, &a.value))
            .collect();
        let view = View {
            reset: after.is_none(),
            watermark: self.watermark,
            open: self.windows.iter().map(|(start, _)| *start).collect(),
            changed: Changed(changed),
        };
        w.field(name, &view)
    }

    fn apply_delta(&mut self, delta: Self::Delta) {
        if delta.reset {
            *self = GlobalWindows::default();
        }
        self.watermark = delta.watermark;
        let open = &delta.open;
        self.windows
            .retain(|(start, _)| open.binary_search(start).is_ok());
        for (start, value) in delta.changed {
            let w = Stamped {
                value,
                changed: self.history.tick(),
            };
            match self.windows.binary_search_by_key(&start, |w| w.0) {
                Ok(i) => self.windows[i].1 = w,
                Err(i) => self.windows.insert(i, (start, w)),
            }
        }
    }
}

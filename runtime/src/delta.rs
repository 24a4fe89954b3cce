//! Change tracking for incremental checkpoints: [`Version`] and the [`Tracked`] trait.
//!
//! A state that tracks changes stamps each entry with the version of its last change
//! (while the entry is already in hand, so the hot path pays an add and a store) and
//! keeps the keys it removed. A delta since version `v` is then a scan for stamps above
//! `v`, not a set maintained per event. Every stateful operator's state does this:
//! [`KeyedState`](crate::KeyedState) and `distinct`'s keys per entry, windows per window
//! and key ([`window_delta`](crate::window_delta)), sessions and the interval join per key
//! ([`timed_delta`](crate::timed_delta)).

use std::sync::atomic::{AtomicU64, Ordering};

use serde::de::DeserializeOwned;

use crate::codec::{CheckpointError, StageWriter};

/// Where a state is in its history of changes.
///
/// `lineage` names one in-memory history: a new, cloned, drained or restored state starts
/// a new one, so a delta is only ever taken against a version of the same history.
///
/// ```
/// use simplestream_runtime::{KeyedState, delta::Tracked};
/// let mut s: KeyedState<String, u64> = KeyedState::default();
/// let before = s.version();
/// *s.entry("C001".into()) += 1;
/// assert_eq!(s.version().lineage, before.lineage);
/// assert!(s.version().changes > before.changes);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Version {
    /// Which history (unique within the process).
    pub lineage: u64,
    /// Changes made in that history so far.
    pub changes: u64,
}

/// A lineage no other state of this process has.
pub fn new_lineage() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// State that can write what changed since a [`Version`] and apply such a delta.
///
/// ```
/// use simplestream_runtime::{KeyedState, Codec, codec::{self, StageWriter}, delta::Tracked};
/// let mut s: KeyedState<String, u64> = KeyedState::default();
/// *s.entry("a".into()) += 1;
/// let since = s.version();
/// *s.entry("b".into()) += 2;
/// let mut out = Vec::new();
/// let mut w = StageWriter::new(Codec::Json, &mut out);
/// s.write_delta(Some(since), "s", &mut w).unwrap();
/// w.finish();
/// assert_eq!(out, br#"{"s":{"reset":false,"upserts":{"b":2},"removed":[]}}"#);
/// ```
pub trait Tracked {
    /// What a delta of this state decodes to.
    type Delta: DeserializeOwned;
    /// The current version.
    fn version(&self) -> Version;
    /// Writes field `name`: what changed since `since`, or everything (marked as a reset)
    /// when `since` is `None` or of another lineage.
    fn write_delta(
        &self,
        since: Option<Version>,
        name: &'static str,
        w: &mut StageWriter<'_>,
    ) -> Result<(), CheckpointError>;
    /// Applies a delta written by [`write_delta`](Self::write_delta).
    fn apply_delta(&mut self, delta: Self::Delta);
}

/// The delta type of state `T`.
pub type DeltaOf<T> = <T as Tracked>::Delta;

/// The history of a state that stamps its own changes: its lineage and a clock that every
/// change moves forward. Not state: a clone, a default and a decoded value each start a
/// history of their own, two histories compare equal, and checkpoints never hold one.
///
/// ```
/// use simplestream_runtime::delta::History;
/// let mut h = History::default();
/// let v = h.version();
/// let stamp = h.tick();
/// assert!(stamp > v.changes);
/// assert_eq!(h.after(Some(v)), Some(v.changes), "a later moment of the same history");
/// assert_eq!(h.clone().after(Some(v)), None, "a clone is another history");
/// ```
pub struct History {
    lineage: u64,
    /// The newest stamp handed out.
    pub clock: u64,
}

impl History {
    /// The next stamp.
    #[inline]
    pub fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    /// Where the history is now.
    pub fn version(&self) -> Version {
        Version {
            lineage: self.lineage,
            changes: self.clock,
        }
    }

    /// The stamp after which changes are newer than `since`, if `since` is an earlier
    /// moment of this history (`None`: a delta must hold everything).
    pub fn after(&self, since: Option<Version>) -> Option<u64> {
        since
            .filter(|v| v.lineage == self.lineage && v.changes <= self.clock)
            .map(|v| v.changes)
    }
}

impl Default for History {
    fn default() -> Self {
        History {
            lineage: new_lineage(),
            clock: 0,
        }
    }
}

impl Clone for History {
    fn clone(&self) -> Self {
        History {
            clock: self.clock,
            ..History::default()
        }
    }
}

impl std::fmt::Debug for History {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("History")
    }
}

impl PartialEq for History {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

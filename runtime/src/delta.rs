//! Change tracking for incremental checkpoints: [`Version`] and the [`Tracked`] trait.
//!
//! A state that tracks changes stamps each entry with the version of its last change
//! (while the entry is already in hand, so the hot path pays an add and a store) and
//! keeps the keys it removed. A delta since version `v` is then a scan for stamps above
//! `v`, not a set maintained per event. States that do not track changes write
//! themselves whole into every delta: still correct, just not smaller.

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

/// [`Tracked`] for states that do not track changes: every delta holds them whole.
macro_rules! whole_state {
    ($ty:ident < $($p:ident),* > where $($bounds:tt)*) => {
        impl<$($p),*> $crate::delta::Tracked for $ty<$($p),*> where $($bounds)* {
            type Delta = Self;
            fn version(&self) -> $crate::delta::Version {
                $crate::delta::Version::default()
            }
            fn write_delta(
                &self,
                _since: Option<$crate::delta::Version>,
                name: &'static str,
                w: &mut $crate::codec::StageWriter<'_>,
            ) -> Result<(), $crate::codec::CheckpointError> {
                w.field(name, self)
            }
            fn apply_delta(&mut self, delta: Self) {
                *self = delta;
            }
        }
    };
}
pub(crate) use whole_state;

//! Deltas of keyed state with timers: [`Session`] windows and the [`IntervalJoin`].
//!
//! Both keep their entries in a [`SpillState`](crate::spill::SpillState) (on disk in
//! part with the disk backend), whose stamps say which keys changed (a session opened,
//! extended or closed; a join buffer added to or evicted from). The delta of its
//! entries is written inside the stage's view through a `Frame`, so that binary deltas
//! still stream from disk. Sessions whose every session closed leave tombstones; their
//! timers are rebuilt for the keys a delta touches. The interval join's eviction queue
//! (first in, first out) is written as how many of the old timers are still queued plus
//! the timers pushed since, and that is its tombstones too: a key goes only when a
//! timer of it is popped, and popping stamps the key if it stays, so a key whose old
//! timer was popped and which the delta does not update has been evicted. The join's
//! hot path keeps no tombstone set this way.

use serde::{Deserialize, Serialize};

use crate::checkpoint::Checkpointable;
use crate::codec::{CheckpointError, StageWriter};
use crate::delta::{Tracked, Version};
use crate::join::{IntervalJoin, JoinBuffers, Timed, Timers};
use crate::spill::Frame;
use crate::state::{Key, KeyedDelta};
use crate::window::{Session, SessionWindow};

/// What changed in a [`Session`] stage (the decoded delta).
#[derive(Deserialize)]
#[serde(bound(deserialize = "K: Key, A: Checkpointable"))]
pub struct SessionDelta<K: Key, A> {
    /// The stage's watermark.
    pub watermark: i64,
    /// Keys whose sessions changed, and keys whose every session closed.
    pub sessions: KeyedDelta<K, Vec<SessionWindow<A>>>,
}

#[derive(Serialize)]
struct SessionView<'a, T: Serialize> {
    watermark: i64,
    sessions: &'a T,
}

/// Writes the sessions' delta beside the watermark.
struct WithWatermark(i64);

impl Frame for WithWatermark {
    fn write<T: Serialize>(
        self,
        delta: &T,
        name: &'static str,
        w: &mut StageWriter<'_>,
    ) -> Result<(), CheckpointError> {
        let view = SessionView {
            watermark: self.0,
            sessions: delta,
        };
        w.field(name, &view)
    }
}

impl<K: Key, A: Checkpointable + Clone> Tracked for Session<K, A> {
    type Delta = SessionDelta<K, A>;

    fn version(&self) -> Version {
        self.sessions.version()
    }

    fn write_delta(
        &self,
        since: Option<Version>,
        name: &'static str,
        w: &mut StageWriter<'_>,
    ) -> Result<(), CheckpointError> {
        self.sessions
            .write_delta_in(since, WithWatermark(self.watermark), name, w)
    }

    fn apply_delta(&mut self, delta: Self::Delta) {
        let d = delta.sessions;
        let touched: Vec<K> = if d.reset {
            self.clear_timers();
            d.upserts.iter().map(|(k, _)| k.clone()).collect()
        } else {
            let keys: Vec<K> = d.upserts.iter().map(|(k, _)| k.clone()).collect();
            for k in d.removed.iter().chain(&keys) {
                self.unset_timers(k);
            }
            keys
        };
        self.sessions.apply_delta(d);
        for k in touched {
            self.set_timers(&k);
        }
        self.watermark = delta.watermark;
    }
}

#[derive(Serialize)]
struct JoinView<'a, T: Serialize, K: Serialize> {
    watermark: i64,
    buffers: &'a T,
    kept: usize,
    timers: Vec<(i64, &'a K)>,
}

/// Writes the buffers' delta with the watermark and the timers pushed since.
struct WithTimers<'a, K> {
    watermark: i64,
    kept: usize,
    timers: &'a Timers<K>,
}

impl<K: Serialize> Frame for WithTimers<'_, K> {
    fn write<T: Serialize>(
        self,
        delta: &T,
        name: &'static str,
        w: &mut StageWriter<'_>,
    ) -> Result<(), CheckpointError> {
        let view = JoinView {
            watermark: self.watermark,
            buffers: delta,
            kept: self.kept,
            timers: self.timers.range(self.kept).collect(),
        };
        w.field(name, &view)
    }
}

/// What changed in an [`IntervalJoin`] (the decoded delta).
#[derive(Deserialize)]
#[serde(bound(deserialize = "K: Key, L: Checkpointable, R: Checkpointable"))]
pub struct IntervalJoinDelta<K: Key, L, R> {
    /// The stage's watermark.
    pub watermark: i64,
    /// Keys whose buffers changed (`removed` is always empty: see `kept`).
    pub buffers: KeyedDelta<K, JoinBuffers<Timed<L>, Timed<R>>>,
    /// How many of the previous timers (the newest ones) are still queued: the keys of
    /// the others that `buffers` does not update were evicted.
    pub kept: usize,
    /// Timers pushed since, oldest first.
    pub timers: Vec<(i64, K)>,
}

impl<K, L, R, B> Tracked for IntervalJoin<K, L, R, B>
where
    K: Key,
    L: Checkpointable + Clone,
    R: Checkpointable + Clone,
{
    type Delta = IntervalJoinDelta<K, L, R>;

    fn version(&self) -> Version {
        self.buffers.version()
    }

    fn write_delta(
        &self,
        since: Option<Version>,
        name: &'static str,
        w: &mut StageWriter<'_>,
    ) -> Result<(), CheckpointError> {
        // Stamps are in push order; timers older than the stamps count as old.
        let new = match self.buffers.delta_after(since) {
            None => self.timers.len(),
            Some(after) => self.timers.pushed_after(after),
        };
        let frame = WithTimers {
            watermark: self.watermark,
            kept: self.timers.len() - new,
            timers: &self.timers,
        };
        self.buffers.write_delta_in(since, frame, name, w)
    }

    fn apply_delta(&mut self, delta: Self::Delta) {
        if delta.buffers.reset {
            self.timers.clear();
        }
        let drop = self.timers.len().saturating_sub(delta.kept);
        for key in self.timers.drain_oldest(drop) {
            if delta.buffers.upserts.get(&key).is_none() {
                self.buffers.remove_untracked(&key);
            }
        }
        // Every timer now is as old as this state's version.
        self.timers.extend_restored(delta.timers);
        self.buffers.apply_delta(delta.buffers);
        self.watermark = delta.watermark;
    }
}

//! What stages other than a running aggregate need of a [`SpillState`]: as one window's
//! table (`window::Windows`), the stage's shared clock, keys moved in, the whole table
//! taken out when the window closes (its files go with it), and the entries changed
//! since a version of the stage, in memory and on disk; as a stage's sessions, the files
//! dropped once every session closed; as the interval join's buffers, removals that
//! leave no tombstone (its eviction queue says what went); as `distinct`'s set, an
//! insert that reads the disk without bringing the key back.

use std::hash::Hash;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::serde_impls::Owned;
use super::{failed, failure, SpillState};
use crate::state::Take;

impl<K, V, B> SpillState<K, V, B>
where
    K: Hash + Eq + Clone + Serialize + DeserializeOwned,
    V: Clone + Serialize + DeserializeOwned,
{
    /// Stamps the next change after `*clock` and moves `*clock` on (see
    /// `KeyedState::follow`): the tables of one stage's windows share one clock.
    #[inline(always)]
    pub(crate) fn follow(&mut self, clock: &mut u64) {
        self.mem.follow(clock);
    }

    /// [`entry_ref`](Self::entry_ref) of a key the caller no longer needs: a key new to
    /// memory is moved in rather than cloned.
    #[inline(always)]
    pub(crate) fn entry_taking<Q: Take<K>>(&mut self, key: &mut Q) -> &mut V
    where
        V: Default,
    {
        if self.disk.is_some() {
            self.bring_in(&*key);
        }
        self.mem.entry_taking(key)
    }

    /// The stamp of memory's latest change.
    #[inline]
    pub(crate) fn last_stamp(&self) -> u64 {
        self.mem.last_stamp()
    }

    /// Number of keys memory's table holds without growing.
    #[inline]
    pub(crate) fn capacity(&self) -> usize {
        self.mem.capacity()
    }

    /// Takes every entry out, the disk's then memory's (in no order), each handed to
    /// `f`, and drops the disk tier with its files. A disk read that fails is recorded
    /// for [`failure`] (the runner then stops before any output) and the disk's entries
    /// end there.
    pub(crate) fn drain_each(&mut self, mut f: impl FnMut(K, V)) {
        if self.on_disk() > 0 {
            // Before memory is drained: the disk's stale copies are told from its keys.
            for r in self.disk_entries() {
                match r {
                    Ok((k, _, v)) => f(k, v),
                    Err(e) => {
                        failure::record(e);
                        break;
                    }
                }
            }
        }
        for (k, v) in self.mem.drain() {
            f(k, v);
        }
        if let Some(d) = self.disk.as_mut() {
            d.tier = None;
        }
    }

    /// Inserts `key` with `V::default()` unless it is in memory or on disk (see
    /// `KeyedState::insert_if_absent`); true if it was inserted. A key found on disk
    /// stays there: a set's entries never change, so bringing one back would only
    /// write it out again.
    #[inline]
    pub(crate) fn insert_if_absent(&mut self, key: K) -> bool
    where
        V: Default,
    {
        if self.disk.is_none() {
            return self.mem.insert_if_absent(key);
        }
        self.insert_if_absent_cold(key)
    }

    #[cold]
    #[inline(never)]
    fn insert_if_absent_cold(&mut self, key: K) -> bool
    where
        V: Default,
    {
        // Memory, then the disk (one lookup each).
        if self.get(&key).is_some() {
            return false;
        }
        if let Err(e) = self.make_room() {
            _ = failed::<()>(&mut self.disk, e);
        }
        self.mem.insert_if_absent(key)
    }

    /// Removes `key` leaving no tombstone in memory (see `KeyedState::remove_untracked`).
    pub(crate) fn remove_untracked(&mut self, key: &K) -> Option<V> {
        if self.disk.is_some() {
            self.bring_in(key);
            self.forget_on_disk(key);
        }
        self.mem.remove_untracked(key)
    }

    /// Changes `key`'s value with `f`, then removes it leaving no tombstone if `f`
    /// returned true (see `KeyedState::update_or_remove_untracked`).
    // Always inlined, as the memory table's own: the interval join's eviction loop.
    #[inline(always)]
    pub(crate) fn update_or_remove_untracked(
        &mut self,
        key: &K,
        f: impl FnOnce(&mut V) -> bool,
    ) -> Option<V> {
        if self.disk.is_some() {
            self.bring_in(key);
        }
        // One call of `f`, so that it is inlined.
        let gone = self.mem.update_or_remove_untracked(key, f);
        if gone.is_some() && self.disk.is_some() {
            self.forget_on_disk(key);
        }
        gone
    }

    /// Drops the disk tier with its files once it holds no key (every key it took is back
    /// in memory or removed, and removals are tracked in memory): a state whose entries
    /// all closed leaves no files behind.
    pub(crate) fn release_empty_tier(&mut self) {
        if self.ahead.is_none() && self.on_disk() == 0 {
            if let Some(d) = self.disk.as_mut() {
                d.tier = None;
            }
        }
    }

    /// Entries changed after stamp `after` (every entry if `None`), in memory and on
    /// disk, sorted by key if `sorted`.
    pub(crate) fn changed_entries(
        &self,
        after: Option<u64>,
        sorted: bool,
    ) -> Result<Owned<'_, K, V>, String>
    where
        K: Ord + 'static,
    {
        let mut v = match after {
            Some(a) => self.changed_after(a)?,
            None => self.all(false)?,
        };
        if sorted {
            v.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        }
        Ok(v)
    }

    /// True if changes stamped after `after` may be missing from
    /// [`changed_entries`](Self::changed_entries): the disk tier dropped its dirty marks
    /// since (they outgrew its keys), so a delta must hold the stage whole.
    pub(crate) fn lost_changes_after(&self, after: u64) -> bool {
        self.disk.as_ref().is_some_and(|d| d.restarted_at > after)
    }
}

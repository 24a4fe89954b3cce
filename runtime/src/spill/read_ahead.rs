//! The keys of the next batch of events read from disk on a thread of their own while
//! this batch's events are processed: the reads, most of a batch's time with most keys
//! on disk, leave the processing thread's path. The next
//! [`prefetch`](SpillState::prefetch) brings what was found into memory; a copy that
//! changed meanwhile (its key taken back by an event, changed and evicted, or removed)
//! is left to its key's own lookup.

use std::hash::Hash;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::prefetch::wanted_of;
use super::tier::Ahead;
use super::{decode, failed, SpillState};
use crate::state::Probe;

/// A lookup ahead under way: its keys (owned, to insert; hashed as memory hashes them),
/// in the order of their events.
pub(crate) struct ReadAhead<K> {
    owned: Vec<Option<K>>,
    hashes: Vec<u64>,
    lookup: Ahead,
}

impl<K, V, B> SpillState<K, V, B>
where
    K: Hash + Eq + Clone + Serialize + DeserializeOwned,
    V: Clone + Serialize + DeserializeOwned,
{
    /// Starts reading those of `keys` (the keys of the events that come after the ones
    /// about to be processed) that are on disk, on a thread of its own; the next
    /// [`prefetch`](Self::prefetch) brings them into memory. Nothing it does changes the
    /// state: a key the events before take back, change or remove meanwhile is looked up
    /// again. Nothing on disk (the memory backend, or a state that fits): it returns at
    /// once.
    ///
    /// ```
    /// use simplestream_runtime::spill::SpillState;
    /// let mut s: SpillState<String, u64> = SpillState::default();
    /// let batches = [["C1", "C2"], ["C1", "C3"]];
    /// s.prefetch(batches[0].iter().copied());
    /// for (n, batch) in batches.iter().enumerate() {
    ///     // The next batch's keys are read while this one's events run.
    ///     if let Some(next) = batches.get(n + 1) {
    ///         s.read_ahead(next.iter().copied());
    ///     }
    ///     for k in batch {
    ///         *s.entry_ref(*k) += 1;
    ///     }
    ///     if let Some(next) = batches.get(n + 1) {
    ///         s.prefetch(next.iter().copied());
    ///     }
    /// }
    /// assert_eq!(s.get(&"C1".to_string()).as_deref(), Some(&2));
    /// ```
    pub fn read_ahead<'a, Q, I>(&mut self, keys: I)
    where
        I: IntoIterator<Item = &'a Q>,
        Q: Probe<K> + ?Sized + 'a,
    {
        if !self.spilled() {
            return;
        }
        if let Err(e) = self.read_ahead_cold(keys) {
            _ = failed::<()>(&mut self.disk, e);
        }
    }

    #[cold]
    #[inline(never)]
    fn read_ahead_cold<'a, Q, I>(&mut self, keys: I) -> Result<(), String>
    where
        I: IntoIterator<Item = &'a Q>,
        Q: Probe<K> + ?Sized + 'a,
    {
        // One read ahead at a time: an earlier one not yet brought in comes in first.
        self.bring_in_read_ahead()?;
        let keys: Vec<&Q> = keys.into_iter().collect();
        let w = wanted_of(&self.mem, &keys, &self.probed(&keys), false)?;
        let Some(tier) = self.disk.as_ref().and_then(|d| d.tier.as_ref()) else {
            return Ok(());
        };
        let lookup = tier.look_up_ahead(w.bytes, w.spans, w.order);
        self.ahead = Some(Box::new(ReadAhead {
            owned: w.owned,
            hashes: w.hashes,
            lookup,
        }));
        Ok(())
    }

    /// Waits for the read ahead under way, if any, and puts the copies it found that are
    /// still their keys' newest into memory (after making room, as
    /// [`prefetch`](Self::prefetch) does; past what the budget allows, the keys of the
    /// earliest events). True when memory may miss keys it was started for (a run was
    /// written since: an eviction took keys that were in memory then), or none was under
    /// way: the caller looks them up.
    pub(super) fn bring_in_read_ahead(&mut self) -> Result<bool, String> {
        let Some(ahead) = self.ahead.take() else {
            return Ok(true);
        };
        let ReadAhead {
            mut owned,
            hashes,
            lookup,
        } = *ahead;
        let Some(tier) = self.disk.as_ref().and_then(|d| d.tier.as_ref()) else {
            return Ok(true);
        };
        let fetched = tier.fetched(lookup)?;
        let key = |i: usize| owned[i].as_ref().expect("distinct keys");
        // Item numbers of the copies found whose keys an event has not brought in since.
        let mut items: Vec<usize> = (fetched.found().enumerate())
            .filter(|&(_, i)| !self.mem.contains_hashed(hashes[i], key(i)))
            .map(|(item, _)| item)
            .collect();
        let (fit, _) = self.room_for(items.len(), |_| ())?;
        if fit < items.len() {
            let index: Vec<usize> = fetched.found().collect();
            items.sort_unstable_by_key(|&item| index[item]);
            items.truncate(fit);
        }
        let SpillState { mem, disk, .. } = self;
        let Some(tier) = disk.as_mut().and_then(|d| d.tier.as_mut()) else {
            return Ok(true);
        };
        let index: Vec<usize> = fetched.found().collect();
        for item in items {
            let i = index[item];
            let Some((stamp, v)) = tier.take_fetched(&fetched, item, |s, v| (s, decode::<V>(v)))?
            else {
                continue;
            };
            let k = owned[i].take().expect("distinct keys");
            mem.put_absent(hashes[i], k, v?, stamp);
        }
        tier.fetched_absent(&fetched);
        Ok(tier.written_since(&fetched))
    }
}

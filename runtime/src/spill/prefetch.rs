//! The keys of a batch of events brought into memory in one pass over the runs, before
//! the events are processed: with most keys on disk, a lookup per event reads a block
//! per event; sorted, the batch reads each block it needs once, and neighbouring blocks
//! in one read.

use std::hash::Hash;

use serde::de::DeserializeOwned;
use serde::Serialize;

#[cfg(feature = "disk")]
use super::key_order::sorted_indexes;
use super::{decode, failed, SpillState, Tier};
use crate::state::{KeyedState, Probe};

/// The keys of a batch not in memory, in event order: owned (to insert), hashed (as
/// memory's table hashes them) and encoded (to find, `bytes[spans[i].0..spans[i].1]`);
/// `order`: the distinct ones, sorted.
pub(super) struct Wanted<K> {
    pub(super) owned: Vec<Option<K>>,
    pub(super) hashes: Vec<u64>,
    pub(super) bytes: Vec<u8>,
    pub(super) spans: Vec<(usize, usize)>,
    pub(super) order: Vec<usize>,
}

impl<K, V, B> SpillState<K, V, B>
where
    K: Hash + Eq + Clone + Serialize + DeserializeOwned,
    V: Clone + Serialize + DeserializeOwned,
{
    /// Brings those of `keys` (the keys of the events about to be processed) that are on
    /// disk into memory in one pass, as the events' own lookups would one at a time:
    /// the state is the same after the events either way. Keys new to the state are
    /// left to their first event. Memory makes room for the batch first (evicting the
    /// entries touched longest ago); a batch larger than the budget allows is cut, and
    /// the rest of it is looked up per event. Nothing on disk (the memory backend, or a
    /// state that fits): it returns at once.
    ///
    /// ```
    /// use simplestream_runtime::spill::SpillState;
    /// let mut s: SpillState<String, u64> = SpillState::default();
    /// let batch = ["C1", "C2", "C1"];
    /// s.prefetch(batch.iter().copied());
    /// for k in batch {
    ///     *s.entry_ref(k) += 1;
    /// }
    /// assert_eq!(s.get(&"C1".to_string()).as_deref(), Some(&2));
    /// ```
    #[inline]
    pub fn prefetch<'a, Q, I>(&mut self, keys: I)
    where
        I: IntoIterator<Item = &'a Q>,
        Q: Probe<K> + ?Sized + 'a,
    {
        if !self.spilled() {
            return;
        }
        if let Err(e) = self.prefetch_cold(keys) {
            _ = failed::<()>(&mut self.disk, e);
        }
    }

    /// True when some keys are on disk: only then has [`prefetch`](Self::prefetch)
    /// anything to do (a caller computing keys for it can skip that otherwise).
    #[inline]
    pub fn spilled(&self) -> bool {
        self.on_disk() > 0
    }

    #[cold]
    #[inline(never)]
    fn prefetch_cold<'a, Q, I>(&mut self, keys: I) -> Result<(), String>
    where
        I: IntoIterator<Item = &'a Q>,
        Q: Probe<K> + ?Sized + 'a,
    {
        // The keys read ahead are in, and memory lost none since.
        if self.ahead.is_some() && !self.bring_in_read_ahead()? {
            return Ok(());
        }
        let keys: Vec<&Q> = keys.into_iter().collect();
        let probed = self.probed(&keys);
        // Room first, for at most this many (a key repeated in the batch counts each
        // time), so that the keys are encoded and sorted once, after the eviction has
        // taken what it takes.
        let cold = probed.iter().filter(|p| !p.1).count();
        let wanted = |mem: &KeyedState<K, V, B>| wanted_of(mem, &keys, &probed, true);
        let (fit, wanted) = self.room_for(cold, wanted)?;
        let Wanted {
            mut owned,
            hashes,
            bytes,
            spans,
            mut order,
        } = match wanted {
            Some(w) => w?,
            None => wanted_of(&self.mem, &keys, &probed, false)?,
        };
        let key_at = |i: usize| &bytes[spans[i].0..spans[i].1];
        if fit == 0 {
            order.clear();
        } else if fit < order.len() {
            // The keys of the earliest events, still in key order.
            let mut firsts = order.clone();
            let last = *firsts.select_nth_unstable(fit - 1).1;
            order.retain(|&i| i <= last);
        }
        let Some(tier) = self.disk.as_mut().and_then(|d| d.tier.as_mut()) else {
            return Ok(());
        };
        let sorted: Vec<&[u8]> = order.iter().map(|&i| key_at(i)).collect();
        let mut got = Vec::new();
        tier.take_sorted(&sorted, |j, stamp, v| {
            got.push((order[j], stamp, decode::<V>(v)?));
            Ok(())
        })?;
        for (i, stamp, v) in got {
            let key = owned[i].take().expect("distinct keys");
            self.mem.put_absent(hashes[i], key, v, stamp);
        }
        Ok(())
    }

    /// How many of `want` new keys memory can take, after evicting if it cannot take
    /// them all. When the table's free slots are what is short (evictions leave
    /// tombstones), memory is emptied to half its slots, which frees them all in place
    /// (the insert path does the same when a table would grow); when bytes are short, a
    /// quarter of the entries go, half at most, as in [`make_room`](Self::make_room).
    /// After an eviction, `then` of memory as it leaves it comes too, called while the
    /// disk tier still merges its runs.
    pub(super) fn room_for<R>(
        &mut self,
        want: usize,
        then: impl FnOnce(&KeyedState<K, V, B>) -> R,
    ) -> Result<(usize, Option<R>), String> {
        let fit = self.room();
        let len = self.mem.len();
        let broken = self.disk.as_ref().is_none_or(|d| d.broken);
        if fit >= want || len < 4 || broken {
            return Ok((fit.min(want), None));
        }
        let keep = self.mem.in_place_limit().saturating_sub(1);
        let target = keep - keep / 16;
        let got = if self.bytes_room() >= want {
            self.evict_then(len.saturating_sub(target), true, then)?
        } else {
            self.evict_then((want - fit).clamp(len / 4, len / 2), false, then)?
        };
        Ok((self.room().min(want), Some(got)))
    }

    /// Each key's hash as memory hashes it, and whether memory holds it: each key hashed
    /// once, and looked up once unless an eviction comes between.
    pub(super) fn probed<Q: Probe<K> + ?Sized>(&self, keys: &[&Q]) -> Vec<(u64, bool)> {
        (keys.iter())
            .map(|&k| {
                let hash = self.mem.hash_of(k);
                (hash, self.mem.contains_hashed(hash, k))
            })
            .collect()
    }

    /// New keys memory can take without growing its table or going over the budget.
    fn room(&self) -> usize {
        let most = self
            .mem
            .capacity()
            .max(self.mem.in_place_limit().saturating_sub(1));
        most.saturating_sub(self.mem.len()).min(self.bytes_room())
    }

    /// New keys the budget has bytes for, were the table's slots free.
    fn bytes_room(&self) -> usize {
        let d = self.disk.as_ref().expect("disk backend");
        let heap = d.budget.heap_per_entry();
        let held = d.tier.as_ref().map_or(0, Tier::memory);
        let bytes = d
            .budget
            .room(self.mem.table_bytes() + self.mem.len() * heap + held);
        bytes / heap.max(1)
    }
}

/// Builds without a disk tier never sort keys (nothing is on disk); the runs' order.
#[cfg(not(feature = "disk"))]
fn sorted_indexes<'a>(n: usize, key: impl Fn(usize) -> &'a [u8]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| key(a).cmp(key(b)));
    order
}

/// Those of `keys` not in `mem`, with each key's hash and whether it was in `mem` in
/// `probed`; `again`: memory changed since, so each is looked up again.
pub(super) fn wanted_of<K, V, B, Q>(
    mem: &KeyedState<K, V, B>,
    keys: &[&Q],
    probed: &[(u64, bool)],
    again: bool,
) -> Result<Wanted<K>, String>
where
    K: Hash + Eq + Serialize,
    Q: Probe<K> + ?Sized,
{
    let (mut owned, mut bytes, mut spans) = (Vec::new(), Vec::new(), Vec::new());
    let mut hashes = Vec::new();
    for (&k, &(hash, in_memory)) in keys.iter().zip(probed) {
        let in_memory = match again {
            true => mem.contains_hashed(hash, k),
            false => in_memory,
        };
        if in_memory {
            continue;
        }
        hashes.push(hash);
        let key = k.to_key();
        let start = bytes.len();
        bytes = postcard::to_extend(&key, bytes).map_err(|e| e.to_string())?;
        spans.push((start, bytes.len()));
        owned.push(Some(key));
    }
    let key_at = |i: usize| &bytes[spans[i].0..spans[i].1];
    // Of equal keys the earliest event's comes first, and stays.
    let mut order = sorted_indexes(owned.len(), key_at);
    order.dedup_by(|a, b| key_at(*a) == key_at(*b));
    Ok(Wanted {
        owned,
        hashes,
        bytes,
        spans,
        order,
    })
}

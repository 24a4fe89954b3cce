//! State larger than memory: [`SpillState`], the keyed state of running aggregates, of
//! each open keyed window or window join, of session windows and of the interval
//! join's buffers, keeps hot keys in memory and the rest in an embedded store on disk
//! (the disk backend).
//!
//! With the memory backend (the default) a `SpillState` is a [`KeyedState`] plus one
//! pointer that is `None`: the hot path pays one never-taken branch. With the disk
//! backend ([`set_state_backend`]) a key missing from memory is looked up on disk and
//! brought back; when the in-memory entries outgrow their share of the budget, the
//! quarter touched longest ago (by their change stamps, which every update already
//! writes) goes to disk in one batch. A key lives in exactly one of the two places.
//!
//! Checkpoints are the source of truth; the working directory is a cache that a restore
//! rebuilds. Deltas hold the changed entries of both tiers: entries evicted while dirty
//! are found through an index ordered by stamp, not by scanning the store.

#[cfg(feature = "disk")]
mod absent;
#[cfg(feature = "disk")]
mod ahead;
mod backend;
mod batch;
#[cfg(feature = "disk")]
mod bloom;
mod budget;
mod delta;
mod failure;
mod heap;
#[cfg(feature = "disk")]
mod key_order;
#[cfg(feature = "disk")]
mod marks;
#[cfg(feature = "disk")]
mod merge;
mod prefetch;
mod read_ahead;
#[cfg(feature = "disk")]
mod run;
mod scratch;
mod serde_impls;
#[cfg(feature = "disk")]
mod superseded;
mod table;
#[cfg(feature = "disk")]
mod tier;
#[cfg(not(feature = "disk"))]
#[path = "no_tier.rs"]
mod tier;

use std::borrow::Cow;
use std::hash::Hash;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::state::{KeyedState, Natural, Probe};
pub(crate) use backend::{checking, disk_config, only_checking};
pub use backend::{parse_size, set_state_backend, state_backend, DiskConfig, StateBackend, MARKER};
use budget::Budget;
pub use failure::failure;
pub(crate) use scratch::Scratch;
pub(crate) use serde_impls::Frame;
use tier::Tier;

/// Keyed state that can spill to disk: the state of a running `key_by ... aggregate`.
/// `B` aligns the in-memory table's entries (see [`Aligned`](crate::state::Aligned)).
///
/// ```
/// use simplestream_runtime::spill::SpillState;
/// let mut s: SpillState<String, u64> = SpillState::default();
/// *s.entry_ref("C001") += 2;
/// *s.entry("C002".to_string()) += 1;
/// assert_eq!(s.get(&"C001".to_string()).as_deref(), Some(&2));
/// assert_eq!(serde_json::to_string(&s).unwrap(), r#"{"C001":2,"C002":1}"#);
/// ```
pub struct SpillState<K, V, B = Natural> {
    pub(crate) mem: KeyedState<K, V, B>,
    pub(crate) disk: Option<Box<Disk>>,
    /// Keys of the next batch being read from disk ([`read_ahead`](Self::read_ahead)).
    ahead: Option<Box<read_ahead::ReadAhead<K>>>,
}

/// The disk side of a [`SpillState`]: the store is opened at the first eviction.
pub(crate) struct Disk {
    config: Arc<DiskConfig>,
    pub(crate) tier: Option<Tier>,
    budget: Budget,
    /// The working directory failed: no store is opened again, memory grows instead.
    broken: bool,
    /// The encoded key of a lookup, reused: a miss allocates nothing for it.
    key_buf: Vec<u8>,
    /// The last change stamp when the tier last dropped its dirty marks (0: never).
    restarted_at: u64,
}

impl<K, V, B> Default for SpillState<K, V, B> {
    fn default() -> Self {
        SpillState {
            mem: KeyedState::default(),
            disk: backend::disk_config().map(|config| {
                Box::new(Disk {
                    budget: Budget::new::<K, V>(config.memory),
                    config,
                    tier: None,
                    broken: false,
                    key_buf: Vec::new(),
                    restarted_at: 0,
                })
            }),
            ahead: None,
        }
    }
}

/// Entries evicted to disk so far in this process (0 without the `disk` feature).
#[cfg(any(feature = "disk", feature = "native"))]
pub(crate) fn evicted() -> u64 {
    #[cfg(feature = "disk")]
    return tier::evicted();
    #[cfg(not(feature = "disk"))]
    0
}

/// A working-directory failure where no error can be returned: recorded for the runner,
/// and the disk tier is dropped (what it held is lost: nothing may be trusted after it).
#[cold]
fn failed<T>(disk: &mut Option<Box<Disk>>, e: String) -> Option<T> {
    match disk.as_mut() {
        Some(d) => {
            failure::record(format!("{e} (in {})", d.config.dir.display()));
            d.tier = None;
            d.broken = true;
        }
        None => failure::record(e),
    }
    None
}

impl<K, V, B> SpillState<K, V, B>
where
    K: Hash + Eq + Clone + Serialize + DeserializeOwned,
    V: Clone + Serialize + DeserializeOwned,
{
    /// The value for a borrowed `key`, created with `V::default()` if missing; the key is
    /// cloned only when it is new to memory.
    ///
    /// ```
    /// use simplestream_runtime::spill::SpillState;
    /// let mut s: SpillState<String, u64> = SpillState::default();
    /// *s.entry_ref("C001") += 1;
    /// *s.entry_ref("C001") += 1;
    /// assert_eq!(s.get(&"C001".to_string()).as_deref(), Some(&2));
    /// ```
    #[inline(always)]
    pub fn entry_ref<Q>(&mut self, key: &Q) -> &mut V
    where
        Q: Probe<K> + ?Sized,
        V: Default,
    {
        if self.disk.is_some() {
            self.bring_in(key);
        }
        self.mem.entry_ref(key)
    }

    /// The value for `key`, created with `V::default()` if missing.
    #[inline]
    pub fn entry(&mut self, key: K) -> &mut V
    where
        V: Default,
    {
        if self.disk.is_some() {
            self.bring_in(&key);
        }
        self.mem.entry(key)
    }

    /// The value for `key`, if any, to change.
    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        if self.disk.is_some() {
            self.bring_in(key);
        }
        self.mem.get_mut(key)
    }

    /// Inserts or replaces the value for `key`.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        if self.disk.is_some() {
            self.bring_in(&key);
        }
        self.mem.insert(key, value)
    }

    /// Removes `key`.
    pub fn remove(&mut self, key: &K) -> Option<V> {
        if self.disk.is_some() {
            self.bring_in(key);
            self.forget_on_disk(key);
        }
        self.mem.remove(key)
    }

    /// Drops the disk's (stale) copy of `key`, if there is a disk tier.
    #[cold]
    #[inline(never)]
    fn forget_on_disk(&mut self, key: &K) {
        if let Some(tier) = self.disk.as_mut().and_then(|d| d.tier.as_mut()) {
            match postcard::to_allocvec(key) {
                Ok(k) => tier.forget(k),
                Err(e) => _ = failed::<()>(&mut self.disk, e.to_string()),
            }
        }
    }

    /// The value for `key`, if any: borrowed from memory or read from disk (a read that
    /// fails is recorded for [`failure`] and gives `None`).
    pub fn get<Q: Probe<K> + Serialize + ?Sized>(&self, key: &Q) -> Option<Cow<'_, V>> {
        if let Some(v) = self.mem.get(key) {
            return Some(Cow::Borrowed(v));
        }
        let tier = self.disk.as_ref()?.tier.as_ref()?;
        let read = || -> Result<Option<V>, String> {
            let k = postcard::to_allocvec(key).map_err(|e| e.to_string())?;
            tier.peek(&k, |_, v| decode(v))?.transpose()
        };
        read()
            .unwrap_or_else(|e| {
                failure::record(e);
                None
            })
            .map(Cow::Owned)
    }

    /// Adds an entry read from a checkpoint (keys there are unique: no lookup on disk).
    pub(crate) fn restore_entry(&mut self, key: K, value: V) -> Result<(), String> {
        if self.disk.is_some() {
            self.make_room()?;
            self.mem.insert(key, value);
        } else {
            // Unchanged since the checkpoint, as a restored `KeyedState`'s entries: the
            // tables of a stage's windows share its clock, which starts over at 0.
            self.mem.put_stamped(key, value, 0);
        }
        Ok(())
    }

    /// Number of keys, in memory and on disk.
    pub fn len(&self) -> usize {
        self.mem.len() + self.on_disk() as usize
    }

    /// True when no key has state.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keys on disk.
    pub fn on_disk(&self) -> u64 {
        self.disk
            .as_ref()
            .and_then(|d| d.tier.as_ref())
            .map_or(0, |t| t.len())
    }

    /// Keys in memory.
    pub fn in_memory(&self) -> usize {
        self.mem.len()
    }

    /// Every entry, memory first then disk, in no particular order. If the working
    /// directory cannot be read, the entries end there and [`failure`] says why.
    pub fn iter(&self) -> impl Iterator<Item = (Cow<'_, K>, Cow<'_, V>)> + '_ {
        let mem = self
            .mem
            .iter()
            .map(|(k, v)| (Cow::Borrowed(k), Cow::Borrowed(v)));
        let disk = self.disk_entries().map_while(|r| match r {
            Ok((k, _, v)) => Some((Cow::Owned(k), Cow::Owned(v))),
            Err(e) => {
                failure::record(e);
                None
            }
        });
        mem.chain(disk)
    }

    /// Entries sorted by key (all of them in memory at once).
    pub fn sorted(&self) -> Vec<(Cow<'_, K>, Cow<'_, V>)>
    where
        K: Ord,
    {
        let mut v: Vec<_> = self.iter().collect();
        v.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Decoded entries of the disk tier (key, stamp, value).
    pub(crate) fn disk_entries(
        &self,
    ) -> Box<dyn Iterator<Item = Result<(K, u64, V), String>> + '_> {
        let Some(tier) = self.disk.as_ref().and_then(|d| d.tier.as_ref()) else {
            return Box::new(std::iter::empty());
        };
        match tier.entries() {
            Err(e) => Box::new(std::iter::once(Err(e))),
            Ok(it) => Box::new(it.filter_map(|r| {
                let entry = || {
                    let (k, stamp, v) = r?;
                    let k: K = decode(&k)?;
                    // A stale copy of a key in memory.
                    if self.mem.contains(&k) {
                        return Ok(None);
                    }
                    Ok(Some((k, stamp, decode(&v)?)))
                };
                entry().transpose()
            })),
        }
    }

    /// Before `key` is used: if it is on disk, brings it back with its stamp; if it is new
    /// to memory and memory is full, makes room first.
    #[cold]
    #[inline(never)]
    fn bring_in<Q>(&mut self, key: &Q)
    where
        Q: Probe<K> + ?Sized,
    {
        if self.mem.contains(key) {
            return;
        }
        if let Err(e) = self.make_room() {
            _ = failed::<()>(&mut self.disk, e);
        }
        let disk = self.disk.as_mut().expect("disk backend");
        let Disk { tier, key_buf, .. } = &mut **disk;
        let Some(tier) = tier.as_mut() else {
            return;
        };
        let owned = key.to_key();
        let mut read = || -> Result<Option<(u64, V)>, String> {
            key_buf.clear();
            *key_buf =
                postcard::to_extend(&owned, std::mem::take(key_buf)).map_err(|e| e.to_string())?;
            tier.take(key_buf, |s, v| decode(v).map(|v| (s, v)))?
                .transpose()
        };
        match read() {
            Ok(Some((stamp, v))) => self.mem.put_stamped(owned, v, stamp),
            Ok(None) => {}
            Err(e) => _ = failed::<()>(&mut self.disk, e),
        }
    }

    /// Before a key new to memory is inserted: if that would put memory over its budget,
    /// moves the entries touched longest ago to disk. That is a quarter of them, or, when
    /// the insert would grow the hash table, enough that it is rehashed in place instead
    /// (below half full): evictions leave tombstones, and a table grown because of them
    /// would stand half empty.
    fn make_room(&mut self) -> Result<(), String> {
        let disk = self.disk.as_mut().expect("disk backend");
        let grows = self.mem.insert_grows();
        let held = disk.tier.as_ref().map_or(0, Tier::memory);
        let table = self.mem.table_bytes() * if grows { 2 } else { 1 };
        let bytes = table + (self.mem.len() + 1) * disk.budget.heap_per_entry() + held;
        if !disk.budget.charge(bytes) || self.mem.len() < 4 || disk.broken {
            return Ok(());
        }
        if disk.tier.is_none() {
            disk.tier = Some(Tier::open(&disk.config)?);
        }
        if !grows {
            return self.evict(self.mem.len() / 4, false);
        }
        // Below the limit by a margin, so that one batch usually does it.
        let keep = self.mem.in_place_limit().saturating_sub(1);
        let target = keep - keep / 16;
        while self.mem.len() > keep {
            self.evict(self.mem.len() - target, false)?;
        }
        Ok(())
    }

    /// Moves about `n` of memory's entries, those touched longest ago, to disk in one
    /// batch (at least one entry). `rebuild`: the table is then left without tombstones
    /// (for an eviction down to at most half the table), so that every free slot can take
    /// a key again without the table growing.
    fn evict(&mut self, n: usize, rebuild: bool) -> Result<(), String> {
        self.evict_then(n, rebuild, |_| ())
    }

    /// [`evict`](Self::evict), and `then` of memory as the eviction leaves it, called
    /// while the disk tier still merges its runs (the second thread's work is the
    /// longer): its result.
    fn evict_then<R>(
        &mut self,
        n: usize,
        rebuild: bool,
        then: impl FnOnce(&KeyedState<K, V, B>) -> R,
    ) -> Result<R, String> {
        let threshold = stamp_at(&self.mem, n);
        let SpillState { mem, disk, .. } = self;
        let disk = disk.as_mut().expect("disk backend");
        let mut batch = disk.budget.batch();
        let tier = disk.tier.as_mut().expect("opened");
        // The batch is gathered while the tier merges its runs.
        let (batch, restart, got) = tier.write_with(|| {
            if rebuild {
                mem.take_stamped_upto_rebuilt(threshold, |k, v, stamp| batch.push(&k, &v, stamp))?;
            } else {
                for (k, v, stamp) in mem.take_stamped_upto(threshold) {
                    batch.push(&k, &v, stamp)?;
                }
            }
            let mem: &KeyedState<K, V, B> = mem;
            Ok((batch, move || then(mem)))
        })?;
        disk.budget.measured(&batch);
        let heap = self.mem.len() * disk.budget.heap_per_entry();
        let held = heap + tier.memory();
        // Still over: the table is too large for the entries the budget leaves room for
        // (the runs' filters grow with the keys on disk); shrunk once it is at most half
        // full, it halves.
        if disk.budget.charge(self.mem.table_bytes() + held) {
            self.mem.shrink_to_fit();
            disk.budget.charge(self.mem.table_bytes() + held);
        }
        if restart {
            self.mem.restart_history();
            disk.restarted_at = self.mem.last_stamp();
        }
        Ok(got)
    }
}

/// The stamp at or below which about `n` of `mem`'s entries are (at least the oldest),
/// from a sample (a hash map's order has nothing to do with the stamps).
fn stamp_at<K: Hash + Eq, V, B>(mem: &KeyedState<K, V, B>, n: usize) -> u64 {
    let step = (mem.len() / 4096).max(1);
    let mut sample: Vec<u64> = mem.stamps().step_by(step).collect();
    let at = (sample.len() * n / mem.len().max(1)).min(sample.len() - 1);
    *sample.select_nth_unstable(at).1
}

fn decode<T: DeserializeOwned>(b: &[u8]) -> Result<T, String> {
    postcard::from_bytes(b)
        .map_err(|e| format!("state working directory: an entry does not decode: {e}"))
}

#[cfg(all(test, feature = "disk"))]
pub(crate) mod tests;

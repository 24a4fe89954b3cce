//! [`KeyedState`]: per-key state on a fast hasher with random seeds.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::checkpoint::Checkpointable;
use crate::codec::raw;
use crate::codec::{CheckpointError, StageWriter};
use crate::delta::{new_lineage, Tracked, Version};
use crate::fingerprint::{combine, fnv1a};
use bucket::Entry;
pub use bucket::{line_align, Align, AlignTo, Aligned, Line32, Line64, Natural, PickAlign};
use hashbrown::hash_table::{self, HashTable};

mod bucket;
pub(crate) mod key_order;
mod key_str;
mod probe;
mod sorted_json;

pub use key_str::KeyStr;
pub use probe::{Probe, Take};

/// The hasher of all keyed state: foldhash, seeded at random per map, so keys taken from
/// untrusted input cannot be chosen to collide (hash flooding), at a cost close to FxHash.
pub type FastHasher = foldhash::fast::RandomState;

/// A hash map on [`FastHasher`].
pub type FastMap<K, V> = HashMap<K, V, FastHasher>;

/// What a key must be: hashable, ordered (for deterministic output), clonable, storable.
pub trait Key: Hash + Eq + Ord + Clone + Checkpointable + 'static {}
impl<T: Hash + Eq + Ord + Clone + Checkpointable + 'static> Key for T {}

/// Per-key state.
///
/// In human-readable formats (the JSON codec) entries are written sorted by key, so the
/// same state always gives the same bytes; binary formats skip the sort.
///
/// Every change is tracked for incremental checkpoints (see [`Tracked`]): each entry
/// keeps the version of its last change and removed keys are remembered, so what
/// changed since a checkpoint is found by a scan rather than kept per event.
///
/// `B` aligns the table's entries (see [`Aligned`]); it changes nothing but where
/// they sit in memory.
///
/// ```
/// use simplestream_runtime::KeyedState;
/// let mut s: KeyedState<String, u64> = KeyedState::default();
/// *s.entry("C002".to_string()) += 1;
/// *s.entry("C001".to_string()) += 25;
/// assert_eq!(serde_json::to_string(&s).unwrap(), r#"{"C001":25,"C002":1}"#);
/// ```
pub struct KeyedState<K, V, B = Natural> {
    /// One entry per key: a borrowed key is looked up once and cloned only when it is
    /// inserted.
    table: HashTable<Entry<K, V, B>>,
    hasher: FastHasher,
    /// Changes so far; an entry's `changed` is this count when it last changed.
    changes: u64,
    lineage: u64,
    /// Keys removed (and not inserted again since), with the count at removal.
    removed: FastMap<K, u64>,
}

/// Tombstones kept beyond the number of live keys before a history starts over.
const MAX_EXTRA_TOMBSTONES: usize = 1 << 12;

impl<K, V, B> Default for KeyedState<K, V, B> {
    fn default() -> Self {
        KeyedState {
            table: HashTable::new(),
            hasher: FastHasher::default(),
            changes: 0,
            lineage: new_lineage(),
            removed: FastMap::default(),
        }
    }
}

/// A clone starts a history of its own: a delta of the clone is never taken against a
/// version of the original.
impl<K: Clone, V: Clone, B> Clone for KeyedState<K, V, B> {
    fn clone(&self) -> Self {
        KeyedState {
            table: self.table.clone(),
            hasher: self.hasher,
            changes: self.changes,
            lineage: new_lineage(),
            removed: self.removed.clone(),
        }
    }
}

/// The hash of an entry's key, for a table that grows.
#[inline(always)]
fn rehash<K: Hash, V, B>(hasher: &FastHasher) -> impl Fn(&Entry<K, V, B>) -> u64 + '_ {
    move |e| hasher.hash_one(&e.key)
}

impl<K: Hash + Eq, V, B> KeyedState<K, V, B> {
    /// The value for `key`, created with `V::default()` if missing.
    #[inline]
    pub fn entry(&mut self, key: K) -> &mut V
    where
        V: Default,
    {
        self.changes += 1;
        let changed = self.changes;
        let hash = self.hasher.hash_one(&key);
        let e = match self.table.find_entry(hash, |e| e.key == key) {
            Ok(o) => o.into_mut(),
            Err(absent) => {
                if !self.removed.is_empty() {
                    self.removed.remove(&key);
                }
                let e = Entry::new(key, V::default(), changed);
                let table = absent.into_table();
                table
                    .insert_unique(hash, e, rehash(&self.hasher))
                    .into_mut()
            }
        };
        e.changed = changed;
        &mut e.value
    }

    /// Inserts `key` with `V::default()` if it is missing (a change, stamped); a key
    /// already there is left as it is, unstamped (a set's insert: `distinct`). True if
    /// it was inserted.
    #[inline]
    pub(crate) fn insert_if_absent(&mut self, key: K) -> bool
    where
        V: Default,
    {
        let hash = self.hasher.hash_one(&key);
        let Err(absent) = self.table.find_entry(hash, |e| e.key == key) else {
            return false;
        };
        self.changes += 1;
        if !self.removed.is_empty() {
            self.removed.remove(&key);
        }
        let e = Entry::new(key, V::default(), self.changes);
        absent
            .into_table()
            .insert_unique(hash, e, rehash(&self.hasher));
        true
    }

    /// The value for a borrowed `key`, created with `V::default()` if missing: one
    /// lookup, and the key is cloned only when it is inserted.
    ///
    /// ```
    /// use simplestream_runtime::KeyedState;
    /// let mut s: KeyedState<String, u64> = KeyedState::default();
    /// *s.entry_ref("C001") += 1;
    /// *s.entry_ref("C001") += 1;
    /// assert_eq!(s.get(&"C001".to_string()), Some(&2));
    /// ```
    // Always inlined, with the insertion out of line: the lookup is then a few
    // instructions in the caller's loop, as a hand-written `get_mut` is.
    #[inline(always)]
    pub fn entry_ref<Q>(&mut self, key: &Q) -> &mut V
    where
        Q: Probe<K> + ?Sized,
        V: Default,
    {
        self.changes += 1;
        let changed = self.changes;
        let hash = self.hasher.hash_one(key);
        let e = match self.table.find_entry(hash, |e| key.matches(&e.key)) {
            Ok(o) => o.into_mut(),
            // Cloned here, not in the insert: a key passed by reference would have
            // to be in memory, a store on every lookup.
            Err(absent) => {
                let table = absent.into_table();
                insert_new(table, &self.hasher, &mut self.removed, hash, key.to_key())
            }
        };
        e.changed = changed;
        &mut e.value
    }

    /// [`entry_ref`](Self::entry_ref) of a key the caller owns and no longer needs: a
    /// new key is moved into the table (`*key` is left empty) instead of cloned.
    ///
    /// ```
    /// use simplestream_runtime::KeyedState;
    /// let mut s: KeyedState<String, u64> = KeyedState::default();
    /// let (mut a, mut b) = ("C001".to_string(), "C001".to_string());
    /// *s.entry_taking(&mut a) += 1;
    /// *s.entry_taking(&mut b) += 1;
    /// assert_eq!((a.as_str(), b.as_str()), ("", "C001"), "taken only when new");
    /// assert_eq!(s.get(&"C001".to_string()), Some(&2));
    /// ```
    #[inline(always)]
    pub fn entry_taking<Q>(&mut self, key: &mut Q) -> &mut V
    where
        Q: Take<K>,
        V: Default,
    {
        self.changes += 1;
        let changed = self.changes;
        let hash = self.hasher.hash_one(&*key);
        let e = match self.table.find_entry(hash, |e| key.matches(&e.key)) {
            Ok(o) => o.into_mut(),
            Err(absent) => {
                let table = absent.into_table();
                insert_taken(table, &self.hasher, &mut self.removed, hash, key)
            }
        };
        e.changed = changed;
        &mut e.value
    }

    /// The entry of `key`, if any.
    #[inline]
    fn find<Q>(&self, key: &Q) -> Option<&Entry<K, V, B>>
    where
        Q: Probe<K> + ?Sized,
    {
        self.find_hashed(self.hasher.hash_one(key), key)
    }

    /// [`find`](Self::find) of a key whose hash is `hash`.
    #[inline]
    fn find_hashed<Q>(&self, hash: u64, key: &Q) -> Option<&Entry<K, V, B>>
    where
        Q: Probe<K> + ?Sized,
    {
        self.table.find(hash, |e| key.matches(&e.key))
    }

    /// The table's entry of `key`, if any, to change or remove.
    #[inline]
    fn find_entry(&mut self, key: &K) -> Option<hash_table::OccupiedEntry<'_, Entry<K, V, B>>> {
        let hash = self.hasher.hash_one(key);
        self.table.find_entry(hash, |e| e.key == *key).ok()
    }

    /// The value for `key`, if any.
    #[inline]
    pub fn get<Q: Probe<K> + ?Sized>(&self, key: &Q) -> Option<&V> {
        self.find(key).map(|e| &e.value)
    }

    /// The value for `key`, if any, to change.
    #[inline]
    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        let hash = self.hasher.hash_one(key);
        let e = self.table.find_mut(hash, |e| e.key == *key)?;
        self.changes += 1;
        e.changed = self.changes;
        Some(&mut e.value)
    }

    /// Inserts or replaces the value for `key`.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        self.changes += 1;
        if !self.removed.is_empty() {
            self.removed.remove(&key);
        }
        self.put(key, value, self.changes)
    }

    /// Removes `key`.
    pub fn remove(&mut self, key: &K) -> Option<V> {
        let (e, _) = self.find_entry(key)?.remove();
        self.changes += 1;
        if self.removed.len() > self.table.len() + MAX_EXTRA_TOMBSTONES {
            // Keys that come and go (join buffers) would keep tombstones forever: past
            // this bound the history starts over, and the next delta is whole.
            self.removed.clear();
            self.lineage = new_lineage();
        }
        self.removed.insert(e.key, self.changes);
        Some(e.value)
    }

    /// Removes `key` keeping no tombstone, so a delta of this state would miss the
    /// removal: for states whose deltas say what went some other way (the interval
    /// join's eviction queue), whose keys come and go all the time.
    pub(crate) fn remove_untracked(&mut self, key: &K) -> Option<V> {
        Some(self.find_entry(key)?.remove().0.value)
    }

    /// Changes the value of `key`, if any, with `f` (a change, stamped), then removes it
    /// keeping no tombstone (as [`remove_untracked`](Self::remove_untracked)) if `f`
    /// returned true: one lookup for both. The removed value is returned.
    #[inline(always)]
    pub(crate) fn update_or_remove_untracked(
        &mut self,
        key: &K,
        f: impl FnOnce(&mut V) -> bool,
    ) -> Option<V> {
        let changed = self.changes + 1;
        let mut o = self.find_entry(key)?;
        let e = o.get_mut();
        e.changed = changed;
        let gone = f(&mut e.value).then(|| o.remove().0.value);
        self.changes = changed;
        gone
    }

    /// Makes the next change stamp after `*clock`, and sets `*clock` to that stamp: the
    /// maps of one stage's windows share one clock this way, so that one version of the
    /// stage orders the changes of all of them. Call it before each single change.
    #[inline]
    pub(crate) fn follow(&mut self, clock: &mut u64) {
        self.changes = self.changes.max(*clock);
        *clock = self.changes + 1;
    }

    /// The stamp of the latest change.
    #[inline]
    pub(crate) fn last_stamp(&self) -> u64 {
        self.changes
    }

    /// Entries whose last change is stamped after `after`, sorted by key if `sorted`.
    pub(crate) fn changed_after(&self, after: u64, sorted: bool) -> Vec<(&K, &V)>
    where
        K: Ord + 'static,
    {
        let mut v: Vec<(&K, &V)> = self.changed_since(after).collect();
        if sorted {
            sort_entries(&mut v);
        }
        v
    }

    /// Entries changed after stamp `after`, in hash order, one at a time.
    pub(crate) fn changed_since(&self, after: u64) -> impl Iterator<Item = (&K, &V)> + '_ {
        self.table
            .iter()
            .filter(move |e| e.changed > after)
            .map(|e| (&e.key, &e.value))
    }

    /// Takes every entry out, in hash order. The history starts over: the next delta of
    /// this state holds it whole.
    pub fn drain(&mut self) -> impl Iterator<Item = (K, V)> + '_ {
        self.lineage = new_lineage();
        self.removed.clear();
        self.table.drain().map(|e| (e.key, e.value))
    }

    /// Number of keys it can hold without growing.
    pub fn capacity(&self) -> usize {
        self.table.capacity()
    }

    /// Bytes of the hash table's allocation: its slots and control bytes, not what keys
    /// and values own on the heap.
    pub(crate) fn table_bytes(&self) -> usize {
        self.table.allocation_size()
    }

    /// Live entries below which a table out of room is rehashed in place by the next
    /// insert instead of grown (hashbrown's rule: at most half its usable slots).
    pub(crate) fn in_place_limit(&self) -> usize {
        let slot = std::mem::size_of::<Entry<K, V, B>>() + 1;
        let approx = self.table_bytes() / slot;
        if approx == 0 {
            return 0;
        }
        // The allocation is the slots and one control byte each, plus under 32 bytes
        // (and the padding to an entry's alignment).
        let buckets = 1usize << approx.ilog2();
        let usable = if buckets <= 8 {
            buckets - 1
        } else {
            buckets / 8 * 7
        };
        usable / 2
    }

    /// Gives back the table's room beyond its entries, if that frees at least half.
    pub(crate) fn shrink_to_fit(&mut self) {
        self.table.shrink_to_fit(rehash(&self.hasher));
    }

    /// Whether inserting a key new to the table allocates a larger table: no free slot
    /// is left (removed entries leave tombstones that keep theirs) and at least
    /// [`in_place_limit`](Self::in_place_limit) entries are live.
    pub(crate) fn insert_grows(&self) -> bool {
        self.table.len() >= self.table.capacity() && self.table.len() >= self.in_place_limit()
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// True when no key has state.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Iterates in hash order (not deterministic; see [`sorted`](Self::sorted)).
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&K, &V)> {
        self.table.iter().map(|e| (&e.key, &e.value))
    }

    /// Entries sorted by key.
    pub fn sorted(&self) -> Vec<(&K, &V)>
    where
        K: Ord + 'static,
    {
        let mut v: Vec<_> = self.iter().collect();
        sort_entries(&mut v);
        v
    }
}

/// What the disk tier ([`crate::spill`]) needs: slots taken out and put back with their
/// change stamps, untracked, so that moving an entry between memory and disk is no change.
impl<K: Hash + Eq, V, B> KeyedState<K, V, B> {
    /// True when `key` is in memory.
    #[inline]
    pub(crate) fn contains<Q>(&self, key: &Q) -> bool
    where
        Q: Probe<K> + ?Sized,
    {
        self.find(key).is_some()
    }

    /// The change stamps of all entries.
    pub(crate) fn stamps(&self) -> impl Iterator<Item = u64> + '_ {
        self.table.iter().map(|e| e.changed)
    }

    /// Takes out every entry stamped at or before `stamp`, keeping no tombstone.
    pub(crate) fn take_stamped_upto(
        &mut self,
        stamp: u64,
    ) -> impl Iterator<Item = (K, V, u64)> + '_ {
        self.table
            .extract_if(move |e| e.changed <= stamp)
            .map(|e| (e.key, e.value, e.changed))
    }

    /// As [`take_stamped_upto`](Self::take_stamped_upto), handing each entry to `f`,
    /// and leaves the table without tombstones: it is emptied and the entries kept are
    /// put back (held aside meanwhile, so for at most half of the table's entries). An
    /// eviction from a table that stays below its in-place limit otherwise leaves
    /// tombstones that only a growing insert clears. If `f` fails, it is not called
    /// again and the entries not yet handed to it stay.
    pub(crate) fn take_stamped_upto_rebuilt<E>(
        &mut self,
        stamp: u64,
        mut f: impl FnMut(K, V, u64) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut kept = Vec::with_capacity(self.table.len() / 2);
        let mut result = Ok(());
        for e in self.table.drain() {
            if e.changed > stamp || result.is_err() {
                kept.push(e);
            } else {
                result = f(e.key, e.value, e.changed);
            }
        }
        for e in kept {
            let hash = self.hasher.hash_one(&e.key);
            self.table.insert_unique(hash, e, rehash(&self.hasher));
        }
        result
    }

    /// Puts an entry back with the stamp it had, counting no change.
    pub(crate) fn put_stamped(&mut self, key: K, value: V, changed: u64) {
        self.put(key, value, changed);
    }

    /// The hash of `key` in this table, for [`contains_hashed`](Self::contains_hashed)
    /// and [`put_absent`](Self::put_absent).
    pub(crate) fn hash_of<Q: Probe<K> + ?Sized>(&self, key: &Q) -> u64 {
        self.hasher.hash_one(key)
    }

    /// [`contains`](Self::contains) of a key whose [`hash_of`](Self::hash_of) is `hash`.
    pub(crate) fn contains_hashed<Q: Probe<K> + ?Sized>(&self, hash: u64, key: &Q) -> bool {
        self.find_hashed(hash, key).is_some()
    }

    /// [`put_stamped`](Self::put_stamped) of a key not in the table (one brought back
    /// from disk) whose [`hash_of`](Self::hash_of) is `hash`: neither looked up nor hashed
    /// again. A batch's keys were hashed before its blocks were read; hashed after, each
    /// key's bytes were a cache miss.
    pub(crate) fn put_absent(&mut self, hash: u64, key: K, value: V, changed: u64) {
        debug_assert!(
            self.table.find(hash, |e| e.key == key).is_none(),
            "put_absent of a key in the table"
        );
        self.table
            .insert_unique(hash, Entry::new(key, value, changed), rehash(&self.hasher));
    }

    /// Puts an entry in with the stamp `changed`, counting no change; the value it
    /// replaces, if any.
    fn put(&mut self, key: K, value: V, changed: u64) -> Option<V> {
        let hash = self.hasher.hash_one(&key);
        let eq = |e: &Entry<K, V, B>| e.key == key;
        match self.table.entry(hash, eq, rehash(&self.hasher)) {
            hash_table::Entry::Occupied(mut o) => {
                let e = o.get_mut();
                e.changed = changed;
                Some(std::mem::replace(&mut e.value, value))
            }
            hash_table::Entry::Vacant(v) => {
                v.insert(Entry::new(key, value, changed));
                None
            }
        }
    }

    /// Starts the history over: the next delta holds the state whole.
    pub(crate) fn restart_history(&mut self) {
        self.removed.clear();
        self.lineage = new_lineage();
    }

    /// Keys removed after stamp `after`.
    pub(crate) fn removed_after(&self, after: u64) -> Vec<&K> {
        self.removed
            .iter()
            .filter(|(_, at)| **at > after)
            .map(|(k, _)| k)
            .collect()
    }
}

/// Inserts `key`, whose hash is `hash`, with `V::default()` into `table`, forgetting its
/// tombstone in `removed`. Unstamped: the caller stamps the entry it gets. The pieces
/// are passed one by one, to go in registers (a struct of them would be written to the
/// stack on every insert).
#[inline(always)]
fn insert_default<'a, K: Hash + Eq, V: Default, B>(
    table: &'a mut HashTable<Entry<K, V, B>>,
    hasher: &FastHasher,
    removed: &mut FastMap<K, u64>,
    hash: u64,
    key: K,
) -> &'a mut Entry<K, V, B> {
    if !removed.is_empty() {
        removed.remove(&key);
    }
    let e = Entry::new(key, V::default(), 0);
    table.insert_unique(hash, e, rehash(hasher)).into_mut()
}

/// A new key for [`KeyedState::entry_ref`], inserted with `V::default()`.
#[cold]
#[inline(never)]
fn insert_new<'a, K: Hash + Eq, V: Default, B>(
    table: &'a mut HashTable<Entry<K, V, B>>,
    hasher: &FastHasher,
    removed: &mut FastMap<K, u64>,
    hash: u64,
    key: K,
) -> &'a mut Entry<K, V, B> {
    insert_default(table, hasher, removed, hash, key)
}

/// A new key for [`KeyedState::entry_taking`]: moved in, inserted with `V::default()`.
#[inline(never)]
fn insert_taken<'a, K, V, B, Q>(
    table: &'a mut HashTable<Entry<K, V, B>>,
    hasher: &FastHasher,
    removed: &mut FastMap<K, u64>,
    hash: u64,
    key: &mut Q,
) -> &'a mut Entry<K, V, B>
where
    K: Hash + Eq,
    V: Default,
    Q: Take<K>,
{
    insert_default(table, hasher, removed, hash, key.take_key())
}

impl<K: Hash + Eq + fmt::Debug, V: fmt::Debug, B> fmt::Debug for KeyedState<K, V, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<K: Hash + Eq + Ord + Clone, V: PartialEq, B> PartialEq for KeyedState<K, V, B> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().all(|(k, v)| other.get(k) == Some(v))
    }
}

/// Sorts entries by key. `String` keys are ordered by 8 bytes taken just past the prefix
/// all keys share (`customer-00…`) with a radix sort, and compared whole only where those
/// bytes are equal: no comparison sort reading two strings from wherever they are.
fn sort_entries<K: Ord + 'static, V>(v: &mut Vec<(&K, &V)>) {
    // The playground's WASM (size-capped) keeps the comparison sort alone.
    if cfg!(target_family = "wasm") || !is_text::<K>() {
        v.sort_unstable_by(|a, b| a.0.cmp(b.0));
        return;
    }
    let mut shared = key_order::Shared::new();
    for (k, _) in v.iter() {
        shared.see(key_bytes(*k));
    }
    let shared = shared.len();
    let mut recs: Vec<(u64, &K, &V)> = v
        .iter()
        .map(|&(k, val)| (key_order::prefix(key_bytes(k), shared), k, val))
        .collect();
    key_order::radix_sort(&mut recs, |r| r.0);
    key_order::settle_ties(&mut recs, |r| r.0, |a, b| a.1.cmp(b.1));
    v.clear();
    v.extend(recs.into_iter().map(|(_, k, val)| (k, val)));
}

/// Sorts `v[base..]` by the key `key` gives for each record: `String` keys as
/// [`sort_entries`] sorts them, other keys by comparison.
pub(crate) fn sort_tail_by_key<T, K: Ord + 'static>(
    v: &mut [T],
    base: usize,
    key: impl Fn(&T) -> &K,
) {
    if cfg!(target_family = "wasm") || !is_text::<K>() {
        v[base..].sort_unstable_by(|a, b| key(a).cmp(key(b)));
        return;
    }
    key_order::sort_tail_by_str(v, base, |t| key_bytes(key(t)));
}

/// Whether keys of type `K` are text (`String` or [`KeyStr`]), which sorts by its bytes.
#[inline]
fn is_text<K: 'static>() -> bool {
    TypeId::of::<K>() == TypeId::of::<String>() || TypeId::of::<K>() == TypeId::of::<KeyStr>()
}

/// The bytes of a key that is text (empty for any other type).
#[inline]
fn key_bytes<K: 'static>(k: &K) -> &[u8] {
    let k = k as &dyn Any;
    match k.downcast_ref::<KeyStr>() {
        Some(s) => s.as_bytes(),
        None => k.downcast_ref::<String>().map_or(&[], |s| s.as_bytes()),
    }
}

/// A key that is text, as a `&str` (empty for any other type).
#[inline]
fn key_str<K: 'static>(k: &K) -> &str {
    let k = k as &dyn Any;
    match k.downcast_ref::<KeyStr>() {
        Some(s) => s.as_str(),
        None => k.downcast_ref::<String>().map_or("", |s| s.as_str()),
    }
}

impl<K: Serialize + Ord + Hash + Eq + 'static, V: Serialize, B> Serialize for KeyedState<K, V, B> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Sorting costs O(n log n); only readable formats promise stable bytes.
        let readable = s.is_human_readable();
        // Not in the browser playground: its states are small, and its WASM size is capped.
        let fast = !cfg!(target_family = "wasm");
        if fast && readable && is_text::<K>() && raw::allowed() {
            let entries = self.iter().map(|(k, v)| (key_str(k), v));
            match sorted_json::sorted_object(entries) {
                Ok(Some(text)) => return raw::serialize(text, s),
                Ok(None) => {}
                Err(e) => return Err(serde::ser::Error::custom(e)),
            }
        }
        let mut m = s.serialize_map(Some(self.len()))?;
        if readable {
            for (k, v) in self.sorted() {
                m.serialize_entry(k, v)?;
            }
        } else {
            for (k, v) in self.iter() {
                m.serialize_entry(k, v)?;
            }
        }
        m.end()
    }
}

impl<'de, K, V, B> Deserialize<'de> for KeyedState<K, V, B>
where
    K: Deserialize<'de> + Hash + Eq,
    V: Deserialize<'de>,
{
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V2<K, V, B>(PhantomData<(K, V, B)>);
        impl<'de, K: Deserialize<'de> + Hash + Eq, V: Deserialize<'de>, B> Visitor<'de> for V2<K, V, B> {
            type Value = KeyedState<K, V, B>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of keyed state")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                // Cap the pre-allocation: the size hint comes from untrusted bytes.
                let cap = a.size_hint().unwrap_or(0).min(1 << 20);
                let mut s = KeyedState {
                    table: HashTable::with_capacity(cap),
                    ..KeyedState::default()
                };
                while let Some((k, value)) = a.next_entry()? {
                    s.put_stamped(k, value, 0);
                }
                Ok(s)
            }
        }
        d.deserialize_map(V2(PhantomData))
    }
}

impl<K: Key, V: Checkpointable, B> Checkpointable for KeyedState<K, V, B> {
    const LAYOUT: u64 = combine(combine(fnv1a("KeyedState"), K::LAYOUT), V::LAYOUT);
}

/// What changed in a [`KeyedState`]: entries inserted or updated, keys removed. `reset`
/// says the delta holds the whole state (it was taken against another history).
#[derive(Deserialize)]
#[serde(bound(deserialize = "K: Deserialize<'de> + Hash + Eq, V: Deserialize<'de>"))]
pub struct KeyedDelta<K, V> {
    /// The state starts empty before this delta.
    pub reset: bool,
    /// New and changed entries.
    #[serde(deserialize_with = "upserts")]
    pub upserts: KeyedState<K, V>,
    /// Removed keys.
    pub removed: Vec<K>,
}

/// A delta's upserts; when a delta is only checked before it is stored, each entry is
/// decoded and dropped (a delta of a large state need not be held twice in memory to
/// show that it decodes).
fn upserts<'de, D, K, V>(d: D) -> Result<KeyedState<K, V>, D::Error>
where
    D: Deserializer<'de>,
    K: Deserialize<'de> + Hash + Eq,
    V: Deserialize<'de>,
{
    if !crate::spill::checking() {
        return KeyedState::deserialize(d);
    }
    struct Skip<K, V>(PhantomData<(K, V)>);
    impl<'de, K: Deserialize<'de>, V: Deserialize<'de>> Visitor<'de> for Skip<K, V> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a map of keyed state")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<(), A::Error> {
            while a.next_entry::<K, V>()?.is_some() {}
            Ok(())
        }
    }
    d.deserialize_map(Skip::<K, V>(PhantomData))?;
    Ok(KeyedState::default())
}

/// The view of a [`KeyedState`] that a delta writes.
pub(crate) struct DeltaView<'a, K, V> {
    pub(crate) reset: bool,
    upserts: Vec<(&'a K, &'a V)>,
    removed: Vec<&'a K>,
}

impl<K: Serialize, V: Serialize> Serialize for DeltaView<'_, K, V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        struct Entries<'b, K, V>(&'b [(&'b K, &'b V)]);
        impl<K: Serialize, V: Serialize> Serialize for Entries<'_, K, V> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
            }
        }
        let mut st = s.serialize_struct("KeyedDelta", 3)?;
        st.serialize_field("reset", &self.reset)?;
        st.serialize_field("upserts", &Entries(&self.upserts))?;
        st.serialize_field("removed", &self.removed)?;
        st.end()
    }
}

// Serde's bounds, not `Key`/`Checkpointable`: a key type missing `Checkpointable` is then
// reported once, by the stage's `Checkpointable` impl.
impl<K, V, B> KeyedState<K, V, B>
where
    K: Hash + Ord + Serialize + DeserializeOwned + 'static,
    V: Serialize + DeserializeOwned,
{
    /// What changed since `since` (everything, as a reset, for another history).
    pub(crate) fn delta_since(&self, since: Option<Version>, sorted: bool) -> DeltaView<'_, K, V> {
        let after = match since {
            Some(v) if v.lineage == self.lineage && v.changes <= self.changes => Some(v.changes),
            _ => None,
        };
        let Some(after) = after else {
            let upserts = if sorted {
                self.sorted()
            } else {
                self.iter().collect()
            };
            return DeltaView {
                reset: true,
                upserts,
                removed: Vec::new(),
            };
        };
        let mut upserts: Vec<(&K, &V)> = self.changed_since(after).collect();
        let mut removed = self.removed_after(after);
        if sorted {
            sort_entries(&mut upserts);
            removed.sort_unstable();
        }
        DeltaView {
            reset: false,
            upserts,
            removed,
        }
    }
}

impl<K, V, B> Tracked for KeyedState<K, V, B>
where
    K: Hash + Ord + Serialize + DeserializeOwned + 'static,
    V: Serialize + DeserializeOwned,
{
    type Delta = KeyedDelta<K, V>;

    fn version(&self) -> Version {
        Version {
            lineage: self.lineage,
            changes: self.changes,
        }
    }

    fn write_delta(
        &self,
        since: Option<Version>,
        name: &'static str,
        w: &mut StageWriter<'_>,
    ) -> Result<(), CheckpointError> {
        // Readable deltas are sorted, as snapshots are: same changes, same bytes.
        let view = self.delta_since(since, w.codec() == crate::Codec::Json);
        w.field(name, &view)
    }

    fn apply_delta(&mut self, delta: KeyedDelta<K, V>) {
        if delta.reset {
            *self = KeyedState::default();
        }
        for k in &delta.removed {
            self.remove(k);
        }
        let mut upserts = delta.upserts;
        for (k, v) in upserts.drain() {
            self.insert(k, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{read, Codec, StageWriter};
    use proptest::prelude::*;

    #[test]
    fn update_or_remove_untracked_changes_then_removes_in_one_lookup() {
        let mut s: KeyedState<u8, Vec<u64>> = KeyedState::default();
        s.entry(1).push(7);
        s.entry(1).push(8);
        let before = s.last_stamp();
        assert_eq!(
            s.update_or_remove_untracked(&2, |_| true),
            None,
            "absent key"
        );
        let kept = s.update_or_remove_untracked(&1, |v| {
            v.retain(|x| *x > 7);
            v.is_empty()
        });
        assert_eq!(kept, None);
        assert_eq!(s.get(&1), Some(&vec![8]));
        assert_eq!(
            s.changed_after(before, true),
            vec![(&1, &vec![8])],
            "stamped"
        );
        let gone = s.update_or_remove_untracked(&1, |v| {
            v.clear();
            true
        });
        assert_eq!(gone, Some(vec![]));
        assert!(s.is_empty());
        assert!(s.removed_after(0).is_empty(), "no tombstone");
    }

    #[derive(Debug, Clone)]
    enum Op {
        Add(u8, u64),
        Insert(u8, u64),
        Remove(u8),
        Delta,
        Restore,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u8..24, 1u64..9).prop_map(|(k, v)| Op::Add(k, v)),
            1 => (0u8..24, 1u64..9).prop_map(|(k, v)| Op::Insert(k, v)),
            2 => (0u8..24).prop_map(Op::Remove),
            2 => Just(Op::Delta),
            1 => Just(Op::Restore),
        ]
    }

    /// `s`'s delta since `since`, through the codec and back.
    fn delta(s: &KeyedState<u8, u64>, since: Version, codec: Codec) -> KeyedDelta<u8, u64> {
        #[derive(serde::Deserialize)]
        struct D {
            s: KeyedDelta<u8, u64>,
        }
        let mut out = Vec::new();
        let mut w = StageWriter::new(codec, &mut out);
        s.write_delta(Some(since), "s", &mut w).unwrap();
        w.finish();
        read::<D>(codec, &out).unwrap().s
    }

    /// Through the codec and back, as a restore from a whole checkpoint does.
    fn whole(s: &KeyedState<u8, u64>, codec: Codec) -> KeyedState<u8, u64> {
        let mut out = Vec::new();
        crate::codec::write(codec, s, &mut out).unwrap();
        read(codec, &out).unwrap()
    }

    proptest! {
        /// Inserts, updates and removals with deltas taken at random points: the copy
        /// built from a whole snapshot plus every delta since equals the state, and a
        /// delta holds only keys changed since the previous one.
        #[test]
        fn deltas_applied_to_the_previous_state_give_the_current_one(
            ops in prop::collection::vec(op(), 1..80),
            binary in any::<bool>(),
        ) {
            let codec = if binary { Codec::Binary } else { Codec::Json };
            let mut live: KeyedState<u8, u64> = KeyedState::default();
            let mut copy = whole(&live, codec);
            let mut since = live.version();
            let mut touched = std::collections::BTreeSet::new();
            for op in ops {
                match op {
                    Op::Add(k, v) => { *live.entry(k) += v; touched.insert(k); }
                    Op::Insert(k, v) => { live.insert(k, v); touched.insert(k); }
                    Op::Remove(k) => { live.remove(&k); touched.insert(k); }
                    Op::Delta => {
                        let d = delta(&live, since, codec);
                        prop_assert!(!d.reset);
                        let keys: Vec<u8> = d.upserts.iter().map(|(k, _)| *k).chain(d.removed.iter().copied()).collect();
                        prop_assert!(keys.iter().all(|k| touched.contains(k)), "{:?} vs {:?}", keys, touched);
                        copy.apply_delta(d);
                        prop_assert!(copy == live, "{:?} vs {:?}", copy, live);
                        since = live.version();
                        touched.clear();
                    }
                    Op::Restore => {
                        // A restored state is a new history: deltas go on from it.
                        live = whole(&copy, codec);
                        since = live.version();
                        touched.clear();
                    }
                }
            }
            let d = delta(&live, since, codec);
            copy.apply_delta(d);
            prop_assert!(copy == live);
        }
    }

    /// String keys are written in `String`'s order, however their first 8 bytes compare.
    #[test]
    fn string_keys_are_written_in_order() {
        let keys = [
            "",
            "a",
            "ab",
            "ab\0",
            "abcdefgh",
            "abcdefgh\0",
            "abcdefghz",
            "abcdefgha",
            "b",
            "\u{e9}t\u{e9}",
            "C100000",
            "C99",
            "C1000000000",
        ];
        // Alone, and behind a prefix every key shares (which the sort skips).
        for shared in ["", "customer-00"] {
            let mut s: KeyedState<String, u64> = KeyedState::default();
            let mut want = std::collections::BTreeMap::new();
            for (i, k) in keys.iter().enumerate() {
                let k = format!("{shared}{k}");
                *s.entry_ref(k.as_str()) += i as u64;
                want.insert(k, i as u64);
            }
            let want = serde_json::to_string(&want).unwrap();
            assert_eq!(serde_json::to_string(&s).unwrap(), want);
            // As a checkpoint writes it: each entry written once, then put in order.
            let mut out = Vec::new();
            crate::codec::write(Codec::Json, &s, &mut out).unwrap();
            assert_eq!(String::from_utf8(out).unwrap(), want);
        }
    }

    #[test]
    fn a_delta_against_another_history_holds_everything() {
        let mut a: KeyedState<u8, u64> = KeyedState::default();
        *a.entry(1) += 1;
        let other = a.clone().version();
        *a.entry(2) += 1;
        let d = delta(&a, other, Codec::Json);
        assert!(d.reset);
        let mut copy: KeyedState<u8, u64> = KeyedState::default();
        *copy.entry(9) += 1;
        copy.apply_delta(d);
        assert!(copy == a);
    }

    #[test]
    fn tombstones_stay_bounded_when_keys_come_and_go() {
        let mut s: KeyedState<u64, u64> = KeyedState::default();
        let start = s.version();
        for k in 0..3 * MAX_EXTRA_TOMBSTONES as u64 {
            *s.entry(k) += 1;
            s.remove(&k);
        }
        assert!(
            s.removed.len() <= MAX_EXTRA_TOMBSTONES + 1,
            "{}",
            s.removed.len()
        );
        assert_ne!(
            s.version().lineage,
            start.lineage,
            "the history started over"
        );
    }
}

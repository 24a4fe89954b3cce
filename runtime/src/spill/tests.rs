//! A spilling state with a tiny budget behaves as a plain map, through deltas and
//! restores in both codecs.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use proptest::prelude::*;

use super::*;
use crate::codec::{read, write, Codec, StageWriter};
use crate::delta::{Tracked, Version};
use crate::state::KeyedDelta;

/// Tests that set the process's backend run one at a time.
static BACKEND_LOCK: Mutex<()> = Mutex::new(());

/// Sets the disk backend with `memory` bytes in a fresh directory for this thread's
/// states, until dropped.
pub(crate) struct DiskBackend {
    _lock: MutexGuard<'static, ()>,
    pub(crate) dir: tempfile::TempDir,
}

impl DiskBackend {
    pub(crate) fn new(memory: usize) -> DiskBackend {
        let lock = BACKEND_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let dir = tempfile::tempdir().unwrap();
        let config = DiskConfig {
            dir: dir.path().join("state"),
            memory,
        };
        backend::set_thread_backend(Some(config)).unwrap();
        DiskBackend { _lock: lock, dir }
    }
}

impl Drop for DiskBackend {
    fn drop(&mut self) {
        backend::set_thread_backend(None).unwrap();
    }
}

type S = SpillState<u16, u64>;

fn whole(s: &S, codec: Codec) -> S {
    let mut out = Vec::new();
    write(codec, s, &mut out).unwrap();
    read(codec, &out).unwrap()
}

fn delta(s: &S, since: Version, codec: Codec) -> KeyedDelta<u16, u64> {
    #[derive(serde::Deserialize)]
    struct D {
        s: KeyedDelta<u16, u64>,
    }
    let mut out = Vec::new();
    let mut w = StageWriter::new(codec, &mut out);
    s.write_delta(Some(since), "s", &mut w).unwrap();
    w.finish();
    if codec == Codec::Binary {
        assert_keys_once(&out);
    }
    read::<D>(codec, &out).unwrap().s
}

/// A binary delta names each key once (a map decoded into a hash map would hide a
/// repeat): postcard writes a map as a sequence of pairs, read as such here.
fn assert_keys_once(binary: &[u8]) {
    #[derive(serde::Deserialize)]
    struct Pairs {
        _reset: bool,
        upserts: Vec<(u16, u64)>,
        _removed: Vec<u16>,
    }
    let p: Pairs = read(Codec::Binary, binary).unwrap();
    let keys: std::collections::BTreeSet<u16> = p.upserts.iter().map(|e| e.0).collect();
    assert_eq!(
        keys.len(),
        p.upserts.len(),
        "a key twice in {:?}",
        p.upserts
    );
}

fn contents(s: &S) -> BTreeMap<u16, u64> {
    s.iter().map(|(k, v)| (*k, *v)).collect()
}

#[derive(Debug, Clone)]
enum Op {
    Add(u16, u64),
    Insert(u16, u64),
    Remove(u16),
    Delta,
    Restore,
}

fn op() -> impl Strategy<Value = Op> {
    op_with(1)
}

/// Ops with restores `restores` times as frequent as deltas.
fn op_with(restores: u32) -> impl Strategy<Value = Op> {
    prop_oneof![
        12 => (0u16..400, 1u64..9).prop_map(|(k, v)| Op::Add(k, v)),
        2 => (0u16..400, 1u64..9).prop_map(|(k, v)| Op::Insert(k, v)),
        2 => (0u16..400).prop_map(Op::Remove),
        1 => Just(Op::Delta),
        restores => Just(Op::Restore),
    ]
}

/// A state under test, the map it must equal, and the copy deltas are applied to.
struct Case {
    live: S,
    model: BTreeMap<u16, u64>,
    copy: S,
    since: Version,
    codec: Codec,
}

impl Case {
    fn new(codec: Codec) -> Case {
        let live = S::default();
        Case {
            copy: whole(&live, codec),
            since: live.version(),
            live,
            model: BTreeMap::new(),
            codec,
        }
    }

    fn apply(&mut self, op: Op) -> Result<(), TestCaseError> {
        let (live, model, codec) = (&mut self.live, &mut self.model, self.codec);
        match op {
            Op::Add(k, v) => {
                *live.entry_ref(&k) += v;
                *model.entry(k).or_default() += v;
            }
            Op::Insert(k, v) => {
                prop_assert_eq!(live.insert(k, v), model.insert(k, v));
            }
            Op::Remove(k) => {
                prop_assert_eq!(live.remove(&k), model.remove(&k));
            }
            Op::Delta => {
                self.copy.apply_delta(delta(live, self.since, codec));
                prop_assert_eq!(contents(&self.copy), model.clone());
                self.since = live.version();
            }
            Op::Restore => {
                *live = whole(live, codec);
                self.copy = whole(live, codec);
                self.since = live.version();
            }
        }
        Ok(())
    }

    /// The state equals the map: entries, length, lookups, and a last delta.
    fn check(mut self) -> Result<(), TestCaseError> {
        let live = &self.live;
        prop_assert_eq!(contents(live), self.model.clone());
        prop_assert_eq!(live.len(), self.model.len());
        for (k, v) in &self.model {
            prop_assert_eq!(live.get(k).map(|v| *v), Some(*v));
        }
        self.copy.apply_delta(delta(live, self.since, self.codec));
        prop_assert_eq!(contents(&self.copy), self.model);
        Ok(())
    }
}

fn codec(binary: bool) -> Codec {
    if binary {
        Codec::Binary
    } else {
        Codec::Json
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]
    /// Random updates with a budget of a few dozen entries (most keys on disk): the state
    /// equals a map that did the same; a delta applied to the previous checkpoint's copy
    /// gives the state; a whole checkpoint restores it.
    #[test]
    fn a_spilling_state_equals_a_map(
        ops in prop::collection::vec(op(), 1..400),
        binary in any::<bool>(),
    ) {
        let _backend = DiskBackend::new(4096);
        let mut run = Case::new(codec(binary));
        for op in ops {
            run.apply(op)?;
        }
        run.check()?;
    }

    /// The same with each batch of updates' keys prefetched first (budgets from a few
    /// dozen entries to a few thousand, batches larger than memory included): the state,
    /// its deltas and its checkpoints are those of the updates alone. Removed keys and
    /// keys whose newest copy is in an older run are among those prefetched.
    #[test]
    fn prefetching_a_batch_changes_no_state(
        batches in prop::collection::vec(prop::collection::vec(op(), 0..150), 1..10),
        memory in prop_oneof![Just(4096usize), Just(16 << 10), Just(256 << 10)],
        binary in any::<bool>(),
    ) {
        let _backend = DiskBackend::new(memory);
        let mut run = Case::new(codec(binary));
        for batch in batches {
            let keys: Vec<u16> = batch
                .iter()
                .filter_map(|op| match op {
                    Op::Add(k, _) | Op::Insert(k, _) | Op::Remove(k) => Some(*k),
                    Op::Delta | Op::Restore => None,
                })
                .collect();
            run.live.prefetch(keys.iter());
            for op in batch {
                run.apply(op)?;
            }
        }
        run.check()?;
    }
}

fn keys_of(batch: &[Op]) -> Vec<u16> {
    (batch.iter())
        .filter_map(|op| match op {
            Op::Add(k, _) | Op::Insert(k, _) | Op::Remove(k) => Some(*k),
            Op::Delta | Op::Restore => None,
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]
    /// Each batch's keys read ahead while the batch before runs, then prefetched: the
    /// state, its deltas and its checkpoints are those of the updates alone. Now and
    /// then other keys are read ahead instead of the next batch's or none (`ahead`), or
    /// the prefetch is skipped (`skip`): a read ahead then stays under way through more
    /// events, which take back, change, remove and evict keys it read.
    #[test]
    fn reading_the_next_batch_ahead_changes_no_state(
        // A restore drops a read ahead under way (its state is a new one): rarer here.
        batches in prop::collection::vec(prop::collection::vec(op_with(0), 0..150), 1..10),
        restore in prop::collection::vec(prop::bool::weighted(0.1), 10),
        ahead in prop::collection::vec(
            prop_oneof![
                2 => Just(None),
                2 => Just(Some(Vec::new())),
                1 => prop::collection::vec(0u16..400, 1..100).prop_map(Some),
            ],
            10,
        ),
        skip in prop::collection::vec(prop::bool::weighted(0.5), 10),
        memory in prop_oneof![Just(4096usize), Just(8 << 10), Just(12 << 10)],
        binary in any::<bool>(),
    ) {
        let _backend = DiskBackend::new(memory);
        let mut run = Case::new(codec(binary));
        // Every key first: most are on disk before the first read ahead.
        for k in 0..400 {
            run.apply(Op::Add(k, 1))?;
        }
        let keys: Vec<Vec<u16>> = batches.iter().map(|b| keys_of(b)).collect();
        run.live.prefetch(keys[0].iter());
        for (n, batch) in batches.into_iter().enumerate() {
            let next = keys.get(n + 1);
            match (&ahead[n], next) {
                (None, Some(next)) => run.live.read_ahead(next.iter()),
                (None, None) | (Some(_), None) => {}
                // Nothing (an earlier read ahead stays under way), or other keys.
                (Some(other), Some(_)) if other.is_empty() => {}
                (Some(other), Some(_)) => run.live.read_ahead(other.iter()),
            }
            for op in batch {
                run.apply(op)?;
            }
            if restore[n] {
                run.apply(Op::Restore)?;
            }
            // Without it, the next batch's events take, change, remove and evict keys
            // read ahead before they come in.
            if let (Some(next), false) = (next, skip[n]) {
                run.live.prefetch(next.iter());
            }
        }
        run.check()?;
    }
}

/// A state with keys `0..n` counted once each (with a 64 KiB budget, most on disk).
fn counted_once(n: u16) -> S {
    let mut s = S::default();
    for k in 0..n {
        *s.entry_ref(&k) += 1;
    }
    s
}

/// The keys of a batch read ahead are in memory after the next prefetch, with the
/// values they had on disk.
#[test]
fn a_batch_read_ahead_is_in_memory_after_its_prefetch() {
    let _backend = DiskBackend::new(64 << 10);
    let mut s = counted_once(4000);
    assert!(s.on_disk() > 3000, "{} on disk", s.on_disk());
    let batch: Vec<u16> = (0..4000u16)
        .step_by(211)
        .filter(|k| !s.mem.contains(k))
        .collect();
    assert!(batch.len() >= 10, "{} keys on disk", batch.len());
    let on_disk = s.on_disk();
    let in_memory: Vec<u16> = (0..4000u16).filter(|k| s.mem.contains(k)).collect();
    s.read_ahead(batch.iter());
    assert_eq!(
        s.on_disk(),
        on_disk,
        "a read ahead brings nothing in by itself"
    );
    s.prefetch(batch.iter());
    for k in &batch {
        assert!(s.mem.contains(k), "key {k} brought in");
    }
    // Making room may evict others; each key is counted once, on disk or in memory.
    let evicted = in_memory.iter().filter(|&k| !s.mem.contains(k)).count();
    assert_eq!(s.on_disk(), on_disk - batch.len() as u64 + evicted as u64);
    for k in &batch {
        *s.entry_ref(k) += 1;
        assert_eq!(s.get(k).as_deref(), Some(&2), "key {k}");
    }
}

/// A key read ahead that an event takes back, changes and evicts again before the read
/// ahead is brought in keeps its newest value: the copy read ahead is stale.
#[test]
fn a_key_changed_and_evicted_after_it_was_read_ahead_keeps_its_new_value() {
    let _backend = DiskBackend::new(64 << 10);
    let mut s = counted_once(4000);
    let batch: Vec<u16> = (0..4000u16)
        .step_by(97)
        .filter(|k| !s.mem.contains(k))
        .collect();
    s.read_ahead(batch.iter());
    for k in &batch {
        *s.entry_ref(k) += 10;
    }
    // New keys push the batch's out of memory again.
    for k in 20_000..26_000u16 {
        *s.entry_ref(&k) += 1;
    }
    assert!(
        batch.iter().any(|k| !s.mem.contains(k)),
        "some evicted again"
    );
    s.prefetch(batch.iter());
    for k in &batch {
        assert_eq!(s.get(k).as_deref(), Some(&11), "key {k}");
    }
    let mut removed = batch.clone();
    let kept = removed.split_off(removed.len() / 2);
    // Read ahead, then removed before the read ahead is brought in: it stays removed.
    for k in 0..4000u16 {
        *s.entry_ref(&k) += 0;
    }
    s.read_ahead(batch.iter());
    for k in &removed {
        s.remove(k);
    }
    s.prefetch(batch.iter());
    for k in &removed {
        assert_eq!(s.get(k), None, "key {k} removed");
    }
    for k in &kept {
        assert_eq!(s.get(k).as_deref(), Some(&11), "key {k}");
    }
}

/// With most keys on disk, a prefetched batch's keys are in memory afterwards (up to
/// what the budget allows): the batch's events then read nothing.
#[test]
fn a_prefetched_batch_is_in_memory() {
    let _backend = DiskBackend::new(64 << 10);
    let mut s = counted_once(4000);
    assert!(s.on_disk() > 3000, "{} on disk", s.on_disk());
    let batch: Vec<u16> = (0..4000u16).step_by(97).collect();
    let hot: Vec<bool> = batch.iter().map(|k| s.mem.contains(k)).collect();
    s.prefetch(batch.iter());
    // Up to what the budget allows, which depends on the hash seed (it decides which
    // entries an eviction takes): a cut batch keeps the earliest events' keys. The last
    // keys written may have been in memory all along, cut or not.
    let brought = batch.iter().take_while(|&k| s.mem.contains(k)).count();
    assert!(
        brought >= batch.len() / 2,
        "{brought} of {} brought in",
        batch.len()
    );
    let late: Vec<u16> = (batch.iter().zip(&hot))
        .skip(brought)
        .filter(|&(k, &hot)| !hot && s.mem.contains(k))
        .map(|(k, _)| *k)
        .collect();
    assert!(
        late.is_empty(),
        "a cut batch keeps its earliest keys: {late:?} came in after {} did not",
        batch[brought]
    );
    let on_disk = s.on_disk();
    for k in &batch[..brought] {
        *s.entry_ref(k) += 1;
    }
    assert_eq!(s.on_disk(), on_disk, "no event of the batch read from disk");
    for k in &batch[brought..] {
        *s.entry_ref(k) += 1;
    }
    for k in 0..4000u16 {
        let want = if k % 97 == 0 { 2 } else { 1 };
        assert_eq!(s.get(&k).as_deref(), Some(&want), "key {k}");
    }
}

/// Keys a prefetch found on no run skip the runs on their own lookups only until the
/// next run is written: once they are evicted, they are found on disk.
#[test]
fn keys_found_absent_are_found_once_evicted() {
    let _backend = DiskBackend::new(64 << 10);
    let mut s = counted_once(4000);
    assert!(s.on_disk() > 3000, "{} on disk", s.on_disk());
    let new: Vec<u16> = (10_000..10_050u16).collect();
    s.prefetch(new.iter());
    for k in &new {
        *s.entry_ref(k) += 5;
    }
    // Keys new to the state push the batch's out of memory.
    for k in 20_000..24_000u16 {
        *s.entry_ref(&k) += 1;
    }
    assert!(
        new.iter().all(|k| !s.mem.contains(k)),
        "the batch's keys evicted"
    );
    for k in &new {
        assert_eq!(s.get(k).as_deref(), Some(&5), "key {k}");
        *s.entry_ref(k) += 1;
    }
    for k in &new {
        assert_eq!(s.get(k).as_deref(), Some(&6), "key {k}");
    }
}

/// A batch larger than memory can hold is cut: memory stays within the budget.
#[test]
fn a_batch_larger_than_memory_is_cut() {
    let memory = 1 << 20;
    let _backend = DiskBackend::new(memory);
    let mut s: SpillState<u64, u64> = SpillState::default();
    for k in 0..50_000u64 {
        *s.entry_ref(&k) += 1;
    }
    let before = s.in_memory();
    let batch: Vec<u64> = (0..50_000).collect();
    s.prefetch(batch.iter());
    assert!(s.on_disk() > 25_000, "{} on disk", s.on_disk());
    assert!(
        s.in_memory() > before / 2,
        "{} in memory, {before} before",
        s.in_memory()
    );
    assert!(
        s.mem.table_bytes() <= memory / 8 * 5,
        "a table of {} B",
        s.mem.table_bytes()
    );
    assert!(s.in_memory() < 25_000, "{} in memory", s.in_memory());
    for k in &batch {
        *s.entry_ref(k) += 1;
    }
    assert_eq!(s.len(), 50_000);
    assert!(s.iter().all(|(_, v)| *v == 2));
}

#[test]
fn most_keys_go_to_disk_and_the_checkpoint_bytes_are_a_keyed_states() {
    let _backend = DiskBackend::new(4096);
    let mut s = S::default();
    let mut plain: KeyedState<u16, u64> = KeyedState::default();
    for i in 0..5_000u32 {
        let k = (i * 7919 % 2000) as u16;
        *s.entry_ref(&k) += 1;
        *plain.entry_ref(&k) += 1;
    }
    assert_eq!(s.len(), 2000);
    assert!(s.in_memory() < 100, "{} in memory", s.in_memory());
    assert!(s.on_disk() > 1900, "{} on disk", s.on_disk());
    let (mut a, mut b) = (Vec::new(), Vec::new());
    write(Codec::Json, &s, &mut a).unwrap();
    write(Codec::Json, &plain, &mut b).unwrap();
    assert_eq!(a, b, "JSON checkpoints are byte-identical across backends");
    let mut bin = Vec::new();
    write(Codec::Binary, &s, &mut bin).unwrap();
    let back: KeyedState<u16, u64> = read(Codec::Binary, &bin).unwrap();
    assert!(
        back == plain,
        "a binary checkpoint of the disk backend restores in memory"
    );
}

/// A delta takes evicted changes from their dirty marks without looking them up: a mark
/// whose key came back into memory since (to be changed and evicted again, or removed)
/// must not count, or the delta would name a key twice or bring a removed key back.
#[test]
fn changes_evicted_twice_or_removed_between_checkpoints_come_once_in_a_delta() {
    let _backend = DiskBackend::new(4096);
    let mut s = S::default();
    for k in 0..2000u16 {
        *s.entry_ref(&k) += 1;
    }
    let mut copy = whole(&s, Codec::Binary);
    let since = s.version();
    for round in 0..2 {
        for k in 0..2000u16 {
            *s.entry_ref(&k) += 10 + round;
        }
    }
    for k in (0..2000u16).step_by(7) {
        s.remove(&k);
    }
    assert!(s.on_disk() > 1500, "{} on disk", s.on_disk());
    // `delta` also checks that no key comes twice.
    copy.apply_delta(delta(&s, since, Codec::Binary));
    let want: BTreeMap<u16, u64> = (0..2000u16)
        .filter(|k| k % 7 != 0)
        .map(|k| (k, 22))
        .collect();
    assert_eq!(contents(&copy), want);
    assert_eq!(contents(&s), want);
}

/// A state that counted keys `0..n` once, its whole checkpoint's copy and its version.
fn counted_then_copied(n: u16) -> (S, S, Version) {
    let s = counted_once(n);
    let copy = whole(&s, Codec::Binary);
    let since = s.version();
    (s, copy, since)
}

/// Keys a prefetch brings back and an eviction takes again before their events come
/// go back to disk unchanged: their older marks hold again, and a delta names each once.
#[test]
fn prefetched_keys_evicted_again_unchanged_come_once_in_a_delta() {
    let _backend = DiskBackend::new(64 << 10);
    let (mut s, mut copy, since) = counted_then_copied(4000);
    // Changed after `since`, then pushed out to disk by new keys (with dirty marks).
    let batch: Vec<u16> = (0..4000u16).step_by(97).collect();
    for k in batch.iter().chain(&(4000..6000).collect::<Vec<u16>>()) {
        *s.entry_ref(k) += 1;
    }
    let on_disk = |s: &S| batch.iter().filter(|&k| !s.mem.contains(k)).count();
    assert_eq!(on_disk(&s), batch.len());
    s.prefetch(batch.iter());
    assert!(
        on_disk(&s) < batch.len() / 2,
        "{} still on disk",
        on_disk(&s)
    );
    // New keys push the prefetched ones (the oldest stamps) out again, unchanged.
    for k in 6000..8000u16 {
        *s.entry_ref(&k) += 1;
    }
    assert_eq!(on_disk(&s), batch.len());
    // `delta` checks that no key comes twice.
    copy.apply_delta(delta(&s, since, Codec::Binary));
    assert_eq!(contents(&copy), contents(&s));
}

/// The same after `superseded` overflowed (every key was taken back once), when the
/// older marks are checked by looking their keys up: the copy evicted again carries its
/// new mark's number, and the older mark no longer matches it.
#[test]
fn keys_evicted_again_unchanged_after_superseded_overflowed_come_once_in_a_delta() {
    let _backend = DiskBackend::new(64 << 10);
    let (mut s, mut copy, since) = counted_then_copied(4000);
    for k in 0..4000u16 {
        *s.entry_ref(&k) += 1;
    }
    let tier = s.disk.as_ref().and_then(|d| d.tier.as_ref()).unwrap();
    assert!(tier.marks_checked_by_lookup() > 0, "superseded overflowed");
    let batch: Vec<u16> = (0..4000u16).step_by(97).collect();
    s.prefetch(batch.iter());
    let back = batch.iter().filter(|&k| s.mem.contains(k)).count();
    assert!(back > batch.len() / 2, "{back} brought back");
    for k in 4000..8000u16 {
        *s.entry_ref(&k) += 1;
    }
    assert!(batch.iter().all(|k| !s.mem.contains(k)), "evicted again");
    // `delta` checks that no key comes twice.
    copy.apply_delta(delta(&s, since, Codec::Binary));
    assert_eq!(contents(&copy), contents(&s));
}

#[test]
fn the_store_file_is_removed_with_the_state() {
    let backend = DiskBackend::new(4096);
    let dir = backend.dir.path().join("state");
    let files = || {
        std::fs::read_dir(&dir)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name() != MARKER)
            .count()
    };
    let mut s = S::default();
    for k in 0..1000 {
        *s.entry_ref(&k) += 1;
    }
    // Runs and their dirty marks.
    assert!(files() >= 2, "{} files", files());
    drop(s);
    assert_eq!(files(), 0);
}

/// Bytes of the run files in the working directory.
fn store_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".run"))
        .map(|e| e.metadata().unwrap().len())
        .sum()
}

#[test]
fn the_store_file_stays_near_the_live_entries_while_batches_rewrite_them() {
    let backend = DiskBackend::new(1 << 20);
    let dir = backend.dir.path().join("state");
    let mut s: SpillState<u64, u64> = SpillState::default();
    let keys = 30_000u64;
    let mut sizes = Vec::new();
    // Every round brings each key on disk back and evicts it again: merges must drop
    // the copies each later batch replaces.
    for round in 0..6u64 {
        for i in 0..keys {
            *s.entry_ref(&(i * 7919 % keys)) += round + 1;
        }
        sizes.push(store_bytes(&dir));
    }
    assert!(s.on_disk() > keys / 2, "{} on disk", s.on_disk());
    eprintln!("store bytes after each round: {sizes:?}");
    // A record: a 16-byte head, the key (a varint, 3 bytes here) and the value (at most
    // 3). The runs hold less than two copies of each key (stale copies of keys in memory
    // included): never a copy per round.
    let one_copy = keys * 22;
    assert!(
        sizes.iter().all(|&b| b < 2 * one_copy),
        "the store grew with the rounds: {sizes:?} (one copy of each key: {one_copy} B)"
    );
}

/// The hash table is charged at its real size. Evictions leave tombstones that use up a
/// table's free slots; were it grown then, it would stand half empty at twice the size
/// the budget allows, so it is rehashed in place after a larger eviction instead.
#[test]
fn the_hash_table_stays_within_the_budget_through_evictions() {
    let memory = 4 << 20;
    let _backend = DiskBackend::new(memory);
    let mut s: SpillState<u64, u64> = SpillState::default();
    let mut peak = 0;
    let keys = 300_000;
    for i in 0..2 * keys {
        *s.entry_ref(&(i * 7919 % keys)) += 1;
        peak = peak.max(s.mem.table_bytes());
    }
    assert!(s.on_disk() > keys / 2, "{} on disk", s.on_disk());
    let share = memory / 8 * 5;
    assert!(peak <= share, "a table of {peak} B in a share of {share} B");
    // Not kept small by emptying memory: the table is at least a quarter full.
    let slots = s.mem.table_bytes() / (std::mem::size_of::<(u64, u64, u64)>() + 1);
    let held = s.disk.as_ref().unwrap().tier.as_ref().unwrap().memory();
    eprintln!(
        "peak table {peak} B; {} entries in {slots} slots; runs' filters {held} B",
        s.in_memory()
    );
    assert!(
        s.in_memory() > slots / 4,
        "{} of {slots} slots",
        s.in_memory()
    );
    assert!(s.in_memory() > 2_000, "{} in memory", s.in_memory());
}

/// Prefetches do not wear the table down. With its free slots, not bytes, short,
/// memory is emptied to half and the table rebuilt, then filled to its usable slots
/// again, batch after batch: evicted entries leave tombstones, which only an insert
/// that would grow the table clears, and a prefetch never makes one.
#[test]
fn prefetched_batches_keep_filling_the_whole_table() {
    let _backend = DiskBackend::new(2 << 20);
    let mut s: SpillState<u64, u64> = SpillState::default();
    let mut want = BTreeMap::new();
    let keys = 60_000u64;
    for k in 0..keys {
        *s.entry_ref(&k) += 1;
        want.insert(k, 1u64);
    }
    assert!(s.on_disk() > keys / 2, "{} on disk", s.on_disk());
    let table = s.mem.table_bytes();
    // Below half the usable slots, an insert rehashes in place.
    let usable = 2 * s.mem.in_place_limit();
    let mut x = 12345u64;
    let mut peaks = Vec::new();
    for _ in 0..40 {
        let batch: Vec<u64> = (0..2000)
            .map(|_| {
                x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                (x >> 33) % keys
            })
            .collect();
        s.prefetch(batch.iter());
        peaks.push(s.in_memory());
        for k in &batch {
            *s.entry_ref(k) += 1;
            *want.get_mut(k).unwrap() += 1;
        }
    }
    assert_eq!(
        s.mem.table_bytes(),
        table,
        "the table neither grew nor shrank"
    );
    // After the first rounds, memory is refilled past three quarters of the slots.
    let late = *peaks[20..].iter().max().unwrap();
    assert!(
        late > usable * 3 / 4,
        "at most {late} entries in memory late on, of {usable} usable slots: {peaks:?}"
    );
    assert_eq!(
        s.iter().map(|(k, v)| (*k, *v)).collect::<BTreeMap<_, _>>(),
        want
    );
}

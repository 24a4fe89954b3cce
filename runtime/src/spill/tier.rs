//! The disk tier: cold entries of one keyed state in sorted runs in the working
//! directory, as bytes (postcard key -> change stamp and postcard value).
//!
//! Each eviction batch is written as a new run in one sequential pass; runs of like
//! size are merged, so a key's bytes are rewritten a few times per doubling of the
//! store and a lookup asks a few Bloom filters and reads one block. A
//! B-tree instead rewrote a leaf per evicted key. The files are a cache that no crash
//! needs: nothing is fsynced, and they are deleted when the state is dropped and when a
//! new run finds them.
//! A file of dirty marks holds the entries evicted while changed, so a delta reads them
//! in one sequential pass, neither scanning nor looking up the store.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::absent::Absent;
pub(crate) use super::ahead::{Ahead, Fetched};
use super::backend::{marks_file_name, run_file_name, DiskConfig};
use super::batch::Batch;
use super::bloom;
use super::marks::Marks;
use super::merge::Merge;
use super::run::{Record, Run, RunWriter};
use super::superseded::Superseded;

/// A failure of the working directory's store.
pub type TierError = String;

/// An evicted entry: key bytes, change stamp, value bytes.
pub(crate) type Victim = (Vec<u8>, u64, Vec<u8>);

pub(crate) struct Tier {
    dir: PathBuf,
    /// This tier's number in the process, in its file names.
    n: u64,
    /// The next run file's number.
    next_run: u64,
    /// Oldest first. Shared with lookups ahead ([`Tier::look_up_ahead`]): a run merged
    /// away meanwhile keeps its file until the last one is done with it.
    runs: Vec<Arc<Run>>,
    /// Bytes the runs hold in memory, summed when they change.
    held: usize,
    /// Keys removed from the state: written as removals with the next batch, never read.
    pending: HashSet<Vec<u8>>,
    /// Entries on disk whose key is not in memory. A key brought back into memory keeps
    /// its disk copy (stale, skipped by every reader) until it is evicted again or
    /// removed: marking each lookup would add a write per miss.
    live: u64,
    /// Stamps up to this are in a stored checkpoint: their dirty marks can go.
    acked: AtomicU64,
    marks: Marks,
    /// Marks up to this stamp are gone from `marks`.
    pruned: u64,
    /// Marks (key, stamp) whose entry was taken back into memory since: a delta skips
    /// them (the key is in memory, or was evicted again with a mark of its own, or
    /// removed). Dropped with the marks they name.
    superseded: Superseded,
    /// Past this many bytes `superseded` is emptied (without deltas nothing else would
    /// empty it), and the marks it covered are checked by a lookup instead.
    superseded_cap: usize,
    /// Marks stamped up to this are checked by looking their key up: the newest copy on
    /// disk must still carry the mark's stamp.
    looked_up: u64,
    /// Keys the last batch lookup found on no run, until the next run is written.
    absent: Absent,
}

/// Entries written to runs by every tier of the process (a test's proof that its state
/// went to disk).
static EVICTED: AtomicU64 = AtomicU64::new(0);

/// Entries evicted to disk so far in this process.
pub(crate) fn evicted() -> u64 {
    EVICTED.load(Ordering::Relaxed)
}

impl Tier {
    pub(crate) fn open(c: &DiskConfig) -> Result<Tier, TierError> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let marks = Marks::create(c.dir.join(marks_file_name(n)))?;
        Ok(Tier {
            dir: c.dir.clone(),
            n,
            next_run: 0,
            runs: Vec::new(),
            held: 0,
            pending: HashSet::new(),
            live: 0,
            acked: AtomicU64::new(0),
            marks,
            pruned: 0,
            superseded: Superseded::default(),
            absent: Absent::default(),
            // A floor for tiny budgets (tests): a few hundred marks.
            superseded_cap: (c.memory / 16).max(64 << 10),
            looked_up: 0,
        })
    }

    /// Bytes this tier holds in memory: the runs' filters and block indexes, and the
    /// superseded marks.
    pub(crate) fn memory(&self) -> usize {
        self.held + self.superseded.bytes()
    }

    /// Entries on disk whose key is not in memory.
    pub(crate) fn len(&self) -> u64 {
        self.live
    }

    /// `f` of `key`'s entry (its stamp and value bytes), which the caller puts into
    /// memory (the disk copy turns stale). Only for a key not in memory.
    pub(crate) fn take<R>(
        &mut self,
        key: &[u8],
        f: impl FnOnce(u64, &[u8]) -> R,
    ) -> Result<Option<R>, TierError> {
        let Some((stamp, got)) = self.peek(key, |stamp, v| (stamp, f(stamp, v)))? else {
            return Ok(None);
        };
        self.taken(key, stamp);
        Ok(Some(got))
    }

    /// The copy of `key` stamped `stamp` went back into memory.
    fn taken(&mut self, key: &[u8], stamp: u64) {
        self.live -= 1;
        // A mark of this copy may still be read by a delta.
        if stamp > self.pruned.max(self.looked_up) {
            let added = self.superseded.insert(key, stamp);
            if !added || self.superseded.bytes() > self.superseded_cap {
                self.looked_up = self.marks.newest();
                self.superseded.clear();
            }
        }
    }

    /// [`take`](Self::take) of many keys in one pass over the runs: `f(i, stamp, value)`
    /// for each of `keys` (sorted by [`compare`](super::key_order::compare), distinct, none
    /// in memory) found on disk, which the caller puts into memory. Each run reads each
    /// block its keys need once. A large batch is read by two threads, each taking half
    /// of the keys through every run: the reads are independent, and most of a batch's
    /// time with most keys on disk.
    pub(crate) fn take_sorted(
        &mut self,
        keys: &[&[u8]],
        mut f: impl FnMut(usize, u64, &[u8]) -> Result<(), TierError>,
    ) -> Result<(), TierError> {
        if self.live == 0 {
            return Ok(());
        }
        let hashes: Vec<u64> = keys.iter().map(|k| bloom::hash(k)).collect();
        let open: Vec<usize> = (0..keys.len())
            .filter(|&i| self.pending.is_empty() || !self.pending.contains(keys[i]))
            .collect();
        let (runs, hashes) = (&self.runs, &hashes);
        let mut mine = open;
        let theirs = match mine.len() >= SPLIT_AT {
            true => mine.split_off(mine.len() / 2),
            false => Vec::new(),
        };
        let theirs = &theirs;
        let panicked = |_| "state working directory: a lookup thread panicked";
        let (found, open) = std::thread::scope(|scope| {
            let other = (!theirs.is_empty()).then(|| {
                std::thread::Builder::new()
                    .spawn_scoped(scope, move || look_up(runs, keys, hashes, theirs))
            });
            let (mut found, mut open) = look_up(runs, keys, hashes, &mine)?;
            let (more, rest) = match other {
                None => return Ok((found, open)),
                Some(Ok(other)) => other.join().map_err(panicked)??,
                // No thread to be had (the process is at its limit): the other half here.
                Some(Err(_)) => look_up(runs, keys, hashes, theirs)?,
            };
            found.append(more);
            open.extend(rest);
            Ok::<_, TierError>((found, open))
        })?;
        for &(i, stamp, start, end) in &found.items {
            f(i, stamp, &found.bytes[start..end])?;
        }
        for &(i, stamp, _, _) in &found.items {
            self.taken(keys[i], stamp);
        }
        // Keys removed (`pending`, or a removal in a run) are not remembered: their own
        // lookups find that again.
        self.absent.clear();
        for i in open {
            self.absent.push(keys[i]);
        }
        Ok(())
    }

    /// Starts looking up the keys `bytes[spans[i].0..spans[i].1]` listed in `order`
    /// (sorted by [`compare`](super::key_order::compare), distinct, none in memory) on a
    /// thread of its own, over the runs as they are now, while the caller goes on (it
    /// processes the events before those keys'). [`fetched`](Self::fetched) waits for it
    /// (taking a share of what is left); [`take_fetched`](Self::take_fetched) then brings
    /// in each copy found that is still its key's newest.
    pub(crate) fn look_up_ahead(
        &self,
        bytes: Vec<u8>,
        spans: Vec<(usize, usize)>,
        mut order: Vec<usize>,
    ) -> Ahead {
        let key = |i: usize| &bytes[spans[i].0..spans[i].1];
        if self.live == 0 {
            order.clear();
        }
        if !self.pending.is_empty() {
            order.retain(|&i| !self.pending.contains(key(i)));
        }
        Ahead::start(self.next_run, self.runs.clone(), bytes, spans, order)
    }

    /// Waits for a lookup ahead to end, looking up what it has not started yet here.
    pub(crate) fn fetched(&self, ahead: Ahead) -> Result<Fetched, TierError> {
        ahead.finish()
    }

    /// Memory may miss keys of the lookup `f`: runs were written since it started (keys
    /// in memory then may have been evicted, and a copy it found may no longer be its
    /// key's newest).
    pub(crate) fn written_since(&self, f: &Fetched) -> bool {
        self.next_run > f.since()
    }

    /// `then` of the copy `f` found for `key` (its stamp and value bytes), which the
    /// caller puts into memory, if that copy is still the newest: the key was neither
    /// removed nor written to a run since the lookup started (evicted after the events
    /// before it took it back, unless unchanged). Only for a key not in memory.
    pub(crate) fn take_fetched<R>(
        &mut self,
        f: &Fetched,
        item: usize,
        then: impl FnOnce(u64, &[u8]) -> R,
    ) -> Result<Option<R>, TierError> {
        let (i, stamp, value) = f.item(item);
        let key = f.key(i);
        if self.pending.contains(key) {
            return Ok(None);
        }
        // Runs written since are above the older ones (a merge replaces the newest).
        let hash = bloom::hash(key);
        let newer = self
            .runs
            .iter()
            .rev()
            .take_while(|r| r.number() >= f.since());
        let mut seen = false;
        for run in newer {
            let copy = run.get_with(key, hash, &mut |s, _, v: Option<&[u8]>| (s, v.is_some()))?;
            match copy {
                Some((s, true)) if s == stamp => {
                    seen = true;
                    break;
                }
                Some(_) => return Ok(None),
                None => {}
            }
        }
        // Every run is new: they were merged down to the bottom since, where a removal
        // drops the copies it hides, and the copy is not among them.
        if !seen && self.runs.first().is_none_or(|r| r.number() >= f.since()) {
            return Ok(None);
        }
        self.taken(key, stamp);
        Ok(Some(then(stamp, value)))
    }

    /// After a lookup ahead's copies are in memory: the keys it found on no run are
    /// known to be on none until the next run is written (unless one was written since
    /// it started).
    pub(crate) fn fetched_absent(&mut self, f: &Fetched) {
        self.absent.clear();
        if !self.written_since(f) {
            for i in f.open() {
                self.absent.push(f.key(i));
            }
        }
    }

    /// `key` was removed from the state: its disk copy, if any, dies at the next batch.
    pub(crate) fn forget(&mut self, key: Vec<u8>) {
        self.pending.insert(key);
    }

    /// `f` of `key`'s entry on disk (stamp, value bytes), left there. Only for a key not
    /// in memory.
    pub(crate) fn peek<R>(
        &self,
        key: &[u8],
        f: impl FnOnce(u64, &[u8]) -> R,
    ) -> Result<Option<R>, TierError> {
        if self.live == 0 || self.pending.contains(key) {
            return Ok(None);
        }
        self.get(key, |stamp, _, v| f(stamp, v))
    }

    /// `f` of the newest copy of `key` on disk: its stamp, mark and value.
    fn get<R>(
        &self,
        key: &[u8],
        f: impl FnOnce(u64, u64, &[u8]) -> R,
    ) -> Result<Option<R>, TierError> {
        if self.absent.contains(key) {
            return Ok(None);
        }
        let hash = bloom::hash(key);
        let mut f = Some(f);
        // `None`: removed there.
        let mut found =
            |stamp, mark, v: Option<&[u8]>| v.map(|v| (f.take().expect("once"))(stamp, mark, v));
        for run in self.runs.iter().rev() {
            if let Some(got) = run.get_with(key, hash, &mut found)? {
                return Ok(got);
            }
        }
        Ok(None)
    }

    /// Writes the evicted entries `gather` returns as a run, with removals of the removed
    /// keys, and gives the batch back with what `then` (which `gather` returns too, run
    /// once the run is written) returns. The runs written before are merged meanwhile, on
    /// a thread of their own: the merge only reads them, and its file is its own; the new
    /// run waits on top for the next batch's merge. True when the dirty marks outgrew the
    /// live entries and were dropped: the caller's history must start over (its next
    /// delta is whole).
    pub(crate) fn write_with<R, Then: FnOnce() -> R>(
        &mut self,
        gather: impl FnOnce() -> Result<(Batch, Then), TierError>,
    ) -> Result<(Batch, bool, R), TierError> {
        self.absent.clear();
        let acked = self.acked.load(Ordering::Relaxed);
        if acked > self.pruned {
            self.marks.keep_after(acked)?;
            self.pruned = acked;
            self.superseded.keep_after(acked);
        }
        let names = self.merge_names();
        let number = self.next_run;
        let path = self.dir.join(run_file_name(self.n, number));
        self.next_run += 1;
        let looked_up = self.looked_up;
        let Tier {
            runs,
            marks,
            superseded,
            pending,
            ..
        } = self;
        let (runs_now, names) = (&*runs, &names);
        let panicked = |_| "state working directory: a merge thread panicked";
        let (merged, batch, run, then) = std::thread::scope(|scope| {
            let merge = (!names.is_empty()).then(|| {
                std::thread::Builder::new().spawn_scoped(scope, || merged_top(runs_now, names))
            });
            let (mut batch, then) = gather()?;
            batch.sort();
            let mut removed: Vec<Vec<u8>> = pending.drain().collect();
            removed.sort_unstable();
            let w = RunWriter::create(path, batch.len() + removed.len())?;
            let run = write_run(&batch, w, removed, (acked, looked_up), marks, superseded)
                .map(|r| r.numbered(number));
            let then = then();
            let merged = match merge {
                None => None,
                Some(Ok(m)) => m.join().map_err(panicked)??,
                // No thread to be had (the process is at its limit): merged here.
                Some(Err(_)) => merged_top(runs_now, names)?,
            };
            Ok::<_, TierError>((merged, batch, run?, then))
        })?;
        if let Some((k, merged)) = merged {
            self.runs.truncate(self.runs.len() - k);
            self.runs.push(Arc::new(merged));
        }
        self.runs.push(Arc::new(run));
        self.marks.flush()?;
        self.marks.end_batch();
        self.live += batch.len() as u64;
        EVICTED.fetch_add(batch.len() as u64, Ordering::Relaxed);
        self.held = self.runs.iter().map(|r| r.memory()).sum();
        let restart = self.marks.too_many(self.live);
        if restart {
            self.marks.clear()?;
            self.superseded.clear();
        }
        Ok((batch, restart, then))
    }

    /// File names for the runs of the [`merged_top`] due now, numbered ahead: none when
    /// no merge is due (and no thread is started for it).
    fn merge_names(&mut self) -> Vec<(u64, PathBuf)> {
        let first = self.next_run;
        self.next_run += merges_due(&self.runs) as u64;
        (first..self.next_run)
            .map(|i| (i, self.dir.join(run_file_name(self.n, i))))
            .collect()
    }

    /// Every entry on disk (key bytes, stamp, value bytes) in key order, stale copies of
    /// keys in memory included: the caller skips those.
    pub(crate) fn entries(
        &self,
    ) -> Result<impl Iterator<Item = Result<Victim, TierError>> + '_, TierError> {
        let merge = Merge::new(self.runs.iter().rev().map(|r| &**r))?;
        Ok(merge.filter_map(move |r| match r {
            Err(e) => Some(Err(e)),
            Ok(r) => {
                let value = r.value?;
                if self.pending.contains(&r.key) {
                    return None;
                }
                Some(Ok((r.key, r.stamp, value)))
            }
        }))
    }

    /// Calls `f` with each entry on disk changed after stamp `after` (key bytes, value
    /// bytes), in the order of its dirty marks, stale copies of keys in memory included:
    /// the caller skips those. Nothing is gathered, so a delta of millions of evicted
    /// changes holds one entry at a time, and nothing is looked up: the values are the
    /// marks'.
    ///
    /// Each entry comes once: a mark names one eviction of one change; a key that comes
    /// back from disk and is changed is evicted with a new stamp (the older mark is
    /// superseded by then); one evicted again unchanged (a prefetch brought it back
    /// before its event) gets no second mark, or, if its older mark is checked by a
    /// lookup, a second mark whose number its copy carries (the older one then fails).
    pub(crate) fn changed_after(
        &self,
        after: u64,
        mut f: impl FnMut(&[u8], &[u8]) -> Result<(), TierError>,
    ) -> Result<(), TierError> {
        for m in self.marks.read_after(after)? {
            let m = m?;
            if m.stamp <= after || self.pending.contains(&m.key) {
                continue;
            }
            if m.stamp <= self.looked_up {
                // A mark whose entry has another stamp was overwritten by a later eviction;
                // one whose copy carries another mark's number, too (the key was evicted
                // again unchanged, marked again). A copy that carries none went back to
                // disk unchanged while its older mark was superseded, which then held again.
                let newest = self.get(&m.key, |stamp, mark, _| (stamp, mark))?;
                if newest.is_some_and(|(s, n)| s == m.stamp && (n == 0 || n == m.number)) {
                    f(&m.key, &m.value)?;
                }
                continue;
            }
            // Its key came back into memory (and was removed or evicted again since).
            if self.superseded.contains(&m.key, m.stamp) {
                continue;
            }
            f(&m.key, &m.value)?;
        }
        Ok(())
    }

    /// Marks stamped up to this are checked by a lookup.
    #[cfg(test)]
    pub(crate) fn marks_checked_by_lookup(&self) -> u64 {
        self.looked_up
    }

    /// Changes up to `stamp` are in a stored checkpoint: no delta needs them again.
    pub(crate) fn ack(&self, stamp: u64) {
        self.acked.fetch_max(stamp, Ordering::Relaxed);
    }
}

/// Keys of a batch lookup past which two threads share it: below, starting a thread
/// costs more than half of the reads. Tests split their small batches too.
const SPLIT_AT: usize = if cfg!(test) { 16 } else { 1024 };

/// What a batch lookup found: (key index, stamp, value span in `bytes`).
#[derive(Default)]
pub(crate) struct Found {
    pub(crate) items: Vec<(usize, u64, usize, usize)>,
    pub(crate) bytes: Vec<u8>,
}

impl Found {
    pub(crate) fn append(&mut self, other: Found) {
        let base = self.bytes.len();
        self.bytes.extend_from_slice(&other.bytes);
        (self.items).extend(
            other
                .items
                .into_iter()
                .map(|(i, s, a, b)| (i, s, a + base, b + base)),
        );
    }
}

/// Looks `open` (indexes into `keys`, in key order) up in `runs`, newest first: what was
/// found, and the indexes found on no run (in key order; a key removed is neither).
pub(crate) fn look_up(
    runs: &[Arc<Run>],
    keys: &[&[u8]],
    hashes: &[u64],
    open: &[usize],
) -> Result<(Found, Vec<usize>), TierError> {
    let mut open = open.to_vec();
    let mut found = Found::default();
    // Newest run first: the first copy of a key found is its newest.
    for run in runs.iter().rev() {
        if open.is_empty() {
            break;
        }
        let mut missed = Vec::with_capacity(open.len());
        let mut hit = |i: usize, stamp, v: Option<&[u8]>| {
            if let Some(v) = v {
                let start = found.bytes.len();
                found.bytes.extend_from_slice(v);
                found.items.push((i, stamp, start, found.bytes.len()));
            }
            Ok(())
        };
        run.get_sorted(keys, hashes, &open, &mut hit, &mut missed)?;
        // Key order again, for the next run's blocks.
        missed.sort_unstable();
        open = missed;
    }
    Ok((found, open))
}

/// The newest runs merged while the older of the newest two is at most twice the newer:
/// then each run is more than twice the next, so all runs together are less than twice
/// the oldest (which holds each key once), and there are about log2(batches) of them.
/// How many of the newest runs it replaces and the merged run, written at `names` (one
/// per merge at most); `None`: no merge is due.
fn merged_top(
    runs: &[Arc<Run>],
    names: &[(u64, PathBuf)],
) -> Result<Option<(usize, Run)>, TierError> {
    let mut top: Option<(usize, Run)> = None;
    let mut names = names.iter();
    loop {
        let k = top.as_ref().map_or(1, |t| t.0);
        let Some(older) = runs.len().checked_sub(k + 1).map(|i| &*runs[i]) else {
            break;
        };
        let newer = top.as_ref().map_or(&*runs[runs.len() - 1], |t| &t.1);
        if older.records() > 2 * newer.records() {
            break;
        }
        // Merged into the oldest run, a removal has nothing left to hide.
        let bottom = runs.len() == k + 1;
        let (number, path) = names.next().expect("a name for each merge").clone();
        let merged = merge_two(older, newer, path, bottom)?.numbered(number);
        top = Some((k + 1, merged));
    }
    Ok(top)
}

/// How many merges [`merged_top`] makes of `runs` at most: as many as it would were no
/// copy dropped (a merge that drops copies leaves a smaller run, which stops the cascade
/// no later).
fn merges_due(runs: &[Arc<Run>]) -> usize {
    let Some(mut newer) = runs.last().map(|r| r.records()) else {
        return 0;
    };
    let mut merges = 0;
    for older in runs.iter().rev().skip(1).map(|r| r.records()) {
        if older > 2 * newer {
            break;
        }
        newer += older;
        merges += 1;
    }
    merges
}

/// `older` and `newer` merged into a run at `path`; `bottom`: removals are dropped.
fn merge_two(older: &Run, newer: &Run, path: PathBuf, bottom: bool) -> Result<Run, TierError> {
    let capacity = (older.records() + newer.records()) as usize;
    let mut w = RunWriter::create(path, capacity)?;
    let mut merge = Merge::new([newer, older].into_iter())?;
    let mut r = Record::default();
    while merge.next_into(&mut r)? {
        if r.value.is_some() || !bottom {
            w.push(&r.key, r.stamp, r.mark, r.value.as_deref())?;
        }
    }
    w.finish()
}

/// The run of an eviction batch (sorted) with removals of the `removed` keys (sorted),
/// its changes after `acked` marked dirty.
fn write_run(
    batch: &Batch,
    mut w: RunWriter,
    removed: Vec<Vec<u8>>,
    (acked, looked_up): (u64, u64),
    marks: &mut Marks,
    superseded: &mut Superseded,
) -> Result<Run, TierError> {
    let mut removed = removed.into_iter().peekable();
    for (k, stamp, v) in batch.iter() {
        while let Some(r) = removed.next_if(|r| r.as_slice() <= k) {
            // A key removed, then added again and evicted: the batch's copy is newer.
            if r != k {
                w.push(&r, 0, 0, None)?;
            }
        }
        // 0: the copy matches any mark of its stamp (there is one at most).
        let mark = match stamp > acked {
            false => 0,
            // Evicted again unchanged (a prefetch brought it back, and it went before its
            // event came): the older mark of this copy holds again.
            true if superseded.remove(k, stamp) => 0,
            // A new change: a copy taken back since `looked_up` was last raised would be
            // in `superseded`, so this is the change's only mark.
            true if stamp > looked_up => {
                marks.append(stamp, k, v)?;
                0
            }
            // A new change, or one taken back while its marks were checked by lookups
            // (not in `superseded`): the copy carries this mark's number, so an older
            // mark of the same change no longer matches it.
            true => marks.append(stamp, k, v)?,
        };
        w.push(k, stamp, mark, Some(v))?;
    }
    for r in removed {
        w.push(&r, 0, 0, None)?;
    }
    w.finish()
}

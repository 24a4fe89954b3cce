//! The disk tier: cold entries of one keyed state in a `redb` file of the working
//! directory, as bytes (postcard key -> change stamp and postcard value).
//!
//! The file is a cache that no crash needs (it is deleted when the state is dropped and
//! when a new run finds it), but each batch's commit is durable: only then does redb
//! reuse the pages the batch freed.
//! A file of dirty marks names the entries evicted while changed, so a delta finds them
//! without scanning the store.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use redb::{Database, ReadOnlyTable, ReadableDatabase, TableDefinition};

use super::backend::{marks_file_name, store_file_name, DiskConfig};
use super::batch::Batch;
use super::key_bytes::KeyBytes;
use super::marks::Marks;
use super::presence::Presence;

const ENTRIES: TableDefinition<KeyBytes, &[u8]> = TableDefinition::new("entries");

/// A failure of the working directory's store.
pub type TierError = String;

fn err(what: &str) -> impl Fn(&dyn std::fmt::Display) -> TierError + '_ {
    move |e| format!("state working directory: {what}: {e}")
}

/// An evicted entry: key bytes, change stamp, value bytes.
pub(crate) type Victim = (Vec<u8>, u64, Vec<u8>);

pub(crate) struct Tier {
    db: Database,
    path: PathBuf,
    /// Dropped while a batch is written: a reader pins the pages the batch replaces.
    read: Option<ReadOnlyTable<KeyBytes, &'static [u8]>>,
    /// Every key written here: a key it has never seen is not looked up.
    present: Presence,
    /// Keys removed from the state: deleted from disk at the next batch, never read.
    pending: HashSet<Vec<u8>>,
    /// Entries on disk whose key is not in memory. A key brought back into memory keeps
    /// its disk copy (stale, skipped by every reader) until it is evicted again and
    /// overwritten: a delete per lookup would double the writes.
    live: u64,
    /// Stamps up to this are in a stored checkpoint: their dirty marks can go.
    acked: AtomicU64,
    marks: Marks,
    /// Marks up to this stamp are gone from `marks`.
    pruned: u64,
}

impl Tier {
    pub(crate) fn open(c: &DiskConfig) -> Result<Tier, TierError> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = c.dir.join(store_file_name(n));
        let marks = Marks::create(c.dir.join(marks_file_name(n)))?;
        let db = Database::builder()
            .set_cache_size(super::budget::cache_bytes(c.memory))
            .create(&path)
            .map_err(|e| err("creating the store")(&e))?;
        let txn = db.begin_write().map_err(|e| err("writing")(&e))?;
        txn.open_table(ENTRIES).map_err(|e| err("writing")(&e))?;
        txn.commit().map_err(|e| err("writing")(&e))?;
        let read = Some(Self::reader(&db)?);
        Ok(Tier {
            db,
            path,
            read,
            present: Presence::default(),
            pending: HashSet::new(),
            live: 0,
            acked: AtomicU64::new(0),
            marks,
            pruned: 0,
        })
    }

    fn reader(db: &Database) -> Result<ReadOnlyTable<KeyBytes, &'static [u8]>, TierError> {
        let r = db.begin_read().map_err(|e| err("reading")(&e))?;
        r.open_table(ENTRIES).map_err(|e| err("reading")(&e))
    }

    fn reading(&self) -> Result<&ReadOnlyTable<KeyBytes, &'static [u8]>, TierError> {
        self.read
            .as_ref()
            .ok_or_else(|| "state working directory: a batch failed half-way".to_string())
    }

    /// Bytes this tier holds in memory outside the store's page cache.
    pub(crate) fn memory(&self) -> usize {
        self.present.bytes()
    }

    /// Entries on disk whose key is not in memory.
    pub(crate) fn len(&self) -> u64 {
        self.live
    }

    /// `key`'s entry, which the caller puts into memory (the disk copy turns stale): its
    /// stamp and value bytes. Only for a key not in memory.
    pub(crate) fn take(&mut self, key: &[u8]) -> Result<Option<(u64, Vec<u8>)>, TierError> {
        let got = self.peek(key)?;
        if got.is_some() {
            self.live -= 1;
        }
        Ok(got)
    }

    /// `key` was removed from the state: its disk copy, if any, goes at the next batch.
    pub(crate) fn forget(&mut self, key: Vec<u8>) {
        self.pending.insert(key);
    }

    /// `key`'s entry on disk, left there. Only for a key not in memory.
    pub(crate) fn peek(&self, key: &[u8]) -> Result<Option<(u64, Vec<u8>)>, TierError> {
        if self.live == 0 || !self.present.may_contain(key) || self.pending.contains(key) {
            return Ok(None);
        }
        self.get(key)
    }

    fn get(&self, key: &[u8]) -> Result<Option<(u64, Vec<u8>)>, TierError> {
        let got = self.reading()?.get(key).map_err(|e| err("reading")(&e))?;
        Ok(got.map(|v| split(v.value())))
    }

    /// Writes evicted entries and deletes the copies of removed keys. True when the
    /// dirty marks outgrew the live entries and were dropped: the caller's history must
    /// start over (its next delta is whole).
    pub(crate) fn write(&mut self, mut batch: Batch) -> Result<bool, TierError> {
        batch.sort();
        let acked = self.acked.load(Ordering::Relaxed);
        if acked > self.pruned {
            self.marks.keep_after(acked)?;
            self.pruned = acked;
        }
        // Each commit is durable: redb reuses the pages a batch frees only after a durable
        // commit, and with random keys a batch rewrites most of the tree's leaves, so
        // non-durable commits grow the file by a tree's size each. Nothing reads them back
        // after a crash (the file is a cache); the fsync is the price of reuse.
        self.read = None;
        let txn = self.db.begin_write().map_err(|e| err("writing")(&e))?;
        {
            let mut entries = txn.open_table(ENTRIES).map_err(|e| err("writing")(&e))?;
            let w = err("writing");
            for k in self.pending.drain() {
                entries.remove(k.as_slice()).map_err(|e| w(&e))?;
            }
            let mut buf = Vec::new();
            for (k, stamp, v) in batch.iter() {
                buf.clear();
                buf.extend_from_slice(&stamp.to_le_bytes());
                buf.extend_from_slice(v);
                entries.insert(k, buf.as_slice()).map_err(|e| w(&e))?;
                self.present.insert(k);
                if stamp > acked {
                    self.marks.append(stamp, k)?;
                }
            }
        }
        txn.commit().map_err(|e| err("writing")(&e))?;
        self.marks.flush()?;
        self.marks.end_batch();
        self.live += batch.len() as u64;
        self.read = Some(Self::reader(&self.db)?);
        if self.marks.too_many(self.live) {
            self.marks.clear()?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Every entry on disk (key bytes, stamp, value bytes), stale copies of keys in
    /// memory included: the caller skips those.
    pub(crate) fn entries(
        &self,
    ) -> Result<impl Iterator<Item = Result<Victim, TierError>> + '_, TierError> {
        let range = self
            .reading()?
            .range::<&[u8]>(..)
            .map_err(|e| err("reading")(&e))?;
        Ok(range.filter_map(move |r| match r {
            Err(e) => Some(Err(err("reading")(&e))),
            Ok((k, v)) => {
                let k = k.value();
                if self.pending.contains(k) {
                    return None;
                }
                let (stamp, value) = split(v.value());
                Some(Ok((k.to_vec(), stamp, value)))
            }
        }))
    }

    /// Entries on disk changed after stamp `after` (key bytes, stamp, value bytes), once
    /// each, stale copies of keys in memory included: the caller skips those.
    pub(crate) fn changed_after(&self, after: u64) -> Result<Vec<Victim>, TierError> {
        let mut out = Vec::new();
        for m in self.marks.read_after(after)? {
            let (marked, key) = m?;
            if marked <= after || self.pending.contains(&key) {
                continue;
            }
            // A mark whose entry has another stamp was overwritten by a later eviction.
            match self.get(&key)? {
                Some((stamp, value)) if stamp == marked => out.push((key, stamp, value)),
                _ => {}
            }
        }
        out.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        out.dedup_by(|a, b| a.0 == b.0);
        Ok(out)
    }

    /// Changes up to `stamp` are in a stored checkpoint: no delta needs them again.
    pub(crate) fn ack(&self, stamp: u64) {
        self.acked.fetch_max(stamp, Ordering::Relaxed);
    }
}

impl Drop for Tier {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn split(v: &[u8]) -> (u64, Vec<u8>) {
    let (s, rest) = v.split_at(8);
    (
        u64::from_le_bytes(s.try_into().expect("8 bytes")),
        rest.to_vec(),
    )
}

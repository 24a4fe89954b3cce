//! A sorted run: the entries of one eviction batch (or of a merge of runs) in a file of
//! the working directory, in key order, written once and only read after. A lookup
//! asks the run's Bloom filter, then reads the one block its key can be in, found
//! through the first key of each block kept in memory: first by eight bytes of it past
//! the bytes all the run's keys share (a dense array of numbers), then, on a tie, by the
//! whole key.
//!
//! Record, its numbers as LEB128 varints: bytes its key shares with the key before it in
//! its block (0 for a block's first) times two, plus one if a mark's number follows; the
//! key's other bytes' length, the value's length plus one (0 for a removed key), stamp,
//! the number of the dirty mark written with it if any; then the key's other bytes and
//! the value bytes.
//! Sorted keys share most of their bytes with the one before ("customer-00012" after
//! "customer-00011"): such a record is about half the bytes of a fixed head and the
//! whole key, and a lookup's read copies that much less.

use std::cell::RefCell;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Write};
use std::path::PathBuf;

use super::bloom::Bloom;
use super::key_order::{compare, prefix};
use crate::state::key_order::common_len;

/// Bytes of records per block: a lookup reads one block from the OS page cache. Smaller
/// blocks copy less per lookup but need more first keys in memory, charged to the budget.
const BLOCK: u64 = 1024;
/// A batch lookup reads blocks at most this many apart in one read: adjacent ones. A
/// block between would be copied for nothing; at 4k keys against a run of 8k blocks
/// (the bench's `exceeds`) that is a quarter more bytes for a third fewer reads, and the
/// kernel's copy costs more than the syscall.
const GAP: usize = 1;
/// Bytes of one read of a batch lookup at most.
const SPAN: u64 = 64 << 10;
/// A record's head at most: five varints.
const HEAD: usize = 50;

/// One record of a run.
#[derive(Default)]
pub(crate) struct Record {
    pub(crate) key: Vec<u8>,
    pub(crate) stamp: u64,
    /// The dirty mark written with this copy (`Marks::append`'s number); 0: none, or the
    /// copy went back to disk unchanged and its older mark holds.
    pub(crate) mark: u64,
    /// `None`: the key was removed from the state (older runs' copies are dead).
    pub(crate) value: Option<Vec<u8>>,
}

/// What a batch lookup does with a key found: its index, stamp and value (`None`:
/// removed).
pub(crate) type Hit<'a> = dyn FnMut(usize, u64, Option<&[u8]>) -> Result<(), String> + 'a;

/// What a lookup does with the copy it found: its stamp, mark and value (`None`:
/// removed).
pub(crate) type OnCopy<'a, R> = dyn FnMut(u64, u64, Option<&[u8]>) -> R + 'a;

/// A key's stamp and value in a run (`None`: removed).
#[cfg(test)]
pub(crate) type Stored = (u64, Option<Vec<u8>>);

fn io(what: &'static str) -> impl Fn(std::io::Error) -> String {
    move |e| format!("state working directory: {what} a run: {e}")
}

struct First {
    key: (u32, u32),
    offset: u64,
}

pub(crate) struct Run {
    file: File,
    path: PathBuf,
    /// Each block's first key: where it is in `firsts`, the block's offset.
    index: Vec<First>,
    /// The first keys of the blocks, one after the other.
    firsts: Vec<u8>,
    /// Bytes every first key starts with (encoded keys share a length and often a text
    /// prefix, as "customer-" does): a key without them takes the slow search.
    shared: usize,
    /// Each block's first key's [`prefix`] past `shared` bytes.
    prefixes: Vec<u64>,
    bytes: u64,
    bloom: Bloom,
    records: u64,
    /// The tier's number for it (in its file name): runs written later have larger ones.
    number: u64,
}

/// Writes a run, records in ascending key order.
pub(crate) struct RunWriter {
    out: BufWriter<File>,
    run: Run,
    block_start: u64,
    /// The key of the block's last record.
    last: Vec<u8>,
}

impl RunWriter {
    /// A new run file at `path`, for up to `capacity` records (sizes its filter).
    pub(crate) fn create(path: PathBuf, capacity: usize) -> Result<RunWriter, String> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(io("creating"))?;
        let out = BufWriter::with_capacity(1 << 16, file.try_clone().map_err(io("opening"))?);
        Ok(RunWriter {
            out,
            run: Run {
                file,
                path,
                index: Vec::new(),
                firsts: Vec::new(),
                shared: 0,
                prefixes: Vec::new(),
                bytes: 0,
                bloom: Bloom::new(capacity),
                records: 0,
                number: 0,
            },
            block_start: 0,
            last: Vec::new(),
        })
    }

    pub(crate) fn push(
        &mut self,
        key: &[u8],
        stamp: u64,
        mark: u64,
        value: Option<&[u8]>,
    ) -> Result<(), String> {
        let run = &mut self.run;
        if run.index.is_empty() || run.bytes - self.block_start >= BLOCK {
            let start = u32::try_from(run.firsts.len()).map_err(|_| "a run over 4 GiB of keys")?;
            run.firsts.extend_from_slice(key);
            run.index.push(First {
                key: (start, start + key.len() as u32),
                offset: run.bytes,
            });
            self.block_start = run.bytes;
            self.last.clear();
        }
        let shared = common_len(&self.last, key);
        let v = value.unwrap_or_default();
        let mut head = [0u8; HEAD];
        // The low bit of the first number says whether a mark's number follows the stamp.
        let mut n = put_varint(&mut head, 0, (shared as u64) << 1 | u64::from(mark != 0));
        n = put_varint(&mut head, n, (key.len() - shared) as u64);
        n = put_varint(&mut head, n, value.map_or(0, |v| v.len() as u64 + 1));
        n = put_varint(&mut head, n, stamp);
        if mark != 0 {
            n = put_varint(&mut head, n, mark);
        }
        let w = io("writing");
        self.out.write_all(&head[..n]).map_err(&w)?;
        self.out.write_all(&key[shared..]).map_err(&w)?;
        self.out.write_all(v).map_err(&w)?;
        run.bytes += (n + key.len() - shared + v.len()) as u64;
        run.bloom.insert(super::bloom::hash(key));
        run.records += 1;
        self.last.truncate(shared);
        self.last.extend_from_slice(&key[shared..]);
        Ok(())
    }

    /// The run, its bytes handed to the OS (no fsync: the working directory is a cache).
    pub(crate) fn finish(mut self) -> Result<Run, String> {
        self.out.flush().map_err(io("writing"))?;
        let run = &mut self.run;
        run.index.shrink_to_fit();
        run.firsts.shrink_to_fit();
        // Keys are sorted: the first and last share what every key between shares.
        if let (Some(a), Some(b)) = (run.index.first(), run.index.last()) {
            let (a, b) = (run.first_key(a), run.first_key(b));
            run.shared = common_len(a, b);
        }
        run.prefixes = (run.index.iter())
            .map(|f| prefix(&run.first_key(f)[run.shared..]))
            .collect();
        Ok(self.run)
    }
}

impl Run {
    /// This run, numbered `number` by its tier.
    pub(crate) fn numbered(mut self, number: u64) -> Run {
        self.number = number;
        self
    }

    /// The number its tier gave it (0 if none).
    pub(crate) fn number(&self) -> u64 {
        self.number
    }

    /// Records written, removals and keys since read back included.
    pub(crate) fn records(&self) -> u64 {
        self.records
    }

    /// Bytes held in memory: the filter and the blocks' first keys.
    pub(crate) fn memory(&self) -> usize {
        self.bloom.bytes()
            + self.index.capacity() * size_of::<First>()
            + self.firsts.capacity()
            + self.prefixes.capacity() * size_of::<u64>()
    }

    fn first_key(&self, f: &First) -> &[u8] {
        &self.firsts[f.key.0 as usize..f.key.1 as usize]
    }

    /// The number of blocks whose first key is at most `key`.
    fn blocks_upto(&self, key: &[u8]) -> usize {
        let upto = |fs: &[First]| fs.partition_point(|f| compare(self.first_key(f), key).is_le());
        let Some(first) = self.index.first() else {
            return 0;
        };
        if key.get(..self.shared) != Some(&self.first_key(first)[..self.shared]) {
            return upto(&self.index);
        }
        // Past the shared bytes a smaller prefix is a smaller key; equal ones say nothing.
        let p = prefix(&key[self.shared..]);
        let lo = self.prefixes.partition_point(|&q| q < p);
        let ties = self.prefixes[lo..].iter().take_while(|&&q| q == p).count();
        lo + upto(&self.index[lo..lo + ties])
    }

    /// `f` of the stamp, mark and value (`None`: removed) of `key`, whose
    /// [`hash`](super::bloom::hash) is `hash`, if this run has it. The value is borrowed
    /// from a buffer reused by every lookup of the thread.
    pub(crate) fn get_with<R>(
        &self,
        key: &[u8],
        hash: u64,
        f: &mut OnCopy<'_, R>,
    ) -> Result<Option<R>, String> {
        thread_local! {
            static BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
        }
        if !self.bloom.may_contain(hash) {
            return Ok(None);
        }
        let Some(b) = self.blocks_upto(key).checked_sub(1) else {
            return Ok(None);
        };
        let start = self.index[b].offset;
        let end = self.index.get(b + 1).map_or(self.bytes, |n| n.offset);
        let len = (end - start) as usize;
        BUF.with_borrow_mut(|buf| {
            if buf.len() < len {
                buf.resize(len, 0);
            }
            let block = &mut buf[..len];
            read_at(&self.file, block, start).map_err(io("reading"))?;
            Ok(find(block, key)?.map(|r| f(r.stamp, r.mark, r.value)))
        })
    }

    /// For each of `open` (indexes into `keys`, sorted by [`compare`] and distinct, with
    /// their [`hash`](super::bloom::hash)es in `hashes`): `hit` of its stamp and value
    /// (`None`: removed) if this run has it, else the index goes to `missed`. Each block
    /// is read once, and blocks at most [`GAP`] apart in one read of up to [`SPAN`] bytes.
    pub(crate) fn get_sorted(
        &self,
        keys: &[&[u8]],
        hashes: &[u64],
        open: &[usize],
        hit: &mut Hit<'_>,
        missed: &mut Vec<usize>,
    ) -> Result<(), String> {
        // (block, key index) in block order: the keys are sorted.
        let mut wanted = Vec::with_capacity(open.len());
        for &i in open {
            match self.bloom.may_contain(hashes[i]) {
                true => match self.blocks_upto(keys[i]).checked_sub(1) {
                    Some(b) => wanted.push((b, i)),
                    None => missed.push(i),
                },
                false => missed.push(i),
            }
        }
        let mut buf = Vec::new();
        let mut rest = wanted.as_slice();
        while let Some(&(first, _)) = rest.first() {
            let start = self.index[first].offset;
            let mut last = first;
            let n = rest
                .iter()
                .take_while(|&&(b, _)| {
                    let fits = b <= last + GAP && self.block_end(b) - start <= SPAN;
                    last = if fits { b } else { last };
                    fits
                })
                .count();
            let (group, tail) = rest.split_at(n.max(1));
            rest = tail;
            let end = self.block_end(group[group.len() - 1].0);
            let len = (end - start) as usize;
            // Grown, never shrunk: zeroing it again for each read cost a tenth of it.
            if buf.len() < len {
                buf.resize(len, 0);
            }
            read_at(&self.file, &mut buf[..len], start).map_err(io("reading"))?;
            for &(b, i) in group {
                let at = (self.index[b].offset - start) as usize;
                let block = &buf[at..(self.block_end(b) - start) as usize];
                match find(block, keys[i])? {
                    Some(r) => hit(i, r.stamp, r.value)?,
                    None => missed.push(i),
                }
            }
        }
        Ok(())
    }

    /// Where block `b` ends.
    fn block_end(&self, b: usize) -> u64 {
        self.index.get(b + 1).map_or(self.bytes, |n| n.offset)
    }

    /// The stamp and value (`None`: removed) of `key` if this run has it.
    #[cfg(test)]
    pub(crate) fn get(&self, key: &[u8], hash: u64) -> Result<Option<Stored>, String> {
        self.get_with(key, hash, &mut |s, _, v| (s, v.map(<[u8]>::to_vec)))
    }

    /// Its records in key order, read sequentially.
    pub(crate) fn reader(&self) -> Result<RunReader, String> {
        let file = File::open(&self.path).map_err(io("reading"))?;
        Ok(RunReader {
            file,
            buf: vec![0; 1 << 16],
            at: 0,
            filled: 0,
            left: self.records,
            last: Vec::new(),
        })
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The record of `key` in a block of records, if there. Keys are not
/// rebuilt: a record that shares more bytes with the smaller key before it than that key
/// shares with `key` is smaller too, and one that shares fewer is larger.
fn find<'a>(block: &'a [u8], key: &[u8]) -> Result<Option<Parsed<'a>>, String> {
    // Bytes the last record's key (smaller than `key`) shares with `key`.
    let mut matched = 0;
    let mut at = 0;
    while at < block.len() {
        let r = parse(&block[at..]).ok_or_else(corrupt)?;
        at += r.len;
        if r.shared > matched {
            continue;
        }
        if r.shared < matched {
            return Ok(None);
        }
        let rest = &key[matched..];
        let common = common_len(r.suffix, rest);
        match (r.suffix.get(common), rest.get(common)) {
            (None, None) => return Ok(Some(r)),
            (None, Some(_)) => matched += common,
            (Some(a), Some(b)) if a < b => matched += common,
            _ => return Ok(None),
        }
    }
    Ok(None)
}

fn corrupt() -> String {
    "state working directory: a run's record does not parse".into()
}

/// A record as written, borrowed from its bytes.
struct Parsed<'a> {
    /// Bytes its key shares with the record's before it.
    shared: usize,
    /// The key's other bytes.
    suffix: &'a [u8],
    stamp: u64,
    mark: u64,
    value: Option<&'a [u8]>,
    /// Bytes of the whole record.
    len: usize,
}

/// The record `b` starts with; `None` if `b` ends first.
#[inline]
fn parse(b: &[u8]) -> Option<Parsed<'_>> {
    let (first, at) = get_varint(b, 0)?;
    let (shared, marked) = (first >> 1, first & 1 == 1);
    let (klen, at) = get_varint(b, at)?;
    let (vlen, at) = get_varint(b, at)?;
    let (stamp, at) = get_varint(b, at)?;
    let (mark, at) = match marked {
        true => get_varint(b, at)?,
        false => (0, at),
    };
    let key_end = at.checked_add(usize::try_from(klen).ok()?)?;
    let suffix = b.get(at..key_end)?;
    let (value, len) = match vlen.checked_sub(1) {
        None => (None, key_end),
        Some(l) => {
            let end = key_end.checked_add(usize::try_from(l).ok()?)?;
            (Some(b.get(key_end..end)?), end)
        }
    };
    Some(Parsed {
        shared: usize::try_from(shared).ok()?,
        suffix,
        stamp,
        mark,
        value,
        len,
    })
}

/// Writes `v` as a LEB128 varint at `buf[at..]`; where it ends.
fn put_varint(buf: &mut [u8], mut at: usize, mut v: u64) -> usize {
    while v >= 0x80 {
        buf[at] = v as u8 | 0x80;
        v >>= 7;
        at += 1;
    }
    buf[at] = v as u8;
    at + 1
}

/// The LEB128 varint at `b[at..]` and where it ends; `None` if `b` ends first.
#[inline(always)]
fn get_varint(b: &[u8], at: usize) -> Option<(u64, usize)> {
    // Lengths are one byte, as is a key's count of shared bytes.
    match *b.get(at)? {
        byte @ 0..0x80 => Some((u64::from(byte), at + 1)),
        _ => get_long_varint(b, at),
    }
}

#[inline(never)]
fn get_long_varint(b: &[u8], mut at: usize) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(at)?;
        at += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Some((v, at));
        }
    }
    None
}

#[cfg(unix)]
fn read_at(f: &File, buf: &mut [u8], at: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(f, buf, at)
}

#[cfg(windows)]
fn read_at(f: &File, mut buf: &mut [u8], mut at: u64) -> std::io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        match f.seek_read(buf, at)? {
            0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            n => {
                buf = &mut buf[n..];
                at += n as u64;
            }
        }
    }
    Ok(())
}

/// A run's records in key order.
pub(crate) struct RunReader {
    file: File,
    /// Bytes read ahead: `buf[at..filled]` are not parsed yet.
    buf: Vec<u8>,
    at: usize,
    filled: usize,
    left: u64,
    /// The last record's key: the next one's shared bytes.
    last: Vec<u8>,
}

impl RunReader {
    /// Reads the next record into `rec`, reusing its buffers; false at the end.
    pub(crate) fn read_into(&mut self, rec: &mut Record) -> Result<bool, String> {
        if self.left == 0 {
            return Ok(false);
        }
        self.left -= 1;
        let len = loop {
            if let Some(r) = parse(&self.buf[self.at..self.filled]) {
                let shared = self.last.get(..r.shared).ok_or_else(corrupt)?.len();
                self.last.truncate(shared);
                self.last.extend_from_slice(r.suffix);
                rec.key.clear();
                rec.key.extend_from_slice(&self.last);
                rec.stamp = r.stamp;
                rec.mark = r.mark;
                match r.value {
                    Some(v) => {
                        let to = rec.value.get_or_insert_with(Vec::new);
                        to.clear();
                        to.extend_from_slice(v);
                    }
                    None => rec.value = None,
                }
                break r.len;
            }
            self.fill()?;
        };
        self.at += len;
        Ok(true)
    }

    /// Reads more of the file after the unparsed bytes, growing the buffer when they fill it.
    fn fill(&mut self) -> Result<(), String> {
        self.buf.copy_within(self.at..self.filled, 0);
        self.filled -= self.at;
        self.at = 0;
        if self.filled == self.buf.len() {
            self.buf.resize(self.buf.len() * 2, 0);
        }
        match self
            .file
            .read(&mut self.buf[self.filled..])
            .map_err(io("reading"))?
        {
            0 => Err("state working directory: a run ends within a record".into()),
            n => {
                self.filled += n;
                Ok(())
            }
        }
    }

    #[cfg(test)]
    fn next_record(&mut self) -> Result<Option<Record>, String> {
        let mut rec = Record::default();
        Ok(self.read_into(&mut rec)?.then_some(rec))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_record_is_found_by_key_and_read_back_in_order() {
        let d = tempfile::tempdir().unwrap();
        let mut w = RunWriter::create(d.path().join("r.run"), 5000).unwrap();
        let keys: Vec<Vec<u8>> = (0..5000u32)
            .map(|i| (i * 2).to_be_bytes().to_vec())
            .collect();
        for (i, k) in keys.iter().enumerate() {
            let v = (i % 7 != 0).then(|| vec![i as u8; i % 300]);
            w.push(k, i as u64, 0, v.as_deref()).unwrap();
        }
        let run = w.finish().unwrap();
        assert!(run.index.len() > 10, "several blocks");
        for (i, k) in keys.iter().enumerate() {
            let want = (i as u64, (i % 7 != 0).then(|| vec![i as u8; i % 300]));
            assert_eq!(
                run.get(k, super::super::bloom::hash(k)).unwrap(),
                Some(want)
            );
        }
        for absent in [1u32, 4001, 20_000] {
            let k = absent.to_be_bytes();
            assert_eq!(run.get(&k, super::super::bloom::hash(&k)).unwrap(), None);
        }
        let mut r = run.reader().unwrap();
        let mut n = 0;
        while let Some(rec) = r.next_record().unwrap() {
            assert_eq!(rec.key, keys[n]);
            assert_eq!(rec.stamp, n as u64);
            n += 1;
        }
        assert_eq!(n, keys.len());
        // In one batch: every other key, absent ones among them, each read as alone.
        let mut batch: Vec<Vec<u8>> = (0..12_000u32)
            .step_by(3)
            .map(|i| i.to_be_bytes().to_vec())
            .collect();
        batch.sort();
        let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
        let hashes: Vec<u64> = refs.iter().map(|k| super::super::bloom::hash(k)).collect();
        let open: Vec<usize> = (0..refs.len()).collect();
        let (mut hits, mut missed) = (Vec::new(), Vec::new());
        let mut hit = |i: usize, s, v: Option<&[u8]>| {
            hits.push((i, (s, v.map(<[u8]>::to_vec))));
            Ok(())
        };
        run.get_sorted(&refs, &hashes, &open, &mut hit, &mut missed)
            .unwrap();
        assert!(hits.len() > 1000, "{} found", hits.len());
        for (i, got) in hits {
            assert_eq!(run.get(refs[i], hashes[i]).unwrap(), Some(got));
        }
        for i in missed {
            assert_eq!(run.get(refs[i], hashes[i]).unwrap(), None);
        }
        let path = d.path().join("r.run");
        assert!(path.exists());
        drop(run);
        assert!(!path.exists(), "a dropped run's file is removed");
    }

    proptest::proptest! {
        /// Keys of a small alphabet share prefixes and are prefixes of one another; values
        /// run past the reader's buffer; removals have none.
        #[test]
        fn prefix_shared_keys_are_found_and_read_back(
            keys in proptest::collection::btree_set(proptest::collection::vec(0u8..3, 0..10), 1..300),
            probes in proptest::collection::vec(proptest::collection::vec(0u8..3, 0..11), 0..100),
            big in 0usize..3,
        ) {
            let d = tempfile::tempdir().unwrap();
            let keys: Vec<Vec<u8>> = keys.into_iter().collect();
            let value = |i: usize| match i % 5 {
                0 => None,
                1 if i / 5 < big => Some(vec![i as u8; 70_000 + i]),
                _ => Some(vec![i as u8; i % 40]),
            };
            let mut w = RunWriter::create(d.path().join("r.run"), keys.len()).unwrap();
            for (i, k) in keys.iter().enumerate() {
                w.push(k, 1000 + i as u64, i as u64 % 3, value(i).as_deref()).unwrap();
            }
            let run = w.finish().unwrap();
            let hash = |k: &[u8]| super::super::bloom::hash(k);
            for (i, k) in keys.iter().enumerate() {
                proptest::prop_assert_eq!(run.get(k, hash(k)).unwrap(), Some((1000 + i as u64, value(i))));
            }
            for p in &probes {
                let want = keys.binary_search(p).ok().map(|i| (1000 + i as u64, value(i)));
                proptest::prop_assert_eq!(run.get(p, hash(p)).unwrap(), want);
            }
            let mut r = run.reader().unwrap();
            for (i, k) in keys.iter().enumerate() {
                let rec = r.next_record().unwrap().expect("a record");
                proptest::prop_assert_eq!((&rec.key, rec.stamp, rec.mark, rec.value), (k, 1000 + i as u64, i as u64 % 3, value(i)));
            }
            proptest::prop_assert!(r.next_record().unwrap().is_none());
        }
    }

    /// Sorted customer ids share all but their last bytes: a record of one with a
    /// count and a sum takes well under half of a fixed head and the whole key.
    #[test]
    fn records_of_sorted_ids_keep_only_their_keys_last_bytes() {
        let d = tempfile::tempdir().unwrap();
        let n = 50_000u64;
        let mut w = RunWriter::create(d.path().join("r.run"), n as usize).unwrap();
        for i in 0..n {
            let key = postcard::to_allocvec(&format!("customer-{:07}", i * 5 / 4)).unwrap();
            let value = postcard::to_allocvec(&(i % 9, i as f64 * 0.25)).unwrap();
            // Only a copy evicted again unchanged carries its mark's number.
            let mark = if i % 16 == 0 { 1_000_000 + i } else { 0 };
            w.push(&key, 3_000_000 + i, mark, Some(&value)).unwrap();
        }
        let run = w.finish().unwrap();
        let per_record = run.bytes as f64 / n as f64;
        // A fixed 16-byte head, the 17-byte key and the 9-byte value were 42 bytes.
        assert!(per_record < 18.5, "{per_record:.1} bytes a record");
        let per_block = n as f64 / run.index.len() as f64;
        assert!(per_block > 52.0, "{per_block:.1} records a block");
    }

    #[test]
    fn a_block_that_does_not_parse_is_an_error() {
        let mut rec = [0u8; HEAD];
        let n = put_varint(&mut rec, 0, 0);
        let n = put_varint(&mut rec, n, 200);
        assert!(matches!(find(&rec[..n], b"abc"), Err(e) if e == corrupt()));
        assert!(matches!(find(&[0x80; 12], b"abc"), Err(e) if e == corrupt()));
    }
}

//! A sorted run: the entries of one eviction batch (or of a merge of runs) in a file of
//! the working directory, in key order, written once and only read after. A lookup
//! asks the run's Bloom filter, then reads the one block its key can be in, found
//! through the first key of each block kept in memory.
//!
//! Record: key length (u32 LE), value length (u32 LE; `u32::MAX` for a removed key),
//! stamp (u64 LE), key bytes, value bytes.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::PathBuf;

use super::bloom::Bloom;
use super::key_order::{compare, prefix};

/// Bytes of records per block: a lookup reads one block from the OS page cache.
const BLOCK: u64 = 2048;
const HEAD: usize = 16;
const REMOVED: u32 = u32::MAX;

/// One record of a run.
pub(crate) struct Record {
    pub(crate) key: Vec<u8>,
    pub(crate) stamp: u64,
    /// `None`: the key was removed from the state (older runs' copies are dead).
    pub(crate) value: Option<Vec<u8>>,
}

/// A key's stamp and value in a run (`None`: removed).
pub(crate) type Stored = (u64, Option<Vec<u8>>);

fn io(what: &'static str) -> impl Fn(std::io::Error) -> String {
    move |e| format!("state working directory: {what} a run: {e}")
}

struct First {
    prefix: u64,
    key: (u32, u32),
    offset: u64,
}

pub(crate) struct Run {
    file: File,
    path: PathBuf,
    /// Each block's first key: its prefix, where it is in `firsts`, the block's offset.
    index: Vec<First>,
    /// The first keys of the blocks, one after the other.
    firsts: Vec<u8>,
    bytes: u64,
    bloom: Bloom,
    records: u64,
}

/// Writes a run, records in ascending key order.
pub(crate) struct RunWriter {
    out: BufWriter<File>,
    run: Run,
    block_start: u64,
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
                bytes: 0,
                bloom: Bloom::new(capacity),
                records: 0,
            },
            block_start: 0,
        })
    }

    pub(crate) fn push(
        &mut self,
        key: &[u8],
        stamp: u64,
        value: Option<&[u8]>,
    ) -> Result<(), String> {
        let run = &mut self.run;
        if run.index.is_empty() || run.bytes - self.block_start >= BLOCK {
            let start = u32::try_from(run.firsts.len()).map_err(|_| "a run over 4 GiB of keys")?;
            run.firsts.extend_from_slice(key);
            run.index.push(First {
                prefix: prefix(key),
                key: (start, start + key.len() as u32),
                offset: run.bytes,
            });
            self.block_start = run.bytes;
        }
        let klen = u32::try_from(key.len()).map_err(|_| "a key over 4 GiB".to_string())?;
        let vlen = match value {
            Some(v) => u32::try_from(v.len())
                .ok()
                .filter(|&l| l != REMOVED)
                .ok_or_else(|| "a value over 4 GiB".to_string())?,
            None => REMOVED,
        };
        let mut head = [0u8; HEAD];
        head[..4].copy_from_slice(&klen.to_le_bytes());
        head[4..8].copy_from_slice(&vlen.to_le_bytes());
        head[8..].copy_from_slice(&stamp.to_le_bytes());
        let w = io("writing");
        self.out.write_all(&head).map_err(&w)?;
        self.out.write_all(key).map_err(&w)?;
        let v = value.unwrap_or_default();
        self.out.write_all(v).map_err(&w)?;
        run.bytes += (HEAD + key.len() + v.len()) as u64;
        run.bloom.insert(super::bloom::hash(key));
        run.records += 1;
        Ok(())
    }

    /// The run, its bytes handed to the OS (no fsync: the working directory is a cache).
    pub(crate) fn finish(mut self) -> Result<Run, String> {
        self.out.flush().map_err(io("writing"))?;
        self.run.index.shrink_to_fit();
        self.run.firsts.shrink_to_fit();
        Ok(self.run)
    }
}

impl Run {
    /// Records written, removals and keys since read back included.
    pub(crate) fn records(&self) -> u64 {
        self.records
    }

    /// Bytes held in memory: the filter and the blocks' first keys.
    pub(crate) fn memory(&self) -> usize {
        self.bloom.bytes() + self.index.capacity() * size_of::<First>() + self.firsts.capacity()
    }

    /// The stamp and value (`None`: removed) of `key`, whose [`hash`](super::bloom::hash)
    /// is `hash`, if this run has it.
    pub(crate) fn get(&self, key: &[u8], hash: u64) -> Result<Option<Stored>, String> {
        if !self.bloom.may_contain(hash) {
            return Ok(None);
        }
        let p = prefix(key);
        let after = self.index.partition_point(|f| {
            f.prefix < p
                || (f.prefix == p
                    && compare(&self.firsts[f.key.0 as usize..f.key.1 as usize], key).is_le())
        });
        let Some(b) = after.checked_sub(1) else {
            return Ok(None);
        };
        let start = self.index[b].offset;
        let end = self.index.get(b + 1).map_or(self.bytes, |n| n.offset);
        let mut block = vec![0; (end - start) as usize];
        read_at(&self.file, &mut block, start).map_err(io("reading"))?;
        let mut at = 0;
        while at < block.len() {
            let (klen, vlen, stamp) = head(&block[at..at + HEAD]);
            let k = &block[at + HEAD..at + HEAD + klen];
            let v = at + HEAD + klen;
            match compare(k, key) {
                std::cmp::Ordering::Less => {}
                std::cmp::Ordering::Greater => return Ok(None),
                std::cmp::Ordering::Equal => {
                    return Ok(Some((stamp, vlen.map(|l| block[v..v + l].to_vec()))));
                }
            }
            at = v + vlen.unwrap_or(0);
        }
        Ok(None)
    }

    /// Its records in key order, read sequentially.
    pub(crate) fn reader(&self) -> Result<RunReader, String> {
        let file = File::open(&self.path).map_err(io("reading"))?;
        Ok(RunReader {
            r: BufReader::with_capacity(1 << 16, file),
            left: self.records,
        })
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Key length, value length (`None`: removed) and stamp of a record's head.
fn head(h: &[u8]) -> (usize, Option<usize>, u64) {
    let word = |r: std::ops::Range<usize>| u32::from_le_bytes(h[r].try_into().expect("4 bytes"));
    let vlen = word(4..8);
    (
        word(0..4) as usize,
        (vlen != REMOVED).then_some(vlen as usize),
        u64::from_le_bytes(h[8..16].try_into().expect("8 bytes")),
    )
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
    r: BufReader<File>,
    left: u64,
}

impl RunReader {
    pub(crate) fn next_record(&mut self) -> Result<Option<Record>, String> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        let mut h = [0u8; HEAD];
        let r = io("reading");
        self.r.read_exact(&mut h).map_err(&r)?;
        let (klen, vlen, stamp) = head(&h);
        let mut key = vec![0; klen];
        self.r.read_exact(&mut key).map_err(&r)?;
        let value = match vlen {
            Some(l) => {
                let mut v = vec![0; l];
                self.r.read_exact(&mut v).map_err(&r)?;
                Some(v)
            }
            None => None,
        };
        Ok(Some(Record { key, stamp, value }))
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
            w.push(k, i as u64, v.as_deref()).unwrap();
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
        let path = d.path().join("r.run");
        assert!(path.exists());
        drop(run);
        assert!(!path.exists(), "a dropped run's file is removed");
    }
}

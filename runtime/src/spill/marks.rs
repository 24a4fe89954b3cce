//! The dirty marks of a disk tier: (stamp, key) of each entry evicted while changed since
//! the last stored checkpoint, appended to a file of the working directory. A delta reads
//! them back in order instead of scanning the store; appending costs a sequential write,
//! where an index inside the store cost a B-tree insert per eviction.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;

/// Marks past this many beyond twice the live entries: the history starts over instead.
const SLACK: u64 = 1 << 16;

pub(crate) struct Marks {
    path: PathBuf,
    out: BufWriter<File>,
    count: u64,
    /// Bytes of marks in the file.
    len: u64,
    /// The largest stamp marked so far.
    newest: u64,
    /// At the end of each eviction batch: (bytes, largest stamp up to there). The
    /// stamps only grow along it, so a delta skips the marks no newer than its base.
    ends: Vec<(u64, u64)>,
}

fn io(what: &'static str) -> impl Fn(std::io::Error) -> String {
    move |e| format!("state working directory: {what} the dirty marks: {e}")
}

impl Marks {
    pub(crate) fn create(path: PathBuf) -> Result<Marks, String> {
        let out = BufWriter::new(File::create(&path).map_err(io("creating"))?);
        Ok(Marks {
            path,
            out,
            count: 0,
            len: 0,
            newest: 0,
            ends: Vec::new(),
        })
    }

    pub(crate) fn append(&mut self, stamp: u64, key: &[u8]) -> Result<(), String> {
        let len = u32::try_from(key.len()).map_err(|_| "a key over 4 GiB".to_string())?;
        let w = io("writing");
        self.out.write_all(&stamp.to_le_bytes()).map_err(&w)?;
        self.out.write_all(&len.to_le_bytes()).map_err(&w)?;
        self.out.write_all(key).map_err(&w)?;
        self.count += 1;
        self.len += 12 + key.len() as u64;
        self.newest = self.newest.max(stamp);
        Ok(())
    }

    /// Ends an eviction batch's marks: a later read can start past them.
    pub(crate) fn end_batch(&mut self) {
        if self.ends.last().map(|e| e.0) != Some(self.len) {
            self.ends.push((self.len, self.newest));
        }
    }

    /// True when the marks outgrew what `live` entries can need: the caller starts the
    /// history over (its next delta is whole) and [`clear`](Self::clear)s them.
    pub(crate) fn too_many(&self, live: u64) -> bool {
        self.count > live.saturating_mul(2) + SLACK
    }

    pub(crate) fn clear(&mut self) -> Result<(), String> {
        self.rewrite(|_| false)
    }

    /// Keeps only the marks stamped after `acked`.
    pub(crate) fn keep_after(&mut self, acked: u64) -> Result<(), String> {
        self.rewrite(|stamp| stamp > acked)
    }

    fn rewrite(&mut self, keep: impl Fn(u64) -> bool) -> Result<(), String> {
        self.flush()?;
        let tmp = self.path.with_extension("marks-new");
        let mut out = BufWriter::new(File::create(&tmp).map_err(io("creating"))?);
        let (mut count, mut len, mut newest) = (0, 0, 0);
        for m in self.read_after(0)? {
            let (stamp, key) = m?;
            if keep(stamp) {
                len += 12 + key.len() as u64;
                newest = newest.max(stamp);
                let w = io("writing");
                out.write_all(&stamp.to_le_bytes()).map_err(&w)?;
                out.write_all(&(key.len() as u32).to_le_bytes())
                    .map_err(&w)?;
                out.write_all(&key).map_err(&w)?;
                count += 1;
            }
        }
        out.flush().map_err(io("writing"))?;
        std::fs::rename(&tmp, &self.path).map_err(io("replacing"))?;
        // The new file's handle stands at its end: appends go on from there.
        self.out = out;
        self.count = count;
        self.len = len;
        self.newest = newest;
        self.ends.clear();
        Ok(())
    }

    /// Writes what is buffered: [`read`](Self::read) sees the marks flushed.
    pub(crate) fn flush(&mut self) -> Result<(), String> {
        self.out.flush().map_err(io("writing"))
    }

    /// The marks flushed, oldest first (stamp, key bytes), from the end of the last batch
    /// whose stamps are all at most `after` on: the older ones a delta since `after`
    /// does not need are not read.
    pub(crate) fn read_after(
        &self,
        after: u64,
    ) -> Result<impl Iterator<Item = Result<(u64, Vec<u8>), String>>, String> {
        let skip = self.ends.partition_point(|e| e.1 <= after);
        let from = skip.checked_sub(1).map_or(0, |i| self.ends[i].0);
        let mut file = File::open(&self.path).map_err(io("reading"))?;
        file.seek(SeekFrom::Start(from)).map_err(io("reading"))?;
        let mut r = BufReader::new(file);
        Ok(std::iter::from_fn(move || {
            let mut head = [0u8; 12];
            match r.read_exact(&mut head) {
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return None,
                Err(e) => return Some(Err(io("reading")(e))),
                Ok(()) => {}
            }
            let stamp = u64::from_le_bytes(head[..8].try_into().expect("8 bytes"));
            let len = u32::from_le_bytes(head[8..].try_into().expect("4 bytes"));
            let mut key = vec![0; len as usize];
            Some(
                r.read_exact(&mut key)
                    .map_err(io("reading"))
                    .map(|()| (stamp, key)),
            )
        }))
    }
}

impl Drop for Marks {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

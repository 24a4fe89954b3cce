//! The dirty marks of a disk tier: (stamp, key, value) of each entry evicted while
//! changed since the last stored checkpoint, appended to a file of the working
//! directory. A delta reads them back in order instead of scanning the store, and takes
//! the value from the mark: a lookup per evicted change in the checkpoint's pause cost a
//! random block read each.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;

/// A mark's head: stamp, number (u64 LE), key length, value length (u32 LE); key and
/// value bytes follow.
const HEAD: usize = 24;

/// One evicted change.
pub(crate) struct Mark {
    pub(crate) stamp: u64,
    /// This mark's number, which the copy written with it carries: two marks of one
    /// change (a key evicted again unchanged) are told apart by it.
    pub(crate) number: u64,
    pub(crate) key: Vec<u8>,
    pub(crate) value: Vec<u8>,
}

/// Writes one mark; its length in bytes.
fn write_mark(
    out: &mut impl Write,
    (stamp, number): (u64, u64),
    key: &[u8],
    value: &[u8],
) -> Result<u64, String> {
    let long = |_| "an entry over 4 GiB".to_string();
    let (k, v) = (
        u32::try_from(key.len()).map_err(long)?,
        u32::try_from(value.len()).map_err(long)?,
    );
    let mut head = [0u8; HEAD];
    head[..8].copy_from_slice(&stamp.to_le_bytes());
    head[8..16].copy_from_slice(&number.to_le_bytes());
    head[16..20].copy_from_slice(&k.to_le_bytes());
    head[20..].copy_from_slice(&v.to_le_bytes());
    let w = io("writing");
    out.write_all(&head).map_err(&w)?;
    out.write_all(key).map_err(&w)?;
    out.write_all(value).map_err(&w)?;
    Ok((HEAD + key.len() + value.len()) as u64)
}

/// Marks past this many beyond twice the live entries: the history starts over instead.
const SLACK: u64 = 1 << 16;

pub(crate) struct Marks {
    path: PathBuf,
    out: BufWriter<File>,
    count: u64,
    /// The number of the next mark: from 1, never reused.
    next: u64,
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
            next: 1,
            len: 0,
            newest: 0,
            ends: Vec::new(),
        })
    }

    /// Appends a mark; its number.
    pub(crate) fn append(&mut self, stamp: u64, key: &[u8], value: &[u8]) -> Result<u64, String> {
        let number = self.next;
        self.len += write_mark(&mut self.out, (stamp, number), key, value)?;
        self.next += 1;
        self.count += 1;
        self.newest = self.newest.max(stamp);
        Ok(number)
    }

    /// The largest stamp marked so far.
    pub(crate) fn newest(&self) -> u64 {
        self.newest
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

    /// Drops every mark: the file is cut back, not read.
    pub(crate) fn clear(&mut self) -> Result<(), String> {
        self.flush()?;
        let file = self.out.get_mut();
        file.set_len(0).map_err(io("clearing"))?;
        file.seek(SeekFrom::Start(0)).map_err(io("clearing"))?;
        (self.count, self.len, self.newest) = (0, 0, 0);
        self.ends.clear();
        Ok(())
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
            let m = m?;
            if keep(m.stamp) {
                len += write_mark(&mut out, (m.stamp, m.number), &m.key, &m.value)?;
                newest = newest.max(m.stamp);
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

    /// The marks flushed, oldest first, from the end of the last batch
    /// whose stamps are all at most `after` on: the older ones a delta since `after`
    /// does not need are not read.
    pub(crate) fn read_after(
        &self,
        after: u64,
    ) -> Result<impl Iterator<Item = Result<Mark, String>>, String> {
        let skip = self.ends.partition_point(|e| e.1 <= after);
        let from = skip.checked_sub(1).map_or(0, |i| self.ends[i].0);
        let mut file = File::open(&self.path).map_err(io("reading"))?;
        file.seek(SeekFrom::Start(from)).map_err(io("reading"))?;
        let mut r = BufReader::new(file);
        Ok(std::iter::from_fn(move || {
            let mut head = [0u8; HEAD];
            match r.read_exact(&mut head) {
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return None,
                Err(e) => return Some(Err(io("reading")(e))),
                Ok(()) => {}
            }
            let word = |at: usize| u32::from_le_bytes(head[at..at + 4].try_into().expect("4"));
            let long = |at: usize| u64::from_le_bytes(head[at..at + 8].try_into().expect("8"));
            let (stamp, number) = (long(0), long(8));
            let (mut key, mut value) = (vec![0; word(16) as usize], vec![0; word(20) as usize]);
            let read = r
                .read_exact(&mut key)
                .and_then(|()| r.read_exact(&mut value));
            Some(read.map_err(io("reading")).map(|()| Mark {
                stamp,
                number,
                key,
                value,
            }))
        }))
    }
}

impl Drop for Marks {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

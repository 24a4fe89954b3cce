//! Output files that can be rolled back to a checkpoint: exactly-once for append-only files.

use std::collections::BTreeMap;
use std::fs::{File, Metadata, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::early_sync::EarlySync;
use super::identity::{FileId, Tail};
use crate::store::safe_fs;

/// An append-only file whose committed length is saved in checkpoints. On restart it is
/// truncated back to that length, so lines written after the checkpoint (and lost with
/// the crash) are written again exactly once.
pub struct SinkFile {
    path: PathBuf,
    file: File,
    /// Rows not yet handed to the OS. A buffer of our own rather than a `BufWriter`, so
    /// that a row can be encoded straight into it ([`write_with`](Self::write_with)).
    buf: Vec<u8>,
    len: u64,
    early: Option<EarlySync>,
}

/// Bytes buffered before they are written to the file.
const BUF_BYTES: usize = 1 << 16;

impl SinkFile {
    /// Checks the output saved under `key` (`output`, `late`, `dead_letter`) in a
    /// checkpoint's `positions` (empty on a fresh start) without changing it: it must
    /// still hold the committed bytes (`<key>.len`, `<key>.tail_*`), and any bytes past
    /// them must provably be this program's (the checkpoint recorded a non-empty file, or
    /// this very file, [`FileId`]). Otherwise it is refused and left as it is.
    /// [`Claimed::open`] then cuts it back; checking every output first means a refusal
    /// leaves all of them untouched.
    pub fn claim(
        path: &Path,
        key: &str,
        positions: &BTreeMap<String, u64>,
    ) -> Result<Claimed, String> {
        let committed = positions.get(&format!("{key}.len")).copied().unwrap_or(0);
        let tail = Tail::saved(key, positions);
        if tail.is_none() && committed > 0 {
            tracing::warn!(
                "the checkpoint does not record what {} looked like (an older version wrote it): its first {committed} bytes are kept unchecked",
                path.display()
            );
        }
        let file = open_existing(path)?;
        if let Some(f) = &file {
            let meta = f
                .metadata()
                .map_err(|e| format!("reading {}: {e}", path.display()))?;
            check_committed(path, f, meta.len(), committed, tail)?;
            if let Some(e) = unclaimed(path, key, positions, &meta) {
                return Err(e);
            }
        } else if committed > 0 {
            return Err(shorter(path, 0, committed));
        }
        Ok(Claimed {
            path: path.to_path_buf(),
            file,
            committed,
            rewrite: false,
        })
    }

    /// `--from-scratch`: `path` is rewritten from its start, whatever it holds.
    pub fn claim_overwrite(path: &Path) -> Result<Claimed, String> {
        Ok(Claimed {
            path: path.to_path_buf(),
            file: open_existing(path)?,
            committed: 0,
            rewrite: true,
        })
    }

    /// Truncates `file` (of `actual` bytes) to `committed` and positions it there.
    fn cut_back(path: &Path, file: File, actual: u64, committed: u64) -> Result<SinkFile, String> {
        if actual > committed {
            file.set_len(committed)
                .map_err(|e| format!("truncating {}: {e}", path.display()))?;
        }
        let mut file = file;
        file.seek(SeekFrom::Start(committed))
            .map_err(|e| format!("seeking {}: {e}", path.display()))?;
        let early = EarlySync::start(&file);
        Ok(SinkFile {
            path: path.to_path_buf(),
            file,
            buf: Vec::with_capacity(BUF_BYTES),
            len: committed,
            early,
        })
    }

    /// Appends one line (a newline is added).
    pub fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        self.write_with(|buf| {
            buf.extend_from_slice(line);
            Ok::<(), io::Error>(())
        })
        .map_err(|e| e.either())
    }

    /// Appends the line `encode` appends to the buffer it is given (a newline is added).
    /// If `encode` fails, nothing is appended.
    pub fn write_with<E>(
        &mut self,
        encode: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    ) -> Result<(), WriteError<E>> {
        let start = self.buf.len();
        if let Err(e) = encode(&mut self.buf) {
            self.buf.truncate(start);
            return Err(WriteError::Encode(e));
        }
        self.buf.push(b'\n');
        self.len += (self.buf.len() - start) as u64;
        if self.buf.len() >= BUF_BYTES {
            self.flush().map_err(WriteError::Io)?;
        }
        Ok(())
    }

    /// Hands the buffered bytes to the OS (no fsync).
    pub fn flush(&mut self) -> io::Result<()> {
        let mut done = 0;
        let r = loop {
            if done == self.buf.len() {
                break Ok(());
            }
            match self.file.write(&self.buf[done..]) {
                Ok(0) => break Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        // What was not written stays, as in a `BufWriter`: a retry (the next
        // checkpoint's commit) writes it.
        self.buf.drain(..done);
        if let Some(early) = &mut self.early {
            early.wrote(done as u64);
        }
        r
    }

    /// Flushes and fsyncs; returns the length now durable.
    pub fn commit(&mut self) -> Result<u64, String> {
        self.flush()
            .map_err(|e| format!("writing {}: {e}", self.path.display()))?;
        self.file
            .sync_data()
            .and_then(
                |()| match self.early.as_mut().and_then(EarlySync::committed) {
                    Some(e) => Err(e),
                    None => Ok(()),
                },
            )
            .map_err(|e| format!("syncing {}: {e}", self.path.display()))?;
        Ok(self.len)
    }

    /// Commits (see [`commit`](Self::commit)) and saves under `key` in `positions` the
    /// length, the hash of the bytes before it and which file this is.
    pub fn commit_into(
        &mut self,
        key: &str,
        positions: &mut BTreeMap<String, u64>,
    ) -> Result<(), String> {
        let len = self.commit()?;
        let tail = Tail::of(&self.file, len)
            .map_err(|e| format!("reading back {}: {e}", self.path.display()))?;
        let meta = self
            .file
            .metadata()
            .map_err(|e| format!("reading {}: {e}", self.path.display()))?;
        positions.insert(format!("{key}.len"), len);
        tail.save(key, positions);
        FileId::of(&meta).save(key, positions);
        Ok(())
    }

    /// Does the checkpoint's `positions` prove this file, saved under `key`, ours? Yes if
    /// it committed bytes of it (their hash proves it), or recorded this very file.
    pub fn recorded_in(&self, key: &str, positions: &BTreeMap<String, u64>) -> bool {
        if positions.get(&format!("{key}.len")).is_some_and(|&l| l > 0) {
            return true;
        }
        let now = self.file.metadata().map(|m| FileId::of(&m));
        match (FileId::saved(key, positions), now) {
            (Some(id), Ok(now)) => id.same_as(now),
            _ => false,
        }
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True if nothing was written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for SinkFile {
    /// Hands the buffered rows to the OS, as a `BufWriter` would: a run stopped by an
    /// error leaves them in the file (a restart cuts back what no checkpoint recorded).
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

/// Why [`SinkFile::write_with`] failed: the row's encoding, or the file.
#[derive(Debug)]
pub enum WriteError<E> {
    /// The encoder's error; nothing was appended.
    Encode(E),
    /// Writing the file.
    Io(io::Error),
}

impl WriteError<io::Error> {
    fn either(self) -> io::Error {
        match self {
            WriteError::Encode(e) | WriteError::Io(e) => e,
        }
    }
}

/// Opens `path` for reading and writing, creating it if missing; a new file's directory
/// entry is flushed, so the file is still there after a power loss.
fn open_or_create(path: &Path) -> io::Result<File> {
    let mut opts = OpenOptions::new();
    opts.read(true).write(true);
    match opts.clone().create_new(true).open(path) {
        Ok(f) => {
            safe_fs::sync_parent(path)?;
            tracing::debug!("created {} and flushed its directory", path.display());
            Ok(f)
        }
        // Existing (or a dangling symlink, whose target is then created as before).
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => opts.create(true).open(path),
        Err(e) => Err(e),
    }
}

/// An output checked by [`SinkFile::claim`] (or [`SinkFile::claim_overwrite`]) and not
/// changed yet.
pub struct Claimed {
    path: PathBuf,
    /// `None`: it does not exist yet.
    file: Option<File>,
    committed: u64,
    /// `--from-scratch`: its bytes are rewritten, whoever wrote them.
    rewrite: bool,
}

impl Claimed {
    /// Opens it for appending at the committed length: created if missing, and what was
    /// written after the checkpoint cut off.
    pub fn open(self) -> Result<SinkFile, String> {
        let path = &self.path;
        let file = match self.file {
            Some(f) => f,
            None => {
                let f =
                    open_or_create(path).map_err(|e| format!("opening {}: {e}", path.display()))?;
                if len_of(path, &f)? > 0 && !self.rewrite {
                    return Err(format!(
                        "{} was written by another program while this one started: left as it is; run again once nothing else writes it",
                        path.display()
                    ));
                }
                f
            }
        };
        let actual = len_of(path, &file)?;
        if self.rewrite && actual > 0 {
            tracing::warn!(
                "--from-scratch: rewriting {} ({actual} bytes) from its start",
                path.display()
            );
        }
        SinkFile::cut_back(path, file, actual, self.committed)
    }
}

fn len_of(path: &Path, file: &File) -> Result<u64, String> {
    file.metadata()
        .map(|m| m.len())
        .map_err(|e| format!("reading {}: {e}", path.display()))
}

/// Opens an existing `path` for reading and writing; `None` if there is none.
fn open_existing(path: &Path) -> Result<Option<File>, String> {
    match OpenOptions::new().read(true).write(true).open(path) {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("opening {}: {e}", path.display())),
    }
}

/// Refuses a file that lacks the `committed` bytes the checkpoint recorded, or whose
/// bytes before that length are not the ones written there (`tail`).
fn check_committed(
    path: &Path,
    file: &File,
    actual: u64,
    committed: u64,
    tail: Option<Tail>,
) -> Result<(), String> {
    if actual < committed {
        return Err(shorter(path, actual, committed));
    }
    let Some(t) = tail else { return Ok(()) };
    let ours = t
        .matches(file, committed)
        .map_err(|e| format!("reading {}: {e}", path.display()))?;
    if ours {
        return Ok(());
    }
    Err(format!(
        "{} is not the file this program wrote: its {} bytes before byte {committed} (the length the checkpoint committed) differ from what was written there; it was replaced or edited outside SimpleStream and is left as it is; restore it, or start over with --from-scratch (which rewrites it)",
        path.display(),
        t.len
    ))
}

fn shorter(path: &Path, actual: u64, committed: u64) -> String {
    format!(
        "{} has {actual} bytes but the checkpoint committed {committed}: the file was truncated or replaced outside SimpleStream; restore it, or start over with --from-scratch",
        path.display()
    )
}

/// Why the bytes of an output that the checkpoint committed empty (or that no checkpoint
/// records: a fresh start) cannot be cut away: they are ours only if the checkpoint saw
/// this very file. `None`: nothing to cut, or the bytes are ours (past a non-empty
/// committed length they are: [`check_committed`] proved the file).
fn unclaimed(
    path: &Path,
    key: &str,
    positions: &BTreeMap<String, u64>,
    meta: &Metadata,
) -> Option<String> {
    let committed = positions.get(&format!("{key}.len")).copied();
    if meta.len() == 0 || committed.is_some_and(|c| c > 0) {
        return None;
    }
    let flag = match key {
        "output" => "--output",
        "late" => "--late-output",
        _ => "--dead-letter",
    };
    match FileId::saved(key, positions) {
        Some(id) if id.same_as(FileId::of(meta)) => None,
        Some(_) => Some(format!(
            "{} has {} bytes, but it is not the file the checkpoint recorded there (empty): it was replaced since, and is left as it is; move it away, give {flag} another path, or pass --from-scratch to overwrite it",
            path.display(),
            meta.len()
        )),
        None => Some(format!(
            "{} already exists and has {} bytes that no checkpoint records as written by this program: refusing to overwrite it; move it away, give {flag} another path, or pass --from-scratch to overwrite it",
            path.display(),
            meta.len()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(path: &Path) -> SinkFile {
        SinkFile::claim(path, "output", &BTreeMap::new())
            .unwrap()
            .open()
            .unwrap()
    }

    /// Rows encoded in place, past several buffers' worth, reach the file in order; a row
    /// whose encoding fails leaves no trace in the file or the length.
    #[test]
    fn rows_encoded_in_place_are_written_once_and_failed_ones_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        let mut sink = open(&path);
        let mut want = Vec::new();
        for i in 0..20_000u32 {
            let row = format!("{{\"row\":{i}}}");
            if i % 1000 == 7 {
                let failed = sink.write_with(|buf| {
                    buf.extend_from_slice(b"{\"half");
                    Err("no")
                });
                assert!(matches!(failed, Err(WriteError::Encode("no"))));
            }
            sink.write_with(|buf| {
                buf.extend_from_slice(row.as_bytes());
                Ok::<(), ()>(())
            })
            .unwrap();
            want.extend_from_slice(row.as_bytes());
            want.push(b'\n');
        }
        assert!(want.len() > 3 * BUF_BYTES, "{} bytes", want.len());
        let mut positions = BTreeMap::new();
        sink.commit_into("output", &mut positions).unwrap();
        assert_eq!(positions["output.len"], want.len() as u64);
        assert_eq!(std::fs::read(&path).unwrap(), want);
    }

    /// Buffered rows reach the file when the sink is dropped, as with a `BufWriter`.
    #[test]
    fn dropping_the_sink_writes_its_buffered_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        let mut sink = open(&path);
        sink.write_line(b"{\"a\":1}").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"");
        drop(sink);
        assert_eq!(std::fs::read(&path).unwrap(), b"{\"a\":1}\n");
    }
}

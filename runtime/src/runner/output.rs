//! Output files that can be rolled back to a checkpoint: exactly-once for append-only files.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::identity::Tail;
use crate::store::safe_fs;

/// An append-only file whose committed length is saved in checkpoints. On restart it is
/// truncated back to that length, so lines written after the checkpoint (and lost with
/// the crash) are written again exactly once.
pub struct SinkFile {
    path: PathBuf,
    writer: BufWriter<File>,
    len: u64,
}

impl SinkFile {
    /// Opens `path`, truncated to `committed` bytes (0 for a fresh start).
    ///
    /// Fails if the file is shorter than `committed`: then it was changed outside this
    /// program, and continuing would lose or double output.
    pub fn open(path: &Path, committed: u64) -> Result<SinkFile, String> {
        Self::open_checked(path, committed, None)
    }

    /// Opens the output saved under `key` (`output`, `late`, `dead_letter`) in a
    /// checkpoint's `positions`: truncated back to `<key>.len`, after checking that the
    /// bytes before that length are the ones the checkpoint committed (`<key>.tail_*`),
    /// so a file put in its place is refused instead of cut.
    pub fn restore(
        path: &Path,
        key: &str,
        positions: &BTreeMap<String, u64>,
    ) -> Result<SinkFile, String> {
        let committed = positions.get(&format!("{key}.len")).copied().unwrap_or(0);
        let tail = Tail::saved(key, positions);
        if tail.is_none() && committed > 0 {
            tracing::warn!(
                "the checkpoint does not record what {} looked like (an older version wrote it): its first {committed} bytes are kept unchecked",
                path.display()
            );
        }
        Self::open_checked(path, committed, tail)
    }

    fn open_checked(path: &Path, committed: u64, tail: Option<Tail>) -> Result<SinkFile, String> {
        let file = open_or_create(path).map_err(|e| format!("opening {}: {e}", path.display()))?;
        let actual = file
            .metadata()
            .map_err(|e| format!("reading {}: {e}", path.display()))?
            .len();
        if actual < committed {
            return Err(format!(
                "{} has {actual} bytes but the checkpoint committed {committed}: the file was truncated or replaced outside SimpleStream; restore it, or start over with --from-scratch",
                path.display()
            ));
        }
        if let Some(t) = tail {
            let ours = t
                .matches(&file, committed)
                .map_err(|e| format!("reading {}: {e}", path.display()))?;
            if !ours {
                return Err(format!(
                    "{} is not the file this program wrote: its {} bytes before byte {committed} (the length the checkpoint committed) differ from what was written there; it was replaced or edited outside SimpleStream and is left as it is; restore it, or start over with --from-scratch (which rewrites it)",
                    path.display(),
                    t.len
                ));
            }
        }
        if actual > committed {
            file.set_len(committed)
                .map_err(|e| format!("truncating {}: {e}", path.display()))?;
        }
        let mut file = file;
        file.seek(SeekFrom::Start(committed))
            .map_err(|e| format!("seeking {}: {e}", path.display()))?;
        Ok(SinkFile {
            path: path.to_path_buf(),
            writer: BufWriter::with_capacity(1 << 16, file),
            len: committed,
        })
    }

    /// Appends one line (a newline is added).
    pub fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        self.writer.write_all(line)?;
        self.writer.write_all(b"\n")?;
        self.len += line.len() as u64 + 1;
        Ok(())
    }

    /// Flushes and fsyncs; returns the length now durable.
    pub fn commit(&mut self) -> Result<u64, String> {
        self.writer
            .flush()
            .map_err(|e| format!("writing {}: {e}", self.path.display()))?;
        self.writer
            .get_ref()
            .sync_data()
            .map_err(|e| format!("syncing {}: {e}", self.path.display()))?;
        Ok(self.len)
    }

    /// Commits (see [`commit`](Self::commit)) and saves the length and the hash of the
    /// bytes before it under `key` in `positions`.
    pub fn commit_into(
        &mut self,
        key: &str,
        positions: &mut BTreeMap<String, u64>,
    ) -> Result<(), String> {
        let len = self.commit()?;
        let tail = Tail::of(self.writer.get_ref(), len)
            .map_err(|e| format!("reading back {}: {e}", self.path.display()))?;
        positions.insert(format!("{key}.len"), len);
        tail.save(key, positions);
        Ok(())
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

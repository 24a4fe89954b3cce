//! Output files that can be rolled back to a checkpoint: exactly-once for append-only files.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

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
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| format!("opening {}: {e}", path.display()))?;
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

//! Scratch files in the working directory: bytes of a checkpoint in the making that are
//! not to be held in memory. Named like the store's files, so the files of a run that
//! crashed are removed at the next start; removed when dropped.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::backend::scratch_file_name;

#[derive(Debug)]
pub(crate) struct Scratch {
    path: PathBuf,
    file: File,
}

impl Scratch {
    /// A new empty file in `dir`, open to read and write.
    pub(crate) fn create(dir: &Path) -> Result<Scratch, String> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let path = dir.join(scratch_file_name(NEXT.fetch_add(1, Ordering::Relaxed)));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| format!("state working directory: creating {}: {e}", path.display()))?;
        Ok(Scratch { path, file })
    }

    /// The file, its position wherever the last user left it.
    pub(crate) fn file(&self) -> &File {
        &self.file
    }

    /// The file, positioned at its start.
    pub(crate) fn rewound(&self) -> Result<&File, String> {
        let mut f = &self.file;
        f.seek(SeekFrom::Start(0)).map_err(|e| self.failed(e))?;
        Ok(f)
    }

    /// Where it is.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Says which file failed.
    pub(crate) fn failed(&self, e: std::io::Error) -> String {
        format!("state working directory: {}: {e}", self.path.display())
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

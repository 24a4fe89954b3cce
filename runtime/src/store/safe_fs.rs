//! File-system calls that do not follow planted symlinks, do not block on FIFOs, read
//! bounded amounts, and make new directory entries durable.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::path::Path;

/// Bytes read past the size a file had when it was opened (it may grow meanwhile).
pub(crate) const READ_MARGIN: u64 = 64 << 10;

/// Adds `O_NOFOLLOW` (and `O_NONBLOCK`, so opening a FIFO does not wait for a writer):
/// a symlink in the last component fails with ELOOP instead of being followed.
pub(crate) fn no_follow(opts: &mut OpenOptions) -> &mut OpenOptions {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
    }
    opts
}

/// The error of opening a symlink with [`no_follow`], reworded.
pub(crate) fn explain(e: io::Error) -> io::Error {
    #[cfg(unix)]
    if e.raw_os_error() == Some(libc::ELOOP) {
        return io::Error::new(
            io::ErrorKind::InvalidInput,
            "it is a symbolic link, which is never followed here; remove it",
        );
    }
    e
}

/// Reads a regular file that is not a symlink, at most `cap` bytes and at most its size
/// at open plus [`READ_MARGIN`].
pub(crate) fn read_regular(path: &Path, cap: u64) -> io::Result<Vec<u8>> {
    let file = no_follow(OpenOptions::new().read(true))
        .open(path)
        .map_err(explain)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file (a FIFO, device or directory); only regular files are read",
        ));
    }
    let limit = meta.len().saturating_add(READ_MARGIN).min(cap);
    let mut out = Vec::with_capacity(meta.len().min(limit) as usize);
    file.take(limit.saturating_add(1)).read_to_end(&mut out)?;
    if out.len() as u64 > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("longer than {limit} bytes, more than its size when opened allows"),
        ));
    }
    Ok(out)
}

/// The length and CRC-32 of a regular file that is not a symlink, read a chunk at a time.
pub(crate) fn checksum_regular(path: &Path) -> io::Result<(u64, u32)> {
    let file = no_follow(OpenOptions::new().read(true))
        .open(path)
        .map_err(explain)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file (a FIFO, device or directory); only regular files are read",
        ));
    }
    super::read_chunks(file, |_| Ok(()), |e| e)
}

/// Flushes the directory holding `path`, so a new entry in it survives a power loss.
pub(crate) fn sync_parent(path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        File::open(parent)?.sync_all()?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Creates the directory `path` if missing (its parent must exist) and then flushes the
/// parent; returns whether it was created.
pub(crate) fn create_dir_synced(path: &Path) -> io::Result<bool> {
    match fs::create_dir(path) {
        Ok(()) => {
            sync_parent(path)?;
            tracing::debug!("created {} and flushed its parent", path.display());
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

/// Creates `path` and any missing ancestors, flushing each parent that got a new entry.
pub(crate) fn create_dir_all_synced(path: &Path) -> io::Result<()> {
    if fs::metadata(path).is_ok_and(|m| m.is_dir()) {
        return Ok(());
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_dir_all_synced(parent)?;
    }
    create_dir_synced(path).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_regular_refuses_symlinks_and_fifos_and_reads_files() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("f");
        fs::write(&f, b"hello").unwrap();
        assert_eq!(read_regular(&f, 100).unwrap(), b"hello");
        let err = read_regular(&f, 3).unwrap_err();
        assert!(err.to_string().contains("longer than 3 bytes"), "{err}");
        #[cfg(unix)]
        {
            let l = t.path().join("l");
            std::os::unix::fs::symlink(&f, &l).unwrap();
            let err = read_regular(&l, 100).unwrap_err();
            assert!(err.to_string().contains("symbolic link"), "{err}");
            let fifo = t.path().join("fifo");
            let st = std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap();
            assert!(st.success());
            // Would block forever without O_NONBLOCK, and read nothing after it.
            let err = read_regular(&fifo, 100).unwrap_err();
            assert!(err.to_string().contains("not a regular file"), "{err}");
        }
        let err = read_regular(t.path(), 100).unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
    }

    #[test]
    fn create_dir_all_synced_creates_missing_levels_only() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("a/b/c");
        create_dir_all_synced(&d).unwrap();
        assert!(d.is_dir());
        create_dir_all_synced(&d).unwrap();
        assert!(!create_dir_synced(&d).unwrap());
        assert!(create_dir_synced(&d.join("x")).unwrap());
    }
}

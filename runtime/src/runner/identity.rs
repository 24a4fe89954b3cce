//! Recognising a file again: a checkpoint records a hash of the bytes just before each
//! position it saves, so a file replaced between runs is noticed instead of being
//! resumed at a byte offset that means nothing in it.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io;
use std::path::Path;

/// Bytes hashed before a position: enough to tell a replaced file from ours, cheap to
/// read at every checkpoint.
pub const TAIL: u64 = 4096;

/// The hash of the up to [`TAIL`] bytes of a file before a position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tail {
    /// Number of bytes hashed (less than [`TAIL`] only near the start of the file).
    pub len: u64,
    /// CRC-32 of those bytes.
    pub hash: u64,
}

impl Tail {
    /// The tail of `file` before byte `end` (which must not be past its end).
    pub fn of(file: &File, end: u64) -> io::Result<Tail> {
        Self::of_len(file, end, end.min(TAIL))
    }

    /// The hash of the `len` bytes of `file` before byte `end`.
    pub fn of_len(file: &File, end: u64, len: u64) -> io::Result<Tail> {
        let start = end.checked_sub(len).ok_or_else(|| {
            io::Error::new(io::ErrorKind::UnexpectedEof, "fewer bytes than recorded")
        })?;
        let mut buf = vec![0; len as usize];
        read_exact_at(file, &mut buf, start)?;
        Ok(Tail {
            len,
            hash: u64::from(crc32fast::hash(&buf)),
        })
    }

    /// Saves it as `<key>.tail_len` and `<key>.tail_hash`.
    pub fn save(self, key: &str, positions: &mut BTreeMap<String, u64>) {
        positions.insert(format!("{key}.tail_len"), self.len);
        positions.insert(format!("{key}.tail_hash"), self.hash);
    }

    /// The tail saved under `key`, if the checkpoint has one (older ones do not).
    pub fn saved(key: &str, positions: &BTreeMap<String, u64>) -> Option<Tail> {
        Some(Tail {
            len: *positions.get(&format!("{key}.tail_len"))?,
            hash: *positions.get(&format!("{key}.tail_hash"))?,
        })
    }

    /// Does `file` have this tail before byte `end`? False if it has fewer bytes.
    pub fn matches(self, file: &File, end: u64) -> io::Result<bool> {
        if self.len > TAIL || self.len > end {
            return Ok(false);
        }
        match Self::of_len(file, end, self.len) {
            Ok(t) => Ok(t == self),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// Which file an output is. An output committed empty has no bytes to compare, so
/// bytes found in it later are ours only if it is still the file the checkpoint saw: the
/// same inode and, where the file system keeps one, the same creation time (inode
/// numbers are reused once a file is deleted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileId {
    /// Inode number (0 where std has none).
    pub ino: u64,
    /// Creation time, ns since the epoch, if the file system records it.
    pub born_ns: Option<u64>,
}

impl FileId {
    /// The identity of the file `meta` describes.
    pub fn of(meta: &fs::Metadata) -> FileId {
        let born_ns = meta
            .created()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .and_then(|d| u64::try_from(d.as_nanos()).ok());
        FileId {
            ino: super::input::file_id(meta),
            born_ns,
        }
    }

    /// Saves it as `<key>.file_id` and (if known) `<key>.file_born_ns`.
    pub fn save(self, key: &str, positions: &mut BTreeMap<String, u64>) {
        positions.insert(format!("{key}.file_id"), self.ino);
        if let Some(b) = self.born_ns {
            positions.insert(format!("{key}.file_born_ns"), b);
        }
    }

    /// The identity saved under `key`, if the checkpoint has one.
    pub fn saved(key: &str, positions: &BTreeMap<String, u64>) -> Option<FileId> {
        Some(FileId {
            ino: *positions.get(&format!("{key}.file_id"))?,
            born_ns: positions.get(&format!("{key}.file_born_ns")).copied(),
        })
    }

    /// Is `now` the same file? Without a creation time on both sides the inode decides,
    /// and an inode of 0 (none known) proves nothing.
    pub fn same_as(self, now: FileId) -> bool {
        match (self.born_ns, now.born_ns) {
            (Some(a), Some(b)) => self.ino == now.ino && a == b,
            _ => self.ino == now.ino && self.ino != 0,
        }
    }
}

/// Checks that `input` still has, before the offset the checkpoint resumes at, the bytes
/// the checkpoint read there. A mismatch is an error unless `accept` (then a warning);
/// a checkpoint that recorded nothing (older versions) is accepted with a warning.
pub fn check_input(
    input: &File,
    path: &Path,
    positions: &BTreeMap<String, u64>,
    accept: bool,
) -> Result<(), String> {
    let offset = positions.get("source.offset").copied().unwrap_or(0);
    let Some(tail) = Tail::saved("source", positions) else {
        if offset > 0 {
            tracing::warn!(
                "the checkpoint does not record what {} looked like (an older version wrote it): resuming at byte {offset} unchecked",
                path.display()
            );
        }
        return Ok(());
    };
    if tail
        .matches(input, offset)
        .map_err(|e| format!("reading {}: {e}", path.display()))?
    {
        return Ok(());
    }
    let other_file = match (positions.get("source.file_id"), input.metadata()) {
        (Some(&id), Ok(m)) => id != super::input::file_id(&m),
        _ => false,
    };
    let what = format!(
        "{} changed since the checkpoint: the {} bytes before byte {offset}, where reading would resume, are not the ones the checkpoint read ({})",
        path.display(),
        tail.len,
        if other_file {
            "it is another file now: replaced, or rotated while the program was stopped"
        } else {
            "the file was edited or rewritten in place"
        }
    );
    if accept {
        tracing::warn!("{what}; resuming at byte {offset} of it anyway (--accept-changed-input)");
        return Ok(());
    }
    Err(format!(
        "{what}; start over with --from-scratch, or resume at byte {offset} of the new file with --accept-changed-input"
    ))
}

#[cfg(unix)]
fn read_exact_at(file: &File, buf: &mut [u8], at: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, at)
}

#[cfg(windows)]
fn read_exact_at(file: &File, mut buf: &mut [u8], mut at: u64) -> io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        match file.seek_read(buf, at)? {
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            n => {
                buf = &mut buf[n..];
                at += n as u64;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_ids_need_the_same_inode_and_creation_time() {
        let id = |ino, born_ns| FileId { ino, born_ns };
        assert!(id(7, Some(1)).same_as(id(7, Some(1))));
        assert!(!id(7, Some(1)).same_as(id(7, Some(2))), "inode reused");
        assert!(!id(7, Some(1)).same_as(id(8, Some(1))));
        assert!(id(7, None).same_as(id(7, Some(1))), "the inode decides");
        assert!(
            !id(0, None).same_as(id(0, None)),
            "nothing known proves nothing"
        );
        assert!(id(0, Some(5)).same_as(id(0, Some(5))));

        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("f");
        std::fs::write(&p, b"x").unwrap();
        let first = FileId::of(&fs::metadata(&p).unwrap());
        let mut positions = BTreeMap::new();
        first.save("output", &mut positions);
        assert_eq!(FileId::saved("output", &positions), Some(first));
        assert_eq!(FileId::saved("late", &positions), None);
        std::fs::write(&p, b"rewritten in place").unwrap();
        assert!(first.same_as(FileId::of(&fs::metadata(&p).unwrap())));
        // Renamed over: another file at the same path.
        let other = t.path().join("g");
        std::fs::write(&other, b"x").unwrap();
        std::fs::rename(&other, &p).unwrap();
        assert!(!first.same_as(FileId::of(&fs::metadata(&p).unwrap())));
    }

    #[test]
    fn tails_tell_files_apart_and_survive_appends() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("f");
        let body: Vec<u8> = (0..10_000u32).flat_map(|i| i.to_le_bytes()).collect();
        std::fs::write(&p, &body).unwrap();
        let f = File::open(&p).unwrap();
        let tail = Tail::of(&f, 30_000).unwrap();
        assert_eq!(tail.len, TAIL);
        assert_eq!(Tail::of(&f, 10).unwrap().len, 10);
        let mut positions = BTreeMap::new();
        tail.save("source", &mut positions);
        assert_eq!(Tail::saved("source", &positions), Some(tail));
        assert_eq!(Tail::saved("output", &positions), None);

        // Appending after the position keeps it; changing a byte before it does not.
        let mut longer = body.clone();
        longer.extend_from_slice(b"more");
        std::fs::write(&p, &longer).unwrap();
        assert!(tail.matches(&File::open(&p).unwrap(), 30_000).unwrap());
        let mut changed = body.clone();
        changed[29_999] ^= 1;
        std::fs::write(&p, &changed).unwrap();
        assert!(!tail.matches(&File::open(&p).unwrap(), 30_000).unwrap());
        std::fs::write(&p, &body[..100]).unwrap();
        assert!(!tail.matches(&File::open(&p).unwrap(), 30_000).unwrap());
    }
}

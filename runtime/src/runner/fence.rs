//! Fencing of a partition's task: whoever took a partition over last owns it, and an
//! earlier owner (frozen, cut off, misconfigured) writes nothing more for it.
//!
//! Each takeover creates the next epoch file, `fence-epoch-000007`, in the partition's
//! checkpoint directory with a create-only write (`O_EXCL`): of two processes taking one
//! partition at once, each gets an epoch of its own, and the later one wins. An owner
//! checks, before every write of a checkpoint or of output, that no later epoch exists.
//!
//! ```
//! use simplestream_runtime::runner::fence::Fence;
//! let dir = tempfile::tempdir().unwrap();
//! let first = Fence::acquire(dir.path(), "instance-1").unwrap();
//! assert!(first.check().is_ok());
//! let second = Fence::acquire(dir.path(), "instance-2").unwrap();
//! assert_eq!((first.epoch(), second.epoch()), (1, 2));
//! let err = first.check().unwrap_err();
//! assert!(err.contains("taken over by instance-2 (pid "), "{err}");
//! assert!(err.contains("(epoch 2; ours is 1)"), "{err}");
//! assert!(second.check().is_ok());
//! ```

use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::group::member::Live;
use crate::store::{
    CheckpointStore, PutStream, StageSpan, StoreError, StoreErrorKind, StoredEntry,
};

const PREFIX: &str = "fence-epoch-";

/// This process's claim on one partition: its epoch, and where later ones would appear.
#[derive(Debug, Clone)]
pub struct Fence {
    dir: PathBuf,
    epoch: u64,
    /// The owner before this one, if any: (epoch, its owner line).
    previous: Option<(u64, String)>,
    /// With group assignment: the generation the claim was made under.
    member: Option<Arc<Live>>,
}

impl Fence {
    /// Takes the partition whose checkpoints are in `dir` (created if missing) for
    /// `owner`: creates the epoch after the newest one there.
    pub fn acquire(dir: &Path, owner: &str) -> Result<Fence, String> {
        fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        loop {
            let newest = newest_epoch(dir)?;
            let epoch = newest + 1;
            let path = dir.join(name(epoch));
            let made = OpenOptions::new().write(true).create_new(true).open(&path);
            let mut f = match made {
                Ok(f) => f,
                // Another process took this epoch first: take the next one.
                Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(format!("creating {}: {e}", path.display())),
            };
            let line = format!("{owner} (pid {})\n", std::process::id());
            f.write_all(line.as_bytes())
                .and_then(|()| f.sync_all())
                .map_err(|e| format!("writing {}: {e}", path.display()))?;
            if let Ok(d) = fs::File::open(dir) {
                let _ = d.sync_all();
            }
            let previous = (newest > 0).then(|| (newest, owner_of(dir, newest)));
            return Ok(Fence {
                dir: dir.to_path_buf(),
                epoch,
                previous,
                member: None,
            });
        }
    }

    /// The same claim, valid only while `member`'s generation holds.
    pub fn with_member(mut self, member: Arc<Live>) -> Fence {
        self.member = Some(member);
        self
    }

    /// This claim's epoch (1 for the first owner ever).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The owner this claim took the partition from: its epoch and who it was.
    pub fn previous(&self) -> Option<&(u64, String)> {
        self.previous.as_ref()
    }

    /// `Err` (saying who took over) once a later epoch exists, or the group generation
    /// the claim was made under is over.
    pub fn check(&self) -> Result<(), String> {
        if let Some(m) = &self.member {
            m.check()?;
        }
        let next = self.dir.join(name(self.epoch + 1));
        match fs::symlink_metadata(&next) {
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(format!("checking {}: {e}", next.display())),
            Ok(_) => {
                let newest = newest_epoch(&self.dir).unwrap_or(self.epoch + 1);
                Err(format!(
                    "fenced: this partition was taken over by {} (epoch {newest}; ours is {}): this instance writes nothing more for it",
                    owner_of(&self.dir, newest),
                    self.epoch
                ))
            }
        }
    }
}

fn name(epoch: u64) -> String {
    format!("{PREFIX}{epoch:06}")
}

fn newest_epoch(dir: &Path) -> Result<u64, String> {
    let rd = fs::read_dir(dir).map_err(|e| format!("reading {}: {e}", dir.display()))?;
    Ok(rd
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|n| n.strip_prefix(PREFIX)?.parse::<u64>().ok())
        .max()
        .unwrap_or(0))
}

fn owner_of(dir: &Path, epoch: u64) -> String {
    fs::read_to_string(dir.join(name(epoch)))
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "another instance".into())
}

/// A checkpoint store that refuses every write once its [`Fence`] is passed, with
/// [`StoreErrorKind::Conflict`] (the runner
/// stops that partition's task on it, as on any conflict).
pub struct FencedStore<S> {
    inner: S,
    fence: Fence,
}

impl<S> FencedStore<S> {
    /// `inner`, written only while `fence` holds.
    pub fn new(inner: S, fence: Fence) -> Self {
        FencedStore { inner, fence }
    }
}

impl<S: CheckpointStore> FencedStore<S> {
    fn check(&self, action: &str) -> Result<(), StoreError> {
        self.fence.check().map_err(|e| {
            StoreError::new(StoreErrorKind::Conflict, action, self.inner.location(), e)
        })
    }
}

impl<S: CheckpointStore> CheckpointStore for FencedStore<S> {
    fn location(&self) -> String {
        self.inner.location()
    }
    fn put(&mut self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        self.check("writing checkpoint to")?;
        self.inner.put(name, bytes)
    }
    fn put_staged(
        &mut self,
        name: &str,
        bytes: &[u8],
        stages: &[StageSpan],
    ) -> Result<(), StoreError> {
        self.check("writing checkpoint to")?;
        self.inner.put_staged(name, bytes, stages)
    }
    fn put_stream(&mut self, name: &str) -> Result<Box<dyn PutStream + '_>, StoreError> {
        self.check("writing checkpoint to")?;
        let location = self.inner.location();
        Ok(Box::new(FencedStream {
            inner: self.inner.put_stream(name)?,
            fence: &self.fence,
            location,
        }))
    }
    fn get(&self, name: &str) -> Result<Vec<u8>, StoreError> {
        self.inner.get(name)
    }
    fn checksum(&self, name: &str) -> Result<(u64, u32), StoreError> {
        self.inner.checksum(name)
    }
    fn list(&self) -> Result<Vec<StoredEntry>, StoreError> {
        self.inner.list()
    }
    fn delete(&mut self, name: &str) -> Result<(), StoreError> {
        self.check("deleting a checkpoint in")?;
        self.inner.delete(name)
    }
    fn put_latest(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        self.check("writing latest in")?;
        self.inner.put_latest(bytes)
    }
    fn get_latest(&self) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get_latest()
    }
    fn left_alone(&self) -> Vec<String> {
        self.inner.left_alone()
    }
}

/// A checkpoint streamed to a [`FencedStore`]: the fence is checked again at the commit,
/// as the write may have taken long.
struct FencedStream<'a> {
    inner: Box<dyn PutStream + 'a>,
    fence: &'a Fence,
    location: String,
}

impl PutStream for FencedStream<'_> {
    fn write(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        self.inner.write(bytes)
    }
    fn patch(&mut self, offset: u64, bytes: &[u8]) -> Result<(), StoreError> {
        self.inner.patch(offset, bytes)
    }
    fn commit(self: Box<Self>, stages: &[StageSpan]) -> Result<(), StoreError> {
        self.fence.check().map_err(|e| {
            StoreError::new(
                StoreErrorKind::Conflict,
                "writing checkpoint to",
                &self.location,
                e,
            )
        })?;
        self.inner.commit(stages)
    }
}

//! [`FileStore`]: checkpoints as files in a directory, one directory per instance.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::safe_fs::{self, no_follow};
use super::{
    validate_checkpoint_name, validate_instance, CheckpointStore, PutStream, StageSpan, StoreError,
    StoreErrorKind, StoredEntry,
};

/// File name of the `latest` record inside the instance directory.
const LATEST: &str = "latest.json";
/// File name of the lock file inside the instance directory.
const LOCK: &str = ".lock";
/// Suffix of temporary files; leftovers are removed when a writer opens the store.
const TMP_SUFFIX: &str = ".tmp";
/// The latest record is a few hundred bytes; anything this large is not one.
const MAX_LATEST: u64 = 1 << 20;
/// Test hook (not a stable interface): with `SIMPLESTREAM_FAIL_WRITES=N` (N > 0) set when
/// a [`FileStore`] is opened, its N-th and later `put` calls fail as if the disk were full
/// (kind [`StoreErrorKind::Full`]) and write nothing. Used by the crash and error-path
/// tests of the runner; see also [`FileStore::fail_writes_after`].
const FAIL_WRITES_ENV: &str = "SIMPLESTREAM_FAIL_WRITES";

/// How to open a [`FileStore`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FileStoreOptions {
    /// Open for reading only: take no lock, create no directory and remove no leftover
    /// temporary files, so inspection tools can run while the program runs. Writes
    /// (`put`, `delete`, `put_latest`) then fail with [`StoreErrorKind::Denied`].
    pub read_only: bool,
}

/// Checkpoints as files, one directory per instance:
///
/// ```text
/// <checkpoint-dir>/checkpoints/<instance>/checkpoint_20241201_140000_123-000042.json  (.bin for binary)
/// <checkpoint-dir>/checkpoints/<instance>/latest.json
/// <checkpoint-dir>/checkpoints/<instance>/.lock
/// ```
///
/// Writes are durable and atomic: each file is written to a temporary file in the same
/// directory, flushed to disk, renamed over its final name, and then the directory itself
/// is flushed; a crash leaves either the old file or the new one, never a partial one.
///
/// A writer holds an exclusive lock on `.lock` for as long as the `FileStore` lives, so a
/// second program (or a second `FileStore` in the same program) on the same instance is
/// refused at once with [`StoreErrorKind::Locked`] instead of corrupting the first one's
/// checkpoints. The lock is released when the store is dropped, or when the process dies.
///
/// ```
/// use simplestream_runtime::store::{CheckpointStore, FileStore, FileStoreOptions, StoreErrorKind};
///
/// let tmp = tempfile::tempdir().unwrap();
/// let mut store = FileStore::open(tmp.path(), "app-instance-1", FileStoreOptions::default()).unwrap();
/// store.put("checkpoint_20241201_140000_123-000042.json", b"{}").unwrap();
/// store.put_latest(br#"{"file":"checkpoint_20241201_140000_123-000042.json"}"#).unwrap();
/// assert_eq!(store.dir(), tmp.path().join("checkpoints").join("app-instance-1"));
/// assert!(store.dir().join("checkpoint_20241201_140000_123-000042.json").is_file());
///
/// // A second writer on the same instance is refused while `store` is alive...
/// let err = FileStore::open(tmp.path(), "app-instance-1", FileStoreOptions::default()).unwrap_err();
/// assert_eq!(err.kind, StoreErrorKind::Locked);
///
/// // ...but a read-only store can look at the checkpoints meanwhile.
/// let reader = FileStore::open(tmp.path(), "app-instance-1", FileStoreOptions { read_only: true }).unwrap();
/// assert_eq!(reader.list().unwrap()[0].name, "checkpoint_20241201_140000_123-000042.json");
/// assert_eq!(reader.get("checkpoint_20241201_140000_123-000042.json").unwrap(), b"{}");
/// ```
#[derive(Debug)]
pub struct FileStore {
    /// `<checkpoint-dir>/checkpoints/<instance>`.
    dir: PathBuf,
    instance: String,
    read_only: bool,
    /// The locked `.lock` file (writers only); closing it releases the lock.
    _lock: Option<File>,
    /// Leftover temporary files removed at open.
    cleaned: Vec<String>,
    /// Test hook: the `fail_after`-th and later `put` calls fail (see [`FAIL_WRITES_ENV`]).
    fail_after: Option<u64>,
    /// `put` calls counted toward `fail_after`.
    puts: u64,
    /// Makes temporary file names unique within this process.
    tmp_seq: AtomicU64,
}

impl FileStore {
    /// Opens (for a writer: creates and locks) the checkpoints of `instance` under `dir`,
    /// i.e. the directory `<dir>/checkpoints/<instance>`.
    ///
    /// Fails with [`StoreErrorKind::Invalid`] if the instance name is not a plain name
    /// (see [`validate_instance`]; nothing is created then), with
    /// [`StoreErrorKind::Locked`] if another process (or another `FileStore`) is writing
    /// this instance, and with the OS error and the path if a directory cannot be
    /// created. A writer removes temporary files left by a crash in the middle of a write
    /// (see [`cleaned_temp_files`](Self::cleaned_temp_files)).
    ///
    /// With [`FileStoreOptions::read_only`], the instance directory must already exist
    /// ([`StoreErrorKind::NotFound`] otherwise), and nothing is locked, created or removed.
    pub fn open(
        dir: impl AsRef<Path>,
        instance: &str,
        options: FileStoreOptions,
    ) -> Result<FileStore, StoreError> {
        validate_instance(instance)?;
        let root = dir;
        let dir = root.as_ref().join("checkpoints").join(instance);
        let fail_after = std::env::var(FAIL_WRITES_ENV)
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|&n| n > 0);
        let mut store = FileStore {
            dir,
            instance: instance.to_string(),
            read_only: options.read_only,
            _lock: None,
            cleaned: Vec::new(),
            fail_after,
            puts: 0,
            tmp_seq: AtomicU64::new(0),
        };
        if options.read_only {
            match fs::metadata(&store.dir) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    return Err(StoreError::new(
                        StoreErrorKind::Invalid,
                        "opening checkpoints (read-only)",
                        store.location(),
                        "it exists but is not a directory",
                    ))
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Err(StoreError::new(
                        StoreErrorKind::NotFound,
                        "opening checkpoints (read-only)",
                        store.location(),
                        format!("no such directory: instance `{instance}` has no checkpoints here"),
                    ))
                }
                Err(e) => {
                    return Err(StoreError::io(
                        "opening checkpoints (read-only)",
                        store.location(),
                        &e,
                    ))
                }
            }
            return Ok(store);
        }
        store.prepare_dirs(root.as_ref())?;
        store._lock = Some(store.lock()?);
        // Only now, holding the lock, is no other writer using these temporary files.
        store.cleaned = store.remove_temp_files()?;
        Ok(store)
    }

    /// A writer like [`open`](Self::open) that takes no lock: for a partition's
    /// checkpoints, which a new owner takes over while the old one may still hold them
    /// (frozen, cut off); a [`Fence`](crate::runner::fence::Fence) orders the writers
    /// instead. Temporary files left there are removed: an older owner's write in
    /// progress then fails, which it would anyway.
    ///
    /// ```
    /// use simplestream_runtime::store::FileStore;
    /// let tmp = tempfile::tempdir().unwrap();
    /// let _a = FileStore::open_unlocked(tmp.path(), "partition-0").unwrap();
    /// assert!(FileStore::open_unlocked(tmp.path(), "partition-0").is_ok());
    /// ```
    pub fn open_unlocked(dir: impl AsRef<Path>, instance: &str) -> Result<FileStore, StoreError> {
        validate_instance(instance)?;
        let mut store = FileStore {
            dir: dir.as_ref().join("checkpoints").join(instance),
            instance: instance.to_string(),
            read_only: false,
            _lock: None,
            cleaned: Vec::new(),
            fail_after: None,
            puts: 0,
            tmp_seq: AtomicU64::new(0),
        };
        store.prepare_dirs(dir.as_ref())?;
        store.cleaned = store.remove_temp_files()?;
        Ok(store)
    }

    /// The instance directory, `<checkpoint-dir>/checkpoints/<instance>`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The instance name.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// True if the store was opened read-only.
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// Temporary files (names in [`dir`](Self::dir)) left by an interrupted write and
    /// removed at open, for the caller to report. Always empty for a read-only store.
    pub fn cleaned_temp_files(&self) -> &[String] {
        &self.cleaned
    }

    /// Test hook, like the `SIMPLESTREAM_FAIL_WRITES` environment variable (read at open):
    /// with `Some(n)`, the n-th and later `put` calls counted from now fail as if the disk
    /// were full ([`StoreErrorKind::Full`]) and write nothing (`Some(0)` fails every one);
    /// `None` turns the hook off. Not a stable interface.
    #[doc(hidden)]
    pub fn fail_writes_after(&mut self, n: Option<u64>) {
        self.fail_after = n;
        self.puts = 0;
    }

    /// Creates `<root>/checkpoints/<instance>`, flushing the parent of each new level, and
    /// refuses a `checkpoints` or instance directory that is a symlink or another user's:
    /// either could hold planted checkpoints or send ours elsewhere. `root` itself is the
    /// user's choice and may be a symlink.
    fn prepare_dirs(&self, root: &Path) -> Result<(), StoreError> {
        const ACTION: &str = "creating checkpoint directory";
        safe_fs::create_dir_all_synced(root)
            .map_err(|e| StoreError::io(ACTION, root.display().to_string(), &e))?;
        let tree = root.join("checkpoints");
        for d in [tree.as_path(), self.dir.as_path()] {
            safe_fs::create_dir_synced(d)
                .map_err(|e| StoreError::io(ACTION, d.display().to_string(), &e))?;
            let meta = fs::symlink_metadata(d)
                .map_err(|e| StoreError::io(ACTION, d.display().to_string(), &e))?;
            let why = if meta.file_type().is_symlink() {
                "it is a symbolic link; the directories under --checkpoint-dir must be real ones (a planted link would send checkpoints elsewhere): replace it with a directory, or point --checkpoint-dir at the real place"
            } else if !meta.is_dir() {
                "it exists but is not a directory"
            } else {
                continue;
            };
            return Err(StoreError::new(
                StoreErrorKind::Invalid,
                "opening checkpoints",
                d.display().to_string(),
                why,
            ));
        }
        #[cfg(unix)]
        check_owner(&[tree.as_path(), self.dir.as_path()], self.own_uid()?)?;
        Ok(())
    }

    /// The user id files created by this process get in the instance directory (std has
    /// no safe getuid): a probe file is created, looked at and removed.
    #[cfg(unix)]
    fn own_uid(&self) -> Result<u32, StoreError> {
        use std::os::unix::fs::MetadataExt;
        let probe = self
            .dir
            .join(format!(".owner-probe.{}{TMP_SUFFIX}", std::process::id()));
        let at = |e: io::Error| {
            StoreError::io(
                "checking the owner of",
                self.location(),
                &safe_fs::explain(e),
            )
        };
        let _ = fs::remove_file(&probe);
        let f = no_follow(OpenOptions::new().write(true).create_new(true))
            .open(&probe)
            .map_err(at)?;
        let uid = f.metadata().map_err(at)?.uid();
        drop(f);
        let _ = fs::remove_file(&probe);
        Ok(uid)
    }

    fn lock_path(&self) -> PathBuf {
        self.dir.join(LOCK)
    }

    /// Takes the exclusive lock on `.lock` and writes our PID into it.
    fn lock(&self) -> Result<File, StoreError> {
        let path = self.lock_path();
        // No truncation before the lock is ours: the file holds the current holder's PID.
        let mut file = no_follow(
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false),
        )
        .open(&path)
        .map_err(|e| {
            let e = safe_fs::explain(e);
            let mut err = StoreError::io("opening lock file", path.display().to_string(), &e);
            if e.kind() == io::ErrorKind::InvalidInput {
                err.kind = StoreErrorKind::Invalid;
            }
            err
        })?;
        // `File::try_lock` (Rust 1.89+): flock(LOCK_EX | LOCK_NB) on Unix, LockFileEx on
        // Windows; held by the open file, so also against a second open in this process.
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let pid = match file.read_to_string(&mut holder) {
                    Ok(_) => holder.trim().parse::<u32>().ok(),
                    Err(_) => None,
                };
                let by = match pid {
                    Some(pid) if pid == std::process::id() => {
                        format!("held by pid {pid}, this very process: another FileStore on it is still open")
                    }
                    Some(pid) => format!("held by pid {pid}"),
                    None => "held by another process".to_string(),
                };
                return Err(StoreError::new(
                    StoreErrorKind::Locked,
                    "locking instance",
                    path.display().to_string(),
                    format!(
                        "another process is running on instance `{}`: its lock file {} is {by}; \
                         stop that process first, or use another instance name \
                         (inspection tools can open the store read-only meanwhile)",
                        self.instance,
                        path.display()
                    ),
                ));
            }
            Err(TryLockError::Error(e)) => {
                return Err(StoreError::io(
                    "locking instance",
                    path.display().to_string(),
                    &e,
                ));
            }
        }
        // The PID only serves the message above, so failing to write it is not an error.
        let _ = file
            .set_len(0)
            .and_then(|()| writeln!(file, "{}", std::process::id()));
        Ok(file)
    }

    /// Removes `*.tmp` files from the instance directory; returns their names.
    fn remove_temp_files(&self) -> Result<Vec<String>, StoreError> {
        let rd = fs::read_dir(&self.dir)
            .map_err(|e| StoreError::io("listing checkpoints", self.location(), &e))?;
        let mut removed = Vec::new();
        for entry in rd {
            let entry =
                entry.map_err(|e| StoreError::io("listing checkpoints", self.location(), &e))?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            // A symlink named like a temporary file is removed too (the link, not its target).
            if !name.ends_with(TMP_SUFFIX)
                || !entry
                    .file_type()
                    .is_ok_and(|t| t.is_file() || t.is_symlink())
            {
                continue;
            }
            let path = entry.path();
            match fs::remove_file(&path) {
                Ok(()) => removed.push(name),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(StoreError::io(
                        "removing leftover temporary file",
                        path.display().to_string(),
                        &e,
                    ))
                }
            }
        }
        removed.sort();
        Ok(removed)
    }

    fn path_of(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    fn deny_read_only(&self, action: &str, name: &str) -> Result<(), StoreError> {
        if self.read_only {
            return Err(StoreError::new(
                StoreErrorKind::Denied,
                action,
                self.path_of(name),
                "the store was opened read-only (for inspection); open it without `read_only` to write",
            ));
        }
        Ok(())
    }

    fn check_name(&self, action: &str, name: &str) -> Result<(), StoreError> {
        validate_checkpoint_name(name, action, self.location())
    }

    /// Writes `name` durably and atomically: temporary file, fsync, rename, fsync of the
    /// directory. On failure the temporary file is removed and the old file is untouched.
    fn write_atomic(&self, action: &str, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let path = self.dir.join(name);
        let (mut f, tmp) = self.create_temp(action, name)?;
        let written = (|| {
            let at_tmp = |e: io::Error| StoreError::io(action, tmp.display().to_string(), &e);
            f.write_all(bytes).map_err(at_tmp)?;
            f.sync_all().map_err(at_tmp)?;
            drop(f);
            fs::rename(&tmp, &path).map_err(|e| {
                let mut err = StoreError::io(action, path.display().to_string(), &e);
                err.detail = format!("renaming {} into place: {}", tmp.display(), err.detail);
                err
            })
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        self.sync_dir(action)
    }

    /// Creates a new temporary file for `name`: never an existing file, never through a
    /// symlink (a planted one is skipped over, its target untouched).
    fn create_temp(&self, action: &str, name: &str) -> Result<(File, PathBuf), StoreError> {
        let mut last = None;
        for _ in 0..16 {
            let seq = self.tmp_seq.fetch_add(1, Ordering::Relaxed);
            let tmp = self
                .dir
                .join(format!(".{name}.{}.{seq}{TMP_SUFFIX}", std::process::id()));
            match no_follow(OpenOptions::new().write(true).create_new(true)).open(&tmp) {
                Ok(f) => return Ok((f, tmp)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some((e, tmp)),
                Err(e) => return Err(StoreError::io(action, tmp.display().to_string(), &e)),
            }
        }
        let (e, tmp) = last.expect("the loop ran");
        Err(StoreError::io(action, tmp.display().to_string(), &e))
    }

    /// Flushes the directory, so a rename or removal in it survives a crash.
    fn sync_dir(&self, action: &str) -> Result<(), StoreError> {
        // Directories cannot be opened as files on Windows (renames there are durable
        // through the file system's journal), so this is for Unix only.
        #[cfg(unix)]
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| {
                let mut err = StoreError::io(action, self.location(), &e);
                err.detail = format!("syncing the directory: {}", err.detail);
                err
            })?;
        #[cfg(not(unix))]
        let _ = action;
        Ok(())
    }
}

/// [`FileStore::put_stream`]: a temporary file written as the pieces come, made durable
/// and renamed into place at the commit; removed if dropped before.
struct FileStream<'a> {
    store: &'a FileStore,
    path: PathBuf,
    file: Option<File>,
    tmp: PathBuf,
    len: u64,
}

impl FileStream<'_> {
    const ACTION: &'static str = "writing checkpoint";

    fn at_tmp(&self, e: &io::Error) -> StoreError {
        StoreError::io(Self::ACTION, self.tmp.display().to_string(), e)
    }
}

impl PutStream for FileStream<'_> {
    fn write(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        let f = self.file.as_mut().expect("open until the commit");
        f.write_all(bytes)
            .map_err(|e| StoreError::io(Self::ACTION, self.tmp.display().to_string(), &e))?;
        self.len += bytes.len() as u64;
        Ok(())
    }

    fn patch(&mut self, offset: u64, bytes: &[u8]) -> Result<(), StoreError> {
        if offset.saturating_add(bytes.len() as u64) > self.len {
            return Err(super::stream::past_end(
                &self.path.display().to_string(),
                offset,
                bytes.len(),
            ));
        }
        let f = self.file.as_mut().expect("open until the commit");
        let r = f
            .seek(io::SeekFrom::Start(offset))
            .and_then(|_| f.write_all(bytes))
            .and_then(|_| f.seek(io::SeekFrom::End(0)).map(|_| ()));
        r.map_err(|e| self.at_tmp(&e))
    }

    fn commit(mut self: Box<Self>, _: &[StageSpan]) -> Result<(), StoreError> {
        let f = self.file.take().expect("open until the commit");
        f.sync_all().map_err(|e| self.at_tmp(&e))?;
        drop(f);
        fs::rename(&self.tmp, &self.path).map_err(|e| {
            let mut err = StoreError::io(Self::ACTION, self.path.display().to_string(), &e);
            err.detail = format!("renaming {} into place: {}", self.tmp.display(), err.detail);
            err
        })?;
        self.store.sync_dir(Self::ACTION)
    }
}

impl Drop for FileStream<'_> {
    fn drop(&mut self) {
        if self.file.is_some() || self.tmp.exists() {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

impl CheckpointStore for FileStore {
    fn location(&self) -> String {
        self.dir.display().to_string()
    }

    fn put(&mut self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        const ACTION: &str = "writing checkpoint";
        self.check_name(ACTION, name)?;
        self.deny_read_only(ACTION, name)?;
        self.puts += 1;
        if let Some(n) = self.fail_after {
            if self.puts >= n {
                return Err(StoreError::new(
                    StoreErrorKind::Full,
                    ACTION,
                    self.path_of(name),
                    format!(
                        "simulated: no space left on device (test hook: put #{n} and later fail)"
                    ),
                ));
            }
        }
        self.write_atomic(ACTION, name, bytes)
    }

    fn put_stream(&mut self, name: &str) -> Result<Box<dyn PutStream + '_>, StoreError> {
        const ACTION: &str = "writing checkpoint";
        self.check_name(ACTION, name)?;
        self.deny_read_only(ACTION, name)?;
        self.puts += 1;
        if let Some(n) = self.fail_after.filter(|&n| self.puts >= n) {
            return Err(StoreError::new(
                StoreErrorKind::Full,
                ACTION,
                self.path_of(name),
                format!("simulated: no space left on device (test hook: put #{n} and later fail)"),
            ));
        }
        let (file, tmp) = self.create_temp(ACTION, name)?;
        Ok(Box::new(FileStream {
            store: self,
            path: self.dir.join(name),
            file: Some(file),
            tmp,
            len: 0,
        }))
    }

    fn get(&self, name: &str) -> Result<Vec<u8>, StoreError> {
        const ACTION: &str = "reading checkpoint";
        self.check_name(ACTION, name)?;
        safe_fs::read_regular(&self.dir.join(name), u64::MAX)
            .map_err(|e| StoreError::io(ACTION, self.path_of(name), &e))
    }

    fn checksum(&self, name: &str) -> Result<(u64, u32), StoreError> {
        const ACTION: &str = "reading checkpoint";
        self.check_name(ACTION, name)?;
        let path = self.dir.join(name);
        safe_fs::checksum_regular(&path).map_err(|e| StoreError::io(ACTION, self.path_of(name), &e))
    }

    fn list(&self) -> Result<Vec<StoredEntry>, StoreError> {
        const ACTION: &str = "listing checkpoints";
        let rd =
            fs::read_dir(&self.dir).map_err(|e| StoreError::io(ACTION, self.location(), &e))?;
        let mut out = Vec::new();
        for entry in rd {
            let entry = entry.map_err(|e| StoreError::io(ACTION, self.location(), &e))?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if !name.starts_with("checkpoint_")
                || !(name.ends_with(".json") || name.ends_with(".bin"))
            {
                continue;
            }
            let meta = match entry.metadata() {
                Ok(m) => m,
                // Deleted by the writer since read_dir saw it (we may be a read-only reader).
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => {
                    return Err(StoreError::io(
                        ACTION,
                        entry.path().display().to_string(),
                        &e,
                    ))
                }
            };
            if meta.is_file() {
                out.push(StoredEntry {
                    name,
                    size: meta.len(),
                });
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn delete(&mut self, name: &str) -> Result<(), StoreError> {
        const ACTION: &str = "deleting checkpoint";
        self.check_name(ACTION, name)?;
        self.deny_read_only(ACTION, name)?;
        match fs::remove_file(self.dir.join(name)) {
            Ok(()) => self.sync_dir(ACTION),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::io(ACTION, self.path_of(name), &e)),
        }
    }

    fn put_latest(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        const ACTION: &str = "writing latest record";
        self.deny_read_only(ACTION, LATEST)?;
        self.write_atomic(ACTION, LATEST, bytes)
    }

    fn get_latest(&self) -> Result<Option<Vec<u8>>, StoreError> {
        match safe_fs::read_regular(&self.dir.join(LATEST), MAX_LATEST) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::io(
                "reading latest record",
                self.path_of(LATEST),
                &e,
            )),
        }
    }
}

/// Refuses `dirs` not owned by `uid`.
#[cfg(unix)]
fn check_owner(dirs: &[&Path], uid: u32) -> Result<(), StoreError> {
    use std::os::unix::fs::MetadataExt;
    for d in dirs {
        let meta = fs::symlink_metadata(d)
            .map_err(|e| StoreError::io("opening checkpoints", d.display().to_string(), &e))?;
        if meta.uid() != uid {
            return Err(StoreError::new(
                StoreErrorKind::Invalid,
                "opening checkpoints",
                d.display().to_string(),
                format!(
                    "it is owned by user id {}, not by this user (id {uid}): another user's directory could hold planted checkpoints or links; use a checkpoint directory of your own",
                    meta.uid()
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "checkpoint_20241201_140000_123-000001.json";
    const B: &str = "checkpoint_20241201_140000_456-000002.bin";
    const C: &str = "checkpoint_20241201_140001_000-000003.json";

    fn rw() -> FileStoreOptions {
        FileStoreOptions::default()
    }

    fn ro() -> FileStoreOptions {
        FileStoreOptions { read_only: true }
    }

    fn names(s: &FileStore) -> Vec<String> {
        s.list().unwrap().into_iter().map(|e| e.name).collect()
    }

    #[test]
    fn round_trip_put_get_list_delete_latest() {
        let tmp = tempfile::tempdir().unwrap();
        let mut s = FileStore::open(tmp.path(), "app", rw()).unwrap();
        assert!(s.list().unwrap().is_empty());
        assert_eq!(s.get_latest().unwrap(), None);

        s.put(A, b"{\"a\":1}").unwrap();
        s.put(B, &[0, 1, 2, 255]).unwrap();
        assert_eq!(s.get(A).unwrap(), b"{\"a\":1}");
        assert_eq!(s.get(B).unwrap(), vec![0, 1, 2, 255]);
        assert_eq!(
            s.list().unwrap(),
            vec![
                StoredEntry {
                    name: A.into(),
                    size: 7
                },
                StoredEntry {
                    name: B.into(),
                    size: 4
                }
            ]
        );

        // Overwriting replaces the content.
        s.put(A, b"{}").unwrap();
        assert_eq!(s.get(A).unwrap(), b"{}");

        s.put_latest(b"{\"file\":\"a\"}").unwrap();
        assert_eq!(
            s.get_latest().unwrap().as_deref(),
            Some(&b"{\"file\":\"a\"}"[..])
        );
        s.put_latest(b"{\"file\":\"b\"}").unwrap();
        assert_eq!(
            s.get_latest().unwrap().as_deref(),
            Some(&b"{\"file\":\"b\"}"[..])
        );

        s.delete(A).unwrap();
        assert_eq!(names(&s), vec![B.to_string()]);
        let err = s.get(A).unwrap_err();
        assert_eq!(err.kind, StoreErrorKind::NotFound);
        assert!(err.to_string().contains(A), "{err}");
        // Deleting a missing checkpoint is fine.
        s.delete(A).unwrap();
        // No temporary files are left behind by successful writes.
        let leftovers: Vec<_> = fs::read_dir(s.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn layout_is_checkpoints_instance_files() {
        let tmp = tempfile::tempdir().unwrap();
        let mut s = FileStore::open(tmp.path(), "app-instance-1", rw()).unwrap();
        let inst = tmp.path().join("checkpoints").join("app-instance-1");
        assert_eq!(s.dir(), inst.as_path());
        assert_eq!(s.location(), inst.display().to_string());
        assert_eq!(s.instance(), "app-instance-1");
        s.put("checkpoint_20241201_140000_123-000042.json", b"j")
            .unwrap();
        s.put("checkpoint_20241201_140000_123-000043.bin", b"b")
            .unwrap();
        s.put_latest(b"{}").unwrap();
        assert_eq!(
            fs::read(inst.join("checkpoint_20241201_140000_123-000042.json")).unwrap(),
            b"j"
        );
        assert_eq!(
            fs::read(inst.join("checkpoint_20241201_140000_123-000043.bin")).unwrap(),
            b"b"
        );
        assert_eq!(fs::read(inst.join("latest.json")).unwrap(), b"{}");
        assert!(inst.join(".lock").is_file());
        let mut all: Vec<_> = fs::read_dir(&inst)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        all.sort();
        assert_eq!(
            all,
            [
                ".lock",
                "checkpoint_20241201_140000_123-000042.json",
                "checkpoint_20241201_140000_123-000043.bin",
                "latest.json"
            ]
        );
        // Another instance gets its own directory.
        let other = FileStore::open(tmp.path(), "other", rw()).unwrap();
        assert_eq!(other.dir(), tmp.path().join("checkpoints").join("other"));
        assert!(other.list().unwrap().is_empty());
    }

    #[test]
    fn list_is_sorted_and_skips_temp_latest_lock_and_others() {
        let tmp = tempfile::tempdir().unwrap();
        let mut s = FileStore::open(tmp.path(), "app", rw()).unwrap();
        s.put(C, b"3").unwrap();
        s.put(A, b"1").unwrap();
        s.put(B, b"22").unwrap();
        s.put_latest(b"{}").unwrap();
        let d = s.dir().to_path_buf();
        fs::write(d.join(format!(".{C}.999.tmp")), b"partial").unwrap();
        fs::write(
            d.join("checkpoint_20241201_140002_000-000004.json.tmp"),
            b"partial",
        )
        .unwrap();
        fs::write(d.join("notes.txt"), b"x").unwrap();
        fs::write(d.join("checkpoint_20241201_140003_000-000005.txt"), b"x").unwrap();
        fs::create_dir(d.join("checkpoint_dir.json")).unwrap();
        assert_eq!(
            s.list().unwrap(),
            vec![
                StoredEntry {
                    name: A.into(),
                    size: 1
                },
                StoredEntry {
                    name: B.into(),
                    size: 2
                },
                StoredEntry {
                    name: C.into(),
                    size: 1
                },
            ]
        );
    }

    #[test]
    fn leftover_temp_files_are_removed_at_open() {
        let tmp = tempfile::tempdir().unwrap();
        let d = {
            let mut s = FileStore::open(tmp.path(), "app", rw()).unwrap();
            assert!(s.cleaned_temp_files().is_empty());
            s.put(A, b"good").unwrap();
            s.dir().to_path_buf()
        };
        let t1 = format!(".{B}.4242.tmp");
        let t2 = ".latest.json.4242.tmp".to_string();
        fs::write(d.join(&t1), b"half a checkpoint").unwrap();
        fs::write(d.join(&t2), b"{\"fi").unwrap();

        // A reader does not touch them.
        let r = FileStore::open(tmp.path(), "app", ro()).unwrap();
        assert!(r.cleaned_temp_files().is_empty());
        assert!(d.join(&t1).exists());
        drop(r);

        let s = FileStore::open(tmp.path(), "app", rw()).unwrap();
        let mut expected = vec![t1.clone(), t2.clone()];
        expected.sort();
        assert_eq!(s.cleaned_temp_files(), expected.as_slice());
        assert!(!d.join(&t1).exists());
        assert!(!d.join(&t2).exists());
        // Real checkpoints and the lock stay.
        assert_eq!(s.get(A).unwrap(), b"good");
        assert!(d.join(".lock").exists());
    }

    #[test]
    fn bad_instance_names_are_rejected_and_create_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        let long = "a".repeat(200);
        for bad in [
            "",
            "..",
            ".",
            "a/b",
            "../x",
            "a\\b",
            "/abs",
            "x\n",
            "a\u{1}b",
            ".hidden",
            long.as_str(),
        ] {
            for opts in [rw(), ro()] {
                let err = FileStore::open(&root, bad, opts).unwrap_err();
                assert_eq!(err.kind, StoreErrorKind::Invalid, "{bad:?}: {err}");
                assert!(err.to_string().contains("instance name"), "{bad:?}: {err}");
            }
        }
        assert!(
            !root.exists(),
            "nothing may be created for a bad instance name"
        );
        let outside: Vec<_> = fs::read_dir(tmp.path()).unwrap().collect();
        assert!(outside.is_empty(), "{outside:?}");
    }

    #[test]
    fn bad_checkpoint_names_are_rejected() {
        let tmp = tempfile::tempdir().unwrap();
        let mut s = FileStore::open(tmp.path(), "app", rw()).unwrap();
        s.put(A, b"keep").unwrap();
        for bad in [
            "",
            "../x.json",
            "a/b.json",
            "a\\b.json",
            "..",
            ".hidden.json",
            ".lock",
            "latest.json",
            "x.json.tmp",
            "a\nb",
        ] {
            let err = s.put(bad, b"x").unwrap_err();
            assert_eq!(err.kind, StoreErrorKind::Invalid, "{bad:?}: {err}");
            assert!(
                err.to_string().contains("not a valid checkpoint name"),
                "{err}"
            );
            assert_eq!(
                s.get(bad).unwrap_err().kind,
                StoreErrorKind::Invalid,
                "{bad:?}"
            );
            assert_eq!(
                s.delete(bad).unwrap_err().kind,
                StoreErrorKind::Invalid,
                "{bad:?}"
            );
        }
        assert!(!tmp.path().join("checkpoints").join("x.json").exists());
        assert!(!tmp.path().join("x.json").exists());
        // The lock and latest are untouched by the refused calls.
        assert!(s.dir().join(".lock").exists());
        assert_eq!(names(&s), vec![A.to_string()]);
    }

    #[test]
    fn second_writer_is_locked_out_until_the_first_is_dropped() {
        let tmp = tempfile::tempdir().unwrap();
        let mut first = FileStore::open(tmp.path(), "app", rw()).unwrap();
        first.put(A, b"1").unwrap();
        let lock = first.dir().join(".lock");
        assert_eq!(
            fs::read_to_string(&lock).unwrap().trim(),
            std::process::id().to_string()
        );

        let err = FileStore::open(tmp.path(), "app", rw()).unwrap_err();
        assert_eq!(err.kind, StoreErrorKind::Locked, "{err}");
        let msg = err.to_string();
        assert!(msg.contains("`app`"), "{msg}");
        assert!(msg.contains(&lock.display().to_string()), "{msg}");
        assert!(
            msg.contains("another process is running on instance"),
            "{msg}"
        );
        assert!(
            msg.contains(&format!("held by pid {}", std::process::id())),
            "{msg}"
        );
        // The refused open did not clobber the holder's PID.
        assert_eq!(
            fs::read_to_string(&lock).unwrap().trim(),
            std::process::id().to_string()
        );

        // Another instance is independent.
        FileStore::open(tmp.path(), "other", rw()).unwrap();

        drop(first);
        // A child that another test of this binary forks while `first` is open shares its
        // lock until that child execs (close-on-exec): wait for that, bounded as a hang guard.
        let start = std::time::Instant::now();
        let second = loop {
            match FileStore::open(tmp.path(), "app", rw()) {
                Ok(s) => break s,
                Err(e) if e.kind == StoreErrorKind::Locked && start.elapsed().as_secs() < 60 => {
                    std::thread::yield_now()
                }
                Err(e) => panic!("{e}"),
            }
        };
        assert_eq!(second.get(A).unwrap(), b"1");
    }

    /// The lock also holds against other processes: this test runs its own binary again
    /// as the "other process" (in child mode, selected by an environment variable set only
    /// for the child).
    #[test]
    fn second_process_is_locked_out() {
        const CHILD: &str = "SIMPLESTREAM_TEST_LOCK_CHILD_DIR";
        if let Some(dir) = std::env::var_os(CHILD) {
            match FileStore::open(&dir, "app", rw()) {
                Ok(s) => println!(
                    "CHILD-OPENED pid {} cleaned {:?}",
                    std::process::id(),
                    s.cleaned_temp_files()
                ),
                Err(e) => println!("CHILD-ERROR {:?}: {e}", e.kind),
            }
            std::process::exit(0);
        }
        let run_child = |dir: &Path| {
            let out = std::process::Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "store::file::tests::second_process_is_locked_out",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(CHILD, dir)
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            // The harness prints `test ... ` before the child's own output on the same line.
            let line = stdout
                .find("CHILD-")
                .and_then(|i| stdout[i..].lines().next())
                .map(str::to_owned);
            line.unwrap_or_else(|| {
                panic!(
                    "child printed no result: {stdout} {}",
                    String::from_utf8_lossy(&out.stderr)
                )
            })
        };
        let tmp = tempfile::tempdir().unwrap();
        let s = FileStore::open(tmp.path(), "app", rw()).unwrap();
        let line = run_child(tmp.path());
        assert!(line.starts_with("CHILD-ERROR Locked: "), "{line}");
        assert!(
            line.contains("another process is running on instance `app`"),
            "{line}"
        );
        assert!(
            line.contains(&format!("held by pid {}", std::process::id())),
            "{line}"
        );
        assert!(
            line.contains(&s.dir().join(".lock").display().to_string()),
            "{line}"
        );
        // A leftover temp file is not removed by the refused process.
        fs::write(s.dir().join(".x.json.1.tmp"), b"x").unwrap();
        drop(s);
        let line = run_child(tmp.path());
        assert!(line.starts_with("CHILD-OPENED pid "), "{line}");
        assert!(line.contains(".x.json.1.tmp"), "{line}");
        assert!(!tmp.path().join("checkpoints/app/.x.json.1.tmp").exists());
    }

    #[test]
    fn read_only_reads_while_a_writer_runs_and_refuses_writes() {
        let tmp = tempfile::tempdir().unwrap();
        // Nothing there yet: a reader does not create the directory.
        let err = FileStore::open(tmp.path(), "app", ro()).unwrap_err();
        assert_eq!(err.kind, StoreErrorKind::NotFound, "{err}");
        assert!(!tmp.path().join("checkpoints").exists());

        let mut w = FileStore::open(tmp.path(), "app", rw()).unwrap();
        w.put(A, b"one").unwrap();
        w.put_latest(b"{\"file\":\"a\"}").unwrap();

        let mut r = FileStore::open(tmp.path(), "app", ro()).unwrap();
        assert!(r.is_read_only());
        assert_eq!(r.get(A).unwrap(), b"one");
        assert_eq!(
            r.get_latest().unwrap().as_deref(),
            Some(&b"{\"file\":\"a\"}"[..])
        );
        assert_eq!(names(&r), vec![A.to_string()]);

        for err in [
            r.put(B, b"x").unwrap_err(),
            r.delete(A).unwrap_err(),
            r.put_latest(b"{}").unwrap_err(),
        ] {
            assert_eq!(err.kind, StoreErrorKind::Denied, "{err}");
            assert!(err.to_string().contains("read-only"), "{err}");
        }
        assert_eq!(r.get(A).unwrap(), b"one");
        assert!(!r.dir().join(B).exists());
        assert_eq!(
            w.get_latest().unwrap().as_deref(),
            Some(&b"{\"file\":\"a\"}"[..])
        );

        // The reader sees what the writer writes later, and does not hold the lock.
        w.put(B, b"two").unwrap();
        assert_eq!(names(&r), vec![A.to_string(), B.to_string()]);
        drop(w);
        FileStore::open(tmp.path(), "app", rw()).unwrap();
    }

    /// True when this process runs as root (it owns the files it creates as uid 0).
    #[cfg(unix)]
    fn running_as_root() -> bool {
        use std::os::unix::fs::MetadataExt;
        let f = tempfile::NamedTempFile::new().unwrap();
        f.as_file().metadata().unwrap().uid() == 0
    }

    /// Runs the test `name` of this binary again as user `nobody`, from a copy of the
    /// binary in a directory that user can read, and fails unless it ran and passed.
    /// (Root ignores permission bits: a test of them must not run as root.)
    #[cfg(unix)]
    fn rerun_as_nobody(name: &str) {
        use std::os::unix::fs::PermissionsExt;
        const CHILD: &str = "SIMPLESTREAM_TEST_UNPRIVILEGED";
        assert!(
            std::env::var_os(CHILD).is_none(),
            "setpriv did not drop root privileges"
        );
        let tmp = tempfile::tempdir().unwrap();
        fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o777)).unwrap();
        let exe = tmp.path().join("test-binary");
        fs::copy(std::env::current_exe().unwrap(), &exe).unwrap();
        fs::set_permissions(&exe, fs::Permissions::from_mode(0o755)).unwrap();
        let out = std::process::Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&exe)
            .args([name, "--exact", "--test-threads=1", "--nocapture"])
            .env(CHILD, "1")
            .env("TMPDIR", tmp.path())
            .output()
            .unwrap_or_else(|e| panic!("running setpriv (util-linux) to drop root: {e}"));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "{name} as nobody: {}\n{stdout}\n{stderr}",
            out.status
        );
    }

    #[cfg(unix)]
    #[test]
    fn write_into_unwritable_directory_is_denied_and_keeps_the_old_checkpoint() {
        use std::os::unix::fs::PermissionsExt;
        if running_as_root() {
            rerun_as_nobody(
                "store::file::tests::write_into_unwritable_directory_is_denied_and_keeps_the_old_checkpoint",
            );
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let mut s = FileStore::open(tmp.path(), "app", rw()).unwrap();
        s.put(A, b"old").unwrap();
        s.put_latest(b"{\"file\":\"old\"}").unwrap();
        let d = s.dir().to_path_buf();
        fs::set_permissions(&d, fs::Permissions::from_mode(0o555)).unwrap();
        struct Restore(PathBuf);
        impl Drop for Restore {
            fn drop(&mut self) {
                let _ = fs::set_permissions(&self.0, fs::Permissions::from_mode(0o755));
            }
        }
        let _restore = Restore(d.clone());

        assert!(
            fs::write(d.join("probe"), b"x").is_err(),
            "a read-only directory took a write: permission bits are not enforced here"
        );
        let err = s.put(B, b"new").unwrap_err();
        assert_eq!(err.kind, StoreErrorKind::Denied, "{err}");
        let msg = err.to_string();
        assert!(msg.starts_with("writing checkpoint "), "{msg}");
        assert!(msg.contains(&d.display().to_string()), "{msg}");
        assert!(msg.contains(B), "{msg}");
        let err = s.put_latest(b"{\"file\":\"new\"}").unwrap_err();
        assert_eq!(err.kind, StoreErrorKind::Denied, "{err}");
        assert_eq!(s.get(A).unwrap(), b"old");
        assert_eq!(
            s.get_latest().unwrap().as_deref(),
            Some(&b"{\"file\":\"old\"}"[..])
        );
        assert_eq!(names(&s), vec![A.to_string()]);
    }

    #[test]
    fn simulated_full_disk_fails_the_nth_and_later_puts() {
        let tmp = tempfile::tempdir().unwrap();
        let mut s = FileStore::open(tmp.path(), "app", rw()).unwrap();
        s.fail_writes_after(Some(3));
        s.put(A, b"1").unwrap();
        s.put(B, b"2").unwrap();
        for name in [C, "checkpoint_20241201_140002_000-000004.json"] {
            let err = s.put(name, b"x").unwrap_err();
            assert_eq!(err.kind, StoreErrorKind::Full, "{err}");
            assert!(
                err.to_string()
                    .contains("simulated: no space left on device"),
                "{err}"
            );
            assert!(err.to_string().contains(name), "{err}");
            assert!(!s.dir().join(name).exists());
        }
        // The latest record is not affected, and the earlier checkpoints are intact.
        s.put_latest(b"{}").unwrap();
        assert_eq!(names(&s), vec![A.to_string(), B.to_string()]);
        assert_eq!(s.get(B).unwrap(), b"2");
        let tmps = fs::read_dir(s.dir())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".tmp")
            })
            .count();
        assert_eq!(tmps, 0);

        s.fail_writes_after(None);
        s.put(C, b"3").unwrap();
        assert_eq!(s.get(C).unwrap(), b"3");
    }

    #[test]
    fn failed_write_leaves_no_temp_file_and_keeps_the_old_file() {
        // Make the rename fail: a directory sits where the checkpoint should go.
        let tmp = tempfile::tempdir().unwrap();
        let mut s = FileStore::open(tmp.path(), "app", rw()).unwrap();
        s.put(A, b"old").unwrap();
        fs::create_dir(s.dir().join(B)).unwrap();
        fs::write(s.dir().join(B).join("x"), b"x").unwrap();
        let err = s.put(B, b"new").unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("writing checkpoint "), "{msg}");
        assert!(
            msg.contains(&s.dir().join(B).display().to_string()),
            "{msg}"
        );
        assert!(msg.contains("renaming"), "{msg}");
        let tmps = fs::read_dir(s.dir())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".tmp")
            })
            .count();
        assert_eq!(tmps, 0);
        assert_eq!(s.get(A).unwrap(), b"old");
    }

    #[cfg(unix)]
    #[test]
    fn planted_symlinks_are_never_followed() {
        use std::os::unix::fs::symlink;
        let tmp = tempfile::tempdir().unwrap();
        let victim = tmp.path().join("victim.txt");
        fs::write(&victim, b"precious").unwrap();
        let d = tmp.path().join("checkpoints/app");
        fs::create_dir_all(&d).unwrap();

        // The lock file a symlink: refused, the target untouched.
        symlink(&victim, d.join(".lock")).unwrap();
        let err = FileStore::open(tmp.path(), "app", rw()).unwrap_err();
        assert_eq!(err.kind, StoreErrorKind::Invalid, "{err}");
        assert!(err.to_string().contains("symbolic link"), "{err}");
        assert_eq!(fs::read(&victim).unwrap(), b"precious");
        fs::remove_file(d.join(".lock")).unwrap();

        // Temporary names of this process planted as symlinks: removed at open (the
        // links), and a write never goes through one.
        let pid = std::process::id();
        for seq in 0..3 {
            symlink(&victim, d.join(format!(".{A}.{pid}.{seq}.tmp"))).unwrap();
        }
        let mut s = FileStore::open(tmp.path(), "app", rw()).unwrap();
        assert_eq!(s.cleaned_temp_files().len(), 3);
        for seq in 0..3 {
            symlink(&victim, d.join(format!(".{A}.{pid}.{seq}.tmp"))).unwrap();
            symlink(&victim, d.join(format!(".{LATEST}.{pid}.{}.tmp", seq + 4))).unwrap();
        }
        s.put(A, b"checkpoint").unwrap();
        s.put_latest(b"{}").unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"precious");
        assert_eq!(s.get(A).unwrap(), b"checkpoint");
        assert!(!fs::symlink_metadata(d.join(A))
            .unwrap()
            .file_type()
            .is_symlink());

        // A checkpoint or latest record that is a symlink is not read.
        drop(s);
        fs::remove_file(d.join(LATEST)).unwrap();
        symlink(&victim, d.join(LATEST)).unwrap();
        symlink(&victim, d.join(B)).unwrap();
        let s = FileStore::open(tmp.path(), "app", rw()).unwrap();
        let err = s.get(B).unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        let err = s.get_latest().unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        assert_eq!(names(&s), vec![A.to_string()], "symlinks are not listed");
    }

    #[cfg(unix)]
    #[test]
    fn symlinked_checkpoint_tree_is_refused_and_creates_nothing_there() {
        use std::os::unix::fs::symlink;
        let tmp = tempfile::tempdir().unwrap();
        let elsewhere = tmp.path().join("elsewhere");
        fs::create_dir(&elsewhere).unwrap();
        // The instance directory a symlink.
        let root = tmp.path().join("one");
        fs::create_dir_all(root.join("checkpoints")).unwrap();
        symlink(&elsewhere, root.join("checkpoints/app")).unwrap();
        // `checkpoints` a symlink.
        let root2 = tmp.path().join("two");
        fs::create_dir(&root2).unwrap();
        symlink(&elsewhere, root2.join("checkpoints")).unwrap();
        for r in [&root, &root2] {
            let err = FileStore::open(r, "app", rw()).unwrap_err();
            assert_eq!(err.kind, StoreErrorKind::Invalid, "{err}");
            assert!(err.to_string().contains("is a symbolic link"), "{err}");
            assert!(!err.to_string().contains('\n'), "{err}");
        }
        assert_eq!(fs::read_dir(&elsewhere).unwrap().count(), 0);
        // The --checkpoint-dir itself may be a symlink (the user named it).
        let root3 = tmp.path().join("three");
        symlink(&elsewhere, &root3).unwrap();
        FileStore::open(&root3, "app", rw()).unwrap();
        assert!(elsewhere.join("checkpoints/app").is_dir());
    }

    #[cfg(unix)]
    #[test]
    fn directories_of_another_user_are_refused() {
        use std::os::unix::fs::MetadataExt;
        let tmp = tempfile::tempdir().unwrap();
        let s = FileStore::open(tmp.path(), "app", rw()).unwrap();
        let mine = fs::metadata(s.dir()).unwrap().uid();
        check_owner(&[s.dir()], mine).unwrap();
        let err = check_owner(&[s.dir()], mine + 1).unwrap_err();
        assert_eq!(err.kind, StoreErrorKind::Invalid);
        assert!(
            err.to_string()
                .contains(&format!("owned by user id {mine}, not by this user")),
            "{err}"
        );
        drop(s);
        // For real, where this process may give a directory away (root: CI).
        let d = tmp.path().join("checkpoints/app");
        if std::os::unix::fs::chown(&d, Some(65534), None).is_ok() {
            let err = FileStore::open(tmp.path(), "app", rw()).unwrap_err();
            assert!(err.to_string().contains("owned by user id 65534"), "{err}");
        } else {
            eprintln!("only the check itself was tested: chown needs root here");
        }
    }
}

//! Which state backend the process runs with: memory (the default) or disk, chosen at
//! run time before a pipeline is created or restored.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// Where running aggregates and keyed windows keep their state.
///
/// ```
/// use simplestream_runtime::spill::{self, StateBackend};
/// assert_eq!(spill::state_backend(), StateBackend::Memory);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum StateBackend {
    /// Every key in a hash map: the fastest; state must fit in memory.
    #[default]
    Memory,
    /// Hot keys in memory within a byte budget, the rest in an embedded store on disk.
    Disk(DiskConfig),
}

/// The disk backend's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskConfig {
    /// Working directory (a local cache: checkpoints stay the source of truth).
    pub dir: PathBuf,
    /// Memory budget in bytes for keyed state, in memory and the disk tier's filters.
    pub memory: usize,
}

static BACKEND: RwLock<Option<Arc<DiskConfig>>> = RwLock::new(None);

/// Sets the backend of keyed state created or restored from now on in this process.
/// For the disk backend the working directory is created and marked as ours; a directory
/// holding anything else is refused, and store files left by a crashed run are removed.
///
/// ```
/// use simplestream_runtime::spill::{self, DiskConfig, StateBackend};
/// let dir = tempfile::tempdir().unwrap();
/// let disk = DiskConfig { dir: dir.path().join("state"), memory: 64 << 20 };
/// spill::set_state_backend(StateBackend::Disk(disk.clone())).unwrap();
/// assert_eq!(spill::state_backend(), StateBackend::Disk(disk));
/// spill::set_state_backend(StateBackend::Memory).unwrap();
/// ```
pub fn set_state_backend(backend: StateBackend) -> Result<(), String> {
    let disk = match backend {
        StateBackend::Memory => None,
        StateBackend::Disk(c) => {
            if !cfg!(feature = "disk") {
                return Err("this build has no disk state backend (cargo feature `disk`)".into());
            }
            prepare_dir(&c.dir)?;
            Some(Arc::new(c))
        }
    };
    *BACKEND.write().unwrap_or_else(|e| e.into_inner()) = disk;
    Ok(())
}

/// The backend set by [`set_state_backend`].
pub fn state_backend() -> StateBackend {
    match disk_config() {
        Some(c) => StateBackend::Disk((*c).clone()),
        None => StateBackend::Memory,
    }
}

pub(crate) fn disk_config() -> Option<Arc<DiskConfig>> {
    if checking() {
        return None;
    }
    #[cfg(test)]
    if let Some(on_this_thread) = THREAD_BACKEND.with(|t| t.borrow().clone()) {
        return on_this_thread;
    }
    BACKEND.read().unwrap_or_else(|e| e.into_inner()).clone()
}

#[cfg(test)]
thread_local! {
    /// A unit test's backend, for states created on its thread only: the other tests of
    /// the process (windows everywhere) keep the memory backend meanwhile.
    static THREAD_BACKEND: std::cell::RefCell<Option<Option<Arc<DiskConfig>>>> =
        const { std::cell::RefCell::new(None) };
}

/// Sets the disk backend for states created on this thread (`None`: the process's
/// backend again).
#[cfg(all(test, feature = "disk"))]
pub(crate) fn set_thread_backend(disk: Option<DiskConfig>) -> Result<(), String> {
    if let Some(c) = &disk {
        prepare_dir(&c.dir)?;
    }
    THREAD_BACKEND.with(|t| *t.borrow_mut() = disk.map(|c| Some(Arc::new(c))));
    Ok(())
}

thread_local! {
    static CHECKING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f`, a check that a checkpoint decodes whose result is thrown away: spilling
/// states created meanwhile stay in memory, and whole ones decoded are checked entry by
/// entry but not kept (a second copy of a state larger than memory has nowhere to go).
pub(crate) fn only_checking<T>(f: impl FnOnce() -> T) -> T {
    let before = CHECKING.with(|c| c.replace(true));
    let out = f();
    CHECKING.with(|c| c.set(before));
    out
}

pub(crate) fn checking() -> bool {
    CHECKING.with(|c| c.get())
}

/// The file that marks a working directory as written by SimpleStream.
pub const MARKER: &str = ".simplestream-state";

/// Creates `dir` (or checks it is ours) and removes store files of processes that are gone.
fn prepare_dir(dir: &Path) -> Result<(), String> {
    let shown = dir.display();
    std::fs::create_dir_all(dir).map_err(|e| format!("creating --state-dir {shown}: {e}"))?;
    let marker = dir.join(MARKER);
    let entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| format!("reading --state-dir {shown}: {e}"))?
        .filter_map(|e| e.ok())
        .collect();
    if !marker.exists() {
        if !entries.is_empty() {
            return Err(format!(
                "--state-dir {shown} is not empty and was not made by simplestream (no {MARKER} in it): choose an empty or new directory"
            ));
        }
        std::fs::write(
            &marker,
            b"simplestream state working directory: a cache, safe to delete when no run uses it\n",
        )
        .map_err(|e| format!("writing {}: {e}", marker.display()))?;
    }
    for e in entries {
        let name = e.file_name();
        let Some(pid) = name.to_str().and_then(store_file_pid) else {
            continue;
        };
        if pid != std::process::id() && !process_alive(pid) {
            let _ = std::fs::remove_file(e.path());
        }
    }
    Ok(())
}

/// The name of a sorted run's file: `spill-<pid>-<n>-<run>.run`; tier `n`'s dirty marks
/// go beside it.
#[cfg(feature = "disk")]
pub(crate) fn run_file_name(n: u64, run: u64) -> String {
    format!("spill-{}-{n}-{run}.run", std::process::id())
}

/// The name of a tier's dirty-marks file: `spill-<pid>-<n>.marks`.
#[cfg(feature = "disk")]
pub(crate) fn marks_file_name(n: u64) -> String {
    format!("spill-{}-{n}.marks", std::process::id())
}

/// The name of a scratch file: `spill-<pid>-<n>.spool`.
pub(crate) fn scratch_file_name(n: u64) -> String {
    format!("spill-{}-{n}.spool", std::process::id())
}

/// The process id in the name of a file we write (`.redb` files are an older layout's).
fn store_file_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix("spill-")?;
    let rest = [".run", ".redb", ".marks", ".marks-new", ".spool"]
        .iter()
        .find_map(|s| rest.strip_suffix(s))?;
    let mut parts = rest.split('-');
    let pid = parts.next()?.parse().ok()?;
    let mut numbers = 0;
    for p in parts {
        p.parse::<u64>().ok()?;
        numbers += 1;
    }
    (1..=2).contains(&numbers).then_some(pid)
}

/// Whether process `pid` runs (Linux's /proc; elsewhere assume it does: files stay).
fn process_alive(pid: u32) -> bool {
    !Path::new("/proc/self").exists() || Path::new(&format!("/proc/{pid}")).exists()
}

/// Parses a byte size: `64MiB`, `512MB`, `1GiB`, `4096`.
///
/// ```
/// use simplestream_runtime::spill::parse_size;
/// assert_eq!(parse_size("64MiB"), Ok(64 << 20));
/// assert_eq!(parse_size("2k"), Ok(2000));
/// assert!(parse_size("lots").is_err());
/// ```
pub fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: usize = num
        .parse()
        .map_err(|_| format!("`{s}` is not a size (e.g. 64MiB, 1GiB, 500MB)"))?;
    let mul: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        u => {
            return Err(format!(
                "unknown size unit `{u}` in `{s}` (use B, KiB, MiB, GiB, KB, MB, GB)"
            ))
        }
    };
    n.checked_mul(mul)
        .ok_or_else(|| format!("`{s}` is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_with_foreign_files_is_refused_and_left_alone() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("notes.txt"), b"mine").unwrap();
        let e = prepare_dir(d.path()).unwrap_err();
        assert!(e.contains("not made by simplestream"), "{e}");
        assert_eq!(std::fs::read(d.path().join("notes.txt")).unwrap(), b"mine");
        assert!(!d.path().join(MARKER).exists());
    }

    #[test]
    #[cfg(feature = "disk")]
    fn store_files_of_dead_processes_are_removed_others_kept() {
        let d = tempfile::tempdir().unwrap();
        prepare_dir(d.path()).unwrap();
        // Pid 0 is never a process that left files; our own pid is alive.
        let dead = d.path().join("spill-0-1-4.run");
        let spool = d.path().join("spill-0-2.spool");
        let ours = d.path().join(run_file_name(7, 3));
        let other = d.path().join("spill-notes.redb");
        for f in [&dead, &spool, &ours, &other] {
            std::fs::write(f, b"x").unwrap();
        }
        prepare_dir(d.path()).unwrap();
        assert_eq!(dead.exists(), !Path::new("/proc/self").exists());
        assert_eq!(spool.exists(), dead.exists());
        assert!(ours.exists() && other.exists());
    }
}

//! The checkpoint coordinator: when to checkpoint, how, what `latest` says, what to keep,
//! and how to recover.
//!
//! A checkpoint follows the classic steps: the caller pauses between events and calls
//! [`Coordinator::checkpoint`], which serializes the state, decodes it once (a checkpoint
//! that would not restore is never stored), writes it through the store, and only after
//! that write is durable replaces the `latest` record; then older checkpoints beyond
//! `keep` are deleted, and the caller resumes.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::envelope::{self, CheckpointError, Codec, Header};
use crate::incremental::retention::Checked;
use crate::incremental::{self, Chain, ChainError, IncrementalConfig, Manifest, Piece};
pub use crate::names::{checkpoint_name, id_from_name};
use crate::names::{delta_name, manifest_name, parse_name, EntryKind};
use crate::pipeline::Pipeline;
use crate::store::{CheckpointStore, StoreError, StoredEntry};
use crate::upgrade::{RestoreOptions, StageAction};

pub(crate) mod savepoint;
mod streaming;

/// When and how to checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct CoordinatorConfig {
    /// Checkpoint after this many events (None: not by count).
    pub every_events: Option<u64>,
    /// Checkpoint after this much wall-clock time, ms (None: not by time).
    pub every_ms: Option<i64>,
    /// Codec of new checkpoints.
    pub codec: Codec,
    /// How many checkpoints to keep (at least 1).
    pub keep: usize,
}

impl Default for CoordinatorConfig {
    fn default() -> Self {
        CoordinatorConfig {
            every_events: Some(1000),
            every_ms: None,
            codec: Codec::Json,
            keep: 5,
        }
    }
}

/// The `latest` record: small JSON pointing at the newest complete checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatestMeta {
    /// Checkpoint id.
    pub checkpoint_id: u64,
    /// File (or key) name of the checkpoint.
    pub file: String,
    /// When it was taken, ms.
    pub timestamp: i64,
    /// Its codec.
    pub codec: Codec,
    /// Its size in bytes.
    pub size: u64,
    /// CRC-32 of the whole file, 8 hex digits.
    pub checksum: String,
    /// Source positions and sink lengths saved in it.
    pub positions: BTreeMap<String, u64>,
}

/// What a completed checkpoint was.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckpointInfo {
    /// Its id.
    pub id: u64,
    /// Its name in the store.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Codec.
    pub codec: Codec,
    /// Checkpoints deleted by retention.
    pub deleted: Vec<String>,
    /// Time spent storing it (checkpoint, `latest`, retention), ms (0 in the browser,
    /// which has no monotonic clock for Rust).
    pub store_ms: f64,
}

/// A pipeline restored from a checkpoint.
#[derive(Debug)]
pub struct Recovered<P> {
    /// The pipeline, with its state.
    pub pipeline: P,
    /// The checkpoint's header (id, time, positions).
    pub header: Header,
    /// The checkpoint's name in the store.
    pub name: String,
    /// Problems met on the way (bad `latest`, corrupt newer checkpoints skipped).
    pub warnings: Vec<String>,
    /// What the restore did with each stage (restored, started empty, dropped, ...).
    pub actions: Vec<StageAction>,
}

/// Why checkpointing or recovery failed.
#[derive(Debug)]
pub enum CoordinatorError {
    /// The store failed.
    Store(StoreError),
    /// State could not be encoded.
    Checkpoint(CheckpointError),
    /// A background upload is still in flight (see [`Coordinator::begin_upload`]).
    UploadInFlight {
        /// The id of the checkpoint being uploaded.
        id: u64,
    },
    /// The checkpoint was encoded but would not restore (it does not decode), so it was
    /// not stored and `latest` did not move.
    Unrestorable {
        /// The checkpoint's id.
        id: u64,
        /// Why it does not decode (names the stage and key).
        source: CheckpointError,
    },
    /// A savepoint could not be taken or restored (its name is taken, it is missing,
    /// it does not decode); nothing was written or loaded.
    Savepoint {
        /// The savepoint's name.
        name: String,
        /// What is wrong, in one line.
        problem: String,
    },
    /// Checkpoints exist but none can be restored; nothing was loaded.
    NoValidCheckpoint {
        /// Where.
        location: String,
        /// Each checkpoint and why it was refused.
        problems: Vec<String>,
    },
}

impl fmt::Display for CoordinatorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CoordinatorError::Store(e) => write!(f, "{e}"),
            CoordinatorError::Checkpoint(e) => write!(f, "{e}"),
            CoordinatorError::UploadInFlight { id } => {
                write!(f, "checkpoint #{id} is still being uploaded")
            }
            CoordinatorError::Unrestorable { id, source } => write!(
                f,
                "checkpoint #{id} was not stored because it would not restore ({source})"
            ),
            CoordinatorError::Savepoint { name, problem } => {
                write!(f, "savepoint `{name}`: {problem}")
            }
            CoordinatorError::NoValidCheckpoint { location, problems } => {
                write!(f, "no checkpoint in {location} can be restored:")?;
                for p in problems {
                    write!(f, "\n  - {p}")?;
                }
                write!(f, "\nnothing was loaded; fix or move the checkpoints, or start over with --from-scratch")
            }
        }
    }
}

impl std::error::Error for CoordinatorError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CoordinatorError::Store(e) => Some(e),
            CoordinatorError::Checkpoint(e) | CoordinatorError::Unrestorable { source: e, .. } => {
                Some(e)
            }
            _ => None,
        }
    }
}

/// Why one checkpoint could not be restored.
#[derive(Debug)]
pub enum LoadError {
    /// It could not be read from the store.
    Store(StoreError),
    /// The checkpoint itself is bad (truncated, corrupt, foreign, does not decode).
    Checkpoint(CheckpointError),
    /// The file verifies on its own, but the `latest` record's checksum for it differs:
    /// the record is wrong, not necessarily the file.
    RecordMismatch {
        /// CRC-32 of the file.
        actual: String,
        /// CRC-32 the `latest` record gives.
        recorded: String,
    },
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Store(e) => write!(f, "{e}"),
            LoadError::Checkpoint(e) => write!(f, "{e}"),
            LoadError::RecordMismatch { actual, recorded } => write!(
                f,
                "the latest record does not match the file: its crc32 is {actual}, but the latest record says {recorded}"
            ),
        }
    }
}

impl std::error::Error for LoadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LoadError::Store(e) => Some(e),
            LoadError::Checkpoint(e) => Some(e),
            LoadError::RecordMismatch { .. } => None,
        }
    }
}

impl From<StoreError> for CoordinatorError {
    fn from(e: StoreError) -> Self {
        CoordinatorError::Store(e)
    }
}
impl From<CheckpointError> for CoordinatorError {
    fn from(e: CheckpointError) -> Self {
        CoordinatorError::Checkpoint(e)
    }
}

/// One checkpoint as [`Coordinator::inspect`] sees it.
#[derive(Debug, Clone)]
pub struct Listed {
    /// Name in the store.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Header if it verifies, else why not.
    pub header: Result<Header, String>,
    /// Its codec, if recognized.
    pub codec: Option<Codec>,
    /// True if `latest` points at it.
    pub is_latest: bool,
    /// Whole checkpoint, delta or manifest (`None`: a name of another shape).
    pub kind: Option<EntryKind>,
}

/// A restored checkpoint: header, pipeline, the pieces read, what each stage did.
type Loaded<P> = (Header, P, Vec<Piece>, Vec<StageAction>);

/// Takes checkpoints of a pipeline into a store, and recovers from them.
///
/// ```
/// use simplestream_runtime::{Coordinator, CoordinatorConfig, MemoryStore};
/// let c = Coordinator::new(MemoryStore::new(), CoordinatorConfig { every_events: Some(2), ..Default::default() });
/// let mut c = c;
/// c.note_events(1);
/// assert!(!c.due(0));
/// c.note_events(1);
/// assert!(c.due(0));
/// ```
#[derive(Debug)]
pub struct Coordinator<S> {
    /// `None` while a background upload has it.
    store: Option<S>,
    config: CoordinatorConfig,
    next_id: u64,
    events_since: u64,
    last_at_ms: Option<i64>,
    upload: Option<Upload<S>>,
    /// Incremental checkpoints: how, and what the next one builds on.
    incremental: Option<IncrementalConfig>,
    chain: Option<Chain>,
    /// What a restore may drop.
    restore: RestoreOptions,
}

/// The one background upload in flight: the thread owns the store until it is done.
#[derive(Debug)]
struct Upload<S> {
    id: u64,
    chain: Option<Chain>,
    thread: std::thread::JoinHandle<(S, Result<CheckpointInfo, CoordinatorError>)>,
}

/// A checkpoint serialized during the pause, ready to be stored.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// Its id.
    pub id: u64,
    /// Its name in the store.
    pub name: String,
    /// The bytes, and where each stage lies in them.
    pub encoded: envelope::Encoded,
    /// The `latest` record that will point at it.
    pub meta: LatestMeta,
    /// Checks that the bytes restore, before anything is stored.
    pub self_check: fn(&[u8]) -> Result<(), CheckpointError>,
    /// Incremental checkpoints: the manifest's name and bytes (`encoded` is the delta).
    pub manifest: Option<(String, Vec<u8>)>,
    /// Incremental checkpoints: what the next one builds on once this one is stored.
    pub chain: Option<Chain>,
    /// Streamed during the pause into the store or into `spooled` (`encoded` is then
    /// empty): its size and CRC-32.
    pub streamed: Option<envelope::Streamed>,
    /// A delta in a scratch file, copied into the store with the rest of the checkpoint.
    pub spooled: Option<std::sync::Arc<streaming::Spooled>>,
}

impl Prepared {
    /// The checkpoint's (or delta's) size in bytes.
    pub fn size(&self) -> u64 {
        self.streamed
            .map_or(self.encoded.bytes.len() as u64, |s| s.size)
    }
}

/// Stores a prepared checkpoint: the checkpoint, then (only once that is durable) the
/// `latest` record, then retention. On error the previous checkpoint stays the latest.
fn store_prepared<S: CheckpointStore>(
    store: &mut S,
    p: &Prepared,
    keep: usize,
) -> Result<CheckpointInfo, CoordinatorError> {
    let started = crate::time::Stopwatch::start();
    // A streamed checkpoint was never whole in memory to decode first; one in the
    // store already needs no copy.
    if let Some(spool) = &p.spooled {
        spool.upload(store, &p.name)?;
    } else if p.streamed.is_none() {
        (p.self_check)(&p.encoded.bytes)
            .map_err(|source| CoordinatorError::Unrestorable { id: p.id, source })?;
        store.put_staged(&p.name, &p.encoded.bytes, &p.encoded.stages)?;
    }
    crate::checkpoint_failpoint("after-checkpoint-write");
    if let Some((name, bytes)) = &p.manifest {
        store.put(name, bytes)?;
        crate::checkpoint_failpoint("after-manifest-write");
    }
    let meta_bytes = serde_json::to_vec_pretty(&p.meta).map_err(|e| CheckpointError::Encode {
        detail: e.to_string(),
    })?;
    store.put_latest(&meta_bytes)?;
    crate::checkpoint_failpoint("after-latest-write");
    // Whole checkpoints: the bytes just checked or streamed, if the store gives them
    // back unchanged (read a chunk at a time where the store can).
    let checked = match (&p.manifest, p.streamed) {
        (Some(_), _) => None,
        (None, None) => Some(Checked {
            name: &p.meta.file,
            len: p.encoded.bytes.len(),
            crc: crc32fast::hash(&p.encoded.bytes),
        }),
        (None, Some(s)) => Some(Checked {
            name: &p.meta.file,
            len: s.size as usize,
            crc: s.crc32,
        }),
    };
    let deleted = apply_retention(store, &p.meta.file, keep, checked).unwrap_or_default();
    Ok(CheckpointInfo {
        id: p.id,
        name: p.meta.file.clone(),
        size: p.size(),
        codec: p.meta.codec,
        deleted,
        store_ms: started.elapsed_ms(),
    })
}

/// Deletes the oldest checkpoints beyond `keep`, and pieces of incremental checkpoints
/// that no kept checkpoint names (see [`incremental::retention`]). Never deletes `latest`
/// or anything newer, the newest checkpoint that verifies (if none of the kept ones does,
/// an older one that does stays too), or a file whose name this coordinator does not write.
fn apply_retention<S: CheckpointStore>(
    store: &mut S,
    latest: &str,
    keep: usize,
    checked: Option<Checked<'_>>,
) -> Result<Vec<String>, StoreError> {
    let mut step = || crate::checkpoint_failpoint("after-retention-delete");
    incremental::retention::apply(store, latest, keep, checked, &mut step)
}

/// Every checkpoint is decoded once before it is stored: a state whose serialized form
/// does not read back (a hand-written `Serialize` that disagrees with its `Deserialize`,
/// a value JSON cannot hold) would otherwise become `latest` and be found out only at
/// the restore. Background uploads run this off the pause.
///
/// A JSON checkpoint's stages are decoded without the envelope's checks (checksum,
/// header): this crate writes those from typed values, and a restore checks them; a
/// second full parse of the state only to skip it is what they would cost here.
fn self_check<P: Pipeline>(bytes: &[u8]) -> Result<(), CheckpointError> {
    crate::spill::only_checking(|| {
        if bytes.first() == Some(&b'{') {
            let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
            return P::decode_stages(Codec::Json, body, crate::Clock::default()).map(|_| ());
        }
        envelope::decode::<P>(bytes).map(|_| ())
    })
}
const BUSY: &str = "the store is in use by a background upload: call finish_upload first";

/// Whether deltas are written and restored. Not in WebAssembly (the playground keeps
/// whole snapshots in localStorage): the delta code of every stage then drops out of the
/// module, which browsers download.
const DELTAS: bool = !cfg!(target_arch = "wasm32");

/// The header and codec of one stored object, or why it does not verify: a manifest
/// verifies only if every piece it names does (its header is its newest piece's).
fn inspect_one<S: CheckpointStore + ?Sized>(
    store: &S,
    kind: Option<EntryKind>,
    bytes: &[u8],
) -> (Result<Header, String>, Option<Codec>) {
    let verified = match kind {
        Some(EntryKind::Manifest) => {
            return match incremental::chain::verify(store, bytes) {
                Ok((h, codec)) => (Ok(h), Some(codec)),
                Err(e) => (Err(e.to_string()), None),
            }
        }
        Some(EntryKind::Delta) => envelope::verify_delta(bytes),
        _ => envelope::verify(bytes),
    };
    match verified {
        Ok(v) => (Ok(v.header), Some(v.codec)),
        Err(err) => (Err(err.to_string()), None),
    }
}

/// Checks that a delta decodes and applies (as [`self_check`] does for a whole one).
fn self_check_delta<P: Pipeline>(bytes: &[u8]) -> Result<(), CheckpointError> {
    crate::spill::only_checking(|| envelope::apply_delta(bytes, &mut P::new()).map(|_| ()))
}

/// The checkpoints a restore can start from (whole ones and manifests), sorted by id
/// (then name): ids only grow, wall clocks may not.
fn by_id(entries: Vec<StoredEntry>) -> Vec<StoredEntry> {
    let id = |e: &StoredEntry| parse_name(&e.name).map(|(id, _)| id);
    let mut entries: Vec<StoredEntry> = entries
        .into_iter()
        .filter(|e| crate::names::restorable(&e.name))
        .collect();
    entries.sort_by(|a, b| (id(a), &a.name).cmp(&(id(b), &b.name)));
    entries
}

/// The largest id of any object this coordinator writes (whole, delta or manifest).
fn max_id(entries: &[StoredEntry]) -> u64 {
    entries
        .iter()
        .filter_map(|e| parse_name(&e.name).map(|(id, _)| id))
        .max()
        .unwrap_or(0)
}

impl<S: CheckpointStore> Coordinator<S> {
    /// A coordinator over `store`.
    pub fn new(store: S, config: CoordinatorConfig) -> Self {
        Coordinator {
            store: Some(store),
            config,
            next_id: 1,
            events_since: 0,
            last_at_ms: None,
            upload: None,
            incremental: None,
            chain: None,
            restore: RestoreOptions::default(),
        }
    }

    /// What [`recover`](Self::recover) may do with stages that do not match (see
    /// [`upgrade`](crate::upgrade)): by default it refuses to drop any state.
    ///
    /// ```
    /// use simplestream_runtime::{Coordinator, CoordinatorConfig, MemoryStore};
    /// use simplestream_runtime::upgrade::RestoreOptions;
    /// let mut c = Coordinator::new(MemoryStore::new(), CoordinatorConfig::default());
    /// c.set_restore_options(RestoreOptions { allow_dropped: vec!["per_hour".into()] });
    /// ```
    pub fn set_restore_options(&mut self, options: RestoreOptions) {
        self.restore = options;
    }

    /// Turns incremental checkpoints on (`Some`) or off. On, a checkpoint writes what
    /// changed since the previous one plus a manifest, and a whole one every so often
    /// (see [`IncrementalConfig`]); the first checkpoint, and the first after a restore
    /// of a pipeline this coordinator did not restore, is whole.
    ///
    /// ```
    /// use simplestream_runtime::{Coordinator, CoordinatorConfig, MemoryStore};
    /// use simplestream_runtime::incremental::IncrementalConfig;
    /// let mut c = Coordinator::new(MemoryStore::new(), CoordinatorConfig::default());
    /// c.set_incremental(Some(IncrementalConfig { max_deltas: 4, ..Default::default() }));
    /// assert_eq!(c.incremental().unwrap().max_deltas, 4);
    /// ```
    pub fn set_incremental(&mut self, config: Option<IncrementalConfig>) {
        if config.is_none() {
            self.chain = None;
        }
        self.incremental = config;
    }

    /// The incremental configuration, if incremental checkpoints are on. In WebAssembly
    /// builds every checkpoint is whole all the same, and manifests are not restored.
    pub fn incremental(&self) -> Option<&IncrementalConfig> {
        self.incremental.as_ref()
    }

    /// The store.
    ///
    /// # Panics
    /// While a background upload is in flight (it has the store): call
    /// [`finish_upload`](Self::finish_upload) first.
    pub fn store(&self) -> &S {
        self.store.as_ref().expect(BUSY)
    }

    /// The store, mutably (waits for a background upload in flight, dropping its outcome:
    /// call [`finish_upload`](Self::finish_upload) first to see it).
    pub fn store_mut(&mut self) -> &mut S {
        let _ = self.finish_upload();
        self.store.as_mut().expect(BUSY)
    }

    /// Consumes the coordinator, giving back its store (after any upload in flight).
    pub fn into_store(mut self) -> S {
        let _ = self.finish_upload();
        self.store.take().expect(BUSY)
    }

    /// True while a background upload is in flight or its outcome not yet collected.
    pub fn uploading(&self) -> bool {
        self.upload.is_some()
    }

    /// True while a background upload's thread is still storing the checkpoint.
    pub fn upload_in_flight(&self) -> bool {
        self.upload
            .as_ref()
            .is_some_and(|u| !u.thread.is_finished())
    }

    /// Waits for the background upload in flight, if any, and returns its outcome.
    pub fn finish_upload(&mut self) -> Option<Result<CheckpointInfo, CoordinatorError>> {
        let up = self.upload.take()?;
        match up.thread.join() {
            Ok((store, result)) => {
                self.store = Some(store);
                if result.is_ok() && self.incremental.is_some() {
                    self.chain = up.chain;
                }
                Some(result)
            }
            // The store went down with the thread: nothing more can be stored.
            Err(_) => panic!("the upload thread of checkpoint #{} panicked", up.id),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &CoordinatorConfig {
        &self.config
    }

    /// Changes the configuration (e.g. auto-checkpoints on or off).
    pub fn config_mut(&mut self) -> &mut CoordinatorConfig {
        &mut self.config
    }

    /// Id the next checkpoint will get.
    pub fn next_id(&self) -> u64 {
        self.next_id
    }

    /// Counts processed events toward the next trigger.
    #[inline]
    pub fn note_events(&mut self, n: u64) {
        self.events_since += n;
    }

    /// Events since the last checkpoint.
    pub fn events_since(&self) -> u64 {
        self.events_since
    }

    /// Starts the interval clock (call once when processing starts).
    pub fn start_clock(&mut self, now_ms: i64) {
        self.last_at_ms.get_or_insert(now_ms);
    }

    /// True when a trigger fired: enough events, or enough time.
    #[inline]
    pub fn due(&self, now_ms: i64) -> bool {
        self.due_with(|| now_ms)
    }

    /// [`due`](Self::due), reading the clock only if a time trigger is set (for per-event
    /// calls).
    #[inline]
    pub fn due_with(&self, now_ms: impl FnOnce() -> i64) -> bool {
        if self.events_since == 0 {
            return false;
        }
        if let Some(n) = self.config.every_events {
            if self.events_since >= n {
                return true;
            }
        }
        match (self.config.every_ms, self.last_at_ms) {
            (Some(every), Some(last)) => now_ms() - last >= every,
            _ => false,
        }
    }

    /// After a failed checkpoint: wait for the next trigger before retrying.
    pub fn postpone(&mut self, now_ms: i64) {
        self.reset_trigger(now_ms);
    }

    /// Starts counting toward the next trigger from now: call it when a pause ends, so
    /// that a checkpoint slower than the interval still leaves processing a whole
    /// interval before the next one.
    pub fn reset_trigger(&mut self, now_ms: i64) {
        self.events_since = 0;
        self.last_at_ms = Some(now_ms);
    }

    /// Moves `next_id` past every checkpoint in the store (for a fresh start that keeps
    /// old checkpoints: new ones then sort after them and `latest` moves on).
    pub fn skip_existing_ids(&mut self) {
        if let Ok(entries) = self.store_mut().list() {
            self.next_id = self.next_id.max(max_id(&entries).saturating_add(1));
        }
    }

    /// Numbers the next checkpoint 0 if none was taken yet and the store holds none of
    /// this coordinator's names: for a program's checkpoint of its start (nothing
    /// processed), so that #N is still its N-th checkpoint of progress.
    pub fn start_at_zero(&mut self) {
        let empty = self
            .store_mut()
            .list()
            .is_ok_and(|l| l.iter().all(|e| id_from_name(&e.name).is_none()));
        if empty && self.next_id == 1 {
            self.next_id = 0;
        }
    }

    /// Serializes a checkpoint of `pipeline` (the part that needs the pause) and gives it
    /// the next id.
    pub fn prepare<P: Pipeline>(
        &mut self,
        pipeline: &P,
        positions: BTreeMap<String, u64>,
        now_ms: i64,
    ) -> Result<Prepared, CoordinatorError> {
        self.prepare_for(pipeline, positions, now_ms, false)
    }

    /// [`prepare`](Self::prepare); `background`: the checkpoint is stored after the
    /// pause, so a delta is encoded in memory instead of streamed into the store.
    fn prepare_for<P: Pipeline>(
        &mut self,
        pipeline: &P,
        positions: BTreeMap<String, u64>,
        now_ms: i64,
        background: bool,
    ) -> Result<Prepared, CoordinatorError> {
        let id = self.next_id;
        let codec = self.config.codec;
        let versions = pipeline.stage_versions();
        let delta_on = match (&self.incremental, &self.chain, &versions) {
            (Some(config), Some(chain), Some(now)) if DELTAS => {
                Some(chain).filter(|c| !c.wants_base(config, now))
            }
            _ => None,
        };
        if let Some(chain) = delta_on {
            return self.prepare_delta(pipeline, chain.clone(), positions, now_ms, background);
        }
        let name = checkpoint_name(now_ms, id, codec);
        let (encoded, streamed) = match self.streaming_store() {
            Some(store) => {
                let at = positions.clone();
                let s = envelope::store_whole(store, &name, pipeline, codec, id, now_ms, at)
                    .map_err(streaming::failed)?;
                (streaming::nothing(), Some(s))
            }
            None => (
                envelope::encode_staged(pipeline, codec, id, now_ms, positions.clone())?,
                None,
            ),
        };
        let piece = streaming::piece(&name, id, &encoded, streamed);
        let meta = LatestMeta {
            checkpoint_id: id,
            file: name.clone(),
            timestamp: now_ms,
            codec,
            size: piece.size,
            checksum: piece.crc32.clone(),
            positions,
        };
        let chain = match (&self.incremental, versions) {
            (Some(_), Some(versions)) => Some(Chain {
                pieces: vec![piece],
                versions,
            }),
            _ => None,
        };
        Ok(Prepared {
            id,
            name,
            encoded,
            meta,
            self_check: self_check::<P>,
            manifest: None,
            chain,
            streamed,
            spooled: None,
        })
    }

    /// [`prepare`](Self::prepare) of a delta on `chain`, with its manifest.
    fn prepare_delta<P: Pipeline>(
        &mut self,
        pipeline: &P,
        mut chain: Chain,
        positions: BTreeMap<String, u64>,
        now_ms: i64,
        background: bool,
    ) -> Result<Prepared, CoordinatorError> {
        let id = self.next_id;
        let codec = self.config.codec;
        let versions = pipeline.stage_versions().unwrap_or_default();
        let name = delta_name(now_ms, id, codec);
        let since = &chain.versions;
        let at = positions.clone();
        // In the background the store write, fsyncs included, leaves the pause: the
        // delta is encoded into memory, or with the disk backend into a scratch file.
        let stream = self.streaming_store().filter(|_| !background);
        let spool = streaming::spool_dir().filter(|_| background);
        let (encoded, streamed, spooled) = match (stream, spool) {
            (Some(store), _) => {
                let s = envelope::store_delta(store, &name, pipeline, since, codec, id, now_ms, at)
                    .map_err(streaming::failed)?;
                (streaming::nothing(), Some(s), None)
            }
            (None, Some(dir)) => {
                let s = streaming::Spooled::delta(&dir, pipeline, since, codec, id, now_ms, at)?;
                (streaming::nothing(), Some(s.written()), Some(Arc::new(s)))
            }
            (None, None) => (
                envelope::encode_delta(pipeline, since, codec, id, now_ms, at)?,
                None,
                None,
            ),
        };
        chain
            .pieces
            .push(streaming::piece(&name, id, &encoded, streamed));
        chain.versions = versions;
        let fingerprint = crate::fingerprint::to_hex(P::fingerprint());
        let manifest = Manifest::new(P::name(), &fingerprint, id, now_ms, chain.pieces.clone());
        let manifest_bytes = manifest.encode()?;
        let meta = LatestMeta {
            checkpoint_id: id,
            file: manifest_name(now_ms, id),
            timestamp: now_ms,
            codec,
            size: manifest_bytes.len() as u64,
            checksum: format!("{:08x}", crc32fast::hash(&manifest_bytes)),
            positions,
        };
        Ok(Prepared {
            id,
            name,
            encoded,
            manifest: Some((meta.file.clone(), manifest_bytes)),
            meta,
            self_check: self_check_delta::<P>,
            chain: Some(chain),
            streamed,
            spooled,
        })
    }

    /// Takes a checkpoint now: serialize, write, update `latest`, apply retention.
    ///
    /// On error nothing changed: the previous checkpoint and `latest` stay valid, and the
    /// trigger stays due so the next call retries. A background upload still in flight
    /// is waited for first; if it failed, that is the error returned.
    pub fn checkpoint<P: Pipeline>(
        &mut self,
        pipeline: &P,
        positions: BTreeMap<String, u64>,
        now_ms: i64,
    ) -> Result<CheckpointInfo, CoordinatorError> {
        if let Some(Err(e)) = self.finish_upload() {
            return Err(e);
        }
        let prepared = self.prepare(pipeline, positions, now_ms)?;
        let keep = self.config.keep;
        let store = self.store.as_mut().expect(BUSY);
        match store_prepared(store, &prepared, keep) {
            Ok(info) => {
                self.next_id = prepared.id.saturating_add(1);
                self.events_since = 0;
                self.last_at_ms = Some(now_ms);
                if self.incremental.is_some() {
                    self.chain = prepared.chain;
                }
                Ok(info)
            }
            Err(e) => {
                // Once the checkpoint itself was written its id is never reused, even if
                // `latest` failed; a store that says the write failed may still have made
                // it visible (a timeout), so skip the id whenever the name now exists.
                if store
                    .list()
                    .map(|l| l.iter().any(|x| x.name == prepared.name))
                    .unwrap_or(true)
                {
                    self.next_id = prepared.id.saturating_add(1);
                }
                Err(e)
            }
        }
    }

    /// Takes a checkpoint with the upload off the hot path: serializes now (the pause),
    /// then stores it on a background thread while processing goes on. `latest` moves
    /// only once the checkpoint is durable, and at most one upload is in flight: call
    /// [`finish_upload`](Self::finish_upload) first (this returns
    /// [`CoordinatorError::UploadInFlight`] otherwise). Returns the new checkpoint's id.
    ///
    /// ```
    /// use simplestream_runtime::{Coordinator, CoordinatorConfig, MemoryStore};
    /// let mut c = Coordinator::new(MemoryStore::new(), CoordinatorConfig::default());
    /// // In the run loop, at a trigger: collect the previous upload, then start the next.
    /// assert!(c.finish_upload().is_none(), "nothing in flight yet");
    /// // c.begin_upload(&pipeline, positions, now_ms)?;  ... events go on ...
    /// // match c.finish_upload() { Some(Ok(info)) => .., Some(Err(e)) => .., None => .. }
    /// assert!(!c.uploading());
    /// ```
    pub fn begin_upload<P: Pipeline>(
        &mut self,
        pipeline: &P,
        positions: BTreeMap<String, u64>,
        now_ms: i64,
    ) -> Result<u64, CoordinatorError>
    where
        S: Send + 'static,
    {
        if let Some(up) = &self.upload {
            return Err(CoordinatorError::UploadInFlight { id: up.id });
        }
        let prepared = self.prepare_for(pipeline, positions, now_ms, true)?;
        let id = prepared.id;
        // Ids are never reused: a failed upload's id is skipped.
        self.next_id = id.saturating_add(1);
        self.events_since = 0;
        self.last_at_ms = Some(now_ms);
        let mut store = self.store.take().expect(BUSY);
        let keep = self.config.keep;
        let chain = prepared.chain.clone();
        let thread = std::thread::Builder::new()
            .name(format!("checkpoint-upload-{id}"))
            .spawn(move || {
                let r = store_prepared(&mut store, &prepared, keep);
                (store, r)
            })
            .map_err(|e| {
                CoordinatorError::Store(StoreError::new(
                    crate::store::StoreErrorKind::Other,
                    "starting the upload thread",
                    "",
                    e.to_string(),
                ))
            })?;
        self.upload = Some(Upload { id, chain, thread });
        Ok(id)
    }

    /// The `latest` record, or why it cannot be used.
    pub fn latest(&self) -> Result<Option<LatestMeta>, String> {
        match self.store().get_latest() {
            Ok(None) => Ok(None),
            Ok(Some(b)) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| format!("latest record is corrupt ({e})")),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Every checkpoint in the store, verified (checksum, version), newest last.
    pub fn inspect(&self) -> Result<Vec<Listed>, StoreError> {
        let latest = self.latest().ok().flatten().map(|m| m.file);
        let mut out = Vec::new();
        for e in self.store().list()? {
            let kind = parse_name(&e.name).map(|(_, k)| k);
            let (header, codec) = match self.store().get(&e.name) {
                Ok(bytes) => inspect_one(self.store(), kind, &bytes),
                Err(err) => (Err(err.to_string()), None),
            };
            out.push(Listed {
                is_latest: latest.as_deref() == Some(&e.name),
                name: e.name,
                size: e.size,
                header,
                codec,
                kind,
            });
        }
        Ok(out)
    }

    /// Restores the newest valid checkpoint of pipeline `P`.
    ///
    /// Uses `latest` when it is sound; otherwise says why and falls back to the newest
    /// checkpoint that verifies. `Ok(None)`: there are no checkpoints at all.
    /// `Err(NoValidCheckpoint)`: there are some, but none can be restored (nothing loaded).
    pub fn recover<P: Pipeline>(&mut self) -> Result<Option<Recovered<P>>, CoordinatorError> {
        let listed = self.store_mut().list()?;
        // Never reuse an id whose file exists, even if `latest` never pointed at it.
        self.next_id = self.next_id.max(max_id(&listed).saturating_add(1));
        let entries = by_id(listed);
        let mut warnings = Vec::new();
        let mut problems = Vec::new();
        let mut tried = None;
        match self.latest() {
            Ok(Some(meta)) => {
                tried = Some(meta.file.clone());
                match self.load_pieces::<P>(&meta.file, Some(&meta.checksum)) {
                    Ok(loaded) => return Ok(Some(self.restored(loaded, meta.file, warnings))),
                    // A sound checkpoint this version refuses to take: an older one would
                    // be refused alike, or silently roll the pipeline back.
                    Err(LoadError::Checkpoint(e @ CheckpointError::Incompatible { .. })) => {
                        return Err(CoordinatorError::Checkpoint(e))
                    }
                    Err(e) => {
                        warnings.push(format!(
                            "latest points to {}, which cannot be restored: {e}",
                            meta.file
                        ));
                        if matches!(e, LoadError::RecordMismatch { .. }) {
                            // The record is wrong, not necessarily the file: let the
                            // fallback verify the file on its own.
                            tried = None;
                        } else {
                            problems.push(format!("{}: {e}", meta.file));
                        }
                    }
                }
            }
            Ok(None) if !entries.is_empty() => {
                warnings.push("the latest record is missing".to_string())
            }
            Ok(None) => return Ok(None),
            Err(e) => warnings.push(e),
        }
        for e in entries.iter().rev() {
            if tried.as_deref() == Some(e.name.as_str()) {
                continue;
            }
            match self.load_pieces::<P>(&e.name, None) {
                Ok(loaded) => {
                    warnings.push(format!(
                        "fell back to {}, the newest checkpoint that verifies",
                        e.name
                    ));
                    return Ok(Some(self.restored(loaded, e.name.clone(), warnings)));
                }
                Err(err) => {
                    warnings.push(format!("skipped {}: {err}", e.name));
                    problems.push(format!("{}: {err}", e.name));
                }
            }
        }
        if entries.is_empty() && problems.is_empty() {
            return Ok(None);
        }
        Err(CoordinatorError::NoValidCheckpoint {
            location: self.store().location(),
            problems,
        })
    }

    /// The outcome of a restore; the next incremental checkpoint builds on its pieces.
    fn restored<P: Pipeline>(
        &mut self,
        (header, pipeline, pieces, actions): Loaded<P>,
        name: String,
        warnings: Vec<String>,
    ) -> Recovered<P> {
        self.next_id = self.next_id.max(header.checkpoint_id.saturating_add(1));
        // After a change of the pipeline the next checkpoint is whole: no chain mixes them.
        let unchanged = actions
            .iter()
            .all(|a| matches!(a, StageAction::Restore { .. }));
        self.chain = match (&self.incremental, pipeline.stage_versions()) {
            (Some(_), Some(versions)) if unchanged => Some(Chain { pieces, versions }),
            _ => None,
        };
        Recovered {
            pipeline,
            header,
            name,
            warnings,
            actions,
        }
    }

    #[cfg(test)]
    fn load<P: Pipeline>(
        &self,
        name: &str,
        checksum: Option<&str>,
    ) -> Result<(Header, P), LoadError> {
        self.load_pieces(name, checksum).map(|(h, p, _, _)| (h, p))
    }

    /// Restores checkpoint `name` (a whole checkpoint or a manifest), checked against
    /// the `latest` record's `checksum` if given; also returns the pieces it was read from.
    fn load_pieces<P: Pipeline>(
        &self,
        name: &str,
        checksum: Option<&str>,
    ) -> Result<Loaded<P>, LoadError> {
        let bytes = self.store().get(name).map_err(LoadError::Store)?;
        let manifest = matches!(parse_name(name), Some((_, EntryKind::Manifest)));
        if let Some(sum) = checksum {
            let actual = format!("{:08x}", crc32fast::hash(&bytes));
            if actual != sum {
                // The file's own checksum tells whether the file or the record is wrong.
                if manifest {
                    Manifest::decode(&bytes).map_err(LoadError::Checkpoint)?;
                } else {
                    envelope::verify(&bytes).map_err(LoadError::Checkpoint)?;
                }
                return Err(LoadError::RecordMismatch {
                    actual,
                    recorded: sum.to_string(),
                });
            }
        }
        if manifest && !DELTAS {
            return Err(LoadError::Checkpoint(CheckpointError::Decode {
                detail: "incremental checkpoints are not restored in WebAssembly builds".into(),
            }));
        }
        if manifest {
            return incremental::chain::restore::<P, S>(self.store(), &bytes, &self.restore)
                .map_err(|e| match e {
                    ChainError::Store(e) => LoadError::Store(e),
                    ChainError::Checkpoint(e) => LoadError::Checkpoint(e),
                });
        }
        let r = envelope::decode_with::<P>(&bytes, &self.restore).map_err(LoadError::Checkpoint)?;
        let piece = Piece::of(name, r.header.checkpoint_id, &bytes);
        Ok((r.header, r.pipeline, vec![piece], r.actions))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::StageWriter;
    use crate::pipeline::{Clock, Collector, OutputRecord};
    use crate::store::MemoryStore;

    /// The smallest pipeline: counts events.
    struct Counter(u64);

    #[derive(serde::Serialize)]
    struct NoOutput;
    impl OutputRecord for NoOutput {
        fn sink(&self) -> &'static str {
            "none"
        }
        fn is_late(&self) -> bool {
            false
        }
    }

    impl Pipeline for Counter {
        type Event = ();
        type Output = NoOutput;
        const NAME: &'static str = "Counter";
        const FINGERPRINT: u64 = 7;
        const STAGES: &'static [&'static str] = &["n"];
        const SINKS: &'static [&'static str] = &[];
        const PLAN: &'static crate::plan::Plan = &crate::plan::Plan {
            name: "Counter",
            sources: &[],
            stages: &[],
        };
        const SOURCE_TEXT: &'static str = "";
        fn new() -> Self {
            Counter(0)
        }
        fn process<C: Collector<NoOutput>>(&mut self, _: (), _: &mut C) {
            self.0 += 1;
        }
        fn advance_watermark<C: Collector<NoOutput>>(&mut self, _: i64, _: &mut C) {}
        fn finish<C: Collector<NoOutput>>(&mut self, _: &mut C) {}
        fn clock(&self) -> Clock {
            Clock::default()
        }
        fn write_stages(&self, w: &mut StageWriter<'_>) -> Result<(), CheckpointError> {
            w.field("n", &self.0)
        }
        fn decode_stages(codec: Codec, bytes: &[u8], _: Clock) -> Result<Self, CheckpointError> {
            #[derive(serde::Deserialize)]
            struct Stages {
                n: u64,
            }
            let s: Stages = crate::codec::read(codec, bytes)?;
            Ok(Counter(s.n))
        }
        fn stage_json(&self, _: &str) -> Option<serde_json::Value> {
            Some(self.0.into())
        }
    }

    fn taken(n: u64) -> (Coordinator<MemoryStore>, Vec<String>) {
        let mut c = Coordinator::new(MemoryStore::new(), CoordinatorConfig::default());
        let names = (1..=n)
            .map(|i| {
                c.checkpoint(&Counter(i), BTreeMap::new(), i as i64)
                    .unwrap()
                    .name
            })
            .collect();
        (c, names)
    }

    #[test]
    fn load_tells_a_wrong_record_from_a_bad_file() {
        let (mut c, names) = taken(1);
        let good = format!(
            "{:08x}",
            crc32fast::hash(&c.store().get(&names[0]).unwrap())
        );
        match c.load::<Counter>(&names[0], Some("00000000")) {
            Err(LoadError::RecordMismatch { actual, recorded }) => {
                assert_eq!((actual, recorded.as_str()), (good.clone(), "00000000"))
            }
            other => panic!("{:?}", other.map(|(h, _)| h)),
        }
        let bytes = c.store_mut().bytes_mut(&names[0]).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 1;
        match c.load::<Counter>(&names[0], Some(&good)) {
            Err(e @ LoadError::Checkpoint(CheckpointError::ChecksumMismatch { .. })) => {
                assert!(std::error::Error::source(&e).is_some())
            }
            other => panic!("{:?}", other.map(|(h, _)| h)),
        }
        match c.load::<Counter>("checkpoint_missing", None) {
            Err(LoadError::Store(e)) => assert_eq!(e.kind, crate::store::StoreErrorKind::NotFound),
            other => panic!("{:?}", other.map(|(h, _)| h)),
        }
    }

    #[test]
    fn a_wrong_record_falls_back_to_the_file_it_names() {
        let (mut c, names) = taken(2);
        let mut meta = c.latest().unwrap().unwrap();
        meta.checksum = "00000000".into();
        *c.store_mut().latest_mut() = Some(serde_json::to_vec(&meta).unwrap());
        let r = c.recover::<Counter>().unwrap().unwrap();
        assert_eq!((r.name.as_str(), r.pipeline.0), (names[1].as_str(), 2));
        assert!(r.warnings[0].contains("the latest record does not match the file"));
    }

    #[test]
    fn retention_trusts_a_checked_checkpoint_only_if_it_reads_back_unchanged() {
        let (mut c, names) = taken(2);
        let bytes = c.store().get(&names[1]).unwrap();
        let checked = |b: &[u8]| {
            Some(Checked {
                name: &names[1],
                len: b.len(),
                crc: crc32fast::hash(b),
            })
        };
        // The store gives back other bytes than were checked: the older one stays.
        let mut other = bytes.clone();
        other[bytes.len() / 2] ^= 1;
        let deleted = apply_retention(c.store_mut(), &names[1], 1, checked(&other)).unwrap();
        assert!(deleted.is_empty(), "{deleted:?}");
        let deleted = apply_retention(c.store_mut(), &names[1], 1, checked(&bytes)).unwrap();
        assert_eq!(deleted, vec![names[0].clone()]);
    }

    #[test]
    fn retention_never_deletes_latest_beside_a_file_with_the_same_id() {
        let (mut c, names) = taken(2);
        // A file with latest's id that sorts after it by name.
        let twin = checkpoint_name(9_999_999, 2, Codec::Json);
        let bytes = c.store().get(&names[1]).unwrap();
        c.store_mut().put(&twin, &bytes).unwrap();
        let deleted = apply_retention(c.store_mut(), &names[1], 1, None).unwrap();
        assert_eq!(deleted, vec![names[0].clone()]);
        let left: Vec<String> = c
            .store()
            .list()
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert!(left.contains(&names[1]), "{left:?}");
    }

    #[test]
    fn retention_keeps_a_savepoint_and_it_restores_by_name() {
        let mut c = Coordinator::new(
            MemoryStore::new(),
            CoordinatorConfig {
                keep: 1,
                ..Default::default()
            },
        );
        c.set_incremental(Some(IncrementalConfig::default()));
        c.checkpoint(&Counter(1), BTreeMap::new(), 1).unwrap();
        let sp = c.savepoint(&Counter(2), "v1", BTreeMap::new(), 2).unwrap();
        for i in 3..20 {
            c.checkpoint(&Counter(i), BTreeMap::new(), i as i64)
                .unwrap();
        }
        let names: Vec<String> = c
            .store()
            .list()
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert!(names.contains(&sp.name), "{names:?}");
        let again = c
            .savepoint(&Counter(9), "v1", BTreeMap::new(), 30)
            .unwrap_err();
        assert!(again.to_string().contains("never overwritten"), "{again}");
        let r = c.recover_savepoint::<Counter>("v1").unwrap();
        assert_eq!((r.pipeline.0, r.header.checkpoint_id), (2, sp.id));
        assert!(c.next_id() > 19, "numbered after every stored checkpoint");
        let next = c.checkpoint(&Counter(3), BTreeMap::new(), 40).unwrap();
        assert!(
            parse_name(&next.name) == Some((next.id, EntryKind::Whole)),
            "{}",
            next.name
        );
        let Err(missing) = c.recover_savepoint::<Counter>("v2") else {
            panic!("a missing savepoint restored")
        };
        let missing = missing.to_string();
        assert!(missing.contains("savepoint `v2`: there is no savepoint of that name in memory (the savepoints there: v1)"), "{missing}");
        assert!(c
            .savepoint(&Counter(1), "../x", BTreeMap::new(), 50)
            .is_err());
    }
}

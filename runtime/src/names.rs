//! Names of the three kinds of stored objects: whole checkpoints, deltas and manifests.
//! Only names of these shapes are ever deleted.

use crate::codec::Codec;
use crate::time::compact_utc;

/// The name of checkpoint `id` taken at `ts_ms`: sorts by time, never collides.
///
/// ```
/// use simplestream_runtime::{coordinator::checkpoint_name, Codec};
/// assert_eq!(checkpoint_name(1_733_061_600_123, 42, Codec::Json), "checkpoint_20241201_140000_123-000042.json");
/// ```
pub fn checkpoint_name(ts_ms: i64, id: u64, codec: Codec) -> String {
    format!(
        "checkpoint_{}-{id:06}.{}",
        compact_utc(ts_ms),
        codec.extension()
    )
}

/// The id in a checkpoint name, if it is one this coordinator writes (exactly the shape
/// of [`checkpoint_name`]): other files, even `checkpoint_*.json`, are never touched.
///
/// ```
/// use simplestream_runtime::coordinator::id_from_name;
/// assert_eq!(id_from_name("checkpoint_20241201_140000_123-000042.json"), Some(42));
/// assert_eq!(id_from_name("checkpoint_20241201_140000_123-1234567.bin"), Some(1_234_567));
/// for foreign in ["checkpoint_backup.json", "checkpoint_x-000001.json", "checkpoint_20241201_140000_123-42.json",
///                 "checkpoint_20241201_140000_123-000042.json.bak", "checkpoint_20241201_140000_123-00004x.json"] {
///     assert_eq!(id_from_name(foreign), None, "{foreign}");
/// }
/// ```
pub fn id_from_name(name: &str) -> Option<u64> {
    let stem = name.strip_prefix("checkpoint_")?;
    let stem = stem
        .strip_suffix(".json")
        .or_else(|| stem.strip_suffix(".bin"))?;
    let (stamp, id) = stem.rsplit_once('-')?;
    let digits = |s: &str, min: usize| s.len() >= min && s.bytes().all(|b| b.is_ascii_digit());
    let mut parts = stamp.split('_');
    let date = parts.next()?;
    let shaped = digits(date.strip_prefix('-').unwrap_or(date), 8)
        && parts.next().is_some_and(|t| t.len() == 6 && digits(t, 6))
        && parts
            .next()
            .is_some_and(|ms| ms.len() == 3 && digits(ms, 3))
        && parts.next().is_none();
    if !shaped || !digits(id, 6) {
        return None;
    }
    id.parse().ok()
}

/// What a stored object is, by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A whole checkpoint, `checkpoint_<time>-<id>.json|bin`: restorable on its own, and
    /// the base of the incremental checkpoints after it.
    Whole,
    /// The changes of one incremental checkpoint, `checkpoint_<time>-<id>.delta.json|bin`.
    Delta,
    /// An incremental checkpoint: the pieces to restore it,
    /// `checkpoint_<time>-<id>.manifest.json`.
    Manifest,
}

const DELTA_JSON: &str = ".delta.json";
const DELTA_BIN: &str = ".delta.bin";
const MANIFEST: &str = ".manifest.json";

/// The name of the delta of checkpoint `id`.
///
/// ```
/// use simplestream_runtime::{names::{delta_name, parse_name, EntryKind}, Codec};
/// let n = delta_name(1_733_061_600_123, 42, Codec::Binary);
/// assert_eq!(n, "checkpoint_20241201_140000_123-000042.delta.bin");
/// assert_eq!(parse_name(&n), Some((42, EntryKind::Delta)));
/// ```
pub fn delta_name(ts_ms: i64, id: u64, codec: Codec) -> String {
    let whole = checkpoint_name(ts_ms, id, codec);
    let stem = whole.rsplit_once('.').map_or(whole.as_str(), |(s, _)| s);
    format!("{stem}.delta.{}", codec.extension())
}

/// The name of the manifest of checkpoint `id`.
pub fn manifest_name(ts_ms: i64, id: u64) -> String {
    let whole = checkpoint_name(ts_ms, id, Codec::Json);
    let stem = whole.strip_suffix(".json").unwrap_or(&whole);
    format!("{stem}{MANIFEST}")
}

/// The id and kind of a name this coordinator writes; `None` for any other name (which
/// is never touched).
///
/// ```
/// use simplestream_runtime::names::{parse_name, EntryKind};
/// assert_eq!(parse_name("checkpoint_20241201_140000_123-000042.bin"), Some((42, EntryKind::Whole)));
/// assert_eq!(parse_name("checkpoint_20241201_140000_123-000042.manifest.json"), Some((42, EntryKind::Manifest)));
/// assert_eq!(parse_name("checkpoint_20241201_140000_123-000042.manifest.bin"), None);
/// assert_eq!(parse_name("checkpoint_x-000042.delta.json"), None);
/// ```
pub fn parse_name(name: &str) -> Option<(u64, EntryKind)> {
    let as_whole = |stem: &str, ext: &str| id_from_name(&format!("{stem}.{ext}"));
    if let Some(stem) = name.strip_suffix(MANIFEST) {
        return as_whole(stem, "json").map(|id| (id, EntryKind::Manifest));
    }
    if let Some(stem) = name.strip_suffix(DELTA_JSON) {
        return as_whole(stem, "json").map(|id| (id, EntryKind::Delta));
    }
    if let Some(stem) = name.strip_suffix(DELTA_BIN) {
        return as_whole(stem, "bin").map(|id| (id, EntryKind::Delta));
    }
    id_from_name(name).map(|id| (id, EntryKind::Whole))
}

/// True for the names a restore can start from (whole checkpoints and manifests).
pub fn restorable(name: &str) -> bool {
    matches!(
        parse_name(name),
        Some((_, EntryKind::Whole | EntryKind::Manifest))
    )
}

/// Where a savepoint's name starts in its stored name. The `checkpoint_` prefix keeps it
/// in every store's listing; no name of this shape parses as a checkpoint, so retention
/// never deletes one.
const SAVEPOINT: &str = "checkpoint_savepoint-";

/// The stored name of savepoint `name` (a whole checkpoint the user named).
///
/// ```
/// use simplestream_runtime::{names::{parse_name, savepoint_name, savepoint_of}, Codec};
/// let n = savepoint_name("before-v2", Codec::Json);
/// assert_eq!(n, "checkpoint_savepoint-before-v2.json");
/// assert_eq!(savepoint_of(&n), Some("before-v2"));
/// assert_eq!(parse_name(&n), None, "retention never touches it");
/// ```
pub fn savepoint_name(name: &str, codec: Codec) -> String {
    format!("{SAVEPOINT}{name}.{}", codec.extension())
}

/// The savepoint name in a stored name, if it is a savepoint's.
///
/// ```
/// use simplestream_runtime::names::savepoint_of;
/// assert_eq!(savepoint_of("checkpoint_savepoint-v1.bin"), Some("v1"));
/// assert_eq!(savepoint_of("checkpoint_20241201_140000_123-000042.json"), None);
/// assert_eq!(savepoint_of("checkpoint_savepoint-a b.json"), None);
/// ```
pub fn savepoint_of(stored: &str) -> Option<&str> {
    let stem = stored.strip_prefix(SAVEPOINT)?;
    let name = stem
        .strip_suffix(".json")
        .or_else(|| stem.strip_suffix(".bin"))?;
    validate_savepoint(name).ok().map(|()| name)
}

/// Checks a savepoint name: 1 to 64 ASCII letters, digits, `_` and `-`, so that it is a
/// file name and a key everywhere.
///
/// ```
/// use simplestream_runtime::names::validate_savepoint;
/// assert!(validate_savepoint("before-v2_1").is_ok());
/// assert!(validate_savepoint("../x").is_err());
/// assert!(validate_savepoint("").is_err());
/// ```
pub fn validate_savepoint(name: &str) -> Result<(), String> {
    let ok = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    if name.is_empty() || name.len() > 64 || !name.chars().all(ok) {
        return Err(format!(
            "{name:?} is not a savepoint name: use 1 to 64 letters, digits, `_` and `-`"
        ));
    }
    Ok(())
}

//! Retention with shared pieces: keep the newest checkpoints and every piece they name.
//!
//! A delta or base is deleted only once no retained checkpoint's manifest names it.
//! Manifests that are no longer retained go first, then whole checkpoints (one may be
//! the base of a manifest just deleted), then the deltas nobody names: a crash at any
//! step leaves only unnamed pieces, which the next retention removes, never a checkpoint
//! without its pieces.

use std::collections::BTreeSet;

use crate::envelope;
use crate::incremental::manifest::Manifest;
use crate::names::{parse_name, EntryKind};
use crate::store::{CheckpointStore, StoreError, StoredEntry};

/// Deletes what the newest `keep` checkpoints up to `latest` do not need. Never deletes
/// `latest` or anything newer, a piece a retained checkpoint names, the newest
/// checkpoint that restores (if none of the kept ones does, an older one that does
/// stays too, with its pieces), or a name of a shape this crate does not write.
///
/// `checked`: a whole checkpoint whose bytes were decoded before they were stored, or
/// encoded straight into the store (its header's checksum taken over the same bytes);
/// read back with the same length and CRC-32 it restores, without being parsed again.
pub fn apply<S: CheckpointStore + ?Sized>(
    store: &mut S,
    latest: &str,
    keep: usize,
    checked: Option<Checked<'_>>,
    on_step: &mut dyn FnMut(),
) -> Result<Vec<String>, StoreError> {
    let Some((latest_id, _)) = parse_name(latest) else {
        return Ok(Vec::new());
    };
    let listed = store.list()?;
    let mut owned: Vec<(u64, EntryKind, String)> = listed
        .iter()
        .filter_map(|e| parse_name(&e.name).map(|(id, kind)| (id, kind, e.name.clone())))
        .filter(|(id, _, _)| *id <= latest_id)
        .collect();
    owned.sort_by(|a, b| (a.0, &a.2).cmp(&(b.0, &b.2)));
    let checkpoints: Vec<&str> = owned
        .iter()
        .filter(|(_, k, _)| *k != EntryKind::Delta)
        .map(|(_, _, n)| n.as_str())
        .collect();
    let split = checkpoints.len().saturating_sub(keep.max(1));
    let (old, kept) = checkpoints.split_at(split);
    let mut retained: Vec<&str> = kept.to_vec();
    if !retained.contains(&latest) && checkpoints.contains(&latest) {
        retained.push(latest);
    }
    // Normally this reads one small manifest or one checkpoint: the newest.
    if !kept
        .iter()
        .rev()
        .any(|n| restorable(store, n, &listed, checked))
    {
        if let Some(spare) = old
            .iter()
            .rev()
            .find(|n| restorable(store, n, &listed, checked))
        {
            retained.push(spare);
        }
    }
    let Some(needed) = needed(store, &retained) else {
        // A retained manifest does not read: what it names is unknown, so nothing goes.
        return Ok(Vec::new());
    };
    let mut deleted = Vec::new();
    // Manifests first: a whole checkpoint may be the base a manifest names.
    let of = |kind: fn(&EntryKind) -> bool| owned.iter().filter(move |(_, k, _)| kind(k));
    let doomed = of(|k| *k == EntryKind::Manifest)
        .chain(of(|k| *k == EntryKind::Whole))
        .chain(of(|k| *k == EntryKind::Delta));
    for (_, _, name) in doomed {
        if needed.contains(name.as_str()) {
            continue;
        }
        store.delete(name)?;
        deleted.push(name.clone());
        on_step();
    }
    Ok(deleted)
}

/// A whole checkpoint whose bytes were checked to restore before they were stored, or
/// streamed into the store by the encoder.
#[derive(Debug, Clone, Copy)]
pub struct Checked<'a> {
    /// Its name in the store.
    pub name: &'a str,
    /// Its length in bytes.
    pub len: usize,
    /// The CRC-32 of its bytes.
    pub crc: u32,
}

/// Every name the retained checkpoints need; `None` if a retained manifest is unreadable.
fn needed<S: CheckpointStore + ?Sized>(store: &S, retained: &[&str]) -> Option<BTreeSet<String>> {
    let mut needed = BTreeSet::new();
    for name in retained {
        needed.insert(name.to_string());
        if let Some((_, EntryKind::Manifest)) = parse_name(name) {
            let m = store
                .get(name)
                .ok()
                .and_then(|b| Manifest::decode(&b).ok())?;
            needed.extend(m.pieces.into_iter().map(|p| p.name));
        }
    }
    Some(needed)
}

/// True if checkpoint `name` verifies: a whole checkpoint's checksum and format, or a
/// manifest's, with every piece it names present at the size it names.
fn restorable<S: CheckpointStore + ?Sized>(
    store: &S,
    name: &str,
    listed: &[StoredEntry],
    checked: Option<Checked<'_>>,
) -> bool {
    if let Some(c) = checked.filter(|c| c.name == name) {
        return store
            .checksum(name)
            .is_ok_and(|(len, crc)| len == c.len as u64 && crc == c.crc);
    }
    let Ok(bytes) = store.get(name) else {
        return false;
    };
    match parse_name(name) {
        Some((_, EntryKind::Manifest)) => Manifest::decode(&bytes).is_ok_and(|m| {
            m.pieces
                .iter()
                .all(|p| listed.iter().any(|e| e.name == p.name && e.size == p.size))
        }),
        _ => envelope::verify(&bytes).is_ok(),
    }
}

//! End-of-input markers. Without `--follow`, a partition read to its end is marked
//! done (`end-of-input` in its checkpoint directory) with the offset it was read to, so
//! the group can finish. A marker is stale once the partition's end is past that
//! offset (records were appended since): the next run removes it and reads them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use tracing::info;

use crate::coordinator::LatestMeta;
use crate::runner::kafka::{latest_offsets, TopicUrl};
use crate::store::{CheckpointStore, FileStore};

const DONE: &str = "end-of-input";

/// The checkpoint directory of partition `p` under the group's `dir`.
pub(crate) fn part_dir(dir: &Path, p: i32) -> PathBuf {
    dir.join(format!("partition-{p}"))
}

/// Whether partition `p` is marked done.
pub(crate) fn is_done(dir: &Path, p: i32) -> bool {
    part_dir(dir, p).join(DONE).exists()
}

/// Whether every partition of the topic is marked done.
pub(crate) fn all_done(dir: &Path, total: i32) -> bool {
    (0..total).all(|p| is_done(dir, p))
}

/// Marks partition `p` done at the input offset its latest checkpoint records.
pub(crate) fn mark(dir: &Path, p: i32, owner: &str) -> Result<(), String> {
    let end = checkpointed_offset(dir, p)?;
    let note = format!("end-offset {end}\nread to its end by {owner}\n");
    std::fs::write(part_dir(dir, p).join(DONE), note)
        .map_err(|e| format!("marking partition {p} done: {e}"))
}

/// Removes the markers of partitions that grew past their marked offset (a marker
/// without an offset counts as stale); returns those partitions. `ran` holds the end
/// each partition had when its marker was last found stale in this process: the same
/// end again is not new records (a broker may count control records past the last one
/// a reader gets), so a partition is not run over and over.
pub(crate) fn drop_stale(
    dir: &Path,
    input: &TopicUrl,
    total: i32,
    ran: &mut BTreeMap<i32, i64>,
) -> Result<Vec<i32>, String> {
    let marked: Vec<(i32, Option<i64>)> = (0..total)
        .filter(|&p| is_done(dir, p))
        .map(|p| (p, marked_offset(dir, p)))
        .collect();
    if marked.is_empty() {
        return Ok(Vec::new());
    }
    let parts: Vec<i32> = marked.iter().map(|m| m.0).collect();
    let ends = latest_offsets(input, &parts)?;
    let mut stale = Vec::new();
    for ((p, at), end) in marked.into_iter().zip(ends) {
        // Past the offset read to only if records were appended since (see
        // `latest_offsets`).
        if at.is_some_and(|at| at >= end) || ran.get(&p) == Some(&end) {
            continue;
        }
        ran.insert(p, end);
        let at = at.map_or("no offset".to_string(), |a| format!("offset {a}"));
        info!("partition {p}: its end-of-input marker ({at}) is stale, the broker reports records up to offset {end}: reading it again");
        match std::fs::remove_file(part_dir(dir, p).join(DONE)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("removing partition {p}'s end-of-input marker: {e}")),
        }
        stale.push(p);
    }
    Ok(stale)
}

/// The offset a marker records (`None`: unreadable, or written without one).
fn marked_offset(dir: &Path, p: i32) -> Option<i64> {
    let text = std::fs::read_to_string(part_dir(dir, p).join(DONE)).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("end-offset "))
        .and_then(|n| n.trim().parse().ok())
}

/// The next input offset of partition `p` in its latest checkpoint.
fn checkpointed_offset(dir: &Path, p: i32) -> Result<i64, String> {
    let what = format!("partition {p}'s latest checkpoint");
    let group = dir
        .parent()
        .ok_or_else(|| format!("{what}: no group directory"))?;
    let store = FileStore::open_unlocked(group, &format!("partition-{p}"))
        .map_err(|e| format!("{what}: {e}"))?;
    let latest = store
        .get_latest()
        .map_err(|e| format!("{what}: {e}"))?
        .ok_or_else(|| format!("{what}: there is none"))?;
    let meta: LatestMeta = serde_json::from_slice(&latest).map_err(|e| format!("{what}: {e}"))?;
    meta.positions
        .get(&format!("source.kafka.p{p}"))
        .and_then(|&o| i64::try_from(o).ok())
        .ok_or_else(|| format!("{what} records no offset of input partition {p}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marker_records_its_offset_and_one_without_reads_as_none() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        std::fs::create_dir_all(part_dir(dir, 2)).unwrap();
        assert!(!is_done(dir, 2));
        std::fs::write(part_dir(dir, 2).join(DONE), "end-offset 41\nread by a\n").unwrap();
        assert!(is_done(dir, 2));
        assert_eq!(marked_offset(dir, 2), Some(41));
        std::fs::write(part_dir(dir, 2).join(DONE), "read to its end by a\n").unwrap();
        assert_eq!(marked_offset(dir, 2), None);
    }
}

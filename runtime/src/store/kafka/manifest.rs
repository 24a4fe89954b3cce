//! The manifest record of a Kafka checkpoint and how a checkpoint is cut into records.

use std::collections::HashMap;
use std::ops::Range;

use serde::{Deserialize, Serialize};

use crate::store::StageSpan;

/// Value of the manifest's `format` field.
pub const MANIFEST_FORMAT: &str = "simplestream-kafka-manifest";
/// Label of the envelope parts (everything outside the stages).
pub const ENVELOPE_LABEL: &str = "_envelope";

/// The manifest record of a checkpoint (see [`KafkaStore`](super::KafkaStore)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always `simplestream-kafka-manifest`.
    pub format: String,
    /// Layout version, 1.
    pub version: u32,
    /// The checkpoint's name.
    pub checkpoint: String,
    /// Its size in bytes.
    pub size: u64,
    /// CRC-32 of the whole checkpoint, 8 hex digits.
    pub crc32: String,
    /// The writer that wrote it.
    pub writer: String,
    /// Its records, in order.
    pub segments: Vec<Segment>,
}

/// One record of a checkpoint, as its [`Manifest`] lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    /// The record's key, `{instance}/{checkpoint}/{label}/{n}`.
    pub key: String,
    /// A stage name, or `_envelope` for the parts between and around the stages.
    pub label: String,
    /// The record's offset in the partition.
    pub offset: i64,
    /// Where its bytes start in the checkpoint.
    pub start: u64,
    /// How many bytes it holds.
    pub len: u64,
    /// CRC-32 of its bytes, 8 hex digits.
    pub crc32: String,
}

/// One record's worth of a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Piece {
    pub(super) label: &'static str,
    /// Its number among the records of its label.
    pub(super) n: usize,
    pub(super) range: Range<usize>,
}

/// Cuts `0..len` at the stage spans into labelled pieces of at most `chunk` bytes.
pub(super) fn segments(
    len: usize,
    stages: &[StageSpan],
    chunk: usize,
) -> Result<Vec<Piece>, String> {
    let mut parts: Vec<(&'static str, Range<usize>)> = Vec::new();
    let mut at = 0;
    for s in stages {
        if s.range.start < at || s.range.end < s.range.start || s.range.end > len {
            return Err(format!(
                "stage `{}` spans {:?}, which is out of order, overlapping or past the {len} bytes",
                s.name, s.range
            ));
        }
        if s.range.start > at {
            parts.push((ENVELOPE_LABEL, at..s.range.start));
        }
        parts.push((s.name, s.range.clone()));
        at = s.range.end;
    }
    if at < len {
        parts.push((ENVELOPE_LABEL, at..len));
    }
    let mut counters: HashMap<&str, usize> = HashMap::new();
    let mut out = Vec::new();
    for (label, range) in parts {
        let mut start = range.start;
        loop {
            let end = (start + chunk).min(range.end);
            let n = counters.entry(label).or_default();
            out.push(Piece {
                label,
                n: *n,
                range: start..end,
            });
            *n += 1;
            start = end;
            if start >= range.end {
                break;
            }
        }
    }
    Ok(out)
}

pub(super) fn parse_manifest(value: &[u8], name: &str) -> Result<Manifest, String> {
    let m: Manifest = serde_json::from_slice(value).map_err(|e| format!("not a manifest ({e})"))?;
    if m.format != MANIFEST_FORMAT {
        return Err(format!("format is {:?}, not {MANIFEST_FORMAT:?}", m.format));
    }
    if m.version != 1 {
        return Err(format!(
            "layout version {} is not supported (this build reads 1)",
            m.version
        ));
    }
    if m.checkpoint != name {
        return Err(format!("it describes {:?}, not {name:?}", m.checkpoint));
    }
    Ok(m)
}

pub(super) fn hex(crc: u32) -> String {
    format!("{crc:08x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(name: &'static str, range: Range<usize>) -> StageSpan {
        StageSpan { name, range }
    }

    #[test]
    fn segments_cover_the_bytes_in_order() {
        let stages = [span("customer_stats", 10..30), span("per_5min", 32..40)];
        let p = segments(45, &stages, 8).unwrap();
        let labels: Vec<(&str, usize, Range<usize>)> =
            p.iter().map(|p| (p.label, p.n, p.range.clone())).collect();
        assert_eq!(
            labels,
            vec![
                ("_envelope", 0, 0..8),
                ("_envelope", 1, 8..10),
                ("customer_stats", 0, 10..18),
                ("customer_stats", 1, 18..26),
                ("customer_stats", 2, 26..30),
                ("_envelope", 2, 30..32),
                ("per_5min", 0, 32..40),
                ("_envelope", 3, 40..45),
            ]
        );
        assert_eq!(segments(0, &[], 8).unwrap(), vec![]);
        assert_eq!(segments(3, &[], 8).unwrap().len(), 1);
        assert!(segments(10, &[span("a", 5..8), span("b", 6..9)], 8).is_err());
        assert!(segments(10, &[span("a", 5..11)], 8).is_err());
    }
}

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

/// Largest record a manifest may list (and a fetch may ask for): bigger is corruption.
pub(super) const MAX_RECORD_BYTES: u64 = 64 * 1024 * 1024;

/// Why a manifest record cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum ManifestError {
    /// Not a manifest of this format, or inconsistent: the checkpoint is unreadable.
    Corrupt(String),
    /// A manifest of another layout version (a newer build wrote it): its records are
    /// left alone.
    UnknownVersion(String),
}

impl std::fmt::Display for ManifestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ManifestError::Corrupt(why) | ManifestError::UnknownVersion(why) => f.write_str(why),
        }
    }
}

/// The fields every layout version shares.
#[derive(Deserialize)]
struct Versioned {
    format: String,
    version: u32,
}

/// Parses the manifest of checkpoint `name` of the instance whose keys start with
/// `prefix`, and checks that it is consistent: its records are under
/// `{prefix}{name}/`, follow each other without gaps, add up to `size`, and none is
/// larger than [`MAX_RECORD_BYTES`].
pub(super) fn parse_manifest(
    value: &[u8],
    prefix: &str,
    name: &str,
) -> Result<Manifest, ManifestError> {
    let corrupt = |why: String| Err(ManifestError::Corrupt(why));
    let v: Versioned = match serde_json::from_slice(value) {
        Ok(v) => v,
        Err(e) => return corrupt(format!("not a manifest ({e})")),
    };
    if v.format != MANIFEST_FORMAT {
        return corrupt(format!("format is {:?}, not {MANIFEST_FORMAT:?}", v.format));
    }
    if v.version != 1 {
        return Err(ManifestError::UnknownVersion(format!(
            "layout version {} is not supported (this build reads 1; a newer build wrote it)",
            v.version
        )));
    }
    let m: Manifest = match serde_json::from_slice(value) {
        Ok(m) => m,
        Err(e) => return corrupt(format!("not a manifest ({e})")),
    };
    if m.checkpoint != name {
        return corrupt(format!("it describes {:?}, not {name:?}", m.checkpoint));
    }
    check_segments(&m, &format!("{prefix}{name}/")).map_err(ManifestError::Corrupt)?;
    Ok(m)
}

fn check_segments(m: &Manifest, own: &str) -> Result<(), String> {
    let mut at: u64 = 0;
    for s in &m.segments {
        if !s.key.starts_with(own) {
            return Err(format!("record {:?} is not under {own}", s.key));
        }
        if s.start != at {
            return Err(format!("record {} starts at {}, not {at}", s.key, s.start));
        }
        if s.len > MAX_RECORD_BYTES {
            return Err(format!(
                "record {} claims {} bytes, more than any record ({MAX_RECORD_BYTES})",
                s.key, s.len
            ));
        }
        at += s.len;
    }
    if at != m.size {
        return Err(format!(
            "its records add up to {at} bytes, its size says {}",
            m.size
        ));
    }
    Ok(())
}

/// The checkpoint from the values of its records, in the manifest's order, checked
/// against the manifest's lengths and CRC-32s. Allocates only what the values hold.
pub(super) fn assemble(m: &Manifest, values: Vec<Vec<u8>>) -> Result<Vec<u8>, String> {
    if values.len() != m.segments.len() {
        return Err(format!(
            "{} records for the manifest's {}",
            values.len(),
            m.segments.len()
        ));
    }
    let mut out = Vec::with_capacity(values.iter().map(Vec::len).sum());
    for (s, v) in m.segments.iter().zip(values) {
        if out.len() as u64 != s.start || v.len() as u64 != s.len {
            return Err(format!("its manifest is inconsistent at record {}", s.key));
        }
        out.extend_from_slice(&v);
    }
    let crc = hex(crc32fast::hash(&out));
    if out.len() as u64 != m.size || crc != m.crc32 {
        return Err(format!(
            "its records add up to {} bytes with crc32 {crc}, the manifest says {} bytes with crc32 {}",
            out.len(),
            m.size,
            m.crc32
        ));
    }
    Ok(out)
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

    const PREFIX: &str = "app/";
    const NAME: &str = "checkpoint_20241201_140000_123-000042.json";

    /// A valid manifest of `bytes` cut into records of `chunk` bytes, and the records.
    fn sample(bytes: &[u8], chunk: usize) -> (Manifest, Vec<Vec<u8>>) {
        let pieces = segments(bytes.len(), &[], chunk).unwrap();
        let m = Manifest {
            format: MANIFEST_FORMAT.into(),
            version: 1,
            checkpoint: NAME.into(),
            size: bytes.len() as u64,
            crc32: hex(crc32fast::hash(bytes)),
            writer: "w".into(),
            segments: pieces
                .iter()
                .enumerate()
                .map(|(i, p)| Segment {
                    key: format!("{PREFIX}{NAME}/{}/{}", p.label, p.n),
                    label: p.label.into(),
                    offset: i as i64,
                    start: p.range.start as u64,
                    len: p.range.len() as u64,
                    crc32: hex(crc32fast::hash(&bytes[p.range.clone()])),
                })
                .collect(),
        };
        let values = pieces
            .iter()
            .map(|p| bytes[p.range.clone()].to_vec())
            .collect();
        (m, values)
    }

    fn json(m: &Manifest) -> Vec<u8> {
        serde_json::to_vec(m).unwrap()
    }

    #[test]
    fn a_valid_manifest_parses_and_assembles() {
        let (m, values) = sample(b"0123456789abcdef", 5);
        assert_eq!(parse_manifest(&json(&m), PREFIX, NAME), Ok(m.clone()));
        assert_eq!(assemble(&m, values).unwrap(), b"0123456789abcdef");
    }

    #[test]
    fn huge_or_inconsistent_lengths_are_corrupt_not_an_allocation() {
        let (m, values) = sample(b"0123456789", 4);
        let mut huge = m.clone();
        huge.size = u64::MAX;
        let mut big_record = m.clone();
        big_record.segments[0].len = 1 << 62;
        let mut gap = m.clone();
        gap.segments[1].start += 1;
        for bad in [&huge, &big_record, &gap] {
            assert!(
                matches!(
                    parse_manifest(&json(bad), PREFIX, NAME),
                    Err(ManifestError::Corrupt(_))
                ),
                "{bad:?}"
            );
        }
        // `assemble` allocates what the records hold, whatever the manifest claims.
        assert!(assemble(&huge, values.clone()).is_err());
        assert!(assemble(&big_record, values).is_err());
    }

    #[test]
    fn records_outside_the_checkpoints_own_keys_make_it_corrupt() {
        for key in [
            format!("other/{NAME}/_envelope/0"),
            format!("{PREFIX}checkpoint_other.json/_envelope/0"),
            format!("{PREFIX}latest"),
        ] {
            let (mut m, _) = sample(b"0123456789", 100);
            m.segments[0].key = key.clone();
            assert!(
                matches!(
                    parse_manifest(&json(&m), PREFIX, NAME),
                    Err(ManifestError::Corrupt(_))
                ),
                "{key}"
            );
        }
    }

    #[test]
    fn another_layout_version_is_unknown_not_corrupt() {
        for v in [
            r#"{"format":"simplestream-kafka-manifest","version":2}"#,
            r#"{"format":"simplestream-kafka-manifest","version":7,"parts":[1,2]}"#,
        ] {
            match parse_manifest(v.as_bytes(), PREFIX, NAME) {
                Err(ManifestError::UnknownVersion(why)) => {
                    assert!(why.contains("version"), "{why}")
                }
                other => panic!("{v}: {other:?}"),
            }
        }
        for corrupt in [
            &br#"{"format":"other","version":2}"#[..],
            b"{",
            b"",
            b"[1,2]",
        ] {
            assert!(matches!(
                parse_manifest(corrupt, PREFIX, NAME),
                Err(ManifestError::Corrupt(_))
            ));
        }
    }

    proptest::proptest! {
        #[test]
        fn random_bytes_are_an_error_never_a_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let _ = parse_manifest(&bytes, PREFIX, NAME);
        }

        #[test]
        fn mutated_manifests_are_an_error_or_consistent(
            len in 0usize..64,
            chunk in 1usize..16,
            at in proptest::prelude::any::<usize>(),
            byte in proptest::prelude::any::<u8>(),
            cut in proptest::prelude::any::<bool>(),
        ) {
            let bytes: Vec<u8> = (0..len as u8).collect();
            let (m, values) = sample(&bytes, chunk);
            let mut raw = json(&m);
            let at = at % raw.len();
            if cut { raw.truncate(at) } else { raw[at] = byte }
            if let Ok(parsed) = parse_manifest(&raw, PREFIX, NAME) {
                // Whatever it says, assembling the records is checked, never trusted.
                let got = assemble(&parsed, values);
                if let Ok(out) = got {
                    proptest::prop_assert_eq!(out, bytes);
                }
            }
        }

        #[test]
        fn digit_mutations_of_lengths_never_allocate_what_they_claim(
            digits in "[0-9]{1,25}",
            field in 0usize..3,
        ) {
            let (m, values) = sample(b"0123456789", 3);
            let text = String::from_utf8(json(&m)).unwrap();
            let target = ["\"size\":10", "\"len\":3", "\"start\":3"][field];
            let key = target.split(':').next().unwrap();
            let raw = text.replacen(target, &format!("{key}:{digits}"), 1);
            if let Ok(parsed) = parse_manifest(raw.as_bytes(), PREFIX, NAME) {
                let _ = assemble(&parsed, values);
            }
        }
    }
}

//! The checkpoint format: one envelope, two codecs.
//!
//! **JSON** (readable, shaped like the article's example): one object whose first fields
//! are the [`Header`], then one field per stateful stage named after the stage, then a
//! checksum over every byte before it:
//!
//! ```text
//! {"format":"simplestream-checkpoint","format_version":1,"pipeline":"OrderStats",
//!  "fingerprint":"5c1f0e2b9a7d4c31","checkpoint_id":42,"timestamp":1635739530000,
//!  "max_event_time":1635739529000,"watermark":1635739524000,
//!  "positions":{"source.offset":5120,"output.len":880},
//!  "customer_stats":{"C001":{"count":25,"amount":310.5}},
//!  "checksum":"crc32:8d1f03aa"}
//! ```
//! Keys of keyed state are sorted, so the same state always gives the same bytes.
//!
//! **Binary** (compact, fast): `SSCK`, format version (u16 LE), payload length (u64 LE),
//! CRC-32 of the payload (u32 LE), then the payload: the header and the stages in
//! postcard, then (version 2) each stage's length in bytes (postcard) and the length of
//! that list (u32 LE), so that a reader can take the stages apart.
//!
//! The header lists every stage with the layout of its state (`stage_layouts`, version 2):
//! a restore matches the checkpoint's stages to the pipeline's by name and layout (see
//! [`crate::upgrade`]), so a pipeline changed in ways its state can follow
//! restores its older checkpoints. Version 1 checkpoints (no layouts) restore into the
//! pipeline whose fingerprint they carry.
//!
//! Decoding checks, in order: codec marker, format version, length, checksum, pipeline
//! name, then each stage's layout, then decodes every stage into a fresh pipeline. Any
//! failure is a distinct [`CheckpointError`]; nothing is half-loaded because the new
//! pipeline only exists once everything decoded.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::codec::{dec, enc};
pub use crate::codec::{CheckpointError, Codec, StageSpan, StageWriter};
use crate::fingerprint::to_hex;
use crate::pipeline::{Clock, Pipeline};
use crate::upgrade::{self, RestoreOptions, StageAction, StageLayout};

mod streamed;
pub(crate) use streamed::stream_delta;
pub use streamed::{store_delta, store_whole, StreamError, Streamed};

/// The format version this build writes; it reads every version from 1 to this one.
pub const FORMAT_VERSION: u32 = 2;
/// Value of the `format` field of JSON checkpoints.
pub const FORMAT_NAME: &str = "simplestream-checkpoint";
/// Value of the `format` field of JSON deltas (the pieces of incremental checkpoints).
pub const DELTA_FORMAT_NAME: &str = "simplestream-delta";
const MAGIC: &[u8; 4] = b"SSCK";
const DELTA_MAGIC: &[u8; 4] = b"SSDL";
const BIN_HEADER_LEN: usize = 4 + 2 + 8 + 4;
const JSON_TRAILER: &[u8] = b",\"checksum\":\"crc32:";

/// What every checkpoint says about itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    /// Always [`FORMAT_NAME`].
    pub format: String,
    /// [`FORMAT_VERSION`] of the writer.
    pub format_version: u32,
    /// Name of the pipeline that wrote it.
    pub pipeline: String,
    /// That pipeline's fingerprint, 16 hex digits.
    pub fingerprint: String,
    /// Sequence number, 1 for the first checkpoint of an instance.
    pub checkpoint_id: u64,
    /// Wall-clock time the checkpoint was taken, ms since the epoch.
    pub timestamp: i64,
    /// Largest event time seen, ms.
    pub max_event_time: i64,
    /// Source watermark, ms.
    pub watermark: i64,
    /// Source positions and sink commit lengths (e.g. `source.offset`, `output.len`).
    pub positions: BTreeMap<String, u64>,
    /// Each stage in the checkpoint with the layout of its state, in the order the stages
    /// are written (empty in version 1).
    #[serde(default)]
    pub stage_layouts: Vec<StageLayout>,
}

/// A version 1 header (binary checkpoints: postcard has no optional fields).
#[derive(Deserialize)]
struct HeaderV1 {
    format: String,
    format_version: u32,
    pipeline: String,
    fingerprint: String,
    checkpoint_id: u64,
    timestamp: i64,
    max_event_time: i64,
    watermark: i64,
    positions: BTreeMap<String, u64>,
}

impl From<HeaderV1> for Header {
    fn from(h: HeaderV1) -> Header {
        Header {
            format: h.format,
            format_version: h.format_version,
            pipeline: h.pipeline,
            fingerprint: h.fingerprint,
            checkpoint_id: h.checkpoint_id,
            timestamp: h.timestamp,
            max_event_time: h.max_event_time,
            watermark: h.watermark,
            positions: h.positions,
            stage_layouts: Vec::new(),
        }
    }
}

/// Encodes `pipeline`'s state with a header built from the other arguments.
///
/// ```
/// # use simplestream_runtime::envelope::*;
/// // See `decode` for a round trip through a generated pipeline.
/// assert_eq!(Codec::Binary.extension(), "bin");
/// ```
pub fn encode<P: Pipeline>(
    pipeline: &P,
    codec: Codec,
    checkpoint_id: u64,
    timestamp: i64,
    positions: BTreeMap<String, u64>,
) -> Result<Vec<u8>, CheckpointError> {
    encode_staged(pipeline, codec, checkpoint_id, timestamp, positions).map(|e| e.bytes)
}

/// An encoded checkpoint, with where each stage's state lies in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// The whole checkpoint, as [`encode`] returns it.
    pub bytes: Vec<u8>,
    /// Each stage's bytes within `bytes`, in order (stores that keep stages apart, such
    /// as a Kafka topic keyed by stage, use these).
    pub stages: Vec<StageSpan>,
}

/// [`encode`], also telling where each stage's state lies in the bytes.
pub fn encode_staged<P: Pipeline>(
    pipeline: &P,
    codec: Codec,
    checkpoint_id: u64,
    timestamp: i64,
    positions: BTreeMap<String, u64>,
) -> Result<Encoded, CheckpointError> {
    let header = header_of(pipeline, checkpoint_id, timestamp, positions, FORMAT_NAME);
    encode_kind(Kind::Whole, codec, &header, |w| pipeline.write_stages(w))
}

/// Encodes a delta: what changed in each stage since `since` (the pipeline's
/// [`stage_versions`](Pipeline::stage_versions) at the previous checkpoint), with a full
/// header. Its `format` is [`DELTA_FORMAT_NAME`] (binary: `SSDL`), so it is never taken
/// for a whole checkpoint.
pub fn encode_delta<P: Pipeline>(
    pipeline: &P,
    since: &[crate::delta::Version],
    codec: Codec,
    checkpoint_id: u64,
    timestamp: i64,
    positions: BTreeMap<String, u64>,
) -> Result<Encoded, CheckpointError> {
    let header = header_of(
        pipeline,
        checkpoint_id,
        timestamp,
        positions,
        DELTA_FORMAT_NAME,
    );
    encode_kind(Kind::Delta, codec, &header, |w| {
        pipeline.write_stage_deltas(since, w)
    })
}

fn header_of<P: Pipeline>(
    pipeline: &P,
    checkpoint_id: u64,
    timestamp: i64,
    positions: BTreeMap<String, u64>,
    format: &str,
) -> Header {
    let clock = pipeline.clock();
    Header {
        format: format.to_string(),
        format_version: FORMAT_VERSION,
        pipeline: P::name().to_string(),
        fingerprint: to_hex(P::fingerprint()),
        checkpoint_id,
        timestamp,
        max_event_time: clock.max_event_time,
        watermark: clock.watermark,
        positions,
        stage_layouts: upgrade::layouts::<P>(),
    }
}

/// A whole checkpoint or a delta: same layout, other marker and format name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Whole,
    Delta,
}

impl Kind {
    fn magic(self) -> &'static [u8; 4] {
        match self {
            Kind::Whole => MAGIC,
            Kind::Delta => DELTA_MAGIC,
        }
    }
    fn format(self) -> &'static str {
        match self {
            Kind::Whole => FORMAT_NAME,
            Kind::Delta => DELTA_FORMAT_NAME,
        }
    }
    fn other(self) -> Kind {
        match self {
            Kind::Whole => Kind::Delta,
            Kind::Delta => Kind::Whole,
        }
    }
    /// Why bytes of the other kind are refused.
    fn refusal(self) -> String {
        match self {
            Kind::Whole => {
                "it is a delta of an incremental checkpoint; restore it through its manifest".into()
            }
            Kind::Delta => "it is a whole checkpoint, not a delta".into(),
        }
    }
}

fn encode_kind(
    kind: Kind,
    codec: Codec,
    header: &Header,
    write: impl FnOnce(&mut StageWriter<'_>) -> Result<(), CheckpointError>,
) -> Result<Encoded, CheckpointError> {
    match codec {
        Codec::Json => {
            let mut out = serde_json::to_vec(header).map_err(enc)?;
            // The stages go on as more fields of the header's object: `{header,stages}`.
            debug_assert!(out.last() == Some(&b'}'));
            out.pop();
            let mut w = StageWriter::continuing(Codec::Json, &mut out);
            write(&mut w)?;
            let stages = w.finish();
            let crc = crc32fast::hash(&out);
            out.extend_from_slice(JSON_TRAILER);
            out.extend_from_slice(format!("{crc:08x}\"}}\n").as_bytes());
            Ok(Encoded { bytes: out, stages })
        }
        Codec::Binary => {
            // The fixed header goes first with its length and checksum left blank, the
            // payload is written after it in place, then the blanks are filled in.
            let mut out = Vec::with_capacity(1 << 16);
            out.extend_from_slice(kind.magic());
            out.extend_from_slice(&(FORMAT_VERSION as u16).to_le_bytes());
            out.extend_from_slice(&[0u8; 12]);
            crate::codec::write(Codec::Binary, header, &mut out)?;
            let mut w = StageWriter::new(Codec::Binary, &mut out);
            write(&mut w)?;
            let stages = w.finish();
            let lens: Vec<u64> = stages.iter().map(|s| s.range.len() as u64).collect();
            let before = out.len();
            crate::codec::write(Codec::Binary, &lens, &mut out)?;
            let trailer_len = (out.len() - before) as u32;
            out.extend_from_slice(&trailer_len.to_le_bytes());
            let payload_len = (out.len() - BIN_HEADER_LEN) as u64;
            let crc = crc32fast::hash(&out[BIN_HEADER_LEN..]);
            out[6..14].copy_from_slice(&payload_len.to_le_bytes());
            out[14..18].copy_from_slice(&crc.to_le_bytes());
            Ok(Encoded { bytes: out, stages })
        }
    }
}

/// A checkpoint whose checksum and version are verified, not yet decoded into a pipeline.
#[derive(Debug, Clone)]
pub struct Verified<'a> {
    /// Its codec.
    pub codec: Codec,
    /// Its header.
    pub header: Header,
    /// The bytes holding the stages (JSON: the whole document; binary: after the header,
    /// without the stage lengths).
    pub stages: &'a [u8],
    /// Binary, version 2: each stage's length in `stages`, in the header's order.
    pub stage_lens: Vec<u64>,
}

impl Verified<'_> {
    /// Each stage's name and bytes (its value), as the header lists them (version 2).
    pub fn stage_parts(&self) -> Result<Vec<(&str, &[u8])>, CheckpointError> {
        let names = self.header.stage_layouts.iter().map(|s| s.name.as_str());
        match self.codec {
            Codec::Binary => {
                let mut at = 0usize;
                let mut out = Vec::new();
                for (name, len) in names.zip(&self.stage_lens) {
                    let end = at.saturating_add(*len as usize);
                    out.push((name, &self.stages[at..end]));
                    at = end;
                }
                Ok(out)
            }
            Codec::Json => {
                let fields: BTreeMap<String, &serde_json::value::RawValue> =
                    serde_json::from_slice(self.stages).map_err(dec)?;
                names
                    .map(|name| match fields.get(name) {
                        Some(raw) => Ok((name, raw.get().as_bytes())),
                        None => Err(CheckpointError::Decode {
                            detail: format!("stage `{name}` is listed but missing"),
                        }),
                    })
                    .collect()
            }
        }
    }
}

/// Checks codec marker, version, length and checksum, and reads the header.
///
/// This needs no pipeline type, so tools can list and verify any checkpoint.
pub fn verify(bytes: &[u8]) -> Result<Verified<'_>, CheckpointError> {
    verify_kind(bytes, Kind::Whole)
}

/// [`verify`] for a delta written by [`encode_delta`].
pub fn verify_delta(bytes: &[u8]) -> Result<Verified<'_>, CheckpointError> {
    verify_kind(bytes, Kind::Delta)
}

fn verify_kind(bytes: &[u8], kind: Kind) -> Result<Verified<'_>, CheckpointError> {
    let check_format = |h: &Header| check_format(h, kind);
    if bytes.starts_with(kind.other().magic()) {
        return Err(CheckpointError::NotACheckpoint {
            detail: kind.refusal(),
        });
    }
    if bytes.starts_with(kind.magic()) {
        if bytes.len() < BIN_HEADER_LEN {
            return Err(CheckpointError::Truncated {
                expected: BIN_HEADER_LEN as u64,
                found: bytes.len() as u64,
            });
        }
        let version = u16::from_le_bytes([bytes[4], bytes[5]]) as u32;
        if !(1..=FORMAT_VERSION).contains(&version) {
            return Err(CheckpointError::UnsupportedVersion {
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        let len = u64::from_le_bytes(bytes[6..14].try_into().expect("8 bytes"));
        let stored = u32::from_le_bytes(bytes[14..18].try_into().expect("4 bytes"));
        let payload = &bytes[BIN_HEADER_LEN..];
        if (payload.len() as u64) < len {
            return Err(CheckpointError::Truncated {
                expected: len.saturating_add(BIN_HEADER_LEN as u64),
                found: bytes.len() as u64,
            });
        }
        if (payload.len() as u64) > len {
            return Err(CheckpointError::Decode {
                detail: format!(
                    "{} bytes after the end of the checkpoint",
                    payload.len() as u64 - len
                ),
            });
        }
        let computed = crc32fast::hash(payload);
        if stored != computed {
            return Err(CheckpointError::ChecksumMismatch { stored, computed });
        }
        let (header, rest): (Header, _) = if version == 1 {
            let (h, rest): (HeaderV1, _) = postcard::take_from_bytes(payload).map_err(dec)?;
            (h.into(), rest)
        } else {
            postcard::take_from_bytes(payload).map_err(dec)?
        };
        check_format(&header)?;
        let (stages, stage_lens) = if version == 1 {
            (rest, Vec::new())
        } else {
            split_trailer(rest, header.stage_layouts.len())?
        };
        Ok(Verified {
            codec: Codec::Binary,
            header,
            stages,
            stage_lens,
        })
    } else if bytes.first() == Some(&b'{') {
        let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
        // Trailer: ,"checksum":"crc32:XXXXXXXX"}
        let tail_len = JSON_TRAILER.len() + 8 + 2;
        let trailer_ok = body.len() >= tail_len
            && body[body.len() - tail_len..].starts_with(JSON_TRAILER)
            && body.ends_with(b"\"}");
        if !trailer_ok {
            // Either cut off mid-write or not ours; a version check helps the message.
            if let Ok(h) = serde_json::from_slice::<Header>(body) {
                check_format(&h)?;
            }
            return Err(CheckpointError::Truncated {
                expected: 0,
                found: bytes.len() as u64,
            }
            .with_json_detail());
        }
        let split = body.len() - tail_len;
        let hex = &body[split + JSON_TRAILER.len()..split + JSON_TRAILER.len() + 8];
        let stored = std::str::from_utf8(hex)
            .ok()
            .and_then(|h| u32::from_str_radix(h, 16).ok())
            .ok_or_else(|| CheckpointError::Decode {
                detail: "checksum is not hex".into(),
            })?;
        let computed = crc32fast::hash(&body[..split]);
        if stored != computed {
            // A newer writer may checksum differently: report the version first.
            if let Ok(h) = serde_json::from_slice::<Header>(body) {
                check_format(&h)?;
            }
            return Err(CheckpointError::ChecksumMismatch { stored, computed });
        }
        let header: Header = serde_json::from_slice(body).map_err(dec)?;
        check_format(&header)?;
        Ok(Verified {
            codec: Codec::Json,
            header,
            stages: body,
            stage_lens: Vec::new(),
        })
    } else {
        let shown: String = String::from_utf8_lossy(&bytes[..bytes.len().min(16)]).into();
        Err(CheckpointError::NotACheckpoint {
            detail: if bytes.is_empty() {
                "the file is empty".into()
            } else {
                format!("starts with {shown:?}")
            },
        })
    }
}

/// Binary version 2: the stages, and their lengths from the trailer after them.
fn split_trailer(rest: &[u8], stages: usize) -> Result<(&[u8], Vec<u64>), CheckpointError> {
    let bad = |detail: &str| CheckpointError::Decode {
        detail: format!("stage lengths: {detail}"),
    };
    let n = rest.len().checked_sub(4).ok_or_else(|| bad("missing"))?;
    let tlen = u32::from_le_bytes(rest[n..].try_into().expect("4 bytes")) as usize;
    let start = n
        .checked_sub(tlen)
        .ok_or_else(|| bad("longer than the checkpoint"))?;
    let lens: Vec<u64> = crate::codec::read(Codec::Binary, &rest[start..n])?;
    let total = lens.iter().try_fold(0u64, |a, l| a.checked_add(*l));
    if lens.len() != stages || total != Some(start as u64) {
        return Err(bad("they do not add up to the stages' bytes"));
    }
    Ok((&rest[..start], lens))
}

impl CheckpointError {
    fn with_json_detail(self) -> Self {
        match self {
            CheckpointError::Truncated { found, .. } => CheckpointError::Decode {
                detail: format!(
                    "the JSON checkpoint ({found} bytes) has no checksum trailer: it was cut off during a write or edited"
                ),
            },
            e => e,
        }
    }
}

fn check_format(h: &Header, kind: Kind) -> Result<(), CheckpointError> {
    if h.format == kind.other().format() {
        return Err(CheckpointError::NotACheckpoint {
            detail: kind.refusal(),
        });
    }
    if h.format != kind.format() {
        return Err(CheckpointError::NotACheckpoint {
            detail: format!("format is `{}`", h.format),
        });
    }
    if !(1..=FORMAT_VERSION).contains(&h.format_version) {
        return Err(CheckpointError::UnsupportedVersion {
            found: h.format_version,
            supported: FORMAT_VERSION,
        });
    }
    Ok(())
}

/// Checks that a verified checkpoint was written by pipeline `P`.
pub fn check_pipeline<P: Pipeline>(h: &Header) -> Result<(), CheckpointError> {
    let expected = to_hex(P::fingerprint());
    if h.pipeline != P::name() || h.fingerprint != expected {
        return Err(CheckpointError::ForeignPipeline {
            found_name: h.pipeline.clone(),
            found_fingerprint: h.fingerprint.clone(),
            expected_name: P::name().to_string(),
            expected_fingerprint: expected,
        });
    }
    Ok(())
}

/// Verifies and decodes a checkpoint into a fresh pipeline `P`: every stage of the
/// checkpoint must be restored, started empty or migrated ([`decode_with`] may also
/// drop some).
pub fn decode<P: Pipeline>(bytes: &[u8]) -> Result<(Header, P), CheckpointError> {
    decode_with::<P>(bytes, &RestoreOptions::default()).map(|r| (r.header, r.pipeline))
}

/// A checkpoint decoded into a pipeline, and what happened to each stage.
#[derive(Debug)]
pub struct Restored<P> {
    /// The checkpoint's header.
    pub header: Header,
    /// The pipeline, with the state restored.
    pub pipeline: P,
    /// What the restore did with each stage.
    pub actions: Vec<StageAction>,
}

fn clock_of(h: &Header) -> Clock {
    Clock {
        max_event_time: h.max_event_time,
        watermark: h.watermark,
    }
}

/// [`decode`], dropping the state of the stages `opts` allows to drop.
pub fn decode_with<P: Pipeline>(
    bytes: &[u8],
    opts: &RestoreOptions,
) -> Result<Restored<P>, CheckpointError> {
    let v = verify(bytes)?;
    let actions = restore_actions::<P>(&v.header, opts)?;
    let clock = clock_of(&v.header);
    if v.header.fingerprint == to_hex(P::fingerprint()) && v.header.pipeline == P::name() {
        let pipeline = P::decode_stages(v.codec, v.stages, clock)?;
        return Ok(Restored {
            header: v.header,
            pipeline,
            actions,
        });
    }
    // The pipeline's stages in its own order: each from the checkpoint's bytes, or empty
    // (new, reset, or migrated after the decode), then decoded at once.
    let parts = v.stage_parts()?;
    let fresh = fresh_stages::<P>(v.codec, |p, w| p.write_stages(w))?;
    let stages = assemble(v.codec, &fresh, |stage| {
        let a = actions.iter().find(|a| a.stage() == stage)?;
        match a {
            StageAction::Restore { .. } | StageAction::Renamed { .. } => {
                part_of(&parts, a.reads()?)
            }
            _ => None,
        }
    });
    let mut pipeline = P::decode_stages(v.codec, &stages, clock)?;
    for a in &actions {
        if let StageAction::Migrate { stage, from, .. } = a {
            let part = part_of(&parts, from).expect("the checkpoint holds the stage it migrates");
            let layout = layout_in(&v.header, from);
            let done = pipeline
                .migrate_stage(stage, layout, v.codec, part)
                .map_err(|e| in_stage(stage, e))?;
            if !done {
                return Err(CheckpointError::Decode {
                    detail: format!("stage `{stage}`: its migration did not apply"),
                });
            }
        }
    }
    Ok(Restored {
        header: v.header,
        pipeline,
        actions,
    })
}

fn part_of<'a>(parts: &[(&str, &'a [u8])], name: &str) -> Option<&'a [u8]> {
    parts.iter().find(|(n, _)| *n == name).map(|(_, b)| *b)
}

/// A fresh pipeline's stages written by `write` in `codec`: each stage's name and bytes.
fn fresh_stages<P: Pipeline>(
    codec: Codec,
    write: impl FnOnce(&P, &mut StageWriter<'_>) -> Result<(), CheckpointError>,
) -> Result<Vec<(&'static str, Vec<u8>)>, CheckpointError> {
    let mut buf = Vec::new();
    let mut w = StageWriter::new(codec, &mut buf);
    write(&P::new(), &mut w)?;
    let spans = w.finish();
    Ok(spans
        .into_iter()
        .map(|s| (s.name, buf[s.range].to_vec()))
        .collect())
}

/// Stages as the pipeline writes them: `from(stage)`'s bytes, else the fresh ones.
fn assemble<'a>(
    codec: Codec,
    fresh: &'a [(&'static str, Vec<u8>)],
    from: impl Fn(&str) -> Option<&'a [u8]>,
) -> Vec<u8> {
    let mut out = Vec::new();
    if codec == Codec::Json {
        out.push(b'{');
    }
    for (i, (name, empty)) in fresh.iter().enumerate() {
        if codec == Codec::Json {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(format!("\"{name}\":").as_bytes());
        }
        out.extend_from_slice(from(name).unwrap_or(empty));
    }
    if codec == Codec::Json {
        out.push(b'}');
    }
    out
}

fn layout_in<'h>(h: &'h Header, name: &str) -> &'h StageLayout {
    h.stage_layouts
        .iter()
        .find(|s| s.name == name)
        .expect("actions only read stages the header lists")
}

fn in_stage(stage: &str, e: CheckpointError) -> CheckpointError {
    match e {
        CheckpointError::Decode { detail } => CheckpointError::Decode {
            detail: format!("stage `{stage}`: {detail}"),
        },
        e => e,
    }
}

/// What restoring a checkpoint with header `h` into `P` does with each stage, or why it
/// is refused: another pipeline, a version 1 checkpoint of another version of this one,
/// or a stage that cannot follow the change.
pub fn restore_actions<P: Pipeline>(
    h: &Header,
    opts: &RestoreOptions,
) -> Result<Vec<StageAction>, CheckpointError> {
    if h.format_version == 1 || h.pipeline != P::name() {
        check_pipeline::<P>(h)?;
        let all = upgrade::layouts::<P>();
        return Ok(all
            .into_iter()
            .map(|s| StageAction::Restore { stage: s.name })
            .collect());
    }
    let saw_nothing;
    let opts = if h.positions.get("events") == Some(&0) {
        saw_nothing = nothing_to_lose(h);
        &saw_nothing
    } else {
        opts
    };
    let actions = upgrade::plan::<P>(&h.stage_layouts, opts);
    match upgrade::refusals(P::name(), &actions) {
        Some(e) => Err(e),
        None => Ok(actions),
    }
}

/// A runner's checkpoint taken before any event was processed (`events` is 0) holds only
/// initial state: a stage changed or gone loses nothing there, so it is allowed to start
/// empty. This is what lets a fixed query rerun after its first run stopped at line 1.
fn nothing_to_lose(h: &Header) -> RestoreOptions {
    RestoreOptions {
        allow_dropped: h.stage_layouts.iter().map(|s| s.name.clone()).collect(),
    }
}

/// Verifies a delta written by [`encode_delta`] and applies it to `pipeline`; returns
/// its header. On error `pipeline` may be partly changed: restores apply deltas to a
/// pipeline that is only handed out once every delta applied.
pub fn apply_delta<P: Pipeline>(bytes: &[u8], pipeline: &mut P) -> Result<Header, CheckpointError> {
    apply_delta_with(bytes, pipeline, &RestoreOptions::default())
}

/// [`apply_delta`] into a changed pipeline: stages are matched as [`decode_with`] does;
/// a stage that needs a migration is refused (migrations convert whole states: restore
/// from a whole checkpoint).
pub fn apply_delta_with<P: Pipeline>(
    bytes: &[u8],
    pipeline: &mut P,
    opts: &RestoreOptions,
) -> Result<Header, CheckpointError> {
    let v = verify_delta(bytes)?;
    let actions = restore_actions::<P>(&v.header, opts)?;
    if v.header.fingerprint == to_hex(P::fingerprint()) && v.header.pipeline == P::name() {
        pipeline.apply_stage_deltas(v.codec, v.stages, clock_of(&v.header))?;
        return Ok(v.header);
    }
    if let Some(stage) = actions.iter().find_map(|a| match a {
        StageAction::Migrate { stage, .. } => Some(stage),
        _ => None,
    }) {
        return Err(CheckpointError::Incompatible {
            pipeline: P::name().into(),
            problems: vec![format!("stage `{stage}` needs a migration, which applies to whole checkpoints only, and this one is incremental; restore it with the version that wrote it and take a whole checkpoint (without --incremental) first")],
        });
    }
    // Stages not in the delta get an empty delta of their own (a reset to empty: they
    // were restored empty from the base).
    let parts = v.stage_parts()?;
    let fresh = fresh_stages::<P>(v.codec, |p, w| p.write_stage_deltas(&[], w))?;
    let deltas = assemble(v.codec, &fresh, |stage| {
        let a = actions.iter().find(|a| a.stage() == stage)?;
        part_of(&parts, a.reads()?)
    });
    pipeline.apply_stage_deltas(v.codec, &deltas, clock_of(&v.header))?;
    Ok(v.header)
}

/// Helpers for generated `encode_stages`/`decode_stages` (kept here for code generated by
/// older versions of the macro).
#[doc(hidden)]
pub mod codec {
    pub use crate::codec::{read, write};
}

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
//! postcard.
//!
//! Decoding checks, in order: codec marker, format version, length, checksum, pipeline
//! name and fingerprint, then decodes every stage into a fresh pipeline. Any failure is a
//! distinct [`CheckpointError`]; nothing is half-loaded because the new pipeline only
//! exists once everything decoded.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::fingerprint::to_hex;
use crate::pipeline::{Clock, Pipeline};

/// The format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// Value of the `format` field of JSON checkpoints.
pub const FORMAT_NAME: &str = "simplestream-checkpoint";
const MAGIC: &[u8; 4] = b"SSCK";
const BIN_HEADER_LEN: usize = 4 + 2 + 8 + 4;
const JSON_TRAILER: &[u8] = b",\"checksum\":\"crc32:";

/// How a checkpoint is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Codec {
    /// Readable JSON.
    #[default]
    Json,
    /// Compact binary (postcard) with a CRC-32.
    Binary,
}

impl Codec {
    /// File extension for this codec.
    pub fn extension(self) -> &'static str {
        match self {
            Codec::Json => "json",
            Codec::Binary => "bin",
        }
    }

    /// Parses `json` or `binary`.
    ///
    /// ```
    /// use simplestream_runtime::Codec;
    /// assert_eq!("binary".parse::<Codec>().unwrap(), Codec::Binary);
    /// assert!("xml".parse::<Codec>().is_err());
    /// ```
    pub fn parse(s: &str) -> Result<Codec, String> {
        s.parse()
    }
}

impl std::str::FromStr for Codec {
    type Err = String;
    fn from_str(s: &str) -> Result<Codec, String> {
        match s {
            "json" => Ok(Codec::Json),
            "binary" | "bin" => Ok(Codec::Binary),
            other => Err(format!("unknown codec `{other}`: use `json` or `binary`")),
        }
    }
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Codec::Json => "json",
            Codec::Binary => "binary",
        })
    }
}

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
}

/// Why a checkpoint could not be read.
#[derive(Debug, Clone, PartialEq)]
pub enum CheckpointError {
    /// Neither a JSON nor a binary checkpoint.
    NotACheckpoint {
        /// What was found instead.
        detail: String,
    },
    /// Shorter than its header says: a write was cut off.
    Truncated {
        /// Bytes expected.
        expected: u64,
        /// Bytes found.
        found: u64,
    },
    /// The bytes changed after the checkpoint was written.
    ChecksumMismatch {
        /// Checksum stored in the file.
        stored: u32,
        /// Checksum of the bytes found.
        computed: u32,
    },
    /// Written by a newer (or unknown) format.
    UnsupportedVersion {
        /// Version in the file.
        found: u32,
        /// Version this build reads.
        supported: u32,
    },
    /// Written by another pipeline, or by a version of this one whose state differs.
    ForeignPipeline {
        /// Pipeline name in the file.
        found_name: String,
        /// Fingerprint in the file.
        found_fingerprint: String,
        /// This pipeline's name.
        expected_name: String,
        /// This pipeline's fingerprint.
        expected_fingerprint: String,
    },
    /// The checksum matched but the content does not decode.
    Decode {
        /// The decoder's message.
        detail: String,
    },
    /// State could not be encoded (e.g. a map key JSON cannot represent).
    Encode {
        /// The encoder's message.
        detail: String,
    },
}

impl fmt::Display for CheckpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use CheckpointError::*;
        match self {
            NotACheckpoint { detail } => write!(f, "not a SimpleStream checkpoint ({detail})"),
            Truncated { expected, found } => write!(
                f,
                "checkpoint is truncated: {found} of {expected} bytes (a write was cut off); an older checkpoint can be used"
            ),
            ChecksumMismatch { stored, computed } => write!(
                f,
                "checkpoint is corrupt: checksum mismatch (stored crc32 {stored:08x}, computed {computed:08x}); an older checkpoint can be used"
            ),
            UnsupportedVersion { found, supported } => write!(
                f,
                "checkpoint format version {found} is not supported by this build (it reads version {supported}); upgrade SimpleStream or start from scratch"
            ),
            ForeignPipeline { found_name, found_fingerprint, expected_name, expected_fingerprint } => write!(
                f,
                "checkpoint belongs to pipeline `{found_name}` (fingerprint {found_fingerprint}), not `{expected_name}` (fingerprint {expected_fingerprint}): the state layout differs; use another instance name or start from scratch"
            ),
            Decode { detail } => write!(f, "checkpoint does not decode: {detail}"),
            Encode { detail } => write!(f, "state cannot be encoded: {detail}"),
        }
    }
}

impl std::error::Error for CheckpointError {}

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

/// Where one stage's state lies in an encoded checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageSpan {
    /// The stage's name (`source_clocks` for the clocks of several sources).
    pub name: &'static str,
    /// Its bytes: the JSON value, or the binary field.
    pub range: std::ops::Range<usize>,
}

/// [`encode`], also telling where each stage's state lies in the bytes.
pub fn encode_staged<P: Pipeline>(
    pipeline: &P,
    codec: Codec,
    checkpoint_id: u64,
    timestamp: i64,
    positions: BTreeMap<String, u64>,
) -> Result<Encoded, CheckpointError> {
    let clock = pipeline.clock();
    let header = Header {
        format: FORMAT_NAME.to_string(),
        format_version: FORMAT_VERSION,
        pipeline: P::NAME.to_string(),
        fingerprint: to_hex(P::FINGERPRINT),
        checkpoint_id,
        timestamp,
        max_event_time: clock.max_event_time,
        watermark: clock.watermark,
        positions,
    };
    match codec {
        Codec::Json => {
            let mut out = serde_json::to_vec(&header).map_err(enc)?;
            // The stages go on as more fields of the header's object: `{header,stages}`.
            debug_assert!(out.last() == Some(&b'}'));
            out.pop();
            let mut w = StageWriter::continuing(Codec::Json, &mut out);
            pipeline.write_stages(&mut w)?;
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
            out.extend_from_slice(MAGIC);
            out.extend_from_slice(&(FORMAT_VERSION as u16).to_le_bytes());
            out.extend_from_slice(&[0u8; 12]);
            codec::write(Codec::Binary, &header, &mut out)?;
            let mut w = StageWriter::new(Codec::Binary, &mut out);
            pipeline.write_stages(&mut w)?;
            let stages = w.finish();
            let payload_len = (out.len() - BIN_HEADER_LEN) as u64;
            let crc = crc32fast::hash(&out[BIN_HEADER_LEN..]);
            out[6..14].copy_from_slice(&payload_len.to_le_bytes());
            out[14..18].copy_from_slice(&crc.to_le_bytes());
            Ok(Encoded { bytes: out, stages })
        }
    }
}

fn enc(e: impl fmt::Display) -> CheckpointError {
    CheckpointError::Encode {
        detail: e.to_string(),
    }
}

fn dec(e: impl fmt::Display) -> CheckpointError {
    CheckpointError::Decode {
        detail: e.to_string(),
    }
}

/// A checkpoint whose checksum and version are verified, not yet decoded into a pipeline.
#[derive(Debug, Clone)]
pub struct Verified<'a> {
    /// Its codec.
    pub codec: Codec,
    /// Its header.
    pub header: Header,
    /// The bytes holding the stages (JSON: the whole document; binary: after the header).
    pub stages: &'a [u8],
}

/// Checks codec marker, version, length and checksum, and reads the header.
///
/// This needs no pipeline type, so tools can list and verify any checkpoint.
pub fn verify(bytes: &[u8]) -> Result<Verified<'_>, CheckpointError> {
    if bytes.starts_with(MAGIC) {
        if bytes.len() < BIN_HEADER_LEN {
            return Err(CheckpointError::Truncated {
                expected: BIN_HEADER_LEN as u64,
                found: bytes.len() as u64,
            });
        }
        let version = u16::from_le_bytes([bytes[4], bytes[5]]) as u32;
        if version != FORMAT_VERSION {
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
        let (header, rest): (Header, _) = postcard::take_from_bytes(payload).map_err(dec)?;
        check_format(&header)?;
        Ok(Verified {
            codec: Codec::Binary,
            header,
            stages: rest,
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

fn check_format(h: &Header) -> Result<(), CheckpointError> {
    if h.format != FORMAT_NAME {
        return Err(CheckpointError::NotACheckpoint {
            detail: format!("format is `{}`", h.format),
        });
    }
    if h.format_version != FORMAT_VERSION {
        return Err(CheckpointError::UnsupportedVersion {
            found: h.format_version,
            supported: FORMAT_VERSION,
        });
    }
    Ok(())
}

/// Checks that a verified checkpoint was written by pipeline `P`.
pub fn check_pipeline<P: Pipeline>(h: &Header) -> Result<(), CheckpointError> {
    let expected = to_hex(P::FINGERPRINT);
    if h.pipeline != P::NAME || h.fingerprint != expected {
        return Err(CheckpointError::ForeignPipeline {
            found_name: h.pipeline.clone(),
            found_fingerprint: h.fingerprint.clone(),
            expected_name: P::NAME.to_string(),
            expected_fingerprint: expected,
        });
    }
    Ok(())
}

/// Verifies and decodes a checkpoint into a fresh pipeline `P`.
pub fn decode<P: Pipeline>(bytes: &[u8]) -> Result<(Header, P), CheckpointError> {
    let v = verify(bytes)?;
    check_pipeline::<P>(&v.header)?;
    let clock = Clock {
        max_event_time: v.header.max_event_time,
        watermark: v.header.watermark,
    };
    let p = P::decode_stages(v.codec, v.stages, clock)?;
    Ok((v.header, p))
}

/// Writes the stages of a pipeline one field at a time, remembering where each lies.
///
/// The bytes are exactly those of serializing one struct with a field per stage: a JSON
/// object keyed by stage name, or the postcard fields one after another. Generated
/// `write_stages` calls [`field`](Self::field) once per stage.
///
/// ```
/// use simplestream_runtime::envelope::StageWriter;
/// use simplestream_runtime::Codec;
/// let mut out = Vec::new();
/// let mut w = StageWriter::new(Codec::Json, &mut out);
/// w.field("counts", &[1, 2]).unwrap();
/// w.field("total", &3).unwrap();
/// let spans = w.finish();
/// assert_eq!(out, br#"{"counts":[1,2],"total":3}"#);
/// assert_eq!(&out[spans[1].range.clone()], b"3");
/// ```
#[derive(Debug)]
pub struct StageWriter<'a> {
    codec: Codec,
    out: &'a mut Vec<u8>,
    /// JSON: a `,` goes before the next field.
    comma: bool,
    /// JSON: this writer opened the object, so it closes it.
    close: bool,
    spans: Vec<StageSpan>,
}

impl<'a> StageWriter<'a> {
    /// A writer appending to `out` (JSON: a new object).
    pub fn new(codec: Codec, out: &'a mut Vec<u8>) -> Self {
        if codec == Codec::Json {
            out.push(b'{');
        }
        StageWriter {
            codec,
            out,
            comma: false,
            close: codec == Codec::Json,
            spans: Vec::new(),
        }
    }

    /// JSON: goes on with an object already open and holding fields (`out` ends inside
    /// it); [`finish`](Self::finish) leaves it open.
    fn continuing(codec: Codec, out: &'a mut Vec<u8>) -> Self {
        StageWriter {
            codec,
            out,
            comma: true,
            close: false,
            spans: Vec::new(),
        }
    }

    /// Writes one stage's state. `name` must be a plain identifier (it is not escaped).
    pub fn field<T: Serialize + ?Sized>(
        &mut self,
        name: &'static str,
        value: &T,
    ) -> Result<(), CheckpointError> {
        if self.codec == Codec::Json {
            if self.comma {
                self.out.push(b',');
            }
            self.comma = true;
            self.out.push(b'"');
            self.out.extend_from_slice(name.as_bytes());
            self.out.extend_from_slice(b"\":");
        }
        let start = self.out.len();
        codec::write(self.codec, value, self.out)?;
        self.spans.push(StageSpan {
            name,
            range: start..self.out.len(),
        });
        Ok(())
    }

    /// Ends the stages; returns where each one lies in the output.
    pub fn finish(self) -> Vec<StageSpan> {
        if self.close {
            self.out.push(b'}');
        }
        self.spans
    }
}

/// Helpers for generated `encode_stages`/`decode_stages`.
#[doc(hidden)]
pub mod codec {
    use super::*;

    /// Serializes a value in `codec`, appending to `out`.
    pub fn write<T: Serialize + ?Sized>(
        codec: Codec,
        value: &T,
        out: &mut Vec<u8>,
    ) -> Result<(), CheckpointError> {
        match codec {
            Codec::Json => serde_json::to_writer(&mut *out, value).map_err(enc),
            Codec::Binary => {
                // Straight into `out`: no intermediate buffer for large state.
                let buf = std::mem::take(out);
                *out = postcard::to_extend(value, buf).map_err(enc)?;
                Ok(())
            }
        }
    }

    /// Deserializes a value in `codec`; binary must use every byte.
    pub fn read<T: serde::de::DeserializeOwned>(
        codec: Codec,
        bytes: &[u8],
    ) -> Result<T, CheckpointError> {
        match codec {
            Codec::Json => serde_json::from_slice(bytes).map_err(dec),
            Codec::Binary => {
                let (v, rest) = postcard::take_from_bytes(bytes).map_err(dec)?;
                if !rest.is_empty() {
                    return Err(CheckpointError::Decode {
                        detail: format!("{} unexpected trailing bytes", rest.len()),
                    });
                }
                Ok(v)
            }
        }
    }
}

//! The two codecs of checkpoints (JSON and binary) and the types every layer above
//! shares: [`Codec`], [`CheckpointError`], and [`StageWriter`], which generated pipelines
//! write their state through. [`envelope`](crate::envelope) builds the checkpoint format
//! on these; [`pipeline`](crate::pipeline) only needs these.

use std::fmt;

use serde::{Deserialize, Serialize};

pub mod chunked;
pub(crate) mod compact;
pub mod floats;
pub(crate) mod raw;
use chunked::Chunked;
use floats::{FloatDe, Floats};

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
    /// Written by this pipeline before a change its state cannot follow: a stage gone,
    /// or a stage's state layout changed without a migration (see
    /// [`upgrade`](crate::upgrade)).
    Incompatible {
        /// The pipeline's name.
        pipeline: String,
        /// One line per stage that cannot be restored, with what to do.
        problems: Vec<String>,
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
                "checkpoint format version {found} is not supported by this build (it reads versions 1 to {supported}); upgrade SimpleStream or start from scratch"
            ),
            ForeignPipeline { found_name, found_fingerprint, expected_name, expected_fingerprint } => write!(
                f,
                "checkpoint belongs to pipeline `{found_name}` (fingerprint {found_fingerprint}), not `{expected_name}` (fingerprint {expected_fingerprint}): the state layout differs; use another instance name or start from scratch"
            ),
            Incompatible { pipeline, problems } => write!(
                f,
                "checkpoint of `{pipeline}` cannot be restored into this version of it: {}",
                problems.join("; ")
            ),
            Decode { detail } => write!(f, "checkpoint does not decode: {detail}"),
            Encode { detail } => write!(f, "state cannot be encoded: {detail}"),
        }
    }
}

impl std::error::Error for CheckpointError {}

/// Where one stage's state lies in an encoded checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageSpan {
    /// The stage's name (`source_clocks` for the clocks of several sources).
    pub name: &'static str,
    /// Its bytes: the JSON value, or the binary field.
    pub range: std::ops::Range<usize>,
}

pub(crate) fn enc(e: impl fmt::Display) -> CheckpointError {
    CheckpointError::Encode {
        detail: e.to_string(),
    }
}

pub(crate) fn dec(e: impl fmt::Display) -> CheckpointError {
    CheckpointError::Decode {
        detail: e.to_string(),
    }
}

/// Writes the stages of a pipeline one field at a time, remembering where each lies.
///
/// The bytes are exactly those of serializing one struct with a field per stage: a JSON
/// object keyed by stage name, or the postcard fields one after another. Generated
/// `write_stages` calls [`field`](Self::field) once per stage.
///
/// ```
/// use simplestream_runtime::codec::StageWriter;
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
    out: Out<'a>,
    /// JSON: a `,` goes before the next field.
    comma: bool,
    /// JSON: this writer opened the object, so it closes it.
    close: bool,
    spans: Vec<StageSpan>,
}

/// Where a [`StageWriter`] writes: all in memory, or a chunk at a time to a store.
#[derive(Debug)]
enum Out<'a> {
    Vec(&'a mut Vec<u8>),
    Chunked(Chunked<'a>),
}

impl Out<'_> {
    fn pos(&self) -> usize {
        match self {
            Out::Vec(v) => v.len(),
            Out::Chunked(c) => c.pos() as usize,
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        match self {
            Out::Vec(v) => v.extend_from_slice(bytes),
            // A failed store is reported by the writer's owner.
            Out::Chunked(c) => _ = c.push(bytes),
        }
    }
}

impl<'a> StageWriter<'a> {
    /// A writer appending to `out` (JSON: a new object).
    pub fn new(codec: Codec, out: &'a mut Vec<u8>) -> Self {
        if codec == Codec::Json {
            out.push(b'{');
        }
        Self::over(codec, Out::Vec(out), false)
    }

    /// JSON: goes on with an object already open and holding fields (`out` ends inside
    /// it); [`finish`](Self::finish) leaves it open.
    pub(crate) fn continuing(codec: Codec, out: &'a mut Vec<u8>) -> Self {
        Self::over(codec, Out::Vec(out), true)
    }

    /// [`continuing`](Self::continuing) for JSON, a writer going on after the header for
    /// binary, writing to a store a chunk at a time; [`into_chunked`](Self::into_chunked)
    /// gives the output back.
    pub(crate) fn chunked(codec: Codec, out: Chunked<'a>) -> Self {
        Self::over(codec, Out::Chunked(out), codec == Codec::Json)
    }

    /// Ends the stages of a [`chunked`](Self::chunked) writer: where each lies, and the
    /// output to go on with.
    pub(crate) fn into_chunked(self) -> (Vec<StageSpan>, Chunked<'a>) {
        match self.out {
            Out::Chunked(c) => (self.spans, c),
            Out::Vec(_) => unreachable!("only chunked writers are made by `chunked`"),
        }
    }

    fn over(codec: Codec, out: Out<'a>, continuing: bool) -> Self {
        StageWriter {
            codec,
            out,
            comma: continuing,
            close: codec == Codec::Json && !continuing,
            spans: Vec::new(),
        }
    }

    /// The codec it writes.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// Writes one stage's state. `name` must be a plain identifier (it is not escaped).
    pub fn field<T: Serialize + ?Sized>(
        &mut self,
        name: &'static str,
        value: &T,
    ) -> Result<(), CheckpointError> {
        if self.codec == Codec::Json {
            if self.comma {
                self.out.push(b",");
            }
            self.comma = true;
            self.out.push(b"\"");
            self.out.push(name.as_bytes());
            self.out.push(b"\":");
        }
        let start = self.out.pos();
        let written = match &mut self.out {
            Out::Vec(v) => write(self.codec, value, v),
            Out::Chunked(c) => write_chunked(self.codec, value, c),
        };
        written.map_err(|e| match e {
            CheckpointError::Encode { detail } => CheckpointError::Encode {
                detail: format!("stage `{name}`: {detail}"),
            },
            e => e,
        })?;
        self.spans.push(StageSpan {
            name,
            range: start..self.out.pos(),
        });
        Ok(())
    }

    /// Ends the stages; returns where each one lies in the output.
    pub fn finish(mut self) -> Vec<StageSpan> {
        if self.close {
            self.out.push(b"}");
        }
        self.spans
    }
}

/// [`write()`] onto a [`Chunked`] output.
fn write_chunked<T: Serialize + ?Sized>(
    codec: Codec,
    value: &T,
    out: &mut Chunked<'_>,
) -> Result<(), CheckpointError> {
    match codec {
        Codec::Json => serde_json::to_writer(&mut *out, &Floats(value)).map_err(enc),
        Codec::Binary => out.postcard(value).map_err(enc),
    }
}

/// Serializes a value in `codec`, appending to `out`. JSON writes non-finite floats as
/// the strings `"NaN"`, `"Infinity"` and `"-Infinity"` (see [`floats`]).
pub fn write<T: Serialize + ?Sized>(
    codec: Codec,
    value: &T,
    out: &mut Vec<u8>,
) -> Result<(), CheckpointError> {
    match codec {
        Codec::Json => {
            let start = out.len();
            // With raw text allowed: a value may write its text itself (`raw::serialize`).
            let fast = raw::allowing(|| {
                let mut ser = serde_json::Serializer::with_formatter(&mut *out, raw::Formatter);
                Floats(value).serialize(&mut ser)
            });
            if fast.is_ok() {
                return Ok(());
            }
            // Again with the path of the value that failed, for the message.
            out.truncate(start);
            let mut ser = serde_json::Serializer::new(&mut *out);
            serde_path_to_error::serialize(&Floats(value), &mut ser).map_err(|e| enc(at(&e)))
        }
        Codec::Binary => {
            // Straight into `out`: no intermediate buffer for large state.
            let buf = std::mem::take(out);
            *out = postcard::to_extend(value, buf).map_err(enc)?;
            Ok(())
        }
    }
}

/// Deserializes a value in `codec`; binary must use every byte. JSON reads back the
/// non-finite floats that [`write()`] writes.
pub fn read<T: serde::de::DeserializeOwned>(
    codec: Codec,
    bytes: &[u8],
) -> Result<T, CheckpointError> {
    match codec {
        Codec::Json => from_json(bytes).map_err(dec),
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

/// Reads JSON written by [`write()`] (or [`to_json_writer`]); errors name the path of the
/// value that failed, e.g. `per_customer.C001.amount: invalid type: null, expected f64`.
pub fn from_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    let fast = (|| {
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let v = T::deserialize(FloatDe(&mut de))?;
        de.end().map(|()| v)
    })();
    fast.or_else(|e: serde_json::Error| {
        // Again with the path of the value that failed, for the message.
        let mut de = serde_json::Deserializer::from_slice(bytes);
        match serde_path_to_error::deserialize(FloatDe(&mut de)) {
            Err(e) => Err(at(&e)),
            Ok(v) => de.end().map(|()| v).map_err(|_| e.to_string()),
        }
    })
}

/// Writes `value` as JSON with non-finite floats as strings, as checkpoints do (output
/// records use this, so a number never silently becomes `null`).
pub fn to_json_writer<W: std::io::Write, T: Serialize + ?Sized>(
    w: W,
    value: &T,
) -> serde_json::Result<()> {
    serde_json::to_writer(w, &Floats(value))
}

/// Appends what [`to_json_writer`] writes for `value` to `out`: a plain value (a row of
/// numbers and strings) by the compact writer, which copies punctuation and field names,
/// anything else by `serde_json`. On an error `out` is as it was.
pub fn json_line<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) -> serde_json::Result<()> {
    let start = out.len();
    if compact::write(out, value).is_ok() {
        return Ok(());
    }
    out.truncate(start);
    let r = to_json_writer(&mut *out, value);
    if r.is_err() {
        out.truncate(start);
    }
    r
}

/// `value` as a JSON value, with non-finite floats as strings (for display).
pub fn to_json_value<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<serde_json::Value> {
    serde_json::to_value(Floats(value))
}

/// An error with the path of the value it is about (`.` is the whole value).
fn at<E: fmt::Display>(e: &serde_path_to_error::Error<E>) -> String {
    let path = e.path().to_string();
    if path == "." {
        e.inner().to_string()
    } else {
        format!("at {path}: {}", e.inner())
    }
}

#[cfg(test)]
mod tests {
    use serde::ser::{Error as _, Serializer};

    #[derive(serde::Serialize)]
    struct Row {
        customer: String,
        window_start: i64,
        orders: u64,
        amount: f64,
    }

    #[derive(serde::Serialize)]
    enum Reason {
        Late,
    }

    #[derive(serde::Serialize)]
    struct LateRow {
        event: Row,
        reason: Reason,
    }

    struct Fails;

    impl serde::Serialize for Fails {
        fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
            Err(S::Error::custom("refused"))
        }
    }

    fn row(customer: &str, amount: f64) -> Row {
        Row {
            customer: customer.into(),
            window_start: -1_635_739_200_000,
            orders: u64::MAX,
            amount,
        }
    }

    fn check<T: serde::Serialize>(v: &T) {
        let mut want = Vec::new();
        super::to_json_writer(&mut want, v).unwrap();
        let mut got = b"before ".to_vec();
        super::json_line(&mut got, v).unwrap();
        assert_eq!(
            String::from_utf8(got).unwrap(),
            format!("before {}", String::from_utf8(want).unwrap())
        );
    }

    /// Rows (compact writer) and other values (enums and maps: serde_json) come out as
    /// `to_json_writer` writes them, appended to what the buffer held.
    #[test]
    fn json_line_writes_what_to_json_writer_writes() {
        for amount in [
            12.5,
            -0.0,
            1e300,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ] {
            check(&row("C\"001\\\n\u{e9}", amount));
        }
        check(&LateRow {
            event: row("C1", 1.0),
            reason: Reason::Late,
        });
        check(&serde_json::json!({"b": [1, 2.5], "a": null}));
    }

    /// A value that fails leaves the buffer as it was.
    #[test]
    fn a_failing_value_appends_nothing() {
        let mut out = b"kept".to_vec();
        assert!(super::json_line(&mut out, &(row("C1", 1.0), Fails)).is_err());
        assert_eq!(out, b"kept");
    }
}

//! Checkpoints encoded straight into a store through [`CheckpointStore::put_stream`]:
//! the same bytes as [`encode_staged`](super::encode_staged) and
//! [`encode_delta`](super::encode_delta), never whole in memory (the binary header's
//! length and checksum are filled in last).

use std::collections::BTreeMap;

use super::{header_of, Header, Kind, BIN_HEADER_LEN, FORMAT_NAME, FORMAT_VERSION, JSON_TRAILER};
use crate::codec::chunked::Chunked;
use crate::codec::{enc, CheckpointError, Codec, StageSpan, StageWriter};
use crate::delta::Version;
use crate::pipeline::Pipeline;
use crate::store::{CheckpointStore, PutStream, StoreError};

/// A checkpoint stored by streaming: its size and the CRC-32 of all its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Streamed {
    /// Bytes stored.
    pub size: u64,
    /// CRC-32 of the stored bytes (what a manifest or `latest` records).
    pub crc32: u32,
}

/// Why a streamed checkpoint was not stored (nothing is visible under its name then).
#[derive(Debug)]
pub enum StreamError {
    /// The state could not be encoded.
    Checkpoint(CheckpointError),
    /// The store failed.
    Store(StoreError),
}

/// Encodes a whole checkpoint of `pipeline` into `store` as `name`.
pub fn store_whole<P: Pipeline, S: CheckpointStore + ?Sized>(
    store: &mut S,
    name: &str,
    pipeline: &P,
    codec: Codec,
    checkpoint_id: u64,
    timestamp: i64,
    positions: BTreeMap<String, u64>,
) -> Result<Streamed, StreamError> {
    let header = header_of(pipeline, checkpoint_id, timestamp, positions, FORMAT_NAME);
    store_kind(store, name, Kind::Whole, codec, &header, |w| {
        pipeline.write_stages(w)
    })
}

/// Encodes a delta of `pipeline` since `since` into `store` as `name`.
#[allow(clippy::too_many_arguments)]
pub fn store_delta<P: Pipeline, S: CheckpointStore + ?Sized>(
    store: &mut S,
    name: &str,
    pipeline: &P,
    since: &[Version],
    codec: Codec,
    checkpoint_id: u64,
    timestamp: i64,
    positions: BTreeMap<String, u64>,
) -> Result<Streamed, StreamError> {
    let sink = store.put_stream(name).map_err(StreamError::Store)?;
    stream_delta(
        sink,
        pipeline,
        since,
        codec,
        checkpoint_id,
        timestamp,
        positions,
    )
    .map(|(s, _)| s)
}

/// [`store_delta`] into `sink` instead of a store's stream; also where each stage lies.
#[allow(clippy::too_many_arguments)]
pub(crate) fn stream_delta<P: Pipeline>(
    sink: Box<dyn PutStream + '_>,
    pipeline: &P,
    since: &[Version],
    codec: Codec,
    checkpoint_id: u64,
    timestamp: i64,
    positions: BTreeMap<String, u64>,
) -> Result<(Streamed, Vec<StageSpan>), StreamError> {
    let header = header_of(
        pipeline,
        checkpoint_id,
        timestamp,
        positions,
        Kind::Delta.format(),
    );
    stream_kind(sink, Kind::Delta, codec, &header, |w| {
        pipeline.write_stage_deltas(since, w)
    })
}

fn store_kind<S: CheckpointStore + ?Sized>(
    store: &mut S,
    name: &str,
    kind: Kind,
    codec: Codec,
    header: &Header,
    write: impl FnOnce(&mut StageWriter<'_>) -> Result<(), CheckpointError>,
) -> Result<Streamed, StreamError> {
    let sink = store.put_stream(name).map_err(StreamError::Store)?;
    stream_kind(sink, kind, codec, header, write).map(|(s, _)| s)
}

fn stream_kind(
    sink: Box<dyn PutStream + '_>,
    kind: Kind,
    codec: Codec,
    header: &Header,
    write: impl FnOnce(&mut StageWriter<'_>) -> Result<(), CheckpointError>,
) -> Result<(Streamed, Vec<StageSpan>), StreamError> {
    let out = Chunked::new(sink);
    let mut w = match codec {
        Codec::Json => json_head(out, header),
        Codec::Binary => binary_head(out, kind, header),
    }
    .map_err(StreamError::Checkpoint)?;
    let wrote = write(&mut w);
    let (stages, mut out) = w.into_chunked();
    // A store that failed also fails the encoder: the store's error is the one to tell.
    if let Some(e) = out.error() {
        return Err(StreamError::Store(e));
    }
    wrote.map_err(StreamError::Checkpoint)?;
    let crc32 = match codec {
        Codec::Json => json_tail(&mut out),
        Codec::Binary => binary_tail(&mut out, kind, &stages),
    };
    let crc32 = match (crc32, out.error()) {
        (_, Some(e)) => return Err(StreamError::Store(e)),
        (r, None) => r?,
    };
    let size = out.commit(&stages).map_err(StreamError::Store)?;
    Ok((Streamed { size, crc32 }, stages))
}

/// `{header` without its closing brace: the stages go on as more fields.
fn json_head<'a>(
    mut out: Chunked<'a>,
    header: &Header,
) -> Result<StageWriter<'a>, CheckpointError> {
    let mut head = serde_json::to_vec(header).map_err(enc)?;
    debug_assert!(head.last() == Some(&b'}'));
    head.pop();
    out.push(&head);
    Ok(StageWriter::chunked(Codec::Json, out))
}

/// The checksum over every byte before it, and the closing brace; the CRC-32 of all.
fn json_tail(out: &mut Chunked<'_>) -> Result<u32, StreamError> {
    let crc = out.checksum().finalize();
    out.push(JSON_TRAILER);
    out.push(format!("{crc:08x}\"}}\n").as_bytes());
    Ok(out.checksum().finalize())
}

/// The fixed header with its length and checksum blank, then the header in postcard.
fn binary_head<'a>(
    mut out: Chunked<'a>,
    kind: Kind,
    header: &Header,
) -> Result<StageWriter<'a>, CheckpointError> {
    out.push(kind.magic());
    out.push(&(FORMAT_VERSION as u16).to_le_bytes());
    out.push(&[0u8; 12]);
    out.checksum_from_here();
    out.postcard(header).map_err(enc)?;
    Ok(StageWriter::chunked(Codec::Binary, out))
}

/// The stage lengths, then the header's blanks filled in; the CRC-32 of all bytes.
fn binary_tail(
    out: &mut Chunked<'_>,
    kind: Kind,
    stages: &[StageSpan],
) -> Result<u32, StreamError> {
    let lens: Vec<u64> = stages.iter().map(|s| s.range.len() as u64).collect();
    let before = out.pos();
    out.postcard(&lens)
        .map_err(|e| StreamError::Checkpoint(enc(e)))?;
    let trailer_len = (out.pos() - before) as u32;
    out.push(&trailer_len.to_le_bytes());
    let payload_len = out.pos() - BIN_HEADER_LEN as u64;
    let payload = out.checksum();
    let crc = payload.clone().finalize();
    let mut fixed = [0u8; BIN_HEADER_LEN];
    fixed[..4].copy_from_slice(kind.magic());
    fixed[4..6].copy_from_slice(&(FORMAT_VERSION as u16).to_le_bytes());
    fixed[6..14].copy_from_slice(&payload_len.to_le_bytes());
    fixed[14..18].copy_from_slice(&crc.to_le_bytes());
    out.patch(6, &fixed[6..]).map_err(StreamError::Store)?;
    let mut all = crc32fast::Hasher::new();
    all.update(&fixed);
    all.combine(&payload);
    Ok(all.finalize())
}

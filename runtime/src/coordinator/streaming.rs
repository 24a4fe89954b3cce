//! With the disk backend, checkpoints go into the store as they are encoded
//! ([`CheckpointStore::put_stream`]), and deltas stored after the pause into a scratch
//! file first: a state larger than memory is never encoded in memory as a whole. The
//! memory backend keeps encoding in memory, which lets every checkpoint be decoded once
//! before it is stored.

use std::collections::BTreeMap;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

use super::{Coordinator, CoordinatorError};
use crate::codec::{Codec, StageSpan};
use crate::delta::Version;
use crate::envelope::{self, Encoded, StreamError, Streamed};
use crate::incremental::Piece;
use crate::pipeline::Pipeline;
use crate::spill::Scratch;
use crate::store::{read_chunks, CheckpointStore, PutStream, StoreError, StoreErrorKind};

impl<S: CheckpointStore> Coordinator<S> {
    /// The store to stream the next checkpoint into: with the disk backend, unless a
    /// background upload holds the store (the checkpoint is then encoded in memory).
    pub(super) fn streaming_store(&mut self) -> Option<&mut S> {
        crate::spill::disk_config()?;
        self.store.as_mut()
    }
}

/// The encoded bytes of a streamed checkpoint: none kept.
pub(super) fn nothing() -> Encoded {
    Encoded {
        bytes: Vec::new(),
        stages: Vec::new(),
    }
}

/// The manifest's piece for `name`, from its bytes or from what streaming measured.
pub(super) fn piece(name: &str, id: u64, encoded: &Encoded, streamed: Option<Streamed>) -> Piece {
    match streamed {
        Some(s) => Piece {
            name: name.to_string(),
            id,
            size: s.size,
            crc32: format!("{:08x}", s.crc32),
        },
        None => Piece::of(name, id, &encoded.bytes),
    }
}

pub(super) fn failed(e: StreamError) -> CoordinatorError {
    match e {
        StreamError::Checkpoint(e) => CoordinatorError::Checkpoint(e),
        StreamError::Store(e) => CoordinatorError::Store(e),
    }
}

/// A delta encoded during the pause into a scratch file of the state's working directory
/// (no fsync, nothing held in memory), copied into the store after the pause.
#[derive(Debug)]
pub struct Spooled {
    file: Scratch,
    stages: Vec<StageSpan>,
    written: Streamed,
}

/// Where a delta stored after the pause is encoded first: with the disk backend, a
/// scratch file in its working directory (in memory, a delta of millions of evicted
/// changes would not fit the budget); otherwise memory.
pub(super) fn spool_dir() -> Option<std::path::PathBuf> {
    crate::spill::disk_config().map(|c| c.dir.clone())
}

impl Spooled {
    /// Encodes a delta of `pipeline` into a new scratch file in `dir`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn delta<P: Pipeline>(
        dir: &Path,
        pipeline: &P,
        since: &[Version],
        codec: Codec,
        id: u64,
        now_ms: i64,
        positions: BTreeMap<String, u64>,
    ) -> Result<Spooled, CoordinatorError> {
        let file = Scratch::create(dir).map_err(|e| local(e, dir))?;
        let sink = Box::new(ScratchSink {
            file: &file,
            len: 0,
        });
        let (written, stages) =
            envelope::stream_delta(sink, pipeline, since, codec, id, now_ms, positions)
                .map_err(failed)?;
        Ok(Spooled {
            file,
            stages,
            written,
        })
    }

    /// Its size and CRC-32.
    pub(super) fn written(&self) -> Streamed {
        self.written
    }

    /// Copies the delta into `store` as `name`, a chunk at a time. Bytes that read back
    /// other than they were written are not stored.
    pub(super) fn upload<S: CheckpointStore + ?Sized>(
        &self,
        store: &mut S,
        name: &str,
    ) -> Result<(), StoreError> {
        const ACTION: &str = "copying a delta from its scratch file";
        let at = self.file.path().display().to_string();
        let mut sink = store.put_stream(name)?;
        let f = self
            .file
            .rewound()
            .map_err(|e| StoreError::new(StoreErrorKind::Other, ACTION, &at, e))?;
        let (len, crc) = read_chunks(
            f,
            |chunk| sink.write(chunk),
            |e| StoreError::io(ACTION, &at, &e),
        )?;
        if (len, crc) != (self.written.size, self.written.crc32) {
            let detail = format!(
                "read back {len} bytes with CRC-32 {crc:08x}, written {} bytes with {:08x}",
                self.written.size, self.written.crc32
            );
            return Err(StoreError::new(StoreErrorKind::Other, ACTION, at, detail));
        }
        sink.commit(&self.stages)
    }
}

fn local(e: String, dir: &Path) -> CoordinatorError {
    CoordinatorError::Store(StoreError::new(
        StoreErrorKind::Other,
        "creating a delta's scratch file",
        dir.display().to_string(),
        e,
    ))
}

/// A [`PutStream`] into a scratch file: its bytes are copied into a store later.
struct ScratchSink<'a> {
    file: &'a Scratch,
    len: u64,
}

impl ScratchSink<'_> {
    fn err(&self, e: std::io::Error) -> StoreError {
        StoreError::io(
            "writing a delta's scratch file",
            self.file.path().display().to_string(),
            &e,
        )
    }
}

impl PutStream for ScratchSink<'_> {
    fn write(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        let mut f = self.file.file();
        f.write_all(bytes).map_err(|e| self.err(e))?;
        self.len += bytes.len() as u64;
        Ok(())
    }

    fn patch(&mut self, offset: u64, bytes: &[u8]) -> Result<(), StoreError> {
        if offset.saturating_add(bytes.len() as u64) > self.len {
            let at = self.file.path().display().to_string();
            return Err(crate::store::past_end(&at, offset, bytes.len()));
        }
        let mut f = self.file.file();
        f.seek(SeekFrom::Start(offset))
            .and_then(|_| f.write_all(bytes))
            .and_then(|_| f.seek(SeekFrom::End(0)).map(|_| ()))
            .map_err(|e| self.err(e))
    }

    fn commit(self: Box<Self>, _: &[StageSpan]) -> Result<(), StoreError> {
        Ok(())
    }
}

//! With the disk backend, checkpoints go into the store as they are encoded
//! ([`CheckpointStore::put_stream`]): a state larger than memory is never encoded in
//! memory as a whole. The memory backend keeps encoding in memory, which lets every
//! checkpoint be decoded once before it is stored.

use super::{Coordinator, CoordinatorError};
use crate::envelope::{Encoded, StreamError, Streamed};
use crate::incremental::Piece;
use crate::store::CheckpointStore;

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

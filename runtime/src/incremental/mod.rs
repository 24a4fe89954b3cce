//! Incremental checkpoints: a checkpoint costs what changed, not what exists.
//!
//! With [`IncrementalConfig`] set on a [`Coordinator`](crate::Coordinator), a checkpoint
//! writes a delta (the entries changed since the previous checkpoint, and tombstones for
//! removed ones) as its own object, plus a small [`Manifest`] naming every piece a
//! restore needs: a whole checkpoint (the base) and the deltas since, with sizes and
//! checksums. Every so often (by delta count or size) a checkpoint is whole again, so a
//! restore never replays a long chain. Pieces are shared by the checkpoints that name
//! them; [`retention`] deletes a piece only once no retained checkpoint names it.

pub mod chain;
pub mod manifest;
pub mod retention;

pub use chain::{Chain, ChainError, IncrementalConfig};
pub use manifest::{Manifest, Piece};

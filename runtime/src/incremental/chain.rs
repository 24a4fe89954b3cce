//! The chain a checkpoint builds on (base, then deltas), when to start a new base, and
//! restoring a checkpoint from its manifest.

use std::fmt;

use crate::codec::CheckpointError;
use crate::delta::Version;
use crate::envelope::{self, Header};
use crate::fingerprint::to_hex;
use crate::incremental::manifest::{Manifest, Piece};
use crate::pipeline::Pipeline;
use crate::store::{CheckpointStore, StoreError};
use crate::upgrade::{RestoreOptions, StageAction};

/// When an incremental checkpoint writes a new base instead of a delta.
///
/// ```
/// use simplestream_runtime::incremental::IncrementalConfig;
/// let c = IncrementalConfig::default();
/// assert_eq!((c.max_deltas, c.max_delta_ratio), (10, 0.5));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct IncrementalConfig {
    /// A new base after this many deltas (a restore reads at most this many).
    pub max_deltas: usize,
    /// A new base once the deltas since the last one add up to more than this fraction
    /// of its size.
    pub max_delta_ratio: f64,
}

impl Default for IncrementalConfig {
    fn default() -> Self {
        IncrementalConfig {
            max_deltas: 10,
            max_delta_ratio: 0.5,
        }
    }
}

/// What the next incremental checkpoint builds on: the pieces of the last one, and the
/// pipeline's stage versions when it was taken.
#[derive(Debug, Clone, PartialEq)]
pub struct Chain {
    /// The base, then the deltas, in order.
    pub pieces: Vec<Piece>,
    /// [`Pipeline::stage_versions`] at the last piece.
    pub versions: Vec<Version>,
}

impl Chain {
    /// True if the next checkpoint should be whole: the chain is long or heavy enough, or
    /// `now` (the pipeline's versions) is not a later moment of the same state.
    pub fn wants_base(&self, config: &IncrementalConfig, now: &[Version]) -> bool {
        let deltas = self.pieces.len().saturating_sub(1);
        let base = self.pieces.first().map_or(0, |p| p.size) as f64;
        let delta_bytes: u64 = self.pieces.iter().skip(1).map(|p| p.size).sum();
        let same_history = self.versions.len() == now.len()
            && self
                .versions
                .iter()
                .zip(now)
                .all(|(a, b)| a.lineage == b.lineage && a.changes <= b.changes);
        !same_history
            || self.pieces.is_empty()
            || deltas >= config.max_deltas
            || delta_bytes as f64 > config.max_delta_ratio * base
    }
}

/// Why a checkpoint's pieces could not be restored.
#[derive(Debug)]
pub enum ChainError {
    /// A piece could not be read.
    Store(StoreError),
    /// A piece (or the manifest) is bad.
    Checkpoint(CheckpointError),
}

impl fmt::Display for ChainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChainError::Store(e) => write!(f, "{e}"),
            ChainError::Checkpoint(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ChainError {}

impl From<StoreError> for ChainError {
    fn from(e: StoreError) -> Self {
        ChainError::Store(e)
    }
}
impl From<CheckpointError> for ChainError {
    fn from(e: CheckpointError) -> Self {
        ChainError::Checkpoint(e)
    }
}

fn bad(detail: String) -> ChainError {
    ChainError::Checkpoint(CheckpointError::Decode { detail })
}

/// Reads piece `p` and checks it is the one the manifest names.
fn read_piece<S: CheckpointStore + ?Sized>(store: &S, p: &Piece) -> Result<Vec<u8>, ChainError> {
    let bytes = store.get(&p.name)?;
    p.check(&bytes).map_err(bad)?;
    Ok(bytes)
}

/// Restores the checkpoint whose manifest is `manifest`: the base, then each delta in
/// order, every piece checked against the manifest's size and checksum and then its
/// own; stages are matched to `P`'s as [`envelope::decode_with`] does. Returns the last
/// delta's header, the pipeline, the pieces and what the restore did with each stage.
pub fn restore<P: Pipeline, S: CheckpointStore + ?Sized>(
    store: &S,
    manifest: &[u8],
    opts: &RestoreOptions,
) -> Result<(Header, P, Vec<Piece>, Vec<StageAction>), ChainError> {
    let m = Manifest::decode(manifest)?;
    if m.pipeline != P::name() {
        return Err(CheckpointError::ForeignPipeline {
            found_name: m.pipeline,
            found_fingerprint: m.fingerprint,
            expected_name: P::name().into(),
            expected_fingerprint: to_hex(P::fingerprint()),
        }
        .into());
    }
    let (base, deltas) = m
        .pieces
        .split_first()
        .expect("decode checks for two pieces");
    let r = envelope::decode_with::<P>(&read_piece(store, base)?, opts)?;
    let (mut header, mut pipeline) = (r.header, r.pipeline);
    check_id(&header, base)?;
    for d in deltas {
        header = envelope::apply_delta_with(&read_piece(store, d)?, &mut pipeline, opts)?;
        check_id(&header, d)?;
    }
    Ok((header, pipeline, m.pieces, r.actions))
}

fn check_id(h: &Header, p: &Piece) -> Result<(), ChainError> {
    if h.checkpoint_id != p.id {
        return Err(bad(format!(
            "piece {} holds checkpoint #{}, the manifest says #{}",
            p.name, h.checkpoint_id, p.id
        )));
    }
    Ok(())
}

/// Checks every piece a manifest names (sizes, checksums, formats) without a pipeline
/// type; returns the newest piece's header and codec.
pub fn verify<S: CheckpointStore + ?Sized>(
    store: &S,
    manifest: &[u8],
) -> Result<(Header, crate::Codec), ChainError> {
    let m = Manifest::decode(manifest)?;
    let (base, deltas) = m
        .pieces
        .split_first()
        .expect("decode checks for two pieces");
    let bytes = read_piece(store, base)?;
    let v = envelope::verify(&bytes)?;
    let (mut header, mut codec) = (v.header, v.codec);
    check_id(&header, base)?;
    for d in deltas {
        let bytes = read_piece(store, d)?;
        let v = envelope::verify_delta(&bytes)?;
        (header, codec) = (v.header, v.codec);
        check_id(&header, d)?;
    }
    if header.pipeline != m.pipeline || header.fingerprint != m.fingerprint {
        return Err(bad(
            "the pieces belong to another pipeline than the manifest".into(),
        ));
    }
    Ok((header, codec))
}

//! The manifest of an incremental checkpoint: every piece its restore needs, with sizes
//! and checksums, itself checksummed.

use serde::{Deserialize, Serialize};

use crate::codec::{dec, enc, CheckpointError};

/// Value of the `format` field of manifests.
pub const MANIFEST_FORMAT: &str = "simplestream-manifest";
const TRAILER: &[u8] = b",\"checksum\":\"crc32:";

/// One stored piece of a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Piece {
    /// Its name in the store.
    pub name: String,
    /// The id of the checkpoint that wrote it.
    pub id: u64,
    /// Size in bytes.
    pub size: u64,
    /// CRC-32 of its bytes, 8 hex digits.
    pub crc32: String,
}

impl Piece {
    /// The piece describing `bytes` stored as `name` by checkpoint `id`.
    pub fn of(name: &str, id: u64, bytes: &[u8]) -> Piece {
        Piece {
            name: name.to_string(),
            id,
            size: bytes.len() as u64,
            crc32: format!("{:08x}", crc32fast::hash(bytes)),
        }
    }

    /// Checks that `bytes` are this piece.
    pub fn check(&self, bytes: &[u8]) -> Result<(), String> {
        let crc = format!("{:08x}", crc32fast::hash(bytes));
        if bytes.len() as u64 != self.size || crc != self.crc32 {
            return Err(format!(
                "piece {} is not the one the manifest names ({} bytes, crc32 {crc}; the manifest says {} bytes, crc32 {})",
                self.name,
                bytes.len(),
                self.size,
                self.crc32
            ));
        }
        Ok(())
    }
}

/// Everything a restore of one incremental checkpoint reads: a whole checkpoint (the
/// base), then the deltas since, in order; the last piece is the checkpoint's own delta.
///
/// ```
/// use simplestream_runtime::incremental::{Manifest, Piece};
/// let m = Manifest::new("Orders", "00ff", 3, 0, vec![
///     Piece::of("checkpoint_19700101_000000_000-000001.bin", 1, b"base"),
///     Piece::of("checkpoint_19700101_000000_000-000003.delta.bin", 3, b"delta"),
/// ]);
/// let bytes = m.encode().unwrap();
/// assert_eq!(Manifest::decode(&bytes).unwrap(), m);
/// let mut bad = bytes.clone();
/// bad[40] ^= 1;
/// assert!(Manifest::decode(&bad).is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`MANIFEST_FORMAT`].
    pub format: String,
    /// [`FORMAT_VERSION`](crate::envelope::FORMAT_VERSION) of the writer.
    pub format_version: u32,
    /// Name of the pipeline.
    pub pipeline: String,
    /// Its fingerprint.
    pub fingerprint: String,
    /// The checkpoint's id.
    pub checkpoint_id: u64,
    /// When it was taken, ms.
    pub timestamp: i64,
    /// The base, then the deltas in order.
    pub pieces: Vec<Piece>,
}

impl Manifest {
    /// A manifest in the current format.
    pub fn new(
        pipeline: &str,
        fingerprint: &str,
        checkpoint_id: u64,
        timestamp: i64,
        pieces: Vec<Piece>,
    ) -> Self {
        Manifest {
            format: MANIFEST_FORMAT.into(),
            format_version: crate::envelope::FORMAT_VERSION,
            pipeline: pipeline.into(),
            fingerprint: fingerprint.into(),
            checkpoint_id,
            timestamp,
            pieces,
        }
    }

    /// One JSON object with a CRC-32 of every byte before it, as JSON checkpoints have.
    pub fn encode(&self) -> Result<Vec<u8>, CheckpointError> {
        let mut out = serde_json::to_vec(self).map_err(enc)?;
        out.pop();
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(TRAILER);
        out.extend_from_slice(format!("{crc:08x}\"}}\n").as_bytes());
        Ok(out)
    }

    /// Checks the checksum, format and version, and reads the manifest.
    pub fn decode(bytes: &[u8]) -> Result<Manifest, CheckpointError> {
        let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
        let tail = TRAILER.len() + 8 + 2;
        if body.len() < tail
            || !body[body.len() - tail..].starts_with(TRAILER)
            || !body.ends_with(b"\"}")
        {
            return Err(CheckpointError::Decode {
                detail: "the manifest has no checksum trailer: it was cut off or is not a manifest"
                    .into(),
            });
        }
        let split = body.len() - tail;
        let stored = std::str::from_utf8(&body[split + TRAILER.len()..body.len() - 2])
            .ok()
            .and_then(|h| u32::from_str_radix(h, 16).ok())
            .ok_or_else(|| dec("the manifest's checksum is not hex"))?;
        let computed = crc32fast::hash(&body[..split]);
        if stored != computed {
            return Err(CheckpointError::ChecksumMismatch { stored, computed });
        }
        let m: Manifest = serde_json::from_slice(body).map_err(dec)?;
        if m.format != MANIFEST_FORMAT {
            return Err(CheckpointError::NotACheckpoint {
                detail: format!("format is `{}`, not a manifest", m.format),
            });
        }
        // The manifest itself is the same in every version; its pieces say theirs.
        if !(1..=crate::envelope::FORMAT_VERSION).contains(&m.format_version) {
            return Err(CheckpointError::UnsupportedVersion {
                found: m.format_version,
                supported: crate::envelope::FORMAT_VERSION,
            });
        }
        if m.pieces.len() < 2 || m.pieces.last().map(|p| p.id) != Some(m.checkpoint_id) {
            return Err(dec(
                "the manifest must name a base and at least this checkpoint's own delta",
            ));
        }
        Ok(m)
    }
}

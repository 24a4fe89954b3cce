//! Writing a checkpoint piece by piece ([`CheckpointStore::put_stream`]), so a state
//! larger than memory is never encoded in memory as a whole.

use super::{CheckpointStore, StageSpan, StoreError, StoreErrorKind};

/// A checkpoint being written in pieces. Nothing is visible under its name until
/// [`commit`](Self::commit); dropped without a commit, it leaves nothing behind.
///
/// ```
/// use simplestream_runtime::store::{CheckpointStore, MemoryStore};
/// let mut s = MemoryStore::new();
/// let mut w = s.put_stream("checkpoint_a.bin").unwrap();
/// w.write(b"??llo, ").unwrap();
/// w.write(b"world").unwrap();
/// w.patch(0, b"he").unwrap();
/// w.commit(&[]).unwrap();
/// assert_eq!(s.get("checkpoint_a.bin").unwrap(), b"hello, world");
/// ```
pub trait PutStream {
    /// Appends `bytes`.
    fn write(&mut self, bytes: &[u8]) -> Result<(), StoreError>;
    /// Overwrites bytes already written, from `offset` (a header filled in last).
    fn patch(&mut self, offset: u64, bytes: &[u8]) -> Result<(), StoreError>;
    /// Stores what was written durably and atomically, as
    /// [`put_staged`](CheckpointStore::put_staged) would with these `stages`.
    fn commit(self: Box<Self>, stages: &[StageSpan]) -> Result<(), StoreError>;
}

/// The default [`PutStream`]: the bytes gathered in memory, stored at the commit. For
/// stores whose writes are one request anyway.
pub(crate) struct Buffered<'a, S: ?Sized> {
    pub(crate) store: &'a mut S,
    pub(crate) name: String,
    pub(crate) bytes: Vec<u8>,
}

impl<S: CheckpointStore + ?Sized> PutStream for Buffered<'_, S> {
    fn write(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        self.bytes.extend_from_slice(bytes);
        Ok(())
    }

    fn patch(&mut self, offset: u64, bytes: &[u8]) -> Result<(), StoreError> {
        let at = offset as usize;
        match self.bytes.get_mut(at..at.saturating_add(bytes.len())) {
            Some(old) => old.copy_from_slice(bytes),
            None => return Err(past_end(&self.name, offset, bytes.len())),
        }
        Ok(())
    }

    fn commit(self: Box<Self>, stages: &[StageSpan]) -> Result<(), StoreError> {
        self.store.put_staged(&self.name, &self.bytes, stages)
    }
}

/// A patch of bytes not written yet: a caller's mistake, reported rather than padded.
pub(crate) fn past_end(name: &str, offset: u64, len: usize) -> StoreError {
    StoreError::new(
        StoreErrorKind::Invalid,
        "patching checkpoint",
        name,
        format!("{len} bytes at {offset} reach past what was written"),
    )
}

/// Reads `r` to its end a chunk (1 MiB) at a time, handing each chunk to `each`; returns
/// the length and CRC-32 of all it read. A checkpoint larger than memory is checked or
/// copied this way.
pub(crate) fn read_chunks<E>(
    mut r: impl std::io::Read,
    mut each: impl FnMut(&[u8]) -> Result<(), E>,
    read_failed: impl Fn(std::io::Error) -> E,
) -> Result<(u64, u32), E> {
    let mut buf = vec![0u8; 1 << 20];
    let (mut len, mut crc) = (0u64, crc32fast::Hasher::new());
    loop {
        match r.read(&mut buf) {
            Ok(0) => return Ok((len, crc.finalize())),
            Ok(n) => {
                crc.update(&buf[..n]);
                len += n as u64;
                each(&buf[..n])?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(read_failed(e)),
        }
    }
}

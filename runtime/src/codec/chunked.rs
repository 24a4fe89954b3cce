//! [`Chunked`]: encoded bytes handed to a store's [`PutStream`] a chunk at a time as they
//! are produced, so a checkpoint of a state larger than memory is never whole in memory.

use std::fmt;

use postcard::ser_flavors::Flavor;
use serde::Serialize;

use crate::store::{PutStream, StageSpan, StoreError};

/// Bytes held before they go to the store.
const CHUNK: usize = 1 << 20;

/// An encoder's output going to a [`PutStream`], with a CRC-32 of the bytes from a chosen
/// offset on (the envelope's checksum).
pub struct Chunked<'s> {
    sink: Box<dyn PutStream + 's>,
    buf: Vec<u8>,
    /// Bytes already given to the sink.
    flushed: u64,
    /// Bytes before this offset are not in `crc`.
    crc_from: u64,
    crc: crc32fast::Hasher,
    /// The sink's error, once it failed: nothing more is written.
    failed: Option<StoreError>,
}

impl fmt::Debug for Chunked<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Chunked {{ at: {} }}", self.pos())
    }
}

impl<'s> Chunked<'s> {
    /// Output to `sink`, the checksum taken from the first byte.
    pub fn new(sink: Box<dyn PutStream + 's>) -> Self {
        Chunked {
            sink,
            buf: Vec::with_capacity(CHUNK + 4096),
            flushed: 0,
            crc_from: 0,
            crc: crc32fast::Hasher::new(),
            failed: None,
        }
    }

    /// Bytes written so far.
    pub fn pos(&self) -> u64 {
        self.flushed + self.buf.len() as u64
    }

    /// Leaves the bytes written so far (nothing may have gone to the sink yet) out of
    /// the checksum.
    pub fn checksum_from_here(&mut self) {
        debug_assert_eq!(self.flushed, 0);
        self.crc_from = self.pos();
    }

    /// The checksum of the bytes from the chosen offset up to now.
    pub fn checksum(&self) -> crc32fast::Hasher {
        let mut h = self.crc.clone();
        h.update(self.unhashed());
        h
    }

    fn unhashed(&self) -> &[u8] {
        let skip = self.crc_from.saturating_sub(self.flushed) as usize;
        &self.buf[skip.min(self.buf.len())..]
    }

    /// Appends `bytes`; false once the sink failed ([`error`](Self::error) says why).
    pub fn push(&mut self, bytes: &[u8]) -> bool {
        self.buf.extend_from_slice(bytes);
        self.buf.len() < CHUNK || self.flush()
    }

    fn flush(&mut self) -> bool {
        if self.failed.is_some() {
            return false;
        }
        let from = self.buf.len() - self.unhashed().len();
        self.crc.update(&self.buf[from..]);
        if let Err(e) = self.sink.write(&self.buf) {
            self.failed = Some(e);
            return false;
        }
        self.flushed += self.buf.len() as u64;
        self.buf.clear();
        true
    }

    /// Overwrites bytes written before, outside the checksummed range (a header).
    pub fn patch(&mut self, offset: u64, bytes: &[u8]) -> Result<(), StoreError> {
        debug_assert!(offset + bytes.len() as u64 <= self.crc_from);
        if offset >= self.flushed {
            let at = (offset - self.flushed) as usize;
            self.buf[at..at + bytes.len()].copy_from_slice(bytes);
            return Ok(());
        }
        self.sink.patch(offset, bytes)
    }

    /// The sink's error, if it failed.
    pub fn error(&mut self) -> Option<StoreError> {
        self.failed.take()
    }

    /// Writes what is left and commits: the stored object holds every byte written.
    pub fn commit(mut self, stages: &[StageSpan]) -> Result<u64, StoreError> {
        if !self.buf.is_empty() && !self.flush() {
            return Err(self.failed.take().expect("flush failed"));
        }
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        let len = self.flushed;
        self.sink.commit(stages)?;
        Ok(len)
    }

    /// Serializes `value` in postcard onto the output.
    pub fn postcard<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), postcard::Error> {
        postcard::serialize_with_flavor(value, Postcard(self))
    }
}

impl std::io::Write for Chunked<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        if self.push(bytes) {
            Ok(bytes.len())
        } else {
            Err(std::io::Error::other("the checkpoint store failed"))
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// postcard's output into a [`Chunked`].
struct Postcard<'c, 's>(&'c mut Chunked<'s>);

impl Flavor for Postcard<'_, '_> {
    type Output = ();

    #[inline]
    fn try_push(&mut self, b: u8) -> postcard::Result<()> {
        self.try_extend(&[b])
    }

    #[inline]
    fn try_extend(&mut self, bytes: &[u8]) -> postcard::Result<()> {
        if self.0.push(bytes) {
            Ok(())
        } else {
            Err(postcard::Error::SerializeBufferFull)
        }
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

#[cfg(all(test, feature = "native"))]
mod tests {
    use super::*;
    use crate::store::{CheckpointStore, FileStore, FileStoreOptions};

    /// Three chunks to a file: the header is patched after it went to disk, the
    /// checksum leaves it out, and the file holds every byte in order.
    #[test]
    fn chunks_reach_the_file_in_order_and_the_header_is_patched_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = FileStore::open(dir.path(), "i", FileStoreOptions::default()).unwrap();
        let body: Vec<u8> = (0..(5 * CHUNK / 2) as u32)
            .map(|i| (i % 251) as u8)
            .collect();
        let mut out = Chunked::new(store.put_stream("checkpoint_x.bin").unwrap());
        out.push(&[0; 8]);
        out.checksum_from_here();
        for piece in body.chunks(70_001) {
            assert!(out.push(piece));
        }
        out.postcard(&(300u32, "tail")).unwrap();
        let crc = out.checksum().finalize();
        out.patch(2, b"HEAD").unwrap();
        let len = out.commit(&[]).unwrap();
        let mut expected = vec![0, 0, b'H', b'E', b'A', b'D', 0, 0];
        expected.extend_from_slice(&body);
        expected.extend_from_slice(&postcard::to_allocvec(&(300u32, "tail")).unwrap());
        assert_eq!(crc, crc32fast::hash(&expected[8..]));
        assert_eq!(len, expected.len() as u64);
        assert!(store.get("checkpoint_x.bin").unwrap() == expected);
    }
}

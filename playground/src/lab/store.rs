//! Where a lab keeps things: checkpoints, and the side records that live outside the
//! pipeline and survive its crashes.

use std::collections::BTreeMap;

use simplestream::store::{StoreError, StoredEntry};
use simplestream::{CheckpointStore, Codec, MemoryStore};

/// Side record: the events written into the source by hand.
pub const SOURCE_KEY: &str = "source.json";
/// Side record: the sink's output, one JSON line per record, after a first line
/// `{"first":N}` saying how many older records were compacted away.
pub const OUTPUT_KEY: &str = "output.jsonl";

/// A checkpoint store the playground can use: the runtime's [`CheckpointStore`], plus a
/// place for the source's hand-written events and the sink's output (which live outside
/// the pipeline and survive its crashes), and a way to delete everything.
pub trait PlayStore: CheckpointStore + Clone + 'static {
    /// Reads a side record (`source.json`, `output.jsonl`).
    fn get_extra(&self, key: &str) -> Option<String>;
    /// Writes a side record.
    fn put_extra(&mut self, key: &str, value: &str) -> Result<(), StoreError>;
    /// Deletes every checkpoint and the `latest` record (not the side records).
    fn clear_checkpoints(&mut self) -> Result<(), StoreError>;
    /// Things the store did on its own since the last call (e.g. pruned old checkpoints
    /// to make room), for the log.
    fn take_notes(&mut self) -> Vec<String> {
        Vec::new()
    }
    /// How a checkpoint of this codec is kept, for the checkpoint list.
    fn stored_as(&self, codec: Codec) -> &'static str {
        let _ = codec;
        "bytes"
    }
    /// Storage used and available, for display.
    fn usage(&self) -> Option<String> {
        None
    }
}

/// A [`PlayStore`] in memory: for native tests. Cloning it copies it, so a clone handed
/// to a new [`Lab`] is what a reloaded page would find.
#[derive(Debug, Clone, Default)]
pub struct MemoryPlayStore {
    /// The checkpoints.
    pub checkpoints: MemoryStore,
    /// The side records.
    pub extra: BTreeMap<String, String>,
}

impl CheckpointStore for MemoryPlayStore {
    fn location(&self) -> String {
        self.checkpoints.location()
    }
    fn put(&mut self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        self.checkpoints.put(name, bytes)
    }
    fn get(&self, name: &str) -> Result<Vec<u8>, StoreError> {
        self.checkpoints.get(name)
    }
    fn list(&self) -> Result<Vec<StoredEntry>, StoreError> {
        self.checkpoints.list()
    }
    fn delete(&mut self, name: &str) -> Result<(), StoreError> {
        self.checkpoints.delete(name)
    }
    fn put_latest(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        self.checkpoints.put_latest(bytes)
    }
    fn get_latest(&self) -> Result<Option<Vec<u8>>, StoreError> {
        self.checkpoints.get_latest()
    }
}

impl PlayStore for MemoryPlayStore {
    fn get_extra(&self, key: &str) -> Option<String> {
        self.extra.get(key).cloned()
    }
    fn put_extra(&mut self, key: &str, value: &str) -> Result<(), StoreError> {
        self.extra.insert(key.to_string(), value.to_string());
        Ok(())
    }
    fn clear_checkpoints(&mut self) -> Result<(), StoreError> {
        self.checkpoints = MemoryStore::new();
        Ok(())
    }
}

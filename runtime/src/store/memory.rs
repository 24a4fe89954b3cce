use std::collections::BTreeMap;

use super::{validate_checkpoint_name, CheckpointStore, StoreError, StoreErrorKind, StoredEntry};

/// Checkpoints in memory: for tests, and for programs that only need to survive a
/// restart of a pipeline inside one process.
#[derive(Debug, Default, Clone)]
pub struct MemoryStore {
    files: BTreeMap<String, Vec<u8>>,
    latest: Option<Vec<u8>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Direct access to a stored checkpoint, to simulate corruption in tests.
    pub fn bytes_mut(&mut self, name: &str) -> Option<&mut Vec<u8>> {
        self.files.get_mut(name)
    }

    /// Direct access to the `latest` record.
    pub fn latest_mut(&mut self) -> &mut Option<Vec<u8>> {
        &mut self.latest
    }
}

impl CheckpointStore for MemoryStore {
    fn location(&self) -> String {
        "memory".into()
    }
    fn put(&mut self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        validate_checkpoint_name(name, "writing checkpoint", "memory")?;
        self.files.insert(name.to_string(), bytes.to_vec());
        Ok(())
    }
    fn get(&self, name: &str) -> Result<Vec<u8>, StoreError> {
        validate_checkpoint_name(name, "reading checkpoint", "memory")?;
        self.files.get(name).cloned().ok_or_else(|| {
            StoreError::new(
                StoreErrorKind::NotFound,
                "reading checkpoint",
                name,
                "no such checkpoint",
            )
        })
    }
    fn list(&self) -> Result<Vec<StoredEntry>, StoreError> {
        Ok(self
            .files
            .iter()
            .map(|(n, b)| StoredEntry {
                name: n.clone(),
                size: b.len() as u64,
            })
            .collect())
    }
    fn delete(&mut self, name: &str) -> Result<(), StoreError> {
        validate_checkpoint_name(name, "deleting checkpoint", "memory")?;
        self.files.remove(name);
        Ok(())
    }
    fn put_latest(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        self.latest = Some(bytes.to_vec());
        Ok(())
    }
    fn get_latest(&self) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.latest.clone())
    }
}

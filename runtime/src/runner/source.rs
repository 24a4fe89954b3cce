//! Where events come from: [`Source`], implemented by files and (feature `kafka`) topics.

use std::collections::BTreeMap;

use super::input::LineReader;

/// An input whose position a checkpoint saves, so that a restart resumes there.
///
/// ```
/// use std::collections::BTreeMap;
/// use simplestream_runtime::runner::{input::LineReader, source::Source};
/// let dir = tempfile::tempdir().unwrap();
/// std::fs::write(dir.path().join("in"), b"{}\n").unwrap();
/// let file = std::fs::File::open(dir.path().join("in")).unwrap();
/// let mut r = LineReader::new(file, 0, 1, 1 << 20, false).unwrap();
/// let mut pos = BTreeMap::new();
/// r.save_positions(&mut pos).unwrap();
/// assert_eq!(pos["source.offset"], 0);
/// ```
pub trait Source {
    /// Saves where the next event comes from (`source.*` keys).
    fn save_positions(&mut self, positions: &mut BTreeMap<String, u64>) -> Result<(), String>;
}

impl Source for LineReader {
    fn save_positions(&mut self, positions: &mut BTreeMap<String, u64>) -> Result<(), String> {
        positions.insert("source.offset".into(), self.offset);
        positions.insert("source.line".into(), self.line);
        if self.pending_newline {
            positions.insert("source.pending_newline".into(), 1);
        }
        self.save_tail(positions)?;
        self.save_file_id(positions)
    }
}

#[cfg(feature = "kafka")]
impl<E: serde::de::DeserializeOwned> Source for super::kafka::KafkaSource<E> {
    fn save_positions(&mut self, positions: &mut BTreeMap<String, u64>) -> Result<(), String> {
        super::kafka::KafkaSource::save_positions(self, positions);
        Ok(())
    }
}

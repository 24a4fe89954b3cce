//! Where output rows go: [`Sink`], implemented by files and (feature `kafka`) topics.

use std::collections::BTreeMap;

use super::output::{SinkFile, WriteError};

/// The end of an output or input error that no retry can mend (a topic deleted while
/// running): the run stops at once instead of retrying at the next checkpoint.
pub const STOPPED: &str = "; stopped, the last checkpoint is intact";

/// An output the runner can roll back to a checkpoint: rows are appended, a checkpoint
/// makes them durable and saves what it needs under a key (`output`, `late`,
/// `dead_letter`) in its positions, and a restart from it leaves the output holding each
/// row once.
///
/// ```
/// use std::collections::BTreeMap;
/// use simplestream_runtime::runner::output::SinkFile;
/// use simplestream_runtime::runner::sink::Sink;
/// let dir = tempfile::tempdir().unwrap();
/// let claimed = SinkFile::claim(&dir.path().join("o"), "output", &BTreeMap::new()).unwrap();
/// let mut out: Box<dyn Sink> = Box::new(claimed.open().unwrap());
/// out.write_line(b"{}").unwrap();
/// let mut pos = BTreeMap::new();
/// out.commit_into("output", &mut pos).unwrap();
/// assert_eq!(pos["output.len"], 3);
/// ```
pub trait Sink {
    /// Appends one row.
    fn write_line(&mut self, line: &[u8]) -> Result<(), String>;
    /// Appends one row that `encode` appends to the buffer it is given: a file's own
    /// buffer, so the row is encoded in place; other outputs encode into `scratch` and
    /// [`write_line`](Self::write_line) it.
    fn write_with(
        &mut self,
        scratch: &mut Vec<u8>,
        encode: &mut dyn FnMut(&mut Vec<u8>) -> Result<(), String>,
    ) -> Result<(), String> {
        scratch.clear();
        encode(scratch)?;
        self.write_line(scratch)
    }
    /// True if rows are placed by their key (see [`write_keyed`](Self::write_keyed)):
    /// only then does the runner find each row's key.
    fn keyed(&self) -> bool {
        false
    }
    /// Appends one row with its key (`None`: it has none), which a keyed output uses to
    /// place it.
    fn write_keyed(&mut self, key: Option<&[u8]>, line: &[u8]) -> Result<(), String> {
        let _ = key;
        self.write_line(line)
    }
    /// Makes every row durable and saves the output's position under `key`.
    fn commit_into(
        &mut self,
        key: &str,
        positions: &mut BTreeMap<String, u64>,
    ) -> Result<(), String>;
    /// Does a checkpoint's `positions` already record this output as this run's?
    fn recorded_in(&self, key: &str, positions: &BTreeMap<String, u64>) -> bool;
    /// Bytes (file) or rows (topic) written.
    fn len(&self) -> u64;
    /// True if nothing was written.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Path or URL, for messages.
    fn describe(&self) -> String;
    /// Hands buffered rows on (to the OS, or to Kafka) without waiting for them to be
    /// durable: a followed input gone quiet shows its last rows now, not at the next
    /// checkpoint. A restart still cuts back or skips what no checkpoint recorded.
    fn flush(&mut self) -> Result<(), String>;
}

impl Sink for SinkFile {
    fn write_line(&mut self, line: &[u8]) -> Result<(), String> {
        SinkFile::write_line(self, line)
            .map_err(|e| format!("writing {}: {e}", self.path().display()))
    }
    fn write_with(
        &mut self,
        _scratch: &mut Vec<u8>,
        encode: &mut dyn FnMut(&mut Vec<u8>) -> Result<(), String>,
    ) -> Result<(), String> {
        SinkFile::write_with(self, encode).map_err(|e| match e {
            WriteError::Encode(e) => e,
            WriteError::Io(e) => format!("writing {}: {e}", self.path().display()),
        })
    }
    fn commit_into(
        &mut self,
        key: &str,
        positions: &mut BTreeMap<String, u64>,
    ) -> Result<(), String> {
        SinkFile::commit_into(self, key, positions)
    }
    fn recorded_in(&self, key: &str, positions: &BTreeMap<String, u64>) -> bool {
        SinkFile::recorded_in(self, key, positions)
    }
    fn len(&self) -> u64 {
        SinkFile::len(self)
    }
    fn describe(&self) -> String {
        self.path().display().to_string()
    }
    fn flush(&mut self) -> Result<(), String> {
        SinkFile::flush(self).map_err(|e| format!("writing {}: {e}", self.path().display()))
    }
}

#[cfg(feature = "kafka")]
impl Sink for super::kafka::KafkaSink {
    fn write_line(&mut self, line: &[u8]) -> Result<(), String> {
        super::kafka::KafkaSink::write_row(self, None, line)
    }
    fn keyed(&self) -> bool {
        super::kafka::KafkaSink::keyed(self)
    }
    fn write_keyed(&mut self, key: Option<&[u8]>, line: &[u8]) -> Result<(), String> {
        super::kafka::KafkaSink::write_row(self, key, line)
    }
    fn commit_into(
        &mut self,
        key: &str,
        positions: &mut BTreeMap<String, u64>,
    ) -> Result<(), String> {
        super::kafka::KafkaSink::commit_into(self, key, positions)
    }
    fn recorded_in(&self, key: &str, positions: &BTreeMap<String, u64>) -> bool {
        positions.contains_key(&format!("{key}.kafka_end"))
    }
    fn len(&self) -> u64 {
        super::kafka::KafkaSink::len(self)
    }
    fn describe(&self) -> String {
        self.url().to_string()
    }
    fn flush(&mut self) -> Result<(), String> {
        super::kafka::KafkaSink::flush(self)
    }
}

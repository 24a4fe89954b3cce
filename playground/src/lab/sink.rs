//! The sink: the pipeline's output records, outside the pipeline (a crash does not
//! erase them; a restore cuts them back to what the checkpoint saw).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Records the sink keeps (older ones are compacted away, like a log's retention).
pub const SINK_KEEP: usize = 2000;

/// One output record, as the sink keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SinkLine {
    /// Sink name, or `late`.
    pub sink: String,
    /// The record's JSON.
    pub record: Value,
}

/// The sink: every output record, in order; only the newest [`SINK_KEEP`] are kept.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sink {
    /// Records compacted away before `rows[0]`.
    pub first: u64,
    /// The kept records.
    pub rows: Vec<SinkLine>,
}

impl Sink {
    /// Records ever written (what a checkpoint saves as `output.len`).
    pub fn len(&self) -> u64 {
        self.first + self.rows.len() as u64
    }

    /// True when nothing was ever written.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn push(&mut self, line: SinkLine) {
        self.rows.push(line);
        if self.rows.len() >= SINK_KEEP + SINK_KEEP / 4 {
            let drop = self.rows.len() - SINK_KEEP;
            self.rows.drain(..drop);
            self.first += drop as u64;
        }
    }

    /// Cuts the sink back to `len` records (a restore to a checkpoint's `output.len`).
    pub(crate) fn truncate(&mut self, len: u64) {
        if len >= self.first {
            self.rows.truncate((len - self.first) as usize);
        } else {
            self.rows.clear();
            self.first = len;
        }
    }

    /// Same length, and the same records where both still have them.
    pub fn same_as(&self, other: &Sink) -> bool {
        if self.len() != other.len() {
            return false;
        }
        let from = self.first.max(other.first);
        let a = &self.rows[(from - self.first) as usize..];
        let b = &other.rows[(from - other.first) as usize..];
        a == b
    }

    pub(crate) fn to_text(&self) -> String {
        let mut text = format!("{{\"first\":{}}}\n", self.first);
        for l in &self.rows {
            text.push_str(&serde_json::to_string(l).unwrap_or_default());
            text.push('\n');
        }
        text
    }

    pub(crate) fn from_text(text: &str) -> Sink {
        let mut sink = Sink::default();
        for (i, l) in text.lines().enumerate() {
            if i == 0 {
                if let Ok(v) = serde_json::from_str::<Value>(l) {
                    if let Some(first) = v.get("first").and_then(Value::as_u64) {
                        sink.first = first;
                        continue;
                    }
                }
            }
            if let Ok(line) = serde_json::from_str(l) {
                sink.rows.push(line);
            }
        }
        sink
    }
}

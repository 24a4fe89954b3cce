//! Runs read together in key order, each key once, from the newest run that has it.

use super::key_order::compare;
use super::run::{Record, Run, RunReader};

pub(crate) struct Merge {
    /// Newest run first.
    readers: Vec<RunReader>,
    heads: Vec<Option<Record>>,
    failed: bool,
}

impl Merge {
    /// Reads `runs`, newest first.
    pub(crate) fn new<'a>(runs: impl Iterator<Item = &'a Run>) -> Result<Merge, String> {
        let mut readers = runs.map(Run::reader).collect::<Result<Vec<_>, _>>()?;
        let heads = readers
            .iter_mut()
            .map(RunReader::next_record)
            .collect::<Result<_, _>>()?;
        Ok(Merge {
            readers,
            heads,
            failed: false,
        })
    }

    /// The run holding the smallest key among the heads; the newest on a tie.
    fn smallest(&self) -> Option<usize> {
        let mut best: Option<(usize, &[u8])> = None;
        for (i, h) in self.heads.iter().enumerate() {
            if let Some(r) = h {
                if best.is_none_or(|(_, k)| compare(&r.key, k).is_lt()) {
                    best = Some((i, &r.key));
                }
            }
        }
        best.map(|b| b.0)
    }

    fn step(&mut self) -> Result<Option<Record>, String> {
        let Some(b) = self.smallest() else {
            return Ok(None);
        };
        let rec = self.heads[b].take().expect("a head");
        self.heads[b] = self.readers[b].next_record()?;
        // Older copies of the same key are dead.
        for i in b + 1..self.heads.len() {
            if self.heads[i].as_ref().is_some_and(|h| h.key == rec.key) {
                self.heads[i] = self.readers[i].next_record()?;
            }
        }
        Ok(Some(rec))
    }
}

impl Iterator for Merge {
    type Item = Result<Record, String>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let r = self.step();
        self.failed = r.is_err();
        r.transpose()
    }
}

//! Runs read together in key order, each key once, from the newest run that has it.
//! Records are read into buffers that go round between the runs and the caller, so a
//! merge allocates nothing per record.

use super::key_order::compare;
use super::run::{Record, Run, RunReader};

pub(crate) struct Merge {
    /// Newest run first.
    readers: Vec<RunReader>,
    /// Each run's next record; `None` once the run is read.
    heads: Vec<Option<Record>>,
    failed: bool,
}

impl Merge {
    /// Reads `runs`, newest first.
    pub(crate) fn new<'a>(runs: impl Iterator<Item = &'a Run>) -> Result<Merge, String> {
        let mut readers = runs.map(Run::reader).collect::<Result<Vec<_>, _>>()?;
        let heads = readers
            .iter_mut()
            .map(|r| {
                let mut rec = Record::default();
                Ok(r.read_into(&mut rec)?.then_some(rec))
            })
            .collect::<Result<_, String>>()?;
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

    /// Moves run `i`'s next record into its head, reusing `rec`'s buffers.
    fn advance(&mut self, i: usize, mut rec: Record) -> Result<(), String> {
        let more = self.readers[i].read_into(&mut rec)?;
        self.heads[i] = more.then_some(rec);
        Ok(())
    }

    /// The next record into `out` (its old buffers are reused for reading); false at
    /// the end.
    pub(crate) fn next_into(&mut self, out: &mut Record) -> Result<bool, String> {
        let Some(b) = self.smallest() else {
            return Ok(false);
        };
        let rec = self.heads[b].take().expect("a head");
        let spare = std::mem::replace(out, rec);
        self.advance(b, spare)?;
        // Older copies of the same key are dead.
        for i in b + 1..self.heads.len() {
            if self.heads[i].as_ref().is_some_and(|h| h.key == out.key) {
                let dead = self.heads[i].take().expect("a head");
                self.advance(i, dead)?;
            }
        }
        Ok(true)
    }
}

impl Iterator for Merge {
    type Item = Result<Record, String>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let mut rec = Record::default();
        match self.next_into(&mut rec) {
            Ok(true) => Some(Ok(rec)),
            Ok(false) => None,
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

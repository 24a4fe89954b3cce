//! With the disk state backend, the events of the whole lines already read ahead are
//! parsed together and handed to [`Pipeline::prefetch`], so the keys they touch on disk
//! are read in one pass instead of one lookup per event. Each event then waits here until
//! the loop reaches its line: the input's offset and line number still move one
//! processed event at a time, so checkpoints, bad lines and signals act exactly where
//! they would without read-ahead.

use std::collections::VecDeque;

use super::input::parse_fast;

/// Events parsed per prefetch at most: as in the bench (`bench/src/disk_state.rs`),
/// whose `exceeds` case ran fastest with batches of 16k; the input is read a MiB at a
/// time, so a batch can be that large.
const BATCH: usize = 16384;

/// Events parsed ahead, each with the byte offset of its line.
pub(super) struct ReadAhead<E> {
    on: bool,
    max_line: usize,
    events: VecDeque<(u64, E)>,
    batch: Vec<E>,
    offsets: Vec<u64>,
}

impl<E: serde::de::DeserializeOwned> ReadAhead<E> {
    /// `on`: the disk backend is in use (with the memory backend a prefetch does nothing,
    /// and parsing ahead would only cost).
    pub(super) fn new(on: bool, max_line: usize) -> Self {
        ReadAhead {
            on,
            max_line,
            events: VecDeque::new(),
            batch: Vec::new(),
            offsets: Vec::new(),
        }
    }

    /// The event of the line at `offset` if it was parsed ahead. Otherwise, when nothing
    /// is queued, the current line (`current`, at `offset`, `bytes` long with its newline)
    /// and the whole lines after it (`ahead`, each ending in a newline) are parsed and
    /// handed to `prefetch` ([`Pipeline::prefetch`](crate::Pipeline::prefetch)), and the
    /// current line's event is given if it parsed. `None`: the caller parses the line
    /// itself (and reports it if it does not parse).
    pub(super) fn take(
        &mut self,
        prefetch: impl FnOnce(&[E]),
        offset: u64,
        bytes: u64,
        current: Option<&str>,
        ahead: &str,
    ) -> Option<E> {
        // Lines parsed ahead are passed in order; ones that did not parse were never
        // queued, so the head may be further on.
        while self.events.front().is_some_and(|(at, _)| *at < offset) {
            self.events.pop_front();
        }
        if self.events.is_empty() && self.on {
            self.fill(prefetch, offset, bytes, current?, ahead);
        }
        match self.events.front() {
            Some((at, _)) if *at == offset => self.events.pop_front().map(|(_, e)| e),
            _ => None,
        }
    }

    fn fill(
        &mut self,
        prefetch: impl FnOnce(&[E]),
        offset: u64,
        bytes: u64,
        current: &str,
        ahead: &str,
    ) {
        let mut at = offset + bytes;
        let next = ahead.split_inclusive('\n').map(|l| {
            let line = (at, l.strip_suffix('\n').unwrap_or(l));
            at += l.len() as u64;
            line
        });
        for (line_at, text) in std::iter::once((offset, current)).chain(next).take(BATCH) {
            // A line too long, blank or not parsing is the loop's to handle, in order.
            if text.len() > self.max_line {
                continue;
            }
            if let Some(e) = parse_fast(text) {
                self.batch.push(e);
                self.offsets.push(line_at);
            }
        }
        prefetch(&self.batch);
        self.events
            .extend(self.offsets.drain(..).zip(self.batch.drain(..)));
    }

    /// Forgets what was parsed ahead: the input moved elsewhere (end of file, a rewind,
    /// a rotation), where offsets may name other lines.
    pub(super) fn clear(&mut self) {
        self.events.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct E {
        k: u32,
    }

    /// Reads `text` as the runner does: line by line, each event taken from the queue
    /// or parsed by the caller. Returns each line's event (or its parse failure) and the
    /// batches prefetched.
    fn read(text: &str, on: bool, max_line: usize) -> (Vec<Result<u32, String>>, Vec<Vec<u32>>) {
        let mut ahead = ReadAhead::<E>::new(on, max_line);
        let mut batches = Vec::new();
        let mut got = Vec::new();
        let mut offset = 0u64;
        for line in text.split_inclusive('\n') {
            let bytes = line.len() as u64;
            let current = line.strip_suffix('\n').unwrap();
            let rest = &text[(offset + bytes) as usize..];
            let early = ahead.take(
                |b: &[E]| batches.push(b.iter().map(|e| e.k).collect()),
                offset,
                bytes,
                Some(current),
                rest,
            );
            // The line reader gives a line too long as such, never to be parsed.
            let too_long = current.len() > max_line;
            got.push(match early {
                Some(e) => Ok(e.k),
                None if too_long => Err(current.to_string()),
                None => parse_fast::<E>(current)
                    .map(|e| e.k)
                    .ok_or(current.to_string()),
            });
            offset += bytes;
        }
        (got, batches)
    }

    /// Every line's event is the one parsing it alone gives, in order; lines that do
    /// not parse, blank ones and ones too long are left to the caller; the lines of one
    /// block are prefetched in one batch, at most `BATCH` events each.
    #[test]
    fn events_come_in_line_order_and_are_prefetched_in_batches() {
        let long = format!("{{\"k\":9,\"pad\":\"{}\"}}", "x".repeat(64));
        let text = format!(
            "{{\"k\":1}}\n\n{{\"k\":\"bad\"}}\n{{\"k\":2}}\n{long}\nnot json\n{{\"k\":3}}\n"
        );
        let (got, batches) = read(&text, true, 40);
        assert_eq!(
            got,
            [
                Ok(1),
                Err(String::new()),
                Err("{\"k\":\"bad\"}".into()),
                Ok(2),
                Err(long.clone()),
                Err("not json".into()),
                Ok(3)
            ]
        );
        assert_eq!(batches, [vec![1, 2, 3]], "one batch: the block's lines");

        let (off, none) = read(&text, false, 40);
        assert_eq!(
            off, got,
            "the memory backend: the same events, parsed alone"
        );
        assert!(none.is_empty(), "and nothing prefetched");

        let many: String = (0..BATCH as u32 + 10)
            .map(|k| format!("{{\"k\":{k}}}\n"))
            .collect();
        let (got, batches) = read(&many, true, 40);
        assert_eq!(got, (0..BATCH as u32 + 10).map(Ok).collect::<Vec<_>>());
        assert_eq!(
            batches.iter().map(Vec::len).collect::<Vec<_>>(),
            [BATCH, 10],
            "a new batch where the last one ended"
        );
    }

    /// After a clear (the input moved), nothing parsed before is given.
    #[test]
    fn a_clear_forgets_the_queue() {
        let mut ahead = ReadAhead::<E>::new(true, 100);
        let e = ahead.take(|_| {}, 0, 8, Some("{\"k\":1}"), "{\"k\":2}\n");
        assert_eq!(e, Some(E { k: 1 }));
        ahead.clear();
        // The same offset in another file: parsed from this file's line, not the queue.
        let e = ahead.take(|_| {}, 8, 8, Some("{\"k\":7}"), "");
        assert_eq!(e, Some(E { k: 7 }));
    }
}

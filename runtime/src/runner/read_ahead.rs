//! With the disk state backend, the events of the whole lines already read ahead are
//! parsed in batches: each batch is handed to [`Pipeline::prefetch`] before its events
//! run, so the keys they touch on disk are read in one pass instead of one lookup per
//! event, and the batch after it, when its lines are read already, to
//! [`Pipeline::read_ahead`], so that pass runs on another thread meanwhile. Each event
//! then waits here until the loop reaches its line: the input's offset and line number
//! still move one processed event at a time, so checkpoints, bad lines and signals act
//! exactly where they would without read-ahead.
//!
//! [`Pipeline::prefetch`]: crate::Pipeline::prefetch
//! [`Pipeline::read_ahead`]: crate::Pipeline::read_ahead

use std::collections::VecDeque;

use super::input::parse_fast;

/// Events parsed per batch at most: as in the bench (`bench/src/disk_state.rs`), whose
/// `exceeds` case ran fastest with batches of 16k.
const BATCH: usize = 16384;

/// Input bytes read at a time with the disk backend: several batches of lines, so that
/// most batches find the next one's lines read already.
pub(super) const READ: u64 = 4 << 20;

/// What a batch handed to the pipeline is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Batch {
    /// Its events run next: [`Pipeline::prefetch`](crate::Pipeline::prefetch).
    Now,
    /// Its events run after the batch now: [`Pipeline::read_ahead`](crate::Pipeline::read_ahead).
    Next,
}

/// Events parsed ahead, each with the byte offset of its line.
pub(super) struct ReadAhead<E> {
    on: bool,
    max_line: usize,
    /// The batch whose events run now.
    events: VecDeque<(u64, E)>,
    /// The batch after it, handed as [`Batch::Next`]: its lines start at `next_lines.0`
    /// and end before `next_lines.1`.
    next: Vec<E>,
    next_offsets: Vec<u64>,
    next_lines: (u64, u64),
    /// Where the lines parsed for `events` end.
    end: u64,
}

impl<E: serde::de::DeserializeOwned> ReadAhead<E> {
    /// `on`: the disk backend is in use (with the memory backend a prefetch does nothing,
    /// and parsing ahead would only cost).
    pub(super) fn new(on: bool, max_line: usize) -> Self {
        ReadAhead {
            on,
            max_line,
            events: VecDeque::new(),
            next: Vec::new(),
            next_offsets: Vec::new(),
            next_lines: (0, 0),
            end: 0,
        }
    }

    /// The event of the line at `offset` if it was parsed ahead. Otherwise, when nothing
    /// is queued, the batch read ahead if it starts here, else the current line
    /// (`current`, at `offset`, `bytes` long with its newline) and the whole lines after
    /// it (`ahead`, each ending in a newline), are parsed and handed to `hand` as
    /// [`Batch::Now`], and the lines after those, if `ahead` holds any, as
    /// [`Batch::Next`]; the current line's event is given if it parsed. `None`: the
    /// caller parses the line itself (and reports it if it does not parse).
    pub(super) fn take(
        &mut self,
        mut hand: impl FnMut(&[E], Batch),
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
            let current = current?;
            let (from, to) = self.next_lines;
            if from <= offset && offset < to {
                hand(&self.next, Batch::Now);
                let next = self.next_offsets.drain(..).zip(self.next.drain(..));
                self.events.extend(next.filter(|(at, _)| *at >= offset));
                self.end = to;
            } else {
                let (mut batch, mut offsets) = (Vec::new(), Vec::new());
                self.parse_line(offset, current, &mut batch, &mut offsets);
                let at = offset + bytes;
                self.end = self.parse(at, ahead, BATCH - 1, &mut batch, &mut offsets);
                hand(&batch, Batch::Now);
                self.events.extend(offsets.into_iter().zip(batch));
            }
            self.next_lines = (0, 0);
            self.next.clear();
            self.next_offsets.clear();
            // The lines after this batch's, if they were read.
            let skip = (self.end - offset - bytes) as usize;
            if let Some(rest) = ahead.get(skip..).filter(|r| !r.is_empty()) {
                let (mut next, mut offsets) = (Vec::new(), Vec::new());
                let end = self.parse(self.end, rest, BATCH, &mut next, &mut offsets);
                hand(&next, Batch::Next);
                (self.next, self.next_offsets) = (next, offsets);
                self.next_lines = (self.end, end);
            }
        }
        match self.events.front() {
            Some((at, _)) if *at == offset => self.events.pop_front().map(|(_, e)| e),
            _ => None,
        }
    }

    /// Parses up to `most` of the whole `lines` (each ending in a newline), the first at
    /// `at`, into `batch` and their offsets: where the last one parsed ends.
    fn parse(
        &self,
        mut at: u64,
        lines: &str,
        most: usize,
        batch: &mut Vec<E>,
        offsets: &mut Vec<u64>,
    ) -> u64 {
        for l in lines.split_inclusive('\n').take(most) {
            self.parse_line(at, l.strip_suffix('\n').unwrap_or(l), batch, offsets);
            at += l.len() as u64;
        }
        at
    }

    fn parse_line(&self, at: u64, text: &str, batch: &mut Vec<E>, offsets: &mut Vec<u64>) {
        // A line too long, blank or not parsing is the loop's to handle, in order.
        if text.len() > self.max_line {
            return;
        }
        if let Some(e) = parse_fast(text) {
            batch.push(e);
            offsets.push(at);
        }
    }

    /// Forgets what was parsed ahead: the input moved elsewhere (end of file, a rewind,
    /// a rotation), where offsets may name other lines.
    pub(super) fn clear(&mut self) {
        self.events.clear();
        self.next.clear();
        self.next_offsets.clear();
        self.next_lines = (0, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct E {
        k: u32,
    }

    type Handed = Vec<(Batch, Vec<u32>)>;

    /// Reads `text` as the runner does: line by line, each event taken from the queue
    /// or parsed by the caller. Returns each line's event (or its parse failure) and the
    /// batches handed over.
    fn read(text: &str, on: bool, max_line: usize) -> (Vec<Result<u32, String>>, Handed) {
        let mut ahead = ReadAhead::<E>::new(on, max_line);
        let mut batches = Vec::new();
        let mut got = Vec::new();
        let mut offset = 0u64;
        for line in text.split_inclusive('\n') {
            let bytes = line.len() as u64;
            let current = line.strip_suffix('\n').unwrap();
            let rest = &text[(offset + bytes) as usize..];
            let early = ahead.take(
                |b: &[E], kind| batches.push((kind, b.iter().map(|e| e.k).collect())),
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
        assert_eq!(
            batches,
            [(Batch::Now, vec![1, 2, 3])],
            "one batch: the block's lines, and none after them to read ahead"
        );

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
        let handed: Vec<(Batch, usize)> = batches.iter().map(|(b, e)| (*b, e.len())).collect();
        assert_eq!(
            handed,
            [(Batch::Now, BATCH), (Batch::Next, 10), (Batch::Now, 10)],
            "the lines after a batch read ahead, then prefetched where it ended"
        );
        assert_eq!(
            batches[1].1, batches[2].1,
            "the batch read ahead is the one run"
        );
        assert_eq!(batches[1].1[0], BATCH as u32);
    }

    /// After a clear (the input moved), nothing parsed before is given.
    #[test]
    fn a_clear_forgets_the_queue() {
        let mut ahead = ReadAhead::<E>::new(true, 100);
        let e = ahead.take(|_, _| {}, 0, 8, Some("{\"k\":1}"), "{\"k\":2}\n");
        assert_eq!(e, Some(E { k: 1 }));
        ahead.clear();
        // The same offset in another file: parsed from this file's line, not the queue.
        let e = ahead.take(|_, _| {}, 8, 8, Some("{\"k\":7}"), "");
        assert_eq!(e, Some(E { k: 7 }));
    }
}

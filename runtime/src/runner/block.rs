//! Whole lines read ahead from the input and checked as UTF-8 together, so a line among
//! them is a `&str` without a check (and a copy) of its own. They are read from the file
//! straight into the block's own buffer, not copied out of the reader's.

use std::io::{self, BufRead, BufReader, Read};
use std::ops::Range;

/// Bytes asked of the file per read, unless the reader asks for more
/// ([`Block::read_in`]).
const READ: u64 = 1 << 20;

/// Complete lines (each ending in a newline), valid UTF-8, where the next one starts,
/// and the bytes read after them.
pub(super) struct Block {
    text: String,
    next: usize,
    /// Read from the file after `text`: a line not whole yet, or one that is not UTF-8
    /// and the lines after it.
    rest: Vec<u8>,
    /// Bytes asked of the file per read.
    read: u64,
}

impl Default for Block {
    fn default() -> Self {
        Block {
            text: String::new(),
            next: 0,
            rest: Vec::new(),
            read: READ,
        }
    }
}

/// The next line of a [`Block`]: its range in [`Block::text`] (without the newline)
/// and the bytes it takes, newline included.
pub(super) struct Taken {
    pub(super) range: Range<usize>,
    pub(super) bytes: u64,
}

impl Block {
    /// Reads `bytes` at a time from now on: with the disk state backend, the lines of a
    /// read are parsed in batches, and the next batch is read ahead while this one runs
    /// (`read_ahead.rs`), so a read holds several.
    pub(super) fn read_in(&mut self, bytes: u64) {
        self.read = bytes.max(1);
    }

    /// Bytes read at a time.
    pub(super) fn reads(&self) -> u64 {
        self.read
    }

    /// The lines' text.
    #[inline]
    pub(super) fn text(&self) -> &str {
        &self.text
    }

    /// Forgets what was read and not taken yet (the reader moves elsewhere).
    pub(super) fn clear(&mut self) {
        self.text.clear();
        self.next = 0;
        self.rest.clear();
    }

    /// Bytes read from the reader and not taken: before a line is read alone, the
    /// reader must go back by these, to where the next line starts.
    pub(super) fn read_ahead(&self) -> usize {
        self.text.len() - self.next.min(self.text.len()) + self.rest.len()
    }

    /// The whole lines not taken yet, each ending in a newline.
    pub(super) fn ready(&self) -> &str {
        self.text.get(self.next..).unwrap_or("")
    }

    /// The next line if there is one left, without reading.
    #[inline]
    pub(super) fn take_ready(&mut self) -> Option<Taken> {
        let rest = self.text.as_bytes().get(self.next..)?;
        let len = memchr::memchr(b'\n', rest)?;
        let start = self.next;
        self.next += len + 1;
        Some(Taken {
            range: start..start + len,
            bytes: len as u64 + 1,
        })
    }

    /// The next line, refilling from `reader` when every line was taken; `None` when the
    /// bytes that follow hold no whole line that is valid UTF-8 (then it is read alone).
    pub(super) fn take<R: Read>(&mut self, reader: &mut BufReader<R>) -> io::Result<Option<Taken>> {
        if let Some(t) = self.take_ready() {
            return Ok(Some(t));
        }
        if !self.refill(reader)? {
            return Ok(None);
        }
        Ok(self.take_ready())
    }

    /// Reads on after the bytes kept, and makes the whole lines up to the first invalid
    /// UTF-8 byte the new text; false if there are none.
    fn refill<R: Read>(&mut self, reader: &mut BufReader<R>) -> io::Result<bool> {
        let mut bytes = std::mem::take(&mut self.text).into_bytes();
        bytes.clear();
        self.next = 0;
        bytes.append(&mut self.rest);
        read_more(reader, &mut bytes, self.read)?;
        let Some(last) = memchr::memrchr(b'\n', &bytes) else {
            self.rest = bytes;
            return Ok(false);
        };
        self.rest.extend_from_slice(&bytes[last + 1..]);
        bytes.truncate(last + 1);
        let e = match String::from_utf8(bytes) {
            Ok(text) => {
                self.text = text;
                return Ok(true);
            }
            Err(e) => e,
        };
        // Whole lines before the bad byte are taken; that line and those after it wait.
        let valid = e.utf8_error().valid_up_to();
        let mut bytes = e.into_bytes();
        let Some(end) = memchr::memrchr(b'\n', &bytes[..valid]) else {
            bytes.append(&mut self.rest);
            self.rest = bytes;
            return Ok(false);
        };
        let mut after = bytes.split_off(end + 1);
        after.append(&mut self.rest);
        self.rest = after;
        match String::from_utf8(bytes) {
            Ok(text) => self.text = text,
            Err(e) => {
                let mut bytes = e.into_bytes();
                bytes.append(&mut self.rest);
                self.rest = bytes;
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// Appends to `bytes` what `reader` holds buffered, else up to `read` bytes read from
/// the file itself (no copy through the reader's buffer).
fn read_more<R: Read>(reader: &mut BufReader<R>, bytes: &mut Vec<u8>, read: u64) -> io::Result<()> {
    let buffered = reader.buffer();
    if !buffered.is_empty() {
        let n = buffered.len();
        bytes.extend_from_slice(buffered);
        reader.consume(n);
        return Ok(());
    }
    bytes.reserve(read as usize);
    reader.get_mut().take(read).read_to_end(bytes)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines come out whole and in order; at a line with a bad byte, and at a line
    /// without its newline, the block stops with those bytes read ahead; the reader
    /// read from where that line starts gives the rest.
    #[test]
    fn takes_whole_valid_lines() {
        let data: &[u8] = b"{\"a\":1}\n\n{\"b\":\"\xc3\xa9\"}\nbad \xff\n{\"c\":3}\npartial";
        let mut r = BufReader::with_capacity(64, data);
        let mut b = Block::default();
        let mut got = Vec::new();
        let mut at = 0;
        while let Some(t) = b.take(&mut r).unwrap() {
            got.push((b.text()[t.range].to_string(), t.bytes));
            at += t.bytes as usize;
        }
        assert_eq!(
            got,
            [
                ("{\"a\":1}".to_string(), 8),
                (String::new(), 1),
                ("{\"b\":\"é\"}".to_string(), 11)
            ]
        );
        assert_eq!(
            b.read_ahead(),
            data.len() - at,
            "the bad line and those after it"
        );
        // As the line reader does: go back to the next line, read the bad one alone.
        b.clear();
        let mut r = BufReader::with_capacity(64, &data[at..]);
        let mut bad = Vec::new();
        r.read_until(b'\n', &mut bad).unwrap();
        assert_eq!(bad, b"bad \xff\n");
        let t = b.take(&mut r).unwrap().expect("the line after the bad one");
        assert_eq!((&b.text()[t.range], t.bytes), ("{\"c\":3}", 8));
        assert!(b.take(&mut r).unwrap().is_none(), "no newline: not whole");
        assert_eq!(b.read_ahead(), 7, "the partial line");
    }

    /// Lines longer than one read, and a line split between two reads, come out whole.
    #[test]
    fn lines_across_reads_are_whole() {
        let long = "x".repeat(READ as usize + 10);
        let data = format!("{long}\nshort\n{long}\n");
        let mut r = BufReader::with_capacity(64, data.as_bytes());
        let mut b = Block::default();
        let mut got = Vec::new();
        loop {
            match b.take(&mut r).unwrap() {
                Some(t) => got.push(b.text()[t.range].len()),
                None if b.read_ahead() > 0 => {
                    // A line longer than a read: the line reader reads it alone.
                    let at: usize = got.iter().map(|n| n + 1).sum();
                    b.clear();
                    r = BufReader::with_capacity(64, &data.as_bytes()[at..]);
                    let mut line = Vec::new();
                    r.read_until(b'\n', &mut line).unwrap();
                    got.push(line.len() - 1);
                }
                None => break,
            }
        }
        assert_eq!(got, [long.len(), 5, long.len()]);
    }
}

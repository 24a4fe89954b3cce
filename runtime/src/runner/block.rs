//! Whole lines taken from the read buffer at once and checked as UTF-8 together, so a
//! line inside them is a `&str` without a check (and a copy) of its own.

use std::io::{self, BufRead};
use std::ops::Range;

/// Complete lines (each ending in a newline), valid UTF-8, and where the next one starts.
#[derive(Default)]
pub(super) struct Block {
    text: String,
    next: usize,
}

/// The next line of a [`Block`]: its range in [`Block::text`] (without the newline)
/// and the bytes it takes, newline included.
pub(super) struct Taken {
    pub(super) range: Range<usize>,
    pub(super) bytes: u64,
}

impl Block {
    /// The lines' text.
    #[inline]
    pub(super) fn text(&self) -> &str {
        &self.text
    }

    /// Forgets the lines not taken yet (the reader moved elsewhere).
    pub(super) fn clear(&mut self) {
        self.text.clear();
        self.next = 0;
    }

    /// The next line, refilling from `reader` when every line was taken; `None` when the
    /// reader's buffer holds no whole line that is valid UTF-8 (then it is read alone).
    pub(super) fn take(&mut self, reader: &mut impl BufRead) -> io::Result<Option<Taken>> {
        if self.next >= self.text.len() && !self.refill(reader)? {
            return Ok(None);
        }
        let rest = &self.text.as_bytes()[self.next..];
        let Some(len) = memchr::memchr(b'\n', rest) else {
            // Unreachable: a block holds only lines ending in a newline.
            self.clear();
            return Ok(None);
        };
        let start = self.next;
        self.next += len + 1;
        Ok(Some(Taken {
            range: start..start + len,
            bytes: len as u64 + 1,
        }))
    }

    /// Moves the whole lines in `reader`'s buffer up to its first invalid UTF-8 byte
    /// here; false if there are none.
    fn refill(&mut self, reader: &mut impl BufRead) -> io::Result<bool> {
        self.clear();
        let chunk = reader.fill_buf()?;
        let Some(last) = memchr::memrchr(b'\n', chunk) else {
            return Ok(false);
        };
        let lines = &chunk[..=last];
        let valid = match std::str::from_utf8(lines) {
            Ok(text) => text,
            Err(e) => {
                let before = &lines[..e.valid_up_to()];
                let Some(end) = memchr::memrchr(b'\n', before) else {
                    return Ok(false);
                };
                match std::str::from_utf8(&before[..=end]) {
                    Ok(text) => text,
                    Err(_) => return Ok(false),
                }
            }
        };
        self.text.push_str(valid);
        let taken = valid.len();
        reader.consume(taken);
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines come out whole and in order; a line with a bad byte and a line without its
    /// newline are left in the reader, the lines after the bad one come in a new block.
    #[test]
    fn takes_whole_valid_lines() {
        let data: &[u8] = b"{\"a\":1}\n\n{\"b\":\"\xc3\xa9\"}\nbad \xff\n{\"c\":3}\npartial";
        let mut r = io::BufReader::with_capacity(64, data);
        let mut b = Block::default();
        let mut got = Vec::new();
        while let Some(t) = b.take(&mut r).unwrap() {
            got.push((b.text()[t.range].to_string(), t.bytes));
        }
        assert_eq!(
            got,
            [
                ("{\"a\":1}".to_string(), 8),
                (String::new(), 1),
                ("{\"b\":\"é\"}".to_string(), 11)
            ]
        );
        let mut rest = Vec::new();
        r.read_until(b'\n', &mut rest).unwrap();
        assert_eq!(rest, b"bad \xff\n");
        let t = b.take(&mut r).unwrap().expect("the line after the bad one");
        assert_eq!((&b.text()[t.range], t.bytes), ("{\"c\":3}", 8));
        assert!(b.take(&mut r).unwrap().is_none(), "no newline: not whole");
    }
}

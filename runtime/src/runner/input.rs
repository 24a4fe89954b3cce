//! Reading JSON-lines input: bounded lines, byte offsets, errors that name line and field.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Seek, SeekFrom};
use std::path::Path;

use super::block::{Block, Taken};
use super::identity::Tail;

use serde::de::DeserializeOwned;

/// One read from the input.
#[derive(Debug, PartialEq, Eq)]
pub enum Read {
    /// A line (without its newline); `bytes` consumed including the newline.
    Line {
        /// Bytes consumed, newline included.
        bytes: u64,
        /// True when the line ended at end of file without a newline.
        unterminated: bool,
    },
    /// A line longer than the limit; `bytes` consumed including the newline.
    TooLong {
        /// Bytes consumed.
        bytes: u64,
        /// True when it ended at end of file without a newline (may still be growing).
        unterminated: bool,
    },
    /// End of file.
    Eof,
}

/// How a followed input was rotated (see [`LineReader::follow_rotation`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    /// The file shrank below the offset read so far, or its bytes before that offset
    /// changed (copytruncate, refilled before it was looked at).
    Truncated,
    /// The path names another file now (renamed away and recreated).
    Replaced,
}

impl fmt::Display for Rotation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Rotation::Truncated => "was truncated and rewritten (copytruncate rotation)",
            Rotation::Replaced => {
                "now names another file (rename rotation); the old one was read to its end"
            }
        })
    }
}

/// A JSON-lines file read line by line, knowing its byte offset and line number.
pub struct LineReader {
    reader: BufReader<File>,
    /// Byte offset of the next line.
    pub offset: u64,
    /// Number of the next line (1-based).
    pub line: u64,
    max_line: usize,
    /// Lines read ahead, checked as UTF-8 together.
    block: Block,
    /// The current line: in `block`'s text, or (`None`) in `buf`.
    in_block: Option<std::ops::Range<usize>>,
    /// The current line's bytes when it is not in `block`.
    buf: Vec<u8>,
    /// The last line consumed ended at end of file without a newline: a newline that
    /// appears there later ends that line, it is not an empty line of its own. Saved in
    /// checkpoints (`source.pending_newline`).
    pub pending_newline: bool,
    pending_before_read: bool,
    /// `--follow`: a file rewritten under the reader is a rotation, not an error.
    pub follow: bool,
    /// An offset and the hash of the bytes before it as this reader knew them (at the
    /// last checkpoint, or at the first end of file there): the next read from that
    /// offset checks them, so a file truncated and refilled under the reader is noticed.
    known_tail: Option<(u64, Tail)>,
    /// Under `--follow`, a read found those bytes changed.
    rewritten: bool,
}

impl LineReader {
    /// Opens `file` at `offset` (the start of line `line`).
    pub fn new(
        mut file: File,
        offset: u64,
        line: u64,
        max_line: usize,
        pending_newline: bool,
    ) -> io::Result<Self> {
        file.seek(SeekFrom::Start(offset))?;
        Ok(LineReader {
            reader: BufReader::with_capacity(1 << 16, file),
            offset,
            line,
            max_line,
            block: Block::default(),
            in_block: None,
            buf: Vec::new(),
            pending_newline,
            pending_before_read: pending_newline,
            follow: false,
            known_tail: None,
            rewritten: false,
        })
    }

    /// The current line's bytes (after [`next_line`](Self::next_line) gave a line).
    #[inline]
    pub fn line(&self) -> &[u8] {
        match &self.in_block {
            Some(r) => &self.block.text().as_bytes()[r.clone()],
            None => &self.buf,
        }
    }

    /// The current line as text, if it was checked as UTF-8 already.
    #[inline]
    pub fn line_text(&self) -> Option<&str> {
        self.in_block.clone().map(|r| &self.block.text()[r])
    }

    /// The whole lines read ahead after the current one, each ending in a newline,
    /// without taking them: the lines [`next_line`](Self::next_line) gives next.
    pub fn ahead(&self) -> &str {
        self.block.ready()
    }

    /// Reads `bytes` of the file at a time from now on (1 MiB unless set).
    pub(crate) fn read_in(&mut self, bytes: u64) {
        self.block.read_in(bytes);
    }

    /// Parses the current line into an event (see [`parse_event`]).
    ///
    /// ```
    /// use simplestream_runtime::runner::input::{LineReader, Read};
    /// let dir = tempfile::tempdir().unwrap();
    /// std::fs::write(dir.path().join("in"), b"{\"n\":1}\n{\"n\":\"x\"}\n").unwrap();
    /// let file = std::fs::File::open(dir.path().join("in")).unwrap();
    /// let mut r = LineReader::new(file, 0, 1, 1 << 20, false).unwrap();
    /// #[derive(serde::Deserialize, Debug)]
    /// struct E { n: u32 }
    /// let Read::Line { bytes, .. } = r.next_line().unwrap() else { panic!() };
    /// assert_eq!((r.line(), r.parse::<E>().unwrap().n), (&b"{\"n\":1}"[..], 1));
    /// r.advance(bytes);
    /// r.next_line().unwrap();
    /// assert!(r.parse::<E>().unwrap_err().starts_with("field `n`"));
    /// ```
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, String> {
        match self.line_text() {
            Some(text) => parse_text(text),
            None => parse_event(&self.buf),
        }
    }

    /// Reads the next line (see [`line`](Self::line)). Under `--follow`, the first line after an end of
    /// file is only given if the bytes before it are still those seen then: a file
    /// truncated and refilled past the offset gives [`Read::Eof`], and
    /// [`follow_rotation`](Self::follow_rotation) then reports it.
    #[inline]
    pub fn next_line(&mut self) -> io::Result<Read> {
        // Usually: the next line is in the block, and nothing about this line needs a
        // check (no newline owed from a previous run, no byte order mark to skip, no
        // bytes before it to compare with what a checkpoint saw).
        if !self.pending_newline && self.known_tail.is_none() && self.offset != 0 {
            if let Some(t) = self.block.take_ready() {
                return Ok(self.block_line(t));
            }
        }
        self.next_line_checked()
    }

    /// A line of the block as the current one (or too long).
    #[inline]
    fn block_line(&mut self, t: Taken) -> Read {
        self.pending_before_read = self.pending_newline;
        if t.range.len() > self.max_line {
            self.in_block = None;
            self.buf.clear();
            return Read::TooLong {
                bytes: t.bytes,
                unterminated: false,
            };
        }
        self.in_block = Some(t.range);
        Read::Line {
            bytes: t.bytes,
            unterminated: false,
        }
    }

    fn next_line_checked(&mut self) -> io::Result<Read> {
        let at = self.offset;
        let read = self.read_line()?;
        match self.known_tail {
            Some((known, _)) if known == at && read == Read::Eof => {}
            Some((known, tail)) if known == at => {
                self.known_tail = None;
                if !tail.matches(self.reader.get_ref(), at)? {
                    return self.rewritten_at(at);
                }
            }
            _ if read == Read::Eof => {
                // Remembered for the next read; a file shorter than `at` is noticed then.
                self.known_tail = Tail::of(self.reader.get_ref(), at).ok().map(|t| (at, t));
            }
            _ => {}
        }
        Ok(read)
    }

    /// The bytes before `at` changed since they were read: a rotation under `--follow`
    /// (reported as end of file, then by [`follow_rotation`](Self::follow_rotation)),
    /// an error otherwise.
    fn rewritten_at(&mut self, at: u64) -> io::Result<Read> {
        if self.follow {
            self.rewritten = true;
            return Ok(Read::Eof);
        }
        Err(io::Error::other(format!(
            "its bytes before offset {at} changed while it was being read (rewritten in place); nothing after them was read"
        )))
    }

    fn read_line(&mut self) -> io::Result<Read> {
        self.pending_before_read = self.pending_newline;
        let mut read = self.read_raw()?;
        if self.pending_newline
            && self.line().is_empty()
            && read
                == (Read::Line {
                    bytes: 1,
                    unterminated: false,
                })
        {
            // The newline completing the previous run's last line: skip it.
            self.offset += 1;
            read = self.read_raw()?;
        }
        if self.offset == 0 && self.line().starts_with(BOM) {
            // A byte order mark some editors write: not part of the first event.
            match &mut self.in_block {
                Some(r) => r.start += BOM.len(),
                None => drop(self.buf.drain(..BOM.len())),
            }
        }
        // End of file leaves it as it was: the last line's state is what counts.
        match read {
            Read::Line { unterminated, .. } | Read::TooLong { unterminated, .. } => {
                self.pending_newline = unterminated
            }
            Read::Eof => {}
        }
        Ok(read)
    }

    fn read_raw(&mut self) -> io::Result<Read> {
        self.buf.clear();
        self.in_block = None;
        // Usually the line is among those read ahead: no copy, no UTF-8 check of its own.
        if let Some(t) = self.block.take(&mut self.reader)? {
            if t.range.len() > self.max_line {
                return Ok(Read::TooLong {
                    bytes: t.bytes,
                    unterminated: false,
                });
            }
            self.in_block = Some(t.range);
            return Ok(Read::Line {
                bytes: t.bytes,
                unterminated: false,
            });
        }
        let ahead = self.block.read_ahead();
        if ahead > 0 {
            // The line is read alone, from where it starts.
            self.block.clear();
            // Not `seek_relative`: that could move within the reader's own buffer, which
            // no longer holds what was read last.
            self.reader.seek(SeekFrom::Current(-(ahead as i64)))?;
        }
        let mut total = 0u64;
        let mut too_long = false;
        loop {
            let chunk = self.reader.fill_buf()?;
            if chunk.is_empty() {
                if total == 0 {
                    return Ok(Read::Eof);
                }
                return Ok(if too_long {
                    Read::TooLong {
                        bytes: total,
                        unterminated: true,
                    }
                } else {
                    Read::Line {
                        bytes: total,
                        unterminated: true,
                    }
                });
            }
            let (take, done) = match memchr(chunk) {
                Some(i) => (i + 1, true),
                None => (chunk.len(), false),
            };
            let content = if done {
                &chunk[..take - 1]
            } else {
                &chunk[..take]
            };
            if !too_long {
                if self.buf.len() + content.len() > self.max_line {
                    too_long = true;
                    self.buf.clear();
                } else {
                    self.buf.extend_from_slice(content);
                }
            }
            total += take as u64;
            self.reader.consume(take);
            if done {
                return Ok(if too_long {
                    Read::TooLong {
                        bytes: total,
                        unterminated: false,
                    }
                } else {
                    Read::Line {
                        bytes: total,
                        unterminated: false,
                    }
                });
            }
        }
    }

    /// Marks the current line consumed.
    pub fn advance(&mut self, bytes: u64) {
        self.offset += bytes;
        self.line += 1;
    }

    /// Goes back to the start of the current line (a partial line in `--follow` mode).
    pub fn rewind(&mut self) -> io::Result<()> {
        self.pending_newline = self.pending_before_read;
        self.block.clear();
        self.reader.seek(SeekFrom::Start(self.offset))?;
        Ok(())
    }

    /// Saves the hash of the bytes before [`offset`](Self::offset) (`source.tail_*`), by
    /// which the next run recognises this input.
    pub fn save_tail(&mut self, positions: &mut BTreeMap<String, u64>) -> Result<(), String> {
        let tail = Tail::of(self.reader.get_ref(), self.offset).map_err(|e| {
            format!(
                "reading the input's bytes before offset {} again: {e} (was it truncated?)",
                self.offset
            )
        })?;
        tail.save("source", positions);
        self.known_tail = Some((self.offset, tail));
        Ok(())
    }

    /// For `--follow` at the end of the file: if `path` was rotated, switches to the file
    /// it names now, from its start (line 1), and says how it was rotated. A path that is
    /// missing for a moment (between a rename and the new file) is no rotation yet.
    pub fn follow_rotation(&mut self, path: &Path) -> io::Result<Option<Rotation>> {
        let ours = self.reader.get_ref().metadata()?;
        let rotation = if self.rotated_away(path)? {
            if ours.len() > self.offset {
                // Written to before it was renamed away: read that first.
                return Ok(None);
            }
            Rotation::Replaced
        } else if self.rewritten || ours.len() < self.offset || !self.same_before_offset()? {
            Rotation::Truncated
        } else {
            return Ok(None);
        };
        let read = self.block.reads();
        *self = LineReader {
            follow: self.follow,
            ..LineReader::new(File::open(path)?, 0, 1, self.max_line, false)?
        };
        self.block.read_in(read);
        Ok(Some(rotation))
    }

    /// Are the bytes before the offset still those this reader knows?
    fn same_before_offset(&self) -> io::Result<bool> {
        match self.known_tail {
            Some((at, tail)) if at == self.offset => tail.matches(self.reader.get_ref(), at),
            _ => Ok(true),
        }
    }

    /// Does `path` name another file than the one being read?
    pub fn rotated_away(&self, path: &Path) -> io::Result<bool> {
        let ours = self.reader.get_ref().metadata()?;
        match fs::metadata(path) {
            Ok(now) => Ok(file_id(&now) != file_id(&ours)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Saves which file is being read (`source.file_id`, its inode on Unix).
    pub fn save_file_id(&self, positions: &mut BTreeMap<String, u64>) -> Result<(), String> {
        let meta = self
            .reader
            .get_ref()
            .metadata()
            .map_err(|e| format!("looking at the input: {e}"))?;
        positions.insert("source.file_id".into(), file_id(&meta));
        Ok(())
    }

    /// Length of the underlying file now.
    pub fn file_len(&self) -> u64 {
        self.reader
            .get_ref()
            .metadata()
            .map(|m| m.len())
            .unwrap_or(0)
    }
}

/// The file's identity on its device (0 where std has none: then only the bytes tell).
pub fn file_id(meta: &fs::Metadata) -> u64 {
    #[cfg(unix)]
    {
        std::os::unix::fs::MetadataExt::ino(meta)
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        0
    }
}

/// The UTF-8 byte order mark.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// A line of only whitespace (a trailing `echo >> file`, a `\r` of a CRLF blank line):
/// not an event, skipped.
pub fn is_blank(line: &[u8]) -> bool {
    line.iter().all(u8::is_ascii_whitespace)
}

fn memchr(s: &[u8]) -> Option<usize> {
    memchr::memchr(b'\n', s)
}

/// Parses one line into an event, or says what is wrong with it (field path included).
///
/// ```
/// use simplestream_runtime::runner::input::parse_event;
/// #[derive(serde::Deserialize, Debug)]
/// struct Order { customer: String, amount: f64 }
/// assert!(parse_event::<Order>(br#"{"customer":"C1","amount":1.5}"#).is_ok());
/// assert_eq!(parse_event::<Order>(br#"{"amount":1.5}"#).unwrap_err(), "missing field `customer`");
/// assert_eq!(parse_event::<Order>(br#"{"customer":"C1","amount":"x"}"#).unwrap_err(),
///            "field `amount`: invalid type: string \"x\", expected f64");
/// // Only JSON objects are events: serde would read an array into the struct.
/// assert!(parse_event::<Order>(br#"["C1",1.5]"#).unwrap_err().starts_with("a JSON array"));
/// assert_eq!(parse_event::<Order>(br#"{"customer":"C1","amount":1.5} x"#).unwrap_err(),
///            "trailing characters");
/// ```
pub fn parse_event<T: DeserializeOwned>(line: &[u8]) -> Result<T, String> {
    // Parsing the bytes (`from_slice`) would check every key and string on its own:
    // slower than one check of the line.
    match std::str::from_utf8(line) {
        Ok(text) => parse_text(text),
        Err(_) => explain::<T>(line),
    }
}

/// [`parse_event`] of a line known to be UTF-8.
fn parse_text<T: DeserializeOwned>(text: &str) -> Result<T, String> {
    match parse_fast(text) {
        Some(v) => Ok(v),
        None => explain::<T>(text.as_bytes()),
    }
}

/// The happy path of [`parse_event`]: a parse without path tracking. Only a line that
/// fails is parsed again, tracked, to name what is wrong with it.
pub(super) fn parse_fast<T: DeserializeOwned>(text: &str) -> Option<T> {
    if text.starts_with('{') || text.trim_start().starts_with('{') {
        return serde_json::from_str(text).ok();
    }
    None
}

/// Why `line` is not an event of type `T` (line and field named by the caller).
fn explain<T: DeserializeOwned>(line: &[u8]) -> Result<T, String> {
    let text = match std::str::from_utf8(line) {
        Ok(t) => t,
        Err(e) => {
            return Err(format!(
                "not valid UTF-8 (bad byte at column {})",
                e.valid_up_to() + 1
            ))
        }
    };
    match text.trim_start().chars().next() {
        None => return Err("empty line (expected a JSON object)".into()),
        Some('{') => {}
        Some('[') => {
            return Err("a JSON array, not an object: each line must be one JSON object".into())
        }
        Some(c) => {
            return Err(format!(
                "not a JSON object (it starts with {c:?}): each line must be one JSON object"
            ))
        }
    }
    let mut de = serde_json::Deserializer::from_slice(line);
    let r: Result<T, _> = serde_path_to_error::deserialize(&mut de);
    match r {
        Ok(v) => de
            .end()
            .map(|_| v)
            .map_err(|e| strip_position(&e.to_string())),
        Err(e) => {
            let path = e.path().to_string();
            let msg = strip_position(&e.inner().to_string());
            // `.` is the root; `?` is an unknown position (syntax errors): no field to name.
            if path == "." || path == "?" || path.is_empty() {
                Err(msg)
            } else {
                Err(format!("field `{path}`: {msg}"))
            }
        }
    }
}

fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file rewritten in place past the offset read so far: an error without
    /// `--follow`, a copytruncate rotation with it; appending is neither.
    #[test]
    fn a_file_refilled_under_the_reader_is_noticed() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("in.jsonl");
        for follow in [false, true] {
            std::fs::write(&p, b"{\"a\":1}\n{\"a\":2}\n").unwrap();
            let mut r = LineReader::new(File::open(&p).unwrap(), 0, 1, 1 << 20, false).unwrap();
            r.follow = follow;
            for _ in 0..2 {
                let Read::Line { bytes, .. } = r.next_line().unwrap() else {
                    panic!("a line")
                };
                r.advance(bytes);
            }
            r.save_tail(&mut BTreeMap::new()).unwrap();
            std::fs::write(&p, b"{\"a\":1}\n{\"a\":2}\n{\"a\":3}\n").unwrap();
            assert!(matches!(
                r.next_line().unwrap(),
                Read::Line { bytes: 8, .. }
            ));
            r.advance(8);
            r.save_tail(&mut BTreeMap::new()).unwrap();
            std::fs::write(&p, b"{\"b\":1}\n{\"b\":2}\n{\"b\":3}\n{\"b\":4}\n").unwrap();
            if follow {
                assert_eq!(r.next_line().unwrap(), Read::Eof);
                assert_eq!(r.follow_rotation(&p).unwrap(), Some(Rotation::Truncated));
                assert_eq!(r.offset, 0);
                assert!(matches!(
                    r.next_line().unwrap(),
                    Read::Line { bytes: 8, .. }
                ));
                assert_eq!(r.line(), b"{\"b\":1}");
            } else {
                let err = r.next_line().unwrap_err();
                assert!(
                    err.to_string().contains("changed while it was being read"),
                    "{err}"
                );
            }
        }
    }
}

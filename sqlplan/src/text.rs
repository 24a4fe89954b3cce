//! Positions: sqlparser's 1-based lines and character columns as byte ranges of the
//! SQL text, and back.

use std::ops::Range;

use sqlparser::parser::ParserError;
use sqlparser::tokenizer::{Location, Span};

use crate::{Error, Host};

/// The SQL being read, and for which front end.
#[derive(Clone, Copy)]
pub struct Cx<'a> {
    /// The SQL text.
    pub text: &'a str,
    /// Who reads it.
    pub host: Host,
}

impl Cx<'_> {
    /// Byte offset of a location.
    fn offset(&self, loc: Location) -> Option<usize> {
        if loc.line == 0 {
            return None;
        }
        let line_start: usize = self
            .text
            .split_inclusive('\n')
            .take(loc.line as usize - 1)
            .map(str::len)
            .sum();
        let rest = self.text.get(line_start..)?;
        let col = rest
            .char_indices()
            .nth(loc.column.saturating_sub(1) as usize)
            .map_or(rest.len(), |(i, _)| i);
        Some(line_start + col)
    }

    /// The bytes a span covers, if it is known.
    pub fn range(&self, at: Span) -> Option<Range<usize>> {
        let a = self.offset(at.start)?;
        let b = self.offset(at.end).unwrap_or(a).max(a);
        Some(a..b)
    }

    /// An error at `at`.
    pub fn error(&self, at: Span, msg: impl Into<String>) -> Error {
        Error::new(self.range(at), msg)
    }

    /// One of two wordings, the macro's or the interpreter's.
    pub fn pick<'m>(&self, macro_: &'m str, interpreter: &'m str) -> &'m str {
        match self.host {
            Host::Macro => macro_,
            Host::Interpreter => interpreter,
        }
    }

    /// A parse error of sqlparser (which ends in `at Line: L, Column: C`); one found at
    /// the end of the text (which sqlparser gives no position) points just past it.
    pub fn parse_error(&self, e: &ParserError) -> Error {
        let msg = match e {
            ParserError::TokenizerError(m) | ParserError::ParserError(m) => m.clone(),
            other => other.to_string(),
        };
        let (text, at) = match msg.rfind(" at Line: ") {
            Some(i) => (msg[..i].to_string(), parse_line_col(&msg[i + 10..])),
            None => (msg.clone(), None),
        };
        let at = match at {
            Some((line, column)) => self.offset(Location { line, column }).map(|a| {
                let len = self.text[a..].chars().next().map_or(0, char::len_utf8);
                a..a + len
            }),
            None if text.ends_with("EOF") => {
                let end = self.text.trim_end().len();
                Some(end..end)
            }
            None => None,
        };
        Error::new(at, format!("SQL syntax error: {text}"))
    }
}

/// `1, Column: 5` to (1, 5).
fn parse_line_col(s: &str) -> Option<(u64, u64)> {
    let (line, rest) = s.split_once(", Column: ")?;
    let col: String = rest.chars().take_while(char::is_ascii_digit).collect();
    Some((line.trim().parse().ok()?, col.parse().ok()?))
}

/// The 1-based line and character column of byte `offset` in `text`.
///
/// ```
/// assert_eq!(simplestream_sqlplan::line_col("SELECT *\nFROM orders", 14), (2, 6));
/// ```
pub fn line_col(text: &str, offset: usize) -> (u64, u64) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let start = before.rfind('\n').map_or(0, |i| i + 1);
    (line as u64, before[start..].chars().count() as u64 + 1)
}

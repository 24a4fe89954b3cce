//! An SQL string literal: its text, and spans of words inside it for errors.

use proc_macro2::Span;
use sqlparser::tokenizer::{Location, Span as SqlSpan};
use syn::LitStr;

/// One `sql "..."` literal.
pub struct SqlText {
    /// The literal as written.
    pub lit: LitStr,
    /// Its value: the SQL.
    pub text: String,
    /// Bytes before the SQL in the literal's source (`r#"`), if the value is the source
    /// text unchanged (a raw string, or one without escapes).
    prefix: Option<usize>,
}

impl SqlText {
    /// The SQL of `lit`.
    pub fn new(lit: LitStr) -> Self {
        let repr = lit.token().to_string();
        let exact = repr.starts_with('r') || !repr.contains('\\');
        let prefix = repr.find('"').filter(|_| exact).map(|i| i + 1);
        SqlText {
            text: lit.value(),
            lit,
            prefix,
        }
    }

    /// Byte offset of a (1-based) line and character column.
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

    /// The span of the word at `at` inside the literal where the compiler can point
    /// into a literal, else the literal's.
    pub fn span(&self, at: SqlSpan) -> Span {
        let inner = (|| {
            let p = self.prefix?;
            let (a, b) = (self.offset(at.start)?, self.offset(at.end)?);
            self.lit.token().subspan(p + a..p + b.max(a + 1))
        })();
        inner.unwrap_or_else(|| self.lit.span())
    }

    /// An error about the SQL at `at`: the message names the position, as the span
    /// may only be the literal's.
    pub fn error(&self, at: SqlSpan, msg: impl std::fmt::Display) -> syn::Error {
        let pos = if at.start.line == 0 {
            String::new()
        } else {
            format!(" (SQL line {}, column {})", at.start.line, at.start.column)
        };
        syn::Error::new(self.span(at), format!("{msg}{pos}"))
    }

    /// A parse error of sqlparser (which ends in `at Line: L, Column: C`).
    pub fn parse_error(&self, e: &sqlparser::parser::ParserError) -> syn::Error {
        let msg = match e {
            sqlparser::parser::ParserError::TokenizerError(m)
            | sqlparser::parser::ParserError::ParserError(m) => m.clone(),
            other => other.to_string(),
        };
        let (text, at) = match msg.rfind(" at Line: ") {
            Some(i) => (msg[..i].to_string(), line_col(&msg[i + 10..])),
            None => (msg.clone(), None),
        };
        let at = at.map_or(SqlSpan::empty(), |(line, column)| {
            let l = Location { line, column };
            SqlSpan::new(
                l,
                Location {
                    line,
                    column: column + 1,
                },
            )
        });
        self.error(at, format!("SQL syntax error: {text}"))
    }
}

/// `1, Column: 5` to (1, 5).
fn line_col(s: &str) -> Option<(u64, u64)> {
    let (line, rest) = s.split_once(", Column: ")?;
    let col: String = rest.chars().take_while(char::is_ascii_digit).collect();
    Some((line.trim().parse().ok()?, col.parse().ok()?))
}

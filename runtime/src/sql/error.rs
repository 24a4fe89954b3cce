//! Errors in a query, with the position they point at.

use std::fmt;

/// A query that cannot run: what is wrong, and where (1-based line and column).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlError {
    /// What is wrong, with a hint.
    pub msg: String,
    /// Line and column of the offending word, when known.
    pub at: Option<(u64, u64)>,
    /// How many characters to underline.
    pub len: usize,
}

impl SqlError {
    /// An error at a sqlparser span.
    pub fn at(span: sqlparser::tokenizer::Span, msg: impl Into<String>) -> SqlError {
        let at = (span.start.line > 0).then_some((span.start.line, span.start.column));
        let len = if span.end.line == span.start.line && span.end.column > span.start.column {
            (span.end.column - span.start.column) as usize
        } else {
            1
        };
        SqlError {
            msg: msg.into(),
            at,
            len,
        }
    }

    /// An error about the whole query.
    pub fn whole(msg: impl Into<String>) -> SqlError {
        SqlError {
            msg: msg.into(),
            at: None,
            len: 1,
        }
    }

    /// The message, the query's line it points into, and a caret under the offending word.
    ///
    /// ```
    /// use simplestream_runtime::sql::SqlError;
    /// let e = SqlError { msg: "unknown column `amout`".into(), at: Some((1, 12)), len: 5 };
    /// assert_eq!(
    ///     e.render("SELECT SUM(amout) FROM orders"),
    ///     "unknown column `amout` (line 1, column 12)\n  SELECT SUM(amout) FROM orders\n             ^^^^^"
    /// );
    /// ```
    pub fn render(&self, sql: &str) -> String {
        let Some((line, col)) = self.at else {
            return self.msg.clone();
        };
        let text = sql
            .lines()
            .nth(line.saturating_sub(1) as usize)
            .unwrap_or("");
        let pad: String = text
            .chars()
            .take(col.saturating_sub(1) as usize)
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        format!(
            "{} (line {line}, column {col})\n  {text}\n  {pad}{}",
            self.msg,
            "^".repeat(self.len.max(1))
        )
    }
}

impl fmt::Display for SqlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.at {
            Some((l, c)) => write!(f, "{} (line {l}, column {c})", self.msg),
            None => f.write_str(&self.msg),
        }
    }
}

impl std::error::Error for SqlError {}

/// A sqlparser error (which ends in `at Line: L, Column: C`) as a [`SqlError`]; one
/// found at the end of `sql` (which sqlparser gives no position) points just past it.
pub fn from_parser(e: &sqlparser::parser::ParserError, sql: &str) -> SqlError {
    let msg = match e {
        sqlparser::parser::ParserError::TokenizerError(m)
        | sqlparser::parser::ParserError::ParserError(m) => m.clone(),
        other => other.to_string(),
    };
    let (text, at) = match msg.rfind(" at Line: ") {
        Some(i) => (msg[..i].to_string(), line_col(&msg[i + 10..])),
        None => (msg.clone(), None),
    };
    let at = at.or_else(|| {
        text.ends_with("EOF").then(|| {
            let line = sql.trim_end().lines().count().max(1);
            let last = sql.trim_end().lines().last().unwrap_or("");
            (line as u64, last.chars().count() as u64 + 1)
        })
    });
    SqlError {
        msg: format!("SQL syntax error: {text}"),
        at,
        len: 1,
    }
}

/// `1, Column: 5` to (1, 5).
fn line_col(s: &str) -> Option<(u64, u64)> {
    let (line, rest) = s.split_once(", Column: ")?;
    let col: String = rest.chars().take_while(char::is_ascii_digit).collect();
    Some((line.trim().parse().ok()?, col.parse().ok()?))
}

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
    /// A plan's error, its byte range as a line, column and length in `sql`.
    pub fn of_plan(e: simplestream_sqlplan::Error, sql: &str) -> SqlError {
        let Some(r) = e.at else {
            return SqlError::whole(e.msg);
        };
        let words = sql.get(r.clone()).unwrap_or("");
        let len = match words.chars().count() {
            n if n > 0 && !words.contains('\n') => n,
            _ => 1,
        };
        SqlError {
            msg: e.msg,
            at: Some(simplestream_sqlplan::line_col(sql, r.start)),
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

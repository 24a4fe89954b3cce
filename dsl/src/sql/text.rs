//! An SQL string literal: its text, and spans of words inside it for errors.

use std::ops::Range;

use proc_macro2::Span;
use simplestream_sqlplan::{line_col, Error};
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

    /// The span of the bytes `at` of the SQL where the compiler can point into a
    /// literal, else the literal's.
    pub fn span(&self, at: &Option<Range<usize>>) -> Span {
        let inner = (|| {
            let (p, at) = (self.prefix?, at.as_ref()?);
            self.lit
                .token()
                .subspan(p + at.start..p + at.end.max(at.start + 1))
        })();
        inner.unwrap_or_else(|| self.lit.span())
    }

    /// A plan's error as a compile error: the message names the position, as the span
    /// may only be the literal's.
    pub fn error(&self, e: &Error) -> syn::Error {
        let pos = match &e.at {
            Some(at) => {
                let (line, column) = line_col(&self.text, at.start);
                format!(" (SQL line {line}, column {column})")
            }
            None => String::new(),
        };
        syn::Error::new(self.span(&e.at), format!("{}{pos}", e.msg))
    }
}

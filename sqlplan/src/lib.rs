//! SimpleStream's SQL subset, read once: [`parse`] turns SQL text into statements, and
//! [`Script::plan`] a statement into a [`Select`] plan (source, `WHERE`, group key,
//! window, aggregates with their output names, `HAVING`, or a join with its key columns
//! and window or interval bounds). `pipeline!` lowers the plan into DSL stages, the
//! interpreter of `simplestream sql` into its dynamic operators; what the subset refuses
//! is refused here, with the byte range of the offending words and a hint.
//!
//! Columns are the front end's: the plan asks a [`Columns`] for each one it meets (the
//! macro knows the source type's fields, the interpreter infers or declares them).
//!
//! ```
//! use simplestream_sqlplan::{parse, Body, Host};
//! # use simplestream_sqlplan::{Columns, Error, Ident, Side, TableRef, Want};
//! # struct Cols(Vec<String>);
//! # impl Columns for Cols {
//! #     fn stream(&mut self, _: Side, _: &TableRef) -> Result<(), Error> { Ok(()) }
//! #     fn column(&mut self, _: Side, id: &Ident, _: Want, _: &str) -> Result<usize, Error> {
//! #         Ok(self.0.iter().position(|c| *c == id.value).unwrap_or_else(|| { self.0.push(id.value.clone()); self.0.len() - 1 }))
//! #     }
//! #     fn name(&self, _: Side, col: usize) -> String { self.0[col].clone() }
//! # }
//! let sql = "SELECT customer, COUNT(*) AS n FROM orders GROUP BY customer, TUMBLE(ts, INTERVAL '5' MINUTE)";
//! let script = parse(sql, Host::Interpreter).unwrap();
//! let select = script.plan(0, &mut Cols(Vec::new())).unwrap();
//! let Body::Grouped(g) = &select.body else { panic!() };
//! assert_eq!(g.output, ["customer", "window_start", "window_end", "n"]);
//! let bad = "SELECT customer, COUNT(*) FROM orders GROUP BY customer LIMIT 5";
//! let err = parse(bad, Host::Macro).unwrap().plan(0, &mut Cols(Vec::new())).unwrap_err();
//! assert!(err.msg.starts_with("LIMIT is not supported"), "{}", err.msg);
//! assert!(bad[..err.at.unwrap().start].ends_with("LIMIT "), "it points at the clause");
//! ```

#![forbid(unsafe_code)]

mod expr;
mod join;
mod names;
mod script;
mod select;
mod text;
mod window;

use std::ops::Range;

pub use expr::{BinOp, Expr, ExprKind, Lit};
pub use join::{Join, JoinKind};
pub use names::{distance, find, nearest, normalize};
pub use script::{parse, Script, SelectStmt, Statement, Table, TableColumn};
pub use select::{Agg, Body, Func, Grouped, Key, Select};
pub use text::line_col;
pub use window::{Win, Window};

/// Which front end reads the SQL: where they offer different things, hints differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Host {
    /// `pipeline!`'s `sql "..."` statements.
    Macro,
    /// `simplestream sql` (and the playground).
    Interpreter,
}

/// SQL that is not in the subset, or does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// What is wrong, with a hint.
    pub msg: String,
    /// Bytes of the SQL text it points at, when known (empty at the end of the text).
    pub at: Option<Range<usize>>,
}

impl Error {
    /// An error at `at`.
    pub fn new(at: Option<Range<usize>>, msg: impl Into<String>) -> Error {
        Error {
            msg: msg.into(),
            at,
        }
    }
}

/// A name as written: a stream, a column or a view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ident {
    /// The name.
    pub value: String,
    /// True if quoted (`"Amount"`): then only the exact name matches.
    pub quoted: bool,
    /// Where it is written.
    pub at: Option<Range<usize>>,
}

/// A stream a statement reads: `FROM orders o` (or `JOIN`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableRef {
    /// The stream's name.
    pub name: Ident,
    /// Names that qualify its columns: the stream's, and its alias if any.
    pub qualifiers: Vec<String>,
}

/// Which stream of a statement a column belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The stream `FROM` names (a join's left one).
    From,
    /// The stream a `JOIN` adds (the right one).
    Joined,
}

/// What a use of a column needs it to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// A key (`GROUP BY`, a join's `ON`): a string or an integer.
    Key,
    /// `SUM`/`AVG`: a number.
    Number,
    /// `MIN`/`MAX`: a number or a string.
    Ordered,
    /// Event time: integer ms.
    Time,
    /// Anything (compared in `WHERE`, `COUNT(col)`, the select list).
    Any,
}

/// The front end's columns: what the streams are, and what their columns are.
pub trait Columns {
    /// Resolves the stream `t` as `side`, before any of its columns.
    fn stream(&mut self, side: Side, t: &TableRef) -> Result<(), Error>;
    /// The index of column `id` of `side`, used as `want`; `what` names the use for errors
    /// (`WHERE`, `SUM`).
    fn column(&mut self, side: Side, id: &Ident, want: Want, what: &str) -> Result<usize, Error>;
    /// The name of a column [`column`](Columns::column) gave.
    fn name(&self, side: Side, col: usize) -> String;
}

#[cfg(test)]
mod tests;

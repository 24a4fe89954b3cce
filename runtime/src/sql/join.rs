//! `SELECT * FROM a JOIN b ON a.k = b.k AND ...` for the interpreter: the plan's join
//! as a [`JoinSpec`], the stage `pipeline!` builds for the same SQL (a windowed `join`
//! with `TUMBLE(a.ts, ..) = TUMBLE(b.ts, ..)` or `HOP`, an `interval_join` with
//! `b.ts BETWEEN a.ts - INTERVAL .. AND a.ts + INTERVAL ..`).

use simplestream_sqlplan::{Error, Join};

pub use simplestream_sqlplan::JoinKind;

use super::columns::{leak, Columns};
use super::value::{Schema, Ty};

/// A join of the query's source (the left stream) with a second one.
#[derive(Debug, Clone)]
pub struct JoinSpec {
    /// The right stream's name.
    pub right: &'static str,
    /// Its columns.
    pub right_input: Schema,
    /// Its event-time column.
    pub right_time: usize,
    /// The key columns: left, right.
    pub keys: (usize, usize),
    /// The key's name in a joined row (the left key column's).
    pub key_name: &'static str,
    /// The key's type (`Str` or `Int`).
    pub key_ty: Ty,
    /// Window or interval.
    pub kind: JoinKind,
}

/// The spec of the planned join `j` of streams `left` and `right` (its columns set
/// later, once all are known).
pub fn spec(j: &Join, left: &Columns, right: &Columns) -> Result<JoinSpec, Error> {
    let (lk, rk) = j.keys;
    let (lt, rt) = (left.schema.types[lk], right.schema.types[rk]);
    if lt != rt {
        return Err(Error::new(
            j.on.clone(),
            format!(
                "the join key's columns have different types: {} and {} (declare them alike with CREATE TABLE)",
                lt.rust(),
                rt.rust()
            ),
        ));
    }
    Ok(JoinSpec {
        right: leak(&right.stream),
        right_input: Schema::default(),
        right_time: j.times.1,
        keys: (lk, rk),
        key_name: left.schema.names[lk],
        key_ty: lt,
        kind: j.kind,
    })
}

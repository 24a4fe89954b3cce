//! `SELECT * FROM a JOIN b ON a.k = b.k AND ...` for the interpreter: the plan's join
//! as a [`JoinSpec`], the stage `pipeline!` builds for the same SQL (a windowed `join`
//! with `TUMBLE(a.ts, ..) = TUMBLE(b.ts, ..)` or `HOP`, an `interval_join` with
//! `b.ts BETWEEN a.ts - INTERVAL .. AND a.ts + INTERVAL ..`).

pub use simplestream_sqlplan::JoinKind;

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

#[cfg(feature = "sql-join")]
pub use lowering::lower;

#[cfg(feature = "sql-join")]
mod lowering {
    use simplestream_sqlplan::{Error, Ident, Join, Want};

    use super::{JoinKind, JoinSpec};
    use crate::sql::columns::{leak, Columns};
    use crate::sql::query::Query;
    use crate::sql::value::{Schema, Ty};

    /// Lowers the planned join `j` of streams `left` and `right` into `q`;
    /// `event_time` (`--event-time`) names both streams' time column.
    pub fn lower(
        q: &mut Query,
        j: &Join,
        left: &mut Columns,
        mut right: Columns,
        event_time: Option<&Ident>,
    ) -> Result<(), Error> {
        let mut spec = spec(j, left, &right)?;
        q.time = Some(j.times.0);
        if let Some(id) = event_time {
            q.time = Some(left.use_col(id, Want::Time, "--event-time")?);
            spec.right_time = right.use_col(id, Want::Time, "--event-time")?;
        }
        q.source = leak(&left.stream);
        q.output = output(&spec, q.source);
        spec.right_input = right.schema;
        q.join = Some(spec);
        Ok(())
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

    /// The row of a join: the key, the window's bounds if windowed, both events.
    fn output(spec: &JoinSpec, left: &'static str) -> Schema {
        let mut output = Schema::default();
        output.names.push(spec.key_name);
        output.types.push(spec.key_ty);
        if let JoinKind::Window(_) = spec.kind {
            output.names.extend(["window_start", "window_end"]);
            output.types.extend([Ty::Int, Ty::Int]);
        }
        output.names.extend([left, spec.right]);
        output.types.extend([Ty::Any, Ty::Any]);
        output
    }
}

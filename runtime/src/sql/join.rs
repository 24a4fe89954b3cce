//! `SELECT * FROM a JOIN b ON a.k = b.k AND ...` for the interpreter: the ON clause read
//! into a [`JoinSpec`], the stage `pipeline!` builds for the same SQL (a windowed
//! `join` with `TUMBLE(a.ts, ..) = TUMBLE(b.ts, ..)` or `HOP`, an `interval_join` with
//! `b.ts BETWEEN a.ts - INTERVAL .. AND a.ts + INTERVAL ..`).

use sqlparser::ast::{
    BinaryOperator, Expr, Ident, JoinConstraint, JoinOperator, Select, SelectItem, Spanned,
    TableFactor, TableWithJoins,
};

use super::columns::{leak, Columns, Want};
use super::error::SqlError;
use super::value::{Schema, Ty};
use super::window::{self, interval_ms, Win};

/// What pairs two events of a join.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinKind {
    /// The same key in the same window (`TUMBLE` or `HOP`).
    Window(Win),
    /// The same key, the right event within `[left - lower, left + upper]` ms.
    Interval {
        /// ms before the left event.
        lower: i64,
        /// ms after the left event.
        upper: i64,
    },
}

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

/// The two streams of a join as the query resolves them.
pub struct Sides {
    /// Left, then right: columns and the names that qualify them.
    pub cols: [Columns; 2],
    names: [Vec<String>; 2],
}

/// The two streams `t` names, their columns from `tables` (declared) or inferred.
pub fn sides(s: &Select, t: &TableWithJoins, tables: &[Columns]) -> Result<Sides, SqlError> {
    let [j] = t.joins.as_slice() else {
        return Err(SqlError::at(
            t.joins[1].relation.span(),
            "a SELECT joins two streams",
        ));
    };
    if !matches!(
        j.join_operator,
        JoinOperator::Join(JoinConstraint::On(_)) | JoinOperator::Inner(JoinConstraint::On(_))
    ) {
        return Err(SqlError::at(
            j.relation.span(),
            "only an inner JOIN ... ON is supported",
        ));
    }
    if !matches!(s.projection.as_slice(), [SelectItem::Wildcard(_)]) {
        return Err(SqlError::at(
            s.span(),
            "a join selects `*`: its rows hold both events, named after the streams",
        ));
    }
    for (what, clause) in [
        ("WHERE", s.selection.as_ref()),
        ("HAVING", s.having.as_ref()),
    ] {
        if let Some(c) = clause {
            return Err(SqlError::at(
                c.span(),
                format!("{what} on a join is not supported yet; filter the inputs in `pipeline!` views first"),
            ));
        }
    }
    if let sqlparser::ast::GroupByExpr::Expressions(g, _) = &s.group_by {
        if let Some(g) = g.first() {
            return Err(SqlError::at(
                g.span(),
                "GROUP BY on a join is not supported: aggregate the joined rows in `pipeline!`",
            ));
        }
    }
    let (lc, ln) = side(&t.relation, tables)?;
    let (rc, rn) = side(&j.relation, tables)?;
    if lc.stream == rc.stream {
        return Err(SqlError::at(
            j.relation.span(),
            "a join reads two different streams",
        ));
    }
    Ok(Sides {
        cols: [lc, rc],
        names: [ln, rn],
    })
}

fn side(t: &TableFactor, tables: &[Columns]) -> Result<(Columns, Vec<String>), SqlError> {
    let TableFactor::Table { name, alias, .. } = t else {
        return Err(SqlError::at(t.span(), "JOIN names a stream"));
    };
    let id = match name.0.as_slice() {
        [p] => p.as_ident(),
        _ => None,
    };
    let Some(id) = id else {
        return Err(SqlError::at(name.span(), "JOIN names a stream by one word"));
    };
    let cols = match tables {
        [] => Columns {
            stream: id.value.clone(),
            schema: Schema::default(),
            declared: false,
        },
        _ => match tables
            .iter()
            .find(|c| c.stream.eq_ignore_ascii_case(&id.value))
        {
            Some(c) => c.clone(),
            None => {
                let declared: Vec<&str> = tables.iter().map(|c| c.stream.as_str()).collect();
                return Err(SqlError::at(
                    id.span,
                    format!(
                        "unknown stream `{}`; CREATE TABLE declared {}",
                        id.value,
                        declared.join(", ")
                    ),
                ));
            }
        },
    };
    let mut names = vec![id.value.clone()];
    names.extend(alias.iter().map(|a| a.name.value.clone()));
    Ok((cols, names))
}

impl Sides {
    /// Reads `ON` (`on` of the join in `t`): the join, and each side's time column.
    pub fn lower(&mut self, t: &TableWithJoins) -> Result<(JoinSpec, usize), SqlError> {
        let on = match &t.joins[0].join_operator {
            JoinOperator::Join(JoinConstraint::On(on))
            | JoinOperator::Inner(JoinConstraint::On(on)) => on,
            _ => unreachable!("checked by `sides`"),
        };
        let mut conds = Vec::new();
        conjuncts(on, &mut conds);
        let (mut key, mut bounds, mut window) = (None, None, None);
        for c in conds {
            match c {
                Expr::BinaryOp { left: a, op: BinaryOperator::Eq, right: b }
                    if window.is_none() && matches!(**a, Expr::Function(_)) =>
                {
                    window = Some(self.same_window(a, b)?);
                }
                Expr::BinaryOp { left: a, op: BinaryOperator::Eq, right: b } if key.is_none() => {
                    key = Some(self.key_columns(a, b)?);
                }
                Expr::Between { expr: e, negated: false, low, high } if bounds.is_none() => {
                    bounds = Some(self.between(e, low, high)?);
                }
                other => return Err(SqlError::at(other.span(), "a join's ON is `l.key = r.key AND r.ts BETWEEN l.ts - INTERVAL '2' SECOND AND l.ts + INTERVAL '5' SECOND`")),
            }
        }
        let Some((lk, rk)) = key else {
            return Err(SqlError::at(
                on.span(),
                "a join's ON needs the key equality `l.key = r.key`",
            ));
        };
        let (kind, times) = match (bounds, window) {
            (None, Some((w, times))) => (JoinKind::Window(w), times),
            (Some((lower, upper, times)), None) => (JoinKind::Interval { lower, upper }, times),
            (Some(_), Some(_)) => return Err(SqlError::at(on.span(), "a join is windowed (`TUMBLE(l.ts, ..) = TUMBLE(r.ts, ..)`) or bounded in time (`r.ts BETWEEN ..`), not both")),
            (None, None) => return Err(SqlError::at(on.span(), "a join needs a window, `TUMBLE(l.ts, INTERVAL '1' MINUTE) = TUMBLE(r.ts, INTERVAL '1' MINUTE)` (or HOP), or time bounds, `r.ts BETWEEN l.ts - INTERVAL .. AND l.ts + INTERVAL ..`")),
        };
        let (lt, rt) = (self.cols[0].schema.types[lk], self.cols[1].schema.types[rk]);
        if lt != rt {
            return Err(SqlError::at(
                on.span(),
                format!(
                    "the join key's columns have different types: {} and {} (declare them alike with CREATE TABLE)",
                    lt.rust(),
                    rt.rust()
                ),
            ));
        }
        let spec = JoinSpec {
            right: leak(&self.cols[1].stream),
            right_input: Schema::default(),
            right_time: times.1,
            keys: (lk, rk),
            key_name: self.cols[0].schema.names[lk],
            key_ty: lt,
            kind,
        };
        Ok((spec, times.0))
    }

    /// The side (0 left, 1 right) whose name qualifies `q`.
    fn side_of(&self, q: &Ident) -> Option<usize> {
        (0..2).find(|&i| {
            self.names[i]
                .iter()
                .any(|n| n.eq_ignore_ascii_case(&q.value))
        })
    }

    /// The column `e` (`s.col`) of side `want_side`, used as `want`.
    fn column(
        &mut self,
        e: &Expr,
        want_side: usize,
        want: Want,
        what: &str,
    ) -> Result<usize, SqlError> {
        let stream = self.names[want_side][0].clone();
        let Expr::CompoundIdentifier(ids) = e else {
            return Err(SqlError::at(
                e.span(),
                format!("{what}: name the column with its stream, `{stream}.col`"),
            ));
        };
        let [q, id] = ids.as_slice() else {
            return Err(SqlError::at(e.span(), format!("{what}: `{stream}.col`")));
        };
        match self.side_of(q) {
            Some(s) if s == want_side => self.cols[s].use_col(id, want, "ON"),
            Some(_) => Err(SqlError::at(q.span, format!("{what}: `{stream}.col`"))),
            None => Err(SqlError::at(
                q.span,
                format!(
                    "unknown table `{}`; this join reads `{}` and `{}`",
                    q.value, self.names[0][0], self.names[1][0]
                ),
            )),
        }
    }

    /// `l.k = r.k`, either way round.
    fn key_columns(&mut self, a: &Expr, b: &Expr) -> Result<(usize, usize), SqlError> {
        let on_right = |e: &Expr| matches!(e, Expr::CompoundIdentifier(ids) if ids.first().is_some_and(|q| self.side_of(q) == Some(1)));
        let (a, b) = if on_right(a) { (b, a) } else { (a, b) };
        Ok((
            self.column(a, 0, Want::Key, "the join key")?,
            self.column(b, 1, Want::Key, "the join key")?,
        ))
    }

    /// `r.ts BETWEEN l.ts - INTERVAL x AND l.ts + INTERVAL y`: x, y in ms, and the times.
    fn between(
        &mut self,
        e: &Expr,
        low: &Expr,
        high: &Expr,
    ) -> Result<(i64, i64, (usize, usize)), SqlError> {
        let rt = self.column(
            e,
            1,
            Want::Time,
            "the time bounds test the right stream's time",
        )?;
        let mut lt = None;
        let mut bound = |b: &Expr, want: BinaryOperator| -> Result<i64, SqlError> {
            let (col, ms) = match b {
                Expr::BinaryOp { left, op, right } if *op == want => {
                    (left.as_ref(), interval_ms(right)?)
                }
                Expr::CompoundIdentifier(_) => (b, 0),
                other => {
                    return Err(SqlError::at(
                        other.span(),
                        format!("a bound is `l.ts {want} INTERVAL '5' SECOND`"),
                    ))
                }
            };
            lt = Some(self.column(col, 0, Want::Time, "a bound is the left stream's time")?);
            Ok(ms)
        };
        let (lower, upper) = (
            bound(low, BinaryOperator::Minus)?,
            bound(high, BinaryOperator::Plus)?,
        );
        Ok((lower, upper, (lt.expect("a bound names it"), rt)))
    }

    /// `TUMBLE(l.ts, d) = TUMBLE(r.ts, d)` (or `HOP`): the window and both times.
    fn same_window(&mut self, a: &Expr, b: &Expr) -> Result<(Win, (usize, usize)), SqlError> {
        let wrong = |e: &Expr| {
            SqlError::at(e.span(), "a windowed join's ON says `TUMBLE(l.ts, INTERVAL '1' MINUTE) = TUMBLE(r.ts, INTERVAL '1' MINUTE)` (or HOP), the left stream's time first")
        };
        let (lw, lt) = window::parse(a)?.ok_or_else(|| wrong(a))?;
        let (rw, rt) = window::parse(b)?.ok_or_else(|| wrong(b))?;
        if lw != rw {
            return Err(SqlError::at(
                b.span(),
                "both sides of a windowed join name the same window",
            ));
        }
        if let Win::Session { .. } = lw {
            return Err(SqlError::at(a.span(), "joins use TUMBLE or HOP windows (or time bounds: `r.ts BETWEEN ..`); SESSION is not supported for joins"));
        }
        let lt = self.cols[0].use_col(&lt, Want::Time, "the window's time")?;
        let rt = self.cols[1].use_col(&rt, Want::Time, "the window's time")?;
        Ok((lw, (lt, rt)))
    }
}

fn conjuncts<'e>(e: &'e Expr, out: &mut Vec<&'e Expr>) {
    match e {
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => {
            conjuncts(left, out);
            conjuncts(right, out);
        }
        Expr::Nested(inner) => conjuncts(inner, out),
        other => out.push(other),
    }
}

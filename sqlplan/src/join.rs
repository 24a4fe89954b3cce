//! `SELECT * FROM a JOIN b ON a.k = b.k AND ...`: a windowed join with
//! `TUMBLE(a.ts, ..) = TUMBLE(b.ts, ..)` (or `HOP`), an interval join with
//! `b.ts BETWEEN a.ts - INTERVAL .. AND a.ts + INTERVAL ..`.

use std::ops::Range;

use sqlparser::ast::{
    self, BinaryOperator, Expr, JoinConstraint, JoinOperator, SelectItem, Spanned, TableWithJoins,
};

use crate::expr::ident;
use crate::select::table;
use crate::text::Cx;
use crate::window::{self, interval_ms, Win};
use crate::{Columns, Error, Side, TableRef, Want};

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

/// A join of the `FROM` stream (left) with a second one (right).
#[derive(Debug, Clone)]
pub struct Join {
    /// The right stream.
    pub right: TableRef,
    /// The key columns: left, right.
    pub keys: (usize, usize),
    /// Window or interval.
    pub kind: JoinKind,
    /// The event-time columns: left, right.
    pub times: (usize, usize),
    /// Where `ON`'s condition is written.
    pub on: Option<Range<usize>>,
}

/// Plans the join of `s`, whose `FROM` is `t`: the left stream and the join.
pub fn plan(
    cx: Cx,
    s: &ast::Select,
    t: &TableWithJoins,
    cols: &mut dyn Columns,
) -> Result<(TableRef, Join), Error> {
    let [j] = t.joins.as_slice() else {
        return Err(cx.error(t.joins[1].relation.span(), "a SELECT joins two streams"));
    };
    let on = match &j.join_operator {
        JoinOperator::Join(JoinConstraint::On(on))
        | JoinOperator::Inner(JoinConstraint::On(on)) => on,
        _ => return Err(cx.error(j.relation.span(), "only an inner JOIN ... ON is supported")),
    };
    if !matches!(s.projection.as_slice(), [SelectItem::Wildcard(_)]) {
        return Err(cx.error(
            s.span(),
            "a join selects `*`: its rows hold both events, named after the streams",
        ));
    }
    let views = cx.pick("views", "`pipeline!` views");
    for (what, clause) in [
        ("WHERE", s.selection.as_ref()),
        ("HAVING", s.having.as_ref()),
    ] {
        if let Some(c) = clause {
            return Err(cx.error(
                c.span(),
                format!(
                    "{what} on a join is not supported yet; filter the inputs in {views} first"
                ),
            ));
        }
    }
    if let ast::GroupByExpr::Expressions(g, _) = &s.group_by {
        if let Some(g) = g.first() {
            let where_ = cx.pick("a DSL stage", "`pipeline!`");
            return Err(cx.error(
                g.span(),
                format!(
                    "GROUP BY on a join is not supported: aggregate the joined rows in {where_}"
                ),
            ));
        }
    }
    let left = table(cx, &t.relation, "JOIN")?;
    let right = table(cx, &j.relation, "JOIN")?;
    cols.stream(Side::From, &left)?;
    cols.stream(Side::Joined, &right)?;
    let mut on_ = On {
        cx,
        names: [&left.qualifiers, &right.qualifiers],
        cols,
    };
    let (keys, kind, times) = on_.read(on)?;
    let join = Join {
        right: right.clone(),
        keys,
        kind,
        times,
        on: cx.range(on.span()),
    };
    Ok((left, join))
}

/// Reads `ON`.
struct On<'a> {
    cx: Cx<'a>,
    names: [&'a [String]; 2],
    cols: &'a mut dyn Columns,
}

type Times = (usize, usize);

impl On<'_> {
    fn read(&mut self, on: &Expr) -> Result<((usize, usize), JoinKind, Times), Error> {
        let cx = self.cx;
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
                other => return Err(cx.error(other.span(), "a join's ON is `l.key = r.key AND r.ts BETWEEN l.ts - INTERVAL '2' SECOND AND l.ts + INTERVAL '5' SECOND`")),
            }
        }
        let Some(keys) = key else {
            return Err(cx.error(
                on.span(),
                "a join's ON needs the key equality `l.key = r.key`",
            ));
        };
        match (bounds, window) {
            (None, Some((w, times))) => Ok((keys, JoinKind::Window(w), times)),
            (Some((lower, upper, times)), None) => Ok((keys, JoinKind::Interval { lower, upper }, times)),
            (Some(_), Some(_)) => Err(cx.error(on.span(), "a join is windowed (`TUMBLE(l.ts, ..) = TUMBLE(r.ts, ..)`) or bounded in time (`r.ts BETWEEN ..`), not both")),
            (None, None) => Err(cx.error(on.span(), "a join needs a window, `TUMBLE(l.ts, INTERVAL '1' MINUTE) = TUMBLE(r.ts, INTERVAL '1' MINUTE)` (or HOP), or time bounds, `r.ts BETWEEN l.ts - INTERVAL .. AND l.ts + INTERVAL ..`")),
        }
    }

    fn index(side: Side) -> usize {
        match side {
            Side::From => 0,
            Side::Joined => 1,
        }
    }

    /// The side whose name qualifies `q`.
    fn side_of(&self, q: &ast::Ident) -> Option<Side> {
        [Side::From, Side::Joined].into_iter().find(|s| {
            self.names[Self::index(*s)]
                .iter()
                .any(|n| n.eq_ignore_ascii_case(&q.value))
        })
    }

    /// The column `e` (`s.col`, or `col` where `bare` allows it) of `side`, used as
    /// `want`; `what` says what it is for errors.
    fn column(
        &mut self,
        e: &Expr,
        side: Side,
        want: Want,
        what: &str,
        use_: &str,
        bare: bool,
    ) -> Result<usize, Error> {
        let cx = self.cx;
        let stream = &self.names[Self::index(side)][0];
        let (q, id) = match e {
            Expr::Identifier(id) if bare => (None, id),
            Expr::CompoundIdentifier(ids) => match ids.as_slice() {
                [q, id] => (Some(q), id),
                _ => return Err(cx.error(e.span(), format!("{what}: `{stream}.col`"))),
            },
            _ => {
                return Err(cx.error(
                    e.span(),
                    format!("{what}: name the column with its stream, `{stream}.col`"),
                ))
            }
        };
        if let Some(q) = q {
            match self.side_of(q) {
                Some(s) if s == side => {}
                Some(_) => return Err(cx.error(q.span, format!("{what}: `{stream}.col`"))),
                None => {
                    let msg = format!(
                        "unknown table `{}`; this join reads `{}` and `{}`",
                        q.value, self.names[0][0], self.names[1][0]
                    );
                    return Err(cx.error(q.span, msg));
                }
            }
        }
        self.cols.column(side, &ident(cx, id), want, use_)
    }

    /// `l.k = r.k`, either way round.
    fn key_columns(&mut self, a: &Expr, b: &Expr) -> Result<(usize, usize), Error> {
        let on_right = |e: &Expr| matches!(e, Expr::CompoundIdentifier(ids) if ids.first().is_some_and(|q| self.side_of(q) == Some(Side::Joined)));
        let (a, b) = if on_right(a) { (b, a) } else { (a, b) };
        Ok((
            self.column(a, Side::From, Want::Key, "the join key", "ON", false)?,
            self.column(b, Side::Joined, Want::Key, "the join key", "ON", false)?,
        ))
    }

    /// `r.ts BETWEEN l.ts - INTERVAL x AND l.ts + INTERVAL y`: x, y in ms, and the times.
    fn between(&mut self, e: &Expr, low: &Expr, high: &Expr) -> Result<(i64, i64, Times), Error> {
        let cx = self.cx;
        let rt = self.column(
            e,
            Side::Joined,
            Want::Time,
            "the time bounds test the right stream's time",
            "ON",
            false,
        )?;
        let mut lt = 0;
        let mut bound = |b: &Expr, want: BinaryOperator| -> Result<i64, Error> {
            let (col, ms) = match b {
                Expr::BinaryOp { left, op, right } if *op == want => {
                    (left.as_ref(), interval_ms(cx, right)?)
                }
                Expr::CompoundIdentifier(_) => (b, 0),
                other => {
                    return Err(cx.error(
                        other.span(),
                        format!("a bound is `l.ts {want} INTERVAL '5' SECOND`"),
                    ))
                }
            };
            lt = self.column(
                col,
                Side::From,
                Want::Time,
                "a bound is the left stream's time",
                "ON",
                false,
            )?;
            Ok(ms)
        };
        let lower = bound(low, BinaryOperator::Minus)?;
        let upper = bound(high, BinaryOperator::Plus)?;
        Ok((lower, upper, (lt, rt)))
    }

    /// `TUMBLE(l.ts, d) = TUMBLE(r.ts, d)` (or `HOP`): the window and both times.
    fn same_window(&mut self, a: &Expr, b: &Expr) -> Result<(Win, Times), Error> {
        let cx = self.cx;
        let wrong = |e: &Expr| {
            cx.error(e.span(), "a windowed join's ON says `TUMBLE(l.ts, INTERVAL '1' MINUTE) = TUMBLE(r.ts, INTERVAL '1' MINUTE)` (or HOP), the left stream's time first")
        };
        let mut side_window = |e: &Expr, side: Side| {
            let mut time = |t: &Expr| match t {
                Expr::Identifier(_) | Expr::CompoundIdentifier(_) => self.column(
                    t,
                    side,
                    Want::Time,
                    "the window's time column",
                    "the window's time",
                    true,
                ),
                _ => Err(window::not_a_time_column(cx, t)),
            };
            window::read(cx, e, &mut time)?.ok_or_else(|| wrong(e))
        };
        let l = side_window(a, Side::From)?;
        let r = side_window(b, Side::Joined)?;
        if l.win != r.win {
            return Err(cx.error(
                b.span(),
                "both sides of a windowed join name the same window",
            ));
        }
        if let Win::Session { .. } = l.win {
            return Err(cx.error(a.span(), "joins use TUMBLE or HOP windows (or time bounds: `r.ts BETWEEN ..`); SESSION is not supported for joins"));
        }
        Ok((l.win, (l.time, r.time)))
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

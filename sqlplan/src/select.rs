//! One query planned: `SELECT ... FROM stream [WHERE ..] [GROUP BY key, window]
//! [HAVING ..]` (or a join, see [`crate::join`]), with what the subset refuses.

use std::ops::Range;

use sqlparser::ast::{
    self, Function, FunctionArg, FunctionArgExpr, FunctionArguments, GroupByExpr, SelectItem,
    SetExpr, Spanned, TableFactor,
};

use crate::expr::{self, check_qualifier, ident, Expr, Scope};
use crate::names::nearest;
use crate::script::one_word;
use crate::text::Cx;
use crate::window::{self, Win, Window};
use crate::{join, Columns, Error, Join, Side, TableRef, Want};

/// A planned query.
#[derive(Debug, Clone)]
pub struct Select {
    /// The stream it reads (a join's left one).
    pub from: TableRef,
    /// What it does with it.
    pub body: Body,
    /// Where the `SELECT` is written.
    pub at: Option<Range<usize>>,
}

/// What a query does.
#[derive(Debug, Clone)]
pub enum Body {
    /// `SELECT * [WHERE ..]`: whole events, filtered.
    Pass {
        /// `WHERE`.
        filter: Option<Expr>,
    },
    /// `GROUP BY` with aggregates.
    Grouped(Grouped),
    /// `SELECT * FROM a JOIN b ON ..`.
    Join(Join),
}

/// A grouping query.
#[derive(Debug, Clone)]
pub struct Grouped {
    /// `WHERE`, over the input.
    pub filter: Option<Expr>,
    /// The key column.
    pub key: Option<Key>,
    /// The window.
    pub window: Option<Window>,
    /// The aggregates of the select list, in order.
    pub aggs: Vec<Agg>,
    /// The output row's columns: the key, `window_start` and `window_end` if windowed,
    /// the aggregates.
    pub output: Vec<String>,
    /// `HAVING`, over the output row.
    pub having: Option<Expr>,
}

/// The `GROUP BY` column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    /// The input column.
    pub col: usize,
    /// Where it is written.
    pub at: Option<Range<usize>>,
}

/// An aggregate function of the select list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Func {
    /// `COUNT(*)` or `COUNT(col)`.
    Count,
    /// `SUM(col)`.
    Sum,
    /// `MIN(col)`.
    Min,
    /// `MAX(col)`.
    Max,
    /// `AVG(col)`.
    Avg,
}

impl Func {
    /// The DSL's name of it (`count`, `sum`, ...).
    ///
    /// ```
    /// assert_eq!(simplestream_sqlplan::Func::Avg.name(), "avg");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            Func::Count => "count",
            Func::Sum => "sum",
            Func::Min => "min",
            Func::Max => "max",
            Func::Avg => "avg",
        }
    }
}

/// An aggregate of the select list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agg {
    /// Its output column: the alias, `count`, or `sum_amount`.
    pub name: String,
    /// The function.
    pub func: Func,
    /// The input column it reads; `None` for `COUNT`.
    pub col: Option<usize>,
    /// Where the call is written.
    pub at: Option<Range<usize>>,
}

/// Plans query `q`, the stage `stage`.
pub fn plan(cx: Cx, stage: &str, q: &ast::Query, cols: &mut dyn Columns) -> Result<Select, Error> {
    let s = plain_select(cx, q)?;
    let at = cx.range(s.span());
    let [t] = s.from.as_slice() else {
        return Err(cx.error(s.span(), "a SELECT reads one stream: `FROM orders`"));
    };
    if !t.joins.is_empty() {
        let (from, j) = join::plan(cx, s, t, cols)?;
        return Ok(Select {
            from,
            body: Body::Join(j),
            at,
        });
    }
    let from = table(cx, &t.relation, "FROM")?;
    cols.stream(Side::From, &from)?;
    let filter = match &s.selection {
        Some(w) => Some(expr::read(
            cx,
            "WHERE",
            w,
            &mut Scope::Input { from: &from, cols },
        )?),
        None => None,
    };
    let group = match &s.group_by {
        GroupByExpr::Expressions(g, mods) if mods.is_empty() => g,
        other => {
            return Err(cx.error(
                other.span(),
                "GROUP BY ALL and grouping modifiers are not supported",
            ))
        }
    };
    let star = s
        .projection
        .iter()
        .any(|p| matches!(p, SelectItem::Wildcard(_)));
    if group.is_empty() && star {
        if let [_, second, ..] = s.projection.as_slice() {
            return Err(cx.error(
                second.span(),
                "`SELECT *` passes whole events; other columns cannot be added",
            ));
        }
        if let Some(h) = &s.having {
            return Err(cx.error(h.span(), "HAVING without GROUP BY; use WHERE"));
        }
        return Ok(Select {
            from,
            body: Body::Pass { filter },
            at,
        });
    }
    let mut l = Lowering {
        cx,
        from: &from,
        cols,
    };
    let g = l.grouped(stage, s, group, filter)?;
    Ok(Select {
        from,
        body: Body::Grouped(g),
        at,
    })
}

/// The `SELECT` of a query without `WITH`, `ORDER BY`, `LIMIT`, set operations or
/// clauses a stream cannot have.
fn plain_select<'q>(cx: Cx, q: &'q ast::Query) -> Result<&'q ast::Select, Error> {
    let refuse = |at: sqlparser::tokenizer::Span, what: &str| {
        cx.error(
            at,
            format!("{what} is not supported: a stream has no end to sort or cut"),
        )
    };
    if let Some(o) = &q.order_by {
        return Err(refuse(o.span(), "ORDER BY"));
    }
    if let Some(l) = &q.limit_clause {
        return Err(refuse(l.span(), "LIMIT"));
    }
    if q.fetch.is_some() {
        return Err(refuse(q.span(), "FETCH"));
    }
    let s = match &*q.body {
        SetExpr::Select(s) if q.with.is_none() => s,
        _ => {
            return Err(cx.error(
                q.span(),
                "only a plain SELECT is supported (no WITH, UNION or subquery)",
            ))
        }
    };
    let extra = |at: sqlparser::tokenizer::Span, what: &str| {
        Err(cx.error(at, format!("{what} is not supported in SQL pipelines")))
    };
    if s.distinct.is_some() {
        return extra(s.select_token.0.span, "SELECT DISTINCT");
    }
    if let Some(q) = &s.qualify {
        return extra(q.span(), "QUALIFY");
    }
    if !s.named_window.is_empty() {
        return extra(s.span(), "WINDOW clauses");
    }
    Ok(s)
}

/// The stream `t` names (`clause`: `FROM` or `JOIN`).
pub fn table(cx: Cx, t: &TableFactor, clause: &str) -> Result<TableRef, Error> {
    let TableFactor::Table { name, alias, .. } = t else {
        let msg = match clause {
            "JOIN" => "JOIN names a stream",
            _ => cx.pick(
                "FROM names a stream: a source or an earlier view",
                "FROM names a stream (the input's events)",
            ),
        };
        return Err(cx.error(t.span(), msg));
    };
    let name = one_word(cx, name, &format!("{clause} names a stream by one word"))?;
    let mut qualifiers = vec![name.value.clone()];
    qualifiers.extend(alias.iter().map(|a| a.name.value.clone()));
    Ok(TableRef { name, qualifiers })
}

struct Lowering<'a> {
    cx: Cx<'a>,
    from: &'a TableRef,
    cols: &'a mut dyn Columns,
}

impl Lowering<'_> {
    /// The input column `e` names, used as `want`; `hint` if it is not a column.
    fn column(
        &mut self,
        e: &ast::Expr,
        want: Want,
        what: &str,
        hint: &str,
    ) -> Result<usize, Error> {
        let (q, id) = match e {
            ast::Expr::Identifier(id) => (None, id),
            ast::Expr::CompoundIdentifier(ids) if ids.len() == 2 => (Some(&ids[0]), &ids[1]),
            _ => return Err(self.cx.error(e.span(), hint)),
        };
        check_qualifier(self.cx, q, self.from)?;
        self.cols
            .column(Side::From, &ident(self.cx, id), want, what)
    }

    /// `GROUP BY`, the select list and `HAVING`.
    fn grouped(
        &mut self,
        stage: &str,
        s: &ast::Select,
        group: &[ast::Expr],
        filter: Option<Expr>,
    ) -> Result<Grouped, Error> {
        let cx = self.cx;
        let (key, window) = self.group_by(group)?;
        if let (
            Some(Window {
                win: Win::Session { .. },
                ..
            }),
            None,
        ) = (&window, &key)
        {
            return Err(cx.error(
                s.span(),
                "SESSION needs a key: GROUP BY a column and SESSION(..)",
            ));
        }
        let (aggs, texts) = self.select_list(s, key.as_ref().map(|k| k.col), window.is_some())?;
        if key.is_none() && window.is_none() {
            return Err(cx.error(s.span(), "aggregates need GROUP BY a column or a window (TUMBLE, HOP or SESSION): a stream has no end"));
        }
        let mut output = Vec::new();
        if let Some(k) = &key {
            output.push(self.cols.name(Side::From, k.col));
        }
        if window.is_some() {
            output.extend(["window_start".to_string(), "window_end".to_string()]);
        }
        let texts: Vec<(String, usize)> = texts
            .into_iter()
            .enumerate()
            .map(|(i, t)| (t, output.len() + i))
            .collect();
        output.extend(aggs.iter().map(|a| a.name.clone()));
        let having = match &s.having {
            Some(h) => {
                let mut scope = Scope::Output {
                    row: &output,
                    aggs: &texts,
                    stage,
                };
                Some(expr::read(cx, "HAVING", h, &mut scope)?)
            }
            None => None,
        };
        Ok(Grouped {
            filter,
            key,
            window,
            aggs,
            output,
            having,
        })
    }

    /// `GROUP BY`: one key column and one window function, each optional.
    fn group_by(&mut self, group: &[ast::Expr]) -> Result<(Option<Key>, Option<Window>), Error> {
        let cx = self.cx;
        let (mut key, mut window) = (None, None);
        for g in group {
            let mut time = |t: &ast::Expr| match t {
                ast::Expr::Identifier(_) | ast::Expr::CompoundIdentifier(_) => {
                    let hint = window::not_a_time_column(cx, t).msg;
                    self.column(t, Want::Time, "the window's time", &hint)
                }
                _ => Err(window::not_a_time_column(cx, t)),
            };
            if let Some(w) = window::read(cx, g, &mut time)? {
                if window.replace(w).is_some() {
                    return Err(cx.error(g.span(), "GROUP BY has one window function"));
                }
                continue;
            }
            let hint = "GROUP BY a column, or a window: TUMBLE(ts, INTERVAL '5' MINUTE), HOP(ts, slide, size), SESSION(ts, gap)";
            if key.is_some() {
                let how = cx.pick(
                    "or write the stage in the DSL: `key_by` takes a struct that derives `Checkpointable`",
                    "or key a `pipeline!` DSL stage by a struct that derives `Checkpointable`",
                );
                return Err(cx.error(g.span(), format!("GROUP BY one column (and a window): grouping by several columns is not supported; group by one column that holds both (e.g. `region_customer`), {how}")));
            }
            let col = self.column(g, Want::Key, "GROUP BY", hint)?;
            key = Some(Key {
                col,
                at: cx.range(g.span()),
            });
        }
        Ok((key, window))
    }

    /// The aggregates of the select list and their SQL (upper case, for `HAVING`); its
    /// plain columns must be the key (or the window's bounds).
    fn select_list(
        &mut self,
        s: &ast::Select,
        key: Option<usize>,
        windowed: bool,
    ) -> Result<(Vec<Agg>, Vec<String>), Error> {
        let cx = self.cx;
        let (mut aggs, mut texts) = (Vec::new(), Vec::new());
        for item in &s.projection {
            let (e, alias) = match item {
                SelectItem::UnnamedExpr(e) => (e, None),
                SelectItem::ExprWithAlias { expr, alias } => (expr, Some(alias)),
                other => {
                    return Err(cx.error(
                        other.span(),
                        "`*` with GROUP BY: select the key and aggregates",
                    ))
                }
            };
            let plain = match e {
                ast::Expr::Identifier(id) => Some(id),
                ast::Expr::CompoundIdentifier(ids) if ids.len() == 2 => Some(&ids[1]),
                _ => None,
            };
            if let Some(id) = plain {
                if windowed && ["window_start", "window_end"].contains(&id.value.as_str()) {
                    continue;
                }
                let c = self.column(e, Want::Any, "the select list", "")?;
                if key != Some(c) {
                    let msg = format!("`{}` is neither grouped nor aggregated: add it to GROUP BY, or aggregate it (`MAX({0})`)", id.value);
                    return Err(cx.error(id.span, msg));
                }
                let name = self.cols.name(Side::From, c);
                if let Some(a) = alias.filter(|a| a.value != name) {
                    return Err(cx.error(
                        a.span,
                        format!("the key column keeps its name `{name}` in the row"),
                    ));
                }
                continue;
            }
            let ast::Expr::Function(f) = e else {
                return Err(cx.error(e.span(), "select the key column and aggregates: COUNT(*), SUM(col), MIN(col), MAX(col), AVG(col)"));
            };
            aggs.push(self.aggregate(e, f, alias.map(|a| a.value.as_str()))?);
            texts.push(e.to_string().to_uppercase());
        }
        if aggs.is_empty() {
            return Err(cx.error(
                s.span(),
                "select at least one aggregate: COUNT(*), SUM(col), MIN(col), MAX(col), AVG(col)",
            ));
        }
        Ok((aggs, texts))
    }

    fn aggregate(
        &mut self,
        e: &ast::Expr,
        f: &Function,
        alias: Option<&str>,
    ) -> Result<Agg, Error> {
        let cx = self.cx;
        let name = f.name.to_string().to_uppercase();
        let func = match name.as_str() {
            "COUNT" => Func::Count,
            "SUM" => Func::Sum,
            "MIN" => Func::Min,
            "MAX" => Func::Max,
            "AVG" => Func::Avg,
            _ => {
                let hint = match nearest(&name, &["COUNT", "SUM", "MIN", "MAX", "AVG"]) {
                    Some(n) => format!("did you mean `{n}`?"),
                    None => "the aggregates are COUNT(*), SUM, MIN, MAX and AVG".into(),
                };
                return Err(cx.error(
                    f.name.span(),
                    format!("unknown aggregate `{}`; {hint}", f.name),
                ));
            }
        };
        let want = match func {
            Func::Count => Want::Any,
            Func::Sum | Func::Avg => Want::Number,
            Func::Min | Func::Max => Want::Ordered,
        };
        let hint = match cx.host {
            crate::Host::Macro => "aggregate a column (`SUM(amount)`); to aggregate an expression, compute it in a DSL stage first".to_string(),
            crate::Host::Interpreter => format!("{name} takes a column (compute expressions in `pipeline!`)"),
        };
        let col = match agg_arg(cx, e, f)? {
            Some(a) => Some(self.column(a, want, &name, &hint)?),
            None if func == Func::Count => None,
            None => {
                return Err(cx.error(
                    e.span(),
                    format!("{name} takes one column: `{name}(amount)`"),
                ))
            }
        };
        let out = match (alias, col) {
            (Some(a), _) => a.to_string(),
            (None, _) if func == Func::Count => "count".into(),
            (None, Some(c)) => format!("{}_{}", func.name(), self.cols.name(Side::From, c)),
            (None, None) => unreachable!("only COUNT takes no column"),
        };
        Ok(Agg {
            name: out,
            func,
            col: col.filter(|_| func != Func::Count),
            at: cx.range(e.span()),
        })
    }
}

/// The argument of an aggregate call: `None` for `*` (or none), else the one expression.
fn agg_arg<'f>(cx: Cx, e: &ast::Expr, f: &'f Function) -> Result<Option<&'f ast::Expr>, Error> {
    let FunctionArguments::List(list) = &f.args else {
        return Ok(None);
    };
    if list.duplicate_treatment.is_some()
        || !list.clauses.is_empty()
        || f.filter.is_some()
        || f.over.is_some()
    {
        return Err(cx.error(
            e.span(),
            "DISTINCT, FILTER, OVER and other clauses in aggregates are not supported",
        ));
    }
    match list.args.as_slice() {
        [FunctionArg::Unnamed(FunctionArgExpr::Wildcard)] => Ok(None),
        [FunctionArg::Unnamed(FunctionArgExpr::Expr(a))] => Ok(Some(a)),
        _ => Err(cx.error(e.span(), "an aggregate takes one column (or `*` for COUNT)")),
    }
}

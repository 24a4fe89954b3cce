//! A query lowered for the interpreter: `[CREATE TABLE src (..);] SELECT ...` (or
//! `CREATE VIEW name AS SELECT ...`) as one stage, with every column resolved to an
//! index and typed once, here.

use sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, FunctionArguments, GroupByExpr, Ident, Query as SqlQuery,
    Select, SelectItem, SetExpr, Spanned, Statement, TableFactor,
};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;

use super::acc::{AggSpec, Func};
use super::columns::{leak, Columns, Want};
use super::error::{self, SqlError};
use super::expr::{self, Ex, Scope};
use super::join::{self, JoinSpec};
use super::value::{Schema, Ty};
use super::window::{self, Win};

/// What the command line adds to the SQL.
#[derive(Debug, Clone)]
pub struct Options {
    /// The event-time column (default: the window function's column).
    pub event_time: Option<String>,
    /// How far the watermark stays behind the newest event time, ms.
    pub max_delay_ms: i64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            event_time: None,
            max_delay_ms: 5_000,
        }
    }
}

/// How a stage groups its rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Grouping {
    /// The key column and its type (`Str` or `Int`).
    pub key: Option<(usize, Ty)>,
    /// The window.
    pub window: Option<Win>,
    /// The aggregate columns.
    pub aggs: Vec<AggSpec>,
    /// `HAVING`, over the output row.
    pub having: Option<Ex>,
}

/// A lowered query: one stage reading one source.
#[derive(Debug, Clone)]
pub struct Query {
    /// The SQL as given.
    pub sql: String,
    /// The source (`FROM`).
    pub source: &'static str,
    /// The source's columns.
    pub input: Schema,
    /// The stage's name: the view's, or `query`.
    pub stage: &'static str,
    /// `WHERE`.
    pub filter: Option<Ex>,
    /// `GROUP BY` and aggregates; `None` for `SELECT * ... WHERE`.
    pub grouping: Option<Grouping>,
    /// The output row's columns.
    pub output: Schema,
    /// The event-time column.
    pub time: Option<usize>,
    /// Watermark delay, ms.
    pub max_delay_ms: i64,
    /// The statements as sqlparser prints them: the query's identity.
    pub canonical: String,
    /// A join with a second stream (`input` is then the left one's columns).
    pub join: Option<JoinSpec>,
}

/// Parses and lowers `sql`.
///
/// ```
/// use simplestream_runtime::sql::{parse, Options};
/// let q = parse("SELECT customer, COUNT(*) AS n FROM orders GROUP BY customer, TUMBLE(ts, INTERVAL '5' MINUTE)",
///               &Options::default()).unwrap();
/// assert_eq!(q.output.names, ["customer", "window_start", "window_end", "n"]);
/// let e = parse("SELECT customer FROM orders GROUP BY customer", &Options::default()).unwrap_err();
/// assert!(e.msg.contains("at least one aggregate"), "{e}");
/// ```
pub fn parse(sql: &str, opts: &Options) -> Result<Query, SqlError> {
    let stmts =
        Parser::parse_sql(&GenericDialect {}, sql).map_err(|e| error::from_parser(&e, sql))?;
    let mut tables: Vec<Columns> = Vec::new();
    let mut query: Option<(&'static str, &SqlQuery)> = None;
    for st in &stmts {
        match st {
            Statement::CreateTable(t) if query.is_none() => {
                let c = declared(t)?;
                if tables.iter().any(|d| d.stream.eq_ignore_ascii_case(&c.stream)) {
                    return Err(SqlError::at(t.name.span(), format!("`{}` is declared twice", c.stream)));
                }
                tables.push(c);
            }
            Statement::CreateView(v) if query.is_none() => {
                let name = one_word(&v.name.0, v.name.span(), "a view is named by one word: `CREATE VIEW per_5min AS ...`")?;
                query = Some((leak(&name.value), &v.query));
            }
            Statement::Query(q) if query.is_none() => query = Some(("query", q)),
            Statement::Query(_) | Statement::CreateView(_) => {
                return Err(SqlError::at(st.span(), "`simplestream sql` runs one query: views over views are for `pipeline!`"))
            }
            other => {
                return Err(SqlError::at(
                    other.span(),
                    "only `CREATE TABLE source (col TYPE, ..)` (optional, first; one per stream) and one `SELECT ...` or `CREATE VIEW name AS SELECT ...` are supported",
                ))
            }
        }
    }
    let Some((stage, q)) = query else {
        return Err(SqlError::whole(
            "no query: write a SELECT (or CREATE VIEW name AS SELECT ...)",
        ));
    };
    let select = plain_select(q)?;
    let canonical = stmts
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>()
        .join(";\n");
    if let Some(t) = select.from.first().filter(|t| !t.joins.is_empty()) {
        return joined(sql, stage, select, t, &tables, opts, canonical);
    }
    if tables.len() > 1 {
        return Err(SqlError::whole(
            "several CREATE TABLE statements are for a JOIN of the streams they declare",
        ));
    }
    let (source, qualifiers) = from(select, tables.first())?;
    let cols = tables.pop().unwrap_or_else(|| Columns {
        stream: source.to_string(),
        schema: Schema::default(),
        declared: false,
    });
    let mut l = Lowering { cols, qualifiers };
    let filter = select
        .selection
        .as_ref()
        .map(|w| expr::lower(w, &mut l.scope("WHERE")))
        .transpose()?;
    let (grouping, output, win_time) = l.grouping(select)?;
    let time = match &opts.event_time {
        Some(c) => Some(l.cols.use_col(&Ident::new(c), Want::Time, "--event-time")?),
        None => win_time,
    };
    Ok(Query {
        sql: sql.to_string(),
        source: leak(source),
        input: l.cols.schema,
        stage,
        filter,
        grouping,
        output,
        time,
        max_delay_ms: opts.max_delay_ms,
        canonical,
        join: None,
    })
}

/// A join `SELECT`: the left stream is the query's source, the right one its `join`.
fn joined(
    sql: &str,
    stage: &'static str,
    s: &Select,
    t: &sqlparser::ast::TableWithJoins,
    tables: &[Columns],
    opts: &Options,
    canonical: String,
) -> Result<Query, SqlError> {
    let mut sides = join::sides(s, t, tables)?;
    let (mut spec, mut time) = sides.lower(t)?;
    if let Some(c) = &opts.event_time {
        let id = Ident::new(c);
        time = sides.cols[0].use_col(&id, Want::Time, "--event-time")?;
        spec.right_time = sides.cols[1].use_col(&id, Want::Time, "--event-time")?;
    }
    let [left, right] = sides.cols;
    spec.right_input = right.schema;
    let mut output = Schema::default();
    output.names.push(spec.key_name);
    output.types.push(spec.key_ty);
    if let join::JoinKind::Window(_) = spec.kind {
        output.names.extend(["window_start", "window_end"]);
        output.types.extend([Ty::Int, Ty::Int]);
    }
    output.names.extend([leak(&left.stream), spec.right]);
    output.types.extend([Ty::Any, Ty::Any]);
    Ok(Query {
        sql: sql.to_string(),
        source: leak(&left.stream),
        input: left.schema,
        stage,
        filter: None,
        grouping: None,
        output,
        time: Some(time),
        max_delay_ms: opts.max_delay_ms,
        canonical,
        join: Some(spec),
    })
}

/// `CREATE TABLE orders (customer TEXT, amount DOUBLE, ts BIGINT)`: the source's columns.
fn declared(t: &sqlparser::ast::CreateTable) -> Result<Columns, SqlError> {
    let name = one_word(&t.name.0, t.name.span(), "a source is named by one word")?;
    let mut schema = Schema::default();
    for c in &t.columns {
        let ty_text = c.data_type.to_string();
        let Some(ty) = Ty::from_sql(&ty_text) else {
            return Err(SqlError::at(
                c.span(),
                format!(
                    "type `{ty_text}` of `{}`: use TEXT, BIGINT, DOUBLE or BOOLEAN",
                    c.name.value
                ),
            ));
        };
        schema.names.push(leak(&c.name.value));
        schema.types.push(ty);
    }
    Ok(Columns {
        stream: name.value.clone(),
        schema,
        declared: true,
    })
}

fn one_word<'a>(
    parts: &'a [sqlparser::ast::ObjectNamePart],
    span: sqlparser::tokenizer::Span,
    msg: &str,
) -> Result<&'a Ident, SqlError> {
    match parts {
        [p] => p.as_ident().ok_or_else(|| SqlError::at(span, msg)),
        _ => Err(SqlError::at(span, msg)),
    }
}

/// The `SELECT` of a query without `WITH`, `ORDER BY`, `LIMIT` or set operations.
fn plain_select(q: &SqlQuery) -> Result<&Select, SqlError> {
    let refuse = |at: sqlparser::tokenizer::Span, what: &str| {
        SqlError::at(
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
            return Err(SqlError::at(
                q.span(),
                "only a plain SELECT is supported (no WITH, UNION or subquery)",
            ))
        }
    };
    if s.distinct.is_some() {
        return Err(SqlError::at(
            s.select_token.0.span,
            "SELECT DISTINCT is not supported in SQL pipelines",
        ));
    }
    Ok(s)
}

/// The stream a `SELECT` reads, and the names that may qualify its columns.
fn from<'s>(s: &'s Select, table: Option<&Columns>) -> Result<(&'s str, Vec<String>), SqlError> {
    let [t] = s.from.as_slice() else {
        return Err(SqlError::at(
            s.span(),
            "a SELECT reads one stream: `FROM orders`",
        ));
    };
    let TableFactor::Table { name, alias, .. } = &t.relation else {
        return Err(SqlError::at(
            t.relation.span(),
            "FROM names a stream (the input's events)",
        ));
    };
    let id = one_word(&name.0, name.span(), "FROM names a stream by one word")?;
    if let Some(c) = table.filter(|c| !c.stream.eq_ignore_ascii_case(&id.value)) {
        return Err(SqlError::at(
            id.span,
            format!(
                "unknown stream `{}`; CREATE TABLE declared `{}`",
                id.value, c.stream
            ),
        ));
    }
    let mut names = vec![id.value.clone()];
    names.extend(alias.iter().map(|a| a.name.value.clone()));
    Ok((&id.value, names))
}

struct Lowering {
    cols: Columns,
    qualifiers: Vec<String>,
}

/// Columns of the source, in `WHERE`.
struct InputScope<'a> {
    l: &'a mut Lowering,
    clause: &'static str,
}

impl Scope for InputScope<'_> {
    fn column(&mut self, q: Option<&Ident>, id: &Ident) -> Result<usize, SqlError> {
        self.l.check_qualifier(q)?;
        self.l.cols.use_col(id, Want::Any, self.clause)
    }
    fn aggregate(&mut self, e: &Expr) -> Result<usize, SqlError> {
        Err(SqlError::at(
            e.span(),
            format!(
                "`{e}` in {}: aggregates are tested in HAVING, after GROUP BY",
                self.clause
            ),
        ))
    }
}

/// Columns of the output row and the select list's aggregates, in `HAVING`.
struct OutputScope<'a> {
    out: &'a Schema,
    aggs: &'a [(String, usize)],
}

impl Scope for OutputScope<'_> {
    fn column(&mut self, _q: Option<&Ident>, id: &Ident) -> Result<usize, SqlError> {
        let lower = id.value.to_lowercase();
        self.out
            .names
            .iter()
            .position(|n| n.to_lowercase() == lower)
            .ok_or_else(|| {
                SqlError::at(
                    id.span,
                    format!(
                        "unknown column `{}` in HAVING; the row's columns are {}",
                        id.value,
                        self.out.names.join(", ")
                    ),
                )
            })
    }
    fn aggregate(&mut self, e: &Expr) -> Result<usize, SqlError> {
        let text = e.to_string().to_uppercase();
        self.aggs.iter().find(|(t, _)| *t == text).map(|(_, i)| *i).ok_or_else(|| {
            SqlError::at(e.span(), format!("`{e}` is not in the select list: select it (`{e} AS name`) to test it in HAVING"))
        })
    }
}

impl Lowering {
    fn scope(&mut self, clause: &'static str) -> InputScope<'_> {
        InputScope { l: self, clause }
    }

    fn check_qualifier(&self, q: Option<&Ident>) -> Result<(), SqlError> {
        match q {
            Some(q)
                if !self
                    .qualifiers
                    .iter()
                    .any(|n| n.eq_ignore_ascii_case(&q.value)) =>
            {
                Err(SqlError::at(
                    q.span,
                    format!(
                        "unknown table `{}`; this query reads `{}`",
                        q.value, self.qualifiers[0]
                    ),
                ))
            }
            _ => Ok(()),
        }
    }

    fn column(&mut self, e: &Expr, want: Want, what: &str) -> Result<usize, SqlError> {
        match e {
            Expr::Identifier(id) => self.cols.use_col(id, want, what),
            Expr::CompoundIdentifier(ids) if ids.len() == 2 => {
                self.check_qualifier(Some(&ids[0]))?;
                self.cols.use_col(&ids[1], want, what)
            }
            _ => Err(SqlError::at(
                e.span(),
                format!("{what} takes a column (compute expressions in `pipeline!`)"),
            )),
        }
    }

    /// `GROUP BY`, the select list and `HAVING`: the grouping, the output columns, and
    /// the window's time column.
    fn grouping(
        &mut self,
        s: &Select,
    ) -> Result<(Option<Grouping>, Schema, Option<usize>), SqlError> {
        let group = match &s.group_by {
            GroupByExpr::Expressions(g, mods) if mods.is_empty() => g,
            other => {
                return Err(SqlError::at(
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
                return Err(SqlError::at(
                    second.span(),
                    "`SELECT *` passes whole events; other columns cannot be added",
                ));
            }
            if let Some(h) = &s.having {
                return Err(SqlError::at(h.span(), "HAVING without GROUP BY; use WHERE"));
            }
            return Ok((None, self.cols.schema.clone(), None));
        }
        let (mut key, mut win) = (None, None);
        for g in group {
            if let Some((w, time)) = window::parse(g)? {
                if win.is_some() {
                    return Err(SqlError::at(g.span(), "GROUP BY has one window function"));
                }
                let t = self.cols.use_col(&time, Want::Time, "the window's time")?;
                win = Some((w, t));
                continue;
            }
            if key.is_some() {
                return Err(SqlError::at(g.span(), "GROUP BY one column (and a window): grouping by several columns is not supported; group by one column that holds both (e.g. `region_customer`), or key a `pipeline!` DSL stage by a struct that derives `Checkpointable`"));
            }
            key = Some((self.column(g, Want::Key, "GROUP BY")?, g.span()));
        }
        if let (Some((Win::Session { .. }, _)), None) = (win, key) {
            return Err(SqlError::at(
                s.span(),
                "SESSION needs a key: GROUP BY a column and SESSION(..)",
            ));
        }
        let key = key.map(|(i, _)| (i, self.cols.schema.types[i]));
        let aggs = self.select_list(s, key.map(|k| k.0), win.is_some())?;
        if key.is_none() && win.is_none() {
            return Err(SqlError::at(s.span(), "aggregates need GROUP BY a column or a window (TUMBLE, HOP or SESSION): a stream has no end"));
        }
        let mut out = Schema::default();
        if let Some((k, ty)) = key {
            out.names.push(self.cols.schema.names[k]);
            out.types.push(ty);
        }
        if win.is_some() {
            out.names.extend(["window_start", "window_end"]);
            out.types.extend([Ty::Int, Ty::Int]);
        }
        let mut texts = Vec::new();
        let mut specs = Vec::new();
        for (text, spec) in aggs {
            texts.push((text, out.names.len()));
            out.names.push(spec.name);
            out.types.push(spec.out_ty());
            specs.push(spec);
        }
        let having = match &s.having {
            Some(h) => Some(expr::lower(
                h,
                &mut OutputScope {
                    out: &out,
                    aggs: &texts,
                },
            )?),
            None => None,
        };
        let grouping = Grouping {
            key,
            window: win.map(|w| w.0),
            aggs: specs,
            having,
        };
        Ok((Some(grouping), out, win.map(|w| w.1)))
    }

    /// The aggregates of the select list (with their SQL, upper-cased, for `HAVING`);
    /// its plain columns must be the key (or the window's bounds).
    fn select_list(
        &mut self,
        s: &Select,
        key: Option<usize>,
        windowed: bool,
    ) -> Result<Vec<(String, AggSpec)>, SqlError> {
        let mut aggs = Vec::new();
        for item in &s.projection {
            let (e, alias) = match item {
                SelectItem::UnnamedExpr(e) => (e, None),
                SelectItem::ExprWithAlias { expr, alias } => (expr, Some(alias)),
                other => {
                    return Err(SqlError::at(
                        other.span(),
                        "`*` with GROUP BY: select the key and aggregates",
                    ))
                }
            };
            let plain = match e {
                Expr::Identifier(id) => Some(id),
                Expr::CompoundIdentifier(ids) if ids.len() == 2 => Some(&ids[1]),
                _ => None,
            };
            if let Some(id) = plain {
                if windowed && ["window_start", "window_end"].contains(&id.value.as_str()) {
                    continue;
                }
                let c = self.column(e, Want::Any, "the select list")?;
                if key != Some(c) {
                    let msg = format!("`{}` is neither grouped nor aggregated: add it to GROUP BY, or aggregate it (`MAX({0})`)", id.value);
                    return Err(SqlError::at(id.span, msg));
                }
                if let Some(a) = alias.filter(|a| a.value != self.cols.schema.names[c]) {
                    return Err(SqlError::at(
                        a.span,
                        format!(
                            "the key column keeps its name `{}` in the row",
                            self.cols.schema.names[c]
                        ),
                    ));
                }
                continue;
            }
            let Expr::Function(f) = e else {
                return Err(SqlError::at(e.span(), "select the key column and aggregates: COUNT(*), SUM(col), MIN(col), MAX(col), AVG(col)"));
            };
            let spec = self.aggregate(e, f, alias.map(|a| a.value.as_str()))?;
            aggs.push((e.to_string().to_uppercase(), spec));
        }
        if aggs.is_empty() {
            return Err(SqlError::at(
                s.span(),
                "select at least one aggregate: COUNT(*), SUM(col), MIN(col), MAX(col), AVG(col)",
            ));
        }
        Ok(aggs)
    }

    fn aggregate(
        &mut self,
        e: &Expr,
        f: &sqlparser::ast::Function,
        alias: Option<&str>,
    ) -> Result<AggSpec, SqlError> {
        let name = f.name.to_string().to_uppercase();
        let func = match name.as_str() {
            "COUNT" => Func::Count,
            "SUM" => Func::Sum,
            "MIN" => Func::Min,
            "MAX" => Func::Max,
            "AVG" => Func::Avg,
            _ => {
                let hint =
                    match super::columns::nearest(&name, &["COUNT", "SUM", "MIN", "MAX", "AVG"]) {
                        Some(n) => format!("did you mean `{n}`?"),
                        None => "the aggregates are COUNT(*), SUM, MIN, MAX and AVG".into(),
                    };
                return Err(SqlError::at(
                    f.name.span(),
                    format!("unknown aggregate `{}`; {hint}", f.name),
                ));
            }
        };
        let arg = agg_arg(e, f)?;
        let want = match func {
            Func::Count => Want::Any,
            Func::Sum | Func::Avg => Want::Number,
            Func::Min | Func::Max => Want::Ordered,
        };
        let col = match arg {
            Some(a) => Some(self.column(a, want, &name)?),
            None if func == Func::Count => None,
            None => {
                return Err(SqlError::at(
                    e.span(),
                    format!("{name} takes one column: `{name}(amount)`"),
                ))
            }
        };
        let out = match (alias, col) {
            (Some(a), _) => a.to_string(),
            (None, _) if func == Func::Count => "count".into(),
            (None, Some(c)) => format!("{}_{}", func.name(), self.cols.schema.names[c]),
            (None, None) => unreachable!("only COUNT takes no column"),
        };
        let ty = col.map_or(Ty::Int, |c| self.cols.schema.types[c]);
        Ok(AggSpec {
            name: leak(&out),
            func,
            col: col.filter(|_| func != Func::Count),
            ty,
        })
    }
}

/// The argument of an aggregate call: `None` for `*`, else the one expression.
fn agg_arg<'f>(e: &Expr, f: &'f sqlparser::ast::Function) -> Result<Option<&'f Expr>, SqlError> {
    let FunctionArguments::List(list) = &f.args else {
        return Ok(None);
    };
    if list.duplicate_treatment.is_some()
        || !list.clauses.is_empty()
        || f.filter.is_some()
        || f.over.is_some()
    {
        return Err(SqlError::at(
            e.span(),
            "DISTINCT, FILTER, OVER and other clauses in aggregates are not supported",
        ));
    }
    match list.args.as_slice() {
        [FunctionArg::Unnamed(FunctionArgExpr::Wildcard)] => Ok(None),
        [FunctionArg::Unnamed(FunctionArgExpr::Expr(a))] => Ok(Some(a)),
        _ => Err(SqlError::at(
            e.span(),
            "an aggregate takes one column (or `*` for COUNT)",
        )),
    }
}

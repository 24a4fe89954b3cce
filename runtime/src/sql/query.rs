//! A query lowered for the interpreter: `[CREATE TABLE src (..);] SELECT ...` (or
//! `CREATE VIEW name AS SELECT ...`) as one stage, with every column resolved to an
//! index and typed once, here.

use simplestream_sqlplan::{self as plan, Body, Host, Ident, Statement, Want};

use super::acc::AggSpec;
use super::columns::{leak, Columns, Streams};
use super::error::SqlError;
use super::expr::{self, Ex};
#[cfg(feature = "sql-join")]
use super::join;
use super::join::JoinSpec;
use super::value::{Schema, Ty};
use super::window::Win;

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
    let at = |e: plan::Error| SqlError::of_plan(e, sql);
    let script = plan::parse(sql, Host::Interpreter).map_err(at)?;
    let (tables, (i, stage)) = statements(&script.statements).map_err(at)?;
    let several = tables.len() > 1;
    let mut streams = Streams {
        tables,
        sides: [None, None],
    };
    let select = script.plan(i, &mut streams).map_err(at)?;
    let mut cols = streams.sides[0].take().expect("the plan reads a stream");
    let mut q = Query {
        sql: sql.to_string(),
        source: leak(&select.from.name.value),
        input: Schema::default(),
        stage,
        filter: None,
        grouping: None,
        output: Schema::default(),
        time: None,
        max_delay_ms: opts.max_delay_ms,
        canonical: script.canonical.clone(),
        join: None,
    };
    let event_time = opts.event_time.as_ref().map(|c| Ident {
        value: c.clone(),
        quoted: false,
        at: None,
    });
    match &select.body {
        #[cfg(not(feature = "sql-join"))]
        Body::Join(j) => {
            return Err(at(plan::Error::new(
                j.right.name.at.clone(),
                "joins of two streams run in `simplestream sql`: this build of the interpreter (the playground's) has no join operators",
            )))
        }
        #[cfg(feature = "sql-join")]
        Body::Join(j) => {
            let right = streams.sides[1].take().expect("a join reads two streams");
            join::lower(&mut q, j, &mut cols, right, event_time.as_ref()).map_err(at)?;
        }
        _ if several => {
            return Err(SqlError::whole(
                "several CREATE TABLE statements are for a JOIN of the streams they declare",
            ))
        }
        Body::Pass { filter } => {
            q.filter = filter.as_ref().map(expr::lower).transpose().map_err(at)?;
            q.output = cols.schema.clone();
        }
        Body::Grouped(g) => {
            q.filter = g.filter.as_ref().map(expr::lower).transpose().map_err(at)?;
            let (grouping, output) = grouping(g, &cols.schema).map_err(at)?;
            q.grouping = Some(grouping);
            q.output = output;
            q.time = g.window.as_ref().map(|w| w.time);
        }
    }
    if let (Some(id), None) = (&event_time, &q.join) {
        q.time = Some(cols.use_col(id, Want::Time, "--event-time").map_err(at)?);
    }
    q.input = cols.schema;
    Ok(q)
}

/// The declared tables and the query (its index and stage name) of `statements`.
fn statements(
    statements: &[Statement],
) -> Result<(Vec<Columns>, (usize, &'static str)), plan::Error> {
    let mut tables: Vec<Columns> = Vec::new();
    let mut query = None;
    for (i, st) in statements.iter().enumerate() {
        match st {
            Statement::Table(t) if query.is_none() => {
                let c = declared(t)?;
                if tables.iter().any(|d| d.stream.eq_ignore_ascii_case(&c.stream)) {
                    return Err(plan::Error::new(t.at.clone(), format!("`{}` is declared twice", c.stream)));
                }
                tables.push(c);
            }
            Statement::Select(s) if query.is_none() => {
                query = Some((i, s.view.as_ref().map_or("query", |v| leak(&v.value))));
            }
            Statement::Select(s) => {
                return Err(plan::Error::new(s.at.clone(), "`simplestream sql` runs one query: views over views are for `pipeline!`"))
            }
            Statement::Table(t) => {
                return Err(plan::Error::new(
                    t.at.clone(),
                    "only `CREATE TABLE source (col TYPE, ..)` (optional, first; one per stream) and one `SELECT ...` or `CREATE VIEW name AS SELECT ...` are supported",
                ))
            }
        }
    }
    let query = query.ok_or_else(|| {
        plan::Error::new(
            None,
            "no query: write a SELECT (or CREATE VIEW name AS SELECT ...)",
        )
    })?;
    Ok((tables, query))
}

/// `CREATE TABLE orders (customer TEXT, amount DOUBLE, ts BIGINT)`: the source's columns.
fn declared(t: &plan::Table) -> Result<Columns, plan::Error> {
    let mut schema = Schema::default();
    for c in &t.columns {
        let Some(ty) = Ty::from_sql(&c.ty) else {
            return Err(plan::Error::new(
                c.at.clone(),
                format!(
                    "type `{}` of `{}`: use TEXT, BIGINT, DOUBLE or BOOLEAN",
                    c.ty, c.name
                ),
            ));
        };
        schema.names.push(leak(&c.name));
        schema.types.push(ty);
    }
    Ok(Columns {
        stream: t.name.value.clone(),
        schema,
        declared: true,
    })
}

/// The grouping of `g` over `input`, and the output row's columns.
fn grouping(g: &plan::Grouped, input: &Schema) -> Result<(Grouping, Schema), plan::Error> {
    let key = g.key.as_ref().map(|k| (k.col, input.types[k.col]));
    let aggs: Vec<AggSpec> = g
        .aggs
        .iter()
        .map(|a| AggSpec {
            name: leak(&a.name),
            func: a.func,
            col: a.col,
            ty: a.col.map_or(Ty::Int, |c| input.types[c]),
        })
        .collect();
    let mut output = Schema::default();
    output.names = g.output.iter().map(|n| leak(n)).collect();
    if let Some((_, ty)) = key {
        output.types.push(ty);
    }
    if g.window.is_some() {
        output.types.extend([Ty::Int, Ty::Int]);
    }
    output.types.extend(aggs.iter().map(AggSpec::out_ty));
    let having = g.having.as_ref().map(expr::lower).transpose()?;
    let grouping = Grouping {
        key,
        window: g.window.as_ref().map(|w| w.win),
        aggs,
        having,
    };
    Ok((grouping, output))
}

//! SQL text as statements: `CREATE TABLE` declarations and queries (`SELECT ...` or
//! `CREATE VIEW name AS SELECT ...`), each planned on demand once what it reads is known.

use std::ops::Range;

use sqlparser::ast::{self, ObjectNamePart, SetExpr, Spanned, TableFactor};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;

use crate::expr::ident;
use crate::select::{self, Select};
use crate::text::Cx;
use crate::{Columns, Error, Host, Ident};

/// Parsed SQL: its statements.
pub struct Script<'a> {
    cx: Cx<'a>,
    /// The statements, in order.
    pub statements: Vec<Statement>,
    /// The statements as sqlparser prints them, one a line: the SQL's identity (spacing,
    /// case of keywords and comments do not count).
    pub canonical: String,
}

/// One statement.
pub enum Statement {
    /// `CREATE TABLE src (col TYPE, ..)`: a source's columns.
    Table(Table),
    /// `SELECT ...` or `CREATE VIEW name AS SELECT ...`.
    Select(SelectStmt),
}

/// `CREATE TABLE`.
#[derive(Debug, Clone)]
pub struct Table {
    /// The source it declares.
    pub name: Ident,
    /// Its columns.
    pub columns: Vec<TableColumn>,
    /// Where the statement's name is written.
    pub at: Option<Range<usize>>,
}

/// A declared column.
#[derive(Debug, Clone)]
pub struct TableColumn {
    /// Its name.
    pub name: String,
    /// Its type as written (`BIGINT`).
    pub ty: String,
    /// Where the column's definition is written.
    pub at: Option<Range<usize>>,
}

/// A query, to [plan](Script::plan).
pub struct SelectStmt {
    /// The view it creates; `None` for a bare `SELECT`.
    pub view: Option<Ident>,
    /// Where the query is written.
    pub at: Option<Range<usize>>,
    query: Box<ast::Query>,
}

/// Parses `sql`: statements of the subset (the plan of each query comes later).
///
/// ```
/// use simplestream_sqlplan::{parse, Host, Statement};
/// let s = parse("CREATE TABLE o (a TEXT); CREATE VIEW v AS SELECT * FROM o", Host::Interpreter).unwrap();
/// assert!(matches!(&s.statements[1], Statement::Select(q) if q.view.as_ref().unwrap().value == "v"));
/// let Err(e) = parse("SELECT a FROM o WHERE", Host::Interpreter) else { panic!("no condition") };
/// assert_eq!(e.at, Some(21..21), "the end: {}", e.msg);
/// ```
pub fn parse(sql: &str, host: Host) -> Result<Script<'_>, Error> {
    let cx = Cx { text: sql, host };
    let stmts = Parser::parse_sql(&GenericDialect {}, sql).map_err(|e| cx.parse_error(&e))?;
    let canonical = stmts
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>()
        .join(";\n");
    let statements = stmts
        .into_iter()
        .map(|s| statement(cx, s))
        .collect::<Result<_, _>>()?;
    Ok(Script {
        cx,
        statements,
        canonical,
    })
}

fn statement(cx: Cx, st: ast::Statement) -> Result<Statement, Error> {
    match st {
        ast::Statement::CreateTable(t) if cx.host == Host::Interpreter => {
            let name = one_word(cx, &t.name, "a source is named by one word")?;
            let columns = t
                .columns
                .iter()
                .map(|c| TableColumn {
                    name: c.name.value.clone(),
                    ty: c.data_type.to_string(),
                    at: cx.range(c.span()),
                })
                .collect();
            Ok(Statement::Table(Table {
                name,
                columns,
                at: cx.range(t.name.span()),
            }))
        }
        ast::Statement::CreateView(v) => {
            let view = one_word(cx, &v.name, "a view is named by one word: `CREATE VIEW per_5min AS ...`")?;
            Ok(Statement::Select(SelectStmt {
                view: Some(view),
                at: cx.range(v.query.span()),
                query: v.query,
            }))
        }
        ast::Statement::Query(q) => Ok(Statement::Select(SelectStmt {
            view: None,
            at: cx.range(q.span()),
            query: q,
        })),
        other => Err(cx.error(
            other.span(),
            cx.pick(
                "only `SELECT ...` and `CREATE VIEW name AS SELECT ...` are supported",
                "only `CREATE TABLE source (col TYPE, ..)` (optional, first; one per stream) and one `SELECT ...` or `CREATE VIEW name AS SELECT ...` are supported",
            ),
        )),
    }
}

/// The one word of `name`, or `msg`.
pub fn one_word(cx: Cx, name: &ast::ObjectName, msg: &str) -> Result<Ident, Error> {
    match name.0.as_slice() {
        [p] => p.as_ident().map(|id| ident(cx, id)),
        _ => None,
    }
    .ok_or_else(|| cx.error(name.span(), msg))
}

impl Script<'_> {
    /// Plans statement `i` (a query), asking `cols` for the streams and columns it reads.
    ///
    /// # Panics
    /// If statement `i` is a `CREATE TABLE`.
    pub fn plan(&self, i: usize, cols: &mut dyn Columns) -> Result<Select, Error> {
        let Statement::Select(s) = &self.statements[i] else {
            panic!("statement {i} is a CREATE TABLE, not a query");
        };
        let stage = s.view.as_ref().map_or("query", |v| v.value.as_str());
        select::plan(self.cx, stage, &s.query, cols)
    }
}

impl SelectStmt {
    /// The streams its `FROM` (and `JOIN`) names.
    pub fn reads(&self) -> Vec<String> {
        let SetExpr::Select(s) = &*self.query.body else {
            return Vec::new();
        };
        let tables = s
            .from
            .iter()
            .flat_map(|t| std::iter::once(&t.relation).chain(t.joins.iter().map(|j| &j.relation)));
        tables
            .filter_map(|t| match t {
                TableFactor::Table { name, .. } => name
                    .0
                    .last()
                    .and_then(ObjectNamePart::as_ident)
                    .map(|i| i.value.clone()),
                _ => None,
            })
            .collect()
    }
}

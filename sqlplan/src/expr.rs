//! `WHERE` and `HAVING` expressions: comparisons, `AND`/`OR`/`NOT`, arithmetic,
//! literals, columns, and (in `HAVING`) the aggregates of the select list, with every
//! name resolved.

use std::ops::Range;

use sqlparser::ast::{self, BinaryOperator as B, Spanned, UnaryOperator as U, Value};

use crate::names::{find, nearest};
use crate::text::Cx;
use crate::{Columns, Error, Host, Ident, Side, TableRef, Want};

/// An expression.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    /// What it is.
    pub kind: ExprKind,
    /// Where it is written.
    pub at: Option<Range<usize>>,
}

/// The kinds of expression.
#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    /// A column: of the input in `WHERE`, of the output row in `HAVING`.
    Col(usize),
    /// A constant.
    Lit(Lit),
    /// `(e)`.
    Nested(Box<Expr>),
    /// `NOT e`.
    Not(Box<Expr>),
    /// `-e`.
    Neg(Box<Expr>),
    /// `+e`.
    Pos(Box<Expr>),
    /// `a op b`.
    Binary(BinOp, Box<Expr>, Box<Expr>),
}

/// A literal.
#[derive(Debug, Clone, PartialEq)]
pub enum Lit {
    /// A number as written (`10`, `1e3`).
    Number(String),
    /// `'text'`.
    Str(String),
    /// `TRUE`, `FALSE`.
    Bool(bool),
    /// `NULL`.
    Null,
}

/// A binary operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    And,
    Or,
}

/// What names in an expression mean.
pub enum Scope<'s> {
    /// The input's columns (`WHERE`).
    Input {
        /// The stream read.
        from: &'s TableRef,
        /// Its columns.
        cols: &'s mut dyn Columns,
    },
    /// The output row's columns and the select list's aggregates (`HAVING`).
    Output {
        /// The row's column names.
        row: &'s [String],
        /// Each aggregate's SQL (upper case) and its column in the row.
        aggs: &'s [(String, usize)],
        /// The stage's name.
        stage: &'s str,
    },
}

/// The plan ident of a sqlparser ident.
pub fn ident(cx: Cx, id: &ast::Ident) -> Ident {
    Ident {
        value: id.value.clone(),
        quoted: id.quote_style.is_some(),
        at: cx.range(id.span),
    }
}

/// Reads `e` of `clause` (`WHERE`), its names resolved in `scope`.
pub fn read(cx: Cx, clause: &str, e: &ast::Expr, scope: &mut Scope) -> Result<Expr, Error> {
    let b = |e: &ast::Expr, s: &mut Scope| read(cx, clause, e, s).map(Box::new);
    let kind = match e {
        ast::Expr::Identifier(id) => ExprKind::Col(column(cx, clause, None, id, scope)?),
        ast::Expr::CompoundIdentifier(ids) if ids.len() == 2 => {
            ExprKind::Col(column(cx, clause, Some(&ids[0]), &ids[1], scope)?)
        }
        ast::Expr::Nested(inner) => ExprKind::Nested(b(inner, scope)?),
        ast::Expr::Value(v) => ExprKind::Lit(match &v.value {
            Value::Number(n, _) => Lit::Number(n.clone()),
            Value::SingleQuotedString(s) => Lit::Str(s.clone()),
            Value::Boolean(v) => Lit::Bool(*v),
            Value::Null => Lit::Null,
            _ => return Err(unsupported(cx, clause, e, "this literal")),
        }),
        ast::Expr::UnaryOp { op, expr } => match op {
            U::Not => ExprKind::Not(b(expr, scope)?),
            U::Minus => ExprKind::Neg(b(expr, scope)?),
            U::Plus => ExprKind::Pos(b(expr, scope)?),
            _ => return Err(unsupported(cx, clause, e, "this operator")),
        },
        ast::Expr::BinaryOp { left, op, right } => {
            let Some(op) = bin_op(op) else {
                return Err(unsupported(cx, clause, e, &format!("the operator `{op}`")));
            };
            ExprKind::Binary(op, b(left, scope)?, b(right, scope)?)
        }
        ast::Expr::Function(_) => ExprKind::Col(aggregate(cx, clause, e, scope)?),
        _ => return Err(unsupported(cx, clause, e, "this expression")),
    };
    Ok(Expr {
        kind,
        at: cx.range(e.span()),
    })
}

fn bin_op(op: &B) -> Option<BinOp> {
    Some(match op {
        B::Plus => BinOp::Add,
        B::Minus => BinOp::Sub,
        B::Multiply => BinOp::Mul,
        B::Divide => BinOp::Div,
        B::Modulo => BinOp::Rem,
        B::Eq => BinOp::Eq,
        B::NotEq => BinOp::Ne,
        B::Lt => BinOp::Lt,
        B::LtEq => BinOp::Le,
        B::Gt => BinOp::Gt,
        B::GtEq => BinOp::Ge,
        B::And => BinOp::And,
        B::Or => BinOp::Or,
        _ => return None,
    })
}

/// The column `id` (qualified by `q`) names in `scope`.
fn column(
    cx: Cx,
    clause: &str,
    q: Option<&ast::Ident>,
    id: &ast::Ident,
    scope: &mut Scope,
) -> Result<usize, Error> {
    match scope {
        Scope::Input { from, cols } => {
            check_qualifier(cx, q, from)?;
            cols.column(Side::From, &ident(cx, id), Want::Any, clause)
        }
        Scope::Output { row, stage, .. } => {
            if let Some(q) = q {
                let msg = format!("unknown table `{}`; this query reads `{stage}`", q.value);
                return Err(cx.error(q.span, msg));
            }
            let id = ident(cx, id);
            find(row, &id).ok_or_else(|| unknown_output(cx, &id, row, stage))
        }
    }
}

/// `q` must name the stream `from` reads.
pub fn check_qualifier(cx: Cx, q: Option<&ast::Ident>, from: &TableRef) -> Result<(), Error> {
    match q {
        Some(q)
            if !from
                .qualifiers
                .iter()
                .any(|n| n.eq_ignore_ascii_case(&q.value)) =>
        {
            Err(cx.error(
                q.span,
                format!(
                    "unknown table `{}`; this query reads `{}`",
                    q.value, from.qualifiers[0]
                ),
            ))
        }
        _ => Ok(()),
    }
}

fn unknown_output(cx: Cx, id: &Ident, row: &[String], stage: &str) -> Error {
    let msg = match cx.host {
        Host::Macro => {
            let names: Vec<&str> = row.iter().map(String::as_str).collect();
            let hint = match nearest(&id.value, &names) {
                Some(n) => format!("did you mean `{n}`?"),
                None => format!("its columns are {}", names.join(", ")),
            };
            format!("unknown column `{}` in `{stage}`; {hint}", id.value)
        }
        Host::Interpreter => format!(
            "unknown column `{}` in HAVING; the row's columns are {}",
            id.value,
            row.join(", ")
        ),
    };
    Error::new(id.at.clone(), msg)
}

/// The output column holding the aggregate call `e`.
fn aggregate(cx: Cx, clause: &str, e: &ast::Expr, scope: &Scope) -> Result<usize, Error> {
    let Scope::Output { aggs, .. } = scope else {
        return Err(cx.error(
            e.span(),
            format!("`{e}` in {clause}: aggregates are tested in HAVING, after GROUP BY"),
        ));
    };
    let text = e.to_string().to_uppercase();
    aggs.iter().find(|(t, _)| *t == text).map(|(_, i)| *i).ok_or_else(|| {
        cx.error(
            e.span(),
            format!("`{e}` is not in the select list: select it (`{e} AS name`) to test it in HAVING"),
        )
    })
}

fn unsupported(cx: Cx, clause: &str, e: &ast::Expr, what: &str) -> Error {
    cx.error(
        e.span(),
        format!("{what} (`{e}`) is not supported in {clause}: use comparisons, AND, OR, NOT, + - * / %, numbers, 'strings', TRUE/FALSE and columns"),
    )
}

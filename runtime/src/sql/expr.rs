//! `WHERE` and `HAVING` expressions: lowered once into [`Ex`] with columns resolved to
//! indices, then evaluated per row. Comparisons, `AND`/`OR`/`NOT`, arithmetic,
//! literals, columns, and (in `HAVING`) the aggregates of the select list.

use std::cmp::Ordering;

use sqlparser::ast::{BinaryOperator as B, Expr, Ident, Spanned, UnaryOperator as U, Value};

use super::error::SqlError;
use super::value::Val;

/// A lowered expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Ex {
    /// The row's value at this column index.
    Col(usize),
    /// A constant.
    Lit(Val),
    /// `NOT e`.
    Not(Box<Ex>),
    /// `-e`.
    Neg(Box<Ex>),
    /// `a AND b`.
    And(Box<Ex>, Box<Ex>),
    /// `a OR b`.
    Or(Box<Ex>, Box<Ex>),
    /// A comparison.
    Cmp(Cmp, Box<Ex>, Box<Ex>),
    /// Arithmetic.
    Arith(Arith, Box<Ex>, Box<Ex>),
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// An arithmetic operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Arith {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

/// How names in an expression resolve.
pub trait Scope {
    /// The index of the column `id` (qualified by `q`), or why not.
    fn column(&mut self, q: Option<&Ident>, id: &Ident) -> Result<usize, SqlError>;
    /// The index of the column holding the aggregate `e`, or why not.
    fn aggregate(&mut self, e: &Expr) -> Result<usize, SqlError>;
}

/// Lowers `e` with names resolved in `scope`.
pub fn lower(e: &Expr, scope: &mut dyn Scope) -> Result<Ex, SqlError> {
    let b = |e: &Expr, s: &mut dyn Scope| lower(e, s).map(Box::new);
    Ok(match e {
        Expr::Identifier(id) => Ex::Col(scope.column(None, id)?),
        Expr::CompoundIdentifier(ids) if ids.len() == 2 => {
            Ex::Col(scope.column(Some(&ids[0]), &ids[1])?)
        }
        Expr::Nested(inner) => lower(inner, scope)?,
        Expr::Value(v) => Ex::Lit(literal(&v.value, e)?),
        Expr::UnaryOp { op, expr } => match op {
            U::Not => Ex::Not(b(expr, scope)?),
            U::Minus => Ex::Neg(b(expr, scope)?),
            U::Plus => lower(expr, scope)?,
            _ => return Err(unsupported(e, "this operator")),
        },
        Expr::BinaryOp { left, op, right } => {
            let (l, r) = (b(left, scope)?, b(right, scope)?);
            let cmp = |c| Ex::Cmp(c, l.clone(), r.clone());
            let arith = |a| Ex::Arith(a, l.clone(), r.clone());
            match op {
                B::And => Ex::And(l, r),
                B::Or => Ex::Or(l, r),
                B::Eq => cmp(Cmp::Eq),
                B::NotEq => cmp(Cmp::Ne),
                B::Lt => cmp(Cmp::Lt),
                B::LtEq => cmp(Cmp::Le),
                B::Gt => cmp(Cmp::Gt),
                B::GtEq => cmp(Cmp::Ge),
                B::Plus => arith(Arith::Add),
                B::Minus => arith(Arith::Sub),
                B::Multiply => arith(Arith::Mul),
                B::Divide => arith(Arith::Div),
                B::Modulo => arith(Arith::Rem),
                _ => return Err(unsupported(e, &format!("the operator `{op}`"))),
            }
        }
        Expr::Function(_) => Ex::Col(scope.aggregate(e)?),
        _ => return Err(unsupported(e, "this expression")),
    })
}

fn unsupported(e: &Expr, what: &str) -> SqlError {
    SqlError::at(
        e.span(),
        format!("{what} is not supported in SQL pipelines: use comparisons, AND/OR/NOT, + - * / %, columns and literals"),
    )
}

fn literal(v: &Value, e: &Expr) -> Result<Val, SqlError> {
    Ok(match v {
        Value::Number(n, _) => match n.parse::<i64>() {
            Ok(i) => Val::Int(i),
            Err(_) => Val::Float(
                n.parse()
                    .map_err(|_| SqlError::at(e.span(), format!("`{n}` is not a number")))?,
            ),
        },
        Value::SingleQuotedString(s) => Val::Str(s.clone()),
        Value::Boolean(b) => Val::Bool(*b),
        Value::Null => Val::Null,
        _ => return Err(unsupported(e, "this literal")),
    })
}

impl Ex {
    /// The value of the expression for `row`.
    ///
    /// ```
    /// use simplestream_runtime::sql::{Ex, Cmp, Val};
    /// let e = Ex::Cmp(Cmp::Gt, Box::new(Ex::Col(0)), Box::new(Ex::Lit(Val::Int(10))));
    /// assert_eq!(e.eval(&[Val::Float(12.5)]), Val::Bool(true));
    /// ```
    pub fn eval(&self, row: &[Val]) -> Val {
        match self {
            Ex::Col(i) => row[*i].clone(),
            Ex::Lit(v) => v.clone(),
            Ex::Not(e) => match e.eval(row) {
                Val::Bool(b) => Val::Bool(!b),
                _ => Val::Null,
            },
            Ex::Neg(e) => match e.eval(row) {
                Val::Int(i) => Val::Int(i.wrapping_neg()),
                Val::Float(f) => Val::Float(-f),
                _ => Val::Null,
            },
            Ex::And(a, b) => Val::Bool(a.test(row) && b.test(row)),
            Ex::Or(a, b) => Val::Bool(a.test(row) || b.test(row)),
            Ex::Cmp(c, a, b) => match compare(&a.eval(row), &b.eval(row)) {
                Some(o) => Val::Bool(c.holds(o)),
                None => Val::Bool(false),
            },
            Ex::Arith(op, a, b) => arith(*op, a.eval(row), b.eval(row)),
        }
    }

    /// True if the expression is `true` for `row` (false for anything else, `NULL` too).
    #[inline]
    pub fn test(&self, row: &[Val]) -> bool {
        match self {
            Ex::Cmp(c, a, b) => match (&**a, &**b) {
                // The common `col > literal`: no clone of the column's value.
                (Ex::Col(i), Ex::Lit(l)) => compare(&row[*i], l).is_some_and(|o| c.holds(o)),
                _ => self.eval(row) == Val::Bool(true),
            },
            _ => self.eval(row) == Val::Bool(true),
        }
    }
}

impl Cmp {
    fn holds(self, o: Ordering) -> bool {
        match self {
            Cmp::Eq => o == Ordering::Equal,
            Cmp::Ne => o != Ordering::Equal,
            Cmp::Lt => o == Ordering::Less,
            Cmp::Le => o != Ordering::Greater,
            Cmp::Gt => o == Ordering::Greater,
            Cmp::Ge => o != Ordering::Less,
        }
    }
}

/// Orders two values of comparable kinds (numbers with numbers, strings with strings,
/// booleans with booleans); `None` otherwise, and for NaN.
fn compare(a: &Val, b: &Val) -> Option<Ordering> {
    match (a, b) {
        (Val::Int(x), Val::Int(y)) => Some(x.cmp(y)),
        (Val::Int(x), Val::Float(y)) => (*x as f64).partial_cmp(y),
        (Val::Float(x), Val::Int(y)) => x.partial_cmp(&(*y as f64)),
        (Val::Float(x), Val::Float(y)) => x.partial_cmp(y),
        (Val::Str(x), Val::Str(y)) => Some(x.cmp(y)),
        (Val::Bool(x), Val::Bool(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

/// Integers stay integers (wrapping, as compiled pipelines do in release builds; a zero
/// divisor gives `NULL`); a float on either side makes the result a float.
fn arith(op: Arith, a: Val, b: Val) -> Val {
    match (a, b) {
        (Val::Int(x), Val::Int(y)) => match op {
            Arith::Add => Val::Int(x.wrapping_add(y)),
            Arith::Sub => Val::Int(x.wrapping_sub(y)),
            Arith::Mul => Val::Int(x.wrapping_mul(y)),
            Arith::Div if y == 0 => Val::Null,
            Arith::Div => Val::Int(x.wrapping_div(y)),
            Arith::Rem if y == 0 => Val::Null,
            Arith::Rem => Val::Int(x.wrapping_rem(y)),
        },
        (Val::Int(x), Val::Float(y)) => float(op, x as f64, y),
        (Val::Float(x), Val::Int(y)) => float(op, x, y as f64),
        (Val::Float(x), Val::Float(y)) => float(op, x, y),
        _ => Val::Null,
    }
}

fn float(op: Arith, x: f64, y: f64) -> Val {
    Val::Float(match op {
        Arith::Add => x + y,
        Arith::Sub => x - y,
        Arith::Mul => x * y,
        Arith::Div => x / y,
        Arith::Rem => x % y,
    })
}

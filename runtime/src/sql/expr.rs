//! `WHERE` and `HAVING` expressions: the plan's, with columns resolved to indices,
//! lowered once into [`Ex`], then evaluated per row.

use std::cmp::Ordering;

use simplestream_sqlplan::{BinOp, Error, Expr, ExprKind, Lit};

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

/// Lowers the plan's `e`.
pub fn lower(e: &Expr) -> Result<Ex, Error> {
    let b = |e: &Expr| lower(e).map(Box::new);
    Ok(match &e.kind {
        ExprKind::Col(i) => Ex::Col(*i),
        ExprKind::Nested(inner) | ExprKind::Pos(inner) => lower(inner)?,
        ExprKind::Lit(v) => Ex::Lit(literal(v, e)?),
        ExprKind::Not(inner) => Ex::Not(b(inner)?),
        ExprKind::Neg(inner) => Ex::Neg(b(inner)?),
        ExprKind::Binary(op, l, r) => {
            let (l, r) = (b(l)?, b(r)?);
            match op {
                BinOp::And => Ex::And(l, r),
                BinOp::Or => Ex::Or(l, r),
                BinOp::Eq => Ex::Cmp(Cmp::Eq, l, r),
                BinOp::Ne => Ex::Cmp(Cmp::Ne, l, r),
                BinOp::Lt => Ex::Cmp(Cmp::Lt, l, r),
                BinOp::Le => Ex::Cmp(Cmp::Le, l, r),
                BinOp::Gt => Ex::Cmp(Cmp::Gt, l, r),
                BinOp::Ge => Ex::Cmp(Cmp::Ge, l, r),
                BinOp::Add => Ex::Arith(Arith::Add, l, r),
                BinOp::Sub => Ex::Arith(Arith::Sub, l, r),
                BinOp::Mul => Ex::Arith(Arith::Mul, l, r),
                BinOp::Div => Ex::Arith(Arith::Div, l, r),
                BinOp::Rem => Ex::Arith(Arith::Rem, l, r),
            }
        }
    })
}

fn literal(v: &Lit, e: &Expr) -> Result<Val, Error> {
    Ok(match v {
        Lit::Number(n) => match n.parse::<i64>() {
            Ok(i) => Val::Int(i),
            Err(_) => Val::Float(
                n.parse()
                    .map_err(|_| Error::new(e.at.clone(), format!("`{n}` is not a number")))?,
            ),
        },
        Lit::Str(s) => Val::Str(s.clone()),
        Lit::Bool(b) => Val::Bool(*b),
        Lit::Null => Val::Null,
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

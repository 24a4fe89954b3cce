//! SQL expressions (`WHERE`, `HAVING`) as Rust closures over the rows they test:
//! comparisons, `AND`/`OR`/`NOT`, arithmetic, literals and column references. rustc
//! type-checks the result; a numeric literal takes the kind of what it meets
//! (`amount > 100` on an `f64` column is `__e.amount > 100.0`).

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use sqlparser::ast::{BinaryOperator as B, Expr, UnaryOperator as U, Value};
use sqlparser::ast::{Ident as SqlIdent, Spanned};
use syn::{Ident, LitBool, LitFloat, LitInt, LitStr};

use super::schema::{self, Column, Kind, Schema};
use super::text::SqlText;
use crate::diag;

/// What an expression may refer to.
pub struct Scope<'a> {
    /// The SQL it is in.
    pub text: &'a SqlText,
    /// The row's columns.
    pub schema: &'a Schema,
    /// Names that may qualify a column (`orders.amount`, `o.amount`).
    pub qualifiers: Vec<String>,
    /// Aggregates of the select list and their columns (for `HAVING COUNT(*) > 1`).
    pub aggregates: Vec<(String, String)>,
    /// Which clause, for messages (`WHERE`).
    pub clause: &'static str,
}

/// `|__e| <expr>`.
pub fn closure(cx: &Scope, e: &Expr) -> syn::Result<TokenStream> {
    let mut e = e;
    while let Expr::Nested(inner) = e {
        e = inner;
    }
    let body = emit(cx, e, Kind::Other)?;
    let sp = cx.text.span(e.span());
    let var = Ident::new("__e", sp);
    Ok(quote_spanned!(sp=> |#var| #body))
}

/// The column `id` (qualified by `q`, if any).
pub fn column<'s>(cx: &'s Scope, q: Option<&SqlIdent>, id: &SqlIdent) -> syn::Result<&'s Column> {
    if let Some(q) = q {
        if !cx
            .qualifiers
            .iter()
            .any(|n| n.eq_ignore_ascii_case(&q.value))
        {
            let msg = format!(
                "unknown table `{}`; this query reads `{}`",
                q.value, cx.schema.stream
            );
            return Err(cx.text.error(q.span, msg));
        }
    }
    cx.schema.find(id).ok_or_else(|| {
        let names = cx.schema.names();
        let hint = match diag::nearest(&id.value, &names) {
            Some(n) => format!("did you mean `{n}`?"),
            None => format!("its columns are {}", names.join(", ")),
        };
        let msg = format!(
            "unknown column `{}` in `{}`; {hint}",
            id.value, cx.schema.stream
        );
        cx.text.error(id.span, msg)
    })
}

fn kind_of(cx: &Scope, e: &Expr) -> Kind {
    match e {
        Expr::Identifier(id) => cx
            .schema
            .find(id)
            .map_or(Kind::Other, |c| schema::kind(&c.ty)),
        Expr::CompoundIdentifier(ids) => ids
            .last()
            .and_then(|id| cx.schema.find(id))
            .map_or(Kind::Other, |c| schema::kind(&c.ty)),
        Expr::Function(f) => aggregate_column(cx, e)
            .and_then(|n| cx.schema.cols.iter().find(|c| c.name == n))
            .map_or_else(
                || {
                    let _ = f;
                    Kind::Other
                },
                |c| schema::kind(&c.ty),
            ),
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) if n.contains(['.', 'e', 'E']) => Kind::Float,
            Value::Number(..) => Kind::Int,
            Value::SingleQuotedString(_) => Kind::Str,
            Value::Boolean(_) => Kind::Bool,
            _ => Kind::Other,
        },
        Expr::Nested(inner)
        | Expr::UnaryOp {
            expr: inner,
            op: U::Minus | U::Plus,
        } => kind_of(cx, inner),
        Expr::BinaryOp { left, op, right } => match op {
            B::Plus | B::Minus | B::Multiply | B::Divide | B::Modulo => {
                match (kind_of(cx, left), kind_of(cx, right)) {
                    (Kind::Float, _) | (_, Kind::Float) => Kind::Float,
                    (k, _) => k,
                }
            }
            _ => Kind::Bool,
        },
        _ => Kind::Other,
    }
}

/// The select-list column an aggregate call in `HAVING` refers to.
fn aggregate_column(cx: &Scope, e: &Expr) -> Option<String> {
    let text = e.to_string().to_uppercase();
    cx.aggregates
        .iter()
        .find(|(t, _)| *t == text)
        .map(|(_, c)| c.clone())
}

/// Rust for `e`; a numeric literal becomes a float where `hint` is a float.
fn emit(cx: &Scope, e: &Expr, hint: Kind) -> syn::Result<TokenStream> {
    let sp = cx.text.span(e.span());
    match e {
        Expr::Identifier(id) => field(cx, column(cx, None, id)?, sp),
        Expr::CompoundIdentifier(ids) if ids.len() == 2 => {
            field(cx, column(cx, Some(&ids[0]), &ids[1])?, sp)
        }
        Expr::Nested(inner) => {
            let inner = emit(cx, inner, hint)?;
            Ok(quote_spanned!(sp=> (#inner)))
        }
        Expr::Value(v) => literal(cx, &v.value, hint, sp, e),
        Expr::UnaryOp { op, expr } => {
            let inner = operand(cx, expr, hint, 6, false)?;
            match op {
                U::Not => Ok(quote_spanned!(sp=> !#inner)),
                U::Minus => Ok(quote_spanned!(sp=> -#inner)),
                U::Plus => Ok(inner),
                _ => Err(unsupported(cx, e, "this operator")),
            }
        }
        Expr::BinaryOp { left, op, right } => binary(cx, left, op, right, sp, e),
        Expr::Function(_) => match aggregate_column(cx, e) {
            Some(name) => {
                let id = SqlIdent::with_span(e.span(), name);
                field(cx, column(cx, None, &id)?, sp)
            }
            None if cx.aggregates.is_empty() => Err(cx.text.error(
                e.span(),
                format!("`{e}` in {}: aggregates are tested in HAVING, after GROUP BY", cx.clause),
            )),
            None => Err(cx.text.error(
                e.span(),
                format!("`{e}` is not in the select list: select it (`{e} AS name`) to test it in HAVING"),
            )),
        },
        _ => Err(unsupported(cx, e, "this expression")),
    }
}

fn binary(cx: &Scope, l: &Expr, op: &B, r: &Expr, sp: Span, e: &Expr) -> syn::Result<TokenStream> {
    let rust_op = match op {
        B::Plus => quote_spanned!(sp=> +),
        B::Minus => quote_spanned!(sp=> -),
        B::Multiply => quote_spanned!(sp=> *),
        B::Divide => quote_spanned!(sp=> /),
        B::Modulo => quote_spanned!(sp=> %),
        B::Gt => quote_spanned!(sp=> >),
        B::Lt => quote_spanned!(sp=> <),
        B::GtEq => quote_spanned!(sp=> >=),
        B::LtEq => quote_spanned!(sp=> <=),
        B::Eq => quote_spanned!(sp=> ==),
        B::NotEq => quote_spanned!(sp=> !=),
        B::And => quote_spanned!(sp=> &&),
        B::Or => quote_spanned!(sp=> ||),
        _ => return Err(unsupported(cx, e, &format!("the operator `{op}`"))),
    };
    let (lk, rk) = (kind_of(cx, l), kind_of(cx, r));
    let p = precedence(op);
    let (lhs, rhs) = (operand(cx, l, rk, p, false)?, operand(cx, r, lk, p, true)?);
    Ok(quote!(#lhs #rust_op #rhs))
}

/// Rust's binding strength of a binary operator (comparisons do not chain).
fn precedence(op: &B) -> u8 {
    match op {
        B::Or => 1,
        B::And => 2,
        B::Multiply | B::Divide | B::Modulo => 5,
        B::Plus | B::Minus => 4,
        _ => 3,
    }
}

/// An operand of an operator binding with `outer` strength: in parentheses where Rust
/// would group it otherwise (as a person writing the DSL would).
fn operand(cx: &Scope, e: &Expr, hint: Kind, outer: u8, right: bool) -> syn::Result<TokenStream> {
    let code = emit(cx, e, hint)?;
    let inner = match e {
        Expr::BinaryOp { op, .. } => precedence(op),
        _ => return Ok(code),
    };
    let parens = inner < outer || (inner == outer && (right || inner == 3));
    Ok(if parens { quote!((#code)) } else { code })
}

/// `__e.name`, as a `&str` for strings (comparable with literals and each other).
fn field(cx: &Scope, c: &Column, sp: Span) -> syn::Result<TokenStream> {
    let _ = cx;
    let var = Ident::new("__e", sp);
    let name = Ident::new(&c.name, sp);
    Ok(match schema::kind(&c.ty) {
        Kind::Str => quote_spanned!(sp=> #var.#name.as_str()),
        _ => quote_spanned!(sp=> #var.#name),
    })
}

fn literal(cx: &Scope, v: &Value, hint: Kind, sp: Span, e: &Expr) -> syn::Result<TokenStream> {
    Ok(match v {
        Value::Number(n, _) if hint == Kind::Float && !n.contains(['.', 'e', 'E']) => {
            let lit = LitFloat::new(&format!("{n}.0"), sp);
            quote!(#lit)
        }
        Value::Number(n, _) if n.contains(['.', 'e', 'E']) => {
            let lit = LitFloat::new(n, sp);
            quote!(#lit)
        }
        Value::Number(n, _) => {
            let lit = LitInt::new(n, sp);
            quote!(#lit)
        }
        Value::SingleQuotedString(s) => {
            let lit = LitStr::new(s, sp);
            quote!(#lit)
        }
        Value::Boolean(b) => {
            let lit = LitBool::new(*b, sp);
            quote!(#lit)
        }
        Value::Null => {
            return Err(cx.text.error(
                e.span(),
                "NULL: events have no missing values; compare with a value",
            ))
        }
        _ => return Err(unsupported(cx, e, "this literal")),
    })
}

fn unsupported(cx: &Scope, e: &Expr, what: &str) -> syn::Error {
    cx.text.error(
        e.span(),
        format!("{what} (`{e}`) is not supported in {}: use comparisons, AND, OR, NOT, + - * / %, numbers, 'strings', TRUE/FALSE and columns", cx.clause),
    )
}

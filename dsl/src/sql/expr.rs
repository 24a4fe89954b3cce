//! Planned SQL expressions (`WHERE`, `HAVING`) as Rust closures over the rows they
//! test. rustc type-checks the result; a numeric literal takes the kind of what it
//! meets (`amount > 100` on an `f64` column is `__e.amount > 100.0`).

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use simplestream_sqlplan::{BinOp, Error, Expr, ExprKind, Lit};
use syn::{Ident, LitBool, LitFloat, LitInt, LitStr};

use super::schema::{self, Column, Kind, Schema};
use super::text::SqlText;

/// What an expression's columns are.
pub struct Scope<'a> {
    /// The SQL it is in.
    pub text: &'a SqlText,
    /// The row's columns.
    pub schema: &'a Schema,
}

/// `|__e| <expr>`.
pub fn closure(cx: &Scope, e: &Expr) -> syn::Result<TokenStream> {
    let mut e = e;
    while let ExprKind::Nested(inner) = &e.kind {
        e = inner;
    }
    let body = emit(cx, e, Kind::Other)?;
    let sp = cx.text.span(&e.at);
    let var = Ident::new("__e", sp);
    Ok(quote_spanned!(sp=> |#var| #body))
}

fn kind_of(cx: &Scope, e: &Expr) -> Kind {
    match &e.kind {
        ExprKind::Col(i) => schema::kind(&cx.schema.cols[*i].ty),
        ExprKind::Lit(Lit::Number(n)) if n.contains(['.', 'e', 'E']) => Kind::Float,
        ExprKind::Lit(Lit::Number(_)) => Kind::Int,
        ExprKind::Lit(Lit::Str(_)) => Kind::Str,
        ExprKind::Lit(Lit::Bool(_)) => Kind::Bool,
        ExprKind::Lit(Lit::Null) | ExprKind::Not(_) => Kind::Other,
        ExprKind::Nested(inner) | ExprKind::Neg(inner) | ExprKind::Pos(inner) => kind_of(cx, inner),
        ExprKind::Binary(op, l, r) => match op {
            BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Rem => {
                match (kind_of(cx, l), kind_of(cx, r)) {
                    (Kind::Float, _) | (_, Kind::Float) => Kind::Float,
                    (k, _) => k,
                }
            }
            _ => Kind::Bool,
        },
    }
}

/// Rust for `e`; a numeric literal becomes a float where `hint` is a float.
fn emit(cx: &Scope, e: &Expr, hint: Kind) -> syn::Result<TokenStream> {
    let sp = cx.text.span(&e.at);
    match &e.kind {
        ExprKind::Col(i) => Ok(field(&cx.schema.cols[*i], sp)),
        ExprKind::Nested(inner) => {
            let inner = emit(cx, inner, hint)?;
            Ok(quote_spanned!(sp=> (#inner)))
        }
        ExprKind::Lit(v) => literal(cx, v, hint, sp, e),
        ExprKind::Not(inner) => {
            let inner = operand(cx, inner, hint, 6, false)?;
            Ok(quote_spanned!(sp=> !#inner))
        }
        ExprKind::Neg(inner) => {
            let inner = operand(cx, inner, hint, 6, false)?;
            Ok(quote_spanned!(sp=> -#inner))
        }
        ExprKind::Pos(inner) => operand(cx, inner, hint, 6, false),
        ExprKind::Binary(op, l, r) => binary(cx, l, *op, r, sp),
    }
}

fn binary(cx: &Scope, l: &Expr, op: BinOp, r: &Expr, sp: Span) -> syn::Result<TokenStream> {
    let rust_op = match op {
        BinOp::Add => quote_spanned!(sp=> +),
        BinOp::Sub => quote_spanned!(sp=> -),
        BinOp::Mul => quote_spanned!(sp=> *),
        BinOp::Div => quote_spanned!(sp=> /),
        BinOp::Rem => quote_spanned!(sp=> %),
        BinOp::Gt => quote_spanned!(sp=> >),
        BinOp::Lt => quote_spanned!(sp=> <),
        BinOp::Ge => quote_spanned!(sp=> >=),
        BinOp::Le => quote_spanned!(sp=> <=),
        BinOp::Eq => quote_spanned!(sp=> ==),
        BinOp::Ne => quote_spanned!(sp=> !=),
        BinOp::And => quote_spanned!(sp=> &&),
        BinOp::Or => quote_spanned!(sp=> ||),
    };
    let (lk, rk) = (kind_of(cx, l), kind_of(cx, r));
    let p = precedence(op);
    let (lhs, rhs) = (operand(cx, l, rk, p, false)?, operand(cx, r, lk, p, true)?);
    Ok(quote!(#lhs #rust_op #rhs))
}

/// Rust's binding strength of a binary operator (comparisons do not chain).
fn precedence(op: BinOp) -> u8 {
    match op {
        BinOp::Or => 1,
        BinOp::And => 2,
        BinOp::Mul | BinOp::Div | BinOp::Rem => 5,
        BinOp::Add | BinOp::Sub => 4,
        _ => 3,
    }
}

/// An operand of an operator binding with `outer` strength: in parentheses where Rust
/// would group it otherwise (as a person writing the DSL would).
fn operand(cx: &Scope, e: &Expr, hint: Kind, outer: u8, right: bool) -> syn::Result<TokenStream> {
    let code = emit(cx, e, hint)?;
    let ExprKind::Binary(op, ..) = &e.kind else {
        return Ok(code);
    };
    let inner = precedence(*op);
    let parens = inner < outer || (inner == outer && (right || inner == 3));
    Ok(if parens { quote!((#code)) } else { code })
}

/// `__e.name`, as a `&str` for strings (comparable with literals and each other).
fn field(c: &Column, sp: Span) -> TokenStream {
    let var = Ident::new("__e", sp);
    let name = Ident::new(&c.name, sp);
    match schema::kind(&c.ty) {
        Kind::Str => quote_spanned!(sp=> #var.#name.as_str()),
        _ => quote_spanned!(sp=> #var.#name),
    }
}

fn literal(cx: &Scope, v: &Lit, hint: Kind, sp: Span, e: &Expr) -> syn::Result<TokenStream> {
    Ok(match v {
        Lit::Number(n) if hint == Kind::Float && !n.contains(['.', 'e', 'E']) => {
            let lit = LitFloat::new(&format!("{n}.0"), sp);
            quote!(#lit)
        }
        Lit::Number(n) if n.contains(['.', 'e', 'E']) => {
            let lit = LitFloat::new(n, sp);
            quote!(#lit)
        }
        Lit::Number(n) => {
            let lit = LitInt::new(n, sp);
            quote!(#lit)
        }
        Lit::Str(s) => {
            let lit = LitStr::new(s, sp);
            quote!(#lit)
        }
        Lit::Bool(b) => {
            let lit = LitBool::new(*b, sp);
            quote!(#lit)
        }
        Lit::Null => {
            let msg = "NULL: events have no missing values; compare with a value";
            return Err(cx.text.error(&Error::new(e.at.clone(), msg)));
        }
    })
}

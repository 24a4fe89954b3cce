//! One planned SQL statement as a DSL stage statement: `CREATE VIEW name AS SELECT ...`
//! (or a bare `SELECT`, the stage `query`, a sink) becomes
//! `name = from.filter(..).key_by(..).window(..).aggregate(..).filter(..);`, parsed and
//! checked by the DSL like one written by hand.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote_spanned};
use simplestream_sqlplan::{Agg, Body, Func, Grouped, Script, Statement};
use syn::{Ident, LitInt, Type};

use super::expr::{self, Scope};
use super::resolve::Resolver;
use super::schema::{Column, Schema};
use super::text::SqlText;
use super::window;

/// A statement as a DSL stage.
pub struct Lowered {
    /// `name = from.op(..)...;`
    pub stage: TokenStream,
    /// The stage's name.
    pub name: Ident,
    /// True for a bare `SELECT`: a sink.
    pub sink: bool,
    /// Its columns, for statements reading it.
    pub schema: Schema,
}

/// Lowers statement `i` of `script`, which reads streams of `schemas`.
pub fn lower(
    text: &SqlText,
    script: &Script,
    i: usize,
    schemas: &[Schema],
) -> syn::Result<Lowered> {
    let Statement::Select(st) = &script.statements[i] else {
        unreachable!("the plan refuses CREATE TABLE in pipeline!");
    };
    let (name, sink) = match &st.view {
        Some(v) => (Ident::new(&v.value, text.span(&v.at)), false),
        None => (Ident::new("query", text.span(&st.at)), true),
    };
    let mut cols = Resolver::new(schemas);
    let plan = script.plan(i, &mut cols).map_err(|e| text.error(&e))?;
    let input = cols.side(simplestream_sqlplan::Side::From);
    let sp = name.span();
    let from = Ident::new(&input.stream, sp);
    let mut schema = Schema {
        stream: name.to_string(),
        cols: Vec::new(),
    };
    let stage = match &plan.body {
        Body::Join(j) => {
            let right = cols.side(simplestream_sqlplan::Side::Joined);
            // A join's rows nest both events: no columns SQL can read yet.
            schema.stream = String::new();
            super::join::lower(text, &name, j, [input, right])
        }
        Body::Pass { filter } => {
            let ops = filter
                .iter()
                .map(|f| where_(text, input, f, sp))
                .collect::<syn::Result<Vec<_>>>()?;
            schema.cols = input.cols.clone();
            quote_spanned!(sp=> #name = #from #(#ops)*;)
        }
        Body::Grouped(g) => {
            let mut ops = Vec::new();
            if let Some(f) = &g.filter {
                ops.push(where_(text, input, f, sp)?);
            }
            ops.extend(grouped(text, input, g, &plan.at, &mut schema)?);
            quote_spanned!(sp=> #name = #from #(#ops)*;)
        }
    };
    Ok(Lowered {
        stage,
        name,
        sink,
        schema,
    })
}

fn where_(
    text: &SqlText,
    input: &Schema,
    f: &simplestream_sqlplan::Expr,
    sp: Span,
) -> syn::Result<TokenStream> {
    let f = expr::closure(
        &Scope {
            text,
            schema: input,
        },
        f,
    )?;
    Ok(quote_spanned!(sp=> .filter(#f)))
}

/// `.key_by(..).window(..).aggregate(..).filter(having)`; `out` gets the row's columns.
fn grouped(
    text: &SqlText,
    input: &Schema,
    g: &Grouped,
    at: &Option<std::ops::Range<usize>>,
    out: &mut Schema,
) -> syn::Result<Vec<TokenStream>> {
    let mut ops = Vec::new();
    let sp = text.span(at);
    if let Some(k) = &g.key {
        let k = &input.cols[k.col];
        let (name, ty) = (Ident::new(&k.name, sp), &k.ty);
        let value = read(&k.name, ty, sp);
        ops.push(quote_spanned!(sp=> .key_by(#name: #ty = |__e| #value)));
        out.cols.push(k.clone());
    }
    if let Some(w) = &g.window {
        ops.push(window::dsl(w.win, text.span(&w.at)));
        for c in ["window_start", "window_end"] {
            out.cols.push(Column {
                name: c.into(),
                ty: syn::parse_quote!(i64),
            });
        }
    }
    let aggs: Vec<(TokenStream, Type)> = g.aggs.iter().map(|a| aggregate(text, input, a)).collect();
    let cols = aggs.iter().map(|a| &a.0);
    ops.push(quote_spanned!(sp=> .aggregate(#(#cols),*)));
    out.cols
        .extend(g.aggs.iter().zip(&aggs).map(|(a, (_, ty))| Column {
            name: a.name.clone(),
            ty: ty.clone(),
        }));
    if let Some(h) = &g.having {
        let f = expr::closure(&Scope { text, schema: out }, h)?;
        ops.push(quote_spanned!(sp=> .filter(#f)));
    }
    Ok(ops)
}

/// An aggregate as the DSL writes it (`amount: f64 = sum(|__e| __e.amount)`), and its
/// type in the row.
fn aggregate(text: &SqlText, input: &Schema, a: &Agg) -> (TokenStream, Type) {
    let sp = text.span(&a.at);
    let id = Ident::new(&a.name, sp);
    let Some(c) = a.col.map(|c| &input.cols[c]) else {
        return (quote_spanned!(sp=> #id = count()), syn::parse_quote!(u64));
    };
    let (ty, f_id) = (&c.ty, format_ident!("{}", a.func.name(), span = sp));
    let value = read(&c.name, ty, sp);
    let row_ty = if a.func == Func::Avg {
        syn::parse_quote!(f64)
    } else {
        ty.clone()
    };
    (quote_spanned!(sp=> #id: #ty = #f_id(|__e| #value)), row_ty)
}

/// `__e.name`, cloned unless it is a plain copy.
pub fn read(name: &str, ty: &Type, sp: Span) -> TokenStream {
    let f = Ident::new(name, sp);
    if super::schema::is_copy(ty) {
        quote_spanned!(sp=> __e.#f)
    } else {
        quote_spanned!(sp=> __e.#f.clone())
    }
}

/// Milliseconds as a DSL duration literal (`300000ms`).
pub fn duration_lit(ms: i64, sp: Span) -> LitInt {
    LitInt::new(&format!("{ms}ms"), sp)
}

//! SQL statements in `pipeline!`: `sql r#"CREATE VIEW name AS SELECT ..."#;`, read by
//! `simplestream-sqlplan` (as `simplestream sql` reads them) and its plan lowered into
//! DSL stage statements (see [`select`]), so that the checks, the plan and the
//! generated code are the DSL's own.
//!
//! Column types come from the source's event type, which must derive [`Columns`]: its
//! derive defines a `macro_rules!` that calls `pipeline!` again with the fields and
//! their types (`__columns orders { customer: String, .. };`) ahead of the original
//! input. `pipeline!` asks for that for every source SQL reads, then lowers.
//!
//! ```
//! let plan = simplestream_dsl::plan_str(r#"
//!     __columns orders { customer: String, amount: f64, ts: i64 };
//!     pipeline P;
//!     source orders: Order, event_time = |o| o.ts, max_delay = 5s;
//!     sql r"CREATE VIEW stats AS SELECT customer, COUNT(*) AS n FROM orders GROUP BY customer";
//!     sink stats;
//! "#).unwrap();
//! assert_eq!(plan.stages[0].name.to_string(), "stats");
//! ```
//!
//! [`Columns`]: https://docs.rs/simplestream

pub mod columns;
pub mod expr;
pub mod join;
pub mod resolve;
pub mod schema;
pub mod select;
pub mod text;
pub mod window;

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote};
use simplestream_sqlplan::{Host, Statement};
use syn::parse::{Parse, ParseStream};
use syn::{Ident, LitStr, Token, Type};

use crate::diag::Errors;
use crate::parse::{PipelineDef, SinkDef, SourceDef, StageDef};
use schema::{Column, Schema};
use text::SqlText;

/// `sql "..."`: one or more SQL statements.
pub struct SqlDef {
    /// The SQL literal.
    pub lit: LitStr,
    /// How many stage statements come before it (its stages go there).
    pub at: usize,
}

/// `__columns orders { customer: String, .. };`: a source's fields, given by the
/// `Columns` derive of its event type.
pub struct ColumnsDef {
    /// The source.
    pub source: Ident,
    /// Its event type's fields.
    pub fields: Vec<(Ident, Type)>,
}

impl Parse for ColumnsDef {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        input.parse::<Ident>()?;
        let source: Ident = input.parse()?;
        let body;
        syn::braced!(body in input);
        let mut fields = Vec::new();
        while !body.is_empty() {
            let name: Ident = body.parse()?;
            body.parse::<Token![:]>()?;
            fields.push((name, body.parse()?));
            if !body.is_empty() {
                body.parse::<Token![,]>()?;
            }
        }
        input.parse::<Token![;]>()?;
        Ok(ColumnsDef { source, fields })
    }
}

/// Lowers the SQL of `def` into its stages and sinks; or, while a source SQL reads has
/// no columns yet, the call that asks its event type's `Columns` derive for them
/// (`input` is the whole `pipeline!` input, passed along).
pub fn lower(def: &mut PipelineDef, input: &TokenStream) -> syn::Result<Option<TokenStream>> {
    if def.sql.is_empty() {
        return Ok(None);
    }
    let mut errs = Errors::default();
    let texts: Vec<(SqlText, usize)> = def
        .sql
        .iter()
        .map(|s| (SqlText::new(s.lit.clone()), s.at))
        .collect();
    let mut parsed = Vec::new();
    for (text, at) in &texts {
        match simplestream_sqlplan::parse(&text.text, Host::Macro) {
            Ok(script) if script.statements.is_empty() => {
                errs.push(text.lit.span(), "empty SQL: write a SELECT or CREATE VIEW")
            }
            Ok(script) => parsed.push((text, script, *at)),
            Err(e) => errs.add(text.error(&e)),
        }
    }
    let parsed = errs.finish(parsed)?;
    let reads: Vec<String> = parsed
        .iter()
        .flat_map(|(_, script, _)| script.statements.iter().flat_map(reads))
        .collect();
    let missing = def.sources.iter().find(|s| {
        reads.contains(&s.name.to_string()) && !def.columns.iter().any(|c| c.source == s.name)
    });
    if let Some(src) = missing {
        let site = first_call_site(def).unwrap_or_else(Span::call_site);
        return callback(src, input, site).map(Some);
    }
    let mut schemas: Vec<Schema> = def.columns.iter().map(source_schema).collect();
    let mut inserts: Vec<(usize, StageDef)> = Vec::new();
    let mut errs = Errors::default();
    for (text, script, at) in &parsed {
        for i in 0..script.statements.len() {
            match select::lower(text, script, i, &schemas) {
                Ok(l) => {
                    match syn::parse2::<StageDef>(l.stage) {
                        Ok(stage) => inserts.push((*at, stage)),
                        Err(e) => errs.add(e),
                    }
                    if l.sink {
                        let kw = Ident::new("sink", l.name.span());
                        def.sinks.push(SinkDef { kw, name: l.name });
                    }
                    schemas.push(l.schema);
                }
                Err(e) => errs.add(e),
            }
        }
    }
    errs.finish(())?;
    for (at, stage) in inserts.into_iter().rev() {
        def.stages.insert(at, stage);
    }
    Ok(None)
}

/// The streams a statement's `FROM` (and `JOIN`) names.
fn reads(st: &Statement) -> Vec<String> {
    match st {
        Statement::Select(s) => s.reads(),
        Statement::Table(_) => Vec::new(),
    }
}

fn source_schema(c: &ColumnsDef) -> Schema {
    Schema {
        stream: c.source.to_string(),
        cols: c
            .fields
            .iter()
            .map(|(n, t)| Column {
                name: n.to_string(),
                ty: t.clone(),
            })
            .collect(),
    }
}

/// The call site of the user's own `pipeline!` call, once a `Columns` derive called it
/// again: the span of the source names the first round passed along.
pub fn first_call_site(def: &PipelineDef) -> Option<Span> {
    def.columns.last().map(|c| c.source.span())
}

/// `path::__simplestream_columns_Order! { orders; <input> }`, the source name spanned
/// at `site`, the user's call.
fn callback(src: &SourceDef, input: &TokenStream, site: Span) -> syn::Result<TokenStream> {
    let path = match &src.ty {
        Type::Path(p) if p.qself.is_none() => &p.path,
        other => {
            return Err(syn::Error::new_spanned(
                other,
                "SQL reads sources whose event type is a struct deriving `Columns`",
            ));
        }
    };
    let mut path = path.clone();
    let last = path.segments.last_mut().expect("a path has a segment");
    let ty_ident = last.ident.clone();
    last.ident = columns::macro_name(&ty_ident);
    last.arguments = syn::PathArguments::None;
    let name = Ident::new(&src.name.to_string(), site);
    let ty = &src.ty;
    let rt = quote!(::simplestream::__rt);
    let check = format_ident!("__sql_reads_{}", name);
    Ok(quote! {
        #path! { #name; #input }
        // If the derive is missing, the call above fails to resolve; this says why.
        #[allow(non_snake_case, dead_code)]
        fn #check() { fn needs<T: #rt::Columns>() {} needs::<#ty>(); }
    })
}

//! Pipeline-level syntax: `pipeline`, `source`, stage statements and `sink`, with every
//! span kept for error messages. Each operator's arguments are parsed by its own file in
//! `ops/`, found through the table [`OPS`](crate::ops::OPS).
//!
//! ```text
//! pipeline! {
//!     pub pipeline OrderStats;
//!     source orders: Order, event_time = |o| o.ts, max_delay = 5s;
//!     valid = orders.filter(|o| o.amount > 0.0);
//!     per_5min = valid
//!         .key_by(customer: String = |o| o.customer.clone())
//!         .window(tumbling(5min))
//!         .aggregate(orders = count(), amount: f64 = sum(|o| o.amount));
//!     sink per_5min;
//! }
//! ```

mod duration;
mod field;

pub use duration::DurationLit;
pub use field::{name_and_type, peek_named, Field};

use proc_macro2::TokenStream;
use syn::parse::{Parse, ParseStream};
use syn::{Attribute, Expr, Ident, Token, Type, Visibility};

use crate::diag::{self, Known};
use crate::ops::{self, Operator};
use crate::sql::{ColumnsDef, SqlDef};

/// A whole `pipeline! { ... }` invocation.
pub struct PipelineDef {
    /// Attributes (doc comments) for the pipeline struct.
    pub attrs: Vec<Attribute>,
    /// Visibility of the pipeline struct and its module.
    pub vis: Visibility,
    /// `pipeline Name;`, if present.
    pub name: Option<Ident>,
    /// Sources, in order.
    pub sources: Vec<SourceDef>,
    /// Stage statements, in order.
    pub stages: Vec<StageDef>,
    /// `sink name;` lines.
    pub sinks: Vec<SinkDef>,
    /// `sql "...";` statements (lowered into stages and sinks by [`crate::sql`]).
    pub sql: Vec<SqlDef>,
    /// Columns of sources SQL reads, given by their `Columns` derive.
    pub columns: Vec<ColumnsDef>,
}

/// `source orders: Order, event_time = |o| o.ts, max_delay = 5s;`
pub struct SourceDef {
    /// The `source` keyword (for spans).
    pub kw: Ident,
    /// Stream name.
    pub name: Ident,
    /// Event type.
    pub ty: Type,
    /// Event-time extractor.
    pub event_time: Option<Expr>,
    /// Bounded out-of-orderness.
    pub max_delay: Option<DurationLit>,
    /// Options not understood (reported by the checks).
    pub unknown: Vec<Ident>,
}

/// The options of a source.
pub const SOURCE_OPTIONS: &[Known] = &[
    Known {
        name: "event_time",
        aka: &["time", "timestamp", "ts"],
    },
    Known {
        name: "max_delay",
        aka: &["delay", "watermark", "max_lateness"],
    },
];

/// `name [: Type] = input.op(..).op(..);`
pub struct StageDef {
    /// Stage name: its key in checkpoints.
    pub name: Ident,
    /// Declared output type, if any.
    pub ty: Option<Type>,
    /// Upstream stream name.
    pub input: Ident,
    /// Operators, in order.
    pub ops: Vec<OpCall>,
    /// `#[was(..)]` and `#[migrate(..)]` on the statement.
    pub upgrade: crate::upgrade::Upgrade,
}

/// `sink name;`
pub struct SinkDef {
    /// The `sink` keyword.
    pub kw: Ident,
    /// The stage to send to the output.
    pub name: Ident,
}

/// One `.op(args)` call, its arguments parsed by the operator.
pub struct OpCall {
    /// The operator's name token.
    pub name: Ident,
    /// The parsed call.
    pub op: Box<dyn Operator>,
}

mod kw {
    syn::custom_keyword!(pipeline);
    syn::custom_keyword!(source);
    syn::custom_keyword!(sink);
    syn::custom_keyword!(sql);
    syn::custom_keyword!(__columns);
}

/// Parses DSL tokens.
pub fn parse(tokens: TokenStream) -> syn::Result<PipelineDef> {
    syn::parse2(tokens)
}

impl Parse for PipelineDef {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let mut def = PipelineDef {
            attrs: Vec::new(),
            vis: Visibility::Inherited,
            name: None,
            sources: Vec::new(),
            stages: Vec::new(),
            sinks: Vec::new(),
            sql: Vec::new(),
            columns: Vec::new(),
        };
        while !input.is_empty() {
            let attrs = input.call(Attribute::parse_outer)?;
            if input.peek(Token![pub]) || (input.peek(kw::pipeline) && input.peek2(Ident)) {
                parse_name(input, attrs, &mut def)?;
            } else if input.peek(kw::source) && input.peek2(Ident) {
                def.sources.push(input.parse()?);
            } else if input.peek(kw::sink) && input.peek2(Ident) {
                def.sinks.push(input.parse()?);
            } else if input.peek(kw::sql) && input.peek2(syn::LitStr) {
                input.parse::<kw::sql>()?;
                let lit = input.parse()?;
                input
                    .parse::<Token![;]>()
                    .map_err(|e| syn::Error::new(e.span(), "expected `;` after `sql \"...\"`"))?;
                let at = def.stages.len();
                def.sql.push(SqlDef { lit, at });
            } else if input.peek(kw::__columns) && input.peek2(Ident) {
                def.columns.push(input.parse()?);
            } else if input.peek(Ident) {
                let mut stage: StageDef = input.parse()?;
                stage.upgrade = crate::upgrade::parse_attrs(&attrs)?;
                def.stages.push(stage);
            } else {
                return Err(input.error(
                    "expected `pipeline Name;`, `source name: Type, ...;`, `name = input.op(...);`, `sql \"SELECT ...\";` or `sink name;`",
                ));
            }
        }
        Ok(def)
    }
}

/// `[pub] pipeline Name;`
fn parse_name(input: ParseStream, attrs: Vec<Attribute>, def: &mut PipelineDef) -> syn::Result<()> {
    let vis: Visibility = input.parse()?;
    let kw: kw::pipeline = input
        .parse()
        .map_err(|e| syn::Error::new(e.span(), "expected `pipeline Name;` after the visibility"))?;
    let name: Ident = input.parse()?;
    input
        .parse::<Token![;]>()
        .map_err(|e| syn::Error::new(e.span(), "expected `;` after `pipeline Name`"))?;
    if let Some(first) = &def.name {
        let mut e = syn::Error::new(kw.span, "a pipeline! block names one pipeline");
        e.combine(syn::Error::new(first.span(), "it is named here"));
        return Err(e);
    }
    def.attrs = attrs;
    def.vis = vis;
    def.name = Some(name);
    Ok(())
}

impl Parse for SourceDef {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let kw: Ident = input.parse()?;
        let name: Ident = input.parse()?;
        input.parse::<Token![:]>().map_err(|e| {
            syn::Error::new(
                e.span(),
                "expected `:` and the event type, e.g. `source orders: Order, ...`",
            )
        })?;
        let ty: Type = input.parse()?;
        let mut src = SourceDef {
            kw,
            name,
            ty,
            event_time: None,
            max_delay: None,
            unknown: Vec::new(),
        };
        while input.peek(Token![,]) {
            input.parse::<Token![,]>()?;
            if input.peek(Token![;]) {
                break;
            }
            let key: Ident = input.parse()?;
            input.parse::<Token![=]>()?;
            match key.to_string().as_str() {
                "event_time" => src.event_time = Some(input.parse()?),
                "max_delay" => src.max_delay = Some(input.parse()?),
                _ => {
                    src.unknown.push(key);
                    input.parse::<Expr>()?;
                }
            }
        }
        input
            .parse::<Token![;]>()
            .map_err(|e| syn::Error::new(e.span(), "expected `,` or `;` in the source"))?;
        Ok(src)
    }
}

impl Parse for SinkDef {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let kw: Ident = input.parse()?;
        let name: Ident = input.parse()?;
        input
            .parse::<Token![;]>()
            .map_err(|e| syn::Error::new(e.span(), "expected `;` after `sink name`"))?;
        Ok(SinkDef { kw, name })
    }
}

impl Parse for StageDef {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let (name, ty) = name_and_type(input)?;
        input.parse::<Token![=]>().map_err(|e| {
            syn::Error::new(
                e.span(),
                format!("expected `=` after `{name}`: a stage reads `{name} = input.op(...);`"),
            )
        })?;
        let upstream: Ident = input
            .parse()
            .map_err(|e| syn::Error::new(e.span(), "expected the name of an input stream"))?;
        let mut ops = Vec::new();
        while input.peek(Token![.]) {
            input.parse::<Token![.]>()?;
            ops.push(input.parse()?);
        }
        input
            .parse::<Token![;]>()
            .map_err(|e| syn::Error::new(e.span(), "expected `.op(...)` or `;`"))?;
        Ok(StageDef {
            name,
            ty,
            input: upstream,
            ops,
            upgrade: Default::default(),
        })
    }
}

impl Parse for OpCall {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let name: Ident = input.parse()?;
        let content;
        syn::parenthesized!(content in input);
        let Some(def) = ops::find(&name.to_string()) else {
            let list = format!("the operators are {}", ops::names().join(", "));
            let msg = diag::unknown("operator", &name.to_string(), &ops::known(), &list);
            return Err(syn::Error::new(name.span(), msg));
        };
        let op = (def.parse)(&content)?;
        if !content.is_empty() {
            return Err(content.error("unexpected tokens after the operator's arguments"));
        }
        Ok(OpCall { name, op })
    }
}

//! The DSL's syntax tree, parsed from tokens with every span kept for error messages.
//!
//! ```text
//! pipeline! {
//!     pub pipeline OrderStats;
//!     source orders: Order, event_time = |o| o.ts, max_delay = 5s;
//!     valid = orders.filter(|o| o.amount > 0.0);
//!     customer_stats = valid
//!         .key_by(customer: String = |o| o.customer.clone())
//!         .aggregate(count = count(), amount: f64 = sum(|o| o.amount));
//!     per_5min = valid
//!         .key_by(customer: String = |o| o.customer.clone())
//!         .window(tumbling(5min))
//!         .aggregate(orders = count(), amount: f64 = sum(|o| o.amount));
//!     sink per_5min;
//! }
//! ```

use proc_macro2::{Span, TokenStream};
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Attribute, Expr, Ident, Token, Type, Visibility};

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
    /// Options not understood (reported by validation).
    pub unknown: Vec<Ident>,
}

/// `name [: Type] = input.op(..).op(..);`
pub struct StageDef {
    /// Stage name: its key in checkpoints.
    pub name: Ident,
    /// Declared output type, if any.
    pub ty: Option<Type>,
    /// Upstream stream name.
    pub input: Ident,
    /// Operators, in order.
    pub ops: Vec<Op>,
}

/// `sink name;`
pub struct SinkDef {
    /// The `sink` keyword.
    pub kw: Ident,
    /// The stage to send to the output.
    pub name: Ident,
}

/// One `.op(args)` call.
pub struct Op {
    /// The operator's name token.
    pub name: Ident,
    /// What it is.
    pub kind: OpKind,
}

/// Operators.
#[allow(clippy::large_enum_variant)] // built once per operator at compile time
pub enum OpKind {
    /// `filter(|e| bool)`
    Filter(Expr),
    /// `map(|e| -> T { .. })`
    Map(Expr),
    /// `flat_map(|e| -> Vec<T> { .. })`
    FlatMap(Expr),
    /// `key_by(name: Type = |e| key)`
    KeyBy(Field),
    /// `window(tumbling(5min), allowed_lateness = 10s)`
    Window(WindowSpec),
    /// `aggregate(name [: Type] = func(..), ..)`
    Aggregate(Vec<AggField>),
    /// `join(right, key: K = |l| .., |r| ..)`, then `.window(..)`
    Join(JoinSpec),
    /// `interval_join(right, key: K = |l| .., |r| .., lower = 5s, upper = 10s)`
    IntervalJoin(JoinSpec),
}

/// The arguments of `join`/`interval_join`.
pub struct JoinSpec {
    /// The other input.
    pub right: Ident,
    /// Key column name.
    pub key_name: Ident,
    /// Key type.
    pub key_ty: Option<Type>,
    /// Key of a left event.
    pub left_fn: Expr,
    /// Key of a right event.
    pub right_fn: Option<Expr>,
    /// `lower = ..` (interval join).
    pub lower: Option<DurationLit>,
    /// `upper = ..` (interval join).
    pub upper: Option<DurationLit>,
}

impl Parse for JoinSpec {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let right: Ident = input.parse().map_err(|e| {
            syn::Error::new(e.span(), "expected the stream to join with, e.g. `join(payments, order_id: String = |o| o.id.clone(), |p| p.order_id.clone())`")
        })?;
        input.parse::<Token![,]>()?;
        let key: Field = input.parse()?;
        let mut spec = JoinSpec {
            right,
            key_name: key.name,
            key_ty: key.ty,
            left_fn: key.expr,
            right_fn: None,
            lower: None,
            upper: None,
        };
        while input.peek(Token![,]) {
            input.parse::<Token![,]>()?;
            if input.is_empty() {
                break;
            }
            if input.peek(Ident) && input.peek2(Token![=]) && !input.peek2(Token![==]) {
                let k: Ident = input.parse()?;
                input.parse::<Token![=]>()?;
                match k.to_string().as_str() {
                    "lower" => spec.lower = Some(input.parse()?),
                    "upper" => spec.upper = Some(input.parse()?),
                    other => {
                        return Err(syn::Error::new(k.span(), format!("unknown join option `{other}`; the options are `lower` and `upper` (interval joins)")))
                    }
                }
            } else if spec.right_fn.is_none() {
                spec.right_fn = Some(input.parse()?);
            } else {
                return Err(input.error("a join takes the other stream, the key (`name: Type = |left| ..`), the right key (`|right| ..`) and, for interval joins, `lower`/`upper`"));
            }
        }
        Ok(spec)
    }
}

/// `name [: Type] = expr`
pub struct Field {
    /// Field name.
    pub name: Ident,
    /// Declared type.
    pub ty: Option<Type>,
    /// The extractor.
    pub expr: Expr,
}

/// A window specification.
pub struct WindowSpec {
    /// `tumbling`, `sliding` or `session`.
    pub kind: Ident,
    /// Its durations (size; size and slide; gap).
    pub args: Vec<DurationLit>,
    /// Span of the whole `kind(..)`.
    pub span: Span,
    /// `allowed_lateness = ..`.
    pub lateness: Option<DurationLit>,
}

/// One aggregate column: `amount: f64 = sum(|o| o.amount)`.
pub struct AggField {
    /// Column name.
    pub name: Ident,
    /// Declared output type.
    pub ty: Option<Type>,
    /// `count`, `sum`, `min`, `max`, `avg` or `custom`.
    pub func: Ident,
    /// For `custom(Type, ..)`: the aggregate's type.
    pub custom: Option<Type>,
    /// The value extractor (none for `count`).
    pub value: Option<Expr>,
    /// Span of `func(...)`.
    pub span: Span,
}

/// A duration literal such as `5s` or `5min`.
#[derive(Clone)]
pub struct DurationLit {
    /// Milliseconds.
    pub ms: i64,
    /// Where it was written.
    pub span: Span,
}

mod kw {
    syn::custom_keyword!(pipeline);
    syn::custom_keyword!(source);
    syn::custom_keyword!(sink);
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
        };
        while !input.is_empty() {
            let attrs = input.call(Attribute::parse_outer)?;
            if input.peek(Token![pub]) || (input.peek(kw::pipeline) && input.peek2(Ident)) {
                let vis: Visibility = input.parse()?;
                let kw: kw::pipeline = input.parse().map_err(|e| {
                    syn::Error::new(e.span(), "expected `pipeline Name;` after the visibility")
                })?;
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
            } else if input.peek(kw::source) && input.peek2(Ident) {
                def.sources.push(input.parse()?);
            } else if input.peek(kw::sink) && input.peek2(Ident) {
                let kw: Ident = input.parse()?;
                let name: Ident = input.parse()?;
                input
                    .parse::<Token![;]>()
                    .map_err(|e| syn::Error::new(e.span(), "expected `;` after `sink name`"))?;
                def.sinks.push(SinkDef { kw, name });
            } else if input.peek(Ident) {
                def.stages.push(input.parse()?);
            } else {
                return Err(input.error(
                    "expected `pipeline Name;`, `source name: Type, ...;`, `name = input.op(...);` or `sink name;`",
                ));
            }
        }
        Ok(def)
    }
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

impl Parse for StageDef {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let name: Ident = input.parse()?;
        let ty = if input.peek(Token![:]) {
            input.parse::<Token![:]>()?;
            Some(input.parse::<Type>()?)
        } else {
            None
        };
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
        })
    }
}

const OPS: &str = "filter, map, flat_map, key_by, window, aggregate, join, interval_join";

impl Parse for Op {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let name: Ident = input.parse()?;
        let content;
        syn::parenthesized!(content in input);
        let kind = match name.to_string().as_str() {
            "filter" => OpKind::Filter(content.parse()?),
            "map" => OpKind::Map(content.parse()?),
            "flat_map" => OpKind::FlatMap(content.parse()?),
            "key_by" | "group_by" | "group" => OpKind::KeyBy(content.parse()?),
            "window" => OpKind::Window(content.parse()?),
            "join" => OpKind::Join(content.parse()?),
            "interval_join" => OpKind::IntervalJoin(content.parse()?),
            "aggregate" => {
                let fields = Punctuated::<AggField, Token![,]>::parse_terminated(&content)?;
                OpKind::Aggregate(fields.into_iter().collect())
            }
            other => {
                return Err(syn::Error::new(
                    name.span(),
                    format!("unknown operator `{other}`; the operators are {OPS}"),
                ))
            }
        };
        if !content.is_empty() {
            return Err(content.error("unexpected tokens after the operator's arguments"));
        }
        Ok(Op { name, kind })
    }
}

impl Parse for Field {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        if !(input.peek(Ident) && (input.peek2(Token![:]) || input.peek2(Token![=]))) {
            return Err(input.error("expected `name: Type = |e| key`, e.g. `key_by(customer: String = |o| o.customer.clone())`"));
        }
        let name: Ident = input.parse()?;
        let ty = if input.peek(Token![:]) {
            input.parse::<Token![:]>()?;
            Some(input.parse()?)
        } else {
            None
        };
        input.parse::<Token![=]>()?;
        Ok(Field {
            name,
            ty,
            expr: input.parse()?,
        })
    }
}

impl Parse for WindowSpec {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let kind: Ident = input.parse()?;
        let args_content;
        let paren = syn::parenthesized!(args_content in input);
        let args = Punctuated::<DurationLit, Token![,]>::parse_terminated(&args_content)?;
        let span = kind.span().join(paren.span.join()).unwrap_or(kind.span());
        let mut lateness = None;
        if input.peek(Token![,]) {
            input.parse::<Token![,]>()?;
            if !input.is_empty() {
                let key: Ident = input.parse()?;
                if key != "allowed_lateness" {
                    return Err(syn::Error::new(
                        key.span(),
                        "unknown window option; the option is `allowed_lateness = <duration>`",
                    ));
                }
                input.parse::<Token![=]>()?;
                lateness = Some(input.parse()?);
            }
        }
        Ok(WindowSpec {
            kind,
            args: args.into_iter().collect(),
            span,
            lateness,
        })
    }
}

impl Parse for AggField {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        if !(input.peek(Ident) && (input.peek2(Token![:]) || input.peek2(Token![=]))) {
            return Err(input.error("expected `column = function(...)`, e.g. `orders = count()` or `amount: f64 = sum(|o| o.amount)`"));
        }
        let name: Ident = input.parse()?;
        let ty = if input.peek(Token![:]) {
            input.parse::<Token![:]>()?;
            Some(input.parse()?)
        } else {
            None
        };
        input.parse::<Token![=]>()?;
        let func: Ident = input.parse()?;
        if !input.peek(syn::token::Paren) {
            return Err(syn::Error::new(
                func.span(),
                format!("expected a call such as `{func}(...)`: aggregate functions are count(), sum(..), min(..), max(..), avg(..) and custom(YourAggregate, ..)"),
            ));
        }
        let content;
        let paren = syn::parenthesized!(content in input);
        let span = func.span().join(paren.span.join()).unwrap_or(func.span());
        let mut custom = None;
        if func == "custom" {
            custom = Some(content.parse::<Type>().map_err(|e| {
                syn::Error::new(
                    e.span(),
                    "`custom` takes your aggregate's type and the value: `custom(YourAggregate, |o| o.amount)`",
                )
            })?);
            if !content.is_empty() {
                content.parse::<Token![,]>()?;
            }
        }
        let value = if content.is_empty() {
            None
        } else {
            Some(content.parse::<Expr>()?)
        };
        if !content.is_empty() {
            return Err(
                content.error("an aggregate takes one value extractor, e.g. `sum(|o| o.amount)`")
            );
        }
        Ok(AggField {
            name,
            ty,
            func,
            custom,
            value,
            span,
        })
    }
}

impl Parse for DurationLit {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let lit: syn::Lit = input.parse().map_err(|e| {
            syn::Error::new(
                e.span(),
                "expected a duration such as `500ms`, `5s`, `5min` or `1h`",
            )
        })?;
        let (digits, suffix, span) = match &lit {
            syn::Lit::Int(i) => (
                i.base10_digits().to_string(),
                i.suffix().to_string(),
                i.span(),
            ),
            syn::Lit::Float(f) => (
                f.base10_digits().to_string(),
                f.suffix().to_string(),
                f.span(),
            ),
            other => {
                return Err(syn::Error::new(
                    other.span(),
                    "expected a duration such as `500ms`, `5s`, `5min` or `1h`",
                ))
            }
        };
        if suffix.is_empty() {
            return Err(syn::Error::new(
                span,
                format!("`{digits}` has no unit; write it with one, e.g. `{digits}ms`, `{digits}s` or `{digits}min`"),
            ));
        }
        let Some(unit) = unit_ms(&suffix) else {
            return Err(syn::Error::new(
                span,
                format!("`{suffix}` is not a duration unit; use ms, s, min (or m), h or d, e.g. `{digits}s`"),
            ));
        };
        let v: f64 = digits
            .parse()
            .map_err(|_| syn::Error::new(span, "not a number"))?;
        let ms = v * unit as f64;
        if ms.fract() != 0.0 || ms > (i64::MAX / 4) as f64 {
            return Err(syn::Error::new(
                span,
                "durations are whole milliseconds and at most a few million years",
            ));
        }
        Ok(DurationLit {
            ms: ms as i64,
            span,
        })
    }
}

fn unit_ms(unit: &str) -> Option<i64> {
    Some(match unit {
        "ms" => 1,
        "s" | "sec" => 1_000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    })
}

/// Parses DSL tokens.
pub fn parse(tokens: TokenStream) -> syn::Result<PipelineDef> {
    syn::parse2(tokens)
}

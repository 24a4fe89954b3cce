//! Checks a parsed pipeline and plans it: every misuse becomes an error at the exact
//! tokens, with a hint; what passes becomes a [`Plan`] with every type along the flow.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::{Expr, Ident, ReturnType, Type};

use crate::ast::{AggField, DurationLit, OpKind, PipelineDef, StageDef};

/// Names a stage may not take: they are the checkpoint envelope's own fields.
pub const RESERVED: &[&str] = &[
    "format",
    "format_version",
    "pipeline",
    "fingerprint",
    "checkpoint_id",
    "timestamp",
    "max_event_time",
    "watermark",
    "positions",
    "checksum",
    "late",
    "clock",
    "source_clocks",
];

/// A checked pipeline, ready for code generation (or for drawing).
pub struct Plan {
    /// Doc comments and other attributes of the pipeline struct.
    pub attrs: Vec<syn::Attribute>,
    /// Its visibility.
    pub vis: syn::Visibility,
    /// Its name.
    pub name: Ident,
    /// Name of the module holding generated types (`order_stats` for `OrderStats`).
    pub module: Ident,
    /// The sources (a join reads two).
    pub sources: Vec<SourcePlan>,
    /// Stages, in definition order (a topological order: inputs come first).
    pub stages: Vec<StagePlan>,
}

/// The source.
pub struct SourcePlan {
    /// Stream name.
    pub name: Ident,
    /// Event type.
    pub ty: Type,
    /// Event-time extractor.
    pub event_time: Expr,
    /// Bounded out-of-orderness, ms.
    pub max_delay_ms: i64,
    /// True if the source itself is a sink.
    pub sink: bool,
    /// Stages reading the source.
    pub children: Vec<Child>,
}

/// A stage reading a stream, and on which input.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Child {
    /// Index into `Plan::stages`.
    pub stage: usize,
    /// Which input of that stage.
    pub side: Side,
}

/// Inputs of a stage.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Side {
    /// The only input.
    Main,
    /// The left input of a join.
    Left,
    /// The right input of a join.
    Right,
}

/// `join(..).window(..)` or `interval_join(..)`.
pub struct JoinPlan {
    /// The right input.
    pub right: Ident,
    /// Its event type.
    pub right_ty: Type,
    /// Key column name.
    pub key_name: Ident,
    /// Key type.
    pub key_ty: Type,
    /// Key of a left event.
    pub left_fn: Expr,
    /// Key of a right event.
    pub right_fn: Expr,
    /// Windowed or interval.
    pub kind: JoinKind,
}

/// Join kinds.
pub enum JoinKind {
    /// Same key, same window (tumbling or sliding).
    Window(WindowPlan),
    /// `right.ts` in `[left.ts - lower, left.ts + upper]`.
    Interval {
        /// ms before the left event.
        lower: i64,
        /// ms after the left event.
        upper: i64,
    },
}

/// One stage statement.
pub struct StagePlan {
    /// Its name.
    pub name: Ident,
    /// Upstream name.
    pub input: Ident,
    /// Type of the events it receives.
    pub input_ty: Type,
    /// Stateless operators before the keyed part.
    pub pre: Vec<Stateless>,
    /// The keyed aggregation, if any.
    pub keyed: Option<KeyedPlan>,
    /// The join, if any (then `input` is its left input).
    pub join: Option<JoinPlan>,
    /// Stateless operators after the aggregation.
    pub post: Vec<Stateless>,
    /// Declared output type (checked with a type assertion).
    pub declared: Option<Type>,
    /// Type of the events it sends on.
    pub out_ty: Type,
    /// True if it is a sink.
    pub sink: bool,
    /// Stages reading it.
    pub children: Vec<Child>,
}

/// A stateless operator with the type of its input.
pub enum Stateless {
    /// Keep events where the predicate holds.
    Filter {
        /// Predicate.
        f: Expr,
        /// Input type.
        ty: Type,
    },
    /// One event to one event.
    Map {
        /// Function.
        f: Expr,
        /// Input type.
        ty: Type,
        /// Output type.
        out: Type,
    },
    /// One event to many.
    FlatMap {
        /// Function.
        f: Expr,
        /// Input type.
        ty: Type,
        /// Item type.
        out: Type,
    },
}

/// `key_by(..)[.window(..)].aggregate(..)`.
pub struct KeyedPlan {
    /// Key column name.
    pub key_name: Ident,
    /// Key type.
    pub key_ty: Type,
    /// Key extractor.
    pub key_fn: Expr,
    /// Window, if any.
    pub window: Option<WindowPlan>,
    /// Aggregate columns.
    pub aggs: Vec<AggPlan>,
    /// Type of events entering the key_by (what late events are).
    pub event_ty: Type,
    /// True for a window over all events (`.window(..)` without `key_by`): no key column,
    /// one accumulator per window (`key_name`, `key_ty` and `key_fn` are placeholders).
    pub global: bool,
}

/// Window kinds, in ms.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum WindowKind {
    /// Fixed, non-overlapping.
    Tumbling {
        /// Size.
        size: i64,
    },
    /// Fixed size, a new one every `slide`.
    Sliding {
        /// Size.
        size: i64,
        /// Slide.
        slide: i64,
    },
    /// Gap-separated per key.
    Session {
        /// Gap.
        gap: i64,
    },
}

/// A window with its allowed lateness.
pub struct WindowPlan {
    /// Kind and durations.
    pub kind: WindowKind,
    /// Allowed lateness, ms.
    pub lateness: i64,
}

/// An aggregate column.
pub struct AggPlan {
    /// Column name.
    pub name: Ident,
    /// Output type.
    pub out_ty: Type,
    /// The runtime aggregate type (e.g. `Sum<f64>`).
    pub agg_ty: TokenStream,
    /// Value extractor (none for `count`).
    pub value: Option<Expr>,
    /// Built-in function name, or `custom`.
    pub func: String,
}

struct Errors(Option<syn::Error>);
impl Errors {
    fn push(&mut self, span: Span, msg: impl std::fmt::Display) {
        let e = syn::Error::new(span, msg);
        match &mut self.0 {
            Some(all) => all.combine(e),
            None => self.0 = Some(e),
        }
    }
}

/// Snake-case of a CamelCase name.
pub fn snake(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// CamelCase of a snake_case name.
pub fn camel(name: &str) -> String {
    name.split('_')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut c = p.chars();
            match c.next() {
                Some(f) => f.to_uppercase().chain(c).collect::<String>(),
                None => String::new(),
            }
        })
        .collect()
}

fn rt() -> TokenStream {
    quote!(::simplestream::__rt)
}

/// Validates `def` and plans it. All errors found are reported together.
pub fn check(def: PipelineDef) -> syn::Result<Plan> {
    let mut errs = Errors(None);
    let name = match def.name {
        Some(n) => n,
        None => {
            // Point at the first statement, where `pipeline Name;` belongs.
            let first = (def.sources.first().map(|s| s.kw.span()))
                .or_else(|| def.stages.first().map(|s| s.name.span()))
                .or_else(|| def.sinks.first().map(|s| s.kw.span()))
                .unwrap_or_else(Span::call_site);
            return Err(syn::Error::new(
                first,
                "the pipeline has no name; start with `pipeline Name;` (e.g. `pipeline OrderStats;`)",
            ));
        }
    };
    if def.sources.is_empty() {
        return Err(syn::Error::new(
            name.span(),
            format!("pipeline `{name}` has no source; add one, e.g. `source orders: Order, event_time = |o| o.ts, max_delay = 5s;`"),
        ));
    }
    let module = format_ident!("{}", snake(&name.to_string()));
    // Names in scope, with their output types.
    let mut scope: Vec<(Ident, Type)> = Vec::new();
    let mut sources: Vec<SourcePlan> = Vec::new();
    for src in def.sources {
        for u in &src.unknown {
            errs.push(
                u.span(),
                format!(
                    "unknown source option `{u}`; the options are `event_time` and `max_delay`"
                ),
            );
        }
        if let Some((first, _)) = scope.iter().find(|(n, _)| *n == src.name) {
            let mut e =
                syn::Error::new(src.name.span(), format!("`{}` is defined twice", src.name));
            e.combine(syn::Error::new(first.span(), "first definition"));
            match &mut errs.0 {
                Some(all) => all.combine(e),
                None => errs.0 = Some(e),
            }
            continue;
        }
        let event_time = match src.event_time {
            Some(e) => event_time_at_body(e),
            None => {
                errs.push(
                    src.name.span(),
                    format!(
                        "source `{}` needs an event time: add `event_time = |e| e.ts` (milliseconds)",
                        src.name
                    ),
                );
                syn::parse_quote!(|_| 0i64)
            }
        };
        let max_delay_ms = match &src.max_delay {
            Some(d) => d.ms,
            None => {
                errs.push(src.name.span(), format!("source `{}` needs a watermark delay: add `max_delay = 5s` (how late events may arrive)", src.name));
                0
            }
        };
        if RESERVED.contains(&src.name.to_string().as_str()) {
            errs.push(
                src.name.span(),
                format!(
                    "`{}` is reserved (a field of the checkpoint envelope); choose another name",
                    src.name
                ),
            );
        }
        scope.push((src.name.clone(), src.ty.clone()));
        sources.push(SourcePlan {
            name: src.name.clone(),
            ty: src.ty.clone(),
            event_time,
            max_delay_ms,
            sink: false,
            children: Vec::new(),
        });
    }
    let mut stages: Vec<StagePlan> = Vec::new();

    for st in def.stages {
        let stage_name = st.name.to_string();
        if RESERVED.contains(&stage_name.as_str()) {
            errs.push(st.name.span(), format!("`{stage_name}` is reserved (a field of the checkpoint envelope); choose another stage name"));
        }
        if stage_name.starts_with("__") {
            errs.push(
                st.name.span(),
                "names starting with `__` are reserved for generated code",
            );
        }
        if let Some((first, _)) = scope.iter().find(|(n, _)| *n == st.name) {
            let mut e = syn::Error::new(st.name.span(), format!("`{stage_name}` is defined twice; stage names must be unique (they key the checkpoint)"));
            e.combine(syn::Error::new(
                first.span(),
                format!("first definition of `{stage_name}`"),
            ));
            match &mut errs.0 {
                Some(all) => all.combine(e),
                None => errs.0 = Some(e),
            }
            continue;
        }
        let input_ty = match scope.iter().find(|(n, _)| *n == st.input) {
            Some((_, t)) => t.clone(),
            None => {
                let known: Vec<String> = scope.iter().map(|(n, _)| format!("`{n}`")).collect();
                errs.push(
                    st.input.span(),
                    format!("unknown stage `{}`; a stage can read {} (stages must be defined before they are read)", st.input, known.join(", ")),
                );
                // Go on checking the stage (nothing is generated): its own mistakes are
                // reported too, and its readers and sink are not reported as unknown.
                syn::parse_quote!(())
            }
        };
        let plan = plan_stage(&st, input_ty, &module, &scope, &mut errs);
        let idx = stages.len();
        let mut link = |from: &Ident, side: Side| {
            let child = Child { stage: idx, side };
            if let Some(src) = sources.iter_mut().find(|s| s.name == *from) {
                src.children.push(child);
            } else if let Some(up) = stages.iter_mut().find(|s| s.name == *from) {
                up.children.push(child);
            }
        };
        match &plan.join {
            Some(j) => {
                link(&st.input, Side::Left);
                link(&j.right, Side::Right);
            }
            None => link(&st.input, Side::Main),
        }
        scope.push((st.name.clone(), plan.out_ty.clone()));
        stages.push(plan);
    }

    let mut seen_sinks: Vec<Ident> = Vec::new();
    for sink in def.sinks {
        if let Some(prev) = seen_sinks.iter().find(|s| **s == sink.name) {
            let mut e = syn::Error::new(
                sink.name.span(),
                format!("`{}` is already a sink", sink.name),
            );
            e.combine(syn::Error::new(prev.span(), "declared here"));
            match &mut errs.0 {
                Some(all) => all.combine(e),
                None => errs.0 = Some(e),
            }
            continue;
        }
        if let Some(src) = sources.iter_mut().find(|s| s.name == sink.name) {
            src.sink = true;
        } else if let Some(s) = stages.iter_mut().find(|s| s.name == sink.name) {
            s.sink = true;
        } else {
            let known: Vec<String> = scope.iter().map(|(n, _)| format!("`{n}`")).collect();
            errs.push(
                sink.name.span(),
                format!(
                    "unknown stage `{}` in sink; defined: {}",
                    sink.name,
                    known.join(", ")
                ),
            );
        }
        seen_sinks.push(sink.name);
    }

    match errs.0 {
        Some(e) => Err(e),
        None => Ok(Plan {
            attrs: def.attrs,
            vis: def.vis,
            name,
            module,
            sources,
            stages,
        }),
    }
}

/// Declared value types that are certainly not numbers. `Numeric` is implemented for the
/// integer and float primitives; types not listed here are left to the compiler.
fn not_numeric(t: &Type) -> bool {
    match t {
        Type::Reference(_) | Type::Tuple(_) | Type::Array(_) | Type::Slice(_) => true,
        Type::Paren(p) => not_numeric(&p.elem),
        Type::Group(g) => not_numeric(&g.elem),
        Type::Path(p) if p.qself.is_none() => p.path.segments.last().is_some_and(|s| {
            matches!(
                s.ident.to_string().as_str(),
                "String" | "str" | "bool" | "char" | "Vec" | "Option"
            )
        }),
        _ => false,
    }
}

/// Wraps the body of `|e| body` as `EventTime::event_time_ms(body)`, spanned at the body,
/// so that a time that is not integer milliseconds is reported at the user's expression
/// (with `EventTime`'s hint) rather than at the whole macro. The result is `i64`, which the
/// generated code's own `EventTime` call accepts.
fn event_time_at_body(e: Expr) -> Expr {
    match e {
        Expr::Closure(mut c) if matches!(c.output, ReturnType::Default) => {
            let body = &c.body;
            let span = body.span();
            c.body = Box::new(syn::parse_quote_spanned!(span=>
                ::simplestream::__rt::pipeline::EventTime::event_time_ms(#body)
            ));
            Expr::Closure(c)
        }
        other => other,
    }
}

/// Gives `|e| body` the return type `ty` (if it has none), so that a value of the wrong
/// type is reported at the user's expression and at `ty`, not at the whole macro.
fn with_output(e: &Expr, ty: &TokenStream) -> Expr {
    match e {
        Expr::Closure(c) if matches!(c.output, ReturnType::Default) => {
            let mut c = c.clone();
            let body = &c.body;
            let span = body.span();
            c.body = Box::new(syn::parse_quote_spanned!(span=> { #body }));
            c.output = syn::parse_quote!(-> #ty);
            Expr::Closure(c)
        }
        other => other.clone(),
    }
}

fn closure_output(e: &Expr) -> Option<Type> {
    match e {
        Expr::Closure(c) => match &c.output {
            ReturnType::Type(_, t) => Some((**t).clone()),
            ReturnType::Default => None,
        },
        _ => None,
    }
}

fn check_fn(e: &Expr, what: &str, example: &str, errs: &mut Errors) {
    if let Expr::Closure(c) = e {
        if c.inputs.len() != 1 {
            errs.push(
                c.or1_token.span,
                format!("the closure of `{what}` takes one argument (the event, by reference), e.g. `{example}`"),
            );
        }
    }
}

fn plan_stage(
    st: &StageDef,
    input_ty: Type,
    module: &Ident,
    scope: &[(Ident, Type)],
    errs: &mut Errors,
) -> StagePlan {
    let mut join: Option<JoinPlan> = None;
    let mut join_needs_window: Option<Span> = None;
    // After a join already reported, its `.window(..)` is not a second mistake.
    let mut join_failed = false;
    let mut ty = input_ty.clone();
    let mut pre = Vec::new();
    let mut post = Vec::new();
    let mut keyed: Option<KeyedPlan> = None;
    let mut pending_key: Option<(Ident, Type, Expr, Type, Span)> = None;
    let mut pending_window: Option<(WindowPlan, Span, Type)> = None;
    let last = st.ops.len().saturating_sub(1);
    for (i, op) in st.ops.iter().enumerate() {
        let opname = op.name.to_string();
        let stateless_ok =
            pending_key.is_none() && pending_window.is_none() && join_needs_window.is_none();
        let after = keyed.is_some() || join.is_some();
        match &op.kind {
            OpKind::Join(j) | OpKind::IntervalJoin(j) => {
                let interval = matches!(op.kind, OpKind::IntervalJoin(_));
                join_failed = true;
                if i != 0 {
                    errs.push(op.name.span(), format!("`{opname}` must be the first operator of a stage; filter or map the inputs in stages of their own"));
                    continue;
                }
                let Some(right_ty) = scope
                    .iter()
                    .find(|(n, _)| *n == j.right)
                    .map(|(_, t)| t.clone())
                else {
                    let known: Vec<String> = scope.iter().map(|(n, _)| format!("`{n}`")).collect();
                    errs.push(
                        j.right.span(),
                        format!(
                            "unknown stage `{}` to join with; defined: {}",
                            j.right,
                            known.join(", ")
                        ),
                    );
                    continue;
                };
                let Some(key_ty) = j.key_ty.clone() else {
                    errs.push(
                        j.key_name.span(),
                        format!(
                            "the join key needs a type: `{}: String = |l| ..., |r| ...`",
                            j.key_name
                        ),
                    );
                    continue;
                };
                let Some(right_fn) = j.right_fn.clone() else {
                    errs.push(op.name.span(), format!("`{opname}` needs the right side's key too: `{opname}({}, {}: {} = |l| ..., |r| ...)`", j.right, j.key_name, key_ty.to_token_stream()));
                    continue;
                };
                check_fn(&j.left_fn, &opname, "|o| o.id.clone()", errs);
                check_fn(&right_fn, &opname, "|p| p.order_id.clone()", errs);
                let kind = if interval {
                    match (&j.lower, &j.upper) {
                        (Some(l), Some(u)) => JoinKind::Interval {
                            lower: l.ms,
                            upper: u.ms,
                        },
                        _ => {
                            errs.push(op.name.span(), "`interval_join` needs the interval: `lower = 5s, upper = 10s` (right.ts within [left.ts - lower, left.ts + upper])");
                            continue;
                        }
                    }
                } else {
                    if let Some(d) = j.lower.as_ref().or(j.upper.as_ref()) {
                        errs.push(d.span, "`lower`/`upper` belong to `interval_join`; a `join` takes `.window(...)`");
                    }
                    join_needs_window = Some(op.name.span());
                    JoinKind::Interval { lower: 0, upper: 0 }
                };
                let key_tokens = key_ty.to_token_stream();
                join = Some(JoinPlan {
                    right: j.right.clone(),
                    right_ty,
                    key_name: j.key_name.clone(),
                    key_ty,
                    left_fn: with_output(&j.left_fn, &key_tokens),
                    right_fn: with_output(&right_fn, &key_tokens),
                    kind,
                });
                join_failed = false;
                let row = format_ident!("{}Joined", camel(&st.name.to_string()));
                ty = syn::parse_quote!(#module::#row);
            }
            OpKind::Window(_) if join_failed => {}
            OpKind::Window(w) if join_needs_window.is_some() => {
                join_needs_window = None;
                if let Some(wp) = plan_window(w, errs) {
                    if matches!(wp.kind, WindowKind::Session { .. }) {
                        errs.push(w.kind.span(), "joins use tumbling or sliding windows (or `interval_join`); session windows are not supported for joins");
                    }
                    if let Some(j) = &mut join {
                        j.kind = JoinKind::Window(wp);
                    }
                }
            }
            OpKind::KeyBy(_) | OpKind::Aggregate(_) | OpKind::Window(_) if join.is_some() => {
                errs.push(op.name.span(), format!("`{opname}` cannot follow a join in the same stage; start a new stage that reads this one"));
            }
            OpKind::Filter(_) | OpKind::Map(_) | OpKind::FlatMap(_) if !stateless_ok => {
                errs.push(op.name.span(), format!("`{opname}` cannot come between `key_by` and `aggregate`; move it before `key_by`"));
            }
            OpKind::Filter(f) => {
                check_fn(f, "filter", "filter(|o| o.amount > 0.0)", errs);
                push_stateless(
                    &mut pre,
                    &mut post,
                    after,
                    Stateless::Filter {
                        f: with_output(f, &quote_spanned!(op.name.span()=> bool)),
                        ty: ty.clone(),
                    },
                );
            }
            OpKind::Map(f) | OpKind::FlatMap(f) => {
                let flat = matches!(op.kind, OpKind::FlatMap(_));
                check_fn(f, &opname, "map(|o| -> Big { Big::from(o) })", errs);
                let declared =
                    closure_output(f).or_else(|| if i == last { st.ty.clone() } else { None });
                let Some(out) = declared else {
                    let ex = if flat {
                        "flat_map(|o| -> Vec<Item> { ... })"
                    } else {
                        "map(|o| -> Enriched { ... })"
                    };
                    errs.push(op.name.span(), format!("`{opname}` must say what it produces: write the closure's return type, e.g. `{ex}`, or declare the stage's type (`{}: Type = ...`)", st.name));
                    continue;
                };
                let out = if flat && closure_output(f).is_some() {
                    syn::parse_quote!(<#out as ::core::iter::IntoIterator>::Item)
                } else {
                    out
                };
                let s = if flat {
                    Stateless::FlatMap {
                        f: f.clone(),
                        ty: ty.clone(),
                        out: out.clone(),
                    }
                } else {
                    Stateless::Map {
                        f: with_output(f, &out.to_token_stream()),
                        ty: ty.clone(),
                        out: out.clone(),
                    }
                };
                push_stateless(&mut pre, &mut post, after, s);
                ty = out;
            }
            OpKind::KeyBy(field) => {
                if let Some((_, span, _)) = &pending_window {
                    errs.push(*span, "`window` comes after `key_by`: write `.key_by(name: Type = |e| ...).window(...)` (a `window` without `key_by` is over all events)");
                    pending_window = None;
                }
                if keyed.is_some() || pending_key.is_some() {
                    errs.push(op.name.span(), "a stage has one `key_by`; start a new stage (`next = this.key_by(...)...;`) to group again");
                    continue;
                }
                check_fn(
                    &field.expr,
                    "key_by",
                    "key_by(customer: String = |o| o.customer.clone())",
                    errs,
                );
                let kty = match field.ty.clone() {
                    Some(t) => t,
                    None => {
                        errs.push(
                            field.name.span(),
                            format!(
                                "the key needs a type: `key_by({}: String = ...)`",
                                field.name
                            ),
                        );
                        // Placeholder (nothing is generated), so that the `aggregate`
                        // that follows is not reported as lacking a `key_by`.
                        syn::parse_quote!(())
                    }
                };
                let key_fn = with_output(&field.expr, &kty.to_token_stream());
                pending_key = Some((field.name.clone(), kty, key_fn, ty.clone(), op.name.span()));
            }
            OpKind::Window(w) => {
                if pending_window.is_some() {
                    errs.push(op.name.span(), "a stage has one window");
                    continue;
                }
                // Without `key_by`, a window over all events (checked at `aggregate`).
                if let Some(wp) = plan_window(w, errs) {
                    pending_window = Some((wp, op.name.span(), ty.clone()));
                }
            }
            OpKind::Aggregate(fields) => {
                let global_window = match (&pending_key, &pending_window) {
                    (None, Some((w, span, ety))) if keyed.is_none() => {
                        if matches!(w.kind, WindowKind::Session { .. }) {
                            errs.push(*span, "session windows are per key: call `key_by(name: Type = |e| ...)` before `window(session(..))`");
                            pending_window = None;
                            continue;
                        }
                        Some(ety.clone())
                    }
                    _ => None,
                };
                let pending = pending_key
                    .take()
                    .map(|(n, t, f, e, _)| (n, t, f, e, false));
                let global = global_window.map(|ety| {
                    (
                        format_ident!("__all"),
                        syn::parse_quote!(()),
                        syn::parse_quote!(|_| ()),
                        ety,
                        true,
                    )
                });
                let Some((key_name, key_ty, key_fn, event_ty, global)) = pending.or(global) else {
                    let hint = if keyed.is_some() {
                        "a stage holds one aggregate; start a new stage to aggregate again"
                    } else {
                        "`aggregate` needs keyed events: call `key_by(name: Type = |e| ...)` first (or `window(...)`, for one result per window over all events)"
                    };
                    errs.push(op.name.span(), hint);
                    continue;
                };
                let window = pending_window.take().map(|(w, _, _)| w);
                if window.is_some()
                    && !global
                    && (key_name == "window_start" || key_name == "window_end")
                {
                    errs.push(key_name.span(), format!("`{key_name}` is a column of every window result; name the key differently"));
                }
                let aggs = plan_aggs(fields, &key_name, window.is_some(), errs);
                if fields.is_empty() {
                    errs.push(
                        op.name.span(),
                        "`aggregate` needs at least one column, e.g. `aggregate(orders = count())`",
                    );
                }
                keyed = Some(KeyedPlan {
                    key_name,
                    key_ty,
                    key_fn,
                    window,
                    aggs,
                    event_ty,
                    global,
                });
                let row = format_ident!("{}Row", camel(&st.name.to_string()));
                ty = syn::parse_quote!(#module::#row);
            }
        }
    }
    if let Some((_, _, _, _, span)) = pending_key {
        errs.push(
            span,
            "`key_by` must be followed by `aggregate(...)` (optionally after `window(...)`)",
        );
    }
    if let Some((_, span, _)) = pending_window {
        errs.push(span, "`window` must be followed by `aggregate(...)`");
    }
    if let Some(span) = join_needs_window {
        errs.push(span, "a `join` needs a window: add `.window(tumbling(5min))` (or `sliding(..)`), or use `interval_join(.., lower = 5s, upper = 5s)`");
    }
    let out_ty = match (&st.ty, st.ops.last().map(|o| &o.kind)) {
        // After a map the closure's type is the stage's; otherwise a declared type is
        // checked by an assertion in the generated code.
        (Some(_), Some(OpKind::Map(_) | OpKind::FlatMap(_))) => ty.clone(),
        (Some(t), _) => t.clone(),
        _ => ty.clone(),
    };
    StagePlan {
        name: st.name.clone(),
        input: st.input.clone(),
        input_ty,
        pre,
        keyed,
        join,
        post,
        declared: st.ty.clone(),
        out_ty,
        sink: false,
        children: Vec::new(),
    }
}

fn push_stateless(pre: &mut Vec<Stateless>, post: &mut Vec<Stateless>, after: bool, s: Stateless) {
    if after {
        post.push(s)
    } else {
        pre.push(s)
    }
}

fn positive(d: &DurationLit, what: &str, errs: &mut Errors) -> i64 {
    if d.ms <= 0 {
        errs.push(d.span, format!("the {what} must be more than zero"));
    }
    d.ms
}

fn plan_window(w: &crate::ast::WindowSpec, errs: &mut Errors) -> Option<WindowPlan> {
    let kind = w.kind.to_string();
    let n = w.args.len();
    let kind = match (kind.as_str(), n) {
        ("tumbling", 1) => WindowKind::Tumbling {
            size: positive(&w.args[0], "window size", errs),
        },
        ("sliding" | "hopping", 2) => {
            let size = positive(&w.args[0], "window size", errs);
            let slide = positive(&w.args[1], "slide", errs);
            if slide > size {
                errs.push(w.args[1].span, "the slide is longer than the window: events between windows would be lost; use a slide <= size (or a tumbling window)");
            }
            WindowKind::Sliding { size, slide }
        }
        ("session", 1) => WindowKind::Session {
            gap: positive(&w.args[0], "session gap", errs),
        },
        ("tumbling", _) => {
            errs.push(w.span, "`tumbling` takes one duration: `tumbling(5min)`");
            return None;
        }
        ("sliding" | "hopping", _) => {
            errs.push(
                w.span,
                "`sliding` takes the size and the slide: `sliding(10min, 1min)`",
            );
            return None;
        }
        ("session", _) => {
            errs.push(w.span, "`session` takes the gap: `session(30s)`");
            return None;
        }
        (other, _) => {
            errs.push(w.kind.span(), format!("unknown window `{other}`; use `tumbling(5min)`, `sliding(10min, 1min)` or `session(30s)`"));
            return None;
        }
    };
    let lateness = match &w.lateness {
        Some(d) if d.ms < 0 => {
            errs.push(d.span, "allowed lateness cannot be negative");
            0
        }
        Some(d) => d.ms,
        None => 0,
    };
    Some(WindowPlan { kind, lateness })
}

fn plan_aggs(fields: &[AggField], key: &Ident, windowed: bool, errs: &mut Errors) -> Vec<AggPlan> {
    let rt = rt();
    let mut out: Vec<AggPlan> = Vec::new();
    for f in fields {
        let name = f.name.to_string();
        if f.name == *key {
            errs.push(
                f.name.span(),
                format!("`{name}` is already the key's name; name this column differently"),
            );
        }
        if windowed && (name == "window_start" || name == "window_end") {
            errs.push(
                f.name.span(),
                format!(
                    "`{name}` is a column of every window result; name this column differently"
                ),
            );
        }
        if out.iter().any(|p| p.name == f.name) {
            errs.push(f.name.span(), format!("column `{name}` appears twice"));
            continue;
        }
        let func = f.func.to_string();
        let needs_value = func != "count";
        if needs_value && f.value.is_none() {
            let example = if func == "custom" {
                "custom(YourAggregate, |o| o.amount)".to_string()
            } else {
                format!("{func}(|o| o.amount)")
            };
            errs.push(
                f.span,
                format!("`{func}` needs the value to aggregate, e.g. `{example}`"),
            );
            continue;
        }
        if !needs_value && f.value.is_some() {
            errs.push(f.span, "`count()` takes no argument: it counts events");
            continue;
        }
        if let Some(v) = &f.value {
            check_fn(v, &func, "sum(|o| o.amount)", errs);
        }
        if let (Some(t), "sum" | "avg") = (&f.ty, func.as_str()) {
            if not_numeric(t) {
                errs.push(
                    t.span(),
                    format!(
                        "`{func}` adds numbers, but `{}` is not a number; declare an integer or float type (e.g. `{name}: f64 = {func}(|o| o.amount)`), count events with `count()`, or write a `custom(YourAggregate, |e| ...)`",
                        crate::emit_plan::type_text(t)
                    ),
                );
                continue;
            }
        }
        // The value type is given to the extractor closure, so that a value of the wrong
        // type is reported at the closure, next to the declared type.
        let (out_ty, agg_ty, in_ty): (Type, TokenStream, TokenStream) = match (func.as_str(), &f.ty)
        {
            ("count", t) => (
                t.clone().unwrap_or_else(|| syn::parse_quote!(u64)),
                quote!(#rt::aggregate::Count),
                quote!(()),
            ),
            ("avg", t) => {
                let t = t
                    .clone()
                    .unwrap_or_else(|| syn::parse_quote_spanned!(f.func.span()=> f64));
                (
                    syn::parse_quote!(f64),
                    quote!(#rt::aggregate::Avg<#t>),
                    t.to_token_stream(),
                )
            }
            ("sum" | "min" | "max", Some(t)) => {
                let agg = format_ident!("{}", camel(&func));
                let agg_span = quote::quote_spanned!(f.func.span()=> #rt::aggregate::#agg<#t>);
                (t.clone(), agg_span, t.to_token_stream())
            }
            ("sum" | "min" | "max", None) => {
                errs.push(
                    f.name.span(),
                    format!(
                        "column `{name}` needs the type of the values: `{name}: f64 = {func}(...)`"
                    ),
                );
                continue;
            }
            ("custom", t) => {
                let c = f.custom.clone().expect("parsed with custom");
                let out = t.clone().unwrap_or_else(
                    || syn::parse_quote!(<#c as #rt::aggregate::Aggregate>::Output),
                );
                let input = quote_spanned!(c.span()=> <#c as #rt::aggregate::Aggregate>::Input);
                (out, c.to_token_stream(), input)
            }
            (other, _) => {
                errs.push(f.func.span(), format!("unknown aggregate `{other}`; use count(), sum(..), min(..), max(..), avg(..) or custom(YourAggregate, ..)"));
                continue;
            }
        };
        out.push(AggPlan {
            name: f.name.clone(),
            out_ty,
            agg_ty,
            value: f.value.as_ref().map(|v| with_output(v, &in_ty)),
            func,
        });
    }
    out
}

impl Stateless {
    /// `filter`, `map` or `flat_map`.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Stateless::Filter { .. } => "filter",
            Stateless::Map { .. } => "map",
            Stateless::FlatMap { .. } => "flat_map",
        }
    }
}

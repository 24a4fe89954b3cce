//! `aggregate(name [: Type] = func(..), ..)`: folds each group (a key, a window, or both)
//! into columns. Completes a `key_by` and/or a `window`: together they are the stage's
//! stateful part, one accumulator per key (and window).

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned, ToTokens};
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, Ident, Token, Type};

use super::key_by::Key;
use super::pair_fold::{self, Pairs};
use super::window::{self, Window};
use super::{OpDef, Operator, StageCode, StageItems, Stateful};
use crate::check::stage::StageBuilder;
use crate::closure;
use crate::diag::{self, Errors, Known};
use crate::expand::plan_data::type_text;
use crate::expand::Cx;
use crate::lock::layout::{Column as LayoutColumn, Part};
use crate::names::camel;
use crate::parse::name_and_type;
use crate::plan::StagePlan;

/// The table row.
pub const OP: OpDef = OpDef {
    name: Known {
        name: "aggregate",
        aka: &["agg", "reduce", "fold", "summarize"],
    },
    parse: |input| {
        let columns = Punctuated::<ColumnDef, Token![,]>::parse_terminated(input)?;
        Ok(Box::new(Aggregate(columns.into_iter().collect())))
    },
};

/// The aggregate functions.
const FUNCS: &[Known] = &[
    Known {
        name: "count",
        aka: &["cnt", "len", "size"],
    },
    Known {
        name: "sum",
        aka: &["total"],
    },
    Known {
        name: "min",
        aka: &["minimum"],
    },
    Known {
        name: "max",
        aka: &["maximum"],
    },
    Known {
        name: "avg",
        aka: &["mean", "average"],
    },
    Known {
        name: "custom",
        aka: &["udf", "udaf"],
    },
];

const FUNC_LIST: &str =
    "use count(), sum(..), min(..), max(..), avg(..) or custom(YourAggregate, ..)";

struct Aggregate(Vec<ColumnDef>);

/// One column as written: `amount: f64 = sum(|o| o.amount)`.
struct ColumnDef {
    name: Ident,
    ty: Option<Type>,
    func: Ident,
    /// For `custom(Type, ..)`: the aggregate's type.
    custom: Option<Type>,
    /// The value extractor (none for `count`).
    value: Option<Expr>,
    /// Span of `func(...)`.
    span: Span,
}

/// A planned column.
struct Column {
    name: Ident,
    out_ty: Type,
    /// The runtime aggregate type (e.g. `Sum<f64>`).
    agg_ty: TokenStream,
    /// Value extractor, returning the aggregate's input (none for `count`).
    value: Option<Expr>,
    func: &'static str,
}

/// What the accumulators are per.
enum Grouping {
    /// A key: a running aggregate, a row per event.
    Key(Key),
    /// A key and a window: a row per key when its window closes.
    KeyWindow(Key, Window),
    /// A window over all events: a row per window.
    Window(Window),
}

/// The planned stateful part.
struct Aggregation {
    grouping: Grouping,
    columns: Vec<Column>,
    /// The type of the events grouped (what late events are).
    event_ty: Type,
}

impl Operator for Aggregate {
    fn plan(&self, at: &Ident, b: &mut StageBuilder) {
        if b.grouping_refused(at) {
            return;
        }
        let global = b.key.is_none() && b.stateful.is_none() && b.window.is_some();
        if global && b.window.as_ref().is_some_and(|w| w.window.is_session()) {
            let span = b.window.take().expect("checked").at;
            b.error(span, "session windows are per key: call `key_by(name: Type = |e| ...)` before `window(session(..))`");
            return;
        }
        let Some(key) = b.key.take().map(|k| k.key) else {
            if !global {
                let hint = if b.stateful.is_some() {
                    "a stage holds one aggregate; start a new stage to aggregate again"
                } else {
                    "`aggregate` needs keyed events: call `key_by(name: Type = |e| ...)` first (or `window(...)`, for one result per window over all events)"
                };
                b.error(at.span(), hint);
                return;
            }
            let window = b.window.take().expect("global").window;
            self.finish(at, Grouping::Window(window), b);
            return;
        };
        let window = b.window.take().map(|w| w.window);
        let key_name = match &key {
            Ok(k) => &k.name,
            Err(name) => name,
        };
        if window.is_some() && (key_name == "window_start" || key_name == "window_end") {
            b.error(
                key_name.span(),
                format!(
                    "`{key_name}` is a column of every window result; name the key differently"
                ),
            );
        }
        match (key, window) {
            (Ok(k), None) => self.finish(at, Grouping::Key(k), b),
            (Ok(k), Some(w)) => self.finish(at, Grouping::KeyWindow(k, w), b),
            // The key's missing type is reported; the columns are still checked.
            (Err(name), w) => {
                plan_columns(&self.0, Some(&name), w.is_some(), b.errs);
            }
        }
    }
}

impl Aggregate {
    fn finish(&self, at: &Ident, grouping: Grouping, b: &mut StageBuilder) {
        let (key, windowed) = match &grouping {
            Grouping::Key(k) => (Some(&k.name), false),
            Grouping::KeyWindow(k, _) => (Some(&k.name), true),
            Grouping::Window(_) => (None, true),
        };
        let columns = plan_columns(&self.0, key, windowed, b.errs);
        if self.0.is_empty() {
            b.error(
                at.span(),
                "`aggregate` needs at least one column, e.g. `aggregate(orders = count())`",
            );
        }
        let row = b.names.path(&b.names.row);
        let part = Aggregation {
            grouping,
            columns,
            event_ty: b.ty.clone(),
        };
        b.set_stateful(Box::new(part), syn::parse_quote!(#row));
    }
}

impl Parse for ColumnDef {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        if !(input.peek(Ident) && (input.peek2(Token![:]) || input.peek2(Token![=]))) {
            return Err(input.error("expected `column = function(...)`, e.g. `orders = count()` or `amount: f64 = sum(|o| o.amount)`"));
        }
        let (name, ty) = name_and_type(input)?;
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
                syn::Error::new(e.span(), "`custom` takes your aggregate's type and the value: `custom(YourAggregate, |o| o.amount)`")
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
        Ok(ColumnDef {
            name,
            ty,
            func,
            custom,
            value,
            span,
        })
    }
}

/// Checks the columns; `key` and window columns are taken names.
fn plan_columns(
    defs: &[ColumnDef],
    key: Option<&Ident>,
    windowed: bool,
    errs: &mut Errors,
) -> Vec<Column> {
    let mut out: Vec<Column> = Vec::new();
    for f in defs {
        let name = f.name.to_string();
        if key == Some(&f.name) {
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
        if let Some(c) = plan_column(f, errs) {
            out.push(c);
        }
    }
    out
}

fn plan_column(f: &ColumnDef, errs: &mut Errors) -> Option<Column> {
    let Some(known) = FUNCS.iter().find(|k| f.func == k.name) else {
        let msg = diag::unknown("aggregate", &f.func.to_string(), FUNCS, FUNC_LIST);
        errs.push(f.func.span(), msg);
        return None;
    };
    let func = known.name;
    match (func, &f.value) {
        ("count", Some(_)) => {
            errs.push(f.span, "`count()` takes no argument: it counts events");
            return None;
        }
        ("count", None) => {}
        (_, None) => {
            let example = match func {
                "custom" => "custom(YourAggregate, |o| o.amount)".to_string(),
                _ => format!("{func}(|o| o.amount)"),
            };
            errs.push(
                f.span,
                format!("`{func}` needs the value to aggregate, e.g. `{example}`"),
            );
            return None;
        }
        (_, Some(v)) => closure::check_one_arg(v, func, "sum(|o| o.amount)", errs),
    }
    if let (Some(t), "sum" | "avg") = (&f.ty, func) {
        if not_numeric(t) {
            let name = &f.name;
            errs.push(t.span(), format!(
                "`{func}` adds numbers, but `{}` is not a number; declare an integer or float type (e.g. `{name}: f64 = {func}(|o| o.amount)`), count events with `count()`, or write a `custom(YourAggregate, |e| ...)`",
                type_text(t)
            ));
            return None;
        }
    }
    let (out_ty, agg_ty, in_ty) = types(f, func, errs)?;
    Some(Column {
        name: f.name.clone(),
        out_ty,
        agg_ty,
        // The value type is given to the extractor closure, so that a value of the wrong
        // type is reported at the closure, next to the declared type.
        value: f.value.as_ref().map(|v| closure::with_output(v, &in_ty)),
        func,
    })
}

/// The column's output type, its runtime aggregate and the aggregate's input type.
fn types(f: &ColumnDef, func: &str, errs: &mut Errors) -> Option<(Type, TokenStream, TokenStream)> {
    let rt = quote!(::simplestream::__rt);
    Some(match (func, &f.ty) {
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
        ("custom", t) => {
            let c = f.custom.clone().expect("parsed with custom");
            let out = t
                .clone()
                .unwrap_or_else(|| syn::parse_quote!(<#c as #rt::aggregate::Aggregate>::Output));
            let input = quote_spanned!(c.span()=> <#c as #rt::aggregate::Aggregate>::Input);
            (out, c.to_token_stream(), input)
        }
        (_, Some(t)) => {
            let agg = syn::Ident::new(&camel(func), f.func.span());
            let agg_ty = quote_spanned!(f.func.span()=> #rt::aggregate::#agg<#t>);
            (t.clone(), agg_ty, t.to_token_stream())
        }
        (_, None) => {
            let name = &f.name;
            errs.push(
                name.span(),
                format!(
                    "column `{name}` needs the type of the values: `{name}: f64 = {func}(...)`"
                ),
            );
            return None;
        }
    })
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

/// `aggregate::<how>::<Agg>(&mut __acc.<column>, value);` (`how`: `add` or `add_ref`).
fn add_stmt(rt: &TokenStream, c: &Column, how: TokenStream, value: &TokenStream) -> TokenStream {
    let (col, agg) = (&c.name, &c.agg_ty);
    quote_spanned!(c.name.span()=> #rt::aggregate::#how::<#agg>(&mut __acc.#col, #value);)
}

impl Aggregation {
    fn key(&self) -> Option<&Key> {
        match &self.grouping {
            Grouping::Key(k) | Grouping::KeyWindow(k, _) => Some(k),
            Grouping::Window(_) => None,
        }
    }

    fn window(&self) -> Option<&Window> {
        match &self.grouping {
            Grouping::KeyWindow(_, w) | Grouping::Window(w) => Some(w),
            Grouping::Key(_) => None,
        }
    }

    /// `aggregate::add::<Sum<f64>>(&mut __acc.amount, value)`, one per column; a min or
    /// max of a cloned field borrows it (`add_ref`, a clone only for a new extreme).
    fn adds(&self, rt: &TokenStream) -> TokenStream {
        let adds = self.columns.iter().map(|c| match self.borrowed_value(c) {
            Some(v) => add_stmt(rt, c, quote!(add_ref), &v),
            None => add_stmt(rt, c, quote!(add), &self.value(c)),
        });
        quote!(#(#adds)*)
    }

    /// For `min(|e| e.f.clone())` or `max(..)`: a reference to `e.f` of the event `__v`.
    fn borrowed_value(&self, c: &Column) -> Option<TokenStream> {
        if !matches!(c.func, "min" | "max") {
            return None;
        }
        let (p, field) = closure::cloned_field_strict(c.value.as_ref()?)?;
        let ty = &self.event_ty;
        // Spanned at the field: a field of another type is reported there.
        let field = quote_spanned!(field.span()=> &#field);
        Some(quote!({ let #p: &#ty = __v; #field }))
    }

    /// The adds of `values`, one per column.
    fn adds_of(&self, rt: &TokenStream, values: &[TokenStream]) -> TokenStream {
        let adds = (self.columns.iter().zip(values)).map(|(c, v)| add_stmt(rt, c, quote!(add), v));
        quote!(#(#adds)*)
    }

    /// A column's input from the event `__v` (by reference).
    fn value(&self, c: &Column) -> TokenStream {
        match &c.value {
            None => quote!(()),
            Some(v) => {
                let v = closure::annotate(v, &self.event_ty);
                quote!(#v(__v))
            }
        }
    }

    /// The by-value push of a tumbling window's stage: an event's key new to its window
    /// is moved into the window's table, not cloned (then freed with the event). The
    /// columns' inputs are read before, while the event is whole; a late event goes to
    /// the late output by move.
    fn owned_push(&self, s: &StagePlan, cx: &Cx, c: &window::Consts) -> Option<TokenStream> {
        if !crate::expand::takes_owned_key(s) {
            return None;
        }
        let key = self.key()?.compute_mut(&self.event_ty)?;
        let (rt, module, f, ty) = (&cx.rt, &s.names.module, &s.names.field, &self.event_ty);
        let name = s.names.push_owned(crate::names::Side::Main);
        let locals: Vec<TokenStream> = (0..self.columns.len())
            .map(|i| {
                let l = quote::format_ident!("__in{}", i);
                quote!(#l)
            })
            .collect();
        let values = self.columns.iter().map(|col| self.value(col));
        let adds = self.adds_of(rt, &locals);
        let (size, slide, lateness) = (&c.size, &c.slide, &c.lateness);
        let late = s.names.late_variant(None);
        Some(quote! {
            #[inline(always)]
            #[allow(unused_variables)]
            fn #name<C: #rt::Collector<#module::Output>>(&mut self, mut __v: #ty, __ts: i64, out: &mut C) {
                let (#(#locals,)*) = { let __v: &#ty = &__v; (#(#values,)*) };
                #key
                match self.#f.state.acc_for_taking(__ts, __kr, #size, #lateness) {
                    ::core::option::Option::Some(__acc) => { #adds }
                    ::core::option::Option::None => {
                        let __why = #rt::window::LateReason::windowed(__ts, #size, #slide);
                        out.collect(#module::Output::Late(#module::Late::#late(__v, __why)));
                    }
                }
            }
        })
    }

    /// `amount: aggregate::output::<Sum<f64>>(&acc.amount), ..`: the columns of a row.
    fn outputs(&self, rt: &TokenStream, acc: TokenStream) -> TokenStream {
        let cols = self.columns.iter().map(|c| {
            let (col, agg) = (&c.name, &c.agg_ty);
            quote!(#col: #rt::aggregate::output::<#agg>(&#acc.#col),)
        });
        quote!(#(#cols)*)
    }
}

impl Stateful for Aggregation {
    fn plan_data(&self, rt: &TokenStream) -> Vec<TokenStream> {
        let mut ops: Vec<TokenStream> = self.key().map(|k| k.plan_data(rt)).into_iter().collect();
        if let Some(w) = self.window() {
            let w = w.plan_data(rt);
            ops.push(quote!(#rt::plan::Op::Window { window: #w }));
        }
        let cols = self.columns.iter().map(|c| {
            let (n, f, t) = (c.name.to_string(), c.func, type_text(&c.out_ty));
            quote!(#rt::plan::Column { name: #n, func: #f, ty: #t })
        });
        ops.push(quote!(#rt::plan::Op::Aggregate { columns: &[#(#cols),*] }));
        ops
    }

    fn plan_state(&self, _: &StagePlan, cx: &Cx) -> TokenStream {
        let rt = &cx.rt;
        match &self.grouping {
            Grouping::Key(k) => {
                let key = k.name.to_string();
                quote!(#rt::plan::State::PerKey { key: #key })
            }
            Grouping::KeyWindow(k, w) => {
                let (key, w) = (k.name.to_string(), w.plan_data(rt));
                quote!(#rt::plan::State::Windowed { key: ::core::option::Option::Some(#key), window: #w })
            }
            Grouping::Window(w) => {
                let w = w.plan_data(rt);
                quote!(#rt::plan::State::Windowed { key: ::core::option::Option::None, window: #w })
            }
        }
    }

    fn layout(&self, _: &StagePlan, _: &Cx) -> Vec<Part> {
        let mut parts: Vec<Part> = self
            .key()
            .map(|k| Part::Key(k.typed()))
            .into_iter()
            .collect();
        parts.extend(self.window().map(Window::layout));
        parts.push(Part::Aggregate(self.layout_columns()));
        parts
    }

    fn migrate(
        &self,
        s: &StagePlan,
        cx: &Cx,
        migrations: &[crate::upgrade::Migration],
    ) -> syn::Result<TokenStream> {
        let cols: Vec<(&Ident, &TokenStream)> =
            self.columns.iter().map(|c| (&c.name, &c.agg_ty)).collect();
        crate::expand::migrate::state(
            s,
            cx,
            migrations,
            self.key().map(|k| &k.ty),
            self.window(),
            &cols,
        )
    }

    fn items(&self, s: &StagePlan, cx: &Cx) -> StageItems {
        let (rt, names) = (&cx.rt, &s.names);
        let acc = &names.acc;
        let acc_path = names.path(acc);
        let state = match &self.grouping {
            Grouping::Key(k) => {
                let kt = super::key_by::stored_key(rt, &k.ty);
                let align = super::key_by::line_aligned(rt, &kt, acc);
                quote!(#rt::spill::SpillState<#kt, #acc, #align>)
            }
            Grouping::KeyWindow(k, w) => w.keyed_state(rt, &k.ty, &quote!(#acc)),
            Grouping::Window(_) => quote!(#rt::window::GlobalWindows<#acc>),
        };
        let scratch = self.window().map(|w| {
            let kt = self.key().map_or(quote!(()), |k| w.stored_key(rt, &k.ty));
            quote!(::std::vec::Vec<#rt::window::Fired<#kt, #acc_path>>)
        });
        let late = match self.window() {
            Some(_) => vec![(names.late_variant(None), self.event_ty.to_token_stream())],
            None => Vec::new(),
        };
        StageItems {
            state,
            state_doc: "Per-key (and per-window) accumulators.",
            blame: self.key().map_or_else(Span::call_site, |k| k.ty.span()),
            items: vec![self.acc_struct(s, cx), self.row_struct(s, cx)],
            late,
            scratch,
        }
    }

    fn code(&self, s: &StagePlan, cx: &Cx, tail: TokenStream) -> StageCode {
        let adds = self.adds(&cx.rt);
        let Some(w) = self.window() else {
            let k = self.key().expect("an aggregate without a window has a key");
            let body = self.running(s, cx, k, adds, tail);
            return StageCode {
                methods: vec![cx.push_method(s, body)],
                ..StageCode::default()
            };
        };
        let consts = window::Consts::new(&s.names, w);
        let late_variant = s.names.late_variant(None);
        let late = |reason: TokenStream| cx.late(&late_variant, reason);
        let key = self.key().map(|k| match w.is_session() {
            true => k.compute(&self.event_ty),
            false => k.compute_ref(&self.event_ty),
        });
        let body = w.accumulate(&consts, &s.names, key, &adds, &late);
        let sorted = rows_need_sorting(cx, s, w.lateness);
        let (advance, flush) = w.closing(&consts, &s.names, sorted);
        let mut methods = vec![self.fire(s, cx, tail), cx.push_method(s, body)];
        methods.extend(self.owned_push(s, cx, &consts));
        StageCode {
            consts: consts.items.clone(),
            methods,
            advance,
            flush,
        }
    }

    fn prefetch(&self, s: &StagePlan, method: &Ident) -> Option<TokenStream> {
        let f = &s.name;
        let (k, state) = match &self.grouping {
            Grouping::Key(k) => (k, quote!(self.#f.state)),
            // Other windows keep a table per window: a key's state is not one entry.
            Grouping::KeyWindow(k, w) if w.is_session() => (k, quote!(self.#f.state.sessions)),
            _ => return None,
        };
        let prefetch = k.prefetch(&self.event_ty, &state, method);
        Some(quote! {
            if #state.spilled() {
                #prefetch
            }
        })
    }

    fn takes_owned_key(&self) -> bool {
        let Grouping::KeyWindow(k, w) = &self.grouping else {
            return false;
        };
        matches!(w.kind, window::WindowKind::Tumbling { .. })
            && k.compute_mut(&self.event_ty).is_some()
    }

    fn fold_pairs(&self, s: &StagePlan, cx: &Cx, pairs: &Pairs) -> Option<pair_fold::Fold> {
        let Grouping::KeyWindow(k, w) = &self.grouping else {
            return None;
        };
        let tumbling = matches!(w.kind, window::WindowKind::Tumbling { .. });
        if !tumbling
            || type_text(&k.ty) != type_text(pairs.key_ty)
            || !pair_fold::is_field(&k.f, pairs.key_name)
        {
            return None;
        }
        let rt = &cx.rt;
        let mut folds = Vec::new();
        // The same columns folded as the join's events arrive: counts at close.
        let (mut counts, mut sides) = (Vec::new(), [Vec::new(), Vec::new()]);
        for c in &self.columns {
            let (col, agg) = (&c.name, &c.agg_ty);
            folds.push(match (c.func, &c.value) {
                ("count", _) => {
                    counts.push(quote!(__acc.#col += __pairs;));
                    quote!(__acc.#col += __pairs;)
                }
                ("min" | "max", Some(v)) => {
                    let (side, add) = match pair_fold::one_side_field(v, pairs) {
                        // A cloned field is borrowed: cloned only for a new extreme.
                        Some((side, field)) => (
                            side,
                            quote!(#rt::aggregate::add_ref::<#agg>(&mut __acc.#col, #field);),
                        ),
                        None => {
                            let (side, f) = pair_fold::one_side(v, pairs)?;
                            (
                                side,
                                quote!(#rt::aggregate::add::<#agg>(&mut __acc.#col, #f(__e));),
                            )
                        }
                    };
                    sides[side].push(add.clone());
                    let events = [quote!(__left), quote!(__right)][side].clone();
                    quote!(for __e in #events.iter() { #add })
                }
                _ => return None,
            });
        }
        let consts = window::Consts::new(&s.names, w);
        let (f, size, lateness) = (&s.names.field, &consts.size, &consts.lateness);
        let folds = quote! {
            let __pairs = (__left.len() as u64) * (__right.len() as u64);
            #(#folds)*
        };
        let into_table = quote! {
            match self.#f.state.acc_for(__ts, __kr, #size, #lateness) {
                ::core::option::Option::Some(__acc) => { #folds true }
                ::core::option::Option::None => false,
            }
        };
        // The same windows closing at the same watermark: a group's window of the
        // aggregate closes right after the join's (in the same watermark step), so its
        // row goes straight to the closed rows, in the join's (end, key) order, without
        // the table nobody could see in between. Only while the table is empty, so that
        // no window of it is split in two.
        if pairs.window.kind != w.kind || pairs.window.lateness != w.lateness {
            return Some(pair_fold::Fold {
                fold: into_table,
                after: quote!(),
                arrival: None,
            });
        }
        let (scratch, fire, acc) = (&s.names.scratch, &s.names.fire, s.names.path(&s.names.acc));
        // Folded at arrival, the join keeps no events: this stage's table is never used
        // (a group closes with its window here, in the same step), so rows go straight out.
        let arrival = pair_fold::Arrival {
            reader: s.name.to_string(),
            columns: self.layout_columns(),
            acc: acc.clone(),
            sides: sides.map(|s| quote!(#(#s)*)),
            close: quote! {
                let mut __acc = __folds.acc;
                let __pairs = __folds.left * __folds.right;
                #(#counts)*
                self.#scratch.push(#rt::window::Fired {
                    start: __start,
                    end: __end,
                    key: ::core::clone::Clone::clone(__kr),
                    acc: __acc,
                });
            },
        };
        Some(pair_fold::Fold {
            arrival: Some(arrival),
            fold: quote! {
                if self.#f.state.is_empty()
                    && __start.saturating_add(#size).saturating_add(#lateness) > self.#f.state.watermark
                {
                    let mut __acc = <#acc as ::core::default::Default>::default();
                    {
                        let __acc = &mut __acc;
                        #folds
                    }
                    self.#scratch.push(#rt::window::Fired {
                        start: __start,
                        end: __end,
                        key: ::core::clone::Clone::clone(__kr),
                        acc: __acc,
                    });
                    true
                } else {
                    #into_table
                }
            },
            // At the end of input the table's windows would have moved its watermark to
            // the last one's end + lateness (in a watermark step, past it already).
            after: quote! {
                if let ::core::option::Option::Some(__last) = self.#scratch.last() {
                    self.#f.state.set_watermark(__last.end.saturating_add(#lateness));
                    self.#fire(out);
                }
            },
        })
    }

    fn unsorted_input(&self, lateness: i64) -> Option<Vec<TokenStream>> {
        let w = self.window()?;
        (!w.is_session() && w.lateness >= lateness)
            .then(|| self.columns.iter().map(|c| c.agg_ty.clone()).collect())
    }
}

impl Aggregation {
    /// The columns as a state layout records them.
    fn layout_columns(&self) -> Vec<LayoutColumn> {
        let cols = self.columns.iter().map(|c| LayoutColumn {
            name: c.name.to_string(),
            ty: crate::lock::layout::flat(&type_text(&c.out_ty)),
            func: c.func.to_string(),
            span: c.name.span(),
        });
        cols.collect()
    }

    /// The accumulators' struct: one field per column, merged column by column.
    fn acc_struct(&self, s: &StagePlan, cx: &Cx) -> TokenStream {
        let (rt, serde, serde_path) = (&cx.rt, &cx.serde, cx.serde_path);
        let acc = &s.names.acc;
        let cols: Vec<&Ident> = self.columns.iter().map(|c| &c.name).collect();
        let col_names: Vec<String> = cols.iter().map(|c| c.to_string()).collect();
        let aggs: Vec<&TokenStream> = self.columns.iter().map(|c| &c.agg_ty).collect();
        let doc = format!(
            "Accumulators of stage `{}`, one per key (and window).",
            s.name
        );
        quote! {
            #[doc = #doc]
            #[derive(Default, Clone, Debug, PartialEq, #serde::Serialize, #serde::Deserialize)]
            #[serde(crate = #serde_path)]
            #[allow(missing_docs)]
            pub struct #acc { #(pub #cols: <#aggs as #rt::aggregate::Aggregate>::Acc,)* }

            impl #rt::Checkpointable for #acc {
                const LAYOUT: u64 = {
                    let mut h = #rt::fingerprint::fnv1a(stringify!(#acc));
                    #( h = #rt::fingerprint::combine(h, #rt::fingerprint::combine(
                        #rt::fingerprint::fnv1a(#col_names),
                        <<#aggs as #rt::aggregate::Aggregate>::Acc as #rt::Checkpointable>::LAYOUT)); )*
                    h
                };
            }

            impl #rt::aggregate::Accumulator for #acc {
                fn merge(&mut self, other: &Self) {
                    #( #rt::aggregate::merge::<#aggs>(&mut self.#cols, &other.#cols); )*
                }
            }
        }
    }

    /// The result row: the key, the window, the columns.
    fn row_struct(&self, s: &StagePlan, cx: &Cx) -> TokenStream {
        let (serde, serde_path) = (&cx.serde, cx.serde_path);
        let row = &s.names.row;
        let key = self.key().map(|k| {
            let (n, t) = (&k.name, &k.ty);
            quote!(pub #n: #t,)
        });
        let window = self
            .window()
            .map(|_| quote!(pub window_start: i64, pub window_end: i64,));
        let cols = self.columns.iter().map(|c| &c.name);
        let tys = self.columns.iter().map(|c| &c.out_ty);
        let doc = format!("A result of stage `{}`.", s.name);
        quote! {
            #[doc = #doc]
            #[derive(Clone, Debug, PartialEq, #serde::Serialize, #serde::Deserialize)]
            #[serde(crate = #serde_path)]
            #[allow(missing_docs)]
            pub struct #row { #key #window #(pub #cols: #tys,)* }
        }
    }

    /// A running aggregate: update the key's accumulators and, if anything reads the
    /// stage, send the updated row on.
    fn running(
        &self,
        s: &StagePlan,
        cx: &Cx,
        k: &Key,
        adds: TokenStream,
        tail: TokenStream,
    ) -> TokenStream {
        let f = &s.name;
        let key = k.compute_ref(&self.event_ty);
        if s.children.is_empty() && !s.sink {
            return quote! {
                #key
                let __acc = self.#f.state.entry_ref(__kr);
                #adds
            };
        }
        let row = s.names.path(&s.names.row);
        let key_name = &k.name;
        let owned = k.owned();
        let outputs = self.outputs(&cx.rt, quote!(__acc));
        let tail = cx.owned_tail(s).unwrap_or(tail);
        quote! {
            #key
            let __acc = self.#f.state.entry_ref(__kr);
            #adds
            let __row = #row { #key_name: #owned, #outputs };
            let __v = &__row;
            #tail
        }
    }

    /// The method sending closed windows on, as rows.
    fn fire(&self, s: &StagePlan, cx: &Cx, tail: TokenStream) -> TokenStream {
        let (rt, module) = (&cx.rt, &s.names.module);
        let (fire, scratch) = (&s.names.fire, &s.names.scratch);
        let row = s.names.path(&s.names.row);
        // Tables may keep the key in another type (`KeyStr` for `String`).
        let key = self.key().map(|k| {
            let n = &k.name;
            quote!(#n: ::core::convert::Into::into(__f.key),)
        });
        let outputs = self.outputs(rt, quote!(__f.acc));
        let tail = cx.owned_tail(s).unwrap_or(tail);
        quote! {
            #[allow(unused_variables)]
            fn #fire<C: #rt::Collector<#module::Output>>(&mut self, out: &mut C) {
                let mut __fired = ::core::mem::take(&mut self.#scratch);
                for __f in __fired.drain(..) {
                    let __row = #row { #key window_start: __f.start, window_end: __f.end, #outputs };
                    let __ts = __f.end - 1;
                    let __v = &__row;
                    #tail
                }
                self.#scratch = __fired;
            }
        }
    }
}

/// Whether a tumbling or sliding stage must sort a closed window's rows by key (a
/// constant `bool` expression). Sorting makes output independent of hash order; it can
/// be skipped when nothing can observe the order: the stage is no sink, and every stage
/// reading it is a tumbling or sliding aggregate whose aggregates are all
/// `ORDER_INSENSITIVE` (a fact about types, so a constant the compiler folds) and whose
/// lateness is at least this stage's. That last condition means no row can be late
/// there (a row's time is its window's end - 1, and a window closes only once the
/// watermark passes its end + lateness), so none reaches the late output in hash order.
fn rows_need_sorting(cx: &Cx, s: &StagePlan, lateness: i64) -> TokenStream {
    let rt = &cx.rt;
    if s.sink || s.children.is_empty() {
        return quote!(true);
    }
    let mut aggs = Vec::new();
    for c in &s.children {
        let child = &cx.plan.stages[c.stage];
        match child
            .stateful
            .as_ref()
            .and_then(|p| p.unsorted_input(lateness))
        {
            Some(a) => aggs.extend(a),
            None => return quote!(true),
        }
    }
    quote!({
        const UNORDERED: bool = true #( && <#aggs as #rt::aggregate::Aggregate>::ORDER_INSENSITIVE )*;
        !UNORDERED
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `rows_need_sorting` for the first stage of `text` (a windowed aggregate with
    /// `lateness`), as a string without spaces.
    fn sorting_of_first_stage(text: &str, lateness: i64) -> String {
        let plan = crate::plan_str(text).expect("valid");
        let cx = Cx::new(&plan);
        rows_need_sorting(&cx, &plan.stages[0], lateness)
            .to_string()
            .replace(' ', "")
    }

    const HEAD: &str = "pipeline P; source bids: Bid, event_time = |b| b.ts, max_delay = 1s;
        counts = bids.key_by(a: u64 = |b| b.a).window(sliding(2s, 500ms)).aggregate(n = count());";

    #[test]
    fn rows_feeding_only_windowed_aggregates_are_left_to_the_aggregates_types() {
        let code = sorting_of_first_stage(
            &format!(
                "{HEAD} hot = counts.key_by(e: i64 = |c| c.window_end).window(tumbling(500ms))
                .aggregate(top = custom(Hot, |c| (c.n, c.a)), total: u64 = sum(|c| c.n));
             sink hot;"
            ),
            0,
        );
        assert!(code.contains("constUNORDERED:bool=true&&<Hot"), "{code}");
        assert!(code.contains("aggregate::Sum<u64>as"), "{code}");
        assert!(code.contains("!UNORDERED"), "{code}");
    }

    #[test]
    fn rows_are_sorted_when_their_order_can_be_seen() {
        let cases = [
            // The stage is a sink.
            (format!("{HEAD} sink counts;"), 0),
            // A running (unwindowed) aggregate emits a row per update.
            (format!("{HEAD} t = counts.key_by(e: i64 = |c| c.window_end).aggregate(n = count()); sink t;"), 0),
            // A session window.
            (format!("{HEAD} t = counts.key_by(e: i64 = |c| c.window_end).window(session(1s)).aggregate(n = count()); sink t;"), 0),
            // Less lateness downstream: rows could be late there, in hash order.
            ("pipeline P; source bids: Bid, event_time = |b| b.ts, max_delay = 1s;
                counts = bids.key_by(a: u64 = |b| b.a).window(tumbling(2s), allowed_lateness = 1s).aggregate(n = count());
                t = counts.key_by(e: i64 = |c| c.window_end).window(tumbling(2s)).aggregate(n = count()); sink t;".to_string(), 1_000),
            // A stateless child that is a sink.
            (format!("{HEAD} t = counts.filter(|c| c.n > 1); sink t;"), 0),
        ];
        for (text, lateness) in &cases {
            assert_eq!(sorting_of_first_stage(text, *lateness), "true", "{text}");
        }
    }
}

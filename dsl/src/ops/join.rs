//! `join(right, key: K = |l| .., |r| ..).window(tumbling(1min))`: pairs events of two
//! inputs with equal keys in the same window. The arguments, checks and row type it
//! shares with `interval_join` are here too.

use proc_macro2::{Span, TokenStream};
use quote::{quote, ToTokens};
use syn::parse::{Parse, ParseStream};
use syn::{Expr, Ident, Token, Type};

use super::window::{Consts, Window, WindowDef};
use super::{OpDef, Operator, StageCode, StageItems, Stateful};
use crate::check::stage::StageBuilder;
use crate::closure;
use crate::diag::{self, Known};
use crate::expand::plan_data::type_text;
use crate::expand::Cx;
use crate::names::Side;
use crate::parse::{peek_named, DurationLit, Field};
use crate::plan::StagePlan;

/// The table row.
pub const OP: OpDef = OpDef {
    name: Known {
        name: "join",
        aka: &["inner_join", "window_join"],
    },
    parse: |input| Ok(Box::new(Join(input.parse()?))),
};

const OPTIONS: &[Known] = &[
    Known {
        name: "lower",
        aka: &["before", "min"],
    },
    Known {
        name: "upper",
        aka: &["after", "max"],
    },
];

struct Join(JoinArgs);

/// The arguments of `join` and `interval_join`.
pub struct JoinArgs {
    /// The other input.
    pub right: Ident,
    /// The key column and the key of a left event.
    pub key: Field,
    /// Key of a right event.
    pub right_fn: Option<Expr>,
    /// `lower = ..` (interval join).
    pub lower: Option<DurationLit>,
    /// `upper = ..` (interval join).
    pub upper: Option<DurationLit>,
}

/// Whether the stage has a `join` waiting for its `.window(..)`.
pub enum Waiting {
    /// No.
    No,
    /// Yes.
    Window(Box<PendingJoin>),
    /// A join whose error was reported: its window is not a second mistake.
    Failed,
}

/// A checked `join(..)` before its window.
pub struct PendingJoin {
    /// The `join` token.
    pub at: Ident,
    sides: Sides,
}

/// What both joins pair: two inputs by a key.
pub struct Sides {
    /// The left input (the stage's input) and its event type.
    pub left: (Ident, Type),
    /// The right input and its event type.
    pub right: (Ident, Type),
    /// Key column name.
    pub key_name: Ident,
    /// Key type.
    pub key_ty: Type,
    /// Key of a left event.
    pub left_fn: Expr,
    /// Key of a right event.
    pub right_fn: Expr,
}

/// The planned windowed join.
struct WindowJoin {
    sides: Sides,
    window: Window,
}

impl Parse for JoinArgs {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let right: Ident = input.parse().map_err(|e| {
            syn::Error::new(e.span(), "expected the stream to join with, e.g. `join(payments, order_id: String = |o| o.id.clone(), |p| p.order_id.clone())`")
        })?;
        input.parse::<Token![,]>()?;
        let mut args = JoinArgs {
            right,
            key: input.parse()?,
            right_fn: None,
            lower: None,
            upper: None,
        };
        while input.peek(Token![,]) {
            input.parse::<Token![,]>()?;
            if input.is_empty() {
                break;
            }
            if peek_named(input) {
                let k: Ident = input.parse()?;
                input.parse::<Token![=]>()?;
                match k.to_string().as_str() {
                    "lower" => args.lower = Some(input.parse()?),
                    "upper" => args.upper = Some(input.parse()?),
                    other => {
                        let list = "the options are `lower` and `upper` (interval joins)";
                        let msg = diag::unknown("join option", other, OPTIONS, list);
                        return Err(syn::Error::new(k.span(), msg));
                    }
                }
            } else if args.right_fn.is_none() {
                args.right_fn = Some(input.parse()?);
            } else {
                return Err(input.error("a join takes the other stream, the key (`name: Type = |left| ..`), the right key (`|right| ..`) and, for interval joins, `lower`/`upper`"));
            }
        }
        Ok(args)
    }
}

impl Operator for Join {
    fn plan(&self, at: &Ident, b: &mut StageBuilder) {
        b.join = Waiting::Failed;
        let Some(sides) = self.0.check(at, b) else {
            return;
        };
        if let Some(d) = self.0.lower.as_ref().or(self.0.upper.as_ref()) {
            b.error(
                d.span,
                "`lower`/`upper` belong to `interval_join`; a `join` takes `.window(...)`",
            );
        }
        b.ty = sides.joined_type(b);
        b.join = Waiting::Window(Box::new(PendingJoin {
            at: at.clone(),
            sides,
        }));
    }
}

/// Why `key_by`, `window` or `aggregate` (`op`) cannot follow a join.
pub fn refuses_grouping(op: &Ident) -> String {
    format!("`{op}` cannot follow a join in the same stage; start a new stage that reads this one")
}

impl JoinArgs {
    /// Checks what both joins need: to come first, a known right input, a typed key,
    /// and the key of both sides.
    pub fn check(&self, at: &Ident, b: &mut StageBuilder) -> Option<Sides> {
        if b.index != 0 {
            b.error(at.span(), format!("`{at}` must be the first operator of a stage; filter or map the inputs in stages of their own"));
            return None;
        }
        let Some(right_ty) = b.scope.get(&self.right).cloned() else {
            let msg = format!(
                "unknown stage `{}` to join with; defined: {}",
                self.right,
                b.scope.listed()
            );
            b.error(self.right.span(), msg);
            return None;
        };
        let key_name = &self.key.name;
        let Some(key_ty) = self.key.ty.clone() else {
            b.error(
                key_name.span(),
                format!("the join key needs a type: `{key_name}: String = |l| ..., |r| ...`"),
            );
            return None;
        };
        let Some(right_fn) = &self.right_fn else {
            let (right, kt) = (&self.right, key_ty.to_token_stream());
            b.error(at.span(), format!("`{at}` needs the right side's key too: `{at}({right}, {key_name}: {kt} = |l| ..., |r| ...)`"));
            return None;
        };
        let what = at.to_string();
        closure::check_one_arg(&self.key.expr, &what, "|o| o.id.clone()", b.errs);
        closure::check_one_arg(right_fn, &what, "|p| p.order_id.clone()", b.errs);
        let kt = key_ty.to_token_stream();
        Some(Sides {
            left: (b.def.input.clone(), b.ty.clone()),
            right: (self.right.clone(), right_ty),
            key_name: key_name.clone(),
            left_fn: closure::with_output(&self.key.expr, &kt),
            right_fn: closure::with_output(right_fn, &kt),
            key_ty,
        })
    }
}

impl PendingJoin {
    /// The join with its window `w`.
    pub fn complete(self, w: &WindowDef, b: &mut StageBuilder) {
        let Some(window) = w.plan_window(b.errs) else {
            b.join = Waiting::Failed;
            return;
        };
        if window.is_session() {
            b.error(w.kind_span(), "joins use tumbling or sliding windows (or `interval_join`); session windows are not supported for joins");
            b.join = Waiting::Failed;
            return;
        }
        let ty = b.ty.clone();
        b.set_stateful(
            Box::new(WindowJoin {
                sides: self.sides,
                window,
            }),
            ty,
        );
    }
}

impl Sides {
    /// The type of a matched pair: `module::StageJoined`.
    pub fn joined_type(&self, b: &StageBuilder) -> Type {
        let joined = b.names.path(&b.names.joined);
        syn::parse_quote!(#joined)
    }

    /// Field names of a joined row: the two inputs' names (`left`/`right` for a self-join).
    pub fn field_names(&self) -> (Ident, Ident) {
        if self.left.0 == self.right.0 {
            (syn::parse_quote!(left), syn::parse_quote!(right))
        } else {
            (self.left.0.clone(), self.right.0.clone())
        }
    }

    /// The late-output variants, one per input.
    pub fn late_variants(&self, s: &StagePlan) -> (Ident, Ident) {
        let (l, r) = self.field_names();
        (
            s.names.late_variant(Some(&l)),
            s.names.late_variant(Some(&r)),
        )
    }

    /// `plan::Op::Join { .. }` or `IntervalJoin { .. }` without its last fields (`rest`).
    pub fn plan_data(&self, rt: &TokenStream, op: &str, rest: TokenStream) -> TokenStream {
        let op = Ident::new(op, Span::call_site());
        let (right, key) = (self.right.0.to_string(), self.key_name.to_string());
        let (kt, lt, rtt) = (
            type_text(&self.key_ty),
            type_text(&self.left.1),
            type_text(&self.right.1),
        );
        quote!(#rt::plan::Op::#op { right: #right, key: #key, key_type: #kt, left_type: #lt, right_type: #rtt, #rest })
    }

    /// `join key: K of L, R` (`op` is `join` or `interval_join`), as a state layout
    /// records it, followed by `rest`.
    pub fn layout(&self, op: &str, rest: &str) -> crate::lock::layout::Part {
        let (kt, lt, rtt) = (
            type_text(&self.key_ty),
            type_text(&self.left.1),
            type_text(&self.right.1),
        );
        crate::lock::layout::Part::Other {
            text: crate::lock::layout::flat(&format!(
                "{op} {}: {kt} of {lt}, {rtt}{rest}",
                self.key_name
            )),
            span: syn::spanned::Spanned::span(&self.key_ty),
        }
    }

    /// `plan::State::JoinBuffers { .. }`.
    pub fn plan_state(&self, rt: &TokenStream) -> TokenStream {
        let (l, r, k) = (
            self.left.0.to_string(),
            self.right.0.to_string(),
            self.key_name.to_string(),
        );
        quote!(#rt::plan::State::JoinBuffers { left: #l, right: #r, key: #k })
    }

    /// The join's state, row type and late variants; `windowed` rows carry their window.
    pub fn items(
        &self,
        s: &StagePlan,
        cx: &Cx,
        state: TokenStream,
        scratch: TokenStream,
        windowed: bool,
    ) -> StageItems {
        let (serde, serde_path) = (&cx.serde, cx.serde_path);
        let (lname, rname) = self.field_names();
        let (kt, kn, lt, rt_) = (&self.key_ty, &self.key_name, &self.left.1, &self.right.1);
        let joined = &s.names.joined;
        let doc = format!("A pair matched by stage `{}`.", s.name);
        let window = windowed.then(|| quote!(pub window_start: i64, pub window_end: i64,));
        let (lv, rv) = self.late_variants(s);
        StageItems {
            state,
            state_doc: "Buffered events of both inputs.",
            blame: Span::call_site(),
            items: vec![quote! {
                #[doc = #doc]
                #[derive(Clone, Debug, PartialEq, #serde::Serialize, #serde::Deserialize)]
                #[serde(crate = #serde_path)]
                #[allow(missing_docs)]
                pub struct #joined { pub #kn: #kt, #window pub #lname: #lt, pub #rname: #rt_ }
            }],
            late: vec![(lv, lt.to_token_stream()), (rv, rt_.to_token_stream())],
            scratch: Some(scratch),
        }
    }

    /// `fn __push_stage_left<C>(&mut self, __v: &L, __ts: i64, out: &mut C)` (or right).
    pub fn push_signature(&self, s: &StagePlan, cx: &Cx, side: Side) -> TokenStream {
        let (rt, module) = (&cx.rt, &s.names.module);
        let name = s.names.push_for(side);
        let ty = if side == Side::Left {
            &self.left.1
        } else {
            &self.right.1
        };
        quote!(fn #name<C: #rt::Collector<#module::Output>>(&mut self, __v: &#ty, __ts: i64, out: &mut C))
    }
}

impl Stateful for WindowJoin {
    fn plan_data(&self, rt: &TokenStream) -> Vec<TokenStream> {
        let w = self.window.plan_data(rt);
        vec![self.sides.plan_data(rt, "Join", quote!(window: #w))]
    }

    fn plan_state(&self, s: &StagePlan, cx: &Cx) -> TokenStream {
        let rt = &cx.rt;
        let Some(a) = self.arrival(s, cx) else {
            return self.sides.plan_state(rt);
        };
        let (l, r, k, reader) = (
            self.sides.left.0.to_string(),
            self.sides.right.0.to_string(),
            self.sides.key_name.to_string(),
            &a.reader,
        );
        let cols = a.columns.iter().map(|c| {
            let (n, f, t) = (&c.name, &c.func, &c.ty);
            quote!(#rt::plan::Column { name: #n, func: #f, ty: #t })
        });
        quote!(#rt::plan::State::JoinFolds { left: #l, right: #r, key: #k, reader: #reader, columns: &[#(#cols),*] })
    }

    fn layout(&self, s: &StagePlan, cx: &Cx) -> Vec<crate::lock::layout::Part> {
        let mut parts = vec![self.sides.layout("join", ""), self.window.layout()];
        // Folding at arrival keeps the reader's accumulator instead of the events.
        if let Some(a) = self.arrival(s, cx) {
            let cols: Vec<String> = a.columns.iter().map(|c| c.text()).collect();
            parts.push(crate::lock::layout::Part::Other {
                text: format!("folded {}", cols.join(", ")),
                span: syn::spanned::Spanned::span(&self.sides.key_ty),
            });
        }
        parts
    }

    fn right_input(&self) -> Option<&Ident> {
        Some(&self.sides.right.0)
    }

    fn refuses_grouping(&self, op: &Ident) -> Option<String> {
        Some(super::join::refuses_grouping(op))
    }

    fn takes_owned(&self, s: &StagePlan, cx: &Cx) -> bool {
        // Folding at arrival reads the events: nothing to move in.
        self.arrival(s, cx).is_none()
    }

    fn items(&self, s: &StagePlan, cx: &Cx) -> StageItems {
        let rt = &cx.rt;
        let (kt, lt, rt_) = (&self.sides.key_ty, &self.sides.left.1, &self.sides.right.1);
        if let Some(a) = self.arrival(s, cx) {
            let acc = &a.acc;
            let folds = quote!(#rt::join::JoinFolds<#acc>);
            let state = quote!(#rt::window::Windows<#kt, #folds>);
            let scratch = quote!(::std::vec::Vec<#rt::window::Fired<#kt, #folds>>);
            let mut items = self.sides.items(s, cx, state, scratch, true);
            items.state_doc = "Per key and window: each input's event count and the reader's columns folded from them.";
            return items;
        }
        let state = quote!(#rt::join::WindowJoin<#kt, #lt, #rt_>);
        let scratch = quote!(::std::vec::Vec<#rt::join::JoinFired<#kt, #lt, #rt_>>);
        self.sides.items(s, cx, state, scratch, true)
    }

    fn code(&self, s: &StagePlan, cx: &Cx, tail: TokenStream) -> StageCode {
        let c = Consts::new(&s.names, &self.window);
        let (f, scratch, fire) = (&s.names.field, &s.names.scratch, &s.names.fire);
        let (size, lateness) = (&c.size, &c.lateness);
        let fire_if = quote!(if !self.#scratch.is_empty() { self.#fire(out); });
        let mut methods = Vec::new();
        if let Some((a, after)) = self.arrival_fold(s, cx) {
            for side in [Side::Left, Side::Right] {
                methods.push(self.folding_push(s, cx, &c, side, &a));
            }
            methods.push(self.folding_fire(s, cx, &a, after));
            // Only keys with events on both sides go on (before the closed rows' sort).
            let rt = &cx.rt;
            let close = |wm: TokenStream| {
                quote! {
                    if self.#f.state.set_watermark(#wm) {
                        while self.#f.state.close_next_where(#size, #lateness, true, #rt::join::JoinFolds::has_pairs, &mut self.#scratch) {}
                    }
                    #fire_if
                }
            };
            return StageCode {
                methods,
                advance: close(quote!(wm)),
                flush: close(quote!(self.#f.state.flush_watermark(#size, #lateness))),
                consts: c.items,
            };
        }
        for side in [Side::Left, Side::Right] {
            methods.push(self.owned_push(s, cx, &c, side));
            let (sig, owned) = (
                self.sides.push_signature(s, cx, side),
                s.names.push_owned(side),
            );
            // The by-value push moves the event into the buffers (a late event comes
            // back for the late output); the by-reference one clones it once.
            methods.push(quote! {
                #[inline(always)]
                #sig { self.#owned(::core::clone::Clone::clone(__v), __ts, out) }
            });
        }
        methods.push(self.fire(s, cx, tail));
        StageCode {
            methods,
            advance: quote! { self.#f.state.advance(wm, #size, #lateness, &mut self.#scratch); #fire_if },
            flush: quote! { self.#f.state.flush(#size, #lateness, &mut self.#scratch); #fire_if },
            consts: c.items,
        }
    }
}

impl WindowJoin {
    /// How its only reader folds events as they arrive, if it can (see [`pair_fold`]).
    ///
    /// [`pair_fold`]: super::pair_fold
    fn arrival(&self, s: &StagePlan, cx: &Cx) -> Option<super::pair_fold::Arrival> {
        Some(self.arrival_fold(s, cx)?.0)
    }

    /// [`arrival`](Self::arrival), with what runs after the closed groups are handed on.
    fn arrival_fold(
        &self,
        s: &StagePlan,
        cx: &Cx,
    ) -> Option<(super::pair_fold::Arrival, TokenStream)> {
        let fold = super::pair_fold::child_fold(s, cx, &self.sides, &self.window)?;
        Some((fold.arrival?, fold.after))
    }

    /// The push of one input when folding at arrival: count the event and fold it into
    /// its key's accumulator in its window, or report it late (a clone: it is borrowed).
    fn folding_push(
        &self,
        s: &StagePlan,
        cx: &Cx,
        c: &Consts,
        side: Side,
        a: &super::pair_fold::Arrival,
    ) -> TokenStream {
        let (rt, module, f) = (&cx.rt, &s.names.module, &s.names.field);
        let kt = &self.sides.key_ty;
        let (lv, rv) = self.sides.late_variants(s);
        let (ty, kf, count, late, folds) = match side {
            Side::Right => (
                &self.sides.right.1,
                &self.sides.right_fn,
                quote!(right),
                rv,
                &a.sides[1],
            ),
            _ => (
                &self.sides.left.1,
                &self.sides.left_fn,
                quote!(left),
                lv,
                &a.sides[0],
            ),
        };
        let kf = closure::annotate(kf, ty);
        let sig = self.sides.push_signature(s, cx, side);
        let (size, slide, lateness) = (&c.size, &c.slide, &c.lateness);
        quote! {
            #[inline(always)]
            #[allow(unused_variables)]
            #sig {
                let __k: #kt = #kf(__v);
                match self.#f.state.acc_for(__ts, &__k, #size, #lateness) {
                    ::core::option::Option::Some(__folds) => {
                        __folds.#count += 1;
                        let __acc = &mut __folds.acc;
                        let __e = __v;
                        #folds
                    }
                    ::core::option::Option::None => {
                        let __why = #rt::window::LateReason::windowed(__ts, #size, #slide);
                        let __late = ::core::clone::Clone::clone(__v);
                        out.collect(#module::Output::Late(#module::Late::#late(__late, __why)));
                    }
                }
            }
        }
    }

    /// The method handing the reader the groups of closed windows folded at arrival (those
    /// with events on both sides, in (end, key) order).
    fn folding_fire(
        &self,
        s: &StagePlan,
        cx: &Cx,
        a: &super::pair_fold::Arrival,
        after: TokenStream,
    ) -> TokenStream {
        let (rt, module) = (&cx.rt, &s.names.module);
        let (fire, scratch) = (&s.names.fire, &s.names.scratch);
        let close = &a.close;
        quote! {
            #[allow(unused_variables)]
            fn #fire<C: #rt::Collector<#module::Output>>(&mut self, out: &mut C) {
                let mut __fired = ::core::mem::take(&mut self.#scratch);
                for __f in __fired.drain(..) {
                    let #rt::window::Fired { start: __start, end: __end, key: __key, acc: __folds } = __f;
                    let __kr = &__key;
                    #close
                }
                self.#scratch = __fired;
                #after
            }
        }
    }

    /// The by-value push of one input: buffer the event, or report it late.
    fn owned_push(&self, s: &StagePlan, cx: &Cx, c: &Consts, side: Side) -> TokenStream {
        let (rt, module, f) = (&cx.rt, &s.names.module, &s.names.field);
        let kt = &self.sides.key_ty;
        let (lv, rv) = self.sides.late_variants(s);
        let (ty, kf, add, late) = match side {
            Side::Right => (
                &self.sides.right.1,
                &self.sides.right_fn,
                quote!(add_right_or_late),
                rv,
            ),
            _ => (
                &self.sides.left.1,
                &self.sides.left_fn,
                quote!(add_left_or_late),
                lv,
            ),
        };
        let kf = closure::annotate(kf, ty);
        let name = s.names.push_owned(side);
        let (size, slide, lateness) = (&c.size, &c.slide, &c.lateness);
        quote! {
            #[inline(always)]
            #[allow(unused_variables)]
            fn #name<C: #rt::Collector<#module::Output>>(&mut self, __v: #ty, __ts: i64, out: &mut C) {
                let __k: #kt = #kf(&__v);
                if let ::core::option::Option::Some(__late) = self.#f.state.#add(__ts, __k, __v, #size, #slide, #lateness) {
                    let __why = #rt::window::LateReason::windowed(__ts, #size, #slide);
                    out.collect(#module::Output::Late(#module::Late::#late(__late, __why)));
                }
            }
        }
    }

    /// The method sending the pairs of closed windows on.
    fn fire(&self, s: &StagePlan, cx: &Cx, tail: TokenStream) -> TokenStream {
        let (rt, module) = (&cx.rt, &s.names.module);
        let (f, fire, scratch, joined) = (
            &s.names.field,
            &s.names.fire,
            &s.names.scratch,
            &s.names.joined,
        );
        let kn = &self.sides.key_name;
        let (lname, rname) = self.sides.field_names();
        let fold = super::pair_fold::child_fold(s, cx, &self.sides, &self.window);
        let after = fold.as_ref().map(|f| f.after.clone());
        let fused = fold.map(|super::pair_fold::Fold { fold, .. }| {
            quote! {
                let __folded = { let __kr = &__key; #fold };
                if __folded {
                    self.#f.state.recycle(__left, __right);
                    continue;
                }
            }
        });
        quote! {
            #[allow(unused_variables)]
            fn #fire<C: #rt::Collector<#module::Output>>(&mut self, out: &mut C) {
                let mut __fired = ::core::mem::take(&mut self.#scratch);
                let mut __done = self.#f.state.spare_right();
                for __f in __fired.drain(..) {
                    let #rt::join::JoinFired { start: __start, end: __end, key: mut __key, left: mut __left, right: mut __right } = __f;
                    let __ts = __end - 1;
                    #fused
                    let __n = __left.len();
                    // Each pair's row is built by moving the buffered events in and
                    // back out (no clones); rights wait in `__done` for the next left.
                    for (__i, mut __l) in __left.drain(..).enumerate() {
                        let __again = __i + 1 < __n;
                        for __r in __right.drain(..) {
                            let __row = #module::#joined {
                                #kn: __key,
                                window_start: __start,
                                window_end: __end,
                                #lname: __l,
                                #rname: __r,
                            };
                            {
                                let __v = &__row;
                                #tail
                            }
                            let #module::#joined { #kn: __k2, #lname: __l2, #rname: __r2, .. } = __row;
                            __key = __k2;
                            __l = __l2;
                            if __again {
                                __done.push(__r2);
                            }
                        }
                        ::core::mem::swap(&mut __right, &mut __done);
                    }
                    self.#f.state.recycle(__left, __right);
                }
                self.#f.state.recycle(::std::vec::Vec::new(), __done);
                self.#scratch = __fired;
                #after
            }
        }
    }
}

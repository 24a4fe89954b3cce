//! `interval_join(right, key: K = |l| .., |r| .., lower = 5s, upper = 10s)`: pairs events
//! of two inputs with equal keys whose times are close (`r.ts` within
//! `[l.ts - lower, l.ts + upper]`), as soon as both are there.

use proc_macro2::TokenStream;
use quote::quote;
use syn::Ident;

use super::join::{JoinArgs, Sides};
use super::{OpDef, Operator, StageCode, StageItems, Stateful};
use crate::check::stage::StageBuilder;
use crate::closure;
use crate::diag::Known;
use crate::expand::{ms_literal, Cx};
use crate::names::Side;
use crate::plan::StagePlan;

/// The table row.
pub const OP: OpDef = OpDef {
    name: Known {
        name: "interval_join",
        aka: &["between_join", "time_join"],
    },
    parse: |input| Ok(Box::new(IntervalJoinDef(input.parse()?))),
};

struct IntervalJoinDef(JoinArgs);

/// The planned interval join.
struct IntervalJoin {
    sides: Sides,
    /// ms before the left event.
    lower: i64,
    /// ms after the left event.
    upper: i64,
}

impl Operator for IntervalJoinDef {
    fn plan(&self, at: &Ident, b: &mut StageBuilder) {
        let Some(sides) = self.0.check(at, b) else {
            b.join = super::join::Waiting::Failed;
            return;
        };
        let (Some(lower), Some(upper)) = (&self.0.lower, &self.0.upper) else {
            b.error(at.span(), "`interval_join` needs the interval: `lower = 5s, upper = 10s` (right.ts within [left.ts - lower, left.ts + upper])");
            b.join = super::join::Waiting::Failed;
            return;
        };
        let ty = sides.joined_type(b);
        let part = IntervalJoin {
            sides,
            lower: lower.ms,
            upper: upper.ms,
        };
        b.set_stateful(Box::new(part), ty);
    }
}

impl Stateful for IntervalJoin {
    fn plan_data(&self, rt: &TokenStream) -> Vec<TokenStream> {
        let (l, u) = (ms_literal(self.lower), ms_literal(self.upper));
        vec![self
            .sides
            .plan_data(rt, "IntervalJoin", quote!(lower_ms: #l, upper_ms: #u))]
    }

    fn plan_state(&self, _: &StagePlan, cx: &Cx) -> TokenStream {
        self.sides.plan_state(&cx.rt)
    }

    fn layout(&self, _: &StagePlan, _: &Cx) -> Vec<crate::lock::layout::Part> {
        let rest = format!(", lower {}ms, upper {}ms", self.lower, self.upper);
        vec![self.sides.layout("interval_join", &rest)]
    }

    fn right_input(&self) -> Option<&Ident> {
        Some(&self.sides.right.0)
    }

    fn refuses_grouping(&self, op: &Ident) -> Option<String> {
        Some(super::join::refuses_grouping(op))
    }

    fn items(&self, s: &StagePlan, cx: &Cx) -> StageItems {
        let rt = &cx.rt;
        let (kt, lt, rt_) = (&self.sides.key_ty, &self.sides.left.1, &self.sides.right.1);
        // Its buffers' entries aligned as `line_aligned` does a keyed table's.
        let align =
            quote!(#rt::state::Aligned<{ #rt::join::interval_line_align::<#kt, #lt, #rt_>() }>);
        let state = quote!(#rt::join::IntervalJoin<#kt, #lt, #rt_, #align>);
        let scratch = quote!(::std::vec::Vec<#rt::join::Pair<#kt, #lt, #rt_>>);
        self.sides.items(s, cx, state, scratch, false)
    }

    fn code(&self, s: &StagePlan, cx: &Cx, tail: TokenStream) -> StageCode {
        let names = &s.names;
        let (lower, upper) = (names.constant("LOWER_MS"), names.constant("UPPER_MS"));
        let (lv, uv) = (ms_literal(self.lower), ms_literal(self.upper));
        let (ldoc, udoc) = (
            format!(
                "How long before a left event a right one of stage `{}` pairs with it, ms.",
                s.name
            ),
            format!(
                "How long after a left event a right one of stage `{}` pairs with it, ms.",
                s.name
            ),
        );
        let f = &names.field;
        StageCode {
            consts: vec![
                quote!(#[doc = #ldoc] const #lower: i64 = #lv;),
                quote!(#[doc = #udoc] const #upper: i64 = #uv;),
            ],
            methods: [Side::Left, Side::Right]
                .into_iter()
                .map(|side| self.push(s, cx, side, &tail))
                .collect(),
            advance: quote!(self.#f.state.advance(wm, Self::#lower, Self::#upper);),
            flush: TokenStream::new(),
        }
    }
}

impl IntervalJoin {
    /// The push method of one input: pair the event with the other input's buffered
    /// events and send the pairs on, or report it late.
    fn push(&self, s: &StagePlan, cx: &Cx, side: Side, tail: &TokenStream) -> TokenStream {
        let (rt, names) = (&cx.rt, &s.names);
        let (module, f, scratch, joined) =
            (&names.module, &names.field, &names.scratch, &names.joined);
        let (lower, upper) = (names.constant("LOWER_MS"), names.constant("UPPER_MS"));
        let (kt, kn) = (&self.sides.key_ty, &self.sides.key_name);
        let (lname, rname) = self.sides.field_names();
        let (lv, rv) = self.sides.late_variants(s);
        let (kf, add, late) = match side {
            Side::Right => (
                closure::annotate(&self.sides.right_fn, &self.sides.right.1),
                quote!(add_right),
                rv,
            ),
            _ => (
                closure::annotate(&self.sides.left_fn, &self.sides.left.1),
                quote!(add_left),
                lv,
            ),
        };
        let late = cx.late(&late, quote!(#rt::window::LateReason::Closed));
        let sig = self.sides.push_signature(s, cx, side);
        quote! {
            #[inline(always)]
            #[allow(unused_variables)]
            #sig {
                let __k: #kt = #kf(__v);
                let mut __pairs = ::core::mem::take(&mut self.#scratch);
                if !self.#f.state.#add(__ts, __k, ::core::clone::Clone::clone(__v), Self::#lower, Self::#upper, &mut __pairs) { #late }
                for __p in __pairs.drain(..) {
                    let __row = #module::#joined { #kn: __p.key, #lname: __p.left, #rname: __p.right };
                    let __ts = __p.ts;
                    let __v = &__row;
                    #tail
                }
                self.#scratch = __pairs;
            }
        }
    }
}

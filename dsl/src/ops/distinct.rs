//! `distinct(name: Type = |e| key)`: passes the first event of each key and drops the
//! others. Its state is the set of keys seen (`SeenKeys`), one entry per distinct key,
//! never evicted; it is not windowed (the first event ever, not per window).

use proc_macro2::TokenStream;
use quote::quote;
use syn::spanned::Spanned;
use syn::{Ident, Type};

use super::key_by::Key;
use super::{OpDef, Operator, StageCode, StageItems, Stateful};
use crate::check::stage::StageBuilder;
use crate::diag::Known;
use crate::expand::plan_data::type_text;
use crate::expand::Cx;
use crate::parse::Field;
use crate::plan::StagePlan;

/// The table row.
pub const OP: OpDef = OpDef {
    name: Known {
        name: "distinct",
        aka: &["dedup", "dedupe", "unique", "distinct_by"],
    },
    parse: |input| Ok(Box::new(DistinctDef(input.parse()?))),
};

struct DistinctDef(Field);

/// The planned `distinct`.
struct Distinct {
    key: Key,
    /// The type of the events (passed on unchanged).
    event_ty: Type,
}

impl Operator for DistinctDef {
    fn plan(&self, at: &Ident, b: &mut StageBuilder) {
        if !b.stateless_allowed(at) {
            return;
        }
        if b.stateful.is_some() {
            b.error(at.span(), "a stage keeps one kind of state (an `aggregate`, a join or a `distinct`); start a new stage that reads this one");
            return;
        }
        let example = "distinct(customer: String = |o| o.customer.clone())";
        let Some(key) = Key::from_field(&self.0, "distinct", example, b.errs) else {
            return;
        };
        let ty = b.ty.clone();
        b.set_stateful(
            Box::new(Distinct {
                key,
                event_ty: ty.clone(),
            }),
            ty,
        );
    }
}

impl Stateful for Distinct {
    fn plan_data(&self, rt: &TokenStream) -> Vec<TokenStream> {
        let (key, kt) = (self.key.name.to_string(), type_text(&self.key.ty));
        vec![quote!(#rt::plan::Op::Distinct { key: #key, key_type: #kt })]
    }

    fn plan_state(&self, _: &StagePlan, cx: &Cx) -> TokenStream {
        let (rt, key) = (&cx.rt, self.key.name.to_string());
        quote!(#rt::plan::State::SeenKeys { key: #key })
    }

    fn layout(&self, _: &StagePlan, _: &Cx) -> Vec<crate::lock::layout::Part> {
        vec![crate::lock::layout::Part::Distinct(self.key.typed())]
    }

    fn refuses_grouping(&self, op: &Ident) -> Option<String> {
        Some(format!("`{op}` cannot follow `distinct` in the same stage: `distinct` is not windowed (it passes the first event of each key ever); to group what it passes, start a new stage that reads this one"))
    }

    fn items(&self, _: &StagePlan, cx: &Cx) -> StageItems {
        let (rt, kt) = (&cx.rt, &self.key.ty);
        StageItems {
            state: quote!(#rt::distinct::SeenKeys<#kt>),
            state_doc: "The keys seen so far.",
            blame: kt.span(),
            items: Vec::new(),
            late: Vec::new(),
            scratch: None,
        }
    }

    fn code(&self, s: &StagePlan, cx: &Cx, tail: TokenStream) -> StageCode {
        let f = &s.names.field;
        let key = self.key.compute(&self.event_ty);
        let body = quote! {
            #key
            if self.#f.state.insert(__k) { #tail }
        };
        StageCode {
            methods: vec![cx.push_method(s, body)],
            ..StageCode::default()
        }
    }
}

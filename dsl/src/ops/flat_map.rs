//! `flat_map(|e| -> Vec<T> { .. })`: one event to any number of `T`s.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{Expr, Ident, Type};

use super::{map, OpDef, Operator, Stateless};
use crate::check::stage::StageBuilder;
use crate::closure;
use crate::diag::Known;
use crate::expand::plan_data::type_text;

/// The table row.
pub const OP: OpDef = OpDef {
    name: Known {
        name: "flat_map",
        aka: &["flatten", "explode"],
    },
    parse: |input| Ok(Box::new(FlatMap(input.parse()?))),
};

struct FlatMap(Expr);

impl Operator for FlatMap {
    fn plan(&self, at: &Ident, b: &mut StageBuilder) {
        if !b.stateless_allowed(at) {
            return;
        }
        let Some(out) = map::output_type(&self.0, at, "flat_map(|o| -> Vec<Item> { ... })", b)
        else {
            return;
        };
        // The closure returns a collection; a declared stage type is already the item's.
        let item: Type = if closure::output(&self.0).is_some() {
            syn::parse_quote!(<#out as ::core::iter::IntoIterator>::Item)
        } else {
            out
        };
        b.push_stateless(Box::new(Planned {
            f: self.0.clone(),
            ty: b.ty.clone(),
            item: item.clone(),
        }));
        b.ty = item;
    }

    fn maps(&self) -> bool {
        true
    }
}

struct Planned {
    f: Expr,
    ty: Type,
    item: Type,
}

impl Stateless for Planned {
    fn plan_data(&self, rt: &TokenStream) -> TokenStream {
        let t = type_text(&self.item);
        quote!(#rt::plan::Op::FlatMap { output_type: #t })
    }

    fn wrap(&self, inner: TokenStream) -> TokenStream {
        let (f, item) = (closure::annotate(&self.f, &self.ty), &self.item);
        quote!(for __m in #f(__v) { let __m: #item = __m; let __v = &__m; #inner })
    }
}

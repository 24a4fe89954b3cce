//! `filter(|e| bool)`: keeps the events where the predicate holds.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::{Expr, Ident, Type};

use super::{OpDef, Operator, Stateless};
use crate::check::stage::StageBuilder;
use crate::closure;
use crate::diag::Known;

/// The table row.
pub const OP: OpDef = OpDef {
    name: Known {
        name: "filter",
        aka: &["where"],
    },
    parse: |input| Ok(Box::new(Filter(input.parse()?))),
};

struct Filter(Expr);

impl Operator for Filter {
    fn plan(&self, at: &Ident, b: &mut StageBuilder) {
        if !b.stateless_allowed(at) {
            return;
        }
        closure::check_one_arg(&self.0, "filter", "filter(|o| o.amount > 0.0)", b.errs);
        let bool_ty = quote_spanned!(at.span()=> bool);
        b.push_stateless(Box::new(Planned {
            f: closure::with_output(&self.0, &bool_ty),
            ty: b.ty.clone(),
        }));
    }
}

struct Planned {
    f: Expr,
    ty: Type,
}

impl Stateless for Planned {
    fn plan_data(&self, rt: &TokenStream) -> TokenStream {
        quote!(#rt::plan::Op::Filter)
    }

    fn wrap(&self, inner: TokenStream) -> TokenStream {
        let f = closure::annotate(&self.f, &self.ty);
        quote!(if #f(__v) { #inner })
    }
}

//! `map(|e| -> T { .. })`: one event to one `T`.

use proc_macro2::TokenStream;
use quote::{quote, ToTokens};
use syn::{Expr, Ident, Type};

use super::{OpDef, Operator, Stateless};
use crate::check::stage::StageBuilder;
use crate::closure;
use crate::diag::Known;
use crate::expand::plan_data::type_text;

/// The table row.
pub const OP: OpDef = OpDef {
    name: Known {
        name: "map",
        aka: &["select"],
    },
    parse: |input| Ok(Box::new(Map(input.parse()?))),
};

struct Map(Expr);

impl Operator for Map {
    fn plan(&self, at: &Ident, b: &mut StageBuilder) {
        if !b.stateless_allowed(at) {
            return;
        }
        let Some(out) = output_type(&self.0, at, "map(|o| -> Enriched { ... })", b) else {
            return;
        };
        b.push_stateless(Box::new(Planned {
            f: closure::with_output(&self.0, &out.to_token_stream()),
            ty: b.ty.clone(),
            out: out.clone(),
        }));
        b.ty = out;
    }

    fn maps(&self) -> bool {
        true
    }
}

/// What `map` or `flat_map` (`at`) produces: the closure's return type or, for the
/// stage's last operator, the stage's declared type. Reported if neither is written.
pub fn output_type(f: &Expr, at: &Ident, example: &str, b: &mut StageBuilder) -> Option<Type> {
    closure::check_one_arg(
        f,
        &at.to_string(),
        "map(|o| -> Big { Big::from(o) })",
        b.errs,
    );
    let declared = if b.is_last() { b.def.ty.clone() } else { None };
    let out = closure::output(f).or(declared);
    if out.is_none() {
        let stage = &b.def.name;
        b.error(at.span(), format!("`{at}` must say what it produces: write the closure's return type, e.g. `{example}`, or declare the stage's type (`{stage}: Type = ...`)"));
    }
    out
}

struct Planned {
    f: Expr,
    ty: Type,
    out: Type,
}

impl Stateless for Planned {
    fn plan_data(&self, rt: &TokenStream) -> TokenStream {
        let t = type_text(&self.out);
        quote!(#rt::plan::Op::Map { output_type: #t })
    }

    fn wrap(&self, inner: TokenStream) -> TokenStream {
        let (f, out) = (closure::annotate(&self.f, &self.ty), &self.out);
        quote!({ let __m: #out = #f(__v); let __v = &__m; #inner })
    }
}

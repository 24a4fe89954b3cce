//! The module's `Input` (several sources), `Output` (one variant per sink, plus late
//! events) and `Late` (one variant per input that can be late) enums.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{Ident, Type};

use super::Cx;
use crate::names;

/// `Input`: an event of one of several sources (`{"orders": {...}}` in JSON).
pub fn input_enum(cx: &Cx) -> TokenStream {
    let (serde, serde_path) = (&cx.serde, cx.serde_path);
    let sources = &cx.plan.sources;
    let vars: Vec<Ident> = sources.iter().map(|s| names::variant(&s.name)).collect();
    let names: Vec<String> = sources.iter().map(|s| s.name.to_string()).collect();
    let tys: Vec<&Type> = sources.iter().map(|s| &s.ty).collect();
    quote! {
        /// An event of one of the sources: `{"orders": {...}}` in JSON.
        #[derive(Clone, Debug, PartialEq, #serde::Serialize, #serde::Deserialize)]
        #[serde(crate = #serde_path)]
        #[allow(missing_docs)]
        pub enum Input { #( #[serde(rename = #names)] #vars(#tys), )* }
    }
}

/// A variant of `Output` or `Late`: the stream or stage it comes from.
pub struct Variant {
    /// Its name.
    pub name: Ident,
    /// What it holds.
    pub ty: TokenStream,
    /// The sink or stage name.
    pub stream: String,
}

/// `Output` and `Late`, serialized and told apart for the runner.
pub fn output_enums(cx: &Cx, sinks: &[Variant], late: &[Variant]) -> TokenStream {
    let (rt, serde) = (&cx.rt, &cx.serde);
    let out_doc = format!(
        "Outputs of `{}`: one variant per sink, plus late events.",
        cx.plan.name
    );
    let (out_vars, out_tys, out_names) = split(sinks);
    let (late_vars, late_tys, late_stages) = split(late);
    let late_match = if late.is_empty() {
        quote!(match *self {})
    } else {
        quote!(match self { #(Late::#late_vars(e, r) => #serde::Serialize::serialize(&#rt::pipeline::LateRecord { stage: #late_stages, event: e, reason: *r }, s),)* })
    };
    quote! {
        #[doc = #out_doc]
        #[derive(Clone, Debug, PartialEq)]
        #[allow(missing_docs)]
        pub enum Output { #(#out_vars(#out_tys),)* Late(Late) }

        /// Events that arrived after their window closed, by stage.
        #[derive(Clone, Debug, PartialEq)]
        #[allow(missing_docs)]
        pub enum Late { #(#late_vars(#late_tys, #rt::window::LateReason),)* }

        impl #serde::Serialize for Output {
            fn serialize<S: #serde::Serializer>(&self, s: S) -> ::core::result::Result<S::Ok, S::Error> {
                match self { #(Output::#out_vars(x) => #serde::Serialize::serialize(x, s),)* Output::Late(l) => #serde::Serialize::serialize(l, s) }
            }
        }
        impl #serde::Serialize for Late {
            fn serialize<S: #serde::Serializer>(&self, s: S) -> ::core::result::Result<S::Ok, S::Error> {
                #late_match
            }
        }
        impl #rt::OutputRecord for Output {
            fn sink(&self) -> &'static str {
                match self { #(Output::#out_vars(_) => #out_names,)* Output::Late(_) => "late" }
            }
            fn is_late(&self) -> bool {
                matches!(self, Output::Late(_))
            }
        }
    }
}

fn split(vs: &[Variant]) -> (Vec<&Ident>, Vec<&TokenStream>, Vec<&str>) {
    (
        vs.iter().map(|v| &v.name).collect(),
        vs.iter().map(|v| &v.ty).collect(),
        vs.iter().map(|v| v.stream.as_str()).collect(),
    )
}

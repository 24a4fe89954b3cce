//! `#[derive(Columns)]`: makes a struct's fields SQL columns. It implements
//! `Columns` (the field names) and defines the `macro_rules!` through which `pipeline!`
//! learns the fields' types (see the [module](super) doc).

use proc_macro2::{Group, Ident, Span, TokenStream, TokenTree};
use quote::{format_ident, quote};
use syn::{Data, DeriveInput, Fields};

/// The macro the derive defines for `ty`.
pub fn macro_name(ty: &Ident) -> Ident {
    format_ident!("__simplestream_columns_{}", ty, span = ty.span())
}

/// Expands the derive.
pub fn derive(input: TokenStream) -> TokenStream {
    let input: DeriveInput = match syn::parse2(input) {
        Ok(i) => i,
        Err(e) => return e.to_compile_error(),
    };
    let name = &input.ident;
    let fields = match &input.data {
        Data::Struct(s) => match &s.fields {
            Fields::Named(f) => &f.named,
            _ => {
                return refuse(
                    name,
                    "`Columns` needs named fields: they are the SQL columns",
                )
            }
        },
        _ => {
            return refuse(
                name,
                "`Columns` is derived for structs: their fields are the SQL columns",
            )
        }
    };
    if !input.generics.params.is_empty() {
        return refuse(
            name,
            "`Columns` is derived for structs without generic parameters",
        );
    }
    let names: Vec<&Ident> = fields.iter().filter_map(|f| f.ident.as_ref()).collect();
    let texts = names.iter().map(|n| n.to_string());
    let tys = fields.iter().map(|f| &f.ty);
    let mac = macro_name(name);
    let rt = quote!(::simplestream::__rt);
    quote! {
        impl #rt::Columns for #name {
            const COLUMNS: &'static [&'static str] = &[#(#texts),*];
        }
        #[doc(hidden)]
        #[allow(unused_macros)]
        macro_rules! #mac {
            ($src:ident; $($rest:tt)*) => {
                ::simplestream::pipeline! { __columns $src { #(#names: #tys),* }; $($rest)* }
            };
        }
        #[doc(hidden)]
        #[allow(unused_imports)]
        pub(crate) use #mac;
    }
}

fn refuse(at: &Ident, msg: &str) -> TokenStream {
    syn::Error::new(at.span(), msg).to_compile_error()
}

/// `tokens` resolving names as `site` does, each still where it was written.
pub fn respan(tokens: TokenStream, site: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|t| match t {
            TokenTree::Group(g) => {
                let mut n = Group::new(g.delimiter(), respan(g.stream(), site));
                n.set_span(g.span().resolved_at(site));
                TokenTree::Group(n)
            }
            mut other => {
                other.set_span(other.span().resolved_at(site));
                other
            }
        })
        .collect()
}

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

/// `tokens` as if `site`, the user's own `pipeline!` call, had made them: tokens the
/// user wrote keep their place and resolve as `site` does; the others (made by the
/// second round, whose call site lies in the derive's macro, or given by the derive)
/// are placed at `site` too, as a direct call's expansion is.
pub fn respan(tokens: TokenStream, site: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|t| {
            let span = if written_in(t.span(), site) {
                t.span().resolved_at(site)
            } else {
                site
            };
            match t {
                TokenTree::Group(g) => {
                    let mut n = Group::new(g.delimiter(), respan(g.stream(), site));
                    n.set_span(span);
                    TokenTree::Group(n)
                }
                mut other => {
                    other.set_span(span);
                    other
                }
            }
        })
        .collect()
}

/// True if `span` lies inside `site` (in a macro expansion; false elsewhere).
fn written_in(span: Span, site: Span) -> bool {
    if !proc_macro::is_available() {
        return false;
    }
    let (s, site) = (span.unwrap(), site.unwrap());
    let at = |p: proc_macro::Span| (p.line(), p.column());
    s.file() == site.file() && at(site.start()) <= at(s.start()) && at(s.start()) <= at(site.end())
}

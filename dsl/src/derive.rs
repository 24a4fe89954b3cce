//! `#[derive(Checkpointable)]`: a layout hash from field names and field types' layouts.

use proc_macro2::TokenStream;
use quote::{quote, ToTokens};
use syn::{Data, DeriveInput, Fields};

fn fields_layout(fields: &Fields) -> Vec<TokenStream> {
    let rt = quote!(::simplestream::__rt);
    fields
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let name = f.ident.as_ref().map(|i| i.to_string()).unwrap_or_else(|| i.to_string());
            let ty = &f.ty;
            quote!(h = #rt::fingerprint::combine(h, #rt::fingerprint::combine(#rt::fingerprint::fnv1a(#name), <#ty as #rt::Checkpointable>::LAYOUT));)
        })
        .collect()
}

/// Expands the derive.
pub fn checkpointable(input: TokenStream) -> TokenStream {
    let input: DeriveInput = match syn::parse2(input) {
        Ok(i) => i,
        Err(e) => return e.to_compile_error(),
    };
    let rt = quote!(::simplestream::__rt);
    let name = &input.ident;
    let (impl_g, ty_g, where_g) = input.generics.split_for_impl();
    let parts: Vec<TokenStream> = match &input.data {
        Data::Struct(s) => fields_layout(&s.fields),
        Data::Enum(e) => e
            .variants
            .iter()
            .flat_map(|v| {
                let vname = v.ident.to_string();
                let mut out = vec![
                    quote!(h = #rt::fingerprint::combine(h, #rt::fingerprint::fnv1a(#vname));),
                ];
                out.extend(fields_layout(&v.fields));
                out
            })
            .collect(),
        Data::Union(u) => {
            return syn::Error::new(
                u.union_token.span,
                "`Checkpointable` cannot be derived for unions; use a struct or enum",
            )
            .to_compile_error()
        }
    };
    let type_name = name.to_token_stream().to_string();
    quote! {
        impl #impl_g #rt::Checkpointable for #name #ty_g #where_g {
            const LAYOUT: u64 = {
                let mut h = #rt::fingerprint::fnv1a(#type_name);
                #(#parts)*
                h
            };
        }
    }
}

//! A planned join as the DSL's windowed `join` or its `interval_join`.

use proc_macro2::TokenStream;
use quote::quote_spanned;
use simplestream_sqlplan::{Join, JoinKind};
use syn::Ident;

use super::schema::Schema;
use super::select::{duration_lit, read};
use super::text::SqlText;
use super::window;

/// The stage statement `name = left.join(right, ..)`.
pub fn lower(text: &SqlText, name: &Ident, j: &Join, sides: [&Schema; 2]) -> TokenStream {
    let sp = name.span();
    let [left, right] = sides;
    let (lk, rk) = (&left.cols[j.keys.0], &right.cols[j.keys.1]);
    let (l_in, r_in) = (Ident::new(&left.stream, sp), Ident::new(&right.stream, sp));
    let (kname, kty) = (Ident::new(&lk.name, sp), &lk.ty);
    let (lv, rv) = (read(&lk.name, &lk.ty, sp), read(&rk.name, &rk.ty, sp));
    let key = quote_spanned!(sp=> #kname: #kty = |__e| #lv, |__e| #rv);
    match j.kind {
        JoinKind::Window(w) => {
            let w = window::dsl(w, text.span(&j.on));
            quote_spanned!(sp=> #name = #l_in.join(#r_in, #key)#w;)
        }
        JoinKind::Interval { lower, upper } => {
            let (lower, upper) = (duration_lit(lower, sp), duration_lit(upper, sp));
            quote_spanned!(sp=> #name = #l_in.interval_join(#r_in, #key, lower = #lower, upper = #upper);)
        }
    }
}

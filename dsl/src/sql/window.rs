//! A planned window as the DSL's `.window(..)`.

use proc_macro2::{Span, TokenStream};
use quote::quote_spanned;
use simplestream_sqlplan::Win;

use super::select::duration_lit;

/// `.window(tumbling(300000ms))`, spanned at `sp`.
pub fn dsl(w: Win, sp: Span) -> TokenStream {
    match w {
        Win::Tumbling { size } => {
            let size = duration_lit(size, sp);
            quote_spanned!(sp=> .window(tumbling(#size)))
        }
        Win::Sliding { size, slide } => {
            let (slide, size) = (duration_lit(slide, sp), duration_lit(size, sp));
            quote_spanned!(sp=> .window(sliding(#size, #slide)))
        }
        Win::Session { gap } => {
            let gap = duration_lit(gap, sp);
            quote_spanned!(sp=> .window(session(#gap)))
        }
    }
}

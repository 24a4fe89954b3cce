//! The plan as data: the `const` `simplestream::plan::Plan` a pipeline carries, which
//! tools read and the fingerprint hashes. Each operator writes its own entries.

use proc_macro2::TokenStream;
use quote::{quote, ToTokens};
use syn::Type;

use super::Cx;
use crate::plan::StagePlan;

/// A type as the plan shows it: its tokens without spaces (`Vec<u8>`).
pub fn type_text(t: &Type) -> String {
    t.to_token_stream().to_string().replace(' ', "")
}

/// The `Plan { .. }` expression.
pub fn plan_tokens(cx: &Cx) -> TokenStream {
    let (plan, rt) = (cx.plan, &cx.rt);
    let name = plan.name.to_string();
    let sources = plan.sources.iter().map(|s| {
        let (n, ty, sink) = (s.name.to_string(), type_text(&s.ty), s.sink);
        let delay = super::ms_literal(s.max_delay_ms);
        quote!(#rt::plan::Source { name: #n, event_type: #ty, max_delay_ms: #delay, sink: #sink })
    });
    let stages = plan.stages.iter().map(|s| stage_tokens(s, cx));
    quote!(#rt::plan::Plan { name: #name, sources: &[#(#sources),*], stages: &[#(#stages),*] })
}

fn stage_tokens(s: &StagePlan, cx: &Cx) -> TokenStream {
    let rt = &cx.rt;
    let mut ops: Vec<TokenStream> = s.pre.iter().map(|o| o.plan_data(rt)).collect();
    if let Some(part) = &s.stateful {
        ops.extend(part.plan_data(rt));
    }
    ops.extend(s.post.iter().map(|o| o.plan_data(rt)));
    let state = match &s.stateful {
        Some(part) => part.plan_state(s, cx),
        None => quote!(#rt::plan::State::None),
    };
    let (name, input, out, sink) = (
        s.name.to_string(),
        s.input.to_string(),
        type_text(&s.out_ty),
        s.sink,
    );
    quote!(#rt::plan::Stage { name: #name, input: #input, ops: &[#(#ops),*], output_type: #out, sink: #sink, state: #state })
}

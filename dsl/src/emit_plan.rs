//! The plan as data: the `const` [`simplestream::plan::Plan`] a pipeline carries, which
//! tools read and the fingerprint hashes.

use crate::valid::{JoinKind, KeyedPlan, Plan, StagePlan, Stateless, WindowKind, WindowPlan};
use proc_macro2::TokenStream;
use quote::{quote, ToTokens};
use syn::Type;

/// A type as the plan shows it: its tokens without spaces (`Vec<u8>`).
pub fn type_text(t: &Type) -> String {
    t.to_token_stream().to_string().replace(' ', "")
}

/// The `Plan { .. }` expression.
pub fn plan_tokens(plan: &Plan, rt: &TokenStream) -> TokenStream {
    let name = plan.name.to_string();
    let sources = plan.sources.iter().map(|s| {
        let (n, ty, delay, sink) = (s.name.to_string(), type_text(&s.ty), s.max_delay_ms, s.sink);
        quote!(#rt::plan::Source { name: #n, event_type: #ty, max_delay_ms: #delay, sink: #sink })
    });
    let stages = plan.stages.iter().map(|s| stage_tokens(s, rt));
    quote!(#rt::plan::Plan { name: #name, sources: &[#(#sources),*], stages: &[#(#stages),*] })
}

fn stage_tokens(s: &StagePlan, rt: &TokenStream) -> TokenStream {
    let mut ops: Vec<TokenStream> = s.pre.iter().map(|o| stateless(o, rt)).collect();
    if let Some(j) = &s.join {
        let (right, key) = (j.right.to_string(), j.key_name.to_string());
        let (kt, lt, rtt) = (
            type_text(&j.key_ty),
            type_text(&s.input_ty),
            type_text(&j.right_ty),
        );
        ops.push(match &j.kind {
            JoinKind::Window(w) => {
                let w = window(w, rt);
                quote!(#rt::plan::Op::Join { right: #right, key: #key, key_type: #kt, left_type: #lt, right_type: #rtt, window: #w })
            }
            JoinKind::Interval { lower, upper } => {
                quote!(#rt::plan::Op::IntervalJoin { right: #right, key: #key, key_type: #kt, left_type: #lt, right_type: #rtt, lower_ms: #lower, upper_ms: #upper })
            }
        });
    }
    if let Some(k) = &s.keyed {
        ops.extend(keyed_ops(k, rt));
    }
    ops.extend(s.post.iter().map(|o| stateless(o, rt)));
    let state = state_tokens(s, rt);
    let (name, input, out, sink) = (
        s.name.to_string(),
        s.input.to_string(),
        type_text(&s.out_ty),
        s.sink,
    );
    quote!(#rt::plan::Stage { name: #name, input: #input, ops: &[#(#ops),*], output_type: #out, sink: #sink, state: #state })
}

fn keyed_ops(k: &KeyedPlan, rt: &TokenStream) -> Vec<TokenStream> {
    let mut ops = Vec::new();
    if !k.global {
        let (key, kt) = (k.key_name.to_string(), type_text(&k.key_ty));
        ops.push(quote!(#rt::plan::Op::KeyBy { key: #key, key_type: #kt }));
    }
    if let Some(w) = &k.window {
        let w = window(w, rt);
        ops.push(quote!(#rt::plan::Op::Window { window: #w }));
    }
    let cols = k.aggs.iter().map(|a| {
        let (n, f, t) = (a.name.to_string(), &a.func, type_text(&a.out_ty));
        quote!(#rt::plan::Column { name: #n, func: #f, ty: #t })
    });
    ops.push(quote!(#rt::plan::Op::Aggregate { columns: &[#(#cols),*] }));
    ops
}

fn state_tokens(s: &StagePlan, rt: &TokenStream) -> TokenStream {
    if let Some(j) = &s.join {
        let (l, r, k) = (
            s.input.to_string(),
            j.right.to_string(),
            j.key_name.to_string(),
        );
        return quote!(#rt::plan::State::JoinBuffers { left: #l, right: #r, key: #k });
    }
    let Some(k) = &s.keyed else {
        return quote!(#rt::plan::State::None);
    };
    let key = k.key_name.to_string();
    match &k.window {
        None => quote!(#rt::plan::State::PerKey { key: #key }),
        Some(w) => {
            let w = window(w, rt);
            let key = if k.global {
                quote!(::core::option::Option::None)
            } else {
                quote!(::core::option::Option::Some(#key))
            };
            quote!(#rt::plan::State::Windowed { key: #key, window: #w })
        }
    }
}

fn stateless(o: &Stateless, rt: &TokenStream) -> TokenStream {
    match o {
        Stateless::Filter { .. } => quote!(#rt::plan::Op::Filter),
        Stateless::Map { out, .. } => {
            let t = type_text(out);
            quote!(#rt::plan::Op::Map { output_type: #t })
        }
        Stateless::FlatMap { out, .. } => {
            let t = type_text(out);
            quote!(#rt::plan::Op::FlatMap { output_type: #t })
        }
    }
}

fn window(w: &WindowPlan, rt: &TokenStream) -> TokenStream {
    let l = w.lateness;
    match w.kind {
        WindowKind::Tumbling { size } => {
            quote!(#rt::plan::Window::Tumbling { size_ms: #size, lateness_ms: #l })
        }
        WindowKind::Sliding { size, slide } => {
            quote!(#rt::plan::Window::Sliding { size_ms: #size, slide_ms: #slide, lateness_ms: #l })
        }
        WindowKind::Session { gap } => {
            quote!(#rt::plan::Window::Session { gap_ms: #gap, lateness_ms: #l })
        }
    }
}

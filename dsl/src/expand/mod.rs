//! Code generation: a [`Plan`] becomes typed structs and a [`Pipeline`] impl.
//!
//! What comes out, for `pipeline OrderStats` with a keyed stage `per_5min`:
//! - module `order_stats` with `Per5minAcc` (accumulators), `Per5minRow` (results),
//!   `Per5min` (the stage's state, `Checkpointable`), `Output` and `Late`;
//! - struct `OrderStats` owning every stage, with the windows' durations as named
//!   constants and one `#[inline]` method per stage that moves an event on (see `flow.rs`).
//!
//! Each operator writes its own part (see [`crate::ops`]); this module assembles them.
//!
//! [`Pipeline`]: https://docs.rs/simplestream

mod flow;
pub mod migrate;
mod output;
pub mod plan_data;
mod state;

use proc_macro2::Span;
use proc_macro2::TokenStream;
use quote::{quote, ToTokens};
use syn::{Ident, LitInt};

use crate::names;
use crate::ops::{StageCode, StageItems, Stateless};
use crate::plan::{Plan, StagePlan};
use output::Variant;

/// What code generation needs everywhere: the plan and the paths generated code uses.
pub struct Cx<'a> {
    /// The plan.
    pub plan: &'a Plan,
    /// The runtime as generated code reaches it.
    pub rt: TokenStream,
    /// serde as generated code reaches it (users need no serde dependency of their own
    /// for the derives we emit)...
    pub serde: TokenStream,
    /// ...and as `#[serde(crate = ..)]` takes it.
    pub serde_path: &'static str,
}

impl<'a> Cx<'a> {
    /// The context of `plan`'s expansion.
    pub fn new(plan: &'a Plan) -> Self {
        Cx {
            plan,
            rt: quote!(::simplestream::__rt),
            serde: quote!(::simplestream::__rt::__private::serde),
            serde_path: "::simplestream::__rt::__private::serde",
        }
    }

    /// The push method of a one-input stage: its stateless operators, then `body`.
    pub fn push_method(&self, s: &StagePlan, body: TokenStream) -> TokenStream {
        let (rt, module, push, in_ty) = (&self.rt, &self.plan.module, &s.names.push, &s.input_ty);
        let body = wrap_all(&s.pre, body);
        quote! {
            #[inline(always)]
            #[allow(unused_variables)]
            fn #push<C: #rt::Collector<#module::Output>>(&mut self, __v: &#in_ty, __ts: i64, out: &mut C) { #body }
        }
    }

    /// The tail of stage `s` when its result is the owned local `__row` (see
    /// `flow::stage_tail_owned`), if it can take it by move.
    pub fn owned_tail(&self, s: &StagePlan) -> Option<TokenStream> {
        flow::stage_tail_owned(self, s)
    }

    /// Sends the event `__v` to the late output as `variant`, with `reason`.
    pub fn late(&self, variant: &Ident, reason: TokenStream) -> TokenStream {
        let module = &self.plan.module;
        quote!(out.collect(#module::Output::Late(#module::Late::#variant(::core::clone::Clone::clone(__v), #reason)));)
    }
}

pub use flow::takes_owned_key;

/// `inner` inside the stateless operators `ops`, the first one outermost.
pub fn wrap_all(ops: &[Box<dyn Stateless>], inner: TokenStream) -> TokenStream {
    ops.iter().rev().fold(inner, |code, op| op.wrap(code))
}

/// `300_000`: milliseconds as a reader would write them.
pub fn ms_literal(ms: i64) -> LitInt {
    let digits = ms.unsigned_abs().to_string();
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push('_');
        }
        grouped.push(c);
    }
    let sign = if ms < 0 { "-" } else { "" };
    LitInt::new(&format!("{sign}{grouped}"), Span::call_site())
}

/// A stage's generated parts.
struct Parts<'a> {
    s: &'a StagePlan,
    items: Option<StageItems>,
    code: StageCode,
}

fn stage_parts<'a>(s: &'a StagePlan, cx: &Cx) -> Parts<'a> {
    let tail = flow::stage_tail(cx, s);
    match &s.stateful {
        None => Parts {
            s,
            items: None,
            code: StageCode {
                methods: vec![cx.push_method(s, tail)],
                ..StageCode::default()
            },
        },
        Some(part) => Parts {
            s,
            items: Some(part.items(s, cx)),
            code: part.code(s, cx, wrap_all(&s.post, tail)),
        },
    }
}

/// Generates the whole expansion.
pub fn expand(plan: &Plan, source_text: &str) -> TokenStream {
    let cx = Cx::new(plan);
    let parts: Vec<Parts> = plan.stages.iter().map(|s| stage_parts(s, &cx)).collect();
    let module = module(&cx, &parts);
    let pipeline = pipeline_struct(&cx, &parts);
    let methods = pipeline_methods(&cx, &parts);
    let pipeline_impl = pipeline_impl(&cx, &parts, source_text);
    quote! { #module #pipeline #methods #pipeline_impl }
}

/// The module of generated types.
fn module(cx: &Cx, parts: &[Parts]) -> TokenStream {
    let plan = cx.plan;
    let (vis, module) = (&plan.vis, &plan.module);
    let mut items = Vec::new();
    let mut sinks: Vec<Variant> = plan
        .sources
        .iter()
        .filter(|s| s.sink)
        .map(|s| Variant {
            name: names::variant(&s.name),
            ty: s.ty.to_token_stream(),
            stream: s.name.to_string(),
        })
        .collect();
    let mut late = Vec::new();
    if plan.sources.len() > 1 {
        items.push(output::input_enum(cx));
    }
    for p in parts {
        if let Some(it) = &p.items {
            items.extend(it.items.iter().cloned());
            items.push(state::stage_struct(p.s, it, cx));
            let stage = p.s.name.to_string();
            late.extend(it.late.iter().map(|(name, ty)| Variant {
                name: name.clone(),
                ty: ty.clone(),
                stream: stage.clone(),
            }));
        }
        if p.s.sink {
            sinks.push(Variant {
                name: names::variant(&p.s.name),
                ty: p.s.out_ty.to_token_stream(),
                stream: p.s.name.to_string(),
            });
        }
    }
    items.push(output::output_enums(cx, &sinks, &late));
    let doc = format!("Pipeline `{}` (generated by `pipeline!`).", plan.name);
    quote! {
        #[doc = #doc]
        #[allow(clippy::all, missing_docs, non_camel_case_types, unused_imports)]
        #vis mod #module {
            use super::*;
            #(#items)*
        }
    }
}

/// The stages that keep state: field name and state type.
fn stateful<'a>(parts: &'a [Parts]) -> impl Iterator<Item = (&'a Ident, TokenStream)> {
    parts
        .iter()
        .filter(|p| p.items.is_some())
        .map(|p| (&p.s.name, p.s.names.path(&p.s.names.state)))
}

/// The pipeline struct: the clocks, each stateful stage, and scratch space (not state).
fn pipeline_struct(cx: &Cx, parts: &[Parts]) -> TokenStream {
    let plan = cx.plan;
    let (rt, attrs, vis, name) = (&cx.rt, &plan.attrs, &plan.vis, &plan.name);
    let (fields, tys): (Vec<_>, Vec<_>) = stateful(parts).unzip();
    let (scratch, scratch_tys) = scratch(parts);
    let n = plan.sources.len();
    let sources = (n > 1).then(|| quote!(__sources: [#rt::Clock; #n],));
    let pname = name.to_string();
    let names: Vec<String> = fields.iter().map(|f| f.to_string()).collect();
    let doc = format!("Pipeline `{pname}` (generated by `pipeline!`).");
    quote! {
        #[doc = #doc]
        #(#attrs)*
        #vis struct #name {
            __clock: #rt::Clock,
            #sources
            #( pub #fields: #tys, )*
            #( #scratch: #scratch_tys, )*
        }

        impl ::core::default::Default for #name {
            fn default() -> Self { <Self as #rt::Pipeline>::new() }
        }

        impl ::core::fmt::Debug for #name {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.debug_struct(#pname).field("clock", &self.__clock) #( .field(#names, &self.#fields) )* .finish()
            }
        }
    }
}

/// The scratch fields and their types.
fn scratch<'a>(parts: &'a [Parts]) -> (Vec<&'a Ident>, Vec<&'a TokenStream>) {
    parts
        .iter()
        .filter_map(|p| Some((&p.s.names.scratch, p.items.as_ref()?.scratch.as_ref()?)))
        .unzip()
}

/// The constants and the methods moving events through the stages.
fn pipeline_methods(cx: &Cx, parts: &[Parts]) -> TokenStream {
    let (rt, name, module) = (&cx.rt, &cx.plan.name, &cx.plan.module);
    let source_consts = flow::source_consts(cx);
    let consts = parts.iter().flat_map(|p| &p.code.consts);
    let sources = flow::source_pushes(cx);
    let methods = parts.iter().flat_map(|p| &p.code.methods);
    let advance = parts.iter().map(|p| &p.code.advance);
    // `dead_code`: an aggregate whose join folds events as they arrive keeps the push
    // method for pairs, which then has no caller.
    quote! {
        #[allow(clippy::all, clippy::pedantic, dead_code)]
        impl #name {
            #(#source_consts)*
            #(#consts)*

            #(#sources)*

            #(#methods)*

            #[inline]
            fn __advance<C: #rt::Collector<#module::Output>>(&mut self, out: &mut C) {
                let wm = self.__clock.watermark;
                #(#advance)*
            }
        }
    }
}

/// `Pipeline::prefetch` and `Pipeline::read_ahead`, for the stages whose state can be on
/// disk that read the only source directly (their key closures take its events); none:
/// the trait's no-ops.
fn prefetch_method(cx: &Cx, event_ty: &TokenStream) -> Option<TokenStream> {
    let [src] = cx.plan.sources.as_slice() else {
        return None;
    };
    let method = |name: &str| {
        let m = Ident::new(name, Span::call_site());
        let stages: Vec<TokenStream> = (cx.plan.stages.iter())
            .filter(|s| s.input == src.name && s.pre.is_empty())
            .filter_map(|s| s.stateful.as_ref()?.prefetch(s, &m))
            .collect();
        (!stages.is_empty()).then(|| {
            quote! {
                fn #m(&mut self, events: &[#event_ty]) {
                    #(#stages)*
                }
            }
        })
    };
    let (prefetch, read_ahead) = (method("prefetch")?, method("read_ahead")?);
    Some(quote!(#prefetch #read_ahead))
}

/// `impl Pipeline`.
fn pipeline_impl(cx: &Cx, parts: &[Parts], source_text: &str) -> TokenStream {
    let plan = cx.plan;
    let rt = &cx.rt;
    let (name, module) = (&plan.name, &plan.module);
    let event_ty = match plan.sources.as_slice() {
        [src] => src.ty.to_token_stream(),
        _ => quote!(#module::Input),
    };
    let plan_data = plan_data::plan_tokens(cx);
    let (fields, tys): (Vec<_>, Vec<_>) = stateful(parts).unzip();
    let names: Vec<String> = fields.iter().map(|f| f.to_string()).collect();
    let (scratch, _) = scratch(parts);
    let sinks: Vec<String> = (plan
        .sources
        .iter()
        .filter(|s| s.sink)
        .map(|s| s.name.to_string()))
    .chain(
        plan.stages
            .iter()
            .filter(|s| s.sink)
            .map(|s| s.name.to_string()),
    )
    .collect();
    let flush = parts.iter().map(|p| &p.code.flush);
    let process = flow::process_body(cx, flow::Entry::Owned);
    let process_ref = flow::process_body(cx, flow::Entry::Borrowed);
    let event_time = flow::event_time_body(cx);
    let n = plan.sources.len();
    let sources_init = (n > 1).then(|| quote!(__sources: [#rt::Clock::default(); #n],));
    let checkpoint = checkpoint_methods(cx, parts);
    let deltas = delta_methods(cx, parts);
    let upgrades = upgrade_items(cx);
    let prefetch = prefetch_method(cx, &event_ty);
    let pname = name.to_string();
    quote! {
        impl #rt::Pipeline for #name {
            type Event = #event_ty;
            type Output = #module::Output;
            const NAME: &'static str = #pname;
            const PLAN: &'static #rt::plan::Plan = &#plan_data;
            const FINGERPRINT: u64 = {
                let mut h = Self::PLAN.fingerprint();
                #( h = #rt::fingerprint::combine(h, <#tys as #rt::Checkpointable>::LAYOUT); )*
                h
            };
            const STAGES: &'static [&'static str] = &[#(#names),*];
            const STATE_LAYOUTS: &'static [u64] = &[#( <#tys as #rt::Checkpointable>::LAYOUT ),*];
            const SINKS: &'static [&'static str] = &[#(#sinks),*];
            const SOURCE_TEXT: &'static str = #source_text;

            fn new() -> Self {
                #name {
                    __clock: ::core::default::Default::default(),
                    #sources_init
                    #( #fields: ::core::default::Default::default(), )*
                    #( #scratch: ::std::vec::Vec::new(), )*
                }
            }

            // Always inlined: called in the caller's loop per event, where a call costs
            // about as much as a lookup in a small state (`count_by_key`).
            #[inline(always)]
            fn process<C: #rt::Collector<Self::Output>>(&mut self, event: #event_ty, out: &mut C) {
                #process
            }

            #[inline(always)]
            fn process_ref<C: #rt::Collector<Self::Output>>(&mut self, event: &#event_ty, out: &mut C) {
                #process_ref
            }

            fn event_time(event: &#event_ty) -> ::core::option::Option<i64> {
                #event_time
            }

            #prefetch

            fn advance_watermark<C: #rt::Collector<Self::Output>>(&mut self, watermark: i64, out: &mut C) {
                if watermark > self.__clock.watermark {
                    self.__clock.watermark = watermark;
                    self.__advance(out);
                }
            }

            fn finish<C: #rt::Collector<Self::Output>>(&mut self, out: &mut C) {
                #(#flush)*
            }

            fn clock(&self) -> #rt::Clock {
                self.__clock
            }

            #checkpoint

            #deltas

            #upgrades
        }
    }
}

/// `RENAMES`, and the migrations of the stages that declare them.
fn upgrade_items(cx: &Cx) -> TokenStream {
    let stages = &cx.plan.stages;
    let renames = stages.iter().filter_map(|s| {
        let was = s.upgrade.was.as_ref()?.to_string();
        let name = s.name.to_string();
        Some(quote!((#name, #was)))
    });
    let conversions: Vec<(&StagePlan, syn::Result<TokenStream>)> = stages
        .iter()
        .filter(|s| !s.upgrade.migrations.is_empty())
        .map(|s| {
            let conv = match &s.stateful {
                Some(part) => part.migrate(s, cx, &s.upgrade.migrations),
                None => Err(syn::Error::new(
                    s.upgrade.migrations[0].span(),
                    "this stage keeps no state: there is nothing to migrate",
                )),
            };
            (s, conv)
        })
        .collect();
    let methods = migrate::methods(cx, &conversions);
    quote! {
        const RENAMES: &'static [(&'static str, &'static str)] = &[#(#renames),*];
        #methods
    }
}

/// The methods of `impl Pipeline` that write, read and show the state.
fn checkpoint_methods(cx: &Cx, parts: &[Parts]) -> TokenStream {
    let (rt, serde, serde_path, name) = (&cx.rt, &cx.serde, cx.serde_path, &cx.plan.name);
    let (fields, tys): (Vec<_>, Vec<_>) = stateful(parts).unzip();
    let names: Vec<String> = fields.iter().map(|f| f.to_string()).collect();
    let (scratch, _) = scratch(parts);
    let n = cx.plan.sources.len();
    let (sources_owned, sources_restore, write_sources) = if n > 1 {
        (
            quote!(source_clocks: [#rt::Clock; #n],),
            quote!(__sources: s.source_clocks,),
            quote!(w.field("source_clocks", &self.__sources)?;),
        )
    } else {
        Default::default()
    };
    quote! {
            fn write_stages(&self, w: &mut #rt::codec::StageWriter<'_>) -> ::core::result::Result<(), #rt::CheckpointError> {
                #write_sources
                #( w.field(#names, &self.#fields)?; )*
                ::core::result::Result::Ok(())
            }

            fn decode_stages(codec: #rt::Codec, bytes: &[u8], clock: #rt::Clock) -> ::core::result::Result<Self, #rt::CheckpointError> {
                #[derive(#serde::Deserialize)] #[serde(crate = #serde_path)]
                struct __StagesOwned { #sources_owned #(#fields: #tys,)* }
                let s: __StagesOwned = #rt::codec::read(codec, bytes)?;
                ::core::result::Result::Ok(#name {
                    __clock: clock,
                    #sources_restore
                    #( #fields: s.#fields, )*
                    #( #scratch: ::std::vec::Vec::new(), )*
                })
            }

            fn stage_json(&self, stage: &str) -> ::core::option::Option<#rt::__private::serde_json::Value> {
                match stage {
                    #( #names => #rt::codec::to_json_value(&self.#fields).ok(), )*
                    _ => ::core::option::Option::None,
                }
            }

    }
}

/// The methods of `impl Pipeline` for incremental checkpoints: each stage's version, and
/// writing and applying what changed since one.
fn delta_methods(cx: &Cx, parts: &[Parts]) -> TokenStream {
    let (rt, serde, serde_path) = (&cx.rt, &cx.serde, cx.serde_path);
    let (fields, tys): (Vec<_>, Vec<_>) = stateful(parts).unzip();
    let names: Vec<String> = fields.iter().map(|f| f.to_string()).collect();
    let n = cx.plan.sources.len();
    let (sources_owned, sources_apply, write_sources) = if n > 1 {
        (
            quote!(source_clocks: [#rt::Clock; #n],),
            quote!(self.__sources = s.source_clocks;),
            quote!(w.field("source_clocks", &self.__sources)?;),
        )
    } else {
        Default::default()
    };
    quote! {
            fn stage_versions(&self) -> ::core::option::Option<::std::vec::Vec<#rt::delta::Version>> {
                ::core::option::Option::Some(::std::vec![#( #rt::delta::Tracked::version(&self.#fields), )*])
            }

            fn write_stage_deltas(&self, since: &[#rt::delta::Version], w: &mut #rt::codec::StageWriter<'_>) -> ::core::result::Result<(), #rt::CheckpointError> {
                #write_sources
                let mut since = since.iter().copied();
                #( #rt::delta::Tracked::write_delta(&self.#fields, since.next(), #names, w)?; )*
                ::core::result::Result::Ok(())
            }

            fn apply_stage_deltas(&mut self, codec: #rt::Codec, bytes: &[u8], clock: #rt::Clock) -> ::core::result::Result<(), #rt::CheckpointError> {
                #[derive(#serde::Deserialize)] #[serde(crate = #serde_path)]
                struct __Deltas { #sources_owned #(#fields: #rt::delta::DeltaOf<#tys>,)* }
                let s: __Deltas = #rt::codec::read(codec, bytes)?;
                self.__clock = clock;
                #sources_apply
                #( #rt::delta::Tracked::apply_delta(&mut self.#fields, s.#fields); )*
                ::core::result::Result::Ok(())
            }

    }
}

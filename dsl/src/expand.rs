//! Code generation: a [`Plan`] becomes typed structs and a [`Pipeline`] impl.
//!
//! What comes out, for `pipeline OrderStats` with a keyed stage `per_5min`:
//! - module `order_stats` with `Per5minAcc` (accumulators), `Per5minRow` (results),
//!   `Per5min` (the stage's state, `Checkpointable`), `Output` and `Late`;
//! - struct `OrderStats` owning every stage, with one `#[inline]` method per stage that
//!   moves an event on; user closures are called in place, so the optimizer sees one
//!   loop body, as if written by hand.
//!
//! [`Pipeline`]: https://docs.rs/simplestream

use proc_macro2::{Group, Span, TokenStream, TokenTree};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::{Expr, Ident, Pat, Type};

use crate::valid::{
    camel, Child, JoinKind, JoinPlan, KeyedPlan, Plan, Side, StagePlan, Stateless, WindowKind,
};

fn rt() -> TokenStream {
    quote!(::simplestream::__rt)
}

/// serde as generated code reaches it (users need no serde dependency of their own for
/// the derives we emit); the string form is for `#[serde(crate = ..)]`.
const SERDE: &str = "::simplestream::__rt::__private::serde";

fn serde_tokens() -> TokenStream {
    quote!(::simplestream::__rt::__private::serde)
}

/// Adds `: &Ty` to a closure's untyped parameter, so users write `|o| o.ts`.
fn annotate(f: &Expr, ty: &Type) -> TokenStream {
    if let Expr::Closure(c) = f {
        let mut c = c.clone();
        if c.inputs.len() == 1 && !matches!(c.inputs[0], Pat::Type(_)) {
            let pat = c.inputs[0].clone();
            let span = pat
                .to_token_stream()
                .into_iter()
                .next()
                .map(|t| t.span())
                .unwrap_or_else(Span::call_site);
            let refty: Type = syn::parse_quote_spanned!(span=> &#ty);
            c.inputs[0] = Pat::Type(syn::PatType {
                attrs: Vec::new(),
                pat: Box::new(pat),
                colon_token: Default::default(),
                ty: Box::new(refty),
            });
        }
        quote!((#c))
    } else {
        quote!((#f))
    }
}

fn pascal(id: &Ident) -> Ident {
    format_ident!("{}", camel(&id.to_string()), span = id.span())
}

struct Names {
    module: Ident,
}

impl Names {
    fn acc(&self, s: &StagePlan) -> TokenStream {
        let m = &self.module;
        let n = format_ident!("{}Acc", camel(&s.name.to_string()));
        quote!(#m::#n)
    }
    fn stage(&self, s: &StagePlan) -> TokenStream {
        let m = &self.module;
        let n = pascal(&s.name);
        quote!(#m::#n)
    }
    fn row(&self, s: &StagePlan) -> TokenStream {
        let m = &self.module;
        let n = format_ident!("{}Row", camel(&s.name.to_string()));
        quote!(#m::#n)
    }
}

fn window_state(k: &KeyedPlan, acc: &TokenStream) -> TokenStream {
    let rt = rt();
    let kt = &k.key_ty;
    if k.global {
        return quote!(#rt::window::GlobalWindows<#acc>);
    }
    match k.window.as_ref().map(|w| w.kind) {
        None => quote!(#rt::KeyedState<#kt, #acc>),
        Some(WindowKind::Tumbling { .. }) => quote!(#rt::window::Tumbling<#kt, #acc>),
        Some(WindowKind::Sliding { .. }) => quote!(#rt::window::Sliding<#kt, #acc>),
        Some(WindowKind::Session { .. }) => quote!(#rt::window::Session<#kt, #acc>),
    }
}

/// Generates the whole expansion.
pub fn expand(plan: &Plan, source_text: &str) -> TokenStream {
    let rt = rt();
    let plan_data = crate::emit_plan::plan_tokens(plan, &rt);
    let serde_path = SERDE;
    let serde = serde_tokens();
    let names = Names {
        module: plan.module.clone(),
    };
    let module = &plan.module;
    let vis = &plan.vis;
    let name = &plan.name;
    let attrs = &plan.attrs;
    let single = plan.sources.len() == 1;
    let event_ty: TokenStream = if single {
        let t = &plan.sources[0].ty;
        quote!(#t)
    } else {
        quote!(#module::Input)
    };

    // ---- module items -------------------------------------------------------------
    let mut items = Vec::new();
    let mut output_variants = Vec::new();
    let mut output_ser = Vec::new();
    let mut output_sink = Vec::new();
    let mut late_variants = Vec::new();
    let mut late_ser = Vec::new();
    let mut sinks = Vec::new();

    for src in plan.sources.iter().filter(|s| s.sink) {
        let v = pascal(&src.name);
        let n = src.name.to_string();
        let ty = &src.ty;
        output_variants.push(quote!(#v(#ty)));
        output_ser.push(quote!(Output::#v(x) => #serde::Serialize::serialize(x, s)));
        output_sink.push(quote!(Output::#v(_) => #n));
        sinks.push(n);
    }
    if !single {
        let vars: Vec<Ident> = plan.sources.iter().map(|s| pascal(&s.name)).collect();
        let names: Vec<String> = plan.sources.iter().map(|s| s.name.to_string()).collect();
        let tys: Vec<&Type> = plan.sources.iter().map(|s| &s.ty).collect();
        items.push(quote! {
            /// An event of one of the sources: `{"orders": {...}}` in JSON.
            #[derive(Clone, Debug, PartialEq, #serde::Serialize, #serde::Deserialize)]
            #[serde(crate = #serde_path)]
            #[allow(missing_docs)]
            pub enum Input { #( #[serde(rename = #names)] #vars(#tys), )* }
        });
    }

    for s in &plan.stages {
        let sname = s.name.to_string();
        if let Some(j) = &s.join {
            let stage = pascal(&s.name);
            let joined = format_ident!("{}Joined", camel(&sname));
            let (lname, rname) = join_field_names(s, j);
            let (lt, rt_, kt, kn) = (&s.input_ty, &j.right_ty, &j.key_ty, &j.key_name);
            let state_ty = join_state(s, j);
            let joined_doc = format!("A pair matched by stage `{sname}`.");
            let window_cols = if matches!(j.kind, JoinKind::Window(_)) {
                quote!(pub window_start: i64, pub window_end: i64,)
            } else {
                quote!()
            };
            items.push(quote! {
                #[doc = #joined_doc]
                #[derive(Clone, Debug, PartialEq, #serde::Serialize, #serde::Deserialize)]
                #[serde(crate = #serde_path)]
                #[allow(missing_docs)]
                pub struct #joined { pub #kn: #kt, #window_cols pub #lname: #lt, pub #rname: #rt_ }

            });
            items.push(stage_struct(
                &stage,
                &sname,
                &state_ty,
                "Buffered events of both inputs.",
                Span::call_site(),
            ));
            let (lv, rv) = late_join_variants(s, j);
            late_variants.push(quote!(#lv(#lt, #rt::window::LateReason)));
            late_variants.push(quote!(#rv(#rt_, #rt::window::LateReason)));
            late_ser.push(quote!(Late::#lv(e, r) => #serde::Serialize::serialize(&#rt::pipeline::LateRecord { stage: #sname, event: e, reason: *r }, s)));
            late_ser.push(quote!(Late::#rv(e, r) => #serde::Serialize::serialize(&#rt::pipeline::LateRecord { stage: #sname, event: e, reason: *r }, s)));
        }
        if let Some(k) = &s.keyed {
            let acc = format_ident!("{}Acc", camel(&sname));
            let row = format_ident!("{}Row", camel(&sname));
            let stage = pascal(&s.name);
            let cols: Vec<&Ident> = k.aggs.iter().map(|a| &a.name).collect();
            let col_names: Vec<String> = cols.iter().map(|c| c.to_string()).collect();
            let agg_tys: Vec<&TokenStream> = k.aggs.iter().map(|a| &a.agg_ty).collect();
            let out_tys: Vec<&Type> = k.aggs.iter().map(|a| &a.out_ty).collect();
            let key_name = &k.key_name;
            let key_ty = &k.key_ty;
            let acc_doc = format!("Accumulators of stage `{sname}`, one per key (and window).");
            let row_doc = format!("A result of stage `{sname}`.");
            let win_fields = if k.window.is_some() {
                quote!(pub window_start: i64, pub window_end: i64,)
            } else {
                quote!()
            };
            let state_ty = window_state(k, &quote!(#acc));
            let key_field = if k.global {
                quote!()
            } else {
                quote!(pub #key_name: #key_ty,)
            };
            items.push(quote! {
                #[doc = #acc_doc]
                #[derive(Default, Clone, Debug, PartialEq, #serde::Serialize, #serde::Deserialize)]
                #[serde(crate = #serde_path)]
                #[allow(missing_docs)]
                pub struct #acc { #(pub #cols: <#agg_tys as #rt::aggregate::Aggregate>::Acc,)* }

                impl #rt::Checkpointable for #acc {
                    const LAYOUT: u64 = {
                        let mut h = #rt::fingerprint::fnv1a(stringify!(#acc));
                        #( h = #rt::fingerprint::combine(h, #rt::fingerprint::combine(
                            #rt::fingerprint::fnv1a(#col_names),
                            <<#agg_tys as #rt::aggregate::Aggregate>::Acc as #rt::Checkpointable>::LAYOUT)); )*
                        h
                    };
                }

                impl #rt::aggregate::Accumulator for #acc {
                    fn merge(&mut self, other: &Self) {
                        #( #rt::aggregate::Aggregate::merge(&<#agg_tys as ::core::default::Default>::default(), &mut self.#cols, &other.#cols); )*
                    }
                }

                #[doc = #row_doc]
                #[derive(Clone, Debug, PartialEq, #serde::Serialize, #serde::Deserialize)]
                #[serde(crate = #serde_path)]
                #[allow(missing_docs)]
                pub struct #row { #key_field #win_fields #(pub #cols: #out_tys,)* }

            });
            let blame = if k.global {
                Span::call_site()
            } else {
                syn::spanned::Spanned::span(key_ty)
            };
            items.push(stage_struct(
                &stage,
                &sname,
                &state_ty,
                "Per-key (and per-window) accumulators.",
                blame,
            ));
            if k.window.is_some() {
                let v = pascal(&s.name);
                let et = &k.event_ty;
                late_variants.push(quote!(#v(#et, #rt::window::LateReason)));
                late_ser.push(quote!(Late::#v(e, r) => #serde::Serialize::serialize(&#rt::pipeline::LateRecord { stage: #sname, event: e, reason: *r }, s)));
            }
        }
        if s.sink {
            let v = pascal(&s.name);
            let ty = &s.out_ty;
            output_variants.push(quote!(#v(#ty)));
            output_ser.push(quote!(Output::#v(x) => #serde::Serialize::serialize(x, s)));
            output_sink.push(quote!(Output::#v(_) => #sname));
            sinks.push(sname.clone());
        }
    }

    let late_match = if late_ser.is_empty() {
        quote!(match *self {})
    } else {
        quote!(match self { #(#late_ser,)* })
    };
    let out_doc = format!("Outputs of `{name}`: one variant per sink, plus late events.");
    items.push(quote! {
        #[doc = #out_doc]
        #[derive(Clone, Debug, PartialEq)]
        #[allow(missing_docs)]
        pub enum Output { #(#output_variants,)* Late(Late) }

        /// Events that arrived after their window closed, by stage.
        #[derive(Clone, Debug, PartialEq)]
        #[allow(missing_docs)]
        pub enum Late { #(#late_variants,)* }

        impl #serde::Serialize for Output {
            fn serialize<S: #serde::Serializer>(&self, s: S) -> ::core::result::Result<S::Ok, S::Error> {
                match self { #(#output_ser,)* Output::Late(l) => #serde::Serialize::serialize(l, s) }
            }
        }
        impl #serde::Serialize for Late {
            fn serialize<S: #serde::Serializer>(&self, s: S) -> ::core::result::Result<S::Ok, S::Error> {
                #late_match
            }
        }
        impl #rt::OutputRecord for Output {
            fn sink(&self) -> &'static str {
                match self { #(#output_sink,)* Output::Late(_) => "late" }
            }
            fn is_late(&self) -> bool {
                matches!(self, Output::Late(_))
            }
        }
    });

    // ---- pipeline struct --------------------------------------------------------------
    let keyed: Vec<&StagePlan> = plan
        .stages
        .iter()
        .filter(|s| s.keyed.is_some() || s.join.is_some())
        .collect();
    let kfields: Vec<&Ident> = keyed.iter().map(|s| &s.name).collect();
    let kfield_names: Vec<String> = kfields.iter().map(|f| f.to_string()).collect();
    let ktypes: Vec<TokenStream> = keyed.iter().map(|s| names.stage(s)).collect();
    // Scratch vectors (not state): closed windows and matched pairs on their way out.
    let mut fired: Vec<Ident> = Vec::new();
    let mut fired_tys: Vec<TokenStream> = Vec::new();
    let mut advance_calls: Vec<TokenStream> = Vec::new();
    let mut flush_calls: Vec<TokenStream> = Vec::new();
    for s in &keyed {
        let f = &s.name;
        let scratch = format_ident!("__fired_{}", s.name);
        let fire = format_ident!("__fire_{}", s.name);
        if let Some(k) = &s.keyed {
            let Some(w) = &k.window else { continue };
            let kt = &k.key_ty;
            let acc = names.acc(s);
            fired.push(scratch.clone());
            fired_tys.push(quote!(::std::vec::Vec<#rt::window::Fired<#kt, #acc>>));
            let late = w.lateness;
            let (adv, flush) = match w.kind {
                WindowKind::Tumbling { size } | WindowKind::Sliding { size, .. } => {
                    let sorted = rows_need_sorting(plan, s, late);
                    // One window at a time: rows in flight stay one window's worth.
                    let drain = quote! {
                        while self.#f.state.close_next_in(#size, #late, #sorted, &mut self.#scratch) {
                            self.#fire(out);
                        }
                    };
                    advance_calls.push(quote! { if self.#f.state.set_watermark(wm) { #drain } });
                    flush_calls.push(quote! {
                        let __wm = self.#f.state.flush_watermark(#size, #late);
                        if self.#f.state.set_watermark(__wm) { #drain }
                    });
                    continue;
                }
                WindowKind::Session { .. } => (
                    quote!(self.#f.state.advance(wm, #late, &mut self.#scratch);),
                    quote!(self.#f.state.flush(#late, &mut self.#scratch);),
                ),
            };
            advance_calls.push(quote! { #adv if !self.#scratch.is_empty() { self.#fire(out); } });
            flush_calls.push(quote! { #flush if !self.#scratch.is_empty() { self.#fire(out); } });
        } else if let Some(j) = &s.join {
            let (kt, lt, rt_) = (&j.key_ty, &s.input_ty, &j.right_ty);
            fired.push(scratch.clone());
            match &j.kind {
                JoinKind::Window(w) => {
                    fired_tys.push(quote!(::std::vec::Vec<#rt::join::JoinFired<#kt, #lt, #rt_>>));
                    let late = w.lateness;
                    let size = window_size(w.kind);
                    advance_calls.push(quote! {
                        self.#f.state.advance(wm, #size, #late, &mut self.#scratch);
                        if !self.#scratch.is_empty() { self.#fire(out); }
                    });
                    flush_calls.push(quote! {
                        self.#f.state.flush(#size, #late, &mut self.#scratch);
                        if !self.#scratch.is_empty() { self.#fire(out); }
                    });
                }
                JoinKind::Interval { lower, upper } => {
                    fired_tys.push(quote!(::std::vec::Vec<#rt::join::Pair<#kt, #lt, #rt_>>));
                    advance_calls.push(quote!(self.#f.state.advance(wm, #lower, #upper);));
                }
            }
        }
    }

    // push methods
    let mut methods = Vec::new();
    for src in &plan.sources {
        let push = format_ident!("__push_{}", src.name);
        let ty = &src.ty;
        // A source whose only consumer is a windowed join hands its events over by value.
        let (param, body) = match owned_target(plan, &src.children, src.sink) {
            Some(target) => (quote!(#ty), quote!(self.#target(__v, __ts, out);)),
            None => (
                quote!(&#ty),
                emit_children(plan, &src.children, src.sink.then(|| pascal(&src.name))),
            ),
        };
        methods.push(quote! {
            #[inline(always)]
            #[allow(unused_variables)]
            fn #push<C: #rt::Collector<#module::Output>>(&mut self, __v: #param, __ts: i64, out: &mut C) { #body }
        });
    }
    for s in plan.stages.iter().filter(|s| s.join.is_some()) {
        let j = s.join.as_ref().expect("filtered");
        let tail = {
            let assert = s.declared.as_ref().map(|t| quote!(let __v: &#t = __v;));
            let children = emit_children(plan, &s.children, s.sink.then(|| pascal(&s.name)));
            gen_ops(&s.post, quote!(#assert #children))
        };
        methods.extend(gen_join(s, j, &names, tail));
    }
    for s in plan.stages.iter().filter(|s| s.join.is_none()) {
        let push = format_ident!("__push_{}", s.name);
        let in_ty = &s.input_ty;
        let tail = {
            let assert = s.declared.as_ref().map(|t| quote!(let __v: &#t = __v;));
            let children = emit_children(plan, &s.children, s.sink.then(|| pascal(&s.name)));
            quote!(#assert #children)
        };
        let body = match &s.keyed {
            None => gen_ops(&s.pre, tail),
            Some(k) => {
                let keyed_code = gen_keyed(s, k, &names, gen_ops(&s.post, tail.clone()));
                let pre = gen_ops(&s.pre, keyed_code);
                if k.window.is_some() {
                    // Results leave when windows close, from the fire method.
                    let fire = format_ident!("__fire_{}", s.name);
                    let fired = format_ident!("__fired_{}", s.name);
                    let row = names.row(s);
                    let key_name = &k.key_name;
                    let key_field = if k.global {
                        quote!()
                    } else {
                        quote!(#key_name: __f.key,)
                    };
                    let cols: Vec<&Ident> = k.aggs.iter().map(|a| &a.name).collect();
                    let agg_tys: Vec<&TokenStream> = k.aggs.iter().map(|a| &a.agg_ty).collect();
                    let post = gen_ops(&s.post, tail);
                    methods.push(quote! {
                        #[allow(unused_variables)]
                        fn #fire<C: #rt::Collector<#module::Output>>(&mut self, out: &mut C) {
                            let mut __fired = ::core::mem::take(&mut self.#fired);
                            for __f in __fired.drain(..) {
                                let __row = #row {
                                    #key_field
                                    window_start: __f.start,
                                    window_end: __f.end,
                                    #( #cols: #rt::aggregate::Aggregate::output(&<#agg_tys as ::core::default::Default>::default(), &__f.acc.#cols), )*
                                };
                                let __ts = __f.end - 1;
                                let __v = &__row;
                                #post
                            }
                            self.#fired = __fired;
                        }
                    });
                }
                pre
            }
        };
        methods.push(quote! {
            #[inline(always)]
            #[allow(unused_variables)]
            fn #push<C: #rt::Collector<#module::Output>>(&mut self, __v: &#in_ty, __ts: i64, out: &mut C) { #body }
        });
    }

    // One source: its clock is the pipeline's. Several: each has its own, and the
    // pipeline's watermark is the smallest (a join must wait for both inputs).
    let n_sources = plan.sources.len();
    let process_body = if single {
        let src = &plan.sources[0];
        let event_time = annotate(&src.event_time, &src.ty);
        let max_delay = src.max_delay_ms;
        let push = format_ident!("__push_{}", src.name);
        let event = source_arg(plan, src);
        quote! {
            let __ts: i64 = #rt::pipeline::EventTime::event_time_ms(#event_time(&event));
            let moved = self.__clock.observe(__ts, #max_delay);
            self.#push(#event, __ts, out);
            if moved {
                self.__advance(out);
            }
        }
    } else {
        let arms = plan.sources.iter().enumerate().map(|(i, src)| {
            let v = pascal(&src.name);
            let event_time = annotate(&src.event_time, &src.ty);
            let max_delay = src.max_delay_ms;
            let push = format_ident!("__push_{}", src.name);
            let event = source_arg(plan, src);
            quote! {
                #module::Input::#v(event) => {
                    let __ts: i64 = #rt::pipeline::EventTime::event_time_ms(#event_time(&event));
                    self.__sources[#i].observe(__ts, #max_delay);
                    self.#push(#event, __ts, out);
                }
            }
        });
        quote! {
            match event { #(#arms)* }
            let mut __wm = i64::MAX;
            let mut __max = i64::MIN;
            for c in &self.__sources {
                __wm = __wm.min(c.watermark);
                __max = __max.max(c.max_event_time);
            }
            self.__clock.max_event_time = __max;
            if __wm > self.__clock.watermark {
                self.__clock.watermark = __wm;
                self.__advance(out);
            }
        }
    };
    let sources_apply = if single {
        quote!()
    } else {
        quote!(self.__sources = s.source_clocks;)
    };
    let (sources_field, sources_init, sources_owned, sources_restore) = if single {
        (quote!(), quote!(), quote!(), quote!())
    } else {
        (
            quote!(__sources: [#rt::Clock; #n_sources],),
            quote!(__sources: [#rt::Clock::default(); #n_sources],),
            quote!(source_clocks: [#rt::Clock; #n_sources],),
            quote!(__sources: s.source_clocks,),
        )
    };
    let pname = name.to_string();
    let stage_name_strs = kfield_names.clone();
    let pipeline_doc = format!("Pipeline `{pname}` (generated by `pipeline!`).");
    let write_sources = if single {
        quote!()
    } else {
        quote!(w.field("source_clocks", &self.__sources)?;)
    };
    quote! {
        #[doc = #pipeline_doc]
        #[allow(clippy::all, missing_docs, non_camel_case_types, unused_imports)]
        #vis mod #module {
            use super::*;
            #(#items)*
        }

        #[doc = #pipeline_doc]
        #(#attrs)*
        #vis struct #name {
            __clock: #rt::Clock,
            #sources_field
            #( pub #kfields: #ktypes, )*
            #( #fired: #fired_tys, )*
        }

        impl ::core::default::Default for #name {
            fn default() -> Self { <Self as #rt::Pipeline>::new() }
        }

        impl ::core::fmt::Debug for #name {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.debug_struct(#pname).field("clock", &self.__clock) #( .field(#kfield_names, &self.#kfields) )* .finish()
            }
        }

        #[allow(clippy::all, clippy::pedantic)]
        impl #name {
            #(#methods)*

            #[inline]
            fn __advance<C: #rt::Collector<#module::Output>>(&mut self, out: &mut C) {
                let wm = self.__clock.watermark;
                #(#advance_calls)*
            }
        }

        impl #rt::Pipeline for #name {
            type Event = #event_ty;
            type Output = #module::Output;
            const NAME: &'static str = #pname;
            const PLAN: &'static #rt::plan::Plan = &#plan_data;
            const FINGERPRINT: u64 = {
                let mut h = Self::PLAN.fingerprint();
                #( h = #rt::fingerprint::combine(h, <#ktypes as #rt::Checkpointable>::LAYOUT); )*
                h
            };
            const STAGES: &'static [&'static str] = &[#(#stage_name_strs),*];
            const SINKS: &'static [&'static str] = &[#(#sinks),*];
            const SOURCE_TEXT: &'static str = #source_text;

            fn new() -> Self {
                #name {
                    __clock: ::core::default::Default::default(),
                    #sources_init
                    #( #kfields: ::core::default::Default::default(), )*
                    #( #fired: ::std::vec::Vec::new(), )*
                }
            }

            #[inline]
            fn process<C: #rt::Collector<Self::Output>>(&mut self, event: #event_ty, out: &mut C) {
                #process_body
            }

            fn advance_watermark<C: #rt::Collector<Self::Output>>(&mut self, watermark: i64, out: &mut C) {
                if watermark > self.__clock.watermark {
                    self.__clock.watermark = watermark;
                    self.__advance(out);
                }
            }

            fn finish<C: #rt::Collector<Self::Output>>(&mut self, out: &mut C) {
                #(#flush_calls)*
            }

            fn clock(&self) -> #rt::Clock {
                self.__clock
            }

            fn write_stages(&self, w: &mut #rt::codec::StageWriter<'_>) -> ::core::result::Result<(), #rt::CheckpointError> {
                #write_sources
                #( w.field(#kfield_names, &self.#kfields)?; )*
                ::core::result::Result::Ok(())
            }

            fn decode_stages(codec: #rt::Codec, bytes: &[u8], clock: #rt::Clock) -> ::core::result::Result<Self, #rt::CheckpointError> {
                #[derive(#serde::Deserialize)] #[serde(crate = #serde_path)]
                struct __StagesOwned { #sources_owned #(#kfields: #ktypes,)* }
                let s: __StagesOwned = #rt::codec::read(codec, bytes)?;
                ::core::result::Result::Ok(#name {
                    __clock: clock,
                    #sources_restore
                    #( #kfields: s.#kfields, )*
                    #( #fired: ::std::vec::Vec::new(), )*
                })
            }

            fn stage_versions(&self) -> ::core::option::Option<::std::vec::Vec<#rt::delta::Version>> {
                ::core::option::Option::Some(::std::vec![#( #rt::delta::Tracked::version(&self.#kfields), )*])
            }

            fn write_stage_deltas(&self, since: &[#rt::delta::Version], w: &mut #rt::codec::StageWriter<'_>) -> ::core::result::Result<(), #rt::CheckpointError> {
                #write_sources
                let mut __since = since.iter().copied();
                #( #rt::delta::Tracked::write_delta(&self.#kfields, __since.next(), #kfield_names, w)?; )*
                ::core::result::Result::Ok(())
            }

            fn apply_stage_deltas(&mut self, codec: #rt::Codec, bytes: &[u8], clock: #rt::Clock) -> ::core::result::Result<(), #rt::CheckpointError> {
                #[derive(#serde::Deserialize)] #[serde(crate = #serde_path)]
                struct __Deltas { #sources_owned #(#kfields: #rt::delta::DeltaOf<#ktypes>,)* }
                let s: __Deltas = #rt::codec::read(codec, bytes)?;
                self.__clock = clock;
                #sources_apply
                #( #rt::delta::Tracked::apply_delta(&mut self.#kfields, s.#kfields); )*
                ::core::result::Result::Ok(())
            }

            fn stage_json(&self, stage: &str) -> ::core::option::Option<#rt::__private::serde_json::Value> {
                match stage {
                    #( #kfield_names => #rt::codec::to_json_value(&self.#kfields).ok(), )*
                    _ => ::core::option::Option::None,
                }
            }
        }
    }
}

/// The by-value push of a windowed join that is the only consumer of a value (its
/// events can then be moved into the join's buffers rather than cloned).
fn owned_target(plan: &Plan, children: &[Child], sink: bool) -> Option<Ident> {
    let [c] = children else { return None };
    let s = &plan.stages[c.stage];
    if sink || !matches!(s.join.as_ref()?.kind, JoinKind::Window(_)) {
        return None;
    }
    let side = match c.side {
        Side::Left => "left",
        Side::Right => "right",
        Side::Main => return None,
    };
    Some(owned_push(&format_ident!("__push_{}_{}", s.name, side)))
}

/// How `process` passes a source's event to its push method: by value if it can be moved.
fn source_arg(plan: &Plan, src: &crate::valid::SourcePlan) -> TokenStream {
    if owned_target(plan, &src.children, src.sink).is_some() {
        quote!(event)
    } else {
        quote!(&event)
    }
}

/// Code that sends `__v` to every child stage and to the sink.
fn emit_children(plan: &Plan, children: &[Child], sink: Option<Ident>) -> TokenStream {
    let calls = children.iter().map(|c| {
        let name = &plan.stages[c.stage].name;
        let f = match c.side {
            Side::Main => format_ident!("__push_{}", name),
            Side::Left => format_ident!("__push_{}_left", name),
            Side::Right => format_ident!("__push_{}_right", name),
        };
        quote!(self.#f(__v, __ts, out);)
    });
    let module = &plan.module;
    let sink =
        sink.map(|v| quote!(out.collect(#module::Output::#v(::core::clone::Clone::clone(__v)));));
    quote!(#(#calls)* #sink)
}

/// Wraps `inner` in the stateless operators, outermost first.
fn gen_ops(ops: &[Stateless], inner: TokenStream) -> TokenStream {
    let mut code = inner;
    for op in ops.iter().rev() {
        code = match op {
            Stateless::Filter { f, ty } => {
                let f = annotate(f, ty);
                quote!(if #f(__v) { #code })
            }
            Stateless::Map { f, ty, out } => {
                let f = annotate(f, ty);
                quote!({ let __m: #out = #f(__v); let __v = &__m; #code })
            }
            Stateless::FlatMap { f, ty, out } => {
                let f = annotate(f, ty);
                quote!(for __m in #f(__v) { let __m: #out = __m; let __v = &__m; #code })
            }
        };
    }
    code
}

/// The keyed part of a stage: update state; for running aggregates, send the row on.
fn gen_keyed(s: &StagePlan, k: &KeyedPlan, names: &Names, post: TokenStream) -> TokenStream {
    let rt = rt();
    let f = &s.name;
    let key_ty = &k.key_ty;
    let key_fn = annotate(&k.key_fn, &k.event_ty);
    let adds: Vec<TokenStream> = k
        .aggs
        .iter()
        .map(|a| {
            let col = &a.name;
            let agg = &a.agg_ty;
            let value = match &a.value {
                None => quote!(()),
                Some(v) => {
                    let v = annotate(v, &k.event_ty);
                    quote!(#v(__v))
                }
            };
            let span = a.name.span();
            quote_spanned!(span=> #rt::aggregate::Aggregate::add(&<#agg as ::core::default::Default>::default(), &mut __acc.#col, #value);)
        })
        .collect();
    let module = &names.module;
    let late = |v: &Ident, reason: TokenStream| quote!(out.collect(#module::Output::Late(#module::Late::#v(::core::clone::Clone::clone(__v), #reason))););
    let windowed =
        |size: i64, slide: i64| quote!(#rt::window::LateReason::windowed(__ts, #size, #slide));
    match k.window.as_ref().map(|w| (w.kind, w.lateness)) {
        // A window over all events: no key to compute or hash.
        Some((WindowKind::Tumbling { size }, lateness)) if k.global => {
            let late = late(&pascal(&s.name), windowed(size, size));
            quote! {
                match self.#f.state.acc_for(__ts, #size, #lateness) {
                    ::core::option::Option::Some(__acc) => { #(#adds)* }
                    ::core::option::Option::None => { #late }
                }
            }
        }
        Some((WindowKind::Sliding { size, slide }, lateness)) if k.global => {
            let late = late(&pascal(&s.name), windowed(size, slide));
            quote! {
                if self.#f.state.add(__ts, #size, #slide, #lateness, |__acc| { #(#adds)* }) { #late }
            }
        }
        None => {
            let has_downstream = !s.children.is_empty() || s.sink;
            if has_downstream {
                let row = names.row(s);
                let key_name = &k.key_name;
                let cols: Vec<&Ident> = k.aggs.iter().map(|a| &a.name).collect();
                let agg_tys: Vec<&TokenStream> = k.aggs.iter().map(|a| &a.agg_ty).collect();
                quote! {
                    let __k: #key_ty = #key_fn(__v);
                    let __acc = self.#f.state.entry(::core::clone::Clone::clone(&__k));
                    #(#adds)*
                    let __row = #row {
                        #key_name: __k,
                        #( #cols: #rt::aggregate::Aggregate::output(&<#agg_tys as ::core::default::Default>::default(), &__acc.#cols), )*
                    };
                    let __v = &__row;
                    #post
                }
            } else {
                quote! {
                    let __k: #key_ty = #key_fn(__v);
                    let __acc = self.#f.state.entry(__k);
                    #(#adds)*
                }
            }
        }
        Some((WindowKind::Tumbling { size }, lateness)) => {
            let late = late(&pascal(&s.name), windowed(size, size));
            quote! {
                let __k: #key_ty = #key_fn(__v);
                match self.#f.state.acc_for(__ts, __k, #size, #lateness) {
                    ::core::option::Option::Some(__acc) => { #(#adds)* }
                    ::core::option::Option::None => { #late }
                }
            }
        }
        Some((WindowKind::Sliding { size, slide }, lateness)) => {
            let late = late(&pascal(&s.name), windowed(size, slide));
            quote! {
                let __k: #key_ty = #key_fn(__v);
                if self.#f.state.add(__ts, __k, #size, #slide, #lateness, |__acc| { #(#adds)* }) { #late }
            }
        }
        Some((WindowKind::Session { gap }, lateness)) => {
            let late = late(
                &pascal(&s.name),
                quote!(#rt::window::LateReason::session(__ts, #gap)),
            );
            quote! {
                let __k: #key_ty = #key_fn(__v);
                if self.#f.state.add(__ts, __k, #gap, #lateness, |__acc| { #(#adds)* }) { #late }
            }
        }
    }
}

/// Whether a tumbling or sliding stage must sort a closed window's rows by key (a
/// constant `bool` expression). Sorting makes output independent of hash order; it can
/// be skipped when nothing can observe the order: the stage is no sink, and every stage
/// reading it is a tumbling or sliding aggregate whose aggregates are all
/// `ORDER_INSENSITIVE` (a fact about types, so a constant the compiler folds) and whose
/// lateness is at least this stage's. That last condition means no row can be late
/// there (a row's time is its window's end - 1, and a window closes only once the
/// watermark passes its end + lateness), so none reaches the late output in hash order.
fn rows_need_sorting(plan: &Plan, s: &StagePlan, lateness: i64) -> TokenStream {
    let rt = rt();
    if s.sink || s.children.is_empty() {
        return quote!(true);
    }
    let mut aggs = Vec::new();
    for c in &s.children {
        let child = &plan.stages[c.stage];
        let Some((k, w)) = child
            .keyed
            .as_ref()
            .and_then(|k| k.window.as_ref().map(|w| (k, w)))
        else {
            return quote!(true);
        };
        if matches!(w.kind, WindowKind::Session { .. }) || w.lateness < lateness {
            return quote!(true);
        }
        aggs.extend(k.aggs.iter().map(|a| &a.agg_ty));
    }
    quote!({
        const UNORDERED: bool = true #( && <#aggs as #rt::aggregate::Aggregate>::ORDER_INSENSITIVE )*;
        !UNORDERED
    })
}

/// Field names of a joined row: the two inputs' names (`left`/`right` for a self-join).
fn join_field_names(s: &StagePlan, j: &JoinPlan) -> (Ident, Ident) {
    if s.input == j.right {
        (format_ident!("left"), format_ident!("right"))
    } else {
        (s.input.clone(), j.right.clone())
    }
}

/// Late-output variants of a join stage, one per input.
fn late_join_variants(s: &StagePlan, j: &JoinPlan) -> (Ident, Ident) {
    let (l, r) = join_field_names(s, j);
    let stage = camel(&s.name.to_string());
    (
        format_ident!("{}{}", stage, camel(&l.to_string())),
        format_ident!("{}{}", stage, camel(&r.to_string())),
    )
}

fn window_size(kind: WindowKind) -> i64 {
    match kind {
        WindowKind::Tumbling { size } | WindowKind::Sliding { size, .. } => size,
        WindowKind::Session { gap } => gap,
    }
}

fn join_state(s: &StagePlan, j: &JoinPlan) -> TokenStream {
    let rt = rt();
    let (kt, lt, rt_) = (&j.key_ty, &s.input_ty, &j.right_ty);
    match j.kind {
        JoinKind::Window(_) => quote!(#rt::join::WindowJoin<#kt, #lt, #rt_>),
        JoinKind::Interval { .. } => quote!(#rt::join::IntervalJoin<#kt, #lt, #rt_>),
    }
}

/// The push methods (one per input) and, for windowed joins, the fire method.
fn gen_join(s: &StagePlan, j: &JoinPlan, names: &Names, post: TokenStream) -> Vec<TokenStream> {
    let rt = rt();
    let module = &names.module;
    let f = &s.name;
    let (kt, lt, rt_) = (&j.key_ty, &s.input_ty, &j.right_ty);
    let kn = &j.key_name;
    let (lname, rname) = join_field_names(s, j);
    let (lv, rv) = late_join_variants(s, j);
    let joined = format_ident!("{}Joined", camel(&s.name.to_string()));
    let scratch = format_ident!("__fired_{}", s.name);
    let push_l = format_ident!("__push_{}_left", s.name);
    let push_r = format_ident!("__push_{}_right", s.name);
    let lf = annotate(&j.left_fn, lt);
    let rf = annotate(&j.right_fn, rt_);
    let late = |v: &Ident| quote!(out.collect(#module::Output::Late(#module::Late::#v(::core::clone::Clone::clone(__v), #rt::window::LateReason::Closed))););
    let (late_l, late_r) = (late(&lv), late(&rv));
    let sig = |name: &Ident, ty: &Type| quote!(fn #name<C: #rt::Collector<#module::Output>>(&mut self, __v: &#ty, __ts: i64, out: &mut C));
    let (sig_l, sig_r) = (sig(&push_l, lt), sig(&push_r, rt_));
    match &j.kind {
        JoinKind::Window(w) => {
            let size = window_size(w.kind);
            let slide = match w.kind {
                WindowKind::Sliding { slide, .. } => slide,
                _ => size,
            };
            let lateness = w.lateness;
            let fire = format_ident!("__fire_{}", s.name);
            let (own_l, own_r) = (owned_push(&push_l), owned_push(&push_r));
            // The by-value push moves the event into the buffers (a late event comes back
            // for the late output); the by-reference one clones it once.
            let owned = |name: &Ident,
                         ty: &Type,
                         kf: &TokenStream,
                         add: TokenStream,
                         late: &Ident| {
                quote! {
                    #[inline(always)]
                    #[allow(unused_variables)]
                    fn #name<C: #rt::Collector<#module::Output>>(&mut self, __v: #ty, __ts: i64, out: &mut C) {
                        let __k: #kt = #kf(&__v);
                        if let ::core::option::Option::Some(__late) = self.#f.state.#add(__ts, __k, __v, #size, #slide, #lateness) {
                            let __why = #rt::window::LateReason::windowed(__ts, #size, #slide);
                            out.collect(#module::Output::Late(#module::Late::#late(__late, __why)));
                        }
                    }
                }
            };
            vec![
                owned(&own_l, lt, &lf, quote!(add_left_or_late), &lv),
                owned(&own_r, rt_, &rf, quote!(add_right_or_late), &rv),
                quote! {
                    #[inline(always)]
                    #sig_l { self.#own_l(::core::clone::Clone::clone(__v), __ts, out) }
                },
                quote! {
                    #[inline(always)]
                    #sig_r { self.#own_r(::core::clone::Clone::clone(__v), __ts, out) }
                },
                quote! {
                    #[allow(unused_variables)]
                    fn #fire<C: #rt::Collector<#module::Output>>(&mut self, out: &mut C) {
                        let mut __fired = ::core::mem::take(&mut self.#scratch);
                        let mut __done = self.#f.state.spare_right();
                        for __f in __fired.drain(..) {
                            let #rt::join::JoinFired { start: __start, end: __end, key: mut __key, left: mut __left, right: mut __right } = __f;
                            let __ts = __end - 1;
                            let __n = __left.len();
                            // Each pair's row is built by moving the buffered events in and
                            // back out (no clones); rights wait in `__done` for the next left.
                            for (__i, mut __l) in __left.drain(..).enumerate() {
                                let __again = __i + 1 < __n;
                                for __r in __right.drain(..) {
                                    let __row = #module::#joined {
                                        #kn: __key,
                                        window_start: __start,
                                        window_end: __end,
                                        #lname: __l,
                                        #rname: __r,
                                    };
                                    {
                                        let __v = &__row;
                                        #post
                                    }
                                    let #module::#joined { #kn: __k2, #lname: __l2, #rname: __r2, .. } = __row;
                                    __key = __k2;
                                    __l = __l2;
                                    if __again {
                                        __done.push(__r2);
                                    }
                                }
                                ::core::mem::swap(&mut __right, &mut __done);
                            }
                            self.#f.state.recycle(__left, __right);
                        }
                        self.#f.state.recycle(::std::vec::Vec::new(), __done);
                        self.#scratch = __fired;
                    }
                },
            ]
        }
        JoinKind::Interval { lower, upper } => {
            let body = |add: TokenStream, kf: &TokenStream, late: &TokenStream| {
                quote! {
                    let __k: #kt = #kf(__v);
                    let mut __pairs = ::core::mem::take(&mut self.#scratch);
                    if !self.#f.state.#add(__ts, __k, ::core::clone::Clone::clone(__v), #lower, #upper, &mut __pairs) { #late }
                    for __p in __pairs.drain(..) {
                        let __row = #module::#joined { #kn: __p.key, #lname: __p.left, #rname: __p.right };
                        let __ts = __p.ts;
                        let __v = &__row;
                        #post
                    }
                    self.#scratch = __pairs;
                }
            };
            let bl = body(quote!(add_left), &lf, &late_l);
            let br = body(quote!(add_right), &rf, &late_r);
            vec![
                quote! { #[inline(always)] #[allow(unused_variables)] #sig_l { #bl } },
                quote! { #[inline(always)] #[allow(unused_variables)] #sig_r { #br } },
            ]
        }
    }
}

/// The by-value variant of a join's push method.
fn owned_push(push: &Ident) -> Ident {
    format_ident!("{}_owned", push)
}

/// A stage's state struct: what a checkpoint stores under the stage's name.
/// `tokens`, each located at `at` with its hygiene unchanged: diagnostics about them point
/// there. (A path whose tokens come from two places is reported over the whole macro.)
fn located_at(tokens: TokenStream, at: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|t| match t {
            TokenTree::Group(g) => {
                let mut inner = Group::new(g.delimiter(), located_at(g.stream(), at));
                inner.set_span(g.span().located_at(at));
                TokenTree::Group(inner)
            }
            mut t => {
                t.set_span(t.span().located_at(at));
                t
            }
        })
        .collect()
}

/// A stage's state struct. `blame` is where an error about the state type not being
/// `Checkpointable` points: the key type, for keyed stages (their accumulators always are).
fn stage_struct(
    stage: &Ident,
    sname: &str,
    state_ty: &TokenStream,
    field_doc: &str,
    blame: Span,
) -> TokenStream {
    let rt = rt();
    let serde = serde_tokens();
    let serde_path = SERDE;
    let doc = format!("State of stage `{sname}`: the value of `\"{sname}\"` in a checkpoint.");
    let state_layout = located_at(quote!(<#state_ty as #rt::Checkpointable>::LAYOUT), blame);
    quote! {
        #[doc = #doc]
        #[derive(Default, Clone, Debug, PartialEq, #serde::Serialize, #serde::Deserialize)]
        #[serde(crate = #serde_path, transparent)]
        pub struct #stage {
            #[doc = #field_doc]
            pub state: #state_ty,
        }

        impl #rt::delta::Tracked for #stage {
            type Delta = #rt::delta::DeltaOf<#state_ty>;
            fn version(&self) -> #rt::delta::Version {
                #rt::delta::Tracked::version(&self.state)
            }
            fn write_delta(
                &self,
                since: ::core::option::Option<#rt::delta::Version>,
                name: &'static str,
                w: &mut #rt::codec::StageWriter<'_>,
            ) -> ::core::result::Result<(), #rt::CheckpointError> {
                #rt::delta::Tracked::write_delta(&self.state, since, name, w)
            }
            fn apply_delta(&mut self, delta: Self::Delta) {
                #rt::delta::Tracked::apply_delta(&mut self.state, delta)
            }
        }

        impl #rt::Checkpointable for #stage {
            const LAYOUT: u64 = #rt::fingerprint::combine(
                #rt::fingerprint::fnv1a(#sname),
                #state_layout,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `rows_need_sorting` for the first stage of `text`, as a string without spaces.
    fn sorting_of_first_stage(text: &str) -> String {
        let plan = crate::plan_str(text).expect("valid");
        let s = &plan.stages[0];
        let late = s.keyed.as_ref().unwrap().window.as_ref().unwrap().lateness;
        rows_need_sorting(&plan, s, late)
            .to_string()
            .replace(' ', "")
    }

    const HEAD: &str = "pipeline P; source bids: Bid, event_time = |b| b.ts, max_delay = 1s;
        counts = bids.key_by(a: u64 = |b| b.a).window(sliding(2s, 500ms)).aggregate(n = count());";

    #[test]
    fn rows_feeding_only_windowed_aggregates_are_left_to_the_aggregates_types() {
        let code = sorting_of_first_stage(&format!(
            "{HEAD} hot = counts.key_by(e: i64 = |c| c.window_end).window(tumbling(500ms))
                .aggregate(top = custom(Hot, |c| (c.n, c.a)), total: u64 = sum(|c| c.n));
             sink hot;"
        ));
        assert!(code.contains("constUNORDERED:bool=true&&<Hot"), "{code}");
        assert!(code.contains("aggregate::Sum<u64>as"), "{code}");
        assert!(code.contains("!UNORDERED"), "{code}");
    }

    #[test]
    fn rows_are_sorted_when_their_order_can_be_seen() {
        let cases = [
            // The stage is a sink.
            format!("{HEAD} sink counts;"),
            // A running (unwindowed) aggregate emits a row per update.
            format!("{HEAD} t = counts.key_by(e: i64 = |c| c.window_end).aggregate(n = count()); sink t;"),
            // A session window.
            format!("{HEAD} t = counts.key_by(e: i64 = |c| c.window_end).window(session(1s)).aggregate(n = count()); sink t;"),
            // Less lateness downstream: rows could be late there, in hash order.
            "pipeline P; source bids: Bid, event_time = |b| b.ts, max_delay = 1s;
                counts = bids.key_by(a: u64 = |b| b.a).window(tumbling(2s), allowed_lateness = 1s).aggregate(n = count());
                t = counts.key_by(e: i64 = |c| c.window_end).window(tumbling(2s)).aggregate(n = count()); sink t;".to_string(),
            // A stateless child that is a sink.
            format!("{HEAD} t = counts.filter(|c| c.n > 1); sink t;"),
        ];
        for text in &cases {
            assert_eq!(sorting_of_first_stage(text), "true", "{text}");
        }
    }
}

//! How events move: `process` stamps an event with its time and hands it to its
//! source's push method, which calls the push methods of the stages reading it, and so
//! on down the plan. User closures are called in place, so the optimizer sees one loop
//! body, as if written by hand.

use proc_macro2::TokenStream;
use quote::quote;
use syn::Ident;

use super::Cx;
use crate::closure;
use crate::names::{self, Side};
use crate::plan::{Child, SourcePlan, StagePlan};

/// Each source's watermark delay, as a named constant.
pub fn source_consts(cx: &Cx) -> Vec<TokenStream> {
    let sources = cx.plan.sources.iter();
    sources
        .map(|src| {
            let name = names::constant(&src.name, "MAX_DELAY_MS");
            let doc = format!(
                "How far the watermark of source `{}` stays behind its newest event time, ms.",
                src.name
            );
            let value = super::ms_literal(src.max_delay_ms);
            quote!(#[doc = #doc] const #name: i64 = #value;)
        })
        .collect()
}

/// The push method of each source.
pub fn source_pushes(cx: &Cx) -> Vec<TokenStream> {
    let (rt, module) = (&cx.rt, &cx.plan.module);
    let mut methods = Vec::new();
    for src in &cx.plan.sources {
        let push = names::source_push(&src.name);
        let ty = &src.ty;
        // A source whose only consumer is a windowed join hands its events over by value.
        let (param, body) = match owned_target(cx, &src.children, src.sink) {
            Some(target) => (quote!(#ty), quote!(self.#target(__v, __ts, out);)),
            None => {
                let sink = src.sink.then(|| names::variant(&src.name));
                (quote!(&#ty), emit_children(cx, &src.children, sink))
            }
        };
        methods.push(quote! {
            #[inline(always)]
            #[allow(unused_variables)]
            fn #push<C: #rt::Collector<#module::Output>>(&mut self, __v: #param, __ts: i64, out: &mut C) { #body }
        });
        if let Some((last, rest)) = owned_last(cx, src) {
            let owned = source_push_owned(&src.name);
            let calls = rest.iter().map(|c| {
                let f = cx.plan.stages[c.stage].names.push_for(c.side);
                quote!(self.#f(&__v, __ts, out);)
            });
            methods.push(quote! {
                #[inline(always)]
                fn #owned<C: #rt::Collector<#module::Output>>(&mut self, __v: #ty, __ts: i64, out: &mut C) {
                    #(#calls)*
                    self.#last(__v, __ts, out);
                }
            });
        }
    }
    methods
}

/// The by-value push of a source whose last reader moves the event's key into its state.
fn source_push_owned(source: &Ident) -> Ident {
    quote::format_ident!("{}_owned", names::source_push(source))
}

/// True if stage `s` has a by-value push that moves the event's key into its state.
pub fn takes_owned_key(s: &StagePlan) -> bool {
    s.pre.is_empty() && s.stateful.as_ref().is_some_and(|p| p.takes_owned_key())
}

/// For a source that is no sink and whose last reader takes owned events (see
/// [`takes_owned_key`]): that reader's by-value push, and the readers before it (they
/// borrow the event first).
fn owned_last<'a>(cx: &Cx, src: &'a SourcePlan) -> Option<(Ident, &'a [Child])> {
    let (last, rest) = src.children.split_last()?;
    let s = &cx.plan.stages[last.stage];
    if src.sink || last.side != Side::Main || !takes_owned_key(s) {
        return None;
    }
    Some((s.names.push_owned(Side::Main), rest))
}

/// What a stage does with a result `__v`: check its declared type, send it to every
/// stage reading it and to its sink.
pub fn stage_tail(cx: &Cx, s: &StagePlan) -> TokenStream {
    let assert = s.declared.as_ref().map(|t| quote!(let __v: &#t = __v;));
    let children = emit_children(cx, &s.children, s.sink.then(|| names::variant(&s.name)));
    quote!(#assert #children)
}

/// [`stage_tail`] for a stage whose result is the local `__row`, not used after the
/// tail: the sink takes it by move instead of a clone (a closed window's rows: one key
/// allocation and free fewer per row). `None` when operators after the stage (`post`)
/// make `__v` another value.
pub fn stage_tail_owned(cx: &Cx, s: &StagePlan) -> Option<TokenStream> {
    if !s.post.is_empty() {
        return None;
    }
    let assert = s.declared.as_ref().map(|t| quote!(let __v: &#t = __v;));
    let children = emit_children(cx, &s.children, None);
    let module = &cx.plan.module;
    let sink = s.sink.then(|| {
        let v = names::variant(&s.name);
        quote!(out.collect(#module::Output::#v(__row));)
    });
    Some(quote!(#assert #children #sink))
}

/// The by-value push of a stage that is the only consumer of a value (its events can
/// then be moved into the stage's buffers rather than cloned).
fn owned_target(cx: &Cx, children: &[Child], sink: bool) -> Option<Ident> {
    let [c] = children else { return None };
    let s = &cx.plan.stages[c.stage];
    if sink || c.side == Side::Main || !s.stateful.as_ref()?.takes_owned(s, cx) {
        return None;
    }
    Some(s.names.push_owned(c.side))
}

/// Code that sends `__v` to every child stage and to the sink.
fn emit_children(cx: &Cx, children: &[Child], sink: Option<Ident>) -> TokenStream {
    let calls = children.iter().map(|c| {
        let f = cx.plan.stages[c.stage].names.push_for(c.side);
        quote!(self.#f(__v, __ts, out);)
    });
    let module = &cx.plan.module;
    let sink =
        sink.map(|v| quote!(out.collect(#module::Output::#v(::core::clone::Clone::clone(__v)));));
    quote!(#(#calls)* #sink)
}

/// How an event enters: `process` owns it, `process_ref` borrows it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    Owned,
    Borrowed,
}

/// How `process` passes a source's event to its push method: by value if it can be moved
/// (`process_ref` clones it then: the stage keeps it), else by reference.
fn source_arg(cx: &Cx, src: &SourcePlan, entry: Entry) -> (Ident, TokenStream) {
    let push = names::source_push(&src.name);
    if entry == Entry::Owned && owned_last(cx, src).is_some() {
        return (source_push_owned(&src.name), quote!(event));
    }
    let owned = owned_target(cx, &src.children, src.sink).is_some();
    let arg = match (entry, owned) {
        (Entry::Owned, true) | (Entry::Borrowed, false) => quote!(event),
        (Entry::Owned, false) => quote!(&event),
        (Entry::Borrowed, true) => quote!(::core::clone::Clone::clone(event)),
    };
    (push, arg)
}

/// The body of `Pipeline::event_time`: the source's `event_time` closure.
pub fn event_time_body(cx: &Cx) -> TokenStream {
    let (rt, module) = (&cx.rt, &cx.plan.module);
    let time = |src: &SourcePlan, e: TokenStream| {
        let f = closure::annotate(&src.event_time, &src.ty);
        quote!(::core::option::Option::Some(#rt::pipeline::EventTime::event_time_ms(#f(#e))))
    };
    if let [src] = cx.plan.sources.as_slice() {
        return time(src, quote!(event));
    }
    let arms = cx.plan.sources.iter().map(|src| {
        let v = names::variant(&src.name);
        let t = time(src, quote!(e));
        quote!(#module::Input::#v(e) => #t,)
    });
    quote!(match event { #(#arms)* })
}

/// The body of `process` (or of `process_ref`, as `entry` says). One source: its clock is
/// the pipeline's. Several: each has its own, and the pipeline's watermark is the smallest
/// (a join must wait for both inputs).
pub fn process_body(cx: &Cx, entry: Entry) -> TokenStream {
    let (rt, module) = (&cx.rt, &cx.plan.module);
    let borrow = (entry == Entry::Owned).then(|| quote!(&));
    let stamp = |src: &SourcePlan| {
        let event_time = closure::annotate(&src.event_time, &src.ty);
        let (push, event) = source_arg(cx, src, entry);
        let time = quote!(let __ts: i64 = #rt::pipeline::EventTime::event_time_ms(#event_time(#borrow event)););
        let max_delay = names::constant(&src.name, "MAX_DELAY_MS");
        (
            time,
            quote!(Self::#max_delay),
            quote!(self.#push(#event, __ts, out);),
        )
    };
    if let [src] = cx.plan.sources.as_slice() {
        let (time, max_delay, push) = stamp(src);
        return quote! {
            #time
            let moved = self.__clock.observe(__ts, #max_delay);
            #push
            if moved {
                self.__advance(out);
            }
        };
    }
    let arms = cx.plan.sources.iter().enumerate().map(|(i, src)| {
        let v = names::variant(&src.name);
        let (time, max_delay, push) = stamp(src);
        quote! {
            #module::Input::#v(event) => {
                #time
                self.__sources[#i].observe(__ts, #max_delay);
                #push
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
}

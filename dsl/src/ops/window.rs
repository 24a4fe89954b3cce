//! `window(tumbling(5min) | sliding(10min, 1min) | session(30s), allowed_lateness = 10s)`:
//! event-time windows for the `aggregate` that follows (after a `key_by`, or over all
//! events), or for a `join`. Their code (which windows an event falls in, when they
//! close) is here; the aggregate and the join call it.

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Ident, Token, Type};

use super::{join, OpDef, Operator};
use crate::check::stage::StageBuilder;
use crate::diag::{self, Errors, Known};
use crate::expand::ms_literal;
use crate::names::StageNames;
use crate::parse::DurationLit;

/// The table row.
pub const OP: OpDef = OpDef {
    name: Known {
        name: "window",
        aka: &["windowed", "window_by"],
    },
    parse: |input| Ok(Box::new(input.parse::<WindowDef>()?)),
};

/// Window kinds, and their other names.
const KINDS: &[Known] = &[
    Known {
        name: "tumbling",
        aka: &["fixed", "tumble"],
    },
    Known {
        name: "sliding",
        aka: &["hopping", "hop", "slide"],
    },
    Known {
        name: "session",
        aka: &["sessions", "gap"],
    },
];

const OPTIONS: &[Known] = &[Known {
    name: "allowed_lateness",
    aka: &["lateness", "allowed_delay"],
}];

/// A window as written.
pub struct WindowDef {
    kind: Ident,
    args: Vec<DurationLit>,
    /// Span of the whole `kind(..)`.
    span: Span,
    lateness: Option<DurationLit>,
}

/// Window kinds, in ms.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum WindowKind {
    /// Fixed, non-overlapping.
    Tumbling {
        /// Size.
        size: i64,
    },
    /// Fixed size, a new one every `slide`.
    Sliding {
        /// Size.
        size: i64,
        /// Slide.
        slide: i64,
    },
    /// Gap-separated per key.
    Session {
        /// Gap.
        gap: i64,
    },
}

/// A window with its allowed lateness.
pub struct Window {
    /// Kind and durations.
    pub kind: WindowKind,
    /// Allowed lateness, ms.
    pub lateness: i64,
    /// Where the kind and its durations were written (`tumbling(5min)`).
    pub span: Span,
    /// Where the lateness was written (the window's span if it was not).
    pub lateness_span: Span,
}

/// A `window` waiting for its `aggregate`.
pub struct PendingWindow {
    /// The window.
    pub window: Window,
    /// The `window` token.
    pub at: Span,
}

impl Parse for WindowDef {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let kind: Ident = input.parse()?;
        let args_content;
        let paren = syn::parenthesized!(args_content in input);
        let args = Punctuated::<DurationLit, Token![,]>::parse_terminated(&args_content)?;
        let span = kind.span().join(paren.span.join()).unwrap_or(kind.span());
        let mut lateness = None;
        if input.peek(Token![,]) {
            input.parse::<Token![,]>()?;
            if !input.is_empty() {
                let key: Ident = input.parse()?;
                if key != "allowed_lateness" {
                    let list = "the option is `allowed_lateness = <duration>`";
                    let msg = diag::unknown("window option", &key.to_string(), OPTIONS, list);
                    return Err(syn::Error::new(key.span(), msg));
                }
                input.parse::<Token![=]>()?;
                lateness = Some(input.parse()?);
            }
        }
        Ok(WindowDef {
            kind,
            args: args.into_iter().collect(),
            span,
            lateness,
        })
    }
}

impl Operator for WindowDef {
    fn plan(&self, at: &Ident, b: &mut StageBuilder) {
        match std::mem::replace(&mut b.join, join::Waiting::No) {
            join::Waiting::Window(j) => return j.complete(self, b),
            // The join's error was reported; its window is not a second mistake.
            join::Waiting::Failed => {
                b.join = join::Waiting::Failed;
                return;
            }
            join::Waiting::No => {}
        }
        if b.grouping_refused(at) {
            return;
        }
        if b.window.is_some() {
            b.error(at.span(), "a stage has one window");
            return;
        }
        // Without `key_by`, a window over all events (checked at `aggregate`).
        if let Some(window) = self.plan_window(b.errs) {
            b.window = Some(PendingWindow {
                window,
                at: at.span(),
            });
        }
    }
}

fn positive(d: &DurationLit, what: &str, errs: &mut Errors) -> i64 {
    if d.ms <= 0 {
        errs.push(d.span, format!("the {what} must be more than zero"));
    }
    d.ms
}

impl WindowDef {
    /// The window's span (`tumbling(5min)`), for errors about its kind.
    pub fn kind_span(&self) -> Span {
        self.kind.span()
    }

    /// Checks kind, durations and lateness.
    pub fn plan_window(&self, errs: &mut Errors) -> Option<Window> {
        let kind = self.kind.to_string();
        let kind = match (kind.as_str(), self.args.as_slice()) {
            ("tumbling", [size]) => WindowKind::Tumbling {
                size: positive(size, "window size", errs),
            },
            ("sliding", [size, slide_lit]) => {
                let size = positive(size, "window size", errs);
                let slide = positive(slide_lit, "slide", errs);
                if slide > size {
                    errs.push(slide_lit.span, "the slide is longer than the window: events between windows would be lost; use a slide <= size (or a tumbling window)");
                }
                WindowKind::Sliding { size, slide }
            }
            ("session", [gap]) => WindowKind::Session {
                gap: positive(gap, "session gap", errs),
            },
            ("tumbling", _) => {
                errs.push(self.span, "`tumbling` takes one duration: `tumbling(5min)`");
                return None;
            }
            ("sliding", _) => {
                errs.push(
                    self.span,
                    "`sliding` takes the size and the slide: `sliding(10min, 1min)`",
                );
                return None;
            }
            ("session", _) => {
                errs.push(self.span, "`session` takes the gap: `session(30s)`");
                return None;
            }
            (other, _) => {
                let list = "use `tumbling(5min)`, `sliding(10min, 1min)` or `session(30s)`";
                errs.push(
                    self.kind.span(),
                    diag::unknown("window", other, KINDS, list),
                );
                return None;
            }
        };
        let lateness = match &self.lateness {
            Some(d) if d.ms < 0 => {
                errs.push(d.span, "allowed lateness cannot be negative");
                0
            }
            Some(d) => d.ms,
            None => 0,
        };
        Some(Window {
            kind,
            lateness,
            span: self.span,
            lateness_span: self.lateness.as_ref().map_or(self.span, |d| d.span),
        })
    }
}

/// A window's durations as named constants of the pipeline struct
/// (`const PER_5MIN_SIZE_MS: i64 = 300_000;`), and how code refers to them.
pub struct Consts {
    /// The constants' items.
    pub items: Vec<TokenStream>,
    /// Size (gap, for sessions).
    pub size: TokenStream,
    /// Slide (size, for tumbling windows).
    pub slide: TokenStream,
    /// Allowed lateness.
    pub lateness: TokenStream,
}

impl Consts {
    /// The constants of stage `names`' window `w`.
    pub fn new(names: &StageNames, w: &Window) -> Consts {
        let mut items = Vec::new();
        let mut constant = |what: &str, doc: String, ms: i64| {
            let name = names.constant(what);
            let doc = format!("{doc} of stage `{}`, ms.", names.field);
            let value = ms_literal(ms);
            items.push(quote!(#[doc = #doc] const #name: i64 = #value;));
            quote!(Self::#name)
        };
        let (size, slide) = match w.kind {
            WindowKind::Tumbling { size } => {
                let s = constant("SIZE_MS", "Window size".into(), size);
                (s.clone(), s)
            }
            WindowKind::Sliding { size, slide } => (
                constant("SIZE_MS", "Window size".into(), size),
                constant("SLIDE_MS", "Window slide".into(), slide),
            ),
            WindowKind::Session { gap } => {
                let g = constant("GAP_MS", "Session gap".into(), gap);
                (g.clone(), g)
            }
        };
        let lateness = constant("LATENESS_MS", "Allowed lateness".into(), w.lateness);
        Consts {
            items,
            size,
            slide,
            lateness,
        }
    }
}

impl Window {
    /// True for session windows.
    pub fn is_session(&self) -> bool {
        matches!(self.kind, WindowKind::Session { .. })
    }

    /// The window as a state layout records it (`window tumbling 300000ms, lateness 0ms`).
    pub fn layout(&self) -> crate::lock::layout::Part {
        let kind = match self.kind {
            WindowKind::Tumbling { size } => format!("tumbling {size}ms"),
            WindowKind::Sliding { size, slide } => format!("sliding {size}ms/{slide}ms"),
            WindowKind::Session { gap } => format!("session {gap}ms"),
        };
        crate::lock::layout::Part::Window {
            kind,
            lateness: self.lateness,
            span: self.span,
            lateness_span: self.lateness_span,
        }
    }

    /// `plan::Window { .. }`.
    pub fn plan_data(&self, rt: &TokenStream) -> TokenStream {
        let l = ms_literal(self.lateness);
        match self.kind {
            WindowKind::Tumbling { size } => {
                let size = ms_literal(size);
                quote!(#rt::plan::Window::Tumbling { size_ms: #size, lateness_ms: #l })
            }
            WindowKind::Sliding { size, slide } => {
                let (size, slide) = (ms_literal(size), ms_literal(slide));
                quote!(#rt::plan::Window::Sliding { size_ms: #size, slide_ms: #slide, lateness_ms: #l })
            }
            WindowKind::Session { gap } => {
                let gap = ms_literal(gap);
                quote!(#rt::plan::Window::Session { gap_ms: #gap, lateness_ms: #l })
            }
        }
    }

    /// The state of per-key windows of accumulators `acc`.
    pub fn keyed_state(&self, rt: &TokenStream, key: &Type, acc: &TokenStream) -> TokenStream {
        let stored = self.stored_key(rt, key);
        let align = super::key_by::line_aligned(rt, &stored, acc);
        match self.kind {
            WindowKind::Tumbling { .. } => quote!(#rt::window::Tumbling<#stored, #acc, #align>),
            WindowKind::Sliding { .. } => quote!(#rt::window::Sliding<#stored, #acc, #align>),
            WindowKind::Session { .. } => quote!(#rt::window::Session<#key, #acc>),
        }
    }

    /// The key type of this window's tables (see [`super::key_by::stored_key`]); sessions,
    /// whose keys are kept whole, keep the key's own type.
    pub fn stored_key(&self, rt: &TokenStream, key: &Type) -> TokenStream {
        match self.kind {
            WindowKind::Session { .. } => quote!(#key),
            _ => super::key_by::stored_key(rt, key),
        }
    }

    /// Folds the event `__v` at `__ts` into the accumulators `__acc` of its windows with
    /// `adds`: those of its key, if `key` computes one (`__kr`, `__k` for sessions), else the windows over
    /// all events. `late(reason)` reports an event whose window has closed.
    pub fn accumulate(
        &self,
        c: &Consts,
        names: &StageNames,
        key: Option<TokenStream>,
        adds: &TokenStream,
        late: &dyn Fn(TokenStream) -> TokenStream,
    ) -> TokenStream {
        let rt = quote!(::simplestream::__rt);
        let (size, slide, lateness) = (&c.size, &c.slide, &c.lateness);
        let windowed = late(quote!(#rt::window::LateReason::windowed(__ts, #size, #slide)));
        // A window over all events has no key to compute or hash.
        // Tumbling and sliding windows look the key up by borrow (`__kr`), sessions
        // keep it (`__k`).
        let k = key.as_ref().map(|_| match self.is_session() {
            true => quote!(__k,),
            false => quote!(__kr,),
        });
        let f = &names.field;
        match self.kind {
            WindowKind::Tumbling { .. } => quote! {
                #key
                match self.#f.state.acc_for(__ts, #k #size, #lateness) {
                    ::core::option::Option::Some(__acc) => { #adds }
                    ::core::option::Option::None => { #windowed }
                }
            },
            WindowKind::Sliding { .. } => quote! {
                #key
                if self.#f.state.add(__ts, #k #size, #slide, #lateness, |__acc| { #adds }) { #windowed }
            },
            WindowKind::Session { .. } => {
                let session = late(quote!(#rt::window::LateReason::session(__ts, #size)));
                quote! {
                    #key
                    if self.#f.state.add(__ts, #k #size, #lateness, |__acc| { #adds }) { #session }
                }
            }
        }
    }

    /// What happens when the watermark moves (`wm`), and at the end of input: closed
    /// windows go to the stage's scratch field, and its fire method sends them on.
    /// `sorted` says whether a window's rows are sorted by key.
    pub fn closing(
        &self,
        c: &Consts,
        names: &StageNames,
        sorted: TokenStream,
    ) -> (TokenStream, TokenStream) {
        let (f, scratch, fire) = (&names.field, &names.scratch, &names.fire);
        let (size, lateness) = (&c.size, &c.lateness);
        if self.is_session() {
            let fire = quote!(if !self.#scratch.is_empty() { self.#fire(out); });
            return (
                quote! { self.#f.state.advance(wm, #lateness, &mut self.#scratch); #fire },
                quote! { self.#f.state.flush(#lateness, &mut self.#scratch); #fire },
            );
        }
        // One window at a time: rows in flight stay one window's worth.
        let drain = quote! {
            while self.#f.state.close_next_in(#size, #lateness, #sorted, &mut self.#scratch) {
                self.#fire(out);
            }
        };
        (
            quote! { if self.#f.state.set_watermark(wm) { #drain } },
            quote! {
                let __wm = self.#f.state.flush_watermark(#size, #lateness);
                if self.#f.state.set_watermark(__wm) { #drain }
            },
        )
    }
}

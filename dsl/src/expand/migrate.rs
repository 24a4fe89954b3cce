//! Migrations: a stage's state converted from the layout it had (`#[migrate(..)]`), and
//! the `Pipeline` methods that find and run them.

use proc_macro2::TokenStream;
use quote::{quote, ToTokens};
use syn::{ExprClosure, Ident, Type};

use super::plan_data::type_text;
use super::Cx;
use crate::ops::window::Window;
use crate::parse::DurationLit;
use crate::plan::StagePlan;
use crate::upgrade::Migration;

/// A stage's migrations, sorted by kind.
#[derive(Default)]
struct Wanted<'a> {
    added: Vec<&'a Ident>,
    key: Option<(&'a ExprClosure, &'a Type)>,
    lateness: Option<&'a DurationLit>,
}

fn sorted(migrations: &[Migration]) -> syn::Result<Wanted<'_>> {
    let mut w = Wanted::default();
    for m in migrations {
        let twice = || syn::Error::new(m.span(), "this migration is declared twice");
        match m {
            Migration::Added { columns, .. } => w.added.extend(columns),
            Migration::Key {
                convert, old_ty, ..
            } => {
                if w.key.replace((convert, old_ty)).is_some() {
                    return Err(twice());
                }
            }
            Migration::Lateness { old, .. } => {
                if w.lateness.replace(old).is_some() {
                    return Err(twice());
                }
            }
        }
    }
    Ok(w)
}

/// The conversion of an aggregate's state: an expression of the stage's state type,
/// reading `bytes` in `codec`.
pub fn state(
    s: &StagePlan,
    cx: &Cx,
    migrations: &[Migration],
    key_ty: Option<&Type>,
    window: Option<&Window>,
    cols: &[(&Ident, &TokenStream)],
) -> syn::Result<TokenStream> {
    let windowed = window.is_some();
    let rt = &cx.rt;
    let w = sorted(migrations)?;
    let at = |m: &dyn Fn(&Migration) -> bool| {
        migrations
            .iter()
            .find(|x| m(x))
            .map(|x| x.span())
            .expect("a migration of that kind")
    };
    for c in &w.added {
        if !cols.iter().any(|(n, _)| n == c) {
            let names: Vec<String> = cols.iter().map(|(n, _)| n.to_string()).collect();
            return Err(syn::Error::new(
                c.span(),
                format!(
                    "`{c}` is not a column of this aggregate (its columns: {})",
                    names.join(", ")
                ),
            ));
        }
    }
    if !w.added.is_empty() && w.added.len() == cols.len() {
        return Err(syn::Error::new(
            at(&|m| matches!(m, Migration::Added { .. })),
            "every column is new: nothing is left to migrate; remove `#[migrate(..)]` and drop the old state with `--allow-dropped-state`",
        ));
    }
    let converts = !w.added.is_empty() || w.key.is_some();
    if w.lateness.is_some() && !windowed {
        return Err(syn::Error::new(
            at(&|m| matches!(m, Migration::Lateness { .. })),
            "`old_lateness` needs a window: this stage has none",
        ));
    }
    if w.key.is_some() && key_ty.is_none() {
        return Err(syn::Error::new(
            at(&|m| matches!(m, Migration::Key { .. })),
            "`old_key` needs a key: this stage has none",
        ));
    }
    let state_path = s.names.path(&s.names.state);
    if !converts {
        return Ok(quote!(#rt::codec::read::<#state_path>(codec, bytes)?));
    }
    Ok(match (key_ty, windowed) {
        (Some(key_ty), _) if window.is_some_and(Window::is_session) => {
            keyed_sessions(s, cx, &w, key_ty, cols)
        }
        (Some(key_ty), false) => keyed(s, cx, &w, key_ty, cols),
        (Some(key_ty), true) => keyed_windows(s, cx, &w, key_ty, cols),
        (None, _) => global_windows(s, cx, &w, cols),
    })
}

/// `struct __Old` (the accumulator without the added columns) and `__acc`, a closure
/// from an old accumulator to a new one whose added columns start from their default.
fn old_acc(s: &StagePlan, cx: &Cx, w: &Wanted, cols: &[(&Ident, &TokenStream)]) -> TokenStream {
    let (rt, serde, serde_path) = (&cx.rt, &cx.serde, cx.serde_path);
    let acc = s.names.path(&s.names.acc);
    let (kept_names, kept_aggs): (Vec<_>, Vec<_>) = cols
        .iter()
        .filter(|(n, _)| !w.added.contains(n))
        .copied()
        .unzip();
    let rest = (!w.added.is_empty()).then(|| quote!(..::core::default::Default::default()));
    quote! {
        #[derive(#serde::Deserialize)]
        #[serde(crate = #serde_path)]
        struct __Old { #( #kept_names: <#kept_aggs as #rt::aggregate::Aggregate>::Acc, )* }
        let __acc = |__v: __Old| #acc { #( #kept_names: __v.#kept_names, )* #rest };
    }
}

/// [`old_acc`], and `__rekey`: a closure from an old per-key map to a new one, keys
/// converted (keys that convert to one new key are merged). Returns the old key type too.
fn rekey(
    s: &StagePlan,
    cx: &Cx,
    w: &Wanted,
    key_ty: &Type,
    cols: &[(&Ident, &TokenStream)],
) -> (TokenStream, TokenStream) {
    let rt = &cx.rt;
    let acc = s.names.path(&s.names.acc);
    let (old_key, convert) = match w.key {
        Some((f, old)) => (old.to_token_stream(), f.to_token_stream()),
        None => (key_ty.to_token_stream(), quote!(|k| k)),
    };
    let old_acc = old_acc(s, cx, w, cols);
    let prelude = quote! {
        #old_acc
        let __convert = #convert;
        let __rekey = |mut __old: #rt::KeyedState<#old_key, __Old>| -> #rt::KeyedState<#key_ty, #acc> {
            let mut __new: #rt::KeyedState<#key_ty, #acc> = ::core::default::Default::default();
            for (__k, __v) in __old.drain() {
                let __k: #key_ty = __convert(__k);
                let __v = __acc(__v);
                match __new.get_mut(&__k) {
                    ::core::option::Option::Some(__a) => #rt::aggregate::Accumulator::merge(__a, &__v),
                    ::core::option::Option::None => {
                        __new.insert(__k, __v);
                    }
                }
            }
            __new
        };
    };
    (prelude, old_key)
}

/// A per-key state read in its old layout and rebuilt entry by entry.
fn keyed(
    s: &StagePlan,
    cx: &Cx,
    w: &Wanted,
    key_ty: &Type,
    cols: &[(&Ident, &TokenStream)],
) -> TokenStream {
    let rt = &cx.rt;
    let state_path = s.names.path(&s.names.state);
    let acc = s.names.path(&s.names.acc);
    let (prelude, old_key) = rekey(s, cx, w, key_ty, cols);
    let stored = crate::ops::key_by::stored_key(rt, key_ty);
    let align = crate::ops::key_by::line_aligned(rt, &stored, &acc);
    quote!({
        #prelude
        let __old: #rt::KeyedState<#old_key, __Old> = #rt::codec::read(codec, bytes)?;
        let mut __state: #rt::spill::SpillState<#stored, #acc, #align> = ::core::default::Default::default();
        for (__k, __v) in __rekey(__old).drain() {
            __state.insert(::core::convert::Into::into(__k), __v);
        }
        #state_path { state: __state }
    })
}

/// Tumbling or sliding windows per key read in their old layout, each window's map
/// rebuilt entry by entry. The new state is written in the checkpoint's codec and read
/// back as the stage's state: the windows' own reader rebuilds what is not saved.
fn keyed_windows(
    s: &StagePlan,
    cx: &Cx,
    w: &Wanted,
    key_ty: &Type,
    cols: &[(&Ident, &TokenStream)],
) -> TokenStream {
    let (rt, serde, serde_path) = (&cx.rt, &cx.serde, cx.serde_path);
    let acc = s.names.path(&s.names.acc);
    let (prelude, old_key) = rekey(s, cx, w, key_ty, cols);
    let map = quote!(::std::collections::BTreeMap);
    reencode(
        s,
        cx,
        quote! {
            #prelude
            #[derive(#serde::Deserialize)]
            #[serde(crate = #serde_path)]
            struct __OldWindows { watermark: i64, windows: #map<i64, #rt::KeyedState<#old_key, __Old>> }
            #[derive(#serde::Serialize)]
            #[serde(crate = #serde_path)]
            struct __NewWindows { watermark: i64, windows: #map<i64, #rt::KeyedState<#key_ty, #acc>> }
            let __old: __OldWindows = #rt::codec::read(codec, bytes)?;
            let __new = __NewWindows {
                watermark: __old.watermark,
                windows: __old.windows.into_iter().map(|(__s, __m)| (__s, __rekey(__m))).collect(),
            };
        },
    )
}

/// Session windows per key read in their old layout: each session's accumulators
/// converted, and the sessions of keys that convert to one merged where they overlap.
fn keyed_sessions(
    s: &StagePlan,
    cx: &Cx,
    w: &Wanted,
    key_ty: &Type,
    cols: &[(&Ident, &TokenStream)],
) -> TokenStream {
    let (rt, serde, serde_path) = (&cx.rt, &cx.serde, cx.serde_path);
    let acc = s.names.path(&s.names.acc);
    let (old_key, convert) = match w.key {
        Some((f, old)) => (old.to_token_stream(), f.to_token_stream()),
        None => (key_ty.to_token_stream(), quote!(|k| k)),
    };
    let old_acc = old_acc(s, cx, w, cols);
    reencode(
        s,
        cx,
        quote! {
            #old_acc
            let __convert = #convert;
            #[derive(#serde::Deserialize)]
            #[serde(crate = #serde_path)]
            struct __OldSession { start: i64, end: i64, acc: __Old }
            #[derive(#serde::Deserialize)]
            #[serde(crate = #serde_path)]
            struct __OldSessions { watermark: i64, sessions: #rt::KeyedState<#old_key, ::std::vec::Vec<__OldSession>> }
            #[derive(#serde::Serialize)]
            #[serde(crate = #serde_path)]
            struct __NewSessions { watermark: i64, sessions: #rt::KeyedState<#key_ty, ::std::vec::Vec<#rt::window::SessionWindow<#acc>>> }
            let mut __old: __OldSessions = #rt::codec::read(codec, bytes)?;
            let mut __new = __NewSessions { watermark: __old.watermark, sessions: ::core::default::Default::default() };
            for (__k, __list) in __old.sessions.drain() {
                let __k: #key_ty = __convert(__k);
                for __s in __list {
                    let __s = #rt::window::SessionWindow { start: __s.start, end: __s.end, acc: __acc(__s.acc) };
                    #rt::window::merge_session(__new.sessions.entry(__k.clone()), __s);
                }
            }
        },
    )
}

/// Windows over all events (no key) read in their old layout, added columns filled in.
fn global_windows(
    s: &StagePlan,
    cx: &Cx,
    w: &Wanted,
    cols: &[(&Ident, &TokenStream)],
) -> TokenStream {
    let (rt, serde, serde_path) = (&cx.rt, &cx.serde, cx.serde_path);
    let acc = s.names.path(&s.names.acc);
    let old_acc = old_acc(s, cx, w, cols);
    let map = quote!(::std::collections::BTreeMap);
    reencode(
        s,
        cx,
        quote! {
            #old_acc
            #[derive(#serde::Deserialize)]
            #[serde(crate = #serde_path)]
            struct __OldWindows { watermark: i64, windows: #map<i64, __Old> }
            #[derive(#serde::Serialize)]
            #[serde(crate = #serde_path)]
            struct __NewWindows { watermark: i64, windows: #map<i64, #acc> }
            let __old: __OldWindows = #rt::codec::read(codec, bytes)?;
            let __new = __NewWindows {
                watermark: __old.watermark,
                windows: __old.windows.into_iter().map(|(__s, __a)| (__s, __acc(__a))).collect(),
            };
        },
    )
}

/// `convert` (which leaves the new state's saved form in `__new`), then `__new` written
/// in `codec` and read back as the stage's state.
fn reencode(s: &StagePlan, cx: &Cx, convert: TokenStream) -> TokenStream {
    let rt = &cx.rt;
    let state_path = s.names.path(&s.names.state);
    quote!({
        #convert
        let mut __bytes = ::std::vec::Vec::new();
        #rt::codec::write(codec, &__new, &mut __bytes)?;
        #rt::codec::read::<#state_path>(codec, &__bytes)?
    })
}

/// `plan::Earlier { .. }`: the layout the migrations convert from, as the plan describes it.
fn earlier(w: &Wanted, rt: &TokenStream) -> TokenStream {
    let key = match w.key {
        Some((_, t)) => {
            let t = type_text(t);
            quote!(::core::option::Option::Some(#t))
        }
        None => quote!(::core::option::Option::None),
    };
    let added: Vec<String> = w.added.iter().map(|c| c.to_string()).collect();
    let lateness = match w.lateness {
        Some(d) => {
            let ms = d.ms;
            quote!(::core::option::Option::Some(#ms))
        }
        None => quote!(::core::option::Option::None),
    };
    quote!(#rt::plan::Earlier { key_type: #key, added_columns: &[#(#added),*], lateness_ms: #lateness })
}

/// What the migrations do, for the restart's message.
fn describe(w: &Wanted) -> String {
    let mut parts = Vec::new();
    if !w.added.is_empty() {
        let cols: Vec<String> = w.added.iter().map(|c| format!("`{c}`")).collect();
        parts.push(format!("added {} from their default", cols.join(", ")));
    }
    if let Some((_, t)) = w.key {
        parts.push(format!("key converted from `{}`", type_text(t)));
    }
    if let Some(d) = w.lateness {
        parts.push(format!("allowed lateness was {} ms", d.ms));
    }
    parts.join(", ")
}

/// `Pipeline::migration` and `Pipeline::migrate_stage` for the stages that declare
/// migrations (`conversions`: each stage and its conversion, or the error to show).
pub fn methods(cx: &Cx, conversions: &[(&StagePlan, syn::Result<TokenStream>)]) -> TokenStream {
    let rt = &cx.rt;
    let mut checks = Vec::new();
    let mut runs = Vec::new();
    for (s, conv) in conversions {
        let (Ok(w), Ok(conv)) = (sorted(&s.upgrade.migrations), conv) else {
            runs.extend(conv.as_ref().err().map(|e| e.to_compile_error()));
            continue;
        };
        let (name, field) = (s.name.to_string(), &s.names.field);
        let (earlier, desc) = (earlier(&w, rt), describe(&w));
        let matches = quote!(stage == #name && Self::PLAN.stage(#name).is_some_and(|s| s.state_layout_as(&#earlier) == from.layout));
        checks.push(quote!(if #matches { return ::core::option::Option::Some(#desc); }));
        runs.push(
            quote!(if #matches { self.#field = #conv; return ::core::result::Result::Ok(true); }),
        );
    }
    if checks.is_empty() && runs.is_empty() {
        return TokenStream::new();
    }
    quote! {
        fn migration(stage: &str, from: &#rt::upgrade::StageLayout) -> ::core::option::Option<&'static str> {
            #(#checks)*
            ::core::option::Option::None
        }

        #[allow(unreachable_code)]
        fn migrate_stage(&mut self, stage: &str, from: &#rt::upgrade::StageLayout, codec: #rt::Codec, bytes: &[u8]) -> ::core::result::Result<bool, #rt::CheckpointError> {
            #(#runs)*
            ::core::result::Result::Ok(false)
        }
    }
}

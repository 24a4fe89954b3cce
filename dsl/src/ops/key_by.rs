//! `key_by(name: Type = |e| key)`: groups events by a key column, for the `aggregate`
//! that follows (optionally after a `window`).

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::{Expr, Ident, Pat, Type};

use super::{OpDef, Operator};
use crate::check::stage::StageBuilder;
use crate::closure;
use crate::diag::{Errors, Known};
use crate::expand::plan_data::type_text;
use crate::parse::Field;

/// The table row.
pub const OP: OpDef = OpDef {
    name: Known {
        name: "key_by",
        aka: &["group_by", "group", "partition_by", "keyed"],
    },
    parse: |input| Ok(Box::new(KeyBy(input.parse()?))),
};

struct KeyBy(Field);

/// A typed key column.
pub struct Key {
    /// Column name.
    pub name: Ident,
    /// Its type.
    pub ty: Type,
    /// The key of an event (returning `ty`).
    pub f: Expr,
    /// For `|e| e.field.clone()` (or `.to_owned()`): the parameter and `e.field`, so the
    /// key is looked up by borrow and cloned only when it is inserted.
    by_ref: Option<(Pat, Expr)>,
}

/// A `key_by` waiting for its `aggregate`.
pub struct PendingKey {
    /// The key, or its name if it has no type (reported).
    pub key: Result<Key, Ident>,
    /// The `key_by` token.
    pub at: Span,
}

impl Operator for KeyBy {
    fn plan(&self, at: &Ident, b: &mut StageBuilder) {
        if b.grouping_refused(at) {
            return;
        }
        if let Some(w) = b.window.take() {
            b.error(w.at, "`window` comes after `key_by`: write `.key_by(name: Type = |e| ...).window(...)` (a `window` without `key_by` is over all events)");
        }
        if b.stateful.is_some() || b.key.is_some() {
            b.error(at.span(), "a stage has one `key_by`; start a new stage (`next = this.key_by(...)...;`) to group again");
            return;
        }
        let example = "key_by(customer: String = |o| o.customer.clone())";
        let key =
            Key::from_field(&self.0, "key_by", example, b.errs).ok_or_else(|| self.0.name.clone());
        b.key = Some(PendingKey { key, at: at.span() });
    }
}

/// The type state tables keep a key of type `ty` as: a `String` key as
/// `simplestream_runtime::state::KeyStr` (a short key held in the table's entry, with no
/// allocation and no pointer to follow), any other as itself. Both serialize alike, so
/// checkpoints do not change.
pub fn stored_key(rt: &TokenStream, ty: &Type) -> TokenStream {
    match type_text(ty).as_str() {
        "String" | "std::string::String" | "::std::string::String" | "alloc::string::String" => {
            quote_spanned!(ty.span()=> #rt::state::KeyStr)
        }
        _ => ty.to_token_stream(),
    }
}

/// The alignment of the entries of a keyed table from `key` to `value`: chosen by their
/// size where the types are concrete, so that no entry straddles a cache line (see
/// `simplestream_runtime::state::line_align`).
pub fn line_aligned(rt: &TokenStream, key: &impl ToTokens, value: &impl ToTokens) -> TokenStream {
    quote!(#rt::state::Aligned<{ #rt::state::line_align::<#key, #value>() }>)
}

impl Key {
    /// The key column `field` of operator `op`; `None` if it has no type (reported).
    pub fn from_field(field: &Field, op: &str, example: &str, errs: &mut Errors) -> Option<Key> {
        closure::check_one_arg(&field.expr, op, example, errs);
        let Some(ty) = field.ty.clone() else {
            let name = &field.name;
            errs.push(
                name.span(),
                format!("the key needs a type: `{op}({name}: String = ...)`"),
            );
            return None;
        };
        Some(Key {
            name: field.name.clone(),
            f: closure::with_output(&field.expr, &ty.to_token_stream()),
            by_ref: closure::cloned_field(&field.expr),
            ty,
        })
    }

    /// `let __k: K = key(__v);` for events of type `event`.
    pub fn compute(&self, event: &Type) -> TokenStream {
        let (ty, f) = (&self.ty, closure::annotate(&self.f, event));
        quote!(let __k: #ty = #f(__v);)
    }

    /// `let __kr = &key;` (a borrow of the key, for `KeyedState::entry_ref`) for events of
    /// type `event`: of the event's field itself when the closure only clones a field,
    /// else of the key computed by [`compute`](Self::compute).
    pub fn compute_ref(&self, event: &Type) -> TokenStream {
        match &self.by_ref {
            Some((pat, field)) => {
                // `clone` returns the field's own type, so it must be the key type; typing
                // the borrow says so at the user's field, not at the lookup the macro wrote.
                let ty = &self.ty;
                quote_spanned!(field.span()=> let __kr: &#ty = { let #pat: &#event = __v; &(#field) };)
            }
            None => {
                let k = self.compute(event);
                quote!(#k let __kr = &__k;)
            }
        }
    }

    /// `let __kr: &mut String = &mut key;` for an owned event `__v` of type `event`,
    /// when the key is a `String` field the closure only clones: the state then takes
    /// the field's string when the key is new instead of a clone (a `String` can be
    /// taken, leaving an empty one; other types need not have a value to leave).
    pub fn compute_mut(&self, event: &Type) -> Option<TokenStream> {
        let (pat, field) = self.by_ref.as_ref()?;
        if type_text(&self.ty) != "String" {
            return None;
        }
        Some(
            quote_spanned!(field.span()=> let __kr: &mut String = { let #pat: &mut #event = &mut __v; &mut (#field) };),
        )
    }

    /// `state.#method(..)` (`prefetch` or `read_ahead`) of the keys of `events` (a slice
    /// of `event`s): borrowed from the events when the closure only clones a field, else
    /// computed into a vector.
    pub fn prefetch(&self, event: &Type, state: &TokenStream, method: &Ident) -> TokenStream {
        match &self.by_ref {
            // The borrow typed as in the push method: a wrong key type is the same error
            // at the same place, reported once.
            Some(_) => {
                let kr = self.compute_ref(event);
                quote!(#state.#method(events.iter().map(|__v| { #kr __kr }));)
            }
            None => {
                let k = self.compute(event);
                quote! {
                    let __keys: ::std::vec::Vec<_> = events.iter().map(|__v| { #k __k }).collect();
                    #state.#method(__keys.iter());
                }
            }
        }
    }

    /// The owned key for a row, after [`compute_ref`](Self::compute_ref).
    pub fn owned(&self) -> TokenStream {
        match &self.by_ref {
            Some(_) => quote!(::std::borrow::ToOwned::to_owned(__kr)),
            None => quote!(__k),
        }
    }

    /// The key as a state layout records it.
    pub fn typed(&self) -> crate::lock::layout::Typed {
        crate::lock::layout::Typed {
            name: self.name.to_string(),
            ty: crate::lock::layout::flat(&type_text(&self.ty)),
            span: self.ty.span(),
        }
    }

    /// `plan::Op::KeyBy { .. }`.
    pub fn plan_data(&self, rt: &TokenStream) -> TokenStream {
        let (key, kt) = (self.name.to_string(), type_text(&self.ty));
        quote!(#rt::plan::Op::KeyBy { key: #key, key_type: #kt })
    }
}

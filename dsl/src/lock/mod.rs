//! The state lock: a file next to a pipeline's source listing every stateful stage and
//! its state layout as deployed ([`mod@file`]). When it is there, `pipeline!` checks the
//! pipeline against it and turns a change that would lose deployed state into a compile
//! error at the changed tokens ([`diff`]); the layouts are those checkpoints record
//! ([`layout`]).

pub mod diff;
pub mod file;
pub mod layout;

use std::path::Path;

use proc_macro2::TokenStream;
use quote::quote;

use crate::diag::Errors;
use crate::plan::Plan;

/// Checks `plan` against its lock file in `dir`, if there is one: the errors, and an
/// `include_bytes!` of the lock so that cargo rebuilds the pipeline when the lock changes.
pub fn check(plan: &Plan, dir: &Path) -> TokenStream {
    let path = file::path(dir, &plan.name.to_string());
    let lock_name = format!("{}.state.lock", plan.name);
    let fail = |msg: String| syn::Error::new(plan.name.span(), msg).to_compile_error();
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return TokenStream::new(),
        Err(e) => return fail(format!("cannot read `{lock_name}`: {e}")),
    };
    let track = match path.canonicalize() {
        Ok(abs) => {
            let abs = abs.to_string_lossy().into_owned();
            quote!(
                const _: &[u8] = ::core::include_bytes!(#abs);
            )
        }
        Err(e) => return fail(format!("cannot read `{lock_name}`: {e}")),
    };
    let lock = match file::parse(&text) {
        Ok(lock) => lock,
        Err(e) => {
            let err = fail(format!(
                "`{lock_name}` {e}; rewrite it with `simplestream state lock`"
            ));
            return quote!(#track #err);
        }
    };
    let mut errs = Errors::default();
    diff::check(plan, &lock, &lock_name, &mut errs);
    let errs = errs.finish(()).err().map(|e| e.to_compile_error());
    quote!(#track #errs)
}

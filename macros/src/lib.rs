//! The `pipeline!` and `#[derive(Checkpointable)]` macros of SimpleStream.
//!
//! A thin entry point: parsing, validation and code generation live in
//! `simplestream-dsl`, where they are testable and usable at run time.
#![forbid(unsafe_code)]

use proc_macro::TokenStream;

/// Declares a stream pipeline; see the `simplestream` crate's documentation.
#[proc_macro]
pub fn pipeline(input: TokenStream) -> TokenStream {
    // The state lock is looked for next to the file the pipeline is written in.
    let source = proc_macro::Span::call_site().local_file();
    simplestream_dsl::pipeline_at(input.into(), source.as_deref()).into()
}

/// Implements `Checkpointable` for a struct or enum that also derives serde's
/// `Serialize` and `Deserialize`: its layout hash covers field names and types.
#[proc_macro_derive(Checkpointable)]
pub fn derive_checkpointable(input: TokenStream) -> TokenStream {
    simplestream_dsl::derive::checkpointable(input.into()).into()
}

/// Makes a struct's fields SQL columns for `sql "..."` statements in `pipeline!`
/// (implements `Columns` and tells `pipeline!` the fields' types).
#[proc_macro_derive(Columns)]
pub fn derive_columns(input: TokenStream) -> TokenStream {
    simplestream_dsl::sql::columns::derive(input.into()).into()
}

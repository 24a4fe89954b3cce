//! Parser, validator, planner and code generator of SimpleStream's `pipeline!` DSL.
//!
//! A plain library (not a proc-macro crate), so that the macro is a thin shim and other
//! tools (the browser playground) can parse and draw DSL text at run time.
//!
//! - [`ast`]: tokens to a syntax tree, spans kept;
//! - [`valid`]: checks with errors at the exact tokens, and the [`Plan`](valid::Plan);
//! - [`expand`]: the plan to Rust code.
//!
//! ```
//! let plan = simplestream_dsl::plan_str(r#"
//!     pipeline OrderStats;
//!     source orders: Order, event_time = |o| o.ts, max_delay = 5s;
//!     per_5min = orders
//!         .key_by(customer: String = |o| o.customer.clone())
//!         .window(tumbling(5min))
//!         .aggregate(orders = count());
//!     sink per_5min;
//! "#).unwrap();
//! assert_eq!(plan.stages[0].name.to_string(), "per_5min");
//! assert!(simplestream_dsl::plan_str("pipeline P;").err().unwrap().contains("no source"));
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod ast;
pub mod derive;
pub mod emit_plan;
pub mod expand;
pub mod valid;

use proc_macro2::TokenStream;

/// Parses, checks and expands `pipeline!` input; errors become `compile_error!`s.
pub fn pipeline(input: TokenStream) -> TokenStream {
    let text = input.to_string();
    match ast::parse(input).and_then(valid::check) {
        Ok(plan) => expand::expand(&plan, &text),
        Err(e) => e.to_compile_error(),
    }
}

/// Parses and checks DSL text (for tools), returning the plan or the error messages.
pub fn plan_str(text: &str) -> Result<valid::Plan, String> {
    let tokens: TokenStream = text.parse().map_err(|e| format!("{e}"))?;
    ast::parse(tokens).and_then(valid::check).map_err(|e| {
        e.into_iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    })
}

//! Parser, checker, planner and code generator of SimpleStream's `pipeline!` DSL.
//!
//! A plain library (not a proc-macro crate), so that the macro is a thin shim and the
//! DSL is testable at run time.
//!
//! - [`parse`]: pipeline-level syntax, spans kept;
//! - [`check`]: pipeline-level checks, with errors at the exact tokens, giving a [`Plan`];
//! - [`ops`]: the operators, one file each, with their syntax, checks and code; the
//!   table there drives parsing and "did you mean ...?";
//! - [`expand`]: the plan to Rust code, including the plan as data (`Pipeline::PLAN`);
//! - [`names`]: every generated name, made in one place;
//! - [`sql`]: `sql "SELECT ..."` statements, lowered into stage statements.
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

pub mod check;
pub mod closure;
pub mod derive;
pub mod diag;
pub mod expand;
pub mod lock;
pub mod names;
pub mod ops;
pub mod parse;
pub mod plan;
pub mod sql;
pub mod upgrade;

pub use plan::Plan;

extern crate proc_macro;

use proc_macro2::TokenStream;

/// Parses, checks and expands `pipeline!` input; errors become `compile_error!`s.
pub fn pipeline(input: TokenStream) -> TokenStream {
    pipeline_at(input, None)
}

/// [`pipeline`] written in the source file `source`: the pipeline is checked against
/// its state lock next to that file, if there is one (see [`lock`]).
pub fn pipeline_at(input: TokenStream, source: Option<&std::path::Path>) -> TokenStream {
    let text = input.to_string();
    let mut def = match parse::parse(input.clone()) {
        Ok(def) => def,
        Err(e) => return e.to_compile_error(),
    };
    // Called again by a `Columns` derive's macro, the call site is inside that macro:
    // everything generated resolves as in the user's own call instead (whose call site
    // the first round gave the source names it passed along), so that the user's
    // closures and the generated code share hygiene, as in a direct call.
    let user = sql::first_call_site(&def);
    let out = match sql::lower(&mut def, &input) {
        Ok(Some(ask_columns)) => ask_columns,
        Ok(None) => match check::check(def) {
            Ok(plan) => {
                let mut out = expand::expand(&plan, &text);
                if let Some(dir) = source.map(|f| f.parent().unwrap_or(std::path::Path::new(""))) {
                    out.extend(lock::check(&plan, dir));
                }
                out
            }
            Err(e) => e.to_compile_error(),
        },
        Err(e) => e.to_compile_error(),
    };
    match user {
        Some(site) => sql::columns::respan(out, site),
        None => out,
    }
}

/// Parses and checks DSL text (for tools), returning the plan or the error messages.
pub fn plan_str(text: &str) -> Result<Plan, String> {
    plan_tokens(text.parse().map_err(|e| format!("{e}"))?)
}

/// [`plan_str`] of tokens.
pub fn plan_tokens(tokens: TokenStream) -> Result<Plan, String> {
    let lowered =
        parse::parse(tokens.clone()).and_then(|mut def| match sql::lower(&mut def, &tokens)? {
            Some(_) => Err(syn::Error::new(
                proc_macro2::Span::call_site(),
                "SQL reads a source whose columns are not given (`__columns name { .. };`)",
            )),
            None => Ok(def),
        });
    lowered.and_then(check::check).map_err(|e| {
        e.into_iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    })
}

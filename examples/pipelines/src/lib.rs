//! SimpleStream's example pipelines, written with `pipeline!`: [`orders`] (the article's
//! orders per customer) and [`nexmark`] (the Nexmark benchmark queries), with their event
//! types. The example programs, the tests, the benchmarks and the playground share them.
//!
//! ```
//! use simplestream::Pipeline;
//! use simplestream_examples::orders::{Order, Orders};
//!
//! let mut p = Orders::new();
//! let mut out = Vec::new();
//! p.process(Order { customer: "C1".into(), amount: 2.5, ts: 1_000 }, &mut out);
//! p.finish(&mut out);
//! assert_eq!(out.len(), 1, "the one 5-minute window closes at the end");
//! assert_eq!(Orders::PLAN.stateful_stages().count(), 2);
//! ```
#![forbid(unsafe_code)]

pub mod nexmark;
pub mod orders;

/// The text of `src/orders.rs`, for tools that show a pipeline beside its source (the
/// playground).
///
/// ```
/// assert!(simplestream_examples::ORDERS_SOURCE.contains("pub pipeline Orders;"));
/// ```
pub const ORDERS_SOURCE: &str = include_str!("orders.rs");

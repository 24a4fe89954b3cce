//! # SimpleStream
//!
//! Stream pipelines whose state survives crashes. Write a pipeline once with
//! [`pipeline!`]; it becomes plain typed Rust structs that run like a hand-written loop
//! and know how to checkpoint and restore themselves.
//!
//! ```
//! use serde::{Deserialize, Serialize};
//! use simplestream::{pipeline, Pipeline};
//!
//! #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
//! pub struct Order { pub customer: String, pub amount: f64, pub ts: i64 }
//!
//! pipeline! {
//!     pub pipeline OrderStats;
//!     source orders: Order, event_time = |o| o.ts, max_delay = 5s;
//!     valid = orders.filter(|o| o.amount > 0.0);
//!     customer_stats = valid
//!         .key_by(customer: String = |o| o.customer.clone())
//!         .aggregate(count = count(), amount: f64 = sum(|o| o.amount));
//!     per_5min = valid
//!         .key_by(customer: String = |o| o.customer.clone())
//!         .window(tumbling(5min))
//!         .aggregate(orders = count(), amount: f64 = sum(|o| o.amount));
//!     sink per_5min;
//! }
//!
//! # fn main() {
//! let mut p = OrderStats::new();
//! let mut out = Vec::new();
//! for (c, a, ts) in [("C001", 12.5, 1_000), ("C001", 7.5, 2_000), ("C002", 3.0, 400_000)] {
//!     p.process(Order { customer: c.into(), amount: a, ts }, &mut out);
//! }
//! p.finish(&mut out);
//! assert_eq!(p.stage_json("customer_stats").unwrap().to_string(),
//!            r#"{"C001":{"count":2,"amount":20.0},"C002":{"count":1,"amount":3.0}}"#);
//! let first = serde_json::to_string(&out[0]).unwrap();
//! assert_eq!(first, r#"{"customer":"C001","window_start":0,"window_end":300000,"orders":2,"amount":20.0}"#);
//! # }
//! ```
#![forbid(unsafe_code)]

extern crate self as simplestream;

pub use simplestream_macros::{pipeline, Checkpointable, Columns};
pub use simplestream_runtime::*;

/// The runtime, under the path generated code uses.
#[doc(hidden)]
pub use simplestream_runtime as __rt;

/// The README's examples, compiled and run as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

/// The guides' examples (`docs/`), compiled and run as doctests.
#[doc = include_str!("../docs/sql.md")]
#[doc = include_str!("../docs/upgrades.md")]
#[cfg(doctest)]
pub struct GuideDoctests;

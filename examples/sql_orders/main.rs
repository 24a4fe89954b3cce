//! The `orders` job's windows written in SQL and compiled by `pipeline!`: the baseline
//! `simplestream sql` is measured against in `cargo xtask bench` (the same query,
//! interpreted). Same flags as `orders`.
//!
//! ```text
//! cargo run --release --example sql_orders -- --input orders.jsonl --output out.jsonl --checkpoint-dir ckpt
//! ```
#![forbid(unsafe_code)]

use std::process::ExitCode;

use serde::{Deserialize, Serialize};
use simplestream::{pipeline, Columns};

/// One order, as a JSON line: `{"customer":"C001","amount":12.5,"ts":1635739530000}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Columns)]
pub struct Order {
    /// Customer id.
    pub customer: String,
    /// Order amount.
    pub amount: f64,
    /// Event time, ms since the epoch.
    pub ts: i64,
}

pipeline! {
    /// Orders and their sum per customer and 5-minute window.
    pub pipeline SqlOrders;
    source orders: Order, event_time = |o| o.ts, max_delay = 5s;
    sql r#"SELECT customer, COUNT(*) AS orders, SUM(amount) AS amount FROM orders
           GROUP BY customer, TUMBLE(ts, INTERVAL '5' MINUTE)"#;
}

fn main() -> ExitCode {
    simplestream::runner::main::<SqlOrders>()
}

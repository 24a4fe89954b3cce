//! The `orders` pipeline: the article's orders-per-customer example.
//!
//! Shared by the `orders` example, the `simplestream` tool (to decode its binary
//! checkpoints) and the browser playground.

use serde::{Deserialize, Serialize};
use simplestream::pipeline;

/// One order, as a JSON line: `{"customer":"C001","amount":12.5,"ts":1635739530000}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Order {
    /// Customer id.
    pub customer: String,
    /// Order amount.
    pub amount: f64,
    /// Event time, ms since the epoch.
    pub ts: i64,
}

pipeline! {
    /// Orders per customer: a running count and sum (`customer_stats`, as in the
    /// article's checkpoint) and closed 5-minute windows per customer (the output).
    pub pipeline Orders;
    source orders: Order, event_time = |o| o.ts, max_delay = 5s;
    customer_stats = orders
        .key_by(customer: String = |o| o.customer.clone())
        .aggregate(count = count(), amount: f64 = sum(|o| o.amount));
    per_5min = orders
        .key_by(customer: String = |o| o.customer.clone())
        .window(tumbling(5min))
        .aggregate(orders = count(), amount: f64 = sum(|o| o.amount));
    sink per_5min;
}

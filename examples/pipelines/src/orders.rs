//! The `orders` pipeline: the article's orders-per-customer example, run by the `orders`
//! example program and the browser playground.
//!
//! ```
//! use simplestream::Pipeline;
//! use simplestream_examples::orders::{Order, Orders};
//!
//! let mut p = Orders::new();
//! let mut out = Vec::new();
//! for (i, customer) in ["C1", "C2", "C1"].into_iter().enumerate() {
//!     let order = Order { customer: customer.into(), amount: 10.0, ts: i as i64 * 1_000 };
//!     p.process(order, &mut out);
//! }
//! let stats = p.stage_json("customer_stats").unwrap();
//! assert_eq!(stats["C1"]["count"], 2, "a running count and sum per customer");
//! assert_eq!(stats["C2"]["amount"], 10.0);
//! ```

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

//! A sliding-window pipeline for the playground: per customer, 30-second windows that
//! start every 10 seconds, so each order counts in three windows.

use simplestream::pipeline;

use crate::gallery::Order;

pipeline! {
    /// Per customer, over the last 30 s, every 10 s: number of orders, biggest and mean amount.
    pub pipeline SlidingTop;
    source orders: Order, event_time = |o| o.ts, max_delay = 3s;
    per_30s = orders
        .key_by(customer: String = |o| o.customer.clone())
        .window(sliding(30s, 10s))
        .aggregate(orders = count(), biggest: f64 = max(|o| o.amount), mean = avg(|o| o.amount));
    sink per_30s;
}

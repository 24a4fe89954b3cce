//! A pipeline with a window over all events (`window` without `key_by`): one
//! accumulator per open window, not one per key.

use simplestream::pipeline;

use crate::gallery::Order;

pipeline! {
    /// All orders together, over the last minute, every 20 s: count, revenue, biggest order.
    pub pipeline AllOrders;
    source orders: Order, event_time = |o| o.ts, max_delay = 3s;
    last_minute = orders
        .window(sliding(1min, 20s), allowed_lateness = 5s)
        .aggregate(orders = count(), revenue: f64 = sum(|o| o.amount), biggest: f64 = max(|o| o.amount));
    sink last_minute;
}

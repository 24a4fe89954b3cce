//! Windows over all events: `window(..)` without `key_by`, tumbling and sliding.
use serde::{Deserialize, Serialize};
use simplestream::{pipeline, Pipeline};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Order {
    pub customer: String,
    pub amount: f64,
    pub ts: i64,
}

pipeline! {
    pub pipeline Totals;
    source orders: Order, event_time = |o| o.ts, max_delay = 5s;
    per_minute = orders
        .filter(|o| o.amount > 0.0)
        .window(tumbling(1min), allowed_lateness = 10s)
        .aggregate(orders = count(), amount: f64 = sum(|o| o.amount))
        .filter(|r| r.orders > 1);
    last_5min = orders
        .window(sliding(5min, 1min))
        .aggregate(biggest: f64 = max(|o| o.amount));
    sink per_minute;
    sink last_5min;
}

fn main() {
    let mut p = Totals::new();
    let mut out: Vec<totals::Output> = Vec::new();
    p.finish(&mut out);
    // The row has the window and the columns, no key.
    let _ = totals::PerMinuteRow { window_start: 0, window_end: 60_000, orders: 2, amount: 1.0 };
}

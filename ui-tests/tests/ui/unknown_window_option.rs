use serde::{Deserialize, Serialize};
use simplestream::pipeline;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Order {
    pub customer: String,
    pub amount: f64,
    pub ts: i64,
}

pipeline! {
    pipeline P;
    source orders: Order, event_time = |o| o.ts, max_delay = 5s;
    stats = orders
        .key_by(customer: String = |o| o.customer.clone())
        .window(tumbling(1min), allowed_latness = 10s)
        .aggregate(n = count());
    sink stats;
}

fn main() {}

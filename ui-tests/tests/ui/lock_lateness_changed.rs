use serde::{Deserialize, Serialize};
use simplestream::pipeline;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Order {
    pub customer: String,
    pub shard: u32,
    pub amount: f64,
    pub ts: i64,
}

// Locked with 0s of allowed lateness (`LockLateness.state.lock`).
pipeline! {
    pipeline LockLateness;
    source orders: Order, event_time = |o| o.ts, max_delay = 5s;
    per_5min = orders
        .key_by(customer: String = |o| o.customer.clone())
        .window(tumbling(5min), allowed_lateness = 10s)
        .aggregate(orders = count());
    sink per_5min;
}

fn main() {}

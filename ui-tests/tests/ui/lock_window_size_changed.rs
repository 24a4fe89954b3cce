use serde::{Deserialize, Serialize};
use simplestream::pipeline;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Order {
    pub customer: String,
    pub shard: u32,
    pub amount: f64,
    pub ts: i64,
}

// Locked with 5-minute windows (`LockWindowSize.state.lock`).
pipeline! {
    pipeline LockWindowSize;
    source orders: Order, event_time = |o| o.ts, max_delay = 5s;
    per_window = orders
        .key_by(customer: String = |o| o.customer.clone())
        .window(tumbling(10min))
        .aggregate(orders = count());
    sink per_window;
}

fn main() {}

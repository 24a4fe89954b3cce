use serde::{Deserialize, Serialize};
use simplestream::pipeline;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Order {
    pub customer: String,
    pub shard: u32,
    pub amount: f64,
    pub ts: i64,
}

// `per_5min` is locked (`LockStageRemoved.state.lock`) and was deleted.
pipeline! {
    pipeline LockStageRemoved;
    source orders: Order, event_time = |o| o.ts, max_delay = 5s;
    customer_stats = orders
        .key_by(customer: String = |o| o.customer.clone())
        .aggregate(count = count());
    sink customer_stats;
}

fn main() {}

use serde::{Deserialize, Serialize};
use simplestream::pipeline;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Order {
    pub customer: String,
    pub shard: u32,
    pub amount: f64,
    pub ts: i64,
}

// Locked without `max_amount` (`LockAddedColumn.state.lock`); no migration declared.
pipeline! {
    pipeline LockAddedColumn;
    source orders: Order, event_time = |o| o.ts, max_delay = 5s;
    customer_stats = orders
        .key_by(customer: String = |o| o.customer.clone())
        .aggregate(count = count(), amount: f64 = sum(|o| o.amount), max_amount: f64 = max(|o| o.amount));
    sink customer_stats;
}

fn main() {}

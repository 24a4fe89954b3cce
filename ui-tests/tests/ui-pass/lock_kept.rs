use serde::{Deserialize, Serialize};
use simplestream::pipeline;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Order {
    pub customer: String,
    pub shard: u32,
    pub amount: f64,
    pub ts: i64,
}

// Every change here keeps the locked state (`LockKept.state.lock`): a new filter, a
// column added with its migration, a rename declared with `#[was]`, a key widened with
// its migration, a lateness change with its migration, a new stateful stage.
pipeline! {
    pipeline LockKept;
    source orders: Order, event_time = |o| o.ts, max_delay = 5s;
    valid = orders.filter(|o| o.amount > 0.0);
    #[migrate(added(max_amount))]
    customer_stats = valid
        .key_by(customer: String = |o| o.customer.clone())
        .aggregate(count = count(), amount: f64 = sum(|o| o.amount), max_amount: f64 = max(|o| o.amount));
    #[was(shards)]
    #[migrate(old_key = |k: u32| -> u64 { k as u64 })]
    per_shard = valid
        .key_by(shard: u64 = |o| o.shard as u64)
        .aggregate(n = count());
    #[migrate(old_lateness = 0ms)]
    per_5min = valid
        .key_by(customer: String = |o| o.customer.clone())
        .window(tumbling(5min), allowed_lateness = 10s)
        .aggregate(orders = count());
    top = valid.distinct(customer: String = |o| o.customer.clone());
    sink customer_stats;
    sink per_5min;
}

fn main() {}

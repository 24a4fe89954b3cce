use serde::{Deserialize, Serialize};
use simplestream::pipeline;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Order {
    pub customer: String,
    pub shard: u32,
    pub amount: f64,
    pub ts: i64,
}

// Locked with a `u32` key (`LockKeyType.state.lock`).
pipeline! {
    pipeline LockKeyType;
    source orders: Order, event_time = |o| o.ts, max_delay = 5s;
    per_shard = orders
        .key_by(shard: u64 = |o| o.shard as u64)
        .aggregate(n = count());
    sink per_shard;
}

fn main() {}

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
    #[migrate(old_key = |k| k as u64)]
    stats = orders
        .key_by(shard: u64 = |o| (o.ts % 7) as u64)
        .aggregate(n = count());
    sink stats;
}

fn main() {}

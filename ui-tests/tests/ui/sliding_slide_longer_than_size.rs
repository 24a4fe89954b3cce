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
    hops = orders
        .key_by(customer: String = |o| o.customer.clone())
        .window(sliding(1min, 5min))
        .aggregate(n = count());
    sink hops;
}

fn main() {}

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
    #[migrate(added(top))]
    per_min = orders
        .key_by(customer: String = |o| o.customer.clone())
        .window(session(1min))
        .aggregate(n = count(), top: f64 = max(|o| o.amount));
    sink per_min;
}

fn main() {}

use serde::{Deserialize, Serialize};
use simplestream::pipeline;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Order {
    pub customer: Customer,
    pub amount: f64,
    pub ts: i64,
}

/// A key type with serde but without `#[derive(Checkpointable)]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Customer {
    pub id: u32,
}

pipeline! {
    pipeline P;
    source orders: Order, event_time = |o| o.ts, max_delay = 5s;
    stats = orders
        .key_by(customer: Customer = |o| o.customer.clone())
        .aggregate(n = count());
    sink stats;
}

fn main() {}

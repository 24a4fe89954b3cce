use serde::{Deserialize, Serialize};
use simplestream::{pipeline, Checkpointable};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Checkpointable)]
pub struct Order {
    pub id: u64,
    pub ts: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Checkpointable)]
pub struct Payment {
    pub order_ref: String,
    pub ts: i64,
}

pipeline! {
    pipeline P;
    source orders: Order, event_time = |o| o.ts, max_delay = 5s;
    source payments: Payment, event_time = |p| p.ts, max_delay = 5s;
    paid = orders
        .join(payments, id: u64 = |o| o.id, |p| p.order_ref.clone())
        .window(tumbling(1min));
    sink paid;
}

fn main() {}

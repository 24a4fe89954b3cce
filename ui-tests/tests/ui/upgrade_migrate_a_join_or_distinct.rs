use serde::{Deserialize, Serialize};
use simplestream::{pipeline, Checkpointable};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Checkpointable)]
pub struct Order {
    pub id: u64,
    pub customer: String,
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
    #[migrate(old_key = |k: u32| -> String { k.to_string() })]
    paid = orders
        .join(payments, id: String = |o| o.id.to_string(), |p| p.order_ref.clone())
        .window(tumbling(1min));
    #[migrate(old_key = |k: u32| -> String { k.to_string() })]
    first = orders.distinct(customer: String = |o| o.customer.clone());
    sink paid;
    sink first;
}

fn main() {}

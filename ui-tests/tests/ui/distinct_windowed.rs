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
    first_per_hour = orders
        .distinct(customer: String = |o| o.customer.clone())
        .window(tumbling(1h))
        .aggregate(n = count());
    sink first_per_hour;
}

fn main() {}

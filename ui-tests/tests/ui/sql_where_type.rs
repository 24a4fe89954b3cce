use serde::{Deserialize, Serialize};
use simplestream::{pipeline, Columns};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Columns)]
pub struct Order {
    pub customer: String,
    pub amount: f64,
    pub ts: i64,
}

pipeline! {
    pipeline P;
    source orders: Order, event_time = |o| o.ts, max_delay = 5s;
    sql r#"CREATE VIEW stats AS SELECT customer, COUNT(*) AS n FROM orders WHERE amount > 'big' GROUP BY customer"#;
    sink stats;
}

fn main() {}

//! A session-window pipeline for the playground: a customer's orders less than
//! 20 seconds apart form one session.

use simplestream::pipeline;

use crate::gallery::Order;

pipeline! {
    /// Shopping sessions per customer: orders, total and biggest order of each session.
    pub pipeline Sessions;
    source orders: Order, event_time = |o| o.ts, max_delay = 2s;
    sessions = orders
        .key_by(customer: String = |o| o.customer.clone())
        .window(session(20s), allowed_lateness = 5s)
        .aggregate(orders = count(), total: f64 = sum(|o| o.amount), biggest: f64 = max(|o| o.amount));
    sink sessions;
}

//! Version 2 of the upgrade lab's pipeline: one more aggregate column in
//! `customer_stats`, with the migration that lets it restore version 1's checkpoints.

use simplestream::pipeline;

use crate::gallery::Order;

pipeline! {
    /// Version 1 plus each customer's biggest order (`max_amount`): a checkpoint of
    /// version 1 restores, and the new column starts from its default.
    pub pipeline Orders;
    source orders: Order, event_time = |o| o.ts, max_delay = 5s;
    #[migrate(added(max_amount))]
    customer_stats = orders
        .key_by(customer: String = |o| o.customer.clone())
        .aggregate(count = count(), amount: f64 = sum(|o| o.amount), max_amount: f64 = max(|o| o.amount));
    per_5min = orders
        .key_by(customer: String = |o| o.customer.clone())
        .window(tumbling(5min))
        .aggregate(orders = count(), amount: f64 = sum(|o| o.amount));
    sink per_5min;
}

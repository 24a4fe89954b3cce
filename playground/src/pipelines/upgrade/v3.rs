//! Version 3 of the upgrade lab's pipeline: `per_5min` resized to 10 minutes, a change
//! no migration can make (its open windows would cover other times), so a restore of
//! an earlier version's checkpoint is refused.

use simplestream::pipeline;

use crate::gallery::Order;

pipeline! {
    /// Version 2 with `per_5min`'s windows resized to 10 minutes: refused on restore.
    pub pipeline Orders;
    source orders: Order, event_time = |o| o.ts, max_delay = 5s;
    #[migrate(added(max_amount))]
    customer_stats = orders
        .key_by(customer: String = |o| o.customer.clone())
        .aggregate(count = count(), amount: f64 = sum(|o| o.amount), max_amount: f64 = max(|o| o.amount));
    per_5min = orders
        .key_by(customer: String = |o| o.customer.clone())
        .window(tumbling(10min))
        .aggregate(orders = count(), amount: f64 = sum(|o| o.amount));
    sink per_5min;
}

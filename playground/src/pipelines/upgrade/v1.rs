//! Version 1 of the upgrade lab's pipeline: the article's orders per customer, as
//! deployed (the same stages as the gallery's `orders`).

use simplestream::pipeline;

use crate::gallery::Order;

pipeline! {
    /// Orders per customer: a running count and sum, and 5-minute windows.
    pub pipeline Orders;
    source orders: Order, event_time = |o| o.ts, max_delay = 5s;
    customer_stats = orders
        .key_by(customer: String = |o| o.customer.clone())
        .aggregate(count = count(), amount: f64 = sum(|o| o.amount));
    per_5min = orders
        .key_by(customer: String = |o| o.customer.clone())
        .window(tumbling(5min))
        .aggregate(orders = count(), amount: f64 = sum(|o| o.amount));
    sink per_5min;
}

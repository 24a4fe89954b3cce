//! Pipelines shared by the integration tests: one per window kind and operator.
#![allow(dead_code)]

use serde::{Deserialize, Serialize};
use simplestream::{pipeline, Checkpointable, Columns};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Columns)]
pub struct Order {
    pub customer: String,
    pub amount: f64,
    pub ts: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Item {
    pub customer: String,
    pub cents: i64,
}

/// A user-defined aggregate with a user-defined state.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Checkpointable)]
pub struct Spread {
    pub lo: Option<f64>,
    pub hi: Option<f64>,
}

#[derive(Default)]
pub struct SpreadAgg;
impl simplestream::aggregate::Aggregate for SpreadAgg {
    type Input = f64;
    type Acc = Spread;
    type Output = f64;
    fn add(&self, acc: &mut Spread, v: f64) {
        acc.lo = Some(acc.lo.map_or(v, |l| l.min(v)));
        acc.hi = Some(acc.hi.map_or(v, |h| h.max(v)));
    }
    fn merge(&self, acc: &mut Spread, o: &Spread) {
        if let Some(l) = o.lo {
            self.add(acc, l);
        }
        if let Some(h) = o.hi {
            self.add(acc, h);
        }
    }
    fn output(&self, acc: &Spread) -> f64 {
        acc.hi.unwrap_or(0.0) - acc.lo.unwrap_or(0.0)
    }
}

pipeline! {
    /// The article's example: running per-customer stats and 5-minute windows.
    pub pipeline OrderStats;
    source orders: Order, event_time = |o| o.ts, max_delay = 5s;
    valid = orders.filter(|o| o.amount > 0.0);
    customer_stats = valid
        .key_by(customer: String = |o| o.customer.clone())
        .aggregate(count = count(), amount: f64 = sum(|o| o.amount));
    per_5min = valid
        .key_by(customer: String = |o| o.customer.clone())
        .window(tumbling(5min), allowed_lateness = 2s)
        .aggregate(orders = count(), amount: f64 = sum(|o| o.amount));
    sink per_5min;
}

pipeline! {
    pub pipeline SlidingStats;
    source orders: Order, event_time = |o| o.ts, max_delay = 3s;
    per_10s = orders
        .key_by(customer: String = |o| o.customer.clone())
        .window(sliding(10s, 5s))
        .aggregate(n = count(), top: f64 = max(|o| o.amount), low: f64 = min(|o| o.amount), mean = avg(|o| o.amount));
    sink per_10s;
}

pipeline! {
    pub pipeline SessionStats;
    source orders: Order, event_time = |o| o.ts, max_delay = 2s;
    sessions = orders
        .key_by(customer: String = |o| o.customer.clone())
        .window(session(4s), allowed_lateness = 1s)
        .aggregate(n = count(), spread = custom(SpreadAgg, |o| o.amount));
    sink sessions;
}

pipeline! {
    /// map, flat_map, a running aggregate feeding a window, and two sinks.
    pub pipeline Chained;
    source orders: Order, event_time = |o| o.ts, max_delay = 1s;
    cents = orders.map(|o| -> Item { Item { customer: o.customer.clone(), cents: (o.amount * 100.0) as i64 } });
    split: Item = cents.flat_map(|i| vec![i.clone(); i.cents.rem_euclid(3) as usize]);
    totals = split
        .key_by(customer: String = |i| i.customer.clone())
        .aggregate(cents: i64 = sum(|i| i.cents), n = count())
        .filter(|r| r.n % 2 == 0);
    every_5s = totals
        .key_by(customer: String = |r| r.customer.clone())
        .window(tumbling(5s))
        .aggregate(updates = count(), last: i64 = max(|r| r.cents));
    sink totals;
    sink every_5s;
}

/// Deterministic pseudo-random orders: `n` events, `keys` customers, out of order by up to `disorder_ms`.
pub fn orders(seed: u64, n: usize, keys: u64, disorder_ms: i64) -> Vec<Order> {
    let mut s = seed;
    let mut next = move || {
        s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let mut t = 1_635_739_200_000i64;
    (0..n)
        .map(|_| {
            t += (next() % 700) as i64;
            let jitter = if disorder_ms > 0 {
                (next() % disorder_ms as u64) as i64
            } else {
                0
            };
            let amount = (next() % 10_000) as f64 / 100.0 - 5.0;
            Order {
                customer: format!("C{:03}", next() % keys),
                amount,
                ts: t - jitter,
            }
        })
        .collect()
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Checkpointable, Columns)]
pub struct Payment {
    pub order_id: u64,
    pub paid: f64,
    pub ts: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Checkpointable, Columns)]
pub struct Sale {
    pub id: u64,
    pub customer: String,
    pub amount: f64,
    pub ts: i64,
}

pipeline! {
    /// Orders matched with their payments: in the same 10 s window, and within [-2 s, +5 s].
    pub pipeline Payments;
    source sales: Sale, event_time = |s| s.ts, max_delay = 2s;
    source payments: Payment, event_time = |p| p.ts, max_delay = 2s;
    paid = sales
        .join(payments, order_id: u64 = |s| s.id, |p| p.order_id)
        .window(tumbling(10s));
    quick = sales
        .interval_join(payments, order_id: u64 = |s| s.id, |p| p.order_id, lower = 2s, upper = 5s)
        .filter(|j| j.payments.paid >= j.sales.amount);
    per_customer = quick
        .key_by(customer: String = |j| j.sales.customer.clone())
        .aggregate(n = count(), total: f64 = sum(|j| j.payments.paid));
    sink paid;
    sink quick;
}

/// Sales and payments, interleaved, each payment 0..8 s after its sale, some missing.
pub fn sales_and_payments(seed: u64, n: usize) -> Vec<payments::Input> {
    let mut s = seed;
    let mut next = move || {
        s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let mut t = 1_000_000i64;
    let mut pending: Vec<Payment> = Vec::new();
    let mut out = Vec::new();
    for id in 0..n as u64 {
        t += (next() % 900) as i64;
        let amount = (next() % 100) as f64;
        out.push(payments::Input::Sales(Sale {
            id,
            customer: format!("C{}", next() % 7),
            amount,
            ts: t,
        }));
        if next() % 5 != 0 {
            pending.push(Payment {
                order_id: id,
                paid: amount + (next() % 3) as f64 - 1.0,
                ts: t + (next() % 8_000) as i64,
            });
        }
        // Release payments whose time has come (roughly in order, some out of order).
        pending.sort_by_key(|p| std::cmp::Reverse(p.ts));
        while pending
            .last()
            .is_some_and(|p| p.ts <= t + (next() % 3_000) as i64)
        {
            out.push(payments::Input::Payments(pending.pop().unwrap()));
        }
    }
    out.extend(pending.into_iter().rev().map(payments::Input::Payments));
    out
}

pipeline! {
    /// Windows over all orders (no `key_by`), tumbling and sliding, and per-customer
    /// counts feeding an all-customer window (rows that skip the sort by key: `count` and
    /// an integer `sum` do not depend on their order).
    pub pipeline GlobalStats;
    source orders: Order, event_time = |o| o.ts, max_delay = 2s;
    every_5s = orders
        .window(tumbling(5s), allowed_lateness = 1s)
        .aggregate(n = count(), top: f64 = max(|o| o.amount));
    sliding_10s = orders
        .filter(|o| o.amount > 0.0)
        .window(sliding(10s, 5s))
        .aggregate(n = count(), amount: f64 = sum(|o| o.amount));
    per_customer = orders
        .key_by(customer: String = |o| o.customer.clone())
        .window(tumbling(5s))
        .aggregate(n = count());
    busiest = per_customer
        .window(tumbling(5s))
        .aggregate(customers = count(), orders: u64 = sum(|c| c.n));
    sink every_5s;
    sink sliding_10s;
    sink busiest;
}

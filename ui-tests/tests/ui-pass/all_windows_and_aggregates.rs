//! Every window kind and every aggregate function, including a custom aggregate whose
//! accumulator derives `Checkpointable`.

use serde::{Deserialize, Serialize};
use simplestream::aggregate::Aggregate;
use simplestream::{pipeline, Checkpointable, Pipeline};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Order {
    pub customer: String,
    pub amount: f64,
    pub qty: u32,
    pub ts: i64,
}

/// Accumulator of `Range`: user-defined state stored in checkpoints.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Checkpointable)]
pub struct RangeAcc {
    pub lo: Option<f64>,
    pub hi: Option<f64>,
}

/// Largest minus smallest value.
#[derive(Default)]
pub struct Range;
impl Aggregate for Range {
    type Input = f64;
    type Acc = RangeAcc;
    type Output = f64;
    fn add(&self, acc: &mut RangeAcc, v: f64) {
        acc.lo = Some(acc.lo.map_or(v, |l| l.min(v)));
        acc.hi = Some(acc.hi.map_or(v, |h| h.max(v)));
    }
    fn merge(&self, acc: &mut RangeAcc, o: &RangeAcc) {
        if let Some(l) = o.lo {
            self.add(acc, l);
        }
        if let Some(h) = o.hi {
            self.add(acc, h);
        }
    }
    fn output(&self, acc: &RangeAcc) -> f64 {
        acc.hi.unwrap_or(0.0) - acc.lo.unwrap_or(0.0)
    }
}

pipeline! {
    /// Running totals plus one stage per window kind.
    pub pipeline AllKinds;
    source orders: Order, event_time = |o| o.ts, max_delay = 2s;
    running = orders
        .key_by(customer: String = |o| o.customer.clone())
        .aggregate(
            n = count(),
            total: f64 = sum(|o| o.amount),
            items: u32 = sum(|o| o.qty),
            low: f64 = min(|o| o.amount),
            high: f64 = max(|o| o.amount),
            mean = avg(|o| o.amount),
            spread = custom(Range, |o| o.amount),
        );
    per_minute = orders
        .key_by(customer: String = |o| o.customer.clone())
        .window(tumbling(1min), allowed_lateness = 500ms)
        .aggregate(n = count(), total: f64 = sum(|o| o.amount));
    hopping = orders
        .key_by(customer: String = |o| o.customer.clone())
        .window(sliding(10s, 5s))
        .aggregate(biggest: u32 = max(|o| o.qty), mean_qty: u32 = avg(|o| o.qty));
    sessions = orders
        .key_by(customer: String = |o| o.customer.clone())
        .window(session(30s), allowed_lateness = 1s)
        .aggregate(n = count(), spread: f64 = custom(Range, |o| o.amount));
    sink running;
    sink per_minute;
    sink hopping;
    sink sessions;
}

fn main() {
    let mut p = AllKinds::new();
    let mut out = Vec::new();
    for (c, amount, qty, ts) in [
        ("a", 1.0, 2, 0),
        ("a", 3.0, 1, 4_000),
        ("b", 2.5, 7, 90_000),
    ] {
        p.process(
            Order {
                customer: c.into(),
                amount,
                qty,
                ts,
            },
            &mut out,
        );
    }
    p.finish(&mut out);
    assert!(!out.is_empty());
    assert!(p.stage_json("sessions").is_some());
}

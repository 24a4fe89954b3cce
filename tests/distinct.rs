//! `distinct`: the first event of each key passes, later ones are dropped; the keys seen
//! are checkpointed, so a restored pipeline drops exactly what an uninterrupted one does.

mod common;
use common::{orders, Order};

use simplestream::fingerprint::fnv1a;
use simplestream::plan::{Op, State};
use simplestream::testing::{assert_crash_equivalent, CrashPlan};
use simplestream::{pipeline, OutputRecord, Pipeline};

pipeline! {
    /// New customers: each customer's first order with a positive amount, and how many
    /// new customers each minute brought.
    pub pipeline NewCustomers;
    source orders: Order, event_time = |o| o.ts, max_delay = 5s;
    first = orders
        .filter(|o| o.amount > 0.0)
        .distinct(customer: String = |o| o.customer.clone())
        .map(|o| -> Order { Order { customer: o.customer.to_lowercase(), ..o.clone() } });
    per_minute = first.window(tumbling(1min)).aggregate(new = count());
    sink first;
    sink per_minute;
}

fn o(c: &str, amount: f64, ts: i64) -> Order {
    Order {
        customer: c.into(),
        amount,
        ts,
    }
}

fn lines(out: &[<NewCustomers as Pipeline>::Output], sink: &str) -> Vec<String> {
    out.iter()
        .filter(|r| r.sink() == sink)
        .map(|r| serde_json::to_string(r).unwrap())
        .collect()
}

#[test]
fn only_the_first_event_of_each_key_passes() {
    let mut p = NewCustomers::new();
    let mut out = Vec::new();
    p.process(o("C2", 1.0, 1_000), &mut out);
    p.process(o("C1", -1.0, 1_100), &mut out); // filtered out: C1 is not seen yet
    p.process(o("C2", 5.0, 1_200), &mut out);
    p.process(o("C1", 2.0, 1_300), &mut out);
    p.process(o("C1", 3.0, 1_400), &mut out);
    assert_eq!(
        lines(&out, "first"),
        vec![
            r#"{"customer":"c2","amount":1.0,"ts":1000}"#,
            r#"{"customer":"c1","amount":2.0,"ts":1300}"#
        ]
    );
    // The state is the sorted set of keys seen (before the map: the event's key).
    assert_eq!(
        p.stage_json("first").unwrap(),
        serde_json::json!(["C1", "C2"])
    );
}

#[test]
fn what_a_distinct_passes_feeds_later_stages() {
    let mut p = NewCustomers::new();
    let mut out = Vec::new();
    for (c, ts) in [("C1", 1_000), ("C2", 2_000), ("C1", 61_000), ("C3", 62_000)] {
        p.process(o(c, 1.0, ts), &mut out);
    }
    p.finish(&mut out);
    // C1 in the second minute is not new.
    assert_eq!(
        lines(&out, "per_minute"),
        vec![
            r#"{"window_start":0,"window_end":60000,"new":2}"#,
            r#"{"window_start":60000,"window_end":120000,"new":1}"#
        ]
    );
}

#[test]
fn the_plan_and_the_fingerprint_show_the_distinct() {
    let first = NewCustomers::PLAN.stage("first").unwrap();
    assert_eq!(
        first.ops[1],
        Op::Distinct {
            key: "customer",
            key_type: "String"
        }
    );
    assert_eq!(first.state, State::SeenKeys { key: "customer" });
    let text = "v1;pipeline NewCustomers;source orders:Order;max_delay=5000\
        ;stage first<-orders:filter|distinct(customer:String)|map\
        ;stage per_minute<-first:all|window(Tumbling { size: 60000 },lateness=0)|aggregate(new:u64=count,)";
    assert_eq!(NewCustomers::PLAN.fingerprint(), fnv1a(text));
}

#[test]
fn restored_pipelines_drop_exactly_what_uninterrupted_ones_do() {
    let events = orders(11, 3_000, 40, 4_000);
    assert_crash_equivalent::<NewCustomers>(&events, CrashPlan::EveryK(67));
    assert_crash_equivalent::<NewCustomers>(
        &events,
        CrashPlan::Random {
            seed: 5,
            crashes: 30,
        },
    );
}

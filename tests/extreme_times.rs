//! Event times near `i64::MIN` and `i64::MAX` through generated pipelines: no overflow,
//! no window ending before it starts, and an event whose windows cannot be represented
//! goes to the late output with a reason (checked against a reference in `i128`).

mod common;
use common::*;

use proptest::prelude::*;
use serde_json::Value;
use simplestream::{OutputRecord, Pipeline};

const OUT_OF_RANGE: &str = "event time out of range";

/// True if every window of `size` (a new one every `slide`) holding `ts` fits in `i64`.
fn windows_fit(ts: i64, size: i64, slide: i64) -> bool {
    let (t, size, slide) = (ts as i128, size as i128, slide as i128);
    let newest = t.div_euclid(slide) * slide;
    let oldest = newest - (size - 1 - (t - newest)) / slide * slide;
    oldest >= i64::MIN as i128 && newest + size <= i64::MAX as i128
}

fn time() -> impl Strategy<Value = i64> {
    prop_oneof![
        (0i64..400_000).prop_map(|d| i64::MIN + d),
        (0i64..400_000).prop_map(|d| i64::MAX - d),
        -400_000i64..400_000,
    ]
}

fn orders_at() -> impl Strategy<Value = Vec<Order>> {
    prop::collection::vec((time(), 0u8..3, 1u8..50), 1..40).prop_map(|v| {
        v.into_iter()
            .map(|(ts, c, a)| Order {
                customer: format!("C{c}"),
                amount: a as f64,
                ts,
            })
            .collect()
    })
}

/// Runs `events` through `P`, checks every row's window, and returns the late records
/// that carry the out-of-range reason.
fn run<P: Pipeline>(events: Vec<P::Event>) -> Vec<Value> {
    let mut p = P::new();
    let mut out = Vec::new();
    for e in events {
        p.process(e, &mut out);
    }
    p.finish(&mut out);
    let mut out_of_range = Vec::new();
    for r in &out {
        let v = serde_json::to_value(r).unwrap();
        if let (Some(s), Some(e)) = (v["window_start"].as_i64(), v["window_end"].as_i64()) {
            assert!(s < e, "window_end before window_start: {v}");
        }
        if let Some(why) = v["reason"].as_str() {
            assert!(r.is_late() && why.starts_with(OUT_OF_RANGE), "{v}");
            out_of_range.push(v);
        }
    }
    out_of_range
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn tumbling_out_of_range_events_go_late_with_a_reason(events in orders_at()) {
        let want = events.iter().filter(|o| !windows_fit(o.ts, 300_000, 300_000)).count();
        let got = run::<OrderStats>(events);
        prop_assert_eq!(got.len(), want);
        prop_assert!(got.iter().all(|v| v["stage"] == "per_5min"));
    }

    #[test]
    fn sliding_out_of_range_events_go_late_with_a_reason(events in orders_at()) {
        let want = events.iter().filter(|o| !windows_fit(o.ts, 10_000, 5_000)).count();
        prop_assert_eq!(run::<SlidingStats>(events).len(), want);
    }

    #[test]
    fn session_out_of_range_events_go_late_with_a_reason(events in orders_at()) {
        let want = events
            .iter()
            .filter(|o| o.ts as i128 + 4_000 > i64::MAX as i128)
            .count();
        prop_assert_eq!(run::<SessionStats>(events).len(), want);
    }

    #[test]
    fn global_windows_survive_extreme_times(events in orders_at()) {
        // Tumbling 5 s, sliding 10 s / 5 s (positive amounts only), and a second
        // tumbling stage on the first's rows.
        let want = events.iter().filter(|o| !windows_fit(o.ts, 5_000, 5_000)).count()
            + events.iter().filter(|o| !windows_fit(o.ts, 10_000, 5_000)).count()
            + events.iter().filter(|o| !windows_fit(o.ts, 5_000, 5_000)).count();
        prop_assert_eq!(run::<GlobalStats>(events).len(), want);
    }

    #[test]
    fn joins_survive_extreme_times(times in prop::collection::vec((time(), 0u64..4, any::<bool>()), 1..40)) {
        let events: Vec<payments::Input> = times
            .into_iter()
            .map(|(ts, id, sale)| if sale {
                payments::Input::Sales(Sale { id, customer: "C1".into(), amount: 1.0, ts })
            } else {
                payments::Input::Payments(Payment { order_id: id, paid: 1.0, ts })
            })
            .collect();
        let want = events
            .iter()
            .filter(|e| {
                let ts = match e {
                    payments::Input::Sales(s) => s.ts,
                    payments::Input::Payments(p) => p.ts,
                };
                !windows_fit(ts, 10_000, 10_000)
            })
            .count();
        let got = run::<Payments>(events);
        prop_assert_eq!(got.len(), want);
        prop_assert!(got.iter().all(|v| v["stage"] == "paid"));
    }
}

#[test]
fn an_event_at_the_end_of_time_is_reported_not_windowed() {
    let mut p = OrderStats::new();
    let mut out = Vec::new();
    let at = |ts| Order {
        customer: "C1".into(),
        amount: 1.0,
        ts,
    };
    p.process(at(i64::MAX - 400_000), &mut out);
    p.process(at(i64::MAX), &mut out);
    p.finish(&mut out);
    let (late, rows): (Vec<_>, Vec<_>) = out.iter().partition(|r| r.is_late());
    assert_eq!((late.len(), rows.len()), (1, 1), "{out:#?}");
    assert_eq!(
        serde_json::to_string(late[0]).unwrap(),
        format!(
            r#"{{"stage":"per_5min","event":{{"customer":"C1","amount":1.0,"ts":{}}},"reason":"event time out of range: its windows would start before i64::MIN or end after i64::MAX ms"}}"#,
            i64::MAX
        )
    );
    let row = serde_json::to_value(rows[0]).unwrap();
    let (start, end) = (
        row["window_start"].as_i64().unwrap(),
        row["window_end"].as_i64().unwrap(),
    );
    assert_eq!(end - start, 300_000, "{row}");
    assert!(
        start <= i64::MAX - 400_000 && i64::MAX - 400_000 < end,
        "{row}"
    );
}

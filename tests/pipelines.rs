//! Behaviour of generated pipelines, and restore equivalence (property tests).

mod common;
use common::*;

use proptest::prelude::*;
use simplestream::testing::{
    assert_crash_equivalent, run_uninterrupted, run_with_crashes, CrashPlan,
};
use simplestream::{Codec, OutputRecord, Pipeline};

fn o(c: &str, amount: f64, ts: i64) -> Order {
    Order {
        customer: c.into(),
        amount,
        ts,
    }
}

#[test]
fn article_example_counts_and_windows() {
    let mut p = OrderStats::new();
    let mut out = Vec::new();
    for i in 0..25 {
        p.process(o("C001", 1.0, 1_000 + i), &mut out);
    }
    p.process(o("C002", 2.0, 2_000), &mut out);
    p.process(o("C003", -1.0, 2_000), &mut out); // filtered out
    let state = p.stage_json("customer_stats").unwrap();
    assert_eq!(state["C001"]["count"], 25);
    assert_eq!(state["C002"]["amount"], 2.0);
    assert!(state.get("C003").is_none());
    assert!(out.is_empty(), "no window closed yet");
    // Watermark passes 300_000 + 2s lateness: the first window closes, in key order.
    p.process(o("C009", 1.0, 300_000 + 2_000 + 5_000), &mut out);
    let lines: Vec<String> = out
        .iter()
        .map(|r| serde_json::to_string(r).unwrap())
        .collect();
    assert_eq!(
        lines,
        vec![
            r#"{"customer":"C001","window_start":0,"window_end":300000,"orders":25,"amount":25.0}"#,
            r#"{"customer":"C002","window_start":0,"window_end":300000,"orders":1,"amount":2.0}"#,
        ]
    );
    // An event for the closed window is late, reported, not counted in any window.
    out.clear();
    p.process(o("C001", 5.0, 299_999), &mut out);
    assert_eq!(out.len(), 1);
    assert!(out[0].is_late());
    assert_eq!(out[0].sink(), "late");
    assert_eq!(
        serde_json::to_string(&out[0]).unwrap(),
        r#"{"stage":"per_5min","event":{"customer":"C001","amount":5.0,"ts":299999}}"#
    );
    // ...but the running count (not windowed) still counts it.
    assert_eq!(p.stage_json("customer_stats").unwrap()["C001"]["count"], 26);
}

#[test]
fn finish_closes_all_windows_and_keeps_them_closed() {
    let mut p = OrderStats::new();
    let mut out = Vec::new();
    p.process(o("C001", 1.0, 10_000), &mut out);
    p.finish(&mut out);
    assert_eq!(out.len(), 1);
    out.clear();
    p.process(o("C001", 1.0, 20_000), &mut out);
    assert!(
        out[0].is_late(),
        "window [0, 300000) already emitted at end of input"
    );
    out.clear();
    p.process(o("C001", 1.0, 400_000), &mut out);
    assert!(out.is_empty(), "a later window is open as usual");
}

#[test]
fn sliding_windows_hold_each_event_in_every_window() {
    let mut p = SlidingStats::new();
    let mut out = Vec::new();
    p.process(o("A", 3.0, 7_000), &mut out);
    p.process(o("A", 5.0, 8_000), &mut out);
    p.finish(&mut out);
    let rows: Vec<String> = out
        .iter()
        .map(|r| serde_json::to_string(r).unwrap())
        .collect();
    assert_eq!(
        rows,
        vec![
            r#"{"customer":"A","window_start":0,"window_end":10000,"n":2,"top":5.0,"low":3.0,"mean":4.0}"#,
            r#"{"customer":"A","window_start":5000,"window_end":15000,"n":2,"top":5.0,"low":3.0,"mean":4.0}"#,
        ]
    );
}

#[test]
fn sessions_merge_and_use_custom_aggregates() {
    let mut p = SessionStats::new();
    let mut out = Vec::new();
    for (amount, ts) in [(1.0, 1_000), (9.0, 4_000), (4.0, 20_000)] {
        p.process(o("A", amount, ts), &mut out);
    }
    p.finish(&mut out);
    let rows: Vec<String> = out
        .iter()
        .map(|r| serde_json::to_string(r).unwrap())
        .collect();
    assert_eq!(
        rows,
        vec![
            r#"{"customer":"A","window_start":1000,"window_end":8000,"n":2,"spread":8.0}"#,
            r#"{"customer":"A","window_start":20000,"window_end":24000,"n":1,"spread":0.0}"#,
        ]
    );
}

#[test]
fn global_windows_have_one_row_per_window_and_no_key() {
    let mut p = GlobalStats::new();
    let mut out = Vec::new();
    for (c, amount, ts) in [
        ("A", 3.0, 1_000),
        ("B", 5.0, 4_000),
        ("A", 1.0, 6_000),
        ("C", 2.0, 9_000), // watermark 7 s: [0, 5 s) closes, with its 1 s of lateness
        ("B", 7.0, 4_999), // late, except for the sliding window [0, 10 s)
        ("A", 4.0, 12_000), // watermark 10 s: [0, 10 s) closes
        ("D", 9.0, 2_000), // late everywhere
    ] {
        p.process(o(c, amount, ts), &mut out);
    }
    p.finish(&mut out);
    let rows: Vec<String> = out
        .iter()
        .map(|r| serde_json::to_string(r).unwrap())
        .collect();
    let late: Vec<&str> = rows
        .iter()
        .filter(|r| r.contains(r#""stage""#))
        .map(|r| r.as_str())
        .collect();
    let (b, d) = (
        r#""event":{"customer":"B","amount":7.0,"ts":4999}}"#,
        r#""event":{"customer":"D","amount":9.0,"ts":2000}}"#,
    );
    assert_eq!(
        late,
        vec![
            format!(r#"{{"stage":"every_5s",{b}"#),
            format!(r#"{{"stage":"sliding_10s",{b}"#),
            format!(r#"{{"stage":"per_customer",{b}"#),
            format!(r#"{{"stage":"every_5s",{d}"#),
            format!(r#"{{"stage":"sliding_10s",{d}"#),
            format!(r#"{{"stage":"per_customer",{d}"#),
        ]
    );
    let results: Vec<&str> = rows
        .iter()
        .filter(|r| !r.contains(r#""stage""#))
        .map(|r| r.as_str())
        .collect();
    assert_eq!(
        results,
        vec![
            // Watermark 7 s, stages in order.
            r#"{"window_start":0,"window_end":5000,"n":2,"top":5.0}"#,
            r#"{"window_start":-5000,"window_end":5000,"n":2,"amount":8.0}"#,
            r#"{"window_start":0,"window_end":5000,"customers":2,"orders":2}"#,
            // Watermark 10 s: the late B is in [0, 10 s).
            r#"{"window_start":0,"window_end":10000,"n":5,"amount":18.0}"#,
            r#"{"window_start":5000,"window_end":10000,"customers":2,"orders":2}"#,
            // End of input.
            r#"{"window_start":5000,"window_end":10000,"n":2,"top":2.0}"#,
            r#"{"window_start":10000,"window_end":15000,"n":1,"top":4.0}"#,
            r#"{"window_start":5000,"window_end":15000,"n":3,"amount":7.0}"#,
            r#"{"window_start":10000,"window_end":20000,"n":1,"amount":4.0}"#,
            r#"{"window_start":10000,"window_end":15000,"customers":1,"orders":1}"#,
        ]
    );
}

#[test]
fn a_global_window_checkpoints_accumulators_by_window_start() {
    let mut p = GlobalStats::new();
    let mut out = Vec::new();
    p.process(o("A", 3.0, 1_000), &mut out);
    p.process(o("B", 5.0, 6_000), &mut out);
    assert_eq!(
        p.stage_json("every_5s").unwrap(),
        serde_json::json!({"watermark": 4000, "windows": {
            "0": {"n": 1, "top": 3.0},
            "5000": {"n": 1, "top": 5.0},
        }})
    );
}

#[test]
fn chained_stages_and_two_sinks() {
    let events = orders(7, 500, 5, 500);
    let r = run_uninterrupted::<Chained>(&events);
    let sinks: std::collections::BTreeSet<&str> = r.outputs.iter().map(|o| o.sink()).collect();
    assert!(
        sinks.contains("totals") && sinks.contains("every_5s"),
        "{sinks:?}"
    );
    // Every `totals` row passed the filter.
    for out in &r.outputs {
        if let chained::Output::Totals(row) = out {
            assert_eq!(row.n % 2, 0);
        }
    }
}

#[test]
fn fingerprints_differ_between_pipelines_and_are_stable() {
    // Pinned: a fingerprint is stored in every checkpoint, so a change here makes every
    // existing checkpoint of that pipeline foreign. Change a value only on purpose.
    let pinned = [
        (OrderStats::FINGERPRINT, 0x5301_0e64_63b6_0a37),
        (SlidingStats::FINGERPRINT, 0x7927_0e4e_c2aa_6aa9),
        (SessionStats::FINGERPRINT, 0x7f6c_644c_688c_d2b3),
        (Chained::FINGERPRINT, 0xa654_8415_8557_5f36),
        (Payments::FINGERPRINT, 0xae0e_6494_be01_fcdb),
        (GlobalStats::FINGERPRINT, 0x7661_7042_dc7a_9e4f),
    ];
    for (i, (got, want)) in pinned.iter().enumerate() {
        assert_eq!(got, want, "pipeline #{i}: {got:#018x}");
    }
    let distinct: std::collections::BTreeSet<u64> = pinned.iter().map(|p| p.0).collect();
    assert_eq!(distinct.len(), pinned.len());
    assert_eq!(OrderStats::STAGES, &["customer_stats", "per_5min"]);
    assert_eq!(OrderStats::SINKS, &["per_5min"]);
}

#[test]
fn json_checkpoint_has_the_article_shape() {
    let mut p = OrderStats::new();
    let mut out = Vec::new();
    p.process(o("C001", 12.5, 1_635_739_530_000), &mut out);
    let bytes =
        simplestream::envelope::encode(&p, Codec::Json, 8, 1_635_739_530_000, Default::default())
            .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(v["timestamp"], 1_635_739_530_000i64);
    assert_eq!(v["customer_stats"]["C001"]["count"], 1);
    assert_eq!(v["customer_stats"]["C001"]["amount"], 12.5);
    assert_eq!(v["pipeline"], "OrderStats");
    assert_eq!(v["checkpoint_id"], 8);
    assert!(v["checksum"].as_str().unwrap().starts_with("crc32:"));
}

#[test]
fn equal_states_built_in_different_orders_give_the_same_json_bytes() {
    // Amounts that add up exactly in any order; times within one window, none late.
    let events: Vec<Order> = (0..40)
        .map(|i| {
            o(
                &format!("C{:02}", (i * 7) % 23),
                0.25 * i as f64,
                1_635_739_530_000 + i,
            )
        })
        .collect();
    let build = |events: &mut dyn Iterator<Item = &Order>| {
        let mut p = OrderStats::new();
        let mut out = Vec::new();
        for e in events {
            p.process(e.clone(), &mut out);
        }
        assert!(out.is_empty());
        p
    };
    let forward = build(&mut events.iter());
    let backward = build(&mut events.iter().rev());
    let encode = |p: &OrderStats, codec| {
        simplestream::envelope::encode(p, codec, 8, 1_635_739_530_000, Default::default()).unwrap()
    };
    // Keys are sorted in JSON: the bytes are the same whatever the insertion order.
    assert_eq!(
        encode(&forward, Codec::Json),
        encode(&backward, Codec::Json)
    );
    // Binary does not sort (state.rs): its bytes show the two tables differ in order.
    assert_ne!(
        encode(&forward, Codec::Binary),
        encode(&backward, Codec::Binary)
    );
    // ...and the state it decodes to is the same.
    let state = |b: &[u8]| {
        let p = simplestream::envelope::decode::<OrderStats>(b).unwrap().1;
        OrderStats::STAGES
            .iter()
            .map(|s| p.stage_json(s))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        state(&encode(&forward, Codec::Binary)),
        state(&encode(&backward, Codec::Binary))
    );
}

#[test]
fn crash_every_k_events_for_every_pipeline() {
    let events = orders(42, 3_000, 20, 4_000);
    assert_crash_equivalent::<OrderStats>(&events, CrashPlan::EveryK(97));
    assert_crash_equivalent::<SlidingStats>(&events, CrashPlan::EveryK(101));
    assert_crash_equivalent::<SessionStats>(&events, CrashPlan::EveryK(89));
    assert_crash_equivalent::<GlobalStats>(&events, CrashPlan::EveryK(83));
    assert_crash_equivalent::<Chained>(
        &events,
        CrashPlan::Random {
            seed: 3,
            crashes: 40,
        },
    );
}

/// `OrderStats` with a restore that loses everything (what a snapshotting bug would do).
struct Forgetful(OrderStats);

impl Pipeline for Forgetful {
    type Event = Order;
    type Output = <OrderStats as Pipeline>::Output;
    const NAME: &'static str = "Forgetful";
    const FINGERPRINT: u64 = OrderStats::FINGERPRINT;
    const STAGES: &'static [&'static str] = OrderStats::STAGES;
    const SINKS: &'static [&'static str] = OrderStats::SINKS;
    const PLAN: &'static simplestream::plan::Plan = OrderStats::PLAN;
    const SOURCE_TEXT: &'static str = OrderStats::SOURCE_TEXT;
    fn new() -> Self {
        Forgetful(OrderStats::new())
    }
    fn process<C: simplestream::Collector<Self::Output>>(&mut self, e: Order, out: &mut C) {
        self.0.process(e, out)
    }
    fn advance_watermark<C: simplestream::Collector<Self::Output>>(
        &mut self,
        wm: i64,
        out: &mut C,
    ) {
        self.0.advance_watermark(wm, out)
    }
    fn finish<C: simplestream::Collector<Self::Output>>(&mut self, out: &mut C) {
        self.0.finish(out)
    }
    fn clock(&self) -> simplestream::Clock {
        self.0.clock()
    }
    fn write_stages(
        &self,
        w: &mut simplestream::envelope::StageWriter<'_>,
    ) -> Result<(), simplestream::CheckpointError> {
        self.0.write_stages(w)
    }
    fn decode_stages(
        _: Codec,
        _: &[u8],
        _: simplestream::Clock,
    ) -> Result<Self, simplestream::CheckpointError> {
        Ok(Forgetful(OrderStats::new()))
    }
    fn stage_json(&self, stage: &str) -> Option<serde_json::Value> {
        self.0.stage_json(stage)
    }
}

#[test]
#[should_panic(expected = "differs after crashes at [200]")]
fn the_helper_detects_a_pipeline_that_forgets_state() {
    let events = orders(1, 400, 5, 1_000);
    assert_crash_equivalent::<Forgetful>(&events, CrashPlan::At(vec![200]));
}

#[test]
fn the_helper_accepts_the_same_pipeline_when_it_keeps_state() {
    // The control for the test above: only the lost state makes it fail.
    let events = orders(1, 400, 5, 1_000);
    assert_crash_equivalent::<OrderStats>(&events, CrashPlan::At(vec![200]));
}

#[test]
#[should_panic(expected = "gives no crash point for 50 events")]
fn the_helper_refuses_a_plan_that_never_crashes() {
    let events = orders(1, 50, 5, 1_000);
    assert_crash_equivalent::<OrderStats>(&events, CrashPlan::EveryK(97));
}

fn arb_events() -> impl Strategy<Value = Vec<Order>> {
    prop::collection::vec((0u8..6, -20i32..200, 0i64..9_000, 0u8..10), 0..250).prop_map(|v| {
        let mut t = 1_000_000i64;
        v.into_iter()
            .map(|(k, a, step, back)| {
                t += step;
                // Sometimes far behind the watermark, to exercise late events.
                let ts = if back == 0 {
                    t - 400_000
                } else {
                    t - (back as i64) * 300
                };
                Order {
                    customer: format!("K{k}"),
                    amount: a as f64 / 4.0,
                    ts,
                }
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn restore_anywhere_equals_uninterrupted(events in arb_events(), cut in any::<prop::sample::Index>(), codec_bin in any::<bool>()) {
        let at = cut.index(events.len() + 1);
        let codec = if codec_bin { Codec::Binary } else { Codec::Json };
        macro_rules! check {
            ($p:ty) => {{
                let reference = run_uninterrupted::<$p>(&events);
                let crashed = run_with_crashes::<$p>(&events, &[at], codec).unwrap();
                prop_assert_eq!(crashed.restores, 1);
                prop_assert_eq!(&crashed.outputs, &reference.outputs);
                prop_assert_eq!(&crashed.state_json, &reference.state_json);
            }};
        }
        check!(OrderStats);
        check!(SlidingStats);
        check!(SessionStats);
        check!(Chained);
        check!(GlobalStats);
    }
}

mod joins {
    use super::common::*;
    use simplestream::testing::{assert_crash_equivalent, run_uninterrupted, CrashPlan};
    use simplestream::{OutputRecord, Pipeline};

    fn sale(id: u64, amount: f64, ts: i64) -> payments::Input {
        payments::Input::Sales(Sale {
            id,
            customer: "C1".into(),
            amount,
            ts,
        })
    }
    fn pay(id: u64, paid: f64, ts: i64) -> payments::Input {
        payments::Input::Payments(Payment {
            order_id: id,
            paid,
            ts,
        })
    }

    #[test]
    fn windowed_and_interval_joins_match_by_key_and_time() {
        let mut p = Payments::new();
        let mut out = Vec::new();
        for e in [
            sale(1, 10.0, 1_000),
            pay(1, 10.0, 4_000),
            sale(2, 5.0, 9_000),
            pay(2, 5.0, 11_000),
            pay(3, 1.0, 2_000),
        ] {
            p.process(e, &mut out);
        }
        // Interval join emits as soon as both sides are there: orders 1 (+3 s) and 2 (+2 s).
        let quick: Vec<u64> = out
            .iter()
            .filter_map(|o| match o {
                payments::Output::Quick(j) => Some(j.order_id),
                _ => None,
            })
            .collect();
        assert_eq!(quick, vec![1, 2]);
        p.finish(&mut out);
        // The windowed join pairs only inside one 10 s window: order 1, not order 2 (9 s / 11 s).
        let paid: Vec<String> = out
            .iter()
            .filter(|o| o.sink() == "paid")
            .map(|o| serde_json::to_string(o).unwrap())
            .collect();
        assert_eq!(
            paid,
            vec![
                r#"{"order_id":1,"window_start":0,"window_end":10000,"sales":{"id":1,"customer":"C1","amount":10.0,"ts":1000},"payments":{"order_id":1,"paid":10.0,"ts":4000}}"#
            ]
        );
        assert_eq!(p.stage_json("per_customer").unwrap()["C1"]["n"], 2);
    }

    #[test]
    fn join_state_is_in_the_checkpoint_and_evicted_when_no_match_is_possible() {
        let mut p = Payments::new();
        let mut out = Vec::new();
        p.process(sale(7, 3.0, 1_000), &mut out);
        let state = p.stage_json("quick").unwrap();
        assert_eq!(
            state["buffers"]["7"]["left"][0]["event"]["id"], 7,
            "{state}"
        );
        // Both watermarks pass 1 s + 5 s (upper bound): order 7 can no longer match.
        p.process(sale(8, 1.0, 20_000), &mut out);
        p.process(pay(99, 1.0, 20_000), &mut out);
        let state = p.stage_json("quick").unwrap();
        assert!(state["buffers"].get("7").is_none(), "{state}");
        // A payment for it now is late, reported, not silently dropped.
        out.clear();
        p.process(pay(7, 3.0, 2_000), &mut out);
        assert!(out.iter().all(|o| o.is_late()) && out.len() == 2, "{out:?}");
    }

    #[test]
    fn the_watermark_waits_for_both_sources() {
        let mut p = Payments::new();
        let mut out = Vec::new();
        p.process(sale(1, 1.0, 1_000), &mut out);
        p.process(sale(2, 1.0, 100_000), &mut out);
        assert_eq!(
            p.clock().watermark,
            i64::MIN,
            "no payment yet: the join cannot close windows"
        );
        p.process(pay(1, 1.0, 50_000), &mut out);
        assert_eq!(p.clock().watermark, 48_000);
    }

    #[test]
    fn joins_restore_exactly() {
        let events = sales_and_payments(9, 1_500);
        let r = run_uninterrupted::<Payments>(&events);
        assert!(r.outputs.iter().filter(|o| o.sink() == "paid").count() > 100);
        assert!(r.outputs.iter().filter(|o| o.sink() == "quick").count() > 100);
        assert_crash_equivalent::<Payments>(&events, CrashPlan::EveryK(37));
        assert_crash_equivalent::<Payments>(
            &events,
            CrashPlan::Random {
                seed: 5,
                crashes: 60,
            },
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn joins_restore_anywhere(seed in any::<u64>(), n in 0usize..300, cut in any::<prop::sample::Index>(), codec_bin in any::<bool>()) {
        let events = sales_and_payments(seed, n);
        let at = cut.index(events.len() + 1);
        let codec = if codec_bin { Codec::Binary } else { Codec::Json };
        let reference = run_uninterrupted::<Payments>(&events);
        let crashed = run_with_crashes::<Payments>(&events, &[at], codec).unwrap();
        prop_assert_eq!(&crashed.outputs, &reference.outputs);
        prop_assert_eq!(&crashed.state_json, &reference.state_json);
    }
}

simplestream::pipeline! {
    /// Its last stage takes the events `process` owns and moves a new key into its
    /// window's table; one column reads the key field too.
    pub pipeline KeyMoved;
    source orders: Order, event_time = |o| o.ts, max_delay = 1s;
    seen = orders
        .key_by(customer: String = |o| o.customer.clone())
        .aggregate(n = count());
    per_5s = orders
        .key_by(customer: String = |o| o.customer.clone())
        .window(tumbling(5s))
        .aggregate(n = count(), name_len: u64 = max(|o| o.customer.len() as u64), amount: f64 = sum(|o| o.amount));
    sink per_5s;
}

/// Owned events (whose keys the window takes) and borrowed ones give the same rows, late
/// events (whole, key included) and checkpoint bytes.
#[test]
fn a_key_moved_into_the_window_is_the_key_a_borrowed_event_gives() {
    let events: Vec<Order> = (0..3_000i64)
        .map(|i| {
            let late = if i % 97 == 0 { 9_000 } else { 0 };
            o(
                &format!("customer-{}", i * 7 % 23),
                (i % 11) as f64,
                i * 20 - (i % 7) * 100 - late,
            )
        })
        .collect();
    let (mut owned, mut borrowed) = (KeyMoved::new(), KeyMoved::new());
    let (mut out_owned, mut out_borrowed) = (Vec::new(), Vec::new());
    let state = |p: &KeyMoved| {
        let mut bytes = Vec::new();
        p.encode_stages(Codec::Json, &mut bytes).expect("encode");
        bytes
    };
    for (i, e) in events.iter().enumerate() {
        owned.process(e.clone(), &mut out_owned);
        borrowed.process_ref(e, &mut out_borrowed);
        if i % 500 == 0 {
            assert_eq!(state(&owned), state(&borrowed), "after {i}");
        }
    }
    owned.finish(&mut out_owned);
    borrowed.finish(&mut out_borrowed);
    assert_eq!(out_owned, out_borrowed);
    let late: Vec<String> = out_owned
        .iter()
        .filter(|r| r.is_late())
        .map(|r| serde_json::to_string(r).unwrap())
        .collect();
    assert!(late.len() > 10, "{} late events", late.len());
    assert!(
        late.iter().all(|l| l.contains(r#""customer":"customer-"#)),
        "{late:?}"
    );
    let rows = out_owned.iter().filter(|r| !r.is_late()).count();
    assert!(rows > 200, "{rows} rows");
    let name_len = |r: &key_moved::Output| match r {
        key_moved::Output::Per5s(row) => row.name_len == row.customer.len() as u64,
        key_moved::Output::Late(_) => true,
    };
    assert!(
        out_owned.iter().all(name_len),
        "a column read the key after it moved"
    );
}

simplestream::pipeline! {
    /// `min`/`max` of a cloned `String` field: folded by reference (a clone only for a new
    /// extreme), per key, per key and window, and per window of all events.
    pub pipeline Extremes;
    source orders: Order, event_time = |o| o.ts, max_delay = 1s;
    by_bucket = orders
        .key_by(bucket: u64 = |o| o.amount as u64 % 3)
        .aggregate(first: String = min(|o| o.customer.clone()), last: String = max(|o| o.customer.clone()));
    per_5s = orders
        .key_by(bucket: u64 = |o| o.amount as u64 % 3)
        .window(tumbling(5s))
        .aggregate(first: String = min(|o| o.customer.clone()), last: String = max(|o| o.customer.clone()), n = count());
    all_5s = orders
        .window(tumbling(5s))
        .aggregate(first: String = min(|o| o.customer.clone()), last: String = max(|o| o.customer.clone()));
    sink by_bucket;
    sink per_5s;
    sink all_5s;
}

/// The rows of `Extremes` against the same groups' least and greatest names computed
/// directly (events in time order: nothing is late).
#[test]
fn min_and_max_of_a_cloned_string_field_are_the_groups_extremes() {
    use std::collections::BTreeMap;
    let events: Vec<Order> = (0..2_000i64)
        .map(|i| o(&format!("c{}", (i * 7919) % 613), (i % 10) as f64, i * 37))
        .collect();
    let mut p = Extremes::new();
    let mut out = Vec::new();
    for e in &events {
        p.process_ref(e, &mut out);
    }
    p.finish(&mut out);
    type Groups<K> = BTreeMap<K, (String, String, u64)>;
    fn fold<K: Ord>(g: &mut Groups<K>, k: K, name: &str) {
        let e = g
            .entry(k)
            .or_insert_with(|| (name.to_string(), name.to_string(), 0));
        e.0 = e.0.clone().min(name.to_string());
        e.1 = e.1.clone().max(name.to_string());
        e.2 += 1;
    }
    let (mut keyed, mut windowed, mut all) = (Groups::new(), Groups::new(), Groups::new());
    for e in &events {
        let (bucket, start) = (e.amount as u64 % 3, e.ts - e.ts.rem_euclid(5_000));
        fold(&mut keyed, bucket, &e.customer);
        fold(&mut windowed, (start, bucket), &e.customer);
        fold(&mut all, start, &e.customer);
    }
    let (mut last_keyed, mut got_windowed, mut got_all) =
        (Groups::new(), Groups::new(), Groups::new());
    for r in &out {
        match r {
            extremes::Output::ByBucket(r) => {
                last_keyed.insert(r.bucket, (r.first.clone(), r.last.clone(), 0));
            }
            extremes::Output::Per5s(r) => {
                got_windowed.insert(
                    (r.window_start, r.bucket),
                    (r.first.clone(), r.last.clone(), r.n),
                );
            }
            extremes::Output::All5s(r) => {
                got_all.insert(r.window_start, (r.first.clone(), r.last.clone(), 0));
            }
            extremes::Output::Late(_) => panic!("no event is late"),
        }
    }
    fn names<K: Ord>(g: &Groups<K>) -> Vec<(String, String)> {
        g.values().map(|v| (v.0.clone(), v.1.clone())).collect()
    }
    assert_eq!(names(&last_keyed), names(&keyed));
    assert_eq!(got_windowed, windowed);
    assert_eq!(names(&got_all), names(&all));
    assert_eq!(
        got_all.keys().collect::<Vec<_>>(),
        all.keys().collect::<Vec<_>>()
    );
    assert!(windowed.len() > 30, "{} windows", windowed.len());
}

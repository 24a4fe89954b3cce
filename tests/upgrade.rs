//! Changing a pipeline and keeping its state: version 1 of a pipeline checkpoints, a
//! changed version 2 restores. State is matched stage by stage (name and layout): each
//! kind of change is restored, started empty, or refused with a message saying what to do.

mod support;

use serde_json::Value;
use simplestream::envelope::{self, decode_with};
use simplestream::upgrade::{RestoreOptions, StageAction};
use simplestream::{CheckpointError, Codec, Pipeline};
pub use simplestream_examples::orders::Order;

const T0: i64 = 1_635_739_200_000;

// Version 1, as deployed: a running count per customer, a count per customer per
// minute, a count per shard (a `u32` key).
mod v1 {
    use super::*;
    simplestream::pipeline! {
        pub pipeline Shop;
        source orders: Order, event_time = |o| o.ts, max_delay = 5s;
        customer_stats = orders
            .key_by(customer: String = |o| o.customer.clone())
            .aggregate(count = count(), amount: f64 = sum(|o| o.amount));
        per_min = orders
            .key_by(customer: String = |o| o.customer.clone())
            .window(tumbling(1min))
            .aggregate(n = count());
        per_shard = orders.key_by(shard: u32 = |o| (o.ts % 7) as u32).aggregate(n = count());
        sink per_min;
    }
}

/// A filter in front of `customer_stats` (it passes every order of the test) and a new
/// stateless stage with its own sink.
mod stateless_added {
    use super::*;
    simplestream::pipeline! {
        pub pipeline Shop;
        source orders: Order, event_time = |o| o.ts, max_delay = 5s;
        customer_stats = orders
            .filter(|o| o.amount >= 0.0)
            .key_by(customer: String = |o| o.customer.clone())
            .aggregate(count = count(), amount: f64 = sum(|o| o.amount));
        per_min = orders
            .key_by(customer: String = |o| o.customer.clone())
            .window(tumbling(1min))
            .aggregate(n = count());
        per_shard = orders.key_by(shard: u32 = |o| (o.ts % 7) as u32).aggregate(n = count());
        big = orders.filter(|o| o.amount > 5.0);
        sink per_min;
        sink big;
    }
}

/// A new stateful stage, `biggest`.
mod stateful_added {
    use super::*;
    simplestream::pipeline! {
        pub pipeline Shop;
        source orders: Order, event_time = |o| o.ts, max_delay = 5s;
        customer_stats = orders
            .key_by(customer: String = |o| o.customer.clone())
            .aggregate(count = count(), amount: f64 = sum(|o| o.amount));
        per_min = orders
            .key_by(customer: String = |o| o.customer.clone())
            .window(tumbling(1min))
            .aggregate(n = count());
        per_shard = orders.key_by(shard: u32 = |o| (o.ts % 7) as u32).aggregate(n = count());
        biggest = orders
            .key_by(customer: String = |o| o.customer.clone())
            .aggregate(max_amount: f64 = max(|o| o.amount));
        sink per_min;
    }
}

/// `per_shard` is gone.
mod removed {
    use super::*;
    simplestream::pipeline! {
        pub pipeline Shop;
        source orders: Order, event_time = |o| o.ts, max_delay = 5s;
        customer_stats = orders
            .key_by(customer: String = |o| o.customer.clone())
            .aggregate(count = count(), amount: f64 = sum(|o| o.amount));
        per_min = orders
            .key_by(customer: String = |o| o.customer.clone())
            .window(tumbling(1min))
            .aggregate(n = count());
        sink per_min;
    }
}

/// `per_shard`'s key widened from `u32` to `u64`.
mod key_widened {
    use super::*;
    simplestream::pipeline! {
        pub pipeline Shop;
        source orders: Order, event_time = |o| o.ts, max_delay = 5s;
        customer_stats = orders
            .key_by(customer: String = |o| o.customer.clone())
            .aggregate(count = count(), amount: f64 = sum(|o| o.amount));
        per_min = orders
            .key_by(customer: String = |o| o.customer.clone())
            .window(tumbling(1min))
            .aggregate(n = count());
        per_shard = orders.key_by(shard: u64 = |o| (o.ts % 7) as u64).aggregate(n = count());
        sink per_min;
    }
}

/// `per_min` is now a 2-minute window.
mod window_resized {
    use super::*;
    simplestream::pipeline! {
        pub pipeline Shop;
        source orders: Order, event_time = |o| o.ts, max_delay = 5s;
        customer_stats = orders
            .key_by(customer: String = |o| o.customer.clone())
            .aggregate(count = count(), amount: f64 = sum(|o| o.amount));
        per_min = orders
            .key_by(customer: String = |o| o.customer.clone())
            .window(tumbling(2min))
            .aggregate(n = count());
        per_shard = orders.key_by(shard: u32 = |o| (o.ts % 7) as u32).aggregate(n = count());
        sink per_min;
    }
}

/// `customer_stats` has one more column.
mod column_added {
    use super::*;
    simplestream::pipeline! {
        pub pipeline Shop;
        source orders: Order, event_time = |o| o.ts, max_delay = 5s;
        customer_stats = orders
            .key_by(customer: String = |o| o.customer.clone())
            .aggregate(count = count(), amount: f64 = sum(|o| o.amount), max_amount: f64 = max(|o| o.amount));
        per_min = orders
            .key_by(customer: String = |o| o.customer.clone())
            .window(tumbling(1min))
            .aggregate(n = count());
        per_shard = orders.key_by(shard: u32 = |o| (o.ts % 7) as u32).aggregate(n = count());
        sink per_min;
    }
}

/// `customer_stats` renamed to `stats`.
mod renamed {
    use super::*;
    simplestream::pipeline! {
        pub pipeline Shop;
        source orders: Order, event_time = |o| o.ts, max_delay = 5s;
        #[was(customer_stats)]
        stats = orders
            .key_by(customer: String = |o| o.customer.clone())
            .aggregate(count = count(), amount: f64 = sum(|o| o.amount));
        per_min = orders
            .key_by(customer: String = |o| o.customer.clone())
            .window(tumbling(1min))
            .aggregate(n = count());
        per_shard = orders.key_by(shard: u32 = |o| (o.ts % 7) as u32).aggregate(n = count());
        sink per_min;
    }
}

/// `customer_stats` has one more column, with a migration; `per_shard`'s key widened,
/// with a migration; `per_min` allows 10 s of lateness, with a migration.
mod migrated {
    use super::*;
    simplestream::pipeline! {
        pub pipeline Shop;
        source orders: Order, event_time = |o| o.ts, max_delay = 5s;
        #[migrate(added(max_amount))]
        customer_stats = orders
            .key_by(customer: String = |o| o.customer.clone())
            .aggregate(count = count(), amount: f64 = sum(|o| o.amount), max_amount: f64 = max(|o| o.amount));
        #[migrate(old_lateness = 0s)]
        per_min = orders
            .key_by(customer: String = |o| o.customer.clone())
            .window(tumbling(1min), allowed_lateness = 10s)
            .aggregate(n = count());
        #[migrate(old_key = |k: u32| -> u64 { k as u64 })]
        per_shard = orders.key_by(shard: u64 = |o| (o.ts % 7) as u64).aggregate(n = count());
        sink per_min;
    }
}

/// Session windows per shard (a `u32` key), as deployed.
mod sessions_v1 {
    use super::*;
    simplestream::pipeline! {
        pub pipeline Sess;
        source orders: Order, event_time = |o| o.ts, max_delay = 5s;
        per_shard = orders
            .key_by(shard: u32 = |o| (o.ts % 7) as u32)
            .window(session(2s))
            .aggregate(n = count());
        sink per_shard;
    }
}

/// A column added, and the key widened to fewer shards: shards 0 and 1 become one.
mod sessions_v2 {
    use super::*;
    simplestream::pipeline! {
        pub pipeline Sess;
        source orders: Order, event_time = |o| o.ts, max_delay = 5s;
        #[migrate(added(top), old_key = |k: u32| -> u64 { (k / 2) as u64 })]
        per_shard = orders
            .key_by(shard: u64 = |o| (o.ts % 7 / 2) as u64)
            .window(session(2s))
            .aggregate(n = count(), top: f64 = max(|o| o.amount));
        sink per_shard;
    }
}

/// Version 1's open sessions as the migration to version 2 must leave them: keys halved,
/// the sessions of keys that became one merged where they overlap, `top` from its
/// default.
fn sessions_merged(v1: &Value) -> Value {
    let mut by_key = std::collections::BTreeMap::<u64, Vec<(i64, i64, u64)>>::new();
    for (k, list) in v1["sessions"].as_object().unwrap() {
        let k: u64 = k.parse::<u64>().unwrap() / 2;
        for s in list.as_array().unwrap() {
            let at = |f: &str| s[f].as_i64().unwrap();
            let n = s["acc"]["n"].as_u64().unwrap();
            by_key
                .entry(k)
                .or_default()
                .push((at("start"), at("end"), n));
        }
    }
    let mut sessions = serde_json::Map::new();
    for (k, mut list) in by_key {
        list.sort();
        let mut merged: Vec<(i64, i64, u64)> = Vec::new();
        for (start, end, n) in list {
            match merged.last_mut() {
                Some(last) if start < last.1 => *last = (last.0, last.1.max(end), last.2 + n),
                _ => merged.push((start, end, n)),
            }
        }
        let rows = merged
            .into_iter()
            .map(|(start, end, n)| serde_json::json!({"start": start, "end": end, "acc": {"n": n, "top": null}}));
        sessions.insert(k.to_string(), rows.collect());
    }
    serde_json::json!({"watermark": v1["watermark"], "sessions": sessions})
}

#[test]
fn session_columns_and_keys_migrate() {
    let events = orders();
    let v1 = run(sessions_v1::Sess::new(), &events[..SPLIT]);
    for codec in [Codec::Json, Codec::Binary] {
        let bytes = envelope::encode(&v1, codec, 1, T0, Default::default()).unwrap();
        let r = decode_with::<sessions_v2::Sess>(&bytes, &Default::default()).unwrap();
        assert!(
            matches!(&r.actions[..], [StageAction::Migrate { .. }]),
            "{:?}",
            r.actions
        );
        let (old, new) = (state(&v1, "per_shard"), state(&r.pipeline, "per_shard"));
        assert_eq!(new, sessions_merged(&old), "{codec}");
        assert!(
            old.to_string().matches("\"start\"").count()
                > new.to_string().matches("\"start\"").count(),
            "sessions of old keys met and merged: {old} {new}"
        );
        // Once the sessions open at the restart have closed, the state is a never-stopped
        // run's of version 2.
        let resumed = run(r.pipeline, &events[SPLIT..]);
        let fresh = run(sessions_v2::Sess::new(), &events);
        assert_eq!(state(&resumed, "per_shard"), state(&fresh, "per_shard"));
    }
}

/// 600 orders of 5 customers over 5 minutes, in order.
fn orders() -> Vec<Order> {
    (0..600i64)
        .map(|i| Order {
            customer: format!("C{:03}", i % 5),
            amount: (i % 9) as f64,
            ts: T0 + i * 500,
        })
        .collect()
}

const SPLIT: usize = 400;

fn run<P: Pipeline<Event = Order>>(mut p: P, events: &[Order]) -> P {
    let mut out = Vec::new();
    for e in events {
        p.process(e.clone(), &mut out);
    }
    p
}

/// Version 1's checkpoint after `SPLIT` orders, in `codec`.
fn v1_checkpoint(codec: Codec) -> Vec<u8> {
    let p = run(v1::Shop::new(), &orders()[..SPLIT]);
    envelope::encode(&p, codec, 1, T0, Default::default()).unwrap()
}

fn state<P: Pipeline>(p: &P, stage: &str) -> Value {
    p.stage_json(stage)
        .unwrap_or_else(|| panic!("no stage {stage}"))
}

fn refused<P: Pipeline>(bytes: &[u8], opts: &RestoreOptions) -> Vec<String> {
    match decode_with::<P>(bytes, opts) {
        Ok(_) => panic!("restored a checkpoint that must be refused"),
        Err(CheckpointError::Incompatible { pipeline, problems }) => {
            assert_eq!(pipeline, "Shop");
            problems
        }
        Err(e) => panic!("refused for another reason: {e}"),
    }
}

#[test]
fn a_stateless_change_never_blocks_a_restore() {
    let events = orders();
    for codec in [Codec::Json, Codec::Binary] {
        let r = decode_with::<stateless_added::Shop>(&v1_checkpoint(codec), &Default::default())
            .unwrap();
        assert!(
            r.actions
                .iter()
                .all(|a| matches!(a, StageAction::Restore { .. })),
            "{:?}",
            r.actions
        );
        // The counts go on from the checkpoint: equal to a run that never stopped.
        let resumed = run(r.pipeline, &events[SPLIT..]);
        let fresh = run(stateless_added::Shop::new(), &events);
        for stage in ["customer_stats", "per_min", "per_shard"] {
            assert_eq!(
                state(&resumed, stage),
                state(&fresh, stage),
                "{codec} {stage}"
            );
        }
        assert_eq!(
            state(&resumed, "customer_stats")["C001"]["count"],
            120,
            "{codec}"
        );
    }
}

#[test]
fn a_new_stateful_stage_starts_empty_and_the_others_restore() {
    let events = orders();
    for codec in [Codec::Json, Codec::Binary] {
        let r = decode_with::<stateful_added::Shop>(&v1_checkpoint(codec), &Default::default())
            .unwrap();
        let new: Vec<String> = r
            .actions
            .iter()
            .filter(|a| !matches!(a, StageAction::Restore { .. }))
            .map(|a| a.to_string())
            .collect();
        assert_eq!(new, ["stage `biggest` is new: it starts empty"], "{codec}");
        let resumed = run(r.pipeline, &events[SPLIT..]);
        let fresh = run(stateful_added::Shop::new(), &events);
        assert_eq!(
            state(&resumed, "customer_stats"),
            state(&fresh, "customer_stats")
        );
        // `biggest` saw only the orders after the restore.
        let tail_only = run(stateful_added::Shop::new(), &events[SPLIT..]);
        assert_eq!(state(&resumed, "biggest"), state(&tail_only, "biggest"));
    }
}

#[test]
fn a_removed_stage_is_refused_unless_its_state_may_be_dropped() {
    for codec in [Codec::Json, Codec::Binary] {
        let bytes = v1_checkpoint(codec);
        let problems = refused::<removed::Shop>(&bytes, &Default::default());
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].contains("stage `per_shard` holds state in the checkpoint but is gone")
                && problems[0].contains("--allow-dropped-state per_shard"),
            "{}",
            problems[0]
        );
        let allow = RestoreOptions {
            allow_dropped: vec!["per_shard".into()],
        };
        let r = decode_with::<removed::Shop>(&bytes, &allow).unwrap();
        assert!(r.actions.contains(&StageAction::Drop {
            stage: "per_shard".into()
        }));
        let v1 = run(v1::Shop::new(), &orders()[..SPLIT]);
        assert_eq!(
            state(&r.pipeline, "customer_stats"),
            state(&v1, "customer_stats")
        );
        assert_eq!(state(&r.pipeline, "per_min"), state(&v1, "per_min"));
    }
}

#[test]
fn a_changed_layout_without_a_migration_is_refused_with_what_changed() {
    let bytes = v1_checkpoint(Codec::Json);
    let widened = refused::<key_widened::Shop>(&bytes, &Default::default());
    assert_eq!(widened.len(), 1, "{widened:?}");
    assert!(
        widened[0].contains("stage `per_shard` changed its state layout")
            && widened[0].contains("`key shard: u32; aggregate n: u64 = count` became `key shard: u64; aggregate n: u64 = count`")
            && widened[0].contains("declare a migration"),
        "{}",
        widened[0]
    );
    let column = refused::<column_added::Shop>(&bytes, &Default::default());
    assert!(
        column[0].contains("max_amount: f64 = max") && column[0].contains("customer_stats"),
        "{}",
        column[0]
    );
    // Dropping the old state is allowed by name: the stage starts empty.
    let allow = RestoreOptions {
        allow_dropped: vec!["per_shard".into()],
    };
    let r = decode_with::<key_widened::Shop>(&bytes, &allow).unwrap();
    assert!(r.actions.contains(&StageAction::Reset {
        stage: "per_shard".into()
    }));
    assert_eq!(state(&r.pipeline, "per_shard"), serde_json::json!({}));
}

#[test]
fn a_resized_window_is_refused_with_a_hint() {
    for codec in [Codec::Json, Codec::Binary] {
        let problems = refused::<window_resized::Shop>(&v1_checkpoint(codec), &Default::default());
        assert_eq!(problems.len(), 1, "{problems:?}");
        let p = &problems[0];
        assert!(
            p.contains("stage `per_min` changed its state layout")
                && p.contains("window tumbling 60000ms")
                && p.contains("window tumbling 120000ms")
                && p.contains("a window's size cannot be migrated")
                && p.contains("--allow-dropped-state per_min"),
            "{p}"
        );
    }
}

#[test]
fn the_refusal_reads_as_one_message() {
    let e = decode_with::<removed::Shop>(&v1_checkpoint(Codec::Binary), &Default::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with(
            "checkpoint of `Shop` cannot be restored into this version of it: stage `per_shard`"
        ),
        "{e}"
    );
}

#[test]
fn a_renamed_stage_keeps_its_state() {
    let events = orders();
    for codec in [Codec::Json, Codec::Binary] {
        let r = decode_with::<renamed::Shop>(&v1_checkpoint(codec), &Default::default()).unwrap();
        assert!(r.actions.contains(&StageAction::Renamed {
            stage: "stats".into(),
            from: "customer_stats".into()
        }));
        let resumed = run(r.pipeline, &events[SPLIT..]);
        let fresh = run(renamed::Shop::new(), &events);
        assert_eq!(state(&resumed, "stats"), state(&fresh, "stats"), "{codec}");
    }
}

#[test]
fn declared_migrations_convert_the_old_state() {
    let events = orders();
    for codec in [Codec::Json, Codec::Binary] {
        let r = decode_with::<migrated::Shop>(&v1_checkpoint(codec), &Default::default()).unwrap();
        let shown: Vec<String> = r.actions.iter().map(|a| a.to_string()).collect();
        assert_eq!(
            shown,
            [
                "stage `customer_stats` is migrated from the state of `customer_stats` (added `max_amount` from their default)",
                "stage `per_min` is migrated from the state of `per_min` (allowed lateness was 0 ms)",
                "stage `per_shard` is migrated from the state of `per_shard` (key converted from `u32`)",
            ],
            "{codec}"
        );
        let v1 = run(v1::Shop::new(), &events[..SPLIT]);
        // The old columns keep their values, the new one starts from its default...
        let stats = state(&r.pipeline, "customer_stats");
        let old = state(&v1, "customer_stats");
        assert_eq!(stats["C001"]["count"], old["C001"]["count"]);
        assert_eq!(stats["C001"]["amount"], old["C001"]["amount"]);
        assert_eq!(stats["C001"]["max_amount"], Value::Null, "{stats}");
        // ...the widened keys hold the same counts, the windows are as they were.
        assert_eq!(state(&r.pipeline, "per_shard"), state(&v1, "per_shard"));
        assert_eq!(state(&r.pipeline, "per_min"), state(&v1, "per_min"));
        // And the counts go on: C001 has 120 orders in all.
        let resumed = run(r.pipeline, &events[SPLIT..]);
        assert_eq!(state(&resumed, "customer_stats")["C001"]["count"], 120);
        let fresh = run(migrated::Shop::new(), &events);
        assert_eq!(state(&resumed, "per_shard"), state(&fresh, "per_shard"));
    }
}

#[test]
fn a_migration_needs_the_layout_it_names() {
    // `migrated` converts `per_min` from a 1-minute window without lateness; a checkpoint
    // of `window_resized` (2-minute windows) is not that layout.
    let p = run(window_resized::Shop::new(), &orders()[..SPLIT]);
    let bytes = envelope::encode(&p, Codec::Json, 1, T0, Default::default()).unwrap();
    let problems = refused::<migrated::Shop>(&bytes, &Default::default());
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].starts_with("stage `per_min` changed its state layout"),
        "{problems:?}"
    );
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(32))]
    /// Widening a key by migration gives the state a run of the new version over the
    /// same orders would have had.
    #[test]
    fn a_widened_key_migration_equals_recomputing(
        amounts in proptest::collection::vec((0u8..5, 0u32..1000), 1..200),
    ) {
        let events: Vec<Order> = amounts
            .iter()
            .enumerate()
            .map(|(i, (c, a))| Order { customer: format!("C{c}"), amount: *a as f64, ts: T0 + i as i64 * 97 })
            .collect();
        let p = run(v1::Shop::new(), &events);
        let bytes = envelope::encode(&p, Codec::Binary, 1, T0, Default::default()).unwrap();
        let migrated = decode_with::<migrated::Shop>(&bytes, &Default::default()).unwrap().pipeline;
        let fresh = run(migrated::Shop::new(), &events);
        proptest::prop_assert_eq!(state(&migrated, "per_shard"), state(&fresh, "per_shard"));
    }
}

/// The runner: version 1 runs over the first `SPLIT` orders, the rest are appended, and
/// version 2 (`run_v2`) runs with `extra` flags on the same checkpoints and outputs.
mod runner {
    use super::*;
    use simplestream::coordinator::Coordinator;
    use simplestream::runner::{run as run_program, Args, RunError};
    use simplestream::store::{FileStore, FileStoreOptions};
    use simplestream::CoordinatorConfig;
    use std::io::Write;
    use std::path::Path;

    use clap::Parser;

    fn args(dir: &Path, extra: &[&str]) -> Args {
        let d = |f: &str| dir.join(f).to_str().unwrap().to_string();
        let mut argv = vec![
            "shop".to_string(),
            "--input".into(),
            d("orders.jsonl"),
            "--output".into(),
            d("out.jsonl"),
            "--checkpoint-dir".into(),
            d("ckpt"),
            "--checkpoint-every".into(),
            "50".into(),
            "--quiet".into(),
        ];
        argv.extend(extra.iter().map(|s| s.to_string()));
        Args::try_parse_from(argv).unwrap()
    }

    fn append(dir: &Path, orders: &[Order]) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("orders.jsonl"))
            .unwrap();
        for o in orders {
            writeln!(f, "{}", serde_json::to_string(o).unwrap()).unwrap();
        }
    }

    /// Runs version 1 over the first `SPLIT` orders and appends the rest.
    fn deployed_v1(extra: &[&str]) -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        append(t.path(), &orders()[..SPLIT]);
        run_program::<v1::Shop>(&args(t.path(), extra)).unwrap();
        append(t.path(), &orders()[SPLIT..]);
        t
    }

    /// The latest checkpoint's state, restored by `P`.
    fn latest<P: Pipeline>(dir: &Path) -> P {
        let store =
            FileStore::open(dir.join("ckpt"), "default", FileStoreOptions::default()).unwrap();
        let mut c = Coordinator::new(store, CoordinatorConfig::default());
        c.recover::<P>().unwrap().unwrap().pipeline
    }

    fn fatal(r: Result<String, RunError>) -> String {
        match r {
            Err(RunError::Fatal(m)) => m,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn stateless_and_stateful_stages_added_resume_the_counts() {
        for codec in ["json", "binary"] {
            let t = deployed_v1(&["--codec", codec]);
            run_program::<stateless_added::Shop>(&args(t.path(), &["--codec", codec])).unwrap();
            let resumed: stateless_added::Shop = latest(t.path());
            // (The first run's end of input closed its windows: `per_min` is not compared.)
            let fresh = run(stateless_added::Shop::new(), &orders());
            for stage in ["customer_stats", "per_shard"] {
                assert_eq!(state(&resumed, stage), state(&fresh, stage), "{stage}");
            }
            assert_eq!(state(&resumed, "customer_stats")["C001"]["count"], 120);

            let t = deployed_v1(&["--codec", codec]);
            run_program::<stateful_added::Shop>(&args(t.path(), &["--codec", codec])).unwrap();
            let resumed: stateful_added::Shop = latest(t.path());
            let fresh = run(stateful_added::Shop::new(), &orders());
            assert_eq!(
                state(&resumed, "customer_stats"),
                state(&fresh, "customer_stats")
            );
            let tail = run(stateful_added::Shop::new(), &orders()[SPLIT..]);
            assert_eq!(state(&resumed, "biggest"), state(&tail, "biggest"));
        }
    }

    #[test]
    fn a_removed_stage_stops_the_run_until_its_state_may_be_dropped() {
        let t = deployed_v1(&[]);
        let out_before = std::fs::read(t.path().join("out.jsonl")).unwrap();
        let msg = fatal(run_program::<removed::Shop>(&args(t.path(), &[])));
        assert!(
            msg.contains("stage `per_shard` holds state in the checkpoint but is gone")
                && msg.contains("--allow-dropped-state per_shard"),
            "{msg}"
        );
        assert_eq!(
            std::fs::read(t.path().join("out.jsonl")).unwrap(),
            out_before,
            "a refused restore leaves the outputs as they were"
        );
        run_program::<removed::Shop>(&args(t.path(), &["--allow-dropped-state", "per_shard"]))
            .unwrap();
        let resumed: removed::Shop = latest(t.path());
        let fresh = run(removed::Shop::new(), &orders());
        assert_eq!(
            state(&resumed, "customer_stats"),
            state(&fresh, "customer_stats")
        );
    }

    #[test]
    fn a_widened_key_or_a_resized_window_stops_the_run_with_a_hint() {
        let t = deployed_v1(&[]);
        let msg = fatal(run_program::<key_widened::Shop>(&args(t.path(), &[])));
        assert!(msg.contains("`key shard: u32; aggregate n: u64 = count` became `key shard: u64; aggregate n: u64 = count`"), "{msg}");
        let msg = fatal(run_program::<window_resized::Shop>(&args(t.path(), &[])));
        assert!(
            msg.contains("a window's size cannot be migrated")
                && msg.contains("--allow-dropped-state per_min"),
            "{msg}"
        );
        // Dropping the shard counts is explicit; they start over from the restart.
        run_program::<key_widened::Shop>(&args(t.path(), &["--allow-dropped-state", "per_shard"]))
            .unwrap();
        let resumed: key_widened::Shop = latest(t.path());
        let tail = run(key_widened::Shop::new(), &orders()[SPLIT..]);
        assert_eq!(state(&resumed, "per_shard"), state(&tail, "per_shard"));
    }

    #[test]
    fn an_incremental_chain_restores_into_a_changed_pipeline() {
        let t = deployed_v1(&["--incremental", "--codec", "binary"]);
        let meta = std::fs::read(t.path().join("ckpt/checkpoints/default/latest.json")).unwrap();
        let meta: Value = serde_json::from_slice(&meta).unwrap();
        assert!(
            meta["file"].as_str().unwrap().contains(".manifest."),
            "version 1's latest checkpoint is a chain: {meta}"
        );
        run_program::<stateful_added::Shop>(&args(
            t.path(),
            &["--incremental", "--codec", "binary"],
        ))
        .unwrap();
        let resumed: stateful_added::Shop = latest(t.path());
        let fresh = run(stateful_added::Shop::new(), &orders());
        assert_eq!(
            state(&resumed, "customer_stats"),
            state(&fresh, "customer_stats")
        );
    }
}

/// `checkpoints check`: what a new version would do with the latest checkpoint.
mod check {
    use super::*;
    use simplestream::runner::checkpoints::check;

    fn deployed() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        let store = simplestream::store::FileStore::open(
            t.path(),
            "i1",
            simplestream::store::FileStoreOptions::default(),
        )
        .unwrap();
        let mut c = simplestream::Coordinator::new(store, Default::default());
        let p = run(v1::Shop::new(), &orders()[..SPLIT]);
        c.checkpoint(&p, Default::default(), T0).unwrap();
        t
    }

    #[test]
    fn it_says_what_each_stage_will_do() {
        let t = deployed();
        let dir = t.path().to_str().unwrap();
        let report = check::<migrated::Shop>(dir, "i1", Default::default()).unwrap();
        assert!(
            report.contains("  migrate      stage `per_shard` is migrated from the state of `per_shard` (key converted from `u32`)\n"),
            "{report}"
        );
        assert!(
            report.ends_with(
                "ok: this version restores checkpoint_20211101_040000_000-000001.json\n"
            ),
            "{report}"
        );
        let report = check::<stateful_added::Shop>(dir, "i1", Default::default()).unwrap();
        assert!(
            report.contains("  restore      stage `customer_stats` is restored\n"),
            "{report}"
        );
        assert!(
            report.contains("  start empty  stage `biggest` is new: it starts empty\n"),
            "{report}"
        );
        let report = check::<removed::Shop>(dir, "i1", Default::default()).unwrap_err();
        assert!(
            report.contains("  REFUSE       stage `per_shard` holds state"),
            "{report}"
        );
        assert!(
            report.ends_with("error: this version of `Shop` cannot restore checkpoint_20211101_040000_000-000001.json\n"),
            "{report}"
        );
        let allow = RestoreOptions {
            allow_dropped: vec!["per_shard".into()],
        };
        let report = check::<removed::Shop>(dir, "i1", allow).unwrap();
        assert!(
            report.contains("  drop         stage `per_shard` is gone"),
            "{report}"
        );
    }
}

/// `customer_stats` with one more column, `n = count()`, declared.
mod count_added {
    use super::*;
    simplestream::pipeline! {
        pub pipeline Shop;
        source orders: Order, event_time = |o| o.ts, max_delay = 5s;
        #[migrate(added(n))]
        customer_stats = orders
            .key_by(customer: String = |o| o.customer.clone())
            .aggregate(count = count(), amount: f64 = sum(|o| o.amount), n = count());
        per_min = orders
            .key_by(customer: String = |o| o.customer.clone())
            .window(tumbling(1min))
            .aggregate(n = count());
        per_shard = orders.key_by(shard: u32 = |o| (o.ts % 7) as u32).aggregate(n = count());
        sink per_min;
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(32))]
    /// An added `count` column: after the migration and the rest of the input, the old
    /// columns equal a run of the new version over all of it, and the new column equals
    /// a run over the input since the migration (its state starts from the default).
    #[test]
    fn an_added_count_column_equals_recomputing_since_the_migration(
        amounts in proptest::collection::vec((0u8..5, 0u32..1000), 1..200),
        split in 0usize..200,
        binary in proptest::bool::ANY,
    ) {
        let events: Vec<Order> = amounts
            .iter()
            .enumerate()
            .map(|(i, (c, a))| Order { customer: format!("C{c}"), amount: *a as f64, ts: T0 + i as i64 * 97 })
            .collect();
        let split = split.min(events.len());
        let codec = if binary { Codec::Binary } else { Codec::Json };
        let p = run(v1::Shop::new(), &events[..split]);
        let bytes = envelope::encode(&p, codec, 1, T0, Default::default()).unwrap();
        let migrated = decode_with::<count_added::Shop>(&bytes, &Default::default()).unwrap().pipeline;
        let resumed = state(&run(migrated, &events[split..]), "customer_stats");
        let all = state(&run(count_added::Shop::new(), &events), "customer_stats");
        let since = state(&run(count_added::Shop::new(), &events[split..]), "customer_stats");
        let customers = all.as_object().unwrap();
        proptest::prop_assert_eq!(resumed.as_object().unwrap().len(), customers.len());
        for (c, row) in customers {
            proptest::prop_assert_eq!(&resumed[c]["count"], &row["count"]);
            proptest::prop_assert_eq!(&resumed[c]["amount"], &row["amount"]);
            let n = since.get(c).map_or(serde_json::json!(0), |r| r["n"].clone());
            proptest::prop_assert_eq!(&resumed[c]["n"], &n, "{}", c);
        }
    }
}

/// The walkthrough of the README: the `orders` example as deployed (the article's
/// counts: C001 25, C002 18, C003 43), then a version with a filter and a new column,
/// restarted by the runner on the old checkpoints.
mod walkthrough {
    use super::*;
    use clap::Parser;
    use simplestream::runner::{run as run_program, Args};
    use simplestream_examples::orders::Orders;
    use std::io::Write;
    use std::path::Path;

    mod next {
        use super::Order;
        simplestream::pipeline! {
            pub pipeline Orders;
            source orders: Order, event_time = |o| o.ts, max_delay = 5s;
            valid = orders.filter(|o| o.amount > 0.0);
            #[migrate(added(max_amount))]
            customer_stats = valid
                .key_by(customer: String = |o| o.customer.clone())
                .aggregate(count = count(), amount: f64 = sum(|o| o.amount), max_amount: f64 = max(|o| o.amount));
            per_5min = orders
                .key_by(customer: String = |o| o.customer.clone())
                .window(tumbling(5min))
                .aggregate(orders = count(), amount: f64 = sum(|o| o.amount));
            sink per_5min;
        }
    }

    fn append(dir: &Path, orders: &[Order]) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("orders.jsonl"))
            .unwrap();
        for o in orders {
            writeln!(f, "{}", serde_json::to_string(o).unwrap()).unwrap();
        }
    }

    fn args(dir: &Path) -> Args {
        let d = |f: &str| dir.join(f).to_str().unwrap().to_string();
        Args::try_parse_from([
            "orders",
            "--input",
            &d("orders.jsonl"),
            "--output",
            &d("out.jsonl"),
            "--checkpoint-dir",
            &d("ckpt"),
            "--quiet",
        ])
        .unwrap()
    }

    fn latest_stats(dir: &Path) -> Value {
        let store =
            simplestream::store::FileStore::open(dir.join("ckpt"), "default", Default::default())
                .unwrap();
        let mut c = simplestream::Coordinator::new(store, Default::default());
        let r = c.recover::<next::Orders>().unwrap().unwrap();
        state(&r.pipeline, "customer_stats")
    }

    #[test]
    fn a_filter_and_a_column_added_and_the_counts_go_on() {
        let t = tempfile::tempdir().unwrap();
        let article = [("C001", 25), ("C002", 18), ("C003", 43)];
        let mut deployed = Vec::new();
        for (c, n) in article {
            for i in 0..n {
                let ts = T0 + deployed.len() as i64 * 1_000;
                deployed.push(Order {
                    customer: c.into(),
                    amount: 10.0 + i as f64,
                    ts,
                });
            }
        }
        append(t.path(), &deployed);
        run_program::<Orders>(&args(t.path())).unwrap();

        // The new version: C001 orders once more, and a refund (amount < 0) is filtered.
        let ts = T0 + 100_000;
        append(
            t.path(),
            &[
                Order {
                    customer: "C001".into(),
                    amount: 30.0,
                    ts,
                },
                Order {
                    customer: "C002".into(),
                    amount: -5.0,
                    ts: ts + 1,
                },
            ],
        );
        let said = run_program::<next::Orders>(&args(t.path())).unwrap();
        let stats = latest_stats(t.path());
        assert_eq!(stats["C001"]["count"], 26, "{stats} ({said})");
        assert_eq!(
            stats["C001"]["max_amount"], 30.0,
            "the new column saw one order"
        );
        assert_eq!(stats["C002"]["count"], 18, "the refund was filtered");
        assert_eq!(stats["C002"]["max_amount"], Value::Null, "from its default");
        assert_eq!(stats["C003"]["count"], 43);
    }

    /// Version 1 (the `orders` program) stopped by SIGTERM with `--savepoint-on-stop`,
    /// then run on to the end; version 2 (a filter and a column, with its migration)
    /// starts from the savepoint: the outputs are cut back to it, the counts go on from
    /// it, and the output equals version 1's over the whole input (the windows are the
    /// same stage).
    #[test]
    fn version_2_starts_from_the_savepoint_version_1_took_when_stopped() {
        const SPLIT: usize = 1_500;
        let t = tempfile::tempdir().unwrap();
        let text = support::order_lines(51, 4_000, 40, 0, 0);
        let reference = t.path().join("ref");
        let input = support::put_input(&reference, text.as_bytes());
        support::run_ok(support::orders(&reference, &input, &["--quiet"]));
        let dir = t.path().join("run");
        let input = support::put_input(&dir, text.as_bytes());

        let stop = support::orders(&dir, &input, &["--savepoint-on-stop", "v1"]);
        let mut v1 = support::spawn_until_paused(stop, &[SPLIT as u64]);
        support::send_signal(&v1.child, "TERM");
        v1.resume();
        let (status, err) = v1.finish();
        assert!(status.success(), "{err}");
        assert!(
            err.contains("savepoint `v1` taken (checkpoint_savepoint-v1.json"),
            "{err}"
        );
        assert!(
            err.contains(&format!("stopped by signal: {SPLIT} events")),
            "{err}"
        );
        support::run_ok(support::orders(&dir, &input, &["--quiet"]));

        let d = |f: &str| dir.join(f).to_str().unwrap().to_string();
        let args = Args::try_parse_from([
            "orders",
            "--input",
            &d("in.jsonl"),
            "--output",
            &d("out.jsonl"),
            "--checkpoint-dir",
            &d("ckpt"),
            "--instance",
            "app-instance-1",
            "--from-savepoint",
            "v1",
            "--quiet",
        ])
        .unwrap();
        run_program::<next::Orders>(&args).unwrap();
        for f in ["out.jsonl", "out.jsonl.late"] {
            support::assert_same_file(&reference.join(f), &dir.join(f));
        }
        let store = simplestream::store::FileStore::open(
            dir.join("ckpt"),
            "app-instance-1",
            Default::default(),
        )
        .unwrap();
        let stats = simplestream::Coordinator::new(store, Default::default())
            .recover::<next::Orders>()
            .unwrap()
            .unwrap();
        let stats = state(&stats.pipeline, "customer_stats");
        let orders: Vec<Order> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let mut want = std::collections::BTreeMap::<&str, (u64, Option<f64>)>::new();
        for (i, o) in orders.iter().enumerate() {
            let (n, max) = want.entry(&o.customer).or_default();
            if i < SPLIT {
                *n += 1;
            } else if o.amount > 0.0 {
                *n += 1;
                *max = Some(max.map_or(o.amount, |m: f64| m.max(o.amount)));
            }
        }
        assert_eq!(stats.as_object().unwrap().len(), want.len(), "{stats}");
        for (c, (n, max)) in want {
            assert_eq!(stats[c]["count"], n, "{c}: {stats}");
            assert_eq!(
                stats[c]["max_amount"],
                serde_json::json!(max),
                "{c}: {stats}"
            );
        }
    }
}

/// Windowed stages as deployed: a tumbling window per customer, a sliding window per
/// shard (a `u32` key), a window over all events.
mod windows_v1 {
    use super::*;
    simplestream::pipeline! {
        pub pipeline Win;
        source orders: Order, event_time = |o| o.ts, max_delay = 5s;
        per_min = orders
            .key_by(customer: String = |o| o.customer.clone())
            .window(tumbling(1min))
            .aggregate(n = count());
        per_shard = orders
            .key_by(shard: u32 = |o| (o.ts % 7) as u32)
            .window(sliding(2min, 1min))
            .aggregate(n = count(), amount: f64 = sum(|o| o.amount));
        all = orders.window(tumbling(1min)).aggregate(n = count());
        sink per_min;
    }
}

/// A column added to each window with its migration, the sliding window's key widened.
mod windows_v2 {
    use super::*;
    simplestream::pipeline! {
        pub pipeline Win;
        source orders: Order, event_time = |o| o.ts, max_delay = 5s;
        #[migrate(added(top))]
        per_min = orders
            .key_by(customer: String = |o| o.customer.clone())
            .window(tumbling(1min))
            .aggregate(n = count(), top: f64 = max(|o| o.amount));
        #[migrate(old_key = |k: u32| -> u64 { k as u64 })]
        per_shard = orders
            .key_by(shard: u64 = |o| (o.ts % 7) as u64)
            .window(sliding(2min, 1min))
            .aggregate(n = count(), amount: f64 = sum(|o| o.amount));
        #[migrate(added(total))]
        all = orders.window(tumbling(1min)).aggregate(n = count(), total: f64 = sum(|o| o.amount));
        sink per_min;
    }
}

#[test]
fn windowed_columns_and_keys_migrate() {
    let events = orders();
    let v1 = run(windows_v1::Win::new(), &events[..SPLIT]);
    for codec in [Codec::Json, Codec::Binary] {
        let bytes = envelope::encode(&v1, codec, 1, T0, Default::default()).unwrap();
        let r = decode_with::<windows_v2::Win>(&bytes, &Default::default()).unwrap();
        assert!(
            r.actions
                .iter()
                .all(|a| matches!(a, StageAction::Migrate { .. })),
            "{:?}",
            r.actions
        );
        // The open windows keep their counts; the new columns start from their default.
        let (old, new) = (state(&v1, "per_min"), state(&r.pipeline, "per_min"));
        let windows = old["windows"].as_object().unwrap();
        assert!(!windows.is_empty());
        for (start, keys) in windows {
            for (k, acc) in keys.as_object().unwrap() {
                assert_eq!(
                    new["windows"][start][k]["n"], acc["n"],
                    "{codec} {start} {k}"
                );
                assert_eq!(new["windows"][start][k]["top"], Value::Null, "{codec}");
            }
        }
        assert_eq!(new["watermark"], old["watermark"]);
        assert_eq!(
            state(&r.pipeline, "per_shard"),
            state(&v1, "per_shard"),
            "{codec}"
        );
        assert_eq!(
            state(&r.pipeline, "all")["windows"]
                .as_object()
                .unwrap()
                .len(),
            1
        );
        // After the rest of the input, only windows opened after the restart are open:
        // each stage equals a run of version 2 that never stopped.
        let resumed = run(r.pipeline, &events[SPLIT..]);
        let fresh = run(windows_v2::Win::new(), &events);
        for stage in ["per_min", "per_shard", "all"] {
            assert_eq!(
                state(&resumed, stage),
                state(&fresh, stage),
                "{codec} {stage}"
            );
        }
    }
}

/// Joins and `distinct`: their state (buffered events, seen keys) has no migrations. A
/// renamed stage keeps it; a changed layout is refused, saying so.
mod joins {
    use serde::{Deserialize, Serialize};
    use simplestream::envelope::{self, decode_with};
    use simplestream::upgrade::StageAction;
    use simplestream::{CheckpointError, Checkpointable, Codec, Pipeline};

    use super::T0;

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Checkpointable)]
    pub struct Sale {
        pub id: u64,
        pub customer: String,
        pub ts: i64,
    }

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Checkpointable)]
    pub struct Payment {
        pub sale_id: u64,
        pub ts: i64,
    }

    /// The pipeline with its join window and `distinct` key as given.
    macro_rules! checkout {
        ($(#[$($pa:tt)*])* $paid:ident, $win:tt, $(#[$($ba:tt)*])* $buyers:ident, [$($key:tt)*]) => {
            use super::*;
            simplestream::pipeline! {
                pub pipeline Checkout;
                source sales: Sale, event_time = |s| s.ts, max_delay = 3s;
                source payments: Payment, event_time = |p| p.ts, max_delay = 3s;
                $(#[$($pa)*])*
                $paid = sales
                    .join(payments, sale_id: u64 = |s| s.id, |p| p.sale_id)
                    .window(tumbling($win));
                $(#[$($ba)*])*
                $buyers = sales.distinct($($key)*);
                sink $paid;
            }
        };
    }

    mod v1 {
        checkout!(paid, 30s, buyers, [customer: String = |s| s.customer.clone()]);
    }
    mod renamed {
        checkout!(#[was(paid)] matched, 30s, #[was(buyers)] customers, [customer: String = |s| s.customer.clone()]);
    }
    mod join_resized {
        checkout!(paid, 60s, buyers, [customer: String = |s| s.customer.clone()]);
    }
    mod distinct_rekeyed {
        checkout!(paid, 30s, buyers, [id: u64 = |s| s.id]);
    }

    /// Sales 1 s apart, each even one paid 500 ms later, as a version's events.
    fn events<I>(sale: fn(Sale) -> I, pay: fn(Payment) -> I) -> Vec<I> {
        let mut v = Vec::new();
        for i in 0..60u64 {
            let ts = T0 + i as i64 * 1_000;
            let customer = format!("C{:03}", i % 7);
            v.push(sale(Sale {
                id: i,
                customer,
                ts,
            }));
            if i % 2 == 0 {
                v.push(pay(Payment {
                    sale_id: i,
                    ts: ts + 500,
                }));
            }
        }
        v
    }

    const SPLIT: usize = 50;

    fn run<P: Pipeline>(mut p: P, events: Vec<P::Event>) -> P {
        let mut out = Vec::new();
        for e in events {
            p.process(e, &mut out);
        }
        p
    }

    fn v1_checkpoint(codec: Codec) -> Vec<u8> {
        let all = events(v1::checkout::Input::Sales, v1::checkout::Input::Payments);
        let p = run(v1::Checkout::new(), all.into_iter().take(SPLIT).collect());
        envelope::encode(&p, codec, 1, T0, Default::default()).unwrap()
    }

    fn refusal<P: Pipeline>(bytes: &[u8]) -> String {
        match decode_with::<P>(bytes, &Default::default()) {
            Err(CheckpointError::Incompatible { problems, .. }) => {
                assert_eq!(problems.len(), 1, "{problems:?}");
                problems[0].clone()
            }
            Err(e) => panic!("refused for another reason: {e}"),
            Ok(_) => panic!("restored a checkpoint that must be refused"),
        }
    }

    #[test]
    fn renamed_join_and_distinct_stages_keep_their_state() {
        let all = || {
            events(
                renamed::checkout::Input::Sales,
                renamed::checkout::Input::Payments,
            )
        };
        for codec in [Codec::Json, Codec::Binary] {
            let r = decode_with::<renamed::Checkout>(&v1_checkpoint(codec), &Default::default())
                .unwrap();
            for (stage, from) in [("matched", "paid"), ("customers", "buyers")] {
                let renamed = StageAction::Renamed {
                    stage: stage.into(),
                    from: from.into(),
                };
                assert!(r.actions.contains(&renamed), "{codec}: {:?}", r.actions);
            }
            let buffered = r.pipeline.stage_json("matched").unwrap();
            assert!(
                buffered.to_string().contains("\"sale_id\""),
                "payments are buffered: {buffered}"
            );
            let resumed = run(r.pipeline, all().into_iter().skip(SPLIT).collect());
            let fresh = run(renamed::Checkout::new(), all());
            for stage in ["matched", "customers"] {
                assert_eq!(
                    resumed.stage_json(stage),
                    fresh.stage_json(stage),
                    "{codec} {stage}"
                );
            }
        }
    }

    #[test]
    fn a_changed_join_or_distinct_layout_is_refused_with_a_hint() {
        for codec in [Codec::Json, Codec::Binary] {
            let p = refusal::<join_resized::Checkout>(&v1_checkpoint(codec));
            assert!(
                p.contains("stage `paid` changed its state layout")
                    && p.contains("a window's size cannot be migrated")
                    && p.contains("--allow-dropped-state paid"),
                "{p}"
            );
            let p = refusal::<distinct_rekeyed::Checkout>(&v1_checkpoint(codec));
            assert!(
                p.contains("stage `buyers` changed its state layout (`distinct customer: String` became `distinct id: u64`)")
                    && p.contains("the keys a `distinct` stage has seen have no migrations: add the changed stage as a new stage, or drop its state with `--allow-dropped-state buyers`"),
                "{p}"
            );
        }
    }
}

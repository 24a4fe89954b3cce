//! Incremental checkpoints: base + deltas restore exactly what a whole snapshot holds,
//! retention keeps every piece a retained checkpoint needs (also when it stops half-way),
//! and a missing or corrupt piece makes a checkpoint unrestorable, never half-loaded.

mod common;
use common::*;

use std::collections::BTreeMap;

use proptest::prelude::*;
use simplestream::incremental::{chain, IncrementalConfig, Manifest};
use simplestream::names::{parse_name, EntryKind};
use simplestream::store::{CheckpointStore, MemoryStore, StoreError, StoreErrorKind, StoredEntry};
use simplestream::{envelope, Codec, Coordinator, CoordinatorConfig, Pipeline};

fn order(i: u64, keys: u64) -> Order {
    Order {
        customer: format!("C{:03}", (i * 7919) % keys),
        amount: (i % 13) as f64 + 0.5,
        ts: 1_000 * i as i64,
    }
}

fn coordinator<S: CheckpointStore>(
    store: S,
    codec: Codec,
    keep: usize,
    max_deltas: usize,
) -> Coordinator<S> {
    let config = CoordinatorConfig {
        every_events: None,
        codec,
        keep,
        ..CoordinatorConfig::default()
    };
    let mut c = Coordinator::new(store, config);
    c.set_incremental(Some(IncrementalConfig {
        max_deltas,
        max_delta_ratio: f64::INFINITY,
    }));
    c
}

/// Every stage's state and the clock, as JSON text: what a whole snapshot holds.
fn state_of<P: Pipeline>(p: &P) -> String {
    let mut out = Vec::new();
    p.encode_stages(Codec::Json, &mut out).unwrap();
    format!("{:?} {}", p.clock(), String::from_utf8(out).unwrap())
}

#[derive(Debug, Clone)]
enum Op {
    Events(u64),
    Checkpoint,
    Restore,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1u64..40).prop_map(Op::Events),
        2 => Just(Op::Checkpoint),
        1 => Just(Op::Restore),
    ]
}

/// Random events, checkpoints and restores on pipeline `P` (`event(i)` is its `i`-th
/// event): every restore (base + deltas) gives exactly the state a whole snapshot of the
/// pipeline had at that checkpoint.
fn check_restores<P: Pipeline>(
    ops: Vec<Op>,
    binary: bool,
    max_deltas: usize,
    event: impl Fn(u64) -> P::Event,
) -> Result<(), TestCaseError> {
    let codec = if binary { Codec::Binary } else { Codec::Json };
    let mut c = coordinator(MemoryStore::new(), codec, 3, max_deltas);
    let mut p = P::new();
    let mut out = Vec::new();
    let (mut next, mut saved) = (0u64, None);
    for op in ops {
        match op {
            Op::Events(n) => {
                for _ in 0..n {
                    p.process(event(next), &mut out);
                    next += 1;
                }
            }
            Op::Checkpoint => {
                let positions = BTreeMap::from([("events".to_string(), next)]);
                c.checkpoint(&p, positions, next as i64).unwrap();
                saved = Some((next, state_of(&p)));
            }
            Op::Restore => {
                let store = c.into_store();
                c = coordinator(store, codec, 3, max_deltas);
                let r = c.recover::<P>().unwrap();
                match (&saved, r) {
                    (None, None) => p = P::new(),
                    (Some((at, state)), Some(r)) => {
                        prop_assert!(r.warnings.is_empty(), "{:?}", r.warnings);
                        prop_assert_eq!(r.header.positions["events"], *at);
                        prop_assert_eq!(&state_of(&r.pipeline), state);
                        next = *at;
                        p = r.pipeline;
                    }
                    (s, r) => {
                        prop_assert!(false, "saved {:?}, restored {:?}", s, r.map(|r| r.name))
                    }
                }
            }
        }
    }
    Ok(())
}

fn ops() -> impl Strategy<Value = (Vec<Op>, u64, bool, usize)> {
    (
        prop::collection::vec(op(), 1..40),
        1u64..30,
        any::<bool>(),
        1usize..5,
    )
}

simplestream::pipeline! {
    /// Each customer's first order, counted per 10 s window.
    pub pipeline FirstOrders;
    source orders: Order, event_time = |o| o.ts, max_delay = 2s;
    first = orders.distinct(customer: String = |o| o.customer.clone());
    per_10s = first.window(tumbling(10s)).aggregate(new = count());
    sink per_10s;
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Running aggregates and tumbling windows (the orders example).
    #[test]
    fn base_plus_deltas_equals_a_whole_snapshot((ops, keys, binary, max_deltas) in ops()) {
        check_restores::<OrderStats>(ops, binary, max_deltas, |i| order(i, keys))?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn sliding_windows_restore_from_base_plus_deltas((ops, keys, binary, max_deltas) in ops()) {
        check_restores::<SlidingStats>(ops, binary, max_deltas, |i| order(i, keys))?;
    }

    #[test]
    fn session_windows_restore_from_base_plus_deltas((ops, keys, binary, max_deltas) in ops()) {
        check_restores::<SessionStats>(ops, binary, max_deltas, |i| order(i, keys))?;
    }

    #[test]
    fn global_windows_restore_from_base_plus_deltas((ops, keys, binary, max_deltas) in ops()) {
        check_restores::<GlobalStats>(ops, binary, max_deltas, |i| order(i, keys))?;
    }

    #[test]
    fn distinct_restores_from_base_plus_deltas((ops, keys, binary, max_deltas) in ops()) {
        check_restores::<FirstOrders>(ops, binary, max_deltas, |i| order(i, keys * 40))?;
    }

    /// Window joins and interval joins (and the aggregate after them).
    #[test]
    fn joins_restore_from_base_plus_deltas((ops, seed, binary, max_deltas) in ops()) {
        let events = sales_and_payments(seed, 1_000);
        check_restores::<Payments>(ops, binary, max_deltas, |i| {
            events[i as usize % events.len()].clone()
        })?;
    }
}

/// Names in the store, by kind.
fn names(s: &MemoryStore, kind: EntryKind) -> Vec<String> {
    s.list()
        .unwrap()
        .into_iter()
        .filter(|e| parse_name(&e.name).map(|(_, k)| k) == Some(kind))
        .map(|e| e.name)
        .collect()
}

/// Checkpoints `p` after each of `steps` batches of 20 events.
fn run(
    c: &mut Coordinator<impl CheckpointStore>,
    p: &mut OrderStats,
    from: u64,
    steps: u64,
) -> Vec<String> {
    let mut out = Vec::new();
    (0..steps)
        .map(|s| {
            for i in 0..20 {
                p.process(order(from + s * 20 + i, 50), &mut out);
            }
            c.checkpoint(&*p, BTreeMap::new(), (from + s) as i64)
                .unwrap()
                .name
        })
        .collect()
}

#[test]
fn deltas_hold_the_changed_keys_and_chains_are_bounded() {
    let mut c = coordinator(MemoryStore::new(), Codec::Json, 10, 3);
    let mut p = OrderStats::new();
    let mut out = Vec::new();
    for i in 0..5_000 {
        p.process(order(i, 5_000), &mut out);
    }
    // 20 events between checkpoints, each for another key of the 5000.
    let names = run(&mut c, &mut p, 5_000, 8);
    let kinds: Vec<EntryKind> = names.iter().map(|n| parse_name(n).unwrap().1).collect();
    use EntryKind::{Manifest as M, Whole as W};
    assert_eq!(kinds, [W, M, M, M, W, M, M, M], "{names:?}");
    let store = c.store();
    for delta in names_of_kind(store, EntryKind::Delta) {
        let v: serde_json::Value = serde_json::from_slice(&store.get(&delta).unwrap()).unwrap();
        let stats = &v["customer_stats"];
        assert_eq!(stats["reset"], false, "{delta}");
        assert_eq!(stats["upserts"].as_object().unwrap().len(), 20, "{delta}");
        assert_eq!(stats["removed"].as_array().unwrap().len(), 0, "{delta}");
        // The windows: only the 20 (window, customer) entries those events changed.
        let windows = &v["per_5min"];
        assert_eq!(windows["reset"], false, "{delta}");
        let changed: usize = windows["changed"]
            .as_object()
            .unwrap()
            .values()
            .map(|keyed| keyed.as_object().unwrap().len())
            .sum();
        assert_eq!(changed, 20, "{delta}");
        assert!(!windows["open"].as_array().unwrap().is_empty(), "{delta}");
    }
    let whole: serde_json::Value = serde_json::from_slice(&store.get(&names[0]).unwrap()).unwrap();
    assert_eq!(whole["customer_stats"].as_object().unwrap().len(), 5_000);
    let m = Manifest::decode(&store.get(&names[3]).unwrap()).unwrap();
    assert_eq!(m.pieces.len(), 4, "base and three deltas");
    assert_eq!(m.pieces[0].name, names[0]);
}

fn names_of_kind(s: &MemoryStore, kind: EntryKind) -> Vec<String> {
    names(s, kind)
}

/// A store whose deletes fail after `budget` of them: retention stops there, as a
/// crash between two of its steps would leave it.
struct StopsDeleting<S> {
    inner: S,
    budget: usize,
}

impl<S: CheckpointStore> CheckpointStore for StopsDeleting<S> {
    fn location(&self) -> String {
        self.inner.location()
    }
    fn put(&mut self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        self.inner.put(name, bytes)
    }
    fn get(&self, name: &str) -> Result<Vec<u8>, StoreError> {
        self.inner.get(name)
    }
    fn list(&self) -> Result<Vec<StoredEntry>, StoreError> {
        self.inner.list()
    }
    fn delete(&mut self, name: &str) -> Result<(), StoreError> {
        if self.budget == 0 {
            return Err(StoreError::new(
                StoreErrorKind::Other,
                "deleting",
                name,
                "stopped",
            ));
        }
        self.budget -= 1;
        self.inner.delete(name)
    }
    fn put_latest(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        self.inner.put_latest(bytes)
    }
    fn get_latest(&self) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get_latest()
    }
}

/// Restores checkpoint `name` (whole or manifest) on its own.
fn restore(store: &MemoryStore, name: &str) -> Result<OrderStats, String> {
    let bytes = store.get(name).map_err(|e| e.to_string())?;
    match parse_name(name).unwrap().1 {
        EntryKind::Manifest => chain::restore::<OrderStats, _>(store, &bytes, &Default::default())
            .map(|(_, p, _, _)| p)
            .map_err(|e| e.to_string()),
        _ => envelope::decode::<OrderStats>(&bytes)
            .map(|(_, p)| p)
            .map_err(|e| e.to_string()),
    }
}

#[test]
fn retention_stopped_after_any_step_keeps_every_retained_checkpoint_restorable() {
    // Ten checkpoints kept, then a retention down to three: it deletes manifests, deltas
    // and old bases, one step at a time.
    let (keep, steps) = (3, 11);
    let mut steps_seen = 0;
    for stop_after in 0..20 {
        let mut c = coordinator(MemoryStore::new(), Codec::Json, 10, 2);
        let mut p = OrderStats::new();
        let mut taken = run(&mut c, &mut p, 0, steps - 1);
        // The last checkpoint's retention stops after `stop_after` deletes.
        let store = c.into_store();
        let mut c = coordinator(
            StopsDeleting {
                inner: store,
                budget: stop_after,
            },
            Codec::Json,
            keep,
            2,
        );
        c.recover::<OrderStats>().unwrap().unwrap();
        taken.extend(run(&mut c, &mut p, 1_000, 1));
        let store = c.into_store().inner;
        let present = store.list().unwrap().len();
        // Every one of the newest `keep` checkpoints restores, each to its own state.
        for name in &taken[taken.len() - keep..] {
            restore(&store, name)
                .unwrap_or_else(|e| panic!("stop after {stop_after}: {name}: {e}"));
        }
        // Restarting finishes the job: only what the kept checkpoints name is left.
        let mut c = coordinator(store, Codec::Json, keep, 2);
        let r = c.recover::<OrderStats>().unwrap().unwrap();
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);
        let mut p = r.pipeline;
        taken.extend(run(&mut c, &mut p, 2_000, 1));
        let store = c.into_store();
        let kept: Vec<&String> = taken[taken.len() - keep..].iter().collect();
        let mut needed: Vec<String> = Vec::new();
        for name in &kept {
            needed.push(name.to_string());
            if parse_name(name).unwrap().1 == EntryKind::Manifest {
                let m = Manifest::decode(&store.get(name).unwrap()).unwrap();
                needed.extend(m.pieces.into_iter().map(|p| p.name));
            }
        }
        needed.sort();
        needed.dedup();
        let left: Vec<String> = store.list().unwrap().into_iter().map(|e| e.name).collect();
        assert_eq!(left, needed, "stop after {stop_after}");
        if present > left.len() + 1 {
            steps_seen = stop_after + 1;
        }
    }
    // The stops landed before, between and after the steps of a long retention.
    assert!(
        steps_seen >= 8,
        "retention stopped early only {steps_seen} times"
    );
}

#[test]
fn a_corrupt_or_missing_piece_falls_back_to_an_older_complete_checkpoint() {
    let mut c = coordinator(MemoryStore::new(), Codec::Binary, 10, 2);
    let mut p = OrderStats::new();
    // whole(0) delta(1) delta(2) whole(3) delta(4)
    let taken = run(&mut c, &mut p, 0, 5);
    let mut store = c.into_store();
    let deltas = names(&store, EntryKind::Delta);
    let newest_delta = deltas.last().unwrap().clone();
    let bytes = store.bytes_mut(&newest_delta).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    let mut c = coordinator(store, Codec::Binary, 10, 2);
    let r = c.recover::<OrderStats>().unwrap().unwrap();
    assert_eq!(r.name, taken[3], "{:?}", r.warnings);
    assert!(
        r.warnings[0].contains("is not the one the manifest names"),
        "{:?}",
        r.warnings
    );
    assert_eq!(
        state_of(&r.pipeline),
        state_of(&restore(c.store(), &taken[3]).unwrap())
    );
    // Without the newer base, the older chain (base + two deltas) is used.
    let mut store = c.into_store();
    store.delete(&taken[3]).unwrap();
    let mut c = coordinator(store, Codec::Binary, 10, 2);
    let r = c.recover::<OrderStats>().unwrap().unwrap();
    assert_eq!(r.name, taken[2], "{:?}", r.warnings);
    assert!(
        r.warnings.iter().any(|w| w.contains("no such checkpoint")),
        "{:?}",
        r.warnings
    );
}

#[test]
fn a_delta_is_never_taken_for_a_whole_checkpoint() {
    for codec in [Codec::Json, Codec::Binary] {
        let mut c = coordinator(MemoryStore::new(), codec, 10, 2);
        let mut p = OrderStats::new();
        run(&mut c, &mut p, 0, 2);
        let delta = names(c.store(), EntryKind::Delta).remove(0);
        let bytes = c.store().get(&delta).unwrap();
        let e = envelope::decode::<OrderStats>(&bytes)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("it is a delta of an incremental checkpoint"),
            "{codec}: {e}"
        );
        let whole = names(c.store(), EntryKind::Whole).remove(0);
        let mut p = OrderStats::new();
        let e = envelope::apply_delta(&c.store().get(&whole).unwrap(), &mut p).unwrap_err();
        assert!(
            e.to_string()
                .contains("it is a whole checkpoint, not a delta"),
            "{codec}: {e}"
        );
    }
}

#[test]
fn restoring_a_foreign_pipelines_manifest_is_refused() {
    let mut c = coordinator(MemoryStore::new(), Codec::Json, 10, 2);
    let mut p = OrderStats::new();
    let taken = run(&mut c, &mut p, 0, 2);
    let bytes = c.store().get(&taken[1]).unwrap();
    let e = chain::restore::<SlidingStats, _>(c.store(), &bytes, &Default::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("belongs to pipeline `OrderStats`"), "{e}");
}

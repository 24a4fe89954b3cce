//! State that must stay restorable: non-finite floats in both codecs (library and the
//! real `orders` binary), checkpoints that would not decode never become `latest`, and
//! checkpoints without the runner's positions are refused by the runner.

mod common;
mod support;

use std::collections::BTreeMap;
use std::path::Path;

use common::*;
use serde::{Deserialize, Serialize};
use simplestream::coordinator::CoordinatorError;
use simplestream::envelope;
use simplestream::store::{CheckpointStore, FileStore, FileStoreOptions};
use simplestream::{pipeline, Checkpointable};
use simplestream::{Codec, Coordinator, CoordinatorConfig, MemoryStore, Pipeline};
use simplestream_examples::orders;

const CODECS: [Codec; 2] = [Codec::Json, Codec::Binary];
const T0: i64 = 1_635_739_200_000;

fn o(c: &str, amount: f64, ts: i64) -> Order {
    Order {
        customer: c.into(),
        amount,
        ts,
    }
}

/// Outputs as text: NaN is not equal to itself, its debug form is.
fn shown<P: Pipeline>(mut p: P, tail: &[P::Event]) -> Vec<String>
where
    P::Event: Clone,
    P::Output: std::fmt::Debug,
{
    let mut out = Vec::new();
    for e in tail {
        p.process(e.clone(), &mut out);
    }
    p.finish(&mut out);
    out.iter().map(|r| format!("{r:?}")).collect()
}

/// A sum that overflows to infinity (`OrderStats`) and a custom aggregate whose state
/// holds NaN and -inf (`SessionStats`, `SpreadAgg`).
fn non_finite_states() -> (OrderStats, SessionStats) {
    let mut sums = OrderStats::new();
    let mut spread = SessionStats::new();
    let mut out = Vec::new();
    for (i, amount) in [1e308, 1e308, 5.0].into_iter().enumerate() {
        sums.process(o("C001", amount, T0 + i as i64), &mut out);
    }
    let mut out = Vec::new();
    for (i, amount) in [f64::NAN, f64::NEG_INFINITY, 2.0].into_iter().enumerate() {
        spread.process(o(&format!("C{i}"), amount, T0 + i as i64), &mut out);
    }
    (sums, spread)
}

#[test]
fn non_finite_floats_round_trip_through_both_codecs() {
    let (sums, spread) = non_finite_states();
    assert_eq!(
        sums.stage_json("customer_stats").unwrap()["C001"]["amount"],
        "Infinity"
    );
    let tail = [o("C001", 1.0, T0 + 400_000), o("C009", 1.0, T0 + 900_000)];
    for codec in CODECS {
        let bytes = envelope::encode(&sums, codec, 1, T0, BTreeMap::new()).unwrap();
        let (_, back) = envelope::decode::<OrderStats>(&bytes)
            .unwrap_or_else(|e| panic!("{codec}: the sum overflowed to inf: {e}"));
        assert_eq!(
            back.stage_json("customer_stats"),
            sums.stage_json("customer_stats")
        );
        assert_eq!(
            shown(back, &tail),
            shown(non_finite_states().0, &tail),
            "{codec}"
        );

        let bytes = envelope::encode(&spread, codec, 1, T0, BTreeMap::new()).unwrap();
        let (_, back) = envelope::decode::<SessionStats>(&bytes)
            .unwrap_or_else(|e| panic!("{codec}: custom state with NaN: {e}"));
        let shown_back = shown(back, &tail);
        assert_eq!(shown_back, shown(non_finite_states().1, &tail), "{codec}");
        assert!(
            shown_back.iter().any(|r| r.contains("NaN")),
            "{shown_back:?}"
        );
    }
    // The documented JSON form: strings, never `null`.
    let json = envelope::encode(&spread, Codec::Json, 1, T0, BTreeMap::new()).unwrap();
    let text = String::from_utf8(json).unwrap();
    assert!(text.contains(r#""lo":"NaN""#), "{text}");
    assert!(text.contains(r#""lo":"-Infinity""#), "{text}");
    assert!(!text.contains("null"), "{text}");
}

#[test]
fn output_rows_write_non_finite_numbers_as_strings() {
    let (sums, _) = non_finite_states();
    let mut out = Vec::new();
    let mut p = sums;
    p.finish(&mut out);
    let mut line = Vec::new();
    simplestream::codec::to_json_writer(&mut line, &out[0]).unwrap();
    let line = String::from_utf8(line).unwrap();
    assert!(line.contains(r#""amount":"Infinity""#), "{line}");
}

#[test]
fn coordinator_checkpoints_and_recovers_non_finite_state_in_both_codecs() {
    let (sums, spread) = non_finite_states();
    for codec in CODECS {
        let config = CoordinatorConfig {
            codec,
            keep: 1,
            ..Default::default()
        };
        let mut c = Coordinator::new(MemoryStore::new(), config.clone());
        c.checkpoint(&sums, BTreeMap::new(), T0).unwrap();
        c.checkpoint(&sums, BTreeMap::new(), T0 + 1).unwrap();
        let r = c.recover::<OrderStats>().unwrap().unwrap();
        assert!(r.warnings.is_empty(), "{codec}: {:?}", r.warnings);
        assert_eq!(
            r.pipeline.stage_json("customer_stats"),
            sums.stage_json("customer_stats")
        );

        let mut c = Coordinator::new(MemoryStore::new(), config);
        c.checkpoint(&spread, BTreeMap::new(), T0).unwrap();
        let r = c.recover::<SessionStats>().unwrap().unwrap();
        assert!(r.warnings.is_empty(), "{codec}: {:?}", r.warnings);
    }
}

/// A user state whose JSON does not read back: 13 is written as a string.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct Unlucky(u32);
impl Serialize for Unlucky {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            13 => s.serialize_str("thirteen"),
            n => s.serialize_u32(n),
        }
    }
}
impl Checkpointable for Unlucky {
    const LAYOUT: u64 = simplestream::fingerprint::fnv1a("Unlucky(u32)");
}

#[derive(Default)]
pub struct UnluckyAgg;
impl simplestream::aggregate::Aggregate for UnluckyAgg {
    type Input = ();
    type Acc = Unlucky;
    type Output = u32;
    fn add(&self, acc: &mut Unlucky, _: ()) {
        acc.0 += 1;
    }
    fn merge(&self, acc: &mut Unlucky, o: &Unlucky) {
        acc.0 += o.0;
    }
    fn output(&self, acc: &Unlucky) -> u32 {
        acc.0
    }
}

pipeline! {
    pub pipeline UnluckyCounts;
    source orders: Order, event_time = |o| o.ts, max_delay = 1s;
    per_customer = orders
        .key_by(customer: String = |o| o.customer.clone())
        .aggregate(n = custom(UnluckyAgg, |_o| ()));
}

#[test]
fn a_checkpoint_that_would_not_decode_is_not_stored_and_latest_stays() {
    for codec in CODECS {
        let mut p = UnluckyCounts::new();
        let mut out = Vec::new();
        let config = CoordinatorConfig {
            codec,
            ..Default::default()
        };
        let mut c = Coordinator::new(MemoryStore::new(), config);
        for i in 0..12 {
            p.process(o("C7", 1.0, T0 + i), &mut out);
        }
        let good = c.checkpoint(&p, BTreeMap::new(), T0).unwrap();
        p.process(o("C7", 1.0, T0 + 12), &mut out);
        let err = c.checkpoint(&p, BTreeMap::new(), T0 + 1).unwrap_err();
        let CoordinatorError::Unrestorable { id, source } = &err else {
            panic!("{codec}: expected Unrestorable, got {err:?}");
        };
        assert_eq!(*id, 2);
        let msg = err.to_string();
        assert!(msg.contains("would not restore"), "{msg}");
        if codec == Codec::Json {
            assert!(
                msg.contains("per_customer.C7.n"),
                "names the stage and key: {msg}"
            );
        }
        assert!(std::error::Error::source(&err).is_some(), "{source}");
        assert_eq!(
            names(c.store()),
            vec![good.name.clone()],
            "nothing new stored"
        );
        assert_eq!(c.latest().unwrap().unwrap().file, good.name);
        // The next checkpoint, once the state reads back, is stored as usual.
        p.process(o("C7", 1.0, T0 + 13), &mut out);
        let next = c.checkpoint(&p, BTreeMap::new(), T0 + 2).unwrap();
        assert_eq!(c.latest().unwrap().unwrap().file, next.name);
    }
}

// ---------------------------------------------------------------------------------------
// Through the release `orders` binary
// ---------------------------------------------------------------------------------------

fn line(customer: &str, amount: &str, ts: i64) -> String {
    format!("{{\"customer\":\"{customer}\",\"amount\":{amount},\"ts\":{ts}}}\n")
}

fn run(dir: &Path, input: &Path, extra: &[&str]) -> std::process::Output {
    support::orders(dir, input, extra).output().unwrap()
}

#[test]
fn runner_restores_a_sum_that_overflowed_to_infinity_in_both_codecs() {
    // C1's amounts overflow to +inf in its running sum and in its first window.
    let first: String = (0..6)
        .map(|i| {
            line(
                if i % 2 == 0 { "C1" } else { "C2" },
                "1e308",
                T0 + i * 1_000,
            )
        })
        .collect();
    let second: String = (6..12)
        .map(|i| line("C2", "2.5", T0 + i * 60_000))
        .collect();
    for codec in ["json", "binary"] {
        let tmp = tempfile::tempdir().unwrap();
        let (dir, whole) = (tmp.path().join("run"), tmp.path().join("whole"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::create_dir_all(&whole).unwrap();
        let input = tmp.path().join("in.jsonl");
        let args = ["--codec", codec, "--checkpoint-every", "2", "--keep", "2"];
        std::fs::write(&input, &first).unwrap();
        let out = run(&dir, &input, &args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // The second run restores the last checkpoint (sums at +inf) and goes on.
        std::fs::write(&input, format!("{first}{second}")).unwrap();
        let out = run(&dir, &input, &args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{codec}: {stderr}");
        assert!(stderr.contains("restored checkpoint"), "{codec}: {stderr}");
        // Same output as one uninterrupted run; infinity is a string, never null.
        let out = run(&whole, &input, &args);
        assert!(out.status.success());
        support::assert_same_file(&dir.join("out.jsonl"), &whole.join("out.jsonl"));
        let rows = std::fs::read_to_string(dir.join("out.jsonl")).unwrap();
        assert!(rows.contains(r#""amount":"Infinity""#), "{codec}: {rows}");
        assert!(!rows.contains("null"), "{codec}: {rows}");
        let ck = support::latest_checkpoint(&dir);
        assert_eq!(ck["customer_stats"]["C1"]["amount"], "Infinity", "{codec}");
    }
}

#[test]
fn runner_refuses_a_checkpoint_without_its_positions() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let input = dir.join("in.jsonl");
    let lines: String = (0..20).map(|i| line("C1", "1.5", T0 + i * 1_000)).collect();
    std::fs::write(&input, &lines).unwrap();
    // A checkpoint written by a library Coordinator: state, but no positions.
    let mut p = orders::Orders::new();
    let mut sink = Vec::new();
    for i in 0..5 {
        p.process(
            orders::Order {
                customer: "C1".into(),
                amount: 1.5,
                ts: T0 + i * 1_000,
            },
            &mut sink,
        );
    }
    let store = FileStore::open(
        dir.join("ckpt"),
        "app-instance-1",
        FileStoreOptions { read_only: false },
    )
    .unwrap();
    let mut c = Coordinator::new(store, CoordinatorConfig::default());
    c.checkpoint(&p, BTreeMap::new(), T0).unwrap();
    drop(c);
    let mine = b"the user's own rows\n".repeat(50);
    std::fs::write(dir.join("out.jsonl"), &mine).unwrap();

    let out = run(dir, &input, &[]);
    assert_eq!(out.status.code(), Some(1), "refused, not run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("ERROR")).collect();
    assert_eq!(errors.len(), 1, "one line: {stderr}");
    assert!(
        errors[0].contains("source.offset") && errors[0].contains("--from-scratch"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read(dir.join("out.jsonl")).unwrap(),
        mine,
        "output untouched"
    );
}

// ---------------------------------------------------------------------------------------
// Retention
// ---------------------------------------------------------------------------------------

/// A memory store whose next write of a checkpoint is damaged on the way (a storage
/// fault the encoder cannot see).
#[derive(Default)]
struct DamagingStore {
    inner: MemoryStore,
    damage_next: bool,
}

impl CheckpointStore for DamagingStore {
    fn location(&self) -> String {
        "damaging".into()
    }
    fn put(&mut self, name: &str, bytes: &[u8]) -> Result<(), simplestream::StoreError> {
        let mut bytes = bytes.to_vec();
        if std::mem::take(&mut self.damage_next) {
            let mid = bytes.len() / 2;
            bytes[mid] ^= 0x20;
        }
        self.inner.put(name, &bytes)
    }
    fn get(&self, name: &str) -> Result<Vec<u8>, simplestream::StoreError> {
        self.inner.get(name)
    }
    fn list(&self) -> Result<Vec<simplestream::store::StoredEntry>, simplestream::StoreError> {
        self.inner.list()
    }
    fn delete(&mut self, name: &str) -> Result<(), simplestream::StoreError> {
        self.inner.delete(name)
    }
    fn put_latest(&mut self, bytes: &[u8]) -> Result<(), simplestream::StoreError> {
        self.inner.put_latest(bytes)
    }
    fn get_latest(&self) -> Result<Option<Vec<u8>>, simplestream::StoreError> {
        self.inner.get_latest()
    }
}

fn names<S: CheckpointStore>(s: &S) -> Vec<String> {
    s.list().unwrap().into_iter().map(|e| e.name).collect()
}

#[test]
fn retention_keeps_the_newest_checkpoint_that_verifies() {
    for codec in CODECS {
        let config = CoordinatorConfig {
            codec,
            keep: 1,
            ..Default::default()
        };
        let mut c = Coordinator::new(DamagingStore::default(), config);
        let mut p = OrderStats::new();
        let mut out = Vec::new();
        let mut taken = Vec::new();
        for i in 0..3 {
            p.process(o("C1", 1.0, T0 + i), &mut out);
            taken.push(c.checkpoint(&p, BTreeMap::new(), T0 + i).unwrap().name);
        }
        assert_eq!(names(c.store()), vec![taken[2].clone()]);
        // The fourth is damaged in the store: the third, which verifies, must stay.
        c.store_mut().damage_next = true;
        p.process(o("C1", 1.0, T0 + 3), &mut out);
        let info = c.checkpoint(&p, BTreeMap::new(), T0 + 3).unwrap();
        assert_eq!(names(c.store()), vec![taken[2].clone(), info.name.clone()]);
        let r = c.recover::<OrderStats>().unwrap().unwrap();
        assert_eq!(r.name, taken[2], "{codec}: {:?}", r.warnings);
        // Once a newer one verifies, the spare goes.
        p.process(o("C1", 1.0, T0 + 4), &mut out);
        let info = c.checkpoint(&p, BTreeMap::new(), T0 + 4).unwrap();
        assert_eq!(names(c.store()), vec![info.name], "{codec}");
    }
}

#[test]
fn retention_in_a_file_store_leaves_files_it_did_not_write() {
    let tmp = tempfile::tempdir().unwrap();
    let rw = FileStoreOptions { read_only: false };
    let store = FileStore::open(tmp.path(), "app", rw).unwrap();
    let dir = store.dir().to_path_buf();
    // Names the coordinator never writes, some of them close to its own.
    let foreign = [
        "checkpoint_backup.json",
        "checkpoint_mine-000001.json",
        "checkpoint_20241201_140000_123-1.json",
        "checkpoint_20241201_140000_123-00000x.bin",
    ];
    for f in foreign {
        std::fs::write(dir.join(f), f.as_bytes()).unwrap();
    }
    let mut c = Coordinator::new(
        store,
        CoordinatorConfig {
            keep: 1,
            ..Default::default()
        },
    );
    let mut p = OrderStats::new();
    let mut out = Vec::new();
    let mut last = String::new();
    for i in 0..4 {
        p.process(o("C1", 1.0, T0 + i), &mut out);
        let info = c.checkpoint(&p, BTreeMap::new(), T0 + i).unwrap();
        assert!(
            info.deleted.iter().all(|d| !foreign.contains(&d.as_str())),
            "{:?}",
            info.deleted
        );
        last = info.name;
    }
    for f in foreign {
        assert_eq!(std::fs::read(dir.join(f)).unwrap(), f.as_bytes(), "{f}");
    }
    let mut ours = names(c.store());
    ours.retain(|n| !foreign.contains(&n.as_str()));
    assert_eq!(ours, vec![last]);
}

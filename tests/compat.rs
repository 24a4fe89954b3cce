//! Checkpoints written by earlier releases, checked in under `tests/compat/v<N>/`: every
//! later build must restore them (or refuse them on purpose, with the documented
//! message). Each was taken after `SPLIT` events of a fixed input; a restore must hold
//! the state of a fresh run over those events, and go on to the same outputs.
//!
//! `SIMPLESTREAM_WRITE_COMPAT=1 cargo test --test compat write_compat_files -- --ignored`
//! writes the files of the current format version (never overwriting existing ones).

use std::fmt::Debug;
use std::path::PathBuf;

use simplestream::{envelope, Codec, Pipeline};
use simplestream_examples::nexmark::{self, inputs, Q4, Q5};
use simplestream_examples::orders::{Order, Orders};

const T0: i64 = 1_635_739_200_000;

fn dir(version: u32) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/compat/v{version}"))
}

/// 2,000 orders of 13 customers over 20 minutes, some out of order and some late.
fn orders() -> Vec<Order> {
    (0..2_000i64)
        .map(|i| Order {
            customer: format!("C{:03}", i * 7 % 13),
            amount: (i % 17) as f64 * 1.25,
            ts: T0 + i * 600 - if i % 11 == 5 { 40_000 } else { i % 3 * 700 },
        })
        .collect()
}

fn q4_input() -> Vec<nexmark::q4::Input> {
    nexmark::events(0, 1_200).filter_map(inputs::q4).collect()
}

fn q5_input() -> Vec<nexmark::Bid> {
    nexmark::events(0, 1_200).filter_map(inputs::bids).collect()
}

/// Where each checkpoint was taken: after this many events of its input.
fn split(len: usize) -> usize {
    len * 3 / 5
}

fn run<P: Pipeline>(events: &[P::Event]) -> (P, Vec<P::Output>)
where
    P::Event: Clone,
{
    let mut p = P::new();
    let mut out = Vec::new();
    for e in events {
        p.process(e.clone(), &mut out);
    }
    (p, out)
}

fn finish<P: Pipeline>(mut p: P, tail: &[P::Event]) -> Vec<String>
where
    P::Event: Clone,
    P::Output: Debug,
{
    let mut out = Vec::new();
    for e in tail {
        p.process(e.clone(), &mut out);
    }
    p.finish(&mut out);
    out.iter().map(|o| format!("{o:?}")).collect()
}

fn state<P: Pipeline>(p: &P) -> Vec<(String, serde_json::Value)> {
    P::STAGES
        .iter()
        .map(|s| (s.to_string(), p.stage_json(s).expect("a stateful stage")))
        .collect()
}

/// Restores `<name>.json` and `<name>.bin` of format `version` and checks both against a
/// fresh run over the same events.
fn check<P: Pipeline>(version: u32, name: &str, events: &[P::Event])
where
    P::Event: Clone,
    P::Output: Debug,
{
    let at = split(events.len());
    let (fresh, _) = run::<P>(&events[..at]);
    let expected_state = state(&fresh);
    assert!(
        expected_state
            .iter()
            .any(|(_, v)| v.as_object().is_some_and(|o| !o.is_empty())),
        "{name}: the checkpoint must hold some state to be a test"
    );
    let expected_tail = finish(fresh, &events[at..]);
    for ext in ["json", "bin"] {
        let path = dir(version).join(format!("{name}.{ext}"));
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let (header, restored) = envelope::decode::<P>(&bytes)
            .unwrap_or_else(|e| panic!("{} no longer restores: {e}", path.display()));
        assert_eq!(header.format_version, version, "{}", path.display());
        assert_eq!(header.positions["events"], at as u64);
        assert_eq!(state(&restored), expected_state, "{}", path.display());
        assert_eq!(
            finish(restored, &events[at..]),
            expected_tail,
            "{}: outputs after the restore",
            path.display()
        );
    }
}

#[test]
fn v1_checkpoints_restore() {
    check::<Orders>(1, "orders", &orders());
    check::<Q4>(1, "q4_join", &q4_input());
    check::<Q5>(1, "q5_windows", &q5_input());
}

/// Version 2 added each stage's layout to the header (and the stage lengths to binary).
#[test]
fn v2_checkpoints_restore() {
    check::<Orders>(2, "orders", &orders());
    check::<Q4>(2, "q4_join", &q4_input());
    check::<Q5>(2, "q5_windows", &q5_input());
}

fn write<P: Pipeline>(name: &str, events: &[P::Event])
where
    P::Event: Clone,
{
    let at = split(events.len());
    let (p, _) = run::<P>(&events[..at]);
    let positions: std::collections::BTreeMap<String, u64> =
        [("events".to_string(), at as u64)].into();
    let d = dir(envelope::FORMAT_VERSION);
    std::fs::create_dir_all(&d).unwrap();
    for codec in [Codec::Json, Codec::Binary] {
        let bytes = envelope::encode(&p, codec, 7, T0, positions.clone()).unwrap();
        let path = d.join(format!("{name}.{}", codec.extension()));
        assert!(
            !path.exists(),
            "{} exists: never overwritten",
            path.display()
        );
        std::fs::write(&path, bytes).unwrap();
    }
}

#[test]
#[ignore = "writes the compatibility files of the current format version"]
fn write_compat_files() {
    assert_eq!(
        std::env::var("SIMPLESTREAM_WRITE_COMPAT").as_deref(),
        Ok("1")
    );
    write::<Orders>("orders", &orders());
    write::<Q4>("q4_join", &q4_input());
    write::<Q5>("q5_windows", &q5_input());
}

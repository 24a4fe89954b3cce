//! The crash-and-restore story of every gallery pipeline, natively, over an in-memory store.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use simplestream::{envelope, Codec};

use super::*;

type OrdersLab = Lab<Orders, MemoryPlayStore>;

fn started() -> OrdersLab {
    let mut lab = OrdersLab::new(MemoryPlayStore::default());
    lab.start(1_000);
    lab
}

/// A page reload: a new lab over what the old one left in storage.
fn reload<P: Demo>(lab: &Lab<P, MemoryPlayStore>, now: i64) -> Lab<P, MemoryPlayStore> {
    let mut l = Lab::<P, MemoryPlayStore>::new(lab.store().clone());
    l.start(now);
    l
}

#[test]
fn checkpoint_crash_restore_gives_back_the_state() {
    let mut lab = started();
    assert_eq!(lab.offset(), Some(0));
    assert_eq!(
        lab.status().1,
        "Page loaded: no checkpoint in localStorage yet, so the pipeline starts empty at offset 0."
    );
    lab.generate(100, 2_000);
    lab.checkpoint(3_000);
    assert_eq!(lab.status().0, "ok", "{}", lab.status().1);
    let at_checkpoint = lab.state_json();
    lab.generate(50, 4_000);
    assert_eq!(lab.offset(), Some(150));
    lab.crash(5_000);
    assert_eq!(lab.offset(), None);
    assert_eq!(lab.state_json(), "{}");
    assert_eq!(lab.reference_match(), None);
    lab.restore(6_000);
    assert_eq!(lab.offset(), Some(100));
    assert_eq!(lab.state_json(), at_checkpoint);
    assert!(
        lab.status().1.contains("Events 100–149 will be read again"),
        "{}",
        lab.status().1
    );
    assert_eq!(lab.reference_match(), Some(true));
    lab.generate(50, 7_000);
    assert_eq!(lab.reference_match(), Some(true));
    let v = lab.view(8_000);
    assert_eq!(v["reference"]["output"], "match");
    assert!(
        v["outputs"]["total"].as_u64().unwrap() > 0,
        "windows closed"
    );
    assert!(lab.state_json().starts_with(r#"{"C001":{"count":"#));
}

#[test]
fn reload_restores_the_latest_checkpoint_and_the_sink() {
    let mut lab = started();
    lab.generate(120, 2_000);
    lab.checkpoint(3_000);
    lab.generate(30, 4_000);
    let mut again = reload(&lab, 5_000);
    assert_eq!(again.offset(), Some(120));
    assert!(
        again
            .status()
            .1
            .starts_with("Page loaded: Restored checkpoint #1"),
        "{}",
        again.status().1
    );
    assert_eq!(again.reference_match(), Some(true));
    let v = again.view(6_000);
    assert_eq!(
        v["reference"]["output"], "match",
        "the sink was cut back to the checkpoint"
    );
    again.generate(30, 7_000);
    assert_eq!(again.state_json(), lab.state_json());
    assert_eq!(again.sink(), lab.sink());
}

#[test]
fn corrupt_latest_falls_back_to_the_previous_checkpoint() {
    for codec in [Codec::Json, Codec::Binary] {
        let mut lab = started();
        lab.set_codec(codec, 1_500);
        lab.generate(40, 2_000);
        lab.checkpoint(3_000);
        let first = lab.state_json();
        lab.generate(40, 4_000);
        lab.checkpoint(5_000);
        lab.corrupt_latest(6_000);
        assert_eq!(lab.status().0, "warn", "{}", lab.status().1);
        let v = lab.view(6_500);
        let list = v["checkpoints"].as_array().unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0]["valid"], false, "{codec}: newest first, corrupt");
        assert!(list[0]["error"]
            .as_str()
            .unwrap()
            .contains("checksum mismatch"));
        lab.restore(7_000);
        let (level, msg) = lab.status();
        assert_eq!(level, "warn");
        assert!(msg.contains("checksum mismatch"), "{msg}");
        assert!(msg.contains("fell back to"), "{msg}");
        assert_eq!(lab.offset(), Some(40));
        assert_eq!(lab.state_json(), first);
        assert_eq!(lab.reference_match(), Some(true));
        // The next checkpoint gets a new id and becomes the latest.
        lab.checkpoint(8_000);
        assert!(
            lab.status().1.contains("Checkpoint #3"),
            "{}",
            lab.status().1
        );
        lab.crash(9_000);
        lab.restore(10_000);
        assert_eq!(lab.status().0, "ok");
    }
}

#[test]
fn nothing_restorable_is_reported_and_loads_nothing() {
    let mut lab = started();
    lab.generate(10, 2_000);
    lab.checkpoint(3_000);
    lab.corrupt_latest(4_000);
    lab.crash(5_000);
    lab.restore(6_000);
    assert_eq!(lab.offset(), None);
    assert!(lab
        .status()
        .1
        .starts_with("Nothing was loaded: no checkpoint can be restored"));
    // On page load it starts from scratch instead, and new ids do not collide.
    let mut again = reload(&lab, 7_000);
    assert_eq!(again.offset(), Some(0));
    again.generate(5, 8_000);
    again.checkpoint(9_000);
    assert!(
        again.status().1.contains("Checkpoint #2"),
        "{}",
        again.status().1
    );
    // Clear storage, then restore: a fresh start.
    lab.clear_storage(10_000);
    lab.restore(11_000);
    assert_eq!(lab.offset(), Some(0));
}

#[test]
fn manual_late_and_malformed_events() {
    let mut lab = started();
    lab.send_late(1_500);
    assert!(lab.status().1.starts_with("Nothing can be late yet"));
    lab.generate(100, 2_000);
    let before = lab.state_json();
    lab.send_malformed(3_000);
    assert!(
        lab.status().1.contains("amount: invalid type"),
        "{}",
        lab.status().1
    );
    assert_eq!(lab.state_json(), before);
    assert_eq!(lab.offset(), Some(100));
    lab.send_manual("C009", "abc", "", 4_000);
    let v = lab.view(4_000);
    assert_eq!(v["form_error"]["field"], "amount");
    assert_eq!(lab.offset(), Some(100));
    lab.send_manual("C009", "12.5", "", 5_000);
    assert_eq!(lab.offset(), Some(101));
    assert!(lab
        .state_json()
        .contains(r#""C009":{"count":1,"amount":12.5}"#));
    lab.send_late(6_000);
    assert!(
        lab.status().1.contains("went to the late output"),
        "{}",
        lab.status().1
    );
    let v = lab.view(6_000);
    assert_eq!(v["late"]["total"], 1);
    assert!(v["late"]["last"][0]
        .as_str()
        .unwrap()
        .starts_with(r#"{"stage":"per_5min""#));
    // Both hand-written events are replayed after a restore from before them.
    lab.checkpoint(7_000);
    let _ = lab;
    let mut lab = started();
    lab.generate(100, 2_000);
    lab.checkpoint(3_000);
    lab.send_manual("C009", "1", "", 4_000);
    lab.send_late(5_000);
    let with = lab.state_json();
    lab.crash(6_000);
    let mut lab = reload(&lab, 7_000);
    lab.generate(2, 8_000);
    assert_eq!(lab.state_json(), with);
    assert_eq!(lab.reference_match(), Some(true));
    assert_eq!(lab.view(9_000)["reference"]["output"], "match");
}

#[test]
fn automatic_checkpoints_and_retention() {
    let mut lab = started();
    lab.set_auto(Some(10), 1_500);
    lab.generate(95, 2_000);
    assert!(
        lab.status().1.contains("9 automatic checkpoints"),
        "{}",
        lab.status().1
    );
    let v = lab.view(3_000);
    assert_eq!(v["checkpoints"].as_array().unwrap().len(), KEEP);
    assert_eq!(v["checkpoints"][0]["offset"], 90);
    assert_eq!(v["checkpoints"][0]["is_latest"], true);
    lab.crash(4_000);
    lab.restore(5_000);
    assert_eq!(lab.offset(), Some(90));
}

#[test]
fn every_gallery_pipeline_survives_crashes_and_shows_tables() {
    fn run<P: Demo>() {
        let mut lab = Lab::<P, MemoryPlayStore>::new(MemoryPlayStore::default());
        lab.start(0);
        for round in 0..4 {
            lab.generate(37 + round * 11, 1_000);
            lab.checkpoint(2_000 + round as i64);
            lab.generate(13, 3_000);
            lab.crash(4_000);
            lab.restore(5_000);
            assert_eq!(lab.reference_match(), Some(true), "{}", P::NAME);
        }
        lab.send_late(6_000);
        assert!(
            lab.status().1.contains("late output"),
            "{}: {}",
            P::NAME,
            lab.status().1
        );
        let v = lab.view(7_000);
        assert_eq!(v["reference"]["output"], "match", "{}", P::NAME);
        assert!(
            v["outputs"]["total"].as_u64().unwrap() > 0,
            "{}: windows closed",
            P::NAME
        );
        let stage = &v["stages"][0];
        assert!(!stage["rows"].as_array().unwrap().is_empty(), "{}", P::NAME);
        let header = stage["header"].as_array().unwrap();
        assert_eq!(header.len(), stage["rows"][0].as_array().unwrap().len());
        assert!(v["checkpoint_preview"]
            .as_str()
            .unwrap()
            .contains("\"checksum\""));
        let name = v["checkpoints"][0]["name"].as_str().unwrap().to_string();
        let shown = lab.checkpoint_view(&name);
        assert!(shown["json"]
            .as_str()
            .unwrap()
            .contains("simplestream-checkpoint"));
    }
    run::<Orders>();
    run::<SlidingTop>();
    run::<Sessions>();
    run::<AllOrders>();
    run::<PaidSales>();
}

#[test]
fn the_join_restores_its_buffers_and_draws_both_inputs() {
    let mut lab = Lab::<PaidSales, MemoryPlayStore>::new(MemoryPlayStore::default());
    lab.start(0);
    lab.generate(60, 1_000);
    lab.checkpoint(2_000);
    let at_checkpoint = lab.view(2_500)["stages"].clone();
    let buffered = |stages: &Value, input: &str| {
        stages[0]["rows"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r[2] == input)
            .count()
    };
    assert!(buffered(&at_checkpoint, "sales") > 0);
    assert!(buffered(&at_checkpoint, "payments") > 0);
    lab.generate(25, 3_000);
    lab.crash(4_000);
    assert_eq!(lab.view(4_500)["stages"][0]["rows"], json!([]));
    lab.restore(5_000);
    assert_eq!(lab.view(5_500)["stages"], at_checkpoint);
    lab.generate(25, 6_000);
    assert_eq!(lab.reference_match(), Some(true));
    // A sale typed by hand is a sale of the join, with its offset as id.
    lab.send_manual("C042", "3.5", "", 7_000);
    let v = lab.view(7_000);
    let rows = v["stages"][0]["rows"].as_array().unwrap();
    assert!(
        rows.iter()
            .any(|r| r[1] == "85" && r[2] == "sales" && r[3].as_str().unwrap().contains("C042")),
        "{rows:?}"
    );
    let diagram = v["diagram"].as_array().unwrap();
    let join = diagram.iter().find(|n| n["id"] == "paid").unwrap();
    assert_eq!(join["inputs"], json!(["sales", "payments"]));
    assert_eq!(v["stages_list"], json!(["paid"]));
}

#[test]
fn the_sink_keeps_its_newest_records_and_still_compares() {
    let mut lab = Lab::<SlidingTop, MemoryPlayStore>::new(MemoryPlayStore::default());
    lab.start(0);
    lab.generate(2_000, 1_000);
    lab.checkpoint(2_000);
    lab.generate(4_000, 3_000);
    let sink = lab.sink();
    assert!(
        sink.first > 0,
        "compacted: {} of {}",
        sink.first,
        sink.len()
    );
    assert!(sink.rows.len() <= SINK_KEEP + SINK_KEEP / 4);
    let v = lab.view(4_000);
    assert_eq!(v["reference"]["output"], "match");
    // Restoring before the compacted records: the replay writes them again.
    let mut again = reload(&lab, 5_000);
    assert_eq!(again.offset(), Some(2_000));
    assert_eq!(again.view(6_000)["reference"]["output"], "match");
    again.generate(4_000, 7_000);
    assert_eq!(again.sink().len(), lab.sink().len());
    assert!(again.sink().same_as(lab.sink()));
    assert_eq!(again.view(8_000)["reference"]["output"], "match");
}

#[test]
fn binary_checkpoints_are_shown_as_json() {
    let mut lab = started();
    lab.set_codec(Codec::Binary, 0);
    lab.generate(20, 1_000);
    lab.checkpoint(2_000);
    let v = lab.view(3_000);
    assert_eq!(v["checkpoints"][0]["codec"], "binary");
    let name = v["checkpoints"][0]["name"].as_str().unwrap().to_string();
    assert!(name.ends_with(".bin"));
    let shown = lab.checkpoint_view(&name);
    assert!(shown["note"]
        .as_str()
        .unwrap()
        .starts_with("Binary checkpoint"));
    assert!(shown["json"]
        .as_str()
        .unwrap()
        .contains("\"customer_stats\""));
}

#[test]
fn garble_changes_exactly_one_byte_and_is_detected() {
    let mut lab = started();
    lab.generate(30, 1_000);
    let p = lab.pipeline().unwrap();
    for codec in [Codec::Json, Codec::Binary] {
        let bytes = envelope::encode(p, codec, 1, 0, BTreeMap::new()).unwrap();
        let (g, _) = garble(&bytes);
        assert_eq!(g.len(), bytes.len());
        assert_eq!(g.iter().zip(&bytes).filter(|(a, b)| a != b).count(), 1);
        let e = envelope::decode::<Orders>(&g).unwrap_err().to_string();
        assert!(e.contains("checksum mismatch"), "{codec}: {e}");
    }
}

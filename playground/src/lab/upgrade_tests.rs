//! The upgrade lab's story, natively: version 1 checkpoints, version 2 restores it with
//! its migration, version 3 is refused.

use serde_json::Value;
use simplestream::CheckpointStore;

use super::*;

fn started() -> UpgradeLab<MemoryPlayStore> {
    let mut lab = UpgradeLab::new(MemoryPlayStore::default());
    lab.start(1_000);
    lab
}

fn stats(lab: &UpgradeLab<MemoryPlayStore>) -> Value {
    serde_json::from_str(&lab.state_json()).unwrap()
}

/// C001's orders in the source between two offsets: (count, biggest amount).
fn c001_orders(from: u64, to: u64) -> (u64, f64) {
    let topic = crate::source::Topic::new(SEED);
    let amounts: Vec<f64> = (from..to)
        .map(|i| topic.event::<Orders>(i))
        .filter(|o| o.customer == "C001")
        .map(|o| o.amount)
        .collect();
    (
        amounts.len() as u64,
        amounts.iter().copied().fold(f64::MIN, f64::max),
    )
}

#[test]
fn version_2_restores_version_1s_checkpoint_and_counts_go_on() {
    let mut lab = started();
    let v = lab.view(1_500);
    assert_eq!(
        (v["instance"].as_str(), v["upgrade"]["version"].as_u64()),
        (Some("upgrade"), Some(1))
    );
    assert!(v["dsl"].as_str().unwrap().contains("pipeline Orders;"));
    lab.generate(60, 2_000);
    lab.checkpoint(3_000);
    let at_checkpoint = stats(&lab);
    assert!(at_checkpoint["C001"].get("max_amount").is_none());
    lab.generate(10, 4_000);
    assert!(lab.deploy(2, 5_000));
    assert_eq!(lab.version(), Version::V2);
    assert_eq!(lab.offset(), Some(60), "{:?}", lab.status());
    let (level, msg) = lab.status();
    assert_eq!(level, "ok", "{msg}");
    assert!(
        msg.starts_with("Deployed version 2. Restored checkpoint #1"),
        "{msg}"
    );
    assert!(
        msg.contains("stage `customer_stats` is migrated from the state of `customer_stats` (added `max_amount` from their default)"),
        "{msg}"
    );
    assert!(msg.contains("Events 60–69 will be read again"), "{msg}");
    let msg = msg.to_string();
    let log = lab.view(5_500)["log"].clone();
    let said = |needle: &str| {
        let lines = log.as_array().unwrap();
        lines
            .iter()
            .filter(|l| l["msg"].as_str().unwrap().contains(needle))
            .count()
    };
    assert_eq!(log[0]["msg"], msg.as_str());
    assert_eq!(
        said("Restored checkpoint #1"),
        1,
        "the deploy's outcome is logged once: {log}"
    );
    let migrated = stats(&lab);
    let n = at_checkpoint["C001"]["count"].as_u64().unwrap();
    assert_eq!(migrated["C001"]["count"], n, "the old columns restore");
    assert_eq!(migrated["C001"]["amount"], at_checkpoint["C001"]["amount"]);
    assert_eq!(lab.reference_match(), Some(true));

    lab.send_manual("C001", "12.5", "", 6_000);
    let after = stats(&lab);
    assert_eq!(after["C001"]["count"], n + 1, "C001: n -> n + 1");
    assert_eq!(
        after["C001"]["max_amount"], 12.5,
        "max_amount started from its default"
    );
    lab.generate(30, 7_000);
    let (count, max_since) = c001_orders(61, 91);
    let now = stats(&lab);
    assert_eq!(now["C001"]["count"], n + 1 + count);
    assert_eq!(
        now["C001"]["max_amount"],
        max_since.max(12.5),
        "only orders since the upgrade"
    );
    assert_eq!(
        lab.reference_match(),
        Some(true),
        "a run upgraded at offset 60 without crashing"
    );
    let v = lab.view(8_000);
    assert_eq!(v["upgrade"]["version"], 2);
    assert_eq!(v["upgrade"]["upgraded_at"], 60);
    assert_eq!(v["reference"]["output"], "match");
    assert!(v["dsl"]
        .as_str()
        .unwrap()
        .contains("#[migrate(added(max_amount))]"));
}

#[test]
fn a_reload_keeps_the_version_and_the_upgrade_point() {
    let mut lab = started();
    lab.generate(40, 2_000);
    lab.checkpoint(3_000);
    lab.deploy(2, 4_000);
    lab.generate(20, 5_000);
    lab.checkpoint(6_000);
    lab.generate(5, 7_000);
    let mut again = UpgradeLab::new(lab.store().clone());
    again.start(8_000);
    assert_eq!(again.version(), Version::V2);
    assert_eq!(again.offset(), Some(60));
    assert_eq!(again.reference_match(), Some(true));
    assert_eq!(again.view(9_000)["upgrade"]["upgraded_at"], 40);
    again.clear_storage(10_000);
    again.restore(11_000);
    assert_eq!(again.offset(), Some(0));
    assert_eq!(
        again.view(12_000)["upgrade"]["upgraded_at"],
        Value::Null,
        "version 2 from scratch"
    );
    again.generate(10, 13_000);
    assert_eq!(again.reference_match(), Some(true));
}

#[test]
fn a_resized_window_is_refused_and_nothing_is_lost() {
    let mut lab = started();
    lab.generate(50, 2_000);
    lab.checkpoint(3_000);
    let before = lab.store().list().unwrap();
    let at_checkpoint = stats(&lab);
    lab.deploy(3, 4_000);
    assert_eq!(lab.offset(), None, "nothing was loaded");
    let (level, msg) = lab.status();
    assert_eq!(level, "error");
    assert!(
        msg.starts_with("Deployed version 3. Nothing was loaded: "),
        "{msg}"
    );
    assert!(
        msg.contains(
            "a window's size cannot be migrated (its open windows would cover other times)"
        ),
        "{msg}"
    );
    assert!(
        msg.ends_with("Deploy the version that wrote the checkpoint to go on from it."),
        "{msg}"
    );
    assert_eq!(
        lab.store().list().unwrap(),
        before,
        "the checkpoints are untouched"
    );
    lab.generate(5, 5_000);
    assert_eq!(lab.offset(), None, "a refused version reads nothing");
    lab.deploy(1, 6_000);
    assert_eq!(lab.offset(), Some(50));
    assert_eq!(stats(&lab), at_checkpoint);
    assert_eq!(lab.reference_match(), Some(true));
}

#[test]
fn a_rollback_to_version_1_is_refused() {
    let mut lab = started();
    lab.generate(30, 2_000);
    lab.checkpoint(3_000);
    lab.deploy(2, 4_000);
    lab.checkpoint(5_000);
    lab.deploy(1, 6_000);
    assert_eq!(lab.offset(), None);
    let (level, msg) = lab.status();
    assert_eq!(level, "error", "{msg}");
    assert!(
        msg.contains("stage `customer_stats` changed its state layout"),
        "{msg}"
    );
}

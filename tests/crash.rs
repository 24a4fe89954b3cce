//! The crash harness: the `orders` program killed with SIGKILL at random moments (and
//! inside checkpoint writes, through fail points), restarted until done, must produce
//! byte-identical output to a run that never crashed.

mod support;

use std::path::Path;

use simplestream::incremental::Manifest;
use simplestream::names::{parse_name, EntryKind};
use support::*;

fn kills() -> usize {
    std::env::var("SIMPLESTREAM_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20)
}

/// Lines of input per scenario: `SIMPLESTREAM_CRASH_EVENTS` (at least 1000, so that a
/// late event is in it), or `n`.
fn events(n: usize) -> usize {
    std::env::var("SIMPLESTREAM_CRASH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map(|e: usize| e.max(1000))
        .unwrap_or(n)
}

fn scenario(name: &str, seed: u64, n: usize, extra: &[&str]) {
    let n = events(n);
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("orders.jsonl");
    let text = order_lines(seed, n, 300, 997, 1009);
    std::fs::write(&input, &text).unwrap();
    let reference = tmp.path().join("reference");
    let crashed = tmp.path().join("crashed");
    std::fs::create_dir_all(&reference).unwrap();
    std::fs::create_dir_all(&crashed).unwrap();

    run_ok(orders(&reference, &input, extra));
    // Kill points anywhere in the input's events (a few lines are bad, so stay below n).
    let targets = pause_targets(seed, kills(), 1..(n as u64 * 49 / 50));
    let killed = run_with_kills(|| orders(&crashed, &input, extra), &targets);
    eprintln!("{name}: {killed} kills at events {targets:?}");
    assert_eq!(killed, kills(), "{name}: every kill landed");

    for f in ["out.jsonl", "out.jsonl.late", "out.jsonl.dead"] {
        assert_same_file(&reference.join(f), &crashed.join(f));
    }
    let out = std::fs::read_to_string(crashed.join("out.jsonl")).unwrap();
    assert!(out.lines().count() > 0, "the run produced window results");
    assert!(
        std::fs::metadata(crashed.join("out.jsonl.late"))
            .unwrap()
            .len()
            > 0,
        "late events were written"
    );

    if extra.contains(&"--incremental") {
        // The last two checkpoints are kept, and a whole one is only every tenth.
        let manifests = std::fs::read_dir(ckpt_dir(&crashed))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".manifest.json")
            })
            .count();
        assert!(
            manifests > 0,
            "{name}: incremental checkpoints were written"
        );
    }

    // customer_stats against counts computed independently from the input.
    let ck = latest_checkpoint(&crashed);
    let expected = expected_stats(&text);
    let stats = ck["customer_stats"].as_object().unwrap();
    assert_eq!(stats.len(), expected.len());
    for (c, (count, cents)) in &expected {
        assert_eq!(
            stats[c]["count"].as_u64().unwrap(),
            *count,
            "{name}: count of {c}"
        );
        let amount = stats[c]["amount"].as_f64().unwrap();
        assert!(
            (amount * 100.0 - *cents as f64).abs() < 0.5,
            "{name}: amount of {c}: {amount} vs {cents} cents"
        );
    }
}

#[test]
fn sigkill_at_random_moments_json_dead_letters() {
    scenario(
        "json",
        11,
        200_000,
        &[
            "--checkpoint-every",
            "1500",
            "--on-bad-input",
            "dead-letter",
        ],
    );
}

#[test]
fn sigkill_at_random_moments_binary_skip() {
    scenario(
        "binary",
        12,
        200_000,
        &[
            "--checkpoint-every",
            "2500",
            "--codec",
            "binary",
            "--on-bad-input",
            "skip",
            "--keep",
            "2",
        ],
    );
}

/// Incremental checkpoints (deltas, manifests, a whole one every tenth, shared pieces
/// kept by retention) killed at random moments.
#[test]
fn sigkill_at_random_moments_incremental() {
    scenario(
        "incremental",
        13,
        200_000,
        &[
            "--incremental",
            "--checkpoint-every",
            "1500",
            "--codec",
            "binary",
            "--on-bad-input",
            "skip",
            "--keep",
            "2",
        ],
    );
}

/// Crashes after the outputs are made durable but before the checkpoint naming their
/// lengths, between writing a checkpoint and updating `latest.json`, and right after.
#[test]
fn crash_inside_checkpoint_writes() {
    crash_inside(
        &[],
        &[
            "after-output-commit",
            "after-checkpoint-write",
            "after-latest-write",
        ],
    );
}

/// The same with incremental checkpoints, also between a delta and its manifest and in
/// the middle of retention.
#[test]
fn crash_inside_incremental_checkpoint_writes() {
    crash_inside(
        &["--incremental", "--keep", "2"],
        &[
            "after-output-commit",
            "after-checkpoint-write",
            "after-manifest-write",
            "after-latest-write",
            "after-retention-delete",
        ],
    );
}

/// Runs killed part way and stopped at each of `points` in turn (three times each), then
/// a run to the end: outputs equal an uninterrupted run's.
fn crash_inside(more: &[&str], points: &[&str]) {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("orders.jsonl");
    // Room for a kill every third run, 3500 events further each time.
    let text = order_lines(5, (3_500 * 3 * points.len() + 5_000).max(40_000), 100, 0, 0);
    std::fs::write(&input, &text).unwrap();
    let (reference, crashed) = (tmp.path().join("reference"), tmp.path().join("crashed"));
    std::fs::create_dir_all(&reference).unwrap();
    std::fs::create_dir_all(&crashed).unwrap();
    let extra = [&["--checkpoint-every", "3000", "--quiet"], more].concat();
    run_ok(orders(&reference, &input, &extra));

    let mut aborted = 0;
    let runs = 3 * points.len();
    for (i, point) in points.iter().cycle().take(runs).enumerate() {
        // A run killed part way keeps progress moving between fail points.
        if i % 3 == 0 {
            let target = 3_500 * (i as u64 + 1);
            spawn_until_paused(orders(&crashed, &input, &extra), &[target]).kill();
        }
        let mut c = orders(&crashed, &input, &extra);
        c.env("SIMPLESTREAM_FAILPOINT", point);
        let out = c.output().unwrap();
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                err.contains(&format!("failpoint {point}")),
                "unexpected failure: {err}"
            );
            aborted += 1;
        }
        // An orphan checkpoint (written, never in latest.json) must not be restored over latest.
        let meta: serde_json::Value = serde_json::from_slice(
            &std::fs::read(ckpt_dir(&crashed).join("latest.json"))
                .unwrap_or_else(|_| b"null".to_vec()),
        )
        .unwrap();
        if let Some(file) = meta["file"].as_str() {
            assert!(
                ckpt_dir(&crashed).join(file).exists(),
                "latest points to an existing file"
            );
        }
    }
    assert_eq!(aborted, runs, "every run stopped at its fail point");
    run_ok(orders(&crashed, &input, &extra));
    assert_same_file(&reference.join("out.jsonl"), &crashed.join("out.jsonl"));
    assert_same_file(
        &reference.join("out.jsonl.late"),
        &crashed.join("out.jsonl.late"),
    );
}

/// Kinds and ids of the checkpoints and pieces in `dir`'s store (names also hold the
/// wall-clock time, which differs between runs).
fn stored(dir: &Path) -> Vec<(u64, EntryKind)> {
    let mut v: Vec<(u64, EntryKind)> = std::fs::read_dir(ckpt_dir(dir))
        .unwrap()
        .filter_map(|e| parse_name(e.unwrap().file_name().to_str()?))
        .collect();
    v.sort_by_key(|(id, kind)| (*id, format!("{kind:?}")));
    v
}

/// Every manifest left in `dir`'s store names only pieces that are there, and the one
/// `latest.json` points to is there.
fn assert_manifests_complete(dir: &Path, why: &str) {
    let ckpt = ckpt_dir(dir);
    let latest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(ckpt.join("latest.json")).unwrap()).unwrap();
    let latest = latest["file"].as_str().unwrap();
    assert!(ckpt.join(latest).exists(), "{why}: latest {latest} is gone");
    for e in std::fs::read_dir(&ckpt).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        if let Some((_, EntryKind::Manifest)) = parse_name(&name) {
            let m = Manifest::decode(&std::fs::read(ckpt.join(&name)).unwrap()).unwrap();
            for p in m.pieces {
                assert!(
                    ckpt.join(&p.name).exists(),
                    "{why}: {name} names {} which is gone",
                    p.name
                );
            }
        }
    }
}

/// Retention stopped after each delete of one pass in turn: every checkpoint left keeps
/// its pieces, and the next run restores, writes byte-identical output and leaves exactly
/// the store an uninterrupted run leaves (the garbage of the stopped pass removed).
#[test]
fn crash_after_every_delete_of_a_retention_pass() {
    let tmp = tempfile::tempdir().unwrap();
    let text = order_lines(17, 12_600, 100, 0, 0);
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    // Run 1 keeps 8 checkpoints; run 2 keeps 1 and checkpoints once (end of input), so
    // its one retention pass deletes most of them; run 3 checkpoints (and retains) again.
    let stages = [
        (12_000, "8", false),
        (12_300, "1", true),
        (12_600, "1", false),
    ];
    let run_stages = |dir: &Path, fail_at: u64| -> bool {
        std::fs::create_dir_all(dir).unwrap();
        let input = dir.join("orders.jsonl");
        for (n, keep, stop_here) in stages {
            std::fs::write(&input, lines[..n].concat()).unwrap();
            let args = [
                "--incremental",
                "--checkpoint-every",
                "1000",
                "--keep",
                keep,
            ];
            let mut c = orders(dir, &input, &[&args[..], &["--quiet"]].concat());
            if !stop_here || fail_at == 0 {
                run_ok(c);
                continue;
            }
            let point = format!("after-retention-delete:{fail_at}");
            c.env("SIMPLESTREAM_FAILPOINT", &point);
            let out = c.output().unwrap();
            if out.status.success() {
                return false;
            }
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                err.contains(&format!("failpoint after-retention-delete (hit {fail_at})")),
                "unexpected failure: {err}"
            );
            assert_manifests_complete(dir, &point);
        }
        true
    };
    let reference = tmp.path().join("reference");
    assert!(run_stages(&reference, 0));
    let mut steps = 0;
    while run_stages(
        &tmp.path().join(format!("crashed-{}", steps + 1)),
        steps + 1,
    ) {
        steps += 1;
        let crashed = tmp.path().join(format!("crashed-{steps}"));
        assert_same_file(&reference.join("out.jsonl"), &crashed.join("out.jsonl"));
        assert_eq!(stored(&crashed), stored(&reference), "after delete {steps}");
        std::fs::remove_dir_all(&crashed).unwrap();
    }
    // Eight checkpoints, their deltas and a base go; stopping after the last delete
    // must have been tried too.
    assert!(steps >= 8, "the pass deleted {steps} objects");
}

//! The `orders` program reading and writing Kafka topics (tansu on 127.0.0.1, started per
//! test): Kafka in and out with 12 kills, Kafka in with file out, file in with Kafka
//! out, bad records, a missing topic, an unreachable broker, and a broker frozen
//! mid-run. Every kill lands at a pause point (progress), never after a sleep.
//!
//! Without the tansu binary (`cargo xtask tools` installs it) each test returns early,
//! unless `SIMPLESTREAM_REQUIRE_SERVERS=1`, where it fails.

mod support;

use std::path::Path;
use std::process::Command;

use simplestream::runner::kafka::partitioner::partition_for;
use support::kafka::{kafka_url, Kafka};
use support::servers;
use support::*;

const INSTANCE: &str = "app-instance-1";

/// `orders` with checkpoints in `dir` and the given input and output (files or URLs).
fn orders_io(dir: &Path, input: &str, output: &str, extra: &[&str]) -> Command {
    let mut c = Command::new(orders_bin());
    c.args(["--input", input, "--output", output]);
    c.arg("--checkpoint-dir").arg(dir.join("ckpt"));
    c.args(["--instance", INSTANCE]);
    c.args(extra);
    c.env_remove("SIMPLESTREAM_FAILPOINT")
        .env_remove("SIMPLESTREAM_FAIL_WRITES")
        .env_remove("SIMPLESTREAM_PAUSE_AT")
        .env_remove("RUST_LOG");
    c
}

fn kills() -> usize {
    std::env::var("SIMPLESTREAM_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map(|k: usize| k.min(12))
        .unwrap_or(12)
}

/// The rows of partition 0 of an output topic, checked to be numbered 0, 1, 2, ...
/// (each once).
fn values(kafka: &Kafka, topic: &str) -> Vec<String> {
    kafka.values(topic, 0, INSTANCE)
}

fn lines_of(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// customer_stats of the latest checkpoint in `dir` equal counts computed from `text`.
fn assert_stats(dir: &Path, text: &str) {
    let ck = latest_checkpoint(dir);
    let stats = ck["customer_stats"].as_object().unwrap();
    let expected = expected_stats(text);
    assert_eq!(stats.len(), expected.len());
    for (c, (count, cents)) in &expected {
        assert_eq!(stats[c]["count"].as_u64().unwrap(), *count, "count of {c}");
        let amount = stats[c]["amount"].as_f64().unwrap();
        assert!(
            (amount * 100.0 - *cents as f64).abs() < 0.5,
            "{c}: {amount} vs {cents}"
        );
    }
}

fn input_topic(kafka: &Kafka, topic: &str, seed: u64, n: usize) -> String {
    let text = order_lines(seed, n, 300, 997, 0);
    let lines: Vec<&str> = text.lines().collect();
    kafka.fill(topic, 4, &lines);
    text
}

#[test]
fn kafka_in_kafka_out_twelve_kills_equal_an_uninterrupted_run() {
    let Some(server) = servers::tansu() else {
        return;
    };
    let kafka = Kafka::new(&server);
    let text = input_topic(&kafka, "orders", 71, 30_000);
    let tmp = tmp();
    let (reference, crashed) = (tmp.path().join("reference"), tmp.path().join("crashed"));
    let input = kafka_url(&server, "orders");
    let extra = ["--checkpoint-every", "2000"];
    let reference_out = kafka_url(&server, "ref");
    run_ok(orders_io(&reference, &input, &reference_out, &extra));
    let targets = pause_targets(71, kills(), 1..29_000);
    let crashed_run = || orders_io(&crashed, &input, &kafka_url(&server, "out"), &extra);
    let mut replayed = 0;
    for &t in &targets {
        // Killed after the rows are in Kafka, before the checkpoint counting them is.
        let o = crashed_run()
            .env("SIMPLESTREAM_FAILPOINT", "after-output-commit")
            .output()
            .unwrap();
        let err = stderr_of(&o);
        assert!(!o.status.success(), "{err}");
        assert!(err.contains("failpoint after-output-commit"), "{err}");
        // Then killed at a pause point: the restart found those rows and skipped them.
        let p = spawn_until_paused(crashed_run(), &[t]);
        replayed += p
            .stderr
            .iter()
            .filter(|l| l.contains("are already there"))
            .count();
        p.kill();
    }
    run_ok(crashed_run());
    let killed = 2 * targets.len();
    eprintln!("{killed} kills; {replayed} restarts found rows past their checkpoint");
    assert!(
        replayed > 0,
        "no restart found rows written after its checkpoint"
    );
    let (want, got) = (values(&kafka, "ref"), values(&kafka, "out"));
    assert!(want.len() > 100, "{} rows", want.len());
    assert_eq!(got.len(), want.len(), "rows after {killed} kills");
    assert!(got == want, "the rows differ from the uninterrupted run's");
    assert_eq!(values(&kafka, "out.late"), values(&kafka, "ref.late"));
    assert!(
        !values(&kafka, "ref.late").is_empty(),
        "late events reach their topic"
    );
    assert_stats(&crashed, &text);
    let ck = latest_checkpoint(&crashed);
    for p in 0..4 {
        assert_eq!(
            pos(&ck, &format!("source.kafka.p{p}")),
            7_500,
            "partition {p} read to its end"
        );
    }
}

#[test]
fn kafka_in_file_out_with_kills() {
    let Some(server) = servers::tansu() else {
        return;
    };
    let kafka = Kafka::new(&server);
    let text = input_topic(&kafka, "orders", 72, 20_000);
    let tmp = tmp();
    let (reference, crashed) = (tmp.path().join("reference"), tmp.path().join("crashed"));
    std::fs::create_dir_all(&reference).unwrap();
    std::fs::create_dir_all(&crashed).unwrap();
    let input = kafka_url(&server, "orders");
    let out = |d: &Path| d.join("out.jsonl").to_str().unwrap().to_string();
    run_ok(orders_io(&reference, &input, &out(&reference), &[]));
    let targets = pause_targets(72, 4, 1..19_000);
    run_with_kills(
        || orders_io(&crashed, &input, &out(&crashed), &[]),
        &targets,
    );
    for f in ["out.jsonl", "out.jsonl.late"] {
        assert_same_file(&reference.join(f), &crashed.join(f));
    }
    assert!(lines_of(&crashed.join("out.jsonl")).len() > 100);
    assert_stats(&crashed, &text);
}

/// Writes `n` seeded orders to a file under `dir` and runs the reference (file in, file
/// out) over it in `dir/reference`; returns the input path and the reference and crash
/// directories.
fn file_reference(
    dir: &Path,
    seed: u64,
    n: usize,
    extra: &[&str],
) -> (String, std::path::PathBuf, std::path::PathBuf) {
    let input = dir.join("orders.jsonl");
    std::fs::write(&input, order_lines(seed, n, 300, 997, 0)).unwrap();
    let input = input.to_str().unwrap().to_string();
    let (reference, crashed) = (dir.join("reference"), dir.join("crashed"));
    std::fs::create_dir_all(&reference).unwrap();
    let file_out = reference.join("out.jsonl").to_str().unwrap().to_string();
    run_ok(orders_io(&reference, &input, &file_out, extra));
    (input, reference, crashed)
}

#[test]
fn file_in_kafka_out_with_kills_equals_file_out() {
    let Some(server) = servers::tansu() else {
        return;
    };
    let kafka = Kafka::new(&server);
    let tmp = tmp();
    let (input, reference, crashed) = file_reference(tmp.path(), 73, 20_000, &[]);
    let targets = pause_targets(73, 4, 1..19_000);
    run_with_kills(
        || orders_io(&crashed, &input, &kafka_url(&server, "out"), &[]),
        &targets,
    );
    assert_eq!(
        values(&kafka, "out"),
        lines_of(&reference.join("out.jsonl"))
    );
    assert_eq!(
        values(&kafka, "out.late"),
        lines_of(&reference.join("out.jsonl.late"))
    );
}

/// The sink's own produce requests, read back by another client (rskafka, which checks
/// each batch's CRC) record by record: keys (none, empty, non-ASCII), values (empty,
/// 20 kB, over several batches), both headers. A restart from a checkpoint taken before
/// those rows computes them again: none is produced twice, the next ones follow.
#[test]
fn produced_records_read_back_exactly_and_a_replay_adds_only_new_rows() {
    use simplestream::runner::kafka::sink::SinkTarget;
    use simplestream::runner::kafka::{KafkaSink, TopicUrl};
    use std::collections::BTreeMap;
    let Some(server) = servers::tansu() else {
        return;
    };
    let kafka = Kafka::new(&server);
    let url = TopicUrl::parse(&kafka_url(&server, "raw"))
        .unwrap()
        .unwrap();
    let mut rows: Vec<(Option<String>, String)> = vec![
        (None, "{}".into()),
        (Some(String::new()), String::new()),
        (Some("ключ-é".into()), "значение ✓".into()),
    ];
    rows.extend((0..60).map(|i| (Some(format!("k{i}")), format!("{i:0>20000}"))));
    rows.extend((0..300).map(|i| (None, format!("{{\"n\":{i}}}"))));
    let target = SinkTarget::single("w-1");
    let write = |rows: &[(Option<String>, String)], positions: &BTreeMap<String, u64>| {
        let mut sink = KafkaSink::open(&url, "output", positions, &target, false).unwrap();
        for (k, v) in rows {
            sink.write_row(k.as_deref().map(str::as_bytes), v.as_bytes())
                .unwrap();
        }
        let mut after = positions.clone();
        sink.commit_into("output", &mut after).unwrap();
        after
    };
    let empty = write(&[], &BTreeMap::new());
    write(&rows, &empty);
    let check = |want: &[(Option<String>, String)]| {
        let got = kafka.records("raw", 0);
        assert_eq!(got.len(), want.len());
        for (i, (r, (k, v))) in got.iter().zip(want).enumerate() {
            assert_eq!(r.key.as_deref(), k.as_deref().map(str::as_bytes), "row {i}");
            assert_eq!(&r.value, v, "row {i}");
            assert_eq!((r.writer.as_str(), r.seq), ("w-1", i as u64), "row {i}");
        }
    };
    check(&rows);
    rows.push((Some("new".into()), "after the restart".into()));
    write(&rows, &empty);
    check(&rows);
}

/// One instance writing a 6-partition topic: each row goes to its customer's partition
/// (Kafka's murmur2 of the key, with the key on the record), and after kills (between
/// rows produced and the checkpoint counting them, and at pause points) every
/// partition holds exactly the uninterrupted run's rows of its keys, in its order.
#[test]
fn keyed_output_over_six_partitions_with_kills_equals_an_uninterrupted_run() {
    let Some(server) = servers::tansu() else {
        return;
    };
    let kafka = Kafka::new(&server);
    let tmp = tmp();
    let extra = ["--checkpoint-every", "1000"];
    let (input, reference, crashed) = file_reference(tmp.path(), 78, 12_000, &extra);
    kafka.create("out", 6);
    let run = || orders_io(&crashed, &input, &kafka_url(&server, "out"), &extra);
    let mut replayed = 0;
    for &t in &pause_targets(78, 4, 1..11_000) {
        let o = run()
            .env("SIMPLESTREAM_FAILPOINT", "after-output-commit")
            .output()
            .unwrap();
        assert!(stderr_of(&o).contains("failpoint after-output-commit"));
        let p = spawn_until_paused(run(), &[t]);
        replayed += p
            .stderr
            .iter()
            .filter(|l| l.contains("are already there"))
            .count();
        p.kill();
    }
    run_ok(run());
    assert!(replayed > 0, "no restart found rows past its checkpoint");
    let want = lines_of(&reference.join("out.jsonl"));
    let mut total = 0;
    let counts: Vec<(usize, usize)> = (0..6)
        .map(|p| {
            let r = kafka.records("out", p);
            (r.len(), r.iter().filter(|r| r.key.is_some()).count())
        })
        .collect();
    eprintln!("rows, keyed rows per partition: {counts:?}");
    for p in 0..6 {
        let got = kafka.records("out", p);
        let values = kafka.values("out", p, INSTANCE);
        for r in &got {
            let key = String::from_utf8(r.key.clone().expect("a keyed row")).unwrap();
            assert_eq!(key, support::kafka::customer(&r.value), "the row's key");
        }
        let mine: Vec<String> = want
            .iter()
            .filter(|l| partition_for(support::kafka::customer(l).as_bytes(), 6) == p)
            .cloned()
            .collect();
        assert!(!mine.is_empty(), "partition {p} gets rows");
        assert_eq!(values.len(), mine.len(), "rows of partition {p}");
        assert!(
            values == mine,
            "partition {p} differs from the uninterrupted run"
        );
        total += values.len();
    }
    assert_eq!(total, want.len());
    assert_eq!(
        values(&kafka, "out.late"),
        lines_of(&reference.join("out.jsonl.late"))
    );
}

/// A missing output topic is created with as many partitions as the Kafka input has, or
/// `--output-partitions`; late events get one. Rows are spread over them by key.
#[test]
fn missing_output_topic_gets_the_input_partition_count_or_the_flag() {
    let Some(server) = servers::tansu() else {
        return;
    };
    let kafka = Kafka::new(&server);
    let text = order_lines(79, 600, 40, 50, 0);
    kafka.fill("orders", 3, &text.lines().collect::<Vec<_>>());
    let tmp = tmp();
    let (from_kafka, from_file) = (tmp.path().join("k"), tmp.path().join("f"));
    std::fs::create_dir_all(&from_kafka).unwrap();
    std::fs::create_dir_all(&from_file).unwrap();
    let input = tmp.path().join("orders.jsonl");
    std::fs::write(&input, &text).unwrap();
    let file_in = input.to_str().unwrap();
    run_ok(orders_io(
        &from_kafka,
        &kafka_url(&server, "orders"),
        &kafka_url(&server, "by-input"),
        &[],
    ));
    let flag = ["--output-partitions", "2"];
    run_ok(orders_io(
        &from_file,
        file_in,
        &kafka_url(&server, "by-flag"),
        &flag,
    ));
    for (topic, n) in [("by-input", 3), ("by-flag", 2)] {
        assert_eq!(kafka.partitions(topic), n, "partitions of {topic}");
        assert_eq!(kafka.partitions(&format!("{topic}.late")), 1);
        for p in 0..n as i32 {
            let rows = kafka.records(topic, p);
            assert!(!rows.is_empty(), "{topic} partition {p} gets rows");
            for r in rows.iter().filter_map(|r| r.key.as_deref()) {
                assert_eq!(partition_for(r, n as i32), p, "{topic}: a row's partition");
            }
        }
    }
}

#[test]
fn bad_records_name_topic_partition_and_offset() {
    let Some(server) = servers::tansu() else {
        return;
    };
    let kafka = Kafka::new(&server);
    let good = r#"{"customer":"C001","amount":1.5,"ts":1635739200000}"#;
    let lines = [good, good, r#"{"amount":1.0,"ts":1635739200001}"#, good];
    kafka.fill("orders", 1, &lines);
    let tmp = tmp();
    let input = kafka_url(&server, "orders");
    let out = tmp.path().join("out.jsonl").to_str().unwrap().to_string();
    let o = orders_io(tmp.path(), &input, &out, &[]).output().unwrap();
    let err = stderr_of(&o);
    assert_eq!(code(&o), Some(2), "{err}");
    assert!(
        err.contains("topic orders partition 0 offset 2: missing field `customer`"),
        "{err}"
    );
    assert_eq!(
        pos(&latest_checkpoint(tmp.path()), "source.kafka.p0"),
        2,
        "stopped before it"
    );
    // Dead letters to a topic: the record, where it was, and why.
    let o = orders_io(
        tmp.path(),
        &input,
        &out,
        &[
            "--on-bad-input",
            "dead-letter",
            "--dead-letter",
            &kafka_url(&server, "dead"),
        ],
    )
    .output()
    .unwrap();
    assert_eq!(code(&o), Some(0), "{}", stderr_of(&o));
    let dead = values(&kafka, "dead");
    assert_eq!(dead.len(), 1, "{dead:?}");
    let d: serde_json::Value = serde_json::from_str(&dead[0]).unwrap();
    assert_eq!(
        (d["partition"].as_i64(), d["offset"].as_i64()),
        (Some(0), Some(2))
    );
    assert_eq!(d["raw"], lines[2]);
    assert_stats(tmp.path(), &lines.join("\n"));
}

#[test]
fn missing_topic_and_unreachable_broker_are_one_line_each() {
    let Some(server) = servers::tansu() else {
        return;
    };
    let tmp = tmp();
    let out = tmp.path().join("out.jsonl").to_str().unwrap().to_string();
    let o = orders_io(tmp.path(), &kafka_url(&server, "nope"), &out, &["--quiet"])
        .output()
        .unwrap();
    let err = stderr_of(&o);
    assert_eq!(code(&o), Some(1), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("there is no topic `nope`"), "{err}");
    assert!(
        !tmp.path().join("out.jsonl").exists(),
        "nothing was written"
    );

    let port = servers::free_port();
    let o = orders_io(
        tmp.path(),
        &format!("kafka://127.0.0.1:{port}/orders"),
        &out,
        &["--quiet"],
    )
    .output()
    .unwrap();
    let err = stderr_of(&o);
    assert_eq!(code(&o), Some(1), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("connection refused, nothing is listening there"),
        "{err}"
    );
}

/// The input topic deleted while a run reads it: one line naming it, exit 1, the last
/// checkpoint intact. Created again (empty), the restart refuses in one line rather
/// than read from offsets the checkpoint never saw.
#[test]
fn input_topic_deleted_mid_run_stops_with_one_line_and_keeps_the_checkpoint() {
    let Some(server) = servers::tansu() else {
        return;
    };
    let kafka = Kafka::new(&server);
    input_topic(&kafka, "orders", 79, 6_000);
    let tmp = tmp();
    let input = kafka_url(&server, "orders");
    let out = tmp.path().join("out.jsonl").to_str().unwrap().to_string();
    let run = || {
        orders_io(
            tmp.path(),
            &input,
            &out,
            &["--follow", "--checkpoint-every", "1000"],
        )
    };
    let mut p = spawn_until_paused(run(), &[3_000]);
    let before = latest_checkpoint(tmp.path());
    kafka.delete("orders");
    let _guard = hang_guard(p.child.id());
    p.resume();
    let (status, err) = p.finish();
    assert_eq!(status.code(), Some(1), "{err}");
    let last = err.trim().lines().last().unwrap();
    assert!(
        last.contains("topic `orders`") && last.contains("deleted") && last.contains("intact"),
        "{err}"
    );
    // Records fetched before the deletion may still be processed and checkpointed.
    let after = latest_checkpoint(tmp.path());
    assert!(pos(&after, "events") >= pos(&before, "events"), "{after}");
    let read: u64 = (0..4)
        .map(|p| pos(&after, &format!("source.kafka.p{p}")))
        .sum();
    assert_eq!(
        read,
        pos(&after, "events"),
        "its offsets count what it processed"
    );
    // Created again: its offsets are not the ones the checkpoint read.
    kafka.create("orders", 4);
    let o = run().arg("--quiet").output().unwrap();
    let err = stderr_of(&o);
    assert_eq!(code(&o), Some(1), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("deleted and created again"), "{err}");
    assert_eq!(
        pos(&latest_checkpoint(tmp.path()), "events"),
        pos(&after, "events")
    );
}

/// The output topic deleted mid-run: one line naming it, exit 1, the last checkpoint
/// intact; created again, the restart refuses in one line (its committed rows are gone).
#[test]
fn output_topic_deleted_mid_run_stops_with_one_line_and_keeps_the_checkpoint() {
    let Some(server) = servers::tansu() else {
        return;
    };
    let kafka = Kafka::new(&server);
    let tmp = tmp();
    let input = tmp.path().join("orders.jsonl");
    std::fs::write(&input, order_lines(80, 6_000, 300, 997, 0)).unwrap();
    let input = input.to_str().unwrap().to_string();
    let out = kafka_url(&server, "out");
    let run = || orders_io(tmp.path(), &input, &out, &["--checkpoint-every", "1000"]);
    let mut p = spawn_until_paused(run(), &[3_000]);
    let before = latest_checkpoint(tmp.path());
    assert!(pos(&before, "output.len") > 0, "{before}");
    kafka.delete("out");
    let _guard = hang_guard(p.child.id());
    p.resume();
    let (status, err) = p.finish();
    assert_eq!(status.code(), Some(1), "{err}");
    let last = err.trim().lines().last().unwrap();
    assert!(
        last.contains("topic `out`") && last.contains("deleted") && last.contains("intact"),
        "{err}"
    );
    // Checkpoints with no row to produce may still be taken; none counts a row more.
    let after = latest_checkpoint(tmp.path());
    assert_eq!(
        pos(&after, "output.len"),
        pos(&before, "output.len"),
        "no row counted as written after the deletion: {err}"
    );
    kafka.create("out", 1);
    let o = run().arg("--quiet").output().unwrap();
    let err = stderr_of(&o);
    assert_eq!(code(&o), Some(1), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("deleted or emptied"), "{err}");
    assert!(
        kafka.records("out", 0).is_empty(),
        "nothing written to the new topic"
    );
}

#[test]
fn broker_frozen_mid_run_waits_reports_and_loses_nothing() {
    let Some(server) = servers::tansu() else {
        return;
    };
    let kafka = Kafka::new(&server);
    input_topic(&kafka, "orders", 74, 12_000);
    let tmp = tmp();
    let (reference, frozen) = (tmp.path().join("reference"), tmp.path().join("frozen"));
    let input = kafka_url(&server, "orders");
    run_ok(orders_io(
        &reference,
        &input,
        &kafka_url(&server, "ref"),
        &[],
    ));
    let mut p = spawn_until_paused(
        orders_io(&frozen, &input, &kafka_url(&server, "out"), &[]),
        &[5_000],
    );
    server.pause();
    p.resume();
    let waiting = p.wait_for_line("does not answer");
    server.resume();
    assert!(
        waiting,
        "no report while the broker was frozen:\n{}",
        p.stderr.join("\n")
    );
    let (status, err) = p.finish();
    assert!(status.success(), "{err}");
    assert!(err.contains("answers again"), "{err}");
    assert_eq!(values(&kafka, "out"), values(&kafka, "ref"));
    assert_eq!(values(&kafka, "out.late"), values(&kafka, "ref.late"));
}

#[test]
fn from_latest_skips_what_was_there_and_a_restart_reads_what_came_after() {
    let Some(server) = servers::tansu() else {
        return;
    };
    let kafka = Kafka::new(&server);
    let before = order_lines(75, 2_000, 50, 0, 0);
    kafka.fill("orders", 2, &before.lines().collect::<Vec<_>>());
    let tmp = tmp();
    let input = kafka_url(&server, "orders");
    let out = tmp.path().join("out.jsonl").to_str().unwrap().to_string();
    let from_latest = ["--from", "latest"];
    run_ok(orders_io(tmp.path(), &input, &out, &from_latest));
    let ck = latest_checkpoint(tmp.path());
    assert_eq!(pos(&ck, "events"), 0, "nothing that was there is read");
    assert_eq!(
        pos(&ck, "source.kafka.p0") + pos(&ck, "source.kafka.p1"),
        2_000
    );
    // Records produced later are read by the next run: its checkpoint's offsets win
    // over --from.
    let after = order_lines(76, 1_000, 50, 0, 0);
    kafka.append("orders", 2, &after.lines().collect::<Vec<_>>());
    run_ok(orders_io(tmp.path(), &input, &out, &from_latest));
    assert_eq!(pos(&latest_checkpoint(tmp.path()), "events"), 1_000);
    assert_stats(tmp.path(), &after);
}

/// SIGUSR1 in the Kafka input loop takes a savepoint there (its partition offsets with
/// it); `--from-savepoint` restarts from it and the output equals an uninterrupted run.
#[test]
fn sigusr1_savepoint_in_the_kafka_input_loop_restarts_the_run() {
    let Some(server) = servers::tansu() else {
        return;
    };
    let kafka = Kafka::new(&server);
    let text = input_topic(&kafka, "orders", 83, 4_000);
    let tmp = tmp();
    let (reference, run) = (tmp.path().join("reference"), tmp.path().join("run"));
    let input = kafka_url(&server, "orders");
    let out = |d: &Path| d.join("out.jsonl").to_str().unwrap().to_string();
    run_ok(orders_io(&reference, &input, &out(&reference), &[]));
    let args = ["--savepoint-name", "sp-k", "--checkpoint-every", "500"];
    let mut p = spawn_until_paused(orders_io(&run, &input, &out(&run), &args), &[1_500]);
    send_signal(&p.child, "USR1");
    p.resume();
    let (status, err) = p.finish();
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(
        err.contains("savepoint `sp-k` taken (checkpoint_savepoint-sp-k.json, checkpoint #")
            && err.contains(", 1500 events): retention keeps it"),
        "{err}"
    );
    let sp = std::fs::read(
        run.join("ckpt/checkpoints")
            .join(INSTANCE)
            .join("checkpoint_savepoint-sp-k.json"),
    )
    .unwrap();
    let sp: serde_json::Value = serde_json::from_slice(&sp).unwrap();
    let read: u64 = (0..4)
        .map(|p| {
            sp["positions"][format!("source.kafka.p{p}")]
                .as_u64()
                .unwrap_or(0)
        })
        .sum();
    assert_eq!(
        read, 1_500,
        "the partition offsets it read: {}",
        sp["positions"]
    );
    let o = run_ok(orders_io(
        &run,
        &input,
        &out(&run),
        &["--from-savepoint", "sp-k"],
    ));
    assert!(
        stderr_of(&o).contains("1500 events processed"),
        "{}",
        stderr_of(&o)
    );
    for f in ["out.jsonl", "out.jsonl.late"] {
        assert_same_file(&reference.join(f), &run.join(f));
    }
    assert_stats(&run, &text);
}

/// With --follow, a partition that never gets a record stops holding the watermark back
/// once it has been quiet for --idle-timeout: windows close and their rows are written
/// while the program still runs. Without the rule no row would ever appear.
#[test]
fn follow_an_idle_partition_does_not_hold_windows_open() {
    let Some(server) = servers::tansu() else {
        return;
    };
    let kafka = Kafka::new(&server);
    // An order an hour after the rest closes every window before it.
    let mut text = order_lines(77, 3_000, 40, 0, 0);
    text.push_str("{\"customer\":\"ZZZ\",\"amount\":1.00,\"ts\":1635746400000}\n");
    let lines: Vec<&str> = text.lines().collect();
    kafka.fill("orders", 2, &[]);
    kafka.append_to("orders", 0, &lines);
    let tmp = tmp();
    // The same records from a file: every row but the last one's (closed only by the
    // end of the file) must be written while following the topic.
    let file = tmp.path().join("orders.jsonl");
    std::fs::write(&file, &text).unwrap();
    let reference = tmp.path().join("reference.jsonl");
    run_ok(orders_io(
        &tmp.path().join("ref"),
        file.to_str().unwrap(),
        reference.to_str().unwrap(),
        &[],
    ));
    let mut want = complete_lines(&reference);
    let last = want.pop().unwrap();
    assert!(last.contains("ZZZ"), "{last}");
    assert!(want.len() > 10, "the reference wrote {} rows", want.len());
    let out = tmp.path().join("out.jsonl");
    let mut c = orders_io(
        &tmp.path().join("follow"),
        &kafka_url(&server, "orders"),
        out.to_str().unwrap(),
        &["--follow", "--idle-timeout", "200ms"],
    );
    c.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = c.spawn().unwrap();
    let guard = std::time::Duration::from_secs(120);
    wait_until("the closed windows' rows", guard, || {
        complete_lines(&out).len() >= want.len()
    });
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(complete_lines(&out), want);
}

/// The lines of `path` up to its last newline (a row being written is left out).
fn complete_lines(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let end = text.rfind('\n').map_or(0, |i| i + 1);
    text[..end].lines().map(str::to_string).collect()
}

/// Kills process `pid` (SIGKILL) if it still runs after two minutes, unless dropped
/// first: a hang guard for a run expected to stop on its own.
fn hang_guard(pid: u32) -> std::sync::mpsc::Sender<()> {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        let limit = std::time::Duration::from_secs(120);
        if rx.recv_timeout(limit) == Err(std::sync::mpsc::RecvTimeoutError::Timeout) {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
    });
    tx
}

//! Several `orders` instances sharing a 6-partition topic by partition, by static
//! assignment (`--partitions`) or as members of a consumer group (`--group-assign`);
//! tansu on 127.0.0.1, started per test: kills, restarts and rescales 3 -> 2 -> 3 end
//! with every output partition equal to a single instance's run, record by record; a
//! frozen instance whose partitions were taken over writes nothing for them. Group
//! members also get past a dead bootstrap broker and a cut coordinator connection, and
//! read records appended after a finished run. Kills and freezes land at pause points
//! (progress), never after a sleep.
//!
//! Without the tansu binary (`cargo xtask tools` installs it) each test returns early,
//! unless `SIMPLESTREAM_REQUIRE_SERVERS=1`, where it fails.

mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use support::kafka::{kafka_url, Kafka};
use support::servers::{self, Server};
use support::*;

const GROUP: &str = "orders";

/// `order_lines`, spread out: each line 4 s of event time after the one before (plus
/// their own jitter and late events), so 5-minute windows close all through the run
/// and kills land between rows written and rows checkpointed.
fn spread_orders(seed: u64, n: usize) -> String {
    let mut out = String::new();
    for (i, line) in order_lines(seed, n, 60, 997, 0).lines().enumerate() {
        let mut v: serde_json::Value = serde_json::from_str(line).unwrap();
        v["ts"] = (v["ts"].as_i64().unwrap() + i as i64 * 4_000).into();
        out.push_str(&v.to_string());
        out.push('\n');
    }
    out
}

/// An `orders` instance owning `parts`, with partition checkpoints under `dir`.
fn instance(server: &Server, dir: &Path, out: &str, name: &str, parts: &str) -> Command {
    let mut c = Command::new(orders_bin());
    c.args([
        "--input",
        &kafka_url(server, "orders"),
        "--output",
        &kafka_url(server, out),
    ]);
    c.arg("--checkpoint-dir").arg(dir);
    c.args(["--instance", name, "--partitions", parts]);
    c.args(["--partition-key", "customer", "--group", GROUP]);
    c.args(["--checkpoint-every", "250"]);
    c.env_remove("SIMPLESTREAM_FAILPOINT")
        .env_remove("SIMPLESTREAM_PAUSE_AT")
        .env_remove("RUST_LOG");
    c
}

/// A started instance and its stderr, read line by line.
struct Proc {
    child: Child,
    lines: std::io::Lines<BufReader<std::process::ChildStderr>>,
    seen: Vec<String>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    /// Started with pause points at `pause_at` events of each of its partitions.
    fn spawn(mut c: Command, pause_at: Option<u64>) -> Proc {
        if let Some(n) = pause_at {
            c.env("SIMPLESTREAM_PAUSE_AT", n.to_string());
        }
        c.stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = c.spawn().expect("spawn orders");
        let lines = BufReader::new(child.stderr.take().unwrap()).lines();
        Proc {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Reads stderr until a line contains `needle`; panics (with stderr) if it exits
    /// first.
    fn wait_for(&mut self, needle: &str) {
        for line in self.lines.by_ref() {
            let line = line.unwrap();
            self.seen.push(line.clone());
            if line.contains(needle) {
                return;
            }
        }
        panic!("exited before {needle:?}:\n{}", self.seen.join("\n"));
    }

    /// Waits for a line containing `needle`, unless one was seen already (lines of
    /// several threads come in any order).
    fn wait_for_seen(&mut self, needle: &str) {
        if !self.seen.iter().any(|l| l.contains(needle)) {
            self.wait_for(needle);
        }
    }

    /// The line saying partition `p` was taken over in its latest generation, seen
    /// already or waited for (tasks start in any order).
    fn took_over(&mut self, p: i32) -> String {
        let needle = format!("took partition {p} over at epoch");
        let from = self
            .seen
            .iter()
            .rposition(|l| l.contains("owns partitions"));
        let seen = &self.seen[from.unwrap_or(0)..];
        if let Some(l) = seen.iter().find(|l| l.contains(&needle)) {
            return l.clone();
        }
        self.wait_for(&needle);
        self.seen.last().unwrap().clone()
    }

    /// Waits until one of its partitions stands at a pause point.
    fn wait_paused(&mut self) {
        self.wait_for(PAUSED);
    }

    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Closes stdin: every pause point, now and later, lets its task go on.
    fn release(&mut self) {
        drop(self.child.stdin.take());
    }

    /// Lets every paused partition go on, then waits for the exit.
    fn finish(mut self, tasks: usize) -> (bool, String) {
        if let Some(mut stdin) = self.child.stdin.take() {
            let _ = stdin.write_all("\n".repeat(tasks).as_bytes());
        }
        let rest: Vec<String> = self.lines.by_ref().map(|l| l.unwrap()).collect();
        self.seen.extend(rest);
        let ok = self.child.wait().unwrap().success();
        (ok, self.seen.join("\n"))
    }
}

fn run_all_ok(cmds: Vec<Command>) {
    let procs: Vec<Proc> = cmds.into_iter().map(|c| Proc::spawn(c, None)).collect();
    for p in procs {
        let (ok, err) = p.finish(0);
        assert!(ok, "an instance failed:\n{err}");
    }
}

/// customer_stats of partition `p`'s latest checkpoint.
fn stats_of(dir: &Path, p: i32) -> serde_json::Value {
    let out = Command::new(orders_bin())
        .args(["checkpoints", "show"])
        .arg(dir.join(GROUP))
        .args(["--instance", &format!("partition-{p}")])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let ck: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    ck["customer_stats"].clone()
}

fn assert_stats(dir: &Path, p: i32, lines: &str) {
    let stats = stats_of(dir, p);
    let stats = stats.as_object().unwrap();
    let expected = expected_stats(lines);
    assert_eq!(stats.len(), expected.len(), "customers of partition {p}");
    for (c, (count, cents)) in &expected {
        assert_eq!(stats[c]["count"].as_u64(), Some(*count), "count of {c}");
        let amount = stats[c]["amount"].as_f64().unwrap();
        assert!(
            (amount * 100.0 - *cents as f64).abs() < 0.5,
            "{c}: {amount}"
        );
    }
}

const PARTS: i32 = 6;

/// Partition `p` of `topic`, checked to be its task's rows numbered 0, 1, 2, ...
fn rows(kafka: &Kafka, topic: &str, p: i32) -> Vec<String> {
    kafka.values(topic, p, &format!("{GROUP}/partition-{p}"))
}

/// Every partition of `out` (and `out.late`) equals `reference`'s, record by record.
fn assert_same_output(kafka: &Kafka, reference: &str, out: &str) -> usize {
    let mut total = 0;
    for p in 0..PARTS {
        let (want, got) = (rows(kafka, reference, p), rows(kafka, out, p));
        assert!(!want.is_empty(), "partition {p} has output");
        assert_eq!(got.len(), want.len(), "rows of partition {p}");
        assert!(got == want, "partition {p} differs from the reference");
        total += got.len();
        let late = format!("{reference}.late");
        assert_eq!(
            rows(kafka, &format!("{out}.late"), p),
            rows(kafka, &late, p)
        );
    }
    total
}

/// A 6-partition `orders` topic filled with `n` seeded orders, its per-partition input,
/// and a single-instance reference run over it, written as `ref` under `reference`.
struct Setup {
    server: Server,
    kafka: Kafka,
    reference: std::path::PathBuf,
    shared: std::path::PathBuf,
    per: Vec<String>,
    _tmp: tempfile::TempDir,
}

fn setup(seed: u64, n: usize) -> Option<Setup> {
    let server = servers::tansu()?;
    let kafka = Kafka::new(&server);
    let per = kafka.fill_by_customer("orders", PARTS, &spread_orders(seed, n));
    let tmp = tmp();
    let (reference, shared) = (tmp.path().join("reference"), tmp.path().join("shared"));
    run_all_ok(vec![instance(
        &server,
        &reference,
        "ref",
        "solo",
        "0,1,2,3,4,5",
    )]);
    Some(Setup {
        server,
        kafka,
        reference,
        shared,
        per,
        _tmp: tmp,
    })
}

#[test]
fn three_instances_kill_restart_rescale_equal_one_instance() {
    let Some(Setup {
        server,
        kafka,
        reference,
        shared,
        per,
        _tmp,
    }) = setup(181, 12_000)
    else {
        return;
    };

    let inst = |name: &str, parts: &str| instance(&server, &shared, "out", name, parts);
    // Three instances; each stands at a pause point; one of them is killed there and
    // restarted, then all three are killed (a rescale by crash).
    let mut a = Proc::spawn(inst("a", "0,1"), Some(600));
    let mut b = Proc::spawn(inst("b", "2,3"), Some(700));
    let mut c = Proc::spawn(inst("c", "4,5"), Some(800));
    for p in [&mut a, &mut b, &mut c] {
        p.wait_paused();
    }
    a.kill();
    let mut a = Proc::spawn(inst("a", "0,1"), Some(1_100));
    a.wait_for("restored checkpoint");
    a.wait_paused();
    for p in [a, b, c] {
        p.kill();
    }
    // Two instances take the six partitions over, and are killed at pause points.
    let mut x = Proc::spawn(inst("x", "0,1,2"), Some(1_300));
    let mut y = Proc::spawn(inst("y", "3,4,5"), Some(1_400));
    x.wait_for("took partition");
    for p in [&mut x, &mut y] {
        p.wait_paused();
    }
    x.kill();
    y.kill();
    // Three again, to the end.
    run_all_ok(vec![inst("a", "0,1"), inst("b", "2,3"), inst("c", "4,5")]);

    let rows = assert_same_output(&kafka, "ref", "out");
    eprintln!("{rows} rows in 6 partitions after 1 + 3 + 2 kills and two rescales");
    for p in 0..PARTS {
        assert_stats(&shared, p, &per[p as usize]);
        assert_stats(&reference, p, &per[p as usize]);
    }
}

#[test]
fn a_frozen_instance_whose_partitions_were_taken_over_writes_nothing_for_them() {
    let Some(Setup {
        server,
        kafka,
        reference,
        shared,
        _tmp,
        ..
    }) = setup(182, 9_000)
    else {
        return;
    };
    let inst = |name: &str, parts: &str| instance(&server, &shared, "out", name, parts);
    run_all_ok(vec![inst("b", "3,4,5")]);
    // `a` stands at a pause point with partition 0, 1 or 2 and is frozen there, as
    // a long GC pause or a network split would; `b` takes its partitions over.
    let mut a = Proc::spawn(inst("a", "0,1,2"), Some(700));
    a.wait_paused();
    send_signal(&a.child, "STOP");
    let b = Proc::spawn(inst("b", "0,1,2"), None);
    let (ok, err) = b.finish(0);
    assert!(ok, "{err}");
    assert!(
        err.contains("took partition 0 over at epoch 2 from instance a"),
        "{err}"
    );
    let before = (store_files(&shared), output_ends(&kafka));
    send_signal(&a.child, "CONT");
    let (ok, err) = a.finish(3);
    assert!(!ok, "the fenced instance must not succeed:\n{err}");
    assert!(
        err.contains("fenced: this partition was taken over by instance b"),
        "{err}"
    );
    // It wrote nothing: not a checkpoint byte, not a record.
    assert!(
        store_files(&shared) == before.0,
        "the fenced instance changed checkpoints"
    );
    assert_eq!(
        output_ends(&kafka),
        before.1,
        "the fenced instance produced"
    );
    assert_same_output(&kafka, "ref", "out");
    for p in 0..PARTS {
        assert_eq!(
            stats_of(&shared, p),
            stats_of(&reference, p),
            "partition {p}"
        );
    }
}

/// The window any check in our own process leaves: `a` passed its fence check for a
/// batch and is held before sending it (a test hook, where a freeze could land); `b`
/// takes the partitions over and finishes; `a`, let go, sends the batch it had cleared.
/// The broker refuses it (`b` bumped the producer epoch of every output partition):
/// nothing of `a` lands after the takeover.
#[test]
fn a_batch_cleared_by_the_fence_check_before_a_takeover_is_refused_by_the_broker() {
    let Some(Setup {
        server,
        kafka,
        reference,
        shared,
        _tmp,
        ..
    }) = setup(185, 6_000)
    else {
        return;
    };
    let inst = |name: &str, parts: &str| instance(&server, &shared, "out", name, parts);
    run_all_ok(vec![inst("b", "3,4,5")]);
    let release = _tmp.path().join("release");
    let mut held = inst("a", "0,1,2");
    let point = format!("between-fence-check-and-produce:{}", release.display());
    held.env("SIMPLESTREAM_HOLD", point);
    let mut a = Proc::spawn(held, None);
    // Every partition's writer must be held before b takes over: one that gets there
    // later is stopped by our own fence check, not by the broker.
    let out = kafka_url(&server, "out");
    for p in 0..3 {
        a.wait_for_seen(&format!(
            "{HELD} between-fence-check-and-produce ({out} partition {p})"
        ));
    }
    let (ok, err) = Proc::spawn(inst("b", "0,1,2"), None).finish(0);
    assert!(ok, "{err}");
    assert!(err.contains("from instance a"), "{err}");
    let before = (store_files(&shared), output_ends(&kafka));
    std::fs::write(&release, b"").unwrap();
    let (ok, err) = a.finish(0);
    assert!(!ok, "the fenced instance must not succeed:\n{err}");
    assert_eq!(
        output_ends(&kafka),
        before.1,
        "the held batch landed:\n{err}"
    );
    assert!(err.contains("PRODUCER_FENCED"), "{err}");
    assert!(
        store_files(&shared) == before.0,
        "the fenced instance changed checkpoints"
    );
    assert_same_output(&kafka, "ref", "out");
    for p in 0..PARTS {
        assert_eq!(
            stats_of(&shared, p),
            stats_of(&reference, p),
            "partition {p}"
        );
    }
}

/// Every file under the shared checkpoint directory, with its bytes.
fn store_files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for p in 0..PARTS {
        let d = dir.join(format!("{GROUP}/checkpoints/partition-{p}"));
        for e in std::fs::read_dir(&d).unwrap() {
            let path = e.unwrap().path();
            out.insert(path.display().to_string(), std::fs::read(&path).unwrap());
        }
    }
    out
}

/// The end offset of every partition of `out` and `out.late`.
fn output_ends(kafka: &Kafka) -> Vec<i64> {
    let mut ends = Vec::new();
    for topic in ["out", "out.late"] {
        for p in 0..PARTS {
            ends.push(kafka.end(topic, p));
        }
    }
    ends
}

/// An `orders` member of the group: Kafka assigns its partitions.
fn member(server: &Server, dir: &Path, name: &str) -> Command {
    member_via(&kafka_url(server, "orders"), server, dir, name)
}

/// A member reading `input` (a `kafka://` URL, its own bootstrap list).
fn member_via(input: &str, server: &Server, dir: &Path, name: &str) -> Command {
    let c = instance(server, dir, "out", name, "0");
    let mut args: Vec<std::ffi::OsString> = c.get_args().map(|a| a.to_owned()).collect();
    let at = args.iter().position(|a| a == "--partitions").unwrap();
    args.drain(at..at + 2);
    let at = args.iter().position(|a| a == "--input").unwrap();
    args[at + 1] = input.into();
    let mut m = Command::new(orders_bin());
    m.args(&args);
    m.args(["--group-assign", "--session-timeout", "1500ms"]);
    m.env_remove("SIMPLESTREAM_FAILPOINT")
        .env_remove("SIMPLESTREAM_PAUSE_AT")
        .env_remove("SIMPLESTREAM_CUT_COORDINATOR")
        .env_remove("RUST_LOG");
    m
}

/// The partitions a member's last seen assignment line gave it.
fn owned(p: &Proc) -> Vec<i32> {
    let line = p
        .seen
        .iter()
        .rev()
        .find(|l| l.contains("owns partitions "))
        .unwrap();
    let list = line.split("owns partitions ").nth(1).unwrap();
    let list = list.split(' ').next().unwrap();
    list.split(',').filter_map(|x| x.parse().ok()).collect()
}

/// Hands `lost`, the partitions a member gave up, to whichever of `to` owns each now,
/// and checks each was taken over from instance `from`.
fn assert_taken_over(lost: &[i32], to: &mut [&mut Proc], from: &str) {
    for p in lost {
        let owner = to
            .iter_mut()
            .find(|m| owned(m).contains(p))
            .unwrap_or_else(|| panic!("nobody owns partition {p}"));
        let line = owner.took_over(*p);
        assert!(
            line.contains(&format!("from instance {from} (generation")),
            "{line}"
        );
    }
}

#[test]
fn group_members_share_partitions_through_a_kill_a_restart_and_a_rescale() {
    let Some(Setup {
        server,
        kafka,
        shared,
        per,
        _tmp,
        ..
    }) = setup(183, 9_000)
    else {
        return;
    };
    // Every member's bootstrap list starts with an address nothing listens on.
    let dead = format!("127.0.0.1:{}", servers::free_port());
    let input = format!("kafka://{dead},{}/orders", server.addr());
    let m = |name: &str| member_via(&input, &server, &shared, name);
    // c's coordinator connection is cut before its second heartbeat: it must find the
    // coordinator again and stay a member.
    let mut cut = m("c");
    cut.env("SIMPLESTREAM_CUT_COORDINATOR", "2");

    // Three members; every task stands at a pause point (600 events of its partition)
    // until a rebalance revokes it, so no partition gets further before the rescale.
    let mut a = Proc::spawn(m("a"), Some(600));
    let mut b = Proc::spawn(m("b"), Some(600));
    let mut c = Proc::spawn(cut, Some(600));
    for p in [&mut a, &mut b, &mut c] {
        p.wait_for("3 member(s)");
    }
    a.wait_paused();
    let lost = owned(&a);
    assert_eq!(lost.len(), 2, "{}", a.seen.join("\n"));
    let killed = std::time::Instant::now();
    a.kill();
    // Its session runs out: b and c split the six partitions, restoring a's checkpoints.
    for p in [&mut b, &mut c] {
        p.wait_for("2 member(s)");
    }
    assert_taken_over(&lost, &mut [&mut b, &mut c], "a");
    // A figure for the README, not a verdict.
    eprintln!(
        "the killed member's partitions were taken over {:.2}s after the kill",
        killed.elapsed().as_secs_f64()
    );
    // a comes back and rejoins: three members again.
    let mut a = Proc::spawn(m("a"), Some(600));
    for p in [&mut a, &mut b, &mut c] {
        p.wait_for("3 member(s)");
    }
    // 3 -> 2: b is stopped with SIGTERM, takes final checkpoints and leaves; a and c
    // take its partitions over.
    let gone = owned(&b);
    send_signal(&b.child, "TERM");
    let (ok, err) = b.finish(0);
    assert!(ok && err.contains("group orders: left"), "{err}");
    for p in [&mut a, &mut c] {
        p.wait_for("2 member(s)");
    }
    assert_taken_over(&gone, &mut [&mut a, &mut c], "b");
    // 2 -> 3: a new member d joins; then everyone runs to the end.
    let mut d = Proc::spawn(m("d"), None);
    for p in [&mut a, &mut c, &mut d] {
        p.wait_for("3 member(s)");
        p.release();
    }
    let mut logs = Vec::new();
    for p in [a, c, d] {
        let (ok, err) = p.finish(0);
        assert!(ok, "a member failed:\n{err}");
        assert!(
            err.contains(&format!("bootstrap broker {dead}: connecting to {dead}")),
            "{err}"
        );
        logs.push(err);
    }
    assert!(
        logs[1].contains("lost the coordinator")
            && logs[1].contains("reconnected to its coordinator"),
        "{}",
        logs[1]
    );
    assert!(!logs[1].contains("fenced"), "{}", logs[1]);
    let rows = assert_same_output(&kafka, "ref", "out");
    eprintln!("{rows} rows in 6 partitions after a kill, a restart and a rescale 3 -> 2 -> 3");
    for p in 0..PARTS {
        assert_stats(&shared, p, &per[p as usize]);
    }
}

#[test]
fn a_frozen_group_member_whose_partitions_moved_writes_nothing_after_it_wakes() {
    let Some(Setup {
        server,
        kafka,
        shared,
        _tmp,
        ..
    }) = setup(184, 6_000)
    else {
        return;
    };
    // a owns all six and stands at a pause point; frozen there, its session runs out
    // and b, joining, gets every partition and runs them to the end.
    let mut a = Proc::spawn(member(&server, &shared, "a"), Some(500));
    a.wait_for("1 member(s)");
    a.wait_paused();
    send_signal(&a.child, "STOP");
    let (ok, err) = Proc::spawn(member(&server, &shared, "b"), None).finish(0);
    assert!(ok, "{err}");
    assert!(err.contains("from instance a (generation"), "{err}");
    let before = (store_files(&shared), output_ends(&kafka));
    send_signal(&a.child, "CONT");
    let (ok, err) = a.finish(6);
    assert!(ok, "{err}");
    assert!(
        err.contains("fenced: no heartbeat of generation 0")
            || err.contains("fenced: generation 0 of the group is over"),
        "{err}"
    );
    assert!(
        store_files(&shared) == before.0,
        "the stale member changed checkpoints:\n{err}"
    );
    assert_eq!(output_ends(&kafka), before.1, "the stale member produced");
    assert_same_output(&kafka, "ref", "out");
}

/// SIGUSR1 under `--partitions` takes a savepoint in every partition's store; a restart
/// with `--from-savepoint` restores each partition from its own, and every output
/// partition equals a single instance's run.
#[test]
fn from_savepoint_with_partitions_restores_every_partition_from_its_own() {
    let Some(Setup {
        server,
        kafka,
        shared,
        per,
        _tmp,
        ..
    }) = setup(186, 3_000)
    else {
        return;
    };
    let at = 200;
    for (p, lines) in per.iter().enumerate() {
        assert!(
            lines.lines().count() > at,
            "partition {p} reaches the pause point"
        );
    }
    let all = "0,1,2,3,4,5";
    let mut c = instance(&server, &shared, "out", "a", all);
    c.args(["--savepoint-name", "sp-p"]);
    let mut a = Proc::spawn(c, Some(at as u64));
    for _ in 0..PARTS {
        a.wait_paused();
    }
    send_signal(&a.child, "USR1");
    let (ok, err) = a.finish(PARTS as usize);
    assert!(ok, "{err}");
    assert_eq!(
        err.matches("savepoint `sp-p` taken").count(),
        PARTS as usize,
        "{err}"
    );
    for p in 0..PARTS {
        let f = shared
            .join(GROUP)
            .join("checkpoints")
            .join(format!("partition-{p}"))
            .join("checkpoint_savepoint-sp-p.json");
        let sp: serde_json::Value = serde_json::from_slice(&std::fs::read(&f).unwrap()).unwrap();
        assert_eq!(sp["positions"]["events"], at, "partition {p}");
    }
    assert_same_output(&kafka, "ref", "out");

    let mut c = instance(&server, &shared, "out", "b", all);
    c.args(["--from-savepoint", "sp-p"]);
    let (ok, err) = Proc::spawn(c, None).finish(0);
    assert!(ok, "{err}");
    let restored = "restored savepoint `sp-p` (checkpoint_savepoint-sp-p.json, taken ";
    assert_eq!(err.matches(restored).count(), PARTS as usize, "{err}");
    assert_eq!(
        err.matches(&format!("{at} events processed")).count(),
        PARTS as usize,
        "{err}"
    );
    assert_same_output(&kafka, "ref", "out");
    for p in 0..PARTS {
        assert_stats(&shared, p, &per[p as usize]);
    }
}

#[test]
fn a_group_member_stopped_by_sigterm_checkpoints_leaves_and_another_finishes() {
    let Some(Setup {
        server,
        kafka,
        shared,
        per,
        _tmp,
        ..
    }) = setup(185, 3_000)
    else {
        return;
    };
    let mut a = Proc::spawn(member(&server, &shared, "a"), Some(300));
    a.wait_for("1 member(s)");
    a.wait_paused();
    send_signal(&a.child, "TERM");
    let (ok, err) = a.finish(0);
    assert!(ok, "{err}");
    assert!(err.contains("group orders: left"), "{err}");
    assert!(err.contains("stopped by signal"), "{err}");
    let (ok, err) = Proc::spawn(member(&server, &shared, "b"), None).finish(0);
    assert!(ok, "{err}");
    assert!(err.contains("restored checkpoint"), "{err}");
    assert_same_output(&kafka, "ref", "out");

    // Orders appended after the group finished (ten days later) are read by the next
    // run: each partition's end-of-input marker records the offset read to, now behind
    // the partition's end.
    let later: String = spread_orders(186, 600)
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["ts"] = (v["ts"].as_i64().unwrap() + 864_000_000).into();
            format!("{v}\n")
        })
        .collect();
    let had: Vec<usize> = (0..PARTS).map(|p| rows(&kafka, "out", p).len()).collect();
    let added = kafka.append_by_customer("orders", PARTS, &later);
    let (ok, err) = Proc::spawn(member(&server, &shared, "c"), None).finish(0);
    assert!(ok, "{err}");
    for p in 0..PARTS {
        let stale = format!("partition {p}: its end-of-input marker (offset ");
        assert!(err.contains(&stale), "{err}");
        assert_stats(
            &shared,
            p,
            &format!("{}{}", per[p as usize], added[p as usize]),
        );
        assert!(
            rows(&kafka, "out", p).len() > had[p as usize],
            "partition {p}"
        );
    }
    // Nothing appended since: every marker holds and the next member runs nothing.
    let before = (store_files(&shared), output_ends(&kafka));
    let (ok, err) = Proc::spawn(member(&server, &shared, "d"), None).finish(0);
    assert!(ok && !err.contains("is stale"), "{err}");
    assert!(
        store_files(&shared) == before.0,
        "a finished partition ran again"
    );
    assert_eq!(output_ends(&kafka), before.1);
}

#[test]
fn partitions_refuse_keys_the_topic_is_not_partitioned_by() {
    let tmp = tmp();
    let mut c = Command::new(orders_bin());
    c.args([
        "--input",
        "kafka://127.0.0.1:9/orders",
        "--output",
        "kafka://127.0.0.1:9/out",
    ]);
    c.arg("--checkpoint-dir").arg(tmp.path());
    c.args(["--partitions", "0", "--partition-key", "region", "--quiet"]);
    let o = c.output().unwrap();
    let err = stderr_of(&o);
    assert_eq!(code(&o), Some(1), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("stage `customer_stats` is keyed by `customer`, but the input is partitioned by `region`"),
        "{err}"
    );
    let o = Command::new(orders_bin())
        .args([
            "--input",
            "kafka://127.0.0.1:9/orders",
            "--output",
            "out.jsonl",
        ])
        .args([
            "--partitions",
            "0",
            "--partition-key",
            "customer",
            "--quiet",
        ])
        .arg("--checkpoint-dir")
        .arg(tmp.path())
        .output()
        .unwrap();
    let err = stderr_of(&o);
    assert_eq!(code(&o), Some(1), "{err}");
    assert!(err.contains("not to a file (--output out.jsonl)"), "{err}");
    assert!(
        std::fs::read_dir(tmp.path()).unwrap().next().is_none(),
        "nothing written"
    );
}

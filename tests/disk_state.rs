//! The disk state backend under SIGKILL: `orders --state-backend disk` with a budget small
//! enough that most customers' state lives on disk, killed at random event counts and
//! restarted, gives output byte-identical to an uninterrupted memory-backend run, and its
//! checkpointed state equals counts computed independently from the input. With S3
//! checkpoints, every restart gets a new, empty working directory ("another machine").

mod common;
mod support;

use std::path::Path;
use std::process::Command;

use support::servers;
use support::*;

/// 2,000 customers at about 150 bytes each against 24 KiB for entries (5/8 of 40 KiB):
/// about 160 keys fit in memory, more than nine in ten live on disk.
const BUDGET: &str = "40KiB";
const CUSTOMERS: u64 = 2_000;
const EVENTS: usize = 40_000;
const KILLS: usize = 6;

fn disk_args<'a>(state_dir: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec![
        "--state-backend",
        "disk",
        "--state-memory",
        BUDGET,
        "--state-dir",
        state_dir,
    ];
    a.extend_from_slice(extra);
    a
}

/// Run and scratch files in a working directory (its marker and dirty marks aside).
fn store_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".run") || n.ends_with(".spool"))
                .collect()
        })
        .unwrap_or_default()
}

/// Kills the command `make(i)` builds at each target (it stands at that event count);
/// checks at the first that state went to disk; then runs it to the end.
fn kill_at(
    mut make: impl FnMut(usize) -> Command,
    targets: &[u64],
    state_dir: impl Fn(usize) -> std::path::PathBuf,
) {
    for (i, &t) in targets.iter().enumerate() {
        let mut c = make(i);
        c.arg("--quiet");
        let p = spawn_until_paused(c, &[t]);
        if i == 0 {
            let files = store_files(&state_dir(i));
            assert!(!files.is_empty(), "no state spilled by event {t}");
        }
        p.kill();
    }
    let mut c = make(targets.len());
    c.arg("--quiet");
    run_ok(c);
}

fn assert_stats(ck: &serde_json::Value, text: &str, name: &str) {
    let stats = ck["customer_stats"].as_object().unwrap();
    let expected = expected_stats(text);
    assert_eq!(stats.len(), expected.len(), "{name}: customers");
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

fn file_store_scenario(name: &str, seed: u64, extra: &[&str]) {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("orders.jsonl");
    let text = order_lines(seed, EVENTS, CUSTOMERS, 997, 0);
    std::fs::write(&input, &text).unwrap();
    let (reference, crashed) = (tmp.path().join("reference"), tmp.path().join("crashed"));
    std::fs::create_dir_all(&reference).unwrap();
    std::fs::create_dir_all(&crashed).unwrap();
    run_ok(orders(&reference, &input, extra));

    let state = crashed.join("state");
    let state_arg = state.to_str().unwrap().to_string();
    let targets = pause_targets(seed, KILLS, 5_000..(EVENTS as u64 * 49 / 50));
    kill_at(
        |_| orders(&crashed, &input, &disk_args(&state_arg, extra)),
        &targets,
        |_| state.clone(),
    );
    eprintln!("{name}: {KILLS} kills at events {targets:?}");
    for f in ["out.jsonl", "out.jsonl.late"] {
        assert_same_file(&reference.join(f), &crashed.join(f));
    }
    assert!(
        std::fs::read_to_string(crashed.join("out.jsonl"))
            .unwrap()
            .lines()
            .count()
            > 100
    );
    assert_stats(&latest_checkpoint(&crashed), &text, name);
    // Files of the killed runs were removed at the next start, the last run's at its end.
    assert_eq!(store_files(&state), Vec::<String>::new());
    assert!(state.join(".simplestream-state").exists());
}

#[test]
fn disk_backend_killed_at_random_moments_incremental_binary() {
    file_store_scenario(
        "disk-incremental",
        61,
        &[
            "--incremental",
            "--checkpoint-every",
            "1500",
            "--codec",
            "binary",
        ],
    );
}

/// With the disk backend, deltas are stored after the pause while events go on: a crash
/// while one is in flight (its delta written, its manifest or `latest` not yet) restores
/// the previous checkpoint, and the output ends byte-identical all the same.
#[test]
fn disk_backend_killed_while_a_background_upload_is_in_flight() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("orders.jsonl");
    let text = order_lines(63, 12_000, CUSTOMERS, 997, 0);
    std::fs::write(&input, &text).unwrap();
    let (reference, crashed) = (tmp.path().join("reference"), tmp.path().join("crashed"));
    std::fs::create_dir_all(&reference).unwrap();
    std::fs::create_dir_all(&crashed).unwrap();
    let extra = [
        "--incremental",
        "--checkpoint-every",
        "1000",
        "--codec",
        "binary",
    ];
    run_ok(orders(&reference, &input, &extra));
    let state = crashed.join("state");
    let args = disk_args(state.to_str().unwrap(), &extra);
    // The start checkpoint is the first write (inline); later ones are uploads.
    for point in [
        "after-checkpoint-write:3",
        "after-manifest-write:1",
        "after-checkpoint-write:2",
    ] {
        let mut c = orders(&crashed, &input, &args);
        c.arg("--quiet").env("SIMPLESTREAM_FAILPOINT", point);
        let out = c.output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        let (name, hit) = point.split_once(':').unwrap();
        assert!(
            !out.status.success()
                && err.contains(&format!("failpoint {name} (hit {hit})"))
                && err.contains("(thread checkpoint-upload-"),
            "{point}: not stopped in an upload: {err}"
        );
    }
    let mut c = orders(&crashed, &input, &args);
    c.arg("--quiet");
    run_ok(c);
    for f in ["out.jsonl", "out.jsonl.late"] {
        assert_same_file(&reference.join(f), &crashed.join(f));
    }
    assert_stats(&latest_checkpoint(&crashed), &text, "background upload");
}

#[test]
fn disk_backend_killed_at_random_moments_whole_json() {
    file_store_scenario("disk-json", 62, &["--checkpoint-every", "2500"]);
}

#[test]
fn a_state_dir_holding_other_files_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let input = put_input(tmp.path(), order_lines(3, 100, 10, 0, 0).as_bytes());
    let state = tmp.path().join("mine");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(state.join("thesis.txt"), b"do not touch").unwrap();
    let out = orders(tmp.path(), &input, &disk_args(state.to_str().unwrap(), &[]))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr_of(&out);
    assert!(err.contains("not made by simplestream"), "{err}");
    assert_eq!(
        std::fs::read(state.join("thesis.txt")).unwrap(),
        b"do not touch"
    );
}

/// Checkpoints in S3 (moto); each restart on a new machine: an empty working directory
/// and no local checkpoint directory.
#[test]
fn s3_disk_backend_restores_into_an_empty_working_directory() {
    let Some(server) = servers::moto() else {
        return;
    };
    servers::create_bucket(&server, "disk-bucket");
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("orders.jsonl");
    let text = order_lines(63, EVENTS, CUSTOMERS, 997, 0);
    std::fs::write(&input, &text).unwrap();
    let (reference, crashed) = (tmp.path().join("reference"), tmp.path().join("crashed"));
    std::fs::create_dir_all(&reference).unwrap();
    std::fs::create_dir_all(&crashed).unwrap();
    let extra = [
        "--incremental",
        "--checkpoint-every",
        "2000",
        "--codec",
        "binary",
    ];
    run_ok(orders(&reference, &input, &extra));

    let url = "s3://disk-bucket/disk";
    let machine = |i: usize| crashed.join(format!("machine-{i}"));
    let make = |i: usize| {
        let state = machine(i).join("state");
        let mut c = Command::new(orders_bin());
        c.arg("--input").arg(&input);
        c.arg("--output").arg(crashed.join("out.jsonl"));
        c.args(["--checkpoint-store", url]);
        c.arg("--checkpoint-dir")
            .arg(machine(i).join("no-checkpoints-here"));
        c.args(["--instance", "app-instance-1"]);
        c.args(disk_args(state.to_str().unwrap(), &extra));
        c.env_remove("SIMPLESTREAM_FAILPOINT")
            .env_remove("RUST_LOG");
        c.envs(servers::s3_env(&server));
        c
    };
    let targets = pause_targets(63, KILLS, 5_000..(EVENTS as u64 * 49 / 50));
    kill_at(make, &targets, |i| machine(i).join("state"));
    for f in ["out.jsonl", "out.jsonl.late"] {
        assert_same_file(&reference.join(f), &crashed.join(f));
    }
    for i in 0..=KILLS {
        assert!(
            !machine(i).join("no-checkpoints-here").exists(),
            "nothing kept locally"
        );
    }
    let show = Command::new(orders_bin())
        .args(["checkpoints", "show", url, "--instance", "app-instance-1"])
        .envs(servers::s3_env(&server))
        .output()
        .unwrap();
    assert!(show.status.success(), "{}", stderr_of(&show));
    let ck: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_stats(&ck, &text, "s3-disk");
}

/// A full disk in the working directory: a file-size limit (`ulimit -f`, with SIGXFSZ
/// ignored, so writes past it fail with EFBIG) that the first eviction's store exceeds,
/// while checkpoints and early outputs fit. The run stops with a one-line error (exit 1,
/// no panic); run again with room, it resumes and its output equals an uninterrupted run's.
#[test]
fn a_full_state_directory_stops_the_run_with_an_error_and_a_rerun_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("orders.jsonl");
    let text = order_lines(64, EVENTS / 4, CUSTOMERS, 997, 0);
    std::fs::write(&input, &text).unwrap();
    let (reference, crashed) = (tmp.path().join("reference"), tmp.path().join("crashed"));
    std::fs::create_dir_all(&reference).unwrap();
    std::fs::create_dir_all(&crashed).unwrap();
    let extra = ["--checkpoint-every", "1500", "--codec", "binary"];
    run_ok(orders(&reference, &input, &extra));

    let state = crashed.join("state");
    let args = disk_args(state.to_str().unwrap(), &extra);
    let run = orders(&crashed, &input, &args);
    let mut limited = Command::new("sh");
    limited
        .arg("-c")
        .arg(r#"trap "" XFSZ; ulimit -f 200; exec "$0" "$@""#)
        .arg(run.get_program())
        .args(run.get_args())
        .env_remove("SIMPLESTREAM_FAILPOINT")
        .env_remove("RUST_LOG");
    let out = limited.output().unwrap();
    let err = stderr_of(&out);
    assert_eq!(code(&out), Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        err.contains("state working directory") && err.contains("File too large"),
        "{err}"
    );
    assert!(
        err.contains(state.to_str().unwrap()),
        "names the directory: {err}"
    );

    run_ok(orders(&crashed, &input, &args));
    for f in ["out.jsonl", "out.jsonl.late"] {
        assert_same_file(&reference.join(f), &crashed.join(f));
    }
    assert_stats(&latest_checkpoint(&crashed), &text, "full-disk");
}

/// A file store that counts the bytes it gives back whole from checkpoints and deltas
/// (manifests are small), and which objects were streamed in.
struct Watched {
    inner: simplestream::store::FileStore,
    read_whole: std::cell::Cell<u64>,
    streamed: Vec<String>,
    put_whole: Vec<String>,
}

mod watched {
    use super::Watched;
    use simplestream::names::{parse_name, EntryKind};
    use simplestream::store::{CheckpointStore, PutStream, StageSpan, StoreError, StoredEntry};

    impl CheckpointStore for Watched {
        fn location(&self) -> String {
            self.inner.location()
        }
        fn put(&mut self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
            self.put_whole.push(name.to_string());
            self.inner.put(name, bytes)
        }
        fn put_staged(
            &mut self,
            name: &str,
            bytes: &[u8],
            stages: &[StageSpan],
        ) -> Result<(), StoreError> {
            self.put_whole.push(name.to_string());
            self.inner.put_staged(name, bytes, stages)
        }
        fn put_stream(&mut self, name: &str) -> Result<Box<dyn PutStream + '_>, StoreError> {
            self.streamed.push(name.to_string());
            self.inner.put_stream(name)
        }
        fn get(&self, name: &str) -> Result<Vec<u8>, StoreError> {
            let bytes = self.inner.get(name)?;
            if !matches!(parse_name(name), Some((_, EntryKind::Manifest))) {
                self.read_whole
                    .set(self.read_whole.get() + bytes.len() as u64);
            }
            Ok(bytes)
        }
        fn checksum(&self, name: &str) -> Result<(u64, u32), StoreError> {
            self.inner.checksum(name)
        }
        fn list(&self) -> Result<Vec<StoredEntry>, StoreError> {
            self.inner.list()
        }
        fn delete(&mut self, name: &str) -> Result<(), StoreError> {
            self.inner.delete(name)
        }
        fn put_latest(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
            self.inner.put_latest(bytes)
        }
        fn get_latest(&self) -> Result<Option<Vec<u8>>, StoreError> {
            self.inner.get_latest()
        }
    }
}

/// Tests of this binary that set the process's state backend run one at a time.
static BACKEND: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// `Pipeline::prefetch` before each batch of events, with most customers on disk, changes
/// no output and no state: they are those of the events processed alone by the memory
/// backend. The prefetch reaches the state (keys leave the disk before their events).
/// The runner, with the disk backend, parses the lines it read ahead and prefetches
/// their keys; bad lines among them are still handled in order. With dead letters the
/// outputs, dead letters and state equal the memory backend's; stopped at a bad line,
/// the checkpoint holds exactly the lines before it, none of those parsed after it.
#[test]
fn bad_lines_among_the_lines_read_ahead_are_handled_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("orders.jsonl");
    let text = order_lines(71, 20_000, CUSTOMERS, 997, 613);
    std::fs::write(&input, &text).unwrap();
    let dirs = ["memory", "disk", "fail"].map(|d| tmp.path().join(d));
    for d in &dirs {
        std::fs::create_dir_all(d).unwrap();
    }
    let [memory, disk, fail] = &dirs;
    let dead = [
        "--on-bad-input",
        "dead-letter",
        "--checkpoint-every",
        "1500",
    ];
    run_ok(orders(memory, &input, &dead));
    let state = disk.join("state");
    let state_arg = state.to_str().unwrap();
    let mut c = orders(disk, &input, &disk_args(state_arg, &dead));
    c.arg("--quiet");
    let p = spawn_until_paused(c, &[10_000]);
    assert!(
        !store_files(&state).is_empty(),
        "no state spilled by event 10000"
    );
    let (status, err) = p.finish();
    assert!(status.success(), "{err}");
    for f in ["out.jsonl", "out.jsonl.late", "out.jsonl.dead"] {
        assert_same_file(&memory.join(f), &disk.join(f));
    }
    let dead_letters = std::fs::read_to_string(disk.join("out.jsonl.dead")).unwrap();
    assert_eq!(
        dead_letters.lines().count(),
        24,
        "3 of every 4 bad lines (one is blank)"
    );
    assert_stats(&latest_checkpoint(disk), &text, "dead letters, disk");

    // Line 613 is the first bad one ("amount":"lots"), inside the first block read.
    let state = fail.join("state");
    let mut c = orders(
        fail,
        &input,
        &disk_args(state.to_str().unwrap(), &["--checkpoint-every", "1500"]),
    );
    let out = c.output().unwrap();
    assert_eq!(code(&out), Some(2), "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains("line 613 "), "{}", stderr_of(&out));
    let before: String = text.lines().take(612).map(|l| format!("{l}\n")).collect();
    let ck = latest_checkpoint(fail);
    assert_eq!(pos(&ck, "source.line"), 613);
    assert_stats(&ck, &before, "stopped at line 613");
}

#[test]
fn prefetching_batches_of_events_changes_no_output_and_no_state() {
    use simplestream::spill::{self, DiskConfig, StateBackend};
    use simplestream::Pipeline;
    use simplestream_examples::orders::{Order, Orders};

    let _one = BACKEND.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let events: Vec<Order> = orders_of(5_000, 40_000);
    spill::set_state_backend(StateBackend::Memory).unwrap();
    let (mut reference, mut want) = (Orders::new(), Vec::new());
    for e in &events {
        reference.process_ref(e, &mut want);
    }
    reference.finish(&mut want);
    // Batches of 25 (room for them in memory, mostly), and of 1000 (cut to what fits).
    for (n, size) in [25, 1_000].into_iter().enumerate() {
        spill::set_state_backend(StateBackend::Disk(DiskConfig {
            dir: tmp.path().join(format!("state{n}")),
            memory: 64 << 10,
        }))
        .unwrap();
        let (mut p, mut got) = (Orders::new(), Vec::new());
        // Batches whose prefetch took keys off the disk. Memory is kept full, so a
        // prefetch mostly evicts as many entries as it brings in and this shows only
        // where it evicted fewer; `spill::tests` checks where the keys went.
        let mut took = 0;
        for batch in events.chunks(size) {
            let on_disk = p.customer_stats.state.on_disk();
            p.prefetch(batch);
            took += usize::from(p.customer_stats.state.on_disk() < on_disk);
            for e in batch {
                p.process_ref(e, &mut got);
            }
        }
        p.finish(&mut got);
        let on_disk = p.customer_stats.state.on_disk();
        let stats = p.stage_json("customer_stats");
        drop(p);
        spill::set_state_backend(StateBackend::Memory).unwrap();
        assert!(on_disk > 2_500, "{on_disk} of 5000 customers on disk");
        if size == 25 {
            assert!(took > 0, "no prefetch took keys off the disk");
        }
        assert_eq!(
            stats,
            reference.stage_json("customer_stats"),
            "batches of {size}"
        );
        assert_eq!(got.len(), want.len());
        assert_eq!(
            serde_json::to_string(&got).unwrap(),
            serde_json::to_string(&want).unwrap(),
            "batches of {size}"
        );
    }
}

/// With the disk backend, background checkpoints (as the runner takes them) stream
/// their bytes: each delta and whole checkpoint goes into the store through a stream,
/// none is read back whole (retention checks a streamed one a chunk at a time), and the
/// last one restores the state a memory-backend run of the same events has.
#[test]
fn checkpoints_of_a_spilled_state_are_streamed_and_never_read_back_whole() {
    use simplestream::incremental::IncrementalConfig;
    use simplestream::names::{parse_name, EntryKind};
    use simplestream::spill::{self, DiskConfig, StateBackend};
    use simplestream::store::{FileStore, FileStoreOptions};
    use simplestream::{Codec, Coordinator, CoordinatorConfig, Pipeline};
    use simplestream_examples::orders::{Order, Orders};

    let _one = BACKEND.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let order = |i: u64| Order {
        customer: format!("C{:05}", i * 7919 % 20_000),
        amount: (i % 13) as f64 + 0.5,
        ts: 1_000 * i as i64,
    };
    let mut reference = Orders::new();
    let mut out = Vec::new();
    spill::set_state_backend(StateBackend::Disk(DiskConfig {
        dir: state.clone(),
        memory: 64 << 10,
    }))
    .unwrap();
    let config = CoordinatorConfig {
        every_events: None,
        codec: Codec::Binary,
        keep: 2,
        ..CoordinatorConfig::default()
    };
    let store = Watched {
        inner: FileStore::open(tmp.path(), "i", FileStoreOptions::default()).unwrap(),
        read_whole: Default::default(),
        streamed: Vec::new(),
        put_whole: Vec::new(),
    };
    let mut c = Coordinator::new(store, config.clone());
    c.set_incremental(Some(IncrementalConfig {
        max_deltas: 3,
        max_delta_ratio: f64::INFINITY,
    }));
    let mut p = Orders::new();
    for round in 0..9u64 {
        for i in round * 4_000..(round + 1) * 4_000 {
            p.process(order(i), &mut out);
            reference.process(order(i), &mut out);
        }
        c.begin_upload(&p, Default::default(), round as i64)
            .unwrap();
        c.finish_upload().unwrap().unwrap();
    }
    assert!(!store_files(&state).is_empty(), "no state spilled");
    let latest = c.latest().unwrap().unwrap().file;
    let store = c.into_store();
    let kind = |n: &String| parse_name(n).map(|(_, k)| k);
    let streamed: Vec<_> = store.streamed.iter().map(kind).collect();
    let count = |k| streamed.iter().filter(|&&s| s == Some(k)).count();
    assert_eq!(
        (count(EntryKind::Whole), count(EntryKind::Delta)),
        (3, 6),
        "{:?}",
        store.streamed
    );
    assert!(
        store
            .put_whole
            .iter()
            .all(|n| kind(n) == Some(EntryKind::Manifest)),
        "written from memory: {:?}",
        store.put_whole
    );
    assert_eq!(
        store.read_whole.get(),
        0,
        "bytes of checkpoints read back whole"
    );
    // The reference's windows, opened after the backend was set, spill too.
    let want = reference.stage_json("customer_stats");
    drop((p, reference));
    assert!(store_files(&state).is_empty(), "scratch or run files left");
    spill::set_state_backend(StateBackend::Memory).unwrap();
    let mut c = Coordinator::new(store, config);
    let r = c.recover::<Orders>().unwrap().unwrap();
    assert_eq!(r.name, latest);
    assert_eq!(r.pipeline.stage_json("customer_stats"), want);
}

/// The disk backend's settings for a working directory in `tmp`.
fn state_in(tmp: &tempfile::TempDir, memory: usize) -> simplestream::spill::DiskConfig {
    simplestream::spill::DiskConfig {
        dir: tmp.path().join("state"),
        memory,
    }
}

fn orders_of(customers: u64, n: u64) -> Vec<simplestream_examples::orders::Order> {
    (0..n)
        .map(|i| simplestream_examples::orders::Order {
            customer: format!("C{:05}", i * 7919 % customers),
            amount: (i % 13) as f64 + 0.5,
            ts: 1_000 * i as i64,
        })
        .collect()
}

/// The crash-equivalence helper with the disk backend: 5,000 customers in 64 KiB (more
/// than half of them on disk, as the prefetch test above checks), restored at random
/// points from whole and incremental checkpoints in both codecs, give the outputs and
/// state of an uninterrupted memory-backend run.
#[test]
fn orders_crash_equivalent_with_most_customers_on_disk() {
    use simplestream::testing::{assert_crash_equivalent_on_disk, CrashPlan};
    use simplestream_examples::orders::Orders;

    let _one = BACKEND.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let disk = state_in(&tmp, 64 << 10);
    let plan = CrashPlan::Random {
        seed: 16,
        crashes: 9,
    };
    simplestream::spill::set_state_backend(simplestream::spill::StateBackend::Memory).unwrap();
    assert_crash_equivalent_on_disk::<Orders>(&orders_of(5_000, 20_000), plan, disk);
    assert_eq!(
        simplestream::spill::state_backend(),
        simplestream::spill::StateBackend::Memory,
        "the helper sets the backend back"
    );
}

/// A budget that holds every key tests nothing about the disk: the helper says so.
#[test]
#[should_panic(expected = "no entry went to disk with a budget of 67108864 bytes")]
fn the_disk_crash_helper_refuses_a_budget_that_never_spills() {
    use simplestream::testing::{assert_crash_equivalent_on_disk, CrashPlan};
    use simplestream_examples::orders::Orders;

    let _one = BACKEND.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let disk = state_in(&tmp, 64 << 20);
    assert_crash_equivalent_on_disk::<Orders>(&orders_of(50, 2_000), CrashPlan::EveryK(500), disk);
}

/// Nexmark's keyed windows (q5's bids per auction in sliding windows, q4's closing
/// prices per auction and q8's auctions per person in tumbling windows) with their
/// tables spilled to disk: restored at random points, the same outputs and state as an
/// uninterrupted memory-backend run. (q4's and q8's window joins spill their buffers too.)
#[test]
fn nexmark_windows_crash_equivalent_with_their_tables_on_disk() {
    use simplestream::spill::DiskConfig;
    use simplestream::testing::{assert_crash_equivalent_on_disk, CrashPlan};
    use simplestream_examples::nexmark::*;

    let _one = BACKEND.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let disk = |name: &str| DiskConfig {
        dir: tmp.path().join(name),
        memory: 8 << 10,
    };
    let plan = |seed| CrashPlan::Random { seed, crashes: 8 };
    let all: Vec<Event> = events(0, 30_000).collect();
    let bids: Vec<Bid> = all.iter().cloned().filter_map(inputs::bids).collect();
    assert_crash_equivalent_on_disk::<Q5>(&bids, plan(5), disk("q5"));
    let q4: Vec<q4::Input> = all.iter().cloned().filter_map(inputs::q4).collect();
    assert_crash_equivalent_on_disk::<Q4>(&q4, plan(4), disk("q4"));
    let q8: Vec<q8::Input> = all.into_iter().filter_map(inputs::q8).collect();
    assert_crash_equivalent_on_disk::<Q8>(&q8, plan(8), disk("q8"));
}

simplestream::pipeline! {
    /// Orders per customer session (a minute without an order ends it).
    pipeline Visits;
    source orders: simplestream_examples::orders::Order, event_time = |o| o.ts, max_delay = 2s;
    visits = orders
        .key_by(customer: String = |o| o.customer.clone())
        .window(session(60s), allowed_lateness = 1s)
        .aggregate(n = count(), amount: f64 = sum(|o| o.amount));
    sink visits;
}

/// 20,000 orders 10 ms apart of 3,000 customers, who order every 30 s or so; the upper
/// half stop for the middle half of the run (100 s), so their sessions close and new
/// ones open.
fn visits_of() -> Vec<simplestream_examples::orders::Order> {
    (0..20_000u64)
        .map(|i| {
            let halved = (5_000..15_000).contains(&i);
            simplestream_examples::orders::Order {
                customer: format!("C{:05}", i * 7919 % 3_000 / if halved { 2 } else { 1 }),
                amount: (i % 13) as f64 + 0.5,
                ts: 10 * i as i64,
            }
        })
        .collect()
}

/// Session windows with their sessions on disk (about 3,000 open at once in 16 KiB):
/// restored at random points, the same outputs and state as an uninterrupted
/// memory-backend run.
#[test]
fn sessions_crash_equivalent_with_most_sessions_on_disk() {
    use simplestream::testing::{assert_crash_equivalent_on_disk, CrashPlan};

    let _one = BACKEND.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let plan = CrashPlan::Random {
        seed: 11,
        crashes: 8,
    };
    assert_crash_equivalent_on_disk::<Visits>(&visits_of(), plan, state_in(&tmp, 16 << 10));
}

/// Sessions are prefetched and read ahead as a running aggregate's keys are (the
/// runner's pattern): the same rows and state as the memory backend, and prefetches do
/// take sessions off the disk.
#[test]
fn sessions_prefetched_and_read_ahead_change_no_output_and_no_state() {
    use simplestream::spill::{self, StateBackend};
    use simplestream::Pipeline;

    let _one = BACKEND.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let events = visits_of();
    spill::set_state_backend(StateBackend::Memory).unwrap();
    let (mut reference, mut want) = (Visits::new(), Vec::new());
    for e in &events {
        reference.process_ref(e, &mut want);
    }
    let state = reference.stage_json("visits");
    reference.finish(&mut want);
    spill::set_state_backend(StateBackend::Disk(state_in(&tmp, 16 << 10))).unwrap();
    let (mut p, mut got, mut took) = (Visits::new(), Vec::new(), 0);
    let batches: Vec<_> = events.chunks(50).collect();
    p.prefetch(batches[0]);
    for (n, batch) in batches.iter().enumerate() {
        if let Some(next) = batches.get(n + 1) {
            p.read_ahead(next);
        }
        for e in *batch {
            p.process_ref(e, &mut got);
        }
        if let Some(next) = batches.get(n + 1) {
            let on_disk = p.visits.state.sessions.on_disk();
            p.prefetch(next);
            took += usize::from(p.visits.state.sessions.on_disk() < on_disk);
        }
    }
    let (spilled, on_disk) = (p.stage_json("visits"), p.visits.state.sessions.on_disk());
    p.finish(&mut got);
    drop(p);
    spill::set_state_backend(StateBackend::Memory).unwrap();
    assert!(
        on_disk > 1_000,
        "{on_disk} customers' sessions on disk at the end"
    );
    assert!(took > 0, "no prefetch took sessions off the disk");
    assert_eq!(spilled, state);
    assert_eq!(got.len(), want.len());
    assert_eq!(
        serde_json::to_string(&got).unwrap(),
        serde_json::to_string(&want).unwrap()
    );
}

/// 4,000 sales 5 ms apart, each paid 0-2 s later (the payment arriving 2 s after its
/// sale): about 1,800 orders waiting in the interval join at once.
fn busy_sales() -> Vec<common::payments::Input> {
    use common::payments::Input;
    let mut out = Vec::new();
    for id in 0..4_400u64 {
        let ts = 1_000_000 + 5 * id as i64;
        if id < 4_000 {
            let customer = format!("C{}", id % 7);
            let amount = (id % 100) as f64;
            out.push(Input::Sales(common::Sale {
                id,
                customer,
                amount,
                ts,
            }));
        }
        if let Some(paid) = id.checked_sub(400) {
            out.push(Input::Payments(common::Payment {
                order_id: paid,
                paid: (paid % 100) as f64 + (paid % 3) as f64 - 1.0,
                ts: 1_000_000 + 5 * paid as i64 + (paid * 37 % 2_000) as i64,
            }));
        }
    }
    out
}

/// `common::Payments` (a window join, an interval join feeding a running aggregate)
/// with 8 KiB: the interval join's buffers go to disk (checked on a plain run), and
/// restored at random points the pipeline gives the outputs and state of an
/// uninterrupted memory-backend run.
#[test]
fn interval_join_crash_equivalent_with_its_buffers_on_disk() {
    use simplestream::spill::{self, StateBackend};
    use simplestream::testing::{assert_crash_equivalent_on_disk, CrashPlan};
    use simplestream::Pipeline;

    let _one = BACKEND.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let events = busy_sales();
    spill::set_state_backend(StateBackend::Disk(state_in(&tmp, 8 << 10))).unwrap();
    let (mut p, mut out, mut most) = (common::Payments::new(), Vec::new(), 0);
    for e in &events {
        p.process_ref(e, &mut out);
        most = most.max(p.quick.state.buffers.on_disk());
    }
    drop(p);
    spill::set_state_backend(StateBackend::Memory).unwrap();
    assert!(most > 1_000, "at most {most} keys' buffers on disk");
    assert!(out.len() > 3_000, "{} rows", out.len());
    let plan = CrashPlan::Random {
        seed: 21,
        crashes: 8,
    };
    assert_crash_equivalent_on_disk::<common::Payments>(&events, plan, state_in(&tmp, 8 << 10));
}

simplestream::pipeline! {
    /// Each customer's first order.
    pipeline FirstOrders;
    source orders: simplestream_examples::orders::Order, event_time = |o| o.ts, max_delay = 2s;
    first = orders.distinct(customer: String = |o| o.customer.clone());
    sink first;
}

/// `distinct` with its keys on disk: 5,000 customers in 16 KiB, each seen four times,
/// restored at random points, lets through what an uninterrupted memory-backend run
/// lets through (each customer once) and ends with the same set.
#[test]
fn distinct_crash_equivalent_with_most_keys_on_disk() {
    use simplestream::testing::{assert_crash_equivalent_on_disk, CrashPlan};

    let _one = BACKEND.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let plan = CrashPlan::Random {
        seed: 31,
        crashes: 8,
    };
    let events = orders_of(5_000, 20_000);
    assert_crash_equivalent_on_disk::<FirstOrders>(&events, plan, state_in(&tmp, 16 << 10));
}

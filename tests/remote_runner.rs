//! The `orders` program with `--checkpoint-store s3://...` and `kafka://...` against real
//! servers on 127.0.0.1 (moto, tansu): SIGKILL at random moments with byte-identical
//! output, every restart on a "new machine" (a fresh, never-created checkpoint directory:
//! only the remote store remembers), a second writer on the same instance, the server
//! frozen mid-upload, and the checkpoint tools against each store.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::servers::{self, Server};
use support::*;

const BUCKET: &str = "ckpt-bucket";

/// A remote store under test.
enum Remote {
    S3(Server),
    Kafka(Server),
}

impl Remote {
    fn s3() -> Option<Remote> {
        let server = servers::moto()?;
        servers::create_bucket(&server, BUCKET);
        Some(Remote::S3(server))
    }

    fn kafka() -> Option<Remote> {
        servers::tansu().map(Remote::Kafka)
    }

    fn server(&self) -> &Server {
        match self {
            Remote::S3(s) | Remote::Kafka(s) => s,
        }
    }

    /// A store URL of its own for `tag`.
    fn url(&self, tag: &str) -> String {
        match self {
            Remote::S3(_) => format!("s3://{BUCKET}/{tag}"),
            Remote::Kafka(s) => format!("kafka://{}/ckpt-{tag}", s.addr()),
        }
    }

    fn env(&self) -> Vec<(String, String)> {
        match self {
            Remote::S3(s) => servers::s3_env(s),
            Remote::Kafka(_) => Vec::new(),
        }
    }
}

/// `orders` in `dir` with checkpoints at `url` (the checkpoint directory given is one
/// that never exists: nothing may be kept locally).
fn remote_orders(dir: &Path, input: &Path, remote: &Remote, url: &str, extra: &[&str]) -> Command {
    let mut c = Command::new(orders_bin());
    c.arg("--input").arg(input);
    c.arg("--output").arg(dir.join("out.jsonl"));
    c.arg("--checkpoint-store").arg(url);
    c.arg("--checkpoint-dir").arg(dir.join("must-not-exist"));
    c.args(["--instance", "app-instance-1"]);
    c.args(extra);
    c.env_remove("SIMPLESTREAM_FAILPOINT")
        .env_remove("SIMPLESTREAM_FAIL_WRITES")
        .env_remove("RUST_LOG");
    c.envs(remote.env());
    c
}

/// Runs `bin` (the `simplestream` tool, or `orders` for its own `checkpoints` subcommand,
/// which decodes binary checkpoints) against the remote store.
fn tool_of(bin: PathBuf, remote: &Remote, args: &[&str]) -> std::process::Output {
    Command::new(bin)
        .args(args)
        .envs(remote.env())
        .output()
        .expect("run the checkpoint tool")
}

fn tool(remote: &Remote, args: &[&str]) -> std::process::Output {
    tool_of(tool_bin(), remote, args)
}

fn kills() -> usize {
    std::env::var("SIMPLESTREAM_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map(|k: usize| k.min(12))
        .unwrap_or(12)
}

fn crash_scenario(remote: Remote, name: &str, seed: u64, extra: &[&str]) {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("orders.jsonl");
    let text = order_lines(seed, 150_000, 300, 997, 0);
    std::fs::write(&input, &text).unwrap();
    let reference = tmp.path().join("reference");
    let crashed = tmp.path().join("crashed");
    std::fs::create_dir_all(&reference).unwrap();
    std::fs::create_dir_all(&crashed).unwrap();
    // The reference never crashes and keeps its checkpoints in files.
    run_ok(orders(&reference, &input, extra));
    let url = remote.url(name);
    let targets = pause_targets(seed, kills(), 1..145_000);
    let killed = run_with_kills(
        || remote_orders(&crashed, &input, &remote, &url, extra),
        &targets,
    );
    eprintln!("{name}: {killed} kills at events {targets:?}");
    assert_eq!(killed, kills(), "{name}: every kill landed");
    for f in ["out.jsonl", "out.jsonl.late"] {
        assert_same_file(&reference.join(f), &crashed.join(f));
    }
    assert!(
        !crashed.join("must-not-exist").exists(),
        "nothing is kept locally"
    );
    assert!(
        std::fs::read_to_string(crashed.join("out.jsonl"))
            .unwrap()
            .lines()
            .count()
            > 100
    );

    // The tools read the remote store: every checkpoint verifies, and the latest one's
    // customer_stats (shown by the program itself, which decodes binary checkpoints too)
    // match counts computed independently from the input.
    let v = tool(
        &remote,
        &[
            "checkpoints",
            "verify",
            &url,
            "--instance",
            "app-instance-1",
        ],
    );
    assert!(
        v.status.success(),
        "verify: {}{}",
        String::from_utf8_lossy(&v.stdout),
        String::from_utf8_lossy(&v.stderr)
    );
    let l = tool(
        &remote,
        &["checkpoints", "list", &url, "--instance", "app-instance-1"],
    );
    let listing = String::from_utf8_lossy(&l.stdout);
    assert!(
        l.status.success() && listing.contains("(latest)"),
        "{listing}"
    );
    if extra.contains(&"--incremental") {
        assert!(
            listing.contains(".manifest.json"),
            "no incremental checkpoint: {listing}"
        );
    }
    let s = tool_of(
        orders_bin(),
        &remote,
        &["checkpoints", "show", &url, "--instance", "app-instance-1"],
    );
    assert!(
        s.status.success(),
        "show: {}",
        String::from_utf8_lossy(&s.stderr)
    );
    let ck: serde_json::Value = serde_json::from_slice(&s.stdout).unwrap();
    let stats = ck["customer_stats"].as_object().unwrap();
    let expected = expected_stats(&text);
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
            "{name}: {c}: {amount} vs {cents}"
        );
    }
}

#[test]
fn s3_sigkill_background_uploads_json() {
    let Some(r) = Remote::s3() else { return };
    crash_scenario(r, "s3-bg-json", 21, &["--checkpoint-every", "3000"]);
}

#[test]
fn s3_sigkill_inline_uploads_binary() {
    let Some(r) = Remote::s3() else { return };
    crash_scenario(
        r,
        "s3-inline-bin",
        22,
        &[
            "--checkpoint-every",
            "3000",
            "--upload",
            "inline",
            "--codec",
            "binary",
        ],
    );
}

#[test]
fn kafka_sigkill_background_uploads_binary() {
    let Some(r) = Remote::kafka() else { return };
    crash_scenario(
        r,
        "kafka-bg-bin",
        23,
        &["--checkpoint-every", "3000", "--codec", "binary"],
    );
}

#[test]
fn kafka_sigkill_inline_uploads_json() {
    let Some(r) = Remote::kafka() else { return };
    crash_scenario(
        r,
        "kafka-inline-json",
        24,
        &["--checkpoint-every", "3000", "--upload", "inline"],
    );
}

#[test]
fn s3_sigkill_incremental_background_binary() {
    let Some(r) = Remote::s3() else { return };
    crash_scenario(
        r,
        "s3-incremental-bin",
        25,
        &[
            "--checkpoint-every",
            "3000",
            "--codec",
            "binary",
            "--incremental",
        ],
    );
}

#[test]
fn kafka_sigkill_incremental_inline_json() {
    let Some(r) = Remote::kafka() else { return };
    crash_scenario(
        r,
        "kafka-incremental-json",
        26,
        &[
            "--checkpoint-every",
            "3000",
            "--upload",
            "inline",
            "--incremental",
        ],
    );
}

/// A first run killed after output reached its file but before its first regular
/// checkpoint: the start checkpoint (#0) is in the remote store, so the restart (on a
/// "new machine") cuts the output back to empty and ends byte-identical.
fn killed_before_the_first_checkpoint(remote: Remote, name: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("orders.jsonl");
    std::fs::write(&input, order_lines(31, 60_000, 300, 997, 0)).unwrap();
    let (reference, dir) = (tmp.path().join("ref"), tmp.path().join("run"));
    std::fs::create_dir_all(&reference).unwrap();
    std::fs::create_dir_all(&dir).unwrap();
    let extra = ["--checkpoint-every", "100000"];
    run_ok(orders(&reference, &input, &extra));
    let url = remote.url(name);
    let p = spawn_until_paused(
        remote_orders(&dir, &input, &remote, &url, &extra),
        &[50_000],
    );
    assert!(
        p.stderr
            .last()
            .unwrap()
            .contains("0 checkpoint(s) this run"),
        "{:?}",
        p.stderr
    );
    let written = std::fs::metadata(dir.join("out.jsonl")).unwrap().len();
    assert!(written > 0, "{name}: no output reached the file");
    p.kill();
    let s = tool(
        &remote,
        &["checkpoints", "show", &url, "--instance", "app-instance-1"],
    );
    let ck: serde_json::Value = serde_json::from_slice(&s.stdout).unwrap();
    assert_eq!(ck["checkpoint_id"].as_u64(), Some(0), "{ck}");
    assert_eq!(ck["positions"]["output.len"].as_u64(), Some(0), "{ck}");

    let out = run_ok(remote_orders(&dir, &input, &remote, &url, &extra));
    let err = stderr_of(&out);
    assert!(err.contains("restored checkpoint #0 "), "{name}: {err}");
    for f in ["out.jsonl", "out.jsonl.late"] {
        assert_same_file(&reference.join(f), &dir.join(f));
    }
}

#[test]
fn s3_first_run_killed_before_its_first_checkpoint() {
    let Some(r) = Remote::s3() else { return };
    killed_before_the_first_checkpoint(r, "s3-first");
}

#[test]
fn kafka_first_run_killed_before_its_first_checkpoint() {
    let Some(r) = Remote::kafka() else { return };
    killed_before_the_first_checkpoint(r, "kafka-first");
}

/// A second process started on a running instance (here with --from-scratch, as an
/// operator's mistake would): A stands at a pause point after some checkpoints while B
/// runs to the end on the same instance; when A goes on, its next `latest` update must
/// stop it with a clear error, and what the store holds stays restorable.
fn second_writer(remote: Remote, name: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("orders.jsonl");
    std::fs::write(&input, order_lines(5, 60_000, 300, 0, 0)).unwrap();
    let (a_dir, b_dir) = (tmp.path().join("a"), tmp.path().join("b"));
    std::fs::create_dir_all(&a_dir).unwrap();
    std::fs::create_dir_all(&b_dir).unwrap();
    let url = remote.url(name);
    let extra = ["--checkpoint-every", "2000", "--upload", "inline"];
    let a = remote_orders(&a_dir, &input, &remote, &url, &extra);
    let mut a = spawn_until_paused(a, &[10_000]);
    assert!(
        a.stderr.last().unwrap().contains("5 checkpoint(s)"),
        "{:?}",
        a.stderr
    );

    let mut b = remote_orders(&b_dir, &input, &remote, &url, &extra);
    b.arg("--from-scratch");
    let b = b.output().unwrap();
    let eb = String::from_utf8_lossy(&b.stderr);
    assert!(b.status.success(), "{name}: B: {eb}");

    a.resume();
    let (status, ea) = a.finish();
    assert!(
        !status.success(),
        "{name}: A went on over B's checkpoints:\n{ea}"
    );
    assert!(ea.contains("another process"), "{name}: {ea}");
    // The last line says it, once, without a stack of library errors.
    let last = ea.lines().last().unwrap();
    assert!(
        last.contains("checkpoint failed") && last.len() < 500,
        "{last}"
    );
    let v = tool(
        &remote,
        &[
            "checkpoints",
            "verify",
            &url,
            "--instance",
            "app-instance-1",
        ],
    );
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stdout));
    // B's final checkpoint is the latest one: A wrote nothing over it.
    let s = tool_of(
        orders_bin(),
        &remote,
        &["checkpoints", "show", &url, "--instance", "app-instance-1"],
    );
    let ck: serde_json::Value = serde_json::from_slice(&s.stdout).unwrap();
    assert_eq!(ck["positions"]["events"].as_u64(), Some(60_000), "{ck:?}");
}

#[test]
fn s3_second_writer_loses_loudly() {
    let Some(r) = Remote::s3() else { return };
    second_writer(r, "s3-two");
}

#[test]
fn kafka_second_writer_loses_loudly() {
    let Some(r) = Remote::kafka() else { return };
    second_writer(r, "kafka-two");
}

/// The server freezes (SIGSTOP) before the first checkpoint of a run with background
/// uploads: processing goes on past that checkpoint while its upload cannot finish (the
/// program reports the upload in flight at a pause point), and once the server thaws the
/// run finishes with its output unchanged.
fn frozen_server(remote: Remote, name: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("orders.jsonl");
    std::fs::write(&input, order_lines(9, 30_000, 300, 997, 0)).unwrap();
    let (reference, dir) = (tmp.path().join("ref"), tmp.path().join("run"));
    std::fs::create_dir_all(&reference).unwrap();
    std::fs::create_dir_all(&dir).unwrap();
    run_ok(orders(&reference, &input, &[]));
    let url = remote.url(name);
    let c = remote_orders(&dir, &input, &remote, &url, &["--checkpoint-every", "5000"]);
    // 1000: the store holds only the start checkpoint; 7000: past the first regular one
    // (at 5000).
    let mut p = spawn_until_paused(c, &[1_000, 7_000]);
    remote.server().pause();
    p.resume();
    let at = p
        .next_pause()
        .expect("the run went on while the server was frozen");
    remote.server().resume();
    assert!(at.contains("upload in flight: true"), "{name}: {at}");
    p.resume();
    let (status, err) = p.finish();
    assert!(status.success(), "{name}: {err}");
    assert!(err.contains("background uploads"), "{err}");
    assert_same_file(&reference.join("out.jsonl"), &dir.join("out.jsonl"));
}

#[test]
fn s3_server_frozen_mid_upload() {
    let Some(r) = Remote::s3() else { return };
    frozen_server(r, "s3-frozen");
}

#[test]
fn kafka_broker_frozen_mid_upload() {
    let Some(r) = Remote::kafka() else { return };
    frozen_server(r, "kafka-frozen");
}

//! Project automation.
//!
//! - `cargo xtask demo`: the `orders` pipeline with file checkpoints, killed with SIGKILL
//!   part way, restarted, and compared with a run that never crashed.
//! - `cargo xtask disk-crash`: the same with the disk state backend, at any scale.
//! - `cargo xtask test`: everything CI checks (formatting, clippy, all tests), installing
//!   what it needs on a fresh machine.
//! - `cargo xtask playground`: builds the browser playground and serves it on
//!   http://127.0.0.1:8080 (`--port N`; `--build-only --out DIR` writes the site).
#![forbid(unsafe_code)]

mod bench;
mod demo;
mod demo_scale;
mod disk_crash;
mod gen;
mod kafka_bench;
mod kafka_report;
mod playground;
mod scale_bench;
mod stores;
mod tools;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => test(&args[1..]),
        Some("demo") => demo::run(&args[1..]),
        Some("demo-scale") => demo_scale::run(&args[1..]),
        Some("gen") => gen::cli(&args[1..]),
        Some("disk-crash") => disk_crash::run_disk_crash(&args[1..]),
        Some("playground") => playground::cli(&args[1..]),
        Some("bench") => bench::run_bench(&args[1..]),
        Some("store-bench") => stores::run_store_bench(&args[1..]),
        Some("kafka-bench") => kafka_bench::run_kafka_bench(&args[1..]),
        Some("scale-bench") => scale_bench::run_scale_bench(&args[1..]),
        Some("tools") => tools::ensure().map(|d| eprintln!("servers in {}", d.display())),
        _ => {
            eprintln!(
                "usage: cargo xtask <command>\n\n  demo   run the orders pipeline, kill it with SIGKILL, restart it, compare with an uninterrupted run\n  demo-scale  two orders instances in one Kafka consumer group: one killed with SIGKILL, the other takes its partitions over, output compared\n  test   run everything CI checks (fmt, clippy, unit/integration/doc tests, compile-fail tests, crash tests)\n  gen    write sample orders: cargo xtask gen FILE [COUNT] [CUSTOMERS] [SEED]\n  disk-crash  orders with the disk backend killed with SIGKILL K times and restarted, compared with an uninterrupted memory-backend run [--events N] [--kills K] [--memory SIZE] [--dir DIR] [--keep]\n  store-bench  pause and upload time per checkpoint in the file, S3 and Kafka stores, inline and background [--quick]\n  kafka-bench  orders reading from / writing to a Kafka topic vs a file, in one run, 5 interleaved runs each (median, best, CPU) [--quick] [--runs N] [--baseline ORDERS_BIN]\n  scale-bench  orders over a 2-partition topic: one instance vs two sharing it by partition [--quick]\n  tools  install the S3, Kafka and Azure servers the remote-store tests use (target/tools/)\n  bench  throughput, checkpoint-cost and memory benchmarks (bench/); --quick for a short run; report in target/bench/\n  playground  build the browser playground and serve it on http://127.0.0.1:8080 [--port N] [--build-only --out DIR]"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask is in the workspace")
        .to_path_buf()
}

/// Cargo's target directory (`CARGO_TARGET_DIR`, else `target/`): where the release
/// builds that xtask runs are.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

pub fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    // Without the package variables `cargo run` set for xtask: `ring`'s build script
    // reruns when they change, so the release binaries built here and those the tests
    // build (tests/support, which strips them too) would rebuild each other.
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy();
        if k.starts_with("CARGO_PKG_") || k.starts_with("CARGO_MANIFEST_") {
            c.env_remove(&*k);
        }
    }
    c
}

/// Runs a command, echoing it; fails with its exit status.
pub fn run(mut cmd: Command) -> Result<(), String> {
    let shown = format!("{cmd:?}").replace('"', "");
    eprintln!("\n$ {shown}");
    let t = Instant::now();
    let status = cmd
        .status()
        .map_err(|e| format!("cannot start {shown}: {e}"))?;
    eprintln!("  ({:.1}s)", t.elapsed().as_secs_f64());
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{shown}` failed ({status})"))
    }
}

/// Builds the release `orders` example and `simplestream` tool (the benchmarks and demos
/// run them as processes).
pub fn build_release_binaries() -> Result<(), String> {
    let mut build = cargo();
    build.args([
        "build",
        "--release",
        "--example",
        "orders",
        "--bin",
        "simplestream",
    ]);
    run(build)
}

fn has_component(name: &str) -> bool {
    Command::new("rustup")
        .args(["component", "list", "--installed"])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l.starts_with(name))
        })
        .unwrap_or(false)
}

/// Installs what the tests need and is missing.
fn ensure_tools() -> Result<(), String> {
    for comp in ["rustfmt", "clippy"] {
        if !has_component(comp) {
            let mut c = Command::new("rustup");
            c.args(["component", "add", comp]);
            run(c)?;
        }
    }
    Ok(())
}

fn test(args: &[String]) -> Result<(), String> {
    let quick = args.iter().any(|a| a == "--quick");
    let t = Instant::now();
    ensure_tools()?;
    // The remote-store tests start these servers on 127.0.0.1 themselves.
    let servers = tools::ensure()?;
    let mut fmt = cargo();
    fmt.args(["fmt", "--all", "--", "--check"]);
    run(fmt)?;
    // The benchmark harness is a workspace of its own, which `--all` does not reach.
    let mut bench_fmt = cargo();
    bench_fmt
        .args(["fmt", "--all", "--manifest-path"])
        .arg(root().join("bench").join("Cargo.toml"))
        .args(["--", "--check"]);
    run(bench_fmt)?;
    let mut clippy = cargo();
    clippy.args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]);
    run(clippy)?;
    // Public docs build without broken links or stray HTML.
    let mut doc = cargo();
    doc.args([
        "doc",
        "--no-deps",
        "-p",
        "simplestream",
        "-p",
        "simplestream-runtime",
        "-p",
        "simplestream-dsl",
        "-p",
        "simplestream-sqlplan",
        "-p",
        "simplestream-macros",
        "-p",
        "simplestream-examples",
    ]);
    doc.env("RUSTDOCFLAGS", "-D warnings");
    run(doc)?;
    // The crash tests drive the `orders` and `simplestream` binaries this test build makes
    // (dev profile, runtime at opt-level 1): a release build would compile every
    // dependency a second time.
    let mut test = cargo();
    test.args(["test", "--workspace"]);
    test.env("SIMPLESTREAM_TOOLS", &servers);
    // Under `cargo xtask test` a missing server is a failure, not a skip.
    test.env("SIMPLESTREAM_REQUIRE_SERVERS", "1");
    if quick {
        test.env("SIMPLESTREAM_CRASH_KILLS", "10");
    }
    run(test)?;
    // The benchmark harness is a workspace of its own; its test checks the hand loops
    // against the pipelines on out-of-order and late events (about 3 minutes to build).
    let bench = root().join("bench");
    let mut bench_test = cargo();
    bench_test
        .args(["test", "--manifest-path"])
        .arg(bench.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(bench.join("target"));
    run(bench_test)?;
    // The browser playground: WASM build, browser tests (after the workspace tests).
    playground::test()?;
    eprintln!("\nall checks passed in {:.0}s", t.elapsed().as_secs_f64());
    Ok(())
}

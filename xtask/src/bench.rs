//! `cargo xtask bench [--quick] [ARGS...]`: builds the benchmark harness (`bench/`, a
//! separate workspace so the normal build never compiles it or timely) in release mode
//! and runs it. It writes `target/bench/report.json`, `report.md` and `throughput.svg`.
//!
//! ARGS go to the harness (`--only count_by_key,tumbling_5min`, `--events N`, `--runs R`,
//! `--no-memory`, `--no-checkpoints`, `--no-overhead`; `--help` lists them).
//!
//! Before that it builds the `orders` and `sql_orders` examples and the `simplestream`
//! tool (release) and writes their end-to-end input
//! (`cargo xtask gen FILE 2000000 100000 7`, once, under `target/bench/`), which the
//! harness runs end to end against a hand-written program; `--no-e2e` skips that.

use std::path::PathBuf;
use std::process::Command;

use crate::{cargo, root, run, target_dir};

/// The end-to-end input: orders, customers, seed.
const E2E: (u64, u64, u64) = (2_000_000, 100_000, 7);

/// Builds `orders` and writes the input; the harness's arguments for them.
fn e2e_args() -> Result<Vec<String>, String> {
    let mut build = cargo();
    build.args([
        "build",
        "--release",
        "--example",
        "orders",
        "--example",
        "sql_orders",
        "--bin",
        "simplestream",
    ]);
    run(build)?;
    let orders = target_dir()
        .join("release")
        .join("examples")
        .join(format!("orders{}", std::env::consts::EXE_SUFFIX));
    let dir = root().join("target").join("bench");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let (n, customers, seed) = E2E;
    let input = dir.join(format!("e2e-orders-{n}-{customers}-{seed}.jsonl"));
    if !input.exists() {
        eprintln!(
            "\n$ cargo xtask gen {} {n} {customers} {seed}",
            input.display()
        );
        let partial = input.with_extension("partial");
        crate::gen::write_orders(&partial, n, customers, seed)?;
        std::fs::rename(&partial, &input).map_err(|e| e.to_string())?;
    }
    let release = target_dir().join("release");
    let exe = std::env::consts::EXE_SUFFIX;
    Ok(vec![
        "--e2e-input".into(),
        input.display().to_string(),
        "--orders-bin".into(),
        orders.display().to_string(),
        "--sql-bins".into(),
        release
            .join("examples")
            .join(format!("sql_orders{exe}"))
            .display()
            .to_string(),
        release
            .join(format!("simplestream{exe}"))
            .display()
            .to_string(),
    ])
}

pub fn run_bench(args: &[String]) -> Result<(), String> {
    let root = root();
    let bench = root.join("bench");
    // Under CARGO_TARGET_DIR when that is set, so a worktree's build stays in its own.
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(t) => PathBuf::from(t).join("bench"),
        None => bench.join("target"),
    };
    let no_e2e = args.iter().any(|a| a == "--no-e2e");
    let args: Vec<String> = args.iter().filter(|a| *a != "--no-e2e").cloned().collect();
    let e2e = if no_e2e { Vec::new() } else { e2e_args()? };
    let mut build = cargo();
    build
        .args(["build", "--release", "--manifest-path"])
        .arg(bench.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target);
    run(build)?;
    let exe = target
        .join("release")
        .join(format!("bench{}", std::env::consts::EXE_SUFFIX));
    let mut cmd = Command::new(exe);
    cmd.current_dir(&root)
        .arg("--out")
        .arg(root.join("target").join("bench"))
        .arg("--scratch")
        .arg(target.join("scratch"))
        .args(e2e)
        .args(args);
    run(cmd)
}

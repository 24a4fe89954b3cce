//! `cargo xtask bench [--quick] [ARGS...]`: builds the benchmark harness (`bench/`, a
//! separate workspace so the normal build never compiles it or timely) in release mode
//! and runs it. It writes `target/bench/report.json`, `report.md` and `throughput.svg`.
//!
//! ARGS go to the harness (`--only count_by_key,tumbling_5min`, `--events N`, `--runs R`,
//! `--no-memory`, `--no-checkpoints`, `--no-overhead`; `--help` lists them).

use std::process::Command;

use crate::{cargo, root, run};

pub fn run_bench(args: &[String]) -> Result<(), String> {
    let root = root();
    let bench = root.join("bench");
    let target = bench.join("target");
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
        .args(args);
    run(cmd)
}

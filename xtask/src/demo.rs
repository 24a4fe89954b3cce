//! `cargo xtask demo`: checkpoints survive `kill -9`.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::{cargo, gen, root, target_dir};

const EVENTS: u64 = 600_000;
const CUSTOMERS: u64 = 200;

fn orders_bin() -> PathBuf {
    target_dir().join("release/examples/orders")
}

fn orders_cmd(dir: &Path, input: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(orders_bin());
    c.arg("--input").arg(input);
    c.arg("--output").arg(dir.join("out.jsonl"));
    c.arg("--checkpoint-dir").arg(dir.join("ckpt"));
    c.args([
        "--instance",
        "app-instance-1",
        "--checkpoint-every",
        "50000",
    ]);
    c.args(extra);
    c
}

fn latest(dir: &Path) -> Option<serde_json::Value> {
    let bytes = fs::read(dir.join("ckpt/checkpoints/app-instance-1/latest.json")).ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn customer_stats(dir: &Path) -> Result<serde_json::Value, String> {
    let meta = latest(dir).ok_or("no latest.json")?;
    let file = meta["file"].as_str().ok_or("latest.json has no file")?;
    let bytes = fs::read(dir.join("ckpt/checkpoints/app-instance-1").join(file))
        .map_err(|e| e.to_string())?;
    serde_json::from_slice(&bytes).map_err(|e| e.to_string())
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ *b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

pub fn run(_args: &[String]) -> Result<(), String> {
    let mut build = cargo();
    build.args(["build", "--release", "--quiet", "--example", "orders"]);
    crate::run(build)?;

    let base = root().join("target/demo");
    let _ = fs::remove_dir_all(&base);
    let (reference, crashed) = (base.join("reference"), base.join("crashed"));
    fs::create_dir_all(&reference).map_err(|e| e.to_string())?;
    fs::create_dir_all(&crashed).map_err(|e| e.to_string())?;
    let input = base.join("orders.jsonl");
    gen::write_orders(&input, EVENTS, CUSTOMERS, 2024)?;
    println!(
        "\n== 1. {EVENTS} sample orders for {CUSTOMERS} customers in {}",
        input.display()
    );
    let first = fs::read_to_string(&input)
        .map_err(|e| e.to_string())?
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    println!("   first line: {first}");

    println!("\n== 2. A reference run that never crashes");
    let status = orders_cmd(&reference, &input, &["--quiet"])
        .status()
        .map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!("reference run failed: {status}"));
    }

    println!("\n== 3. The same run, killed with SIGKILL part way");
    // The runner's test hook stops it every 1000 events between two checkpoints and
    // waits on stdin. It is killed at the first stop where output written since the last
    // checkpoint has reached the file (uncommitted, so the restart must roll it back):
    // the kill lands on progress, at the same point on any machine.
    let first = EVENTS / 3 + 1_000;
    let stops: Vec<String> = (0..49).map(|k| (first + k * 1_000).to_string()).collect();
    let mut child = orders_cmd(&crashed, &input, &["--quiet"])
        .env("SIMPLESTREAM_PAUSE_AT", stops.join(","))
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let t = Instant::now();
    let stderr = child.stderr.take().ok_or("no stderr")?;
    let mut stdin = child.stdin.take().ok_or("no stdin")?;
    let mut paused = false;
    for line in BufReader::new(stderr).lines().map_while(Result::ok) {
        if !line.starts_with("simplestream: paused at event") {
            continue;
        }
        paused = true;
        let committed = latest(&crashed)
            .and_then(|m| m["positions"]["output.len"].as_u64())
            .unwrap_or(0);
        let len = fs::metadata(crashed.join("out.jsonl"))
            .map(|m| m.len())
            .unwrap_or(0);
        if len > committed || line.contains(&format!("event {}", stops[stops.len() - 1])) {
            break;
        }
        stdin.write_all(b"\n").map_err(|e| e.to_string())?;
    }
    if !paused {
        let status = child.wait().map_err(|e| e.to_string())?;
        return Err(format!("the run ended ({status}) before event {first}"));
    }
    child.kill().map_err(|e| e.to_string())?; // SIGKILL: no chance to clean up
    child.wait().map_err(|e| e.to_string())?;
    let out_len = fs::metadata(crashed.join("out.jsonl"))
        .map(|m| m.len())
        .unwrap_or(0);
    let meta = latest(&crashed).ok_or("no checkpoint")?;
    let committed = meta["positions"]["output.len"].as_u64().unwrap_or(0);
    println!(
        "   killed (kill -9) after {:.2}s; latest.json -> {} ({} events, output committed at {committed} bytes);\n   the output file had {out_len} bytes: {} written after that checkpoint will be rolled back and rewritten",
        t.elapsed().as_secs_f64(),
        meta["file"].as_str().unwrap_or("?"),
        meta["positions"]["events"],
        out_len.saturating_sub(committed)
    );
    let ck = customer_stats(&crashed)?;
    println!("   what the latest checkpoint holds (as in the article):");
    println!("   {{");
    println!("     \"timestamp\": {},", ck["timestamp"]);
    println!("     \"customer_stats\": {{");
    if let Some(map) = ck["customer_stats"].as_object() {
        for (k, v) in map.iter().take(3) {
            println!("       \"{k}\": {v},");
        }
        println!("       ... {} customers in all", map.len());
    }
    println!("     }}, ...");
    println!("   }}");
    let c001_before = ck["customer_stats"]["C001"]["count"].as_u64().unwrap_or(0);

    println!("\n== 4. Restart with the same command: it restores and resumes");
    let status = orders_cmd(&crashed, &input, &[])
        .status()
        .map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!("restarted run failed: {status}"));
    }

    println!("\n== 5. Compare with the run that never crashed");
    let a = fs::read(reference.join("out.jsonl")).map_err(|e| e.to_string())?;
    let b = fs::read(crashed.join("out.jsonl")).map_err(|e| e.to_string())?;
    let lines = a.iter().filter(|&&c| c == b'\n').count();
    println!(
        "   reference: {} bytes, {lines} window results, fnv64 {:016x}",
        a.len(),
        fnv(&a)
    );
    println!(
        "   crashed:   {} bytes, {} window results, fnv64 {:016x}",
        b.len(),
        b.iter().filter(|&&c| c == b'\n').count(),
        fnv(&b)
    );
    if a != b {
        return Err("the outputs differ: something was lost or doubled".into());
    }
    println!("   byte-identical: nothing lost, nothing doubled");
    let after = customer_stats(&crashed)?;
    let reference_stats = customer_stats(&reference)?;
    if after["customer_stats"] != reference_stats["customer_stats"] {
        return Err("customer_stats differ from the reference run".into());
    }
    let c001 = after["customer_stats"]["C001"]["count"]
        .as_u64()
        .unwrap_or(0);
    println!("   customer_stats equal too; C001 had {c001_before} orders at the checkpoint, {c001} at the end");

    println!("\n== 6. C001 places a new order: append it and run again");
    let last_ts = after["max_event_time"].as_i64().unwrap_or(0);
    let line = format!(
        "{{\"customer\":\"C001\",\"amount\":42.0,\"ts\":{}}}\n",
        last_ts + 1000
    );
    fs::OpenOptions::new()
        .append(true)
        .open(&input)
        .and_then(|mut f| f.write_all(line.as_bytes()))
        .map_err(|e| e.to_string())?;
    let status = orders_cmd(&crashed, &input, &["--quiet"])
        .status()
        .map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!("run after append failed: {status}"));
    }
    let now = customer_stats(&crashed)?["customer_stats"]["C001"]["count"]
        .as_u64()
        .unwrap_or(0);
    println!("   C001: {c001} -> {now} orders");
    if now != c001 + 1 {
        return Err(format!("expected {} orders for C001", c001 + 1));
    }
    println!("\nDemo done. Files are in {}. Try: cargo run --release --bin simplestream -- checkpoints list {} --instance app-instance-1", base.display(), crashed.join("ckpt").display());
    Ok(())
}

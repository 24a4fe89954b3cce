//! `cargo xtask disk-crash [--events N] [--customers C] [--kills K] [--memory SIZE]
//! [--checkpoint-every E] [--dir DIR] [--keep]`: the disk state backend's "done when"
//! run. `orders --state-backend disk --state-memory SIZE --incremental` over generated
//! orders (`cargo xtask gen`), killed with SIGKILL at K points spread over the run and
//! restarted each time, must give output byte-identical (`cmp`) to an uninterrupted
//! memory-backend run, and a final state equal to counts computed from the input.
//!
//! Kills land on progress, cycling through three kinds: the first new checkpoint file
//! once the output has reached a share of the reference output's length (inside a
//! checkpoint), the output reaching that length (between checkpoints), and the runner's
//! pause hook at a share of the events (stopped, maybe with an upload in flight).
//! Defaults are a smoke run (300,000 orders of nearly as many customers, 8MiB, 3 kills);
//! files go under DIR (default `target/disk-crash`), deleted at the end unless `--keep`.

mod state;
mod watch;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use watch::{Files, RunReport, Trigger};

use crate::{cargo, gen, root, run, target_dir};

const INSTANCE: &str = "i1";
const SEED: u64 = 11;

struct Opts {
    events: u64,
    customers: u64,
    kills: u64,
    memory: String,
    every: u64,
    dir: PathBuf,
    keep: bool,
}

fn opts(args: &[String]) -> Result<Opts, String> {
    let mut o = Opts {
        events: 300_000,
        customers: 1_000_000_000,
        kills: 3,
        memory: "8MiB".into(),
        every: 0,
        dir: root().join("target/disk-crash"),
        keep: false,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().ok_or(format!("{a} needs a value"));
        let num = |v: &String| v.parse::<u64>().map_err(|e| format!("{a} {v}: {e}"));
        match a.as_str() {
            "--events" => o.events = num(val()?)?,
            "--customers" => o.customers = num(val()?)?,
            "--kills" => o.kills = num(val()?)?,
            "--memory" => o.memory = val()?.clone(),
            "--checkpoint-every" => o.every = num(val()?)?,
            "--dir" => o.dir = PathBuf::from(val()?),
            "--keep" => o.keep = true,
            _ => return Err(format!("disk-crash: unknown argument {a}")),
        }
    }
    if o.every == 0 {
        o.every = (o.events / 20).max(1_000);
    }
    if o.events < 10 * (o.kills + 1) {
        return Err(format!(
            "{} events are too few for {} kills",
            o.events, o.kills
        ));
    }
    Ok(o)
}

/// Marks a directory this command made, so that a later run may empty it.
const MARKER: &str = ".xtask-disk-crash";

/// Empties `dir` of an earlier run's files; refuses a directory that is not one.
fn fresh_dir(dir: &Path) -> Result<(), String> {
    if dir.exists() {
        if !dir.join(MARKER).exists() {
            return Err(format!(
                "{} exists and was not made by disk-crash: give another --dir",
                dir.display()
            ));
        }
        fs::remove_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    fs::write(dir.join(MARKER), b"").map_err(|e| format!("{}: {e}", dir.display()))
}

/// Builds `orders` (release) and copies it into `dir`, so that a rebuild during a long
/// run does not change the program between restarts.
fn orders_copy(dir: &Path) -> Result<PathBuf, String> {
    let mut build = cargo();
    build.args(["build", "--release", "--example", "orders"]);
    run(build)?;
    let exe = format!("orders{}", std::env::consts::EXE_SUFFIX);
    let copy = dir.join(&exe);
    fs::copy(target_dir().join("release/examples").join(&exe), &copy)
        .map_err(|e| format!("copying orders: {e}"))?;
    Ok(copy)
}

/// The `orders` command of one run in `dir` (memory backend unless `disk` is given).
fn orders(bin: &Path, o: &Opts, input: &Path, dir: &Path, disk: bool) -> Command {
    let mut c = Command::new(bin);
    c.arg("--input").arg(input);
    c.arg("--output").arg(dir.join("out.jsonl"));
    c.arg("--checkpoint-dir").arg(dir.join("ckpt"));
    c.args(["--instance", INSTANCE, "--incremental", "--codec", "binary"]);
    c.args(["--checkpoint-every", &o.every.to_string(), "--quiet"]);
    if disk {
        c.args(["--state-backend", "disk", "--state-memory", &o.memory]);
        c.arg("--state-dir").arg(dir.join("state"));
    }
    c
}

/// Kill `i` of `k`: its kind, at a share (i+1)/(k+1) of the events or of the reference
/// output's length.
fn trigger(i: u64, k: u64, events: u64, out_len: u64) -> Trigger {
    let share = |n: u64| (n as u128 * (i + 1) as u128 / (k + 1) as u128) as u64;
    match i % 3 {
        0 => Trigger::NewCheckpointFile(share(out_len)),
        1 => Trigger::OutputBytes(share(out_len)),
        _ => Trigger::Paused(share(events)),
    }
}

fn line(name: &str, r: &RunReport) -> String {
    format!(
        "  {name:<10} {:>9.1} s  peak RSS {:>9} kB  output {:>13} B  {}",
        r.wall.as_secs_f64(),
        r.peak_rss_kb,
        r.output_len,
        r.killed.as_deref().unwrap_or("ran to the end")
    )
}

pub fn run_disk_crash(args: &[String]) -> Result<(), String> {
    let o = opts(args)?;
    let t = Instant::now();
    fresh_dir(&o.dir)?;
    let (reference, crashed) = (o.dir.join("reference"), o.dir.join("crashed"));
    for d in [&reference, &crashed] {
        fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    let bin = orders_copy(&o.dir)?;
    let input = o.dir.join("orders.jsonl");
    eprintln!(
        "\n$ cargo xtask gen {} {} {} {SEED}",
        input.display(),
        o.events,
        o.customers
    );
    let keys = gen::write_orders(&input, o.events, o.customers, SEED)?;
    eprintln!("  {} orders, {keys} distinct customers", o.events);

    let mut report = vec![format!(
        "disk-crash: {} orders, {keys} customers, --state-memory {}, --checkpoint-every {}, {} kills",
        o.events, o.memory, o.every, o.kills
    )];
    let ref_files = Files {
        output: &reference.join("out.jsonl"),
        checkpoints: &reference.join("ckpt/checkpoints").join(INSTANCE),
    };
    eprintln!("\n== reference run (memory backend, never killed)");
    let r = watch::run(
        orders(&bin, &o, &input, &reference, false),
        Trigger::End,
        &ref_files,
    )?;
    report.push(line("reference", &r));
    let out_len = r.output_len;

    let files = Files {
        output: &crashed.join("out.jsonl"),
        checkpoints: &crashed.join("ckpt/checkpoints").join(INSTANCE),
    };
    let mut crashed_wall = Duration::ZERO;
    for i in 0..=o.kills {
        let tr = match i < o.kills {
            true => trigger(i, o.kills, o.events, out_len),
            false => Trigger::End,
        };
        eprintln!("\n== disk backend, run {} ({tr:?})", i + 1);
        let r = watch::run(orders(&bin, &o, &input, &crashed, true), tr, &files)?;
        crashed_wall += r.wall;
        report.push(line(&format!("run {}", i + 1), &r));
        eprintln!("{}", report.last().unwrap());
    }
    report.push(format!(
        "  disk runs together: {:.1} s",
        crashed_wall.as_secs_f64()
    ));
    compare_outputs(&reference, &crashed, &mut report)?;
    eprintln!("\n== final state against counts computed from the input");
    let expected = state::expected(&input)?;
    let ck = state::check(&bin, &crashed.join("ckpt"), INSTANCE, expected)?;
    if ck.wrong_count > 0 {
        return Err(format!(
            "final state: {} customers equal, {} wrong: {:?}",
            ck.equal, ck.wrong_count, ck.wrong
        ));
    }
    report.push(format!(
        "  final state: customer_stats of all {} customers equal the input's counts and sums",
        ck.equal
    ));
    report.push(format!(
        "  total wall time {:.1} s",
        t.elapsed().as_secs_f64()
    ));
    println!("\n{}", report.join("\n"));
    if !o.keep {
        fs::remove_dir_all(&o.dir).map_err(|e| format!("{}: {e}", o.dir.display()))?;
    }
    Ok(())
}

/// `cmp` of every output file of the two runs.
fn compare_outputs(
    reference: &Path,
    crashed: &Path,
    report: &mut Vec<String>,
) -> Result<(), String> {
    for f in ["out.jsonl", "out.jsonl.late", "out.jsonl.dead"] {
        let (a, b) = (reference.join(f), crashed.join(f));
        if !a.exists() && !b.exists() {
            continue;
        }
        let mut cmp = Command::new("cmp");
        cmp.arg(&a).arg(&b);
        run(cmp).map_err(|e| format!("outputs differ: {e}"))?;
        report.push(format!(
            "  {f}: byte-identical ({} bytes, cmp)",
            watch::len(&a)
        ));
    }
    Ok(())
}

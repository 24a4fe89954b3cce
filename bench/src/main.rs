//! SimpleStream's benchmark harness (issue #6). Run it with `cargo xtask bench [--quick]`.
//!
//! ```text
//! bench [--quick] [--events N] [--keys K] [--only a,b] [--out DIR] [--scratch DIR]
//!       [--no-memory] [--no-checkpoints] [--no-incremental] [--no-overhead]
//!       [--no-disk] [--disk-pause-keys 10000000,50000000|none]   # the disk backend's rows
//!       [--disk-cases fits,exceeds,skewed]                     # its throughput rows
//! bench --child WORKLOAD IMPL --events N [--keys K]    # one run; prints peak RSS as JSON
//! bench --child state plain|tracked --keys K            # one state built; peak RSS as JSON
//! bench --profile WORKLOAD IMPL --events N [--keys K]  # one run, for callgrind/perf
//! bench --profile checkpoint [plain-][restore-]json|binary --keys K  # one checkpoint op
//! bench --e2e-hand INPUT OUTPUT [--e2e-keys borrowed|owned|inline]  # an end-to-end hand program
//! ```
//!
//! With `--e2e-input FILE --orders-bin PATH` (which `cargo xtask bench` passes) it also
//! runs the `orders` program end to end against a hand-written program (see `e2e`).
//!
//! For each workload, every implementation runs over the same events, generated once in
//! memory before timing: one warm-up round, then `runs` rounds (implementations
//! interleaved within a round so machine noise hits them alike); the best run is kept,
//! the median is reported too. Results must be equal across implementations (a digest of
//! the output rows or of the final state), or the run fails.

mod checkpoints;
mod disk_state;
mod e2e;
mod events;
mod incremental;
mod inline_key;
mod nexmark_bench;
mod report;
mod tracking_memory;
mod workloads;

use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use serde::Serialize;

use workloads::{registry, Digest, Impl, Workload};

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// A copy of events for a run that takes them by value. Never inlined: `--instructions`
/// leaves it out of the count (callgrind toggles collection off inside it).
#[inline(never)]
pub fn owned_copy<T: Clone>(events: &[T]) -> Vec<T> {
    events.to_vec()
}

/// One warm-up call, then the best (shortest) of `runs` calls.
pub fn best_of(runs: usize, mut f: impl FnMut() -> Duration) -> Duration {
    f();
    (0..runs).map(|_| f()).min().expect("runs > 0")
}

struct Args {
    quick: bool,
    /// Key counts of the disk backend's checkpoint-pause row; empty: no disk rows.
    disk_pause_keys: Vec<u64>,
    /// The disk backend's throughput cases (`disk_state::CASES`); None: all of them.
    disk_cases: Option<Vec<String>>,
    disk: bool,
    events: usize,
    keys: u64,
    runs: usize,
    only: Option<Vec<String>>,
    out: PathBuf,
    scratch: PathBuf,
    memory: bool,
    checkpoints: bool,
    incremental: bool,
    overhead: bool,
    instructions: bool,
    child: Option<(String, String)>,
    profile: Option<(String, String)>,
    e2e_input: Option<PathBuf>,
    orders_bin: Option<PathBuf>,
    /// `sql_orders` and the `simplestream` tool: the SQL end-to-end pair.
    sql_bins: Option<(PathBuf, PathBuf)>,
    e2e_hand: Option<(PathBuf, PathBuf)>,
    e2e_keys: e2e::Keys,
}

fn usage() -> ! {
    eprintln!("usage: bench [--quick] [--events N] [--keys K] [--runs R] [--only a,b] [--out DIR] [--scratch DIR] [--no-memory] [--no-checkpoints] [--no-incremental] [--no-overhead] [--no-disk] [--disk-pause-keys K,K|none] [--disk-cases a,b] [--instructions] [--e2e-input FILE --orders-bin PATH [--sql-bins SQL_ORDERS SIMPLESTREAM]]\n       bench --child|--profile WORKLOAD IMPL [--events N] [--keys K]");
    std::process::exit(2)
}

fn parse_args() -> Args {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut a = Args {
        quick: false,
        disk_pause_keys: Vec::new(),
        disk_cases: None,
        disk: true,
        events: 0,
        keys: 100_000,
        runs: 3,
        only: None,
        out: manifest.join("..").join("target").join("bench"),
        scratch: manifest.join("target").join("scratch"),
        memory: true,
        checkpoints: true,
        incremental: true,
        overhead: true,
        instructions: false,
        child: None,
        profile: None,
        e2e_input: None,
        orders_bin: None,
        sql_bins: None,
        e2e_hand: None,
        e2e_keys: e2e::Keys::Borrowed,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    let val = |i: &mut usize| -> String {
        *i += 1;
        args.get(*i).cloned().unwrap_or_else(|| usage())
    };
    while i < args.len() {
        match args[i].as_str() {
            "--quick" => a.quick = true,
            "--events" => a.events = val(&mut i).parse().unwrap_or_else(|_| usage()),
            "--keys" => a.keys = val(&mut i).parse().unwrap_or_else(|_| usage()),
            "--runs" => a.runs = val(&mut i).parse().unwrap_or_else(|_| usage()),
            "--only" => a.only = Some(val(&mut i).split(',').map(String::from).collect()),
            "--out" => a.out = PathBuf::from(val(&mut i)),
            "--scratch" => a.scratch = PathBuf::from(val(&mut i)),
            "--no-memory" => a.memory = false,
            "--no-checkpoints" => a.checkpoints = false,
            "--no-incremental" => a.incremental = false,
            "--no-overhead" => a.overhead = false,
            "--no-disk" => a.disk = false,
            "--disk-pause-keys" => match val(&mut i).as_str() {
                "none" => a.disk_pause_keys = vec![0],
                v => {
                    a.disk_pause_keys = v
                        .split(',')
                        .map(|k| k.parse().unwrap_or_else(|_| usage()))
                        .collect()
                }
            },
            "--disk-cases" => {
                let cases: Vec<String> = val(&mut i).split(',').map(String::from).collect();
                if let Some(c) = cases
                    .iter()
                    .find(|c| !disk_state::CASES.contains(&c.as_str()))
                {
                    eprintln!(
                        "bench: unknown disk case {c} (cases: {:?})",
                        disk_state::CASES
                    );
                    usage()
                }
                a.disk_cases = Some(cases)
            }
            "--instructions" => a.instructions = true,
            "--child" => a.child = Some((val(&mut i), val(&mut i))),
            "--profile" => a.profile = Some((val(&mut i), val(&mut i))),
            "--e2e-input" => a.e2e_input = Some(PathBuf::from(val(&mut i))),
            "--orders-bin" => a.orders_bin = Some(PathBuf::from(val(&mut i))),
            "--sql-bins" => {
                a.sql_bins = Some((PathBuf::from(val(&mut i)), PathBuf::from(val(&mut i))))
            }
            "--e2e-keys" => a.e2e_keys = e2e::Keys::parse(&val(&mut i)).unwrap_or_else(|| usage()),
            "--e2e-hand" => {
                a.e2e_hand = Some((PathBuf::from(val(&mut i)), PathBuf::from(val(&mut i))))
            }
            "-h" | "--help" => usage(),
            other => {
                eprintln!("bench: unknown argument {other}");
                usage()
            }
        }
        i += 1;
    }
    if a.events == 0 {
        a.events = if a.quick { 2_000_000 } else { 10_000_000 };
    }
    if a.disk_pause_keys.is_empty() {
        a.disk_pause_keys = vec![if a.quick { 1_000_000 } else { 10_000_000 }];
    }
    // `none`: no pause rows.
    a.disk_pause_keys.retain(|&k| k > 0);
    a
}

fn find(name: &str, keys: u64) -> Box<dyn Workload> {
    registry(keys)
        .into_iter()
        .find(|w| w.name() == name)
        .unwrap_or_else(|| {
            eprintln!("bench: unknown workload {name}");
            std::process::exit(2)
        })
}

/// A field of /proc/self/status, in bytes.
fn status_bytes(field: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with(field))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Peak RSS of one run, measured in this (child) process.
#[derive(Debug, Clone, Copy, Serialize, serde::Deserialize)]
struct MemProbe {
    /// RSS right before the run (events already in memory).
    baseline: u64,
    /// Peak RSS (VmHWM) at the end.
    hwm: u64,
    /// True if the peak counter was reset before the run (else `hwm` includes generation).
    reset: bool,
}

fn child(workload: &str, imp: &str, n: usize, keys: u64) {
    let imp = Impl::parse(imp).unwrap_or_else(|| usage());
    let mut w = find(workload, keys);
    w.prepare(n);
    let mut probe = MemProbe {
        baseline: 0,
        hwm: 0,
        reset: false,
    };
    let (_, d) = w.run(imp, &mut || {
        probe.baseline = status_bytes("VmRSS:").unwrap_or(0);
        // "5" resets VmHWM to the current RSS (Linux >= 4.0).
        probe.reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    });
    probe.hwm = status_bytes("VmHWM:").unwrap_or(0);
    std::hint::black_box(d);
    println!("{}", serde_json::to_string(&probe).expect("json"));
}

/// One implementation's result in a workload.
#[derive(Debug, Clone, Serialize)]
pub struct ImplResult {
    pub imp: &'static str,
    pub best_eps: f64,
    pub median_eps: f64,
    pub best_ms: f64,
    pub runs_ms: Vec<f64>,
    pub peak_rss_bytes: Option<u64>,
    pub state_bytes: Option<u64>,
    pub bytes_per_key: Option<f64>,
    /// Instructions per event inside `Workload::run` (callgrind, `--instructions`): a
    /// measure that machine load does not disturb.
    pub instructions_per_event: Option<f64>,
    pub digest_ok: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct WorkloadResult {
    pub name: &'static str,
    pub description: String,
    pub events: usize,
    pub keys: Option<u64>,
    pub rows: u64,
    pub impls: Vec<ImplResult>,
}

impl WorkloadResult {
    pub fn eps(&self, imp: &str) -> Option<f64> {
        self.impls.iter().find(|i| i.imp == imp).map(|i| i.best_eps)
    }
}

fn measure(w: &mut dyn Workload, a: &Args) -> Result<WorkloadResult, String> {
    let t = Instant::now();
    w.prepare(a.events);
    let n = w.len();
    println!(
        "\n== {} ({} events, generated in {:.1}s): {}",
        w.name(),
        n,
        t.elapsed().as_secs_f64(),
        w.describe()
    );
    let impls = w.impls();
    let mut runs: Vec<Vec<Duration>> = vec![Vec::new(); impls.len()];
    let mut digests: Vec<Option<Digest>> = vec![None; impls.len()];
    let mut ok = vec![true; impls.len()];
    // Round 0 is the warm-up.
    for round in 0..=a.runs {
        for (i, &imp) in impls.iter().enumerate() {
            let (el, d) = w.run(imp, &mut || {});
            match digests[i] {
                None => digests[i] = Some(d),
                Some(prev) if prev != d => ok[i] = false,
                _ => {}
            }
            if round > 0 {
                runs[i].push(el);
            }
        }
    }
    w.release();
    let reference = digests[0].expect("ran");
    let mut problems = Vec::new();
    for (i, &imp) in impls.iter().enumerate() {
        let d = digests[i].expect("ran");
        if d != reference || !ok[i] {
            ok[i] = false;
            problems.push(format!(
                "{}: {} gives {:?}, {} gives {:?}",
                w.name(),
                impls[0].name(),
                reference,
                imp.name(),
                d
            ));
        }
    }
    println!(
        "   results equal across implementations: {} (rows {}, late {}, digest {:016x})",
        if problems.is_empty() { "yes" } else { "NO" },
        reference.rows,
        reference.late,
        reference.check
    );
    let mut out = Vec::new();
    for (i, &imp) in impls.iter().enumerate() {
        let mut v = runs[i].clone();
        v.sort();
        let best = v[0];
        let median = v[v.len() / 2];
        out.push(ImplResult {
            imp: imp.name(),
            best_eps: n as f64 / best.as_secs_f64(),
            median_eps: n as f64 / median.as_secs_f64(),
            best_ms: ms(best),
            runs_ms: runs[i].iter().map(|d| ms(*d)).collect(),
            peak_rss_bytes: None,
            state_bytes: None,
            bytes_per_key: None,
            instructions_per_event: None,
            digest_ok: ok[i],
        });
    }
    let hand = out[0].best_eps;
    for r in &out {
        println!(
            "   {:<9} {:>7.2} M events/s (median {:>6.2})  {:>5.2}x hand   runs {}",
            r.imp,
            r.best_eps / 1e6,
            r.median_eps / 1e6,
            r.best_eps / hand,
            r.runs_ms
                .iter()
                .map(|m| format!("{m:.0}ms"))
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    let result = WorkloadResult {
        name: w.name(),
        description: w.describe(),
        events: n,
        keys: w.keys(),
        rows: reference.rows,
        impls: out,
    };
    if problems.is_empty() {
        Ok(result)
    } else {
        Err(problems.join("\n"))
    }
}

fn memory(res: &mut WorkloadResult, a: &Args) {
    let exe = std::env::current_exe().expect("current exe");
    for r in &mut res.impls {
        let o = Command::new(&exe)
            .args(["--child", res.name, r.imp])
            .args([
                "--events",
                &a.events.to_string(),
                "--keys",
                &a.keys.to_string(),
            ])
            .output();
        let probe: Option<MemProbe> = o.ok().and_then(|o| {
            let s = String::from_utf8_lossy(&o.stdout);
            s.lines().last().and_then(|l| serde_json::from_str(l).ok())
        });
        if let Some(p) = probe {
            r.peak_rss_bytes = Some(p.hwm);
            if p.reset {
                let state = p.hwm.saturating_sub(p.baseline);
                r.state_bytes = Some(state);
                r.bytes_per_key = res.keys.map(|k| state as f64 / k as f64);
            }
        }
        println!(
            "   memory {:<9} peak RSS {:>7.1} MB, run's own peak {:>7.1} MB{}",
            r.imp,
            r.peak_rss_bytes.unwrap_or(0) as f64 / 1e6,
            r.state_bytes.unwrap_or(0) as f64 / 1e6,
            r.bytes_per_key
                .map(|b| format!(" ({b:.0} B per key)"))
                .unwrap_or_default()
        );
    }
}

/// Instructions per event of each implementation, counted by callgrind inside
/// `Workload::run` only (event generation excluded), over at most 1 M events.
fn instructions(res: &mut WorkloadResult, a: &Args) {
    let exe = std::env::current_exe().expect("current exe");
    let n = a.events.min(1_000_000);
    for r in &mut res.impls {
        let o = Command::new("valgrind")
            .args([
                "--tool=callgrind",
                "--callgrind-out-file=/dev/null",
                "--collect-atstart=no",
                "--toggle-collect=*Workload>::run",
                "--toggle-collect=*owned_copy*",
            ])
            .arg(&exe)
            .args(["--profile", res.name, r.imp])
            .args(["--events", &n.to_string(), "--keys", &a.keys.to_string()])
            .output();
        let collected = o.ok().and_then(|o| {
            let s = String::from_utf8_lossy(&o.stderr);
            s.lines()
                .find_map(|l| l.split("Collected :").nth(1).map(|v| v.trim().to_string()))
                .and_then(|v| v.parse::<u64>().ok())
        });
        r.instructions_per_event = collected.map(|c| c as f64 / n as f64);
        match r.instructions_per_event {
            Some(i) => println!(
                "   callgrind {:<9} {:>8.1} instructions per event ({} events)",
                r.imp, i, n
            ),
            None => println!(
                "   callgrind {:<9} unavailable (is valgrind installed?)",
                r.imp
            ),
        }
    }
}

fn main() -> ExitCode {
    let a = parse_args();
    if let Some((input, output)) = &a.e2e_hand {
        return e2e::hand_main(a.e2e_keys, input.clone(), output.clone());
    }
    if let Some((w, i)) = &a.child {
        match w.as_str() {
            "state" => tracking_memory::child(i, a.keys),
            _ => child(w, i, a.events, a.keys),
        }
        return ExitCode::SUCCESS;
    }
    if let Some((w, i)) = &a.profile {
        if w == "checkpoint" {
            checkpoints::profile(i, a.keys);
            return ExitCode::SUCCESS;
        }
        let imp = Impl::parse(i).unwrap_or_else(|| usage());
        let mut wl = find(w, a.keys);
        wl.prepare(a.events);
        let (el, d) = wl.run(imp, &mut || {});
        println!(
            "{w} {i}: {:.2} M events/s, {d:?}",
            wl.len() as f64 / el.as_secs_f64() / 1e6
        );
        return ExitCode::SUCCESS;
    }
    let started = Instant::now();
    let machine = report::Machine::probe();
    println!(
        "SimpleStream benchmarks{}: {} events per workload, {} keys, best of {} runs after a warm-up",
        if a.quick { " (quick)" } else { "" },
        a.events,
        a.keys,
        a.runs
    );
    println!(
        "machine: {} x {}, load average at start {}",
        machine.nproc, machine.cpu, machine.loadavg_start
    );
    std::fs::create_dir_all(&a.scratch).ok();
    let mut failures = Vec::new();
    let mut results = Vec::new();
    let mut end_to_end = None;
    if let (Some(input), Some(orders)) = (&a.e2e_input, &a.orders_bin) {
        println!(
            "\n== end to end: the orders program vs a hand-written program over {}",
            input.display()
        );
        let sql = a.sql_bins.as_ref().map(|(c, t)| (c.as_path(), t.as_path()));
        match e2e::compare(orders, sql, input, &a.scratch, a.runs) {
            Ok(r) => {
                println!(
                    "   orders at {:.2}x the hand program's speed (wall, best of {}), {:.2}x (CPU time)",
                    r.ratio_orders_to_hand, r.runs, r.ratio_cpu_orders_to_hand
                );
                if let Some(s) = &r.sql {
                    println!(
                        "   simplestream sql at {:.2}x the compiled SQL pipeline's speed (wall, best of {})",
                        s.ratio_interpreted_to_compiled, r.runs
                    );
                }
                end_to_end = Some(r);
            }
            Err(e) => {
                eprintln!("   {e}");
                failures.push(e);
            }
        }
    }
    for mut w in registry(a.keys) {
        if let Some(only) = &a.only {
            if !only.iter().any(|o| o == w.name()) {
                continue;
            }
        }
        match measure(w.as_mut(), &a) {
            Ok(mut r) => {
                if a.memory {
                    memory(&mut r, &a);
                }
                if a.instructions {
                    instructions(&mut r, &a);
                }
                results.push(r);
            }
            Err(e) => {
                eprintln!("   RESULTS DIFFER:\n{e}");
                failures.push(e);
            }
        }
    }
    let mut costs = Vec::new();
    if a.checkpoints {
        println!("\n== checkpoint costs (String-key count+sum state; plain = the same map serialized directly)");
        let key_counts: &[u64] = &[10_000, 100_000, 1_000_000];
        costs = checkpoints::costs(key_counts, a.runs, &a.scratch, a.instructions);
    }
    let mut overhead = None;
    if a.overhead {
        println!("\n== checkpoint overhead: count_by_key, {} keys, binary codec, FileStore, a checkpoint every 1 s", a.keys);
        let ev = events::events(4, a.events.min(2_000_000), a.keys);
        let target = Duration::from_secs(if a.quick { 2 } else { 8 });
        let o = checkpoints::overhead(&ev, a.keys, target, a.runs, &a.scratch);
        println!(
            "   {:.2} M events/s without, {:.2} M with (median of {}): overhead {:.1} % (pauses: {:.2} % of the time); {} checkpoints of {} B, pause p50 {:.2} ms, max {:.2} ms",
            o.eps_without / 1e6,
            o.eps_with_1s_checkpoints / 1e6,
            o.runs,
            o.overhead_pct,
            o.pause_share_pct,
            o.checkpoints,
            o.checkpoint_bytes,
            o.pause_ms_p50,
            o.pause_ms_max
        );
        overhead = Some(o);
    }
    let mut incremental = Vec::new();
    let mut tracking = Vec::new();
    if a.incremental {
        println!("\n== incremental checkpoints (String-key count+sum state, 1 % of keys updated between checkpoints)");
        let key_counts: &[u64] = if a.quick {
            &[1_000_000]
        } else {
            &[1_000_000, 10_000_000]
        };
        incremental = incremental::costs(key_counts, a.runs, &a.scratch);
        if a.memory {
            println!("\n== change tracking memory (String-key count+sum state, with and without per-entry stamps)");
            tracking = tracking_memory::measure_all(key_counts);
        }
    }
    let mut disk = None;
    if a.disk {
        println!(
            "\n== disk state backend (String-key count + sum; memory and disk backends in turn)"
        );
        disk = Some(disk_state::measure(
            a.quick,
            a.disk_cases.as_deref(),
            &a.disk_pause_keys,
            a.runs,
            &a.scratch,
        ));
    }
    let machine = machine.finish();
    let rep = report::Report {
        quick: a.quick,
        events: a.events,
        keys: a.keys,
        runs: a.runs,
        machine,
        seconds: started.elapsed().as_secs_f64(),
        end_to_end,
        workloads: results,
        checkpoints: costs,
        overhead,
        incremental,
        tracking,
        disk_state: disk,
        failures: failures.clone(),
    };
    match rep.write(&a.out) {
        Ok(files) => {
            println!("\n{}", rep.markdown());
            for f in files {
                println!("wrote {}", f.display());
            }
        }
        Err(e) => {
            eprintln!("bench: cannot write the report: {e}");
            return ExitCode::FAILURE;
        }
    }
    println!("total {:.0}s", started.elapsed().as_secs_f64());
    if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!("bench: results differ between implementations (see above)");
        ExitCode::FAILURE
    }
}

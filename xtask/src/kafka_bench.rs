//! `cargo xtask kafka-bench [--quick] [--runs N] [--baseline BIN]`: the `orders`
//! program reading from a Kafka topic against reading the same events from a file, and
//! writing its output to a topic against writing it to a file, in one run (tansu on
//! 127.0.0.1, in memory).
//!
//! The events are produced to a 4-partition topic before any run starts; every run has
//! file checkpoints (binary) every 100 000 events, so the only difference is where
//! events come from or where rows go. Each configuration runs `--runs` times (5),
//! interleaved, so a load that comes and goes hits every configuration alike. Per
//! configuration the report gives the median and best events/s (the program's own
//! summary, `this run, N/s`), the CPU seconds of the program (`/usr/bin/time`) and of
//! the broker (`/proc`) per event, and the ratios against file -> file: in wall time,
//! and in events per CPU second of program + broker, which a busy machine moves far
//! less. Writes `target/bench/kafka.md`.
//!
//! `--baseline BIN` also runs another build of `orders` (file -> file, Kafka -> file and
//! file -> Kafka) interleaved with this one's: a before/after comparison over the same
//! topic in the same minutes.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::Command;

use rskafka::client::partition::{Compression, UnknownTopicHandling};
use rskafka::client::ClientBuilder;
use rskafka::record::Record;

use crate::kafka_report::{report, Config, Measured, Shape};
use crate::scale_bench::{cpu_of, load, time_cpu};
use crate::stores::{fresh_dir, release_orders, start_tansu};
use crate::{root, tools};

const PARTITIONS: i32 = 4;
pub const RUNS: usize = 5;

/// What the command line asks for.
struct Options {
    quick: bool,
    runs: usize,
    baseline: Option<PathBuf>,
}

fn options(args: &[String]) -> Result<Options, String> {
    let value = |flag: &str| args.iter().position(|a| a == flag).map(|i| args.get(i + 1));
    let baseline = match value("--baseline") {
        Some(Some(b)) => Some(PathBuf::from(b)),
        Some(None) => return Err("--baseline needs the path of another orders binary".into()),
        None => None,
    };
    let runs = match value("--runs") {
        Some(Some(n)) => n
            .parse()
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| format!("--runs {n}: expected a number of runs, 1 or more"))?,
        Some(None) => return Err("--runs needs a number".into()),
        None => RUNS,
    };
    Ok(Options {
        quick: args.iter().any(|a| a == "--quick"),
        runs,
        baseline,
    })
}

pub fn run_kafka_bench(args: &[String]) -> Result<(), String> {
    let opts = options(args)?;
    let bin = tools::ensure()?;
    crate::build_release_binaries()?;
    let work = fresh_dir("target/bench/kafka")?;
    let (tansu, port) = start_tansu(&bin)?;
    let events: u64 = if opts.quick { 300_000 } else { 2_000_000 };
    let input = work.join("orders.jsonl");
    crate::gen::write_orders(&input, events, 10_000, 7)?;
    let addr = format!("127.0.0.1:{port}");
    fill_topic(&addr, "bench-in", &input, PARTITIONS, |i, _| {
        i % PARTITIONS as usize
    })?;
    let configs = configs(&addr, &input, opts.baseline.as_deref());
    let mut runs: Vec<Vec<Measured>> = vec![Vec::new(); configs.len()];
    for run in 0..opts.runs {
        for (i, c) in configs.iter().enumerate() {
            let dir = work.join(format!("run-{run}-{i}"));
            let m = measure(c, &dir, run, tansu.pid())?;
            eprintln!(
                "{} (run {}): {:.0} events/s, orders {:.2} CPU s, broker {:.2} CPU s, load {:.1}",
                c.name(),
                run + 1,
                m.eps,
                m.cpu,
                m.broker,
                m.load
            );
            runs[i].push(m);
            // The output files add up to gigabytes over the runs.
            std::fs::remove_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
    }
    let shape = Shape {
        quick: opts.quick,
        events,
        partitions: PARTITIONS,
        runs: opts.runs,
    };
    let md = report(&shape, &configs, &runs, opts.baseline.as_deref());
    let out = root().join("target/bench/kafka.md");
    std::fs::write(&out, &md).map_err(|e| format!("writing {}: {e}", out.display()))?;
    println!("{md}");
    Ok(())
}

/// This build's three configurations, then the baseline's.
fn configs(addr: &str, input: &Path, baseline: Option<&Path>) -> Vec<Config> {
    let kafka_in = format!("kafka://{addr}/bench-in");
    let file = input.display().to_string();
    let mut builds = vec![(release_orders(), false, "bench-out")];
    if let Some(b) = baseline {
        builds.push((b.to_path_buf(), true, "bench-base-out"));
    }
    let mut out = Vec::new();
    for (bin, baseline, topic) in builds {
        let config = |from, input: &str, to: Option<&str>| Config {
            from,
            input: input.to_string(),
            out_topic: to.map(|t| format!("kafka://{addr}/{t}")),
            bin: bin.clone(),
            baseline,
        };
        out.push(config("file", &file, None));
        out.push(config("kafka", &kafka_in, None));
        out.push(config("file", &file, Some(topic)));
    }
    out
}

/// One run of `c` in `dir`; output topics get a name of their own per run.
fn measure(c: &Config, dir: &Path, run: usize, broker: u32) -> Result<Measured, String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let output = match &c.out_topic {
        Some(t) => format!("{t}-{run}"),
        None => dir.join("out.jsonl").display().to_string(),
    };
    let broker_before = cpu_of(broker);
    let (eps, cpu) = run_orders(&c.bin, dir, &c.input, &output)?;
    Ok(Measured {
        eps,
        cpu,
        broker: cpu_of(broker) - broker_before,
        load: load(),
    })
}

/// Runs `orders`; its events/s and CPU seconds.
fn run_orders(orders: &Path, dir: &Path, input: &str, output: &str) -> Result<(f64, f64), String> {
    let out = Command::new("/usr/bin/time")
        .args(["-f", "cpu %U %S"])
        .arg(orders)
        .args(["--input", input, "--output", output])
        .arg("--checkpoint-dir")
        .arg(dir.join("ckpt"))
        .args(["--instance", "bench", "--codec", "binary"])
        .args(["--checkpoint-every", "100000"])
        .output()
        .map_err(|e| format!("running orders: {e}"))?;
    let err = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(format!("orders {input} -> {output} failed:\n{err}"));
    }
    let line = err
        .lines()
        .rev()
        .find(|l| l.contains("this run, "))
        .ok_or_else(|| format!("no summary line in:\n{err}"))?;
    let i = line.find("this run, ").unwrap() + "this run, ".len();
    let rest = &line[i..];
    let eps = rest[..rest.find("/s").unwrap_or(0)]
        .parse()
        .map_err(|e| format!("reading events/s in {line:?}: {e}"))?;
    Ok((eps, time_cpu(&err)))
}

/// Creates `topic` with `partitions` partitions; line `i` of `input` goes to partition
/// `pick(i, line)`.
pub fn fill_topic(
    addr: &str,
    topic: &str,
    input: &Path,
    partitions: i32,
    pick: impl Fn(usize, &str) -> usize,
) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let e = |e: rskafka::client::error::Error| format!("filling {topic}: {e}");
    let client = rt
        .block_on(ClientBuilder::new(vec![addr.to_string()]).build())
        .map_err(e)?;
    let c = client.controller_client().map_err(e)?;
    rt.block_on(c.create_topic(topic, partitions, 1, 5_000))
        .map_err(e)?;
    let mut parts = Vec::new();
    for p in 0..partitions {
        parts.push(
            rt.block_on(client.partition_client(topic, p, UnknownTopicHandling::Retry))
                .map_err(e)?,
        );
    }
    let f = std::fs::File::open(input).map_err(|e| e.to_string())?;
    let mut batches: Vec<Vec<Record>> = (0..partitions).map(|_| Vec::new()).collect();
    let flush = |p: usize, b: &mut Vec<Record>| -> Result<(), String> {
        let recs = std::mem::take(b);
        rt.block_on(parts[p].produce(recs, Compression::NoCompression))
            .map(|_| ())
            .map_err(e)
    };
    for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
        let line = line.map_err(|e| e.to_string())?;
        let p = pick(i, &line);
        batches[p].push(Record {
            key: None,
            value: Some(line.into_bytes()),
            headers: BTreeMap::new(),
            timestamp: Default::default(),
        });
        if batches[p].len() == 5_000 {
            flush(p, &mut batches[p])?;
        }
    }
    for (p, b) in batches.iter_mut().enumerate() {
        flush(p, b)?;
    }
    Ok(())
}

//! `cargo xtask kafka-bench [--quick]`: the `orders` program reading from a Kafka topic
//! against reading the same events from a file, and writing its output to a topic
//! against writing it to a file, in one run (tansu on 127.0.0.1, in memory).
//!
//! The events are produced to a 4-partition topic before any run starts; every run has
//! file checkpoints (binary) every 100 000 events, so the only difference is where events come from
//! or where rows go. Events/s is the program's own summary (`this run, N/s`); each
//! configuration runs 3 times and the best counts. Where the time goes: the program's
//! CPU seconds (`/usr/bin/time`) and the broker's (`/proc`) in the best run, per
//! event. Writes `target/bench/kafka.md`.
//!
//! `--baseline BIN` also runs another build of `orders` (file -> file, Kafka -> file and
//! file -> Kafka) interleaved with this one's: a before/after comparison over the same
//! topic in the same minutes.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::BufRead;
use std::path::Path;
use std::process::Command;

use rskafka::client::partition::{Compression, UnknownTopicHandling};
use rskafka::client::ClientBuilder;
use rskafka::record::Record;

use crate::scale_bench::{cpu_of, load, time_cpu};
use crate::stores::{fresh_dir, release_orders, start_tansu};
use crate::{root, tools};

const PARTITIONS: i32 = 4;
const RUNS: usize = 3;

pub fn run_kafka_bench(args: &[String]) -> Result<(), String> {
    let quick = args.iter().any(|a| a == "--quick");
    let baseline = args
        .iter()
        .position(|a| a == "--baseline")
        .map(|i| {
            args.get(i + 1)
                .map(std::path::PathBuf::from)
                .ok_or("--baseline needs the path of another orders binary")
        })
        .transpose()?;
    let bin = tools::ensure()?;
    crate::build_release_binaries()?;
    let orders = release_orders();
    let work = fresh_dir("target/bench/kafka")?;
    let (tansu, port) = start_tansu(&bin)?;
    let events: u64 = if quick { 300_000 } else { 2_000_000 };
    let input = work.join("orders.jsonl");
    crate::gen::write_orders(&input, events, 10_000, 7)?;
    let addr = format!("127.0.0.1:{port}");
    fill_topic(&addr, "bench-in", &input, PARTITIONS, |i, _| {
        i % PARTITIONS as usize
    })?;
    let kafka = |t: &str| format!("kafka://{addr}/{t}");
    let file = input.display().to_string();
    let mut configs = vec![
        ("file", "file", file.clone(), None, orders.clone()),
        ("kafka", "file", kafka("bench-in"), None, orders.clone()),
        (
            "file",
            "kafka",
            file.clone(),
            Some("bench-out"),
            orders.clone(),
        ),
    ];
    if let Some(b) = &baseline {
        configs.push(("file", "file", file.clone(), None, b.clone()));
        configs.push(("kafka", "file", kafka("bench-in"), None, b.clone()));
        configs.push((
            "file",
            "kafka",
            file.clone(),
            Some("bench-base-out"),
            b.clone(),
        ));
    }
    let mut best = BTreeMap::new();
    for run in 0..RUNS {
        for (i, (from, to, input, topic, bin)) in configs.iter().enumerate() {
            let dir = work.join(format!("{from}-{to}-{run}-{i}"));
            std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
            let output = match topic {
                Some(t) => kafka(&format!("{t}-{run}")),
                None => dir.join("out.jsonl").display().to_string(),
            };
            let broker_before = cpu_of(tansu.pid());
            let (eps, cpu) = run_orders(bin, &dir, input, &output)?;
            let m = Measured {
                eps,
                cpu,
                broker: cpu_of(tansu.pid()) - broker_before,
                load: load(),
            };
            eprintln!(
                "{from} -> {to}{} (run {}): {eps:.0} events/s, orders {cpu:.2} CPU s, broker {:.2} CPU s",
                if i >= 3 { " (baseline)" } else { "" },
                run + 1,
                m.broker
            );
            let e = best.entry(i).or_insert(Measured::default());
            if m.eps > e.eps {
                *e = m;
            }
        }
    }
    let base = best[&0].eps;
    let mut md = String::new();
    writeln!(md, "# Kafka as input and output\n\n`cargo xtask kafka-bench{}`: the release `orders` program over {events} events (10 000 customers), binary file checkpoints every 100 000 events, tansu on 127.0.0.1 with in-memory storage, input topic with {PARTITIONS} partitions filled before the runs, output topic created by the program (1 partition). Best of {RUNS} runs each, interleaved. CPU: user + system seconds of `orders` and of the broker during that run, in microseconds per event.\n", if quick { " --quick" } else { "" }).unwrap();
    writeln!(
        md,
        "| input | output | events/s | vs file to file | target | orders CPU µs/event | broker CPU µs/event | load |"
    )
    .unwrap();
    writeln!(md, "|---|---|---:|---:|---:|---:|---:|---:|").unwrap();
    for (i, (from, to, _, _, _)) in configs.iter().enumerate() {
        let m = best[&i];
        let r = m.eps / if i >= 3 { best[&3].eps } else { base };
        let to = if i >= 3 {
            format!("{to} (baseline)")
        } else {
            to.to_string()
        };
        let target = if i == 0 || i == 3 {
            "-".to_string()
        } else {
            format!(">= 0.7x {}", if r >= 0.7 { "met" } else { "**missed**" })
        };
        let per_event = |s: f64| s * 1e6 / events as f64;
        writeln!(
            md,
            "| {from} | {to} | {:.0} | {r:.2}x | {target} | {:.2} | {:.2} | {:.1} |",
            m.eps,
            per_event(m.cpu),
            per_event(m.broker),
            m.load
        )
        .unwrap();
    }
    if let Some(b) = &baseline {
        writeln!(
            md,
            "\nBaseline rows: `{}`, its ratios against its own file -> file.",
            b.display()
        )
        .unwrap();
    }
    let out = root().join("target/bench/kafka.md");
    std::fs::write(&out, &md).map_err(|e| format!("writing {}: {e}", out.display()))?;
    println!("{md}");
    Ok(())
}

/// One configuration's best run.
#[derive(Debug, Default, Clone, Copy)]
struct Measured {
    eps: f64,
    /// CPU seconds of `orders`.
    cpu: f64,
    /// CPU seconds of the broker.
    broker: f64,
    load: f64,
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

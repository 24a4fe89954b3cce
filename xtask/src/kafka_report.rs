//! The report of `cargo xtask kafka-bench`: medians and bests over interleaved runs,
//! ratios against file -> file in wall time and in CPU, every run listed.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The bench's size and shape, for the report's heading.
pub struct Shape {
    pub quick: bool,
    pub events: u64,
    pub partitions: i32,
    pub runs: usize,
}

/// One configuration: where events come from and rows go, and which build runs it.
pub struct Config {
    pub from: &'static str,
    pub input: String,
    /// The output topic's URL (a run's number is appended); `None`: a file.
    pub out_topic: Option<String>,
    pub bin: PathBuf,
    pub baseline: bool,
}

impl Config {
    pub fn to(&self) -> &'static str {
        if self.out_topic.is_some() {
            "kafka"
        } else {
            "file"
        }
    }

    pub fn name(&self) -> String {
        let build = if self.baseline { " (baseline)" } else { "" };
        format!("{} -> {}{build}", self.from, self.to())
    }
}

/// One run.
#[derive(Debug, Default, Clone, Copy)]
pub struct Measured {
    pub eps: f64,
    /// CPU seconds of `orders`.
    pub cpu: f64,
    /// CPU seconds of the broker during the run.
    pub broker: f64,
    /// One-minute load average after the run.
    pub load: f64,
}

/// A configuration's runs summed up; CPU in microseconds per event.
struct Summary {
    median_eps: f64,
    best_eps: f64,
    orders_us: f64,
    broker_us: f64,
    total_us: f64,
    load: (f64, f64),
}

fn summary(runs: &[Measured], events: u64) -> Summary {
    let us = |s: f64| s * 1e6 / events as f64;
    let of = |f: fn(&Measured) -> f64| median(runs.iter().map(f).collect());
    let loads = runs.iter().map(|m| m.load);
    Summary {
        median_eps: of(|m| m.eps),
        best_eps: runs.iter().map(|m| m.eps).fold(0.0, f64::max),
        orders_us: us(of(|m| m.cpu)),
        broker_us: us(of(|m| m.broker)),
        total_us: us(of(|m| m.cpu + m.broker)),
        load: (
            loads.clone().fold(f64::INFINITY, f64::min),
            loads.fold(0.0, f64::max),
        ),
    }
}

/// The middle value (the mean of the two middle ones for an even count).
pub fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The markdown report. `runs[i]` are the runs of `configs[i]`, in order; each build's
/// first configuration is its file -> file, what its others are compared with.
pub fn report(
    shape: &Shape,
    configs: &[Config],
    runs: &[Vec<Measured>],
    baseline: Option<&Path>,
) -> String {
    let mut md = heading(shape);
    let sums: Vec<Summary> = runs.iter().map(|r| summary(r, shape.events)).collect();
    for (i, c) in configs.iter().enumerate() {
        let base = if c.baseline { 3 } else { 0 };
        md.push_str(&row(
            c,
            &sums[i],
            &sums[base],
            &runs[i],
            &runs[base],
            i == base,
        ));
    }
    per_run_table(&mut md, configs, runs);
    if let Some(b) = baseline {
        writeln!(
            md,
            "\nBaseline rows: `{}`, its ratios against its own file -> file.",
            b.display()
        )
        .unwrap();
    }
    md
}

fn heading(shape: &Shape) -> String {
    let mut md = String::new();
    writeln!(md, "# Kafka as input and output\n\n`cargo xtask kafka-bench{}{}`: the release `orders` program over {} events (10 000 customers), binary file checkpoints every 100 000 events, tansu on 127.0.0.1 with in-memory storage, input topic with {} partitions filled before the runs, output topic created by the program (1 partition). {} interleaved runs of each configuration.\n",
        if shape.quick { " --quick" } else { "" },
        if shape.runs == crate::kafka_bench::RUNS { String::new() } else { format!(" --runs {}", shape.runs) },
        shape.events, shape.partitions, shape.runs).unwrap();
    md.push_str("Wall: events/s as `orders` reports it, median and best, and their ratio to file -> file of the same build (median to median, best to best); *per run* is the range of the ratio to the file -> file run of the same round. CPU: user + system of `orders` and of the broker during a run, µs per event, medians; *CPU ratio* is events per CPU second (orders + broker) against file -> file: the wall ratio on a machine with a core to spare for each. The target (>= 0.7x) is judged on the median wall ratio.\n\n");
    md.push_str("| input | output | events/s median | best | wall ratio median (best) | per run | orders CPU µs/event | broker CPU µs/event | CPU ratio | target | load |\n");
    md.push_str("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    md
}

fn row(
    c: &Config,
    s: &Summary,
    base: &Summary,
    runs: &[Measured],
    base_runs: &[Measured],
    is_base: bool,
) -> String {
    let wall = s.median_eps / base.median_eps;
    let best = s.best_eps / base.best_eps;
    let paired: Vec<f64> = runs
        .iter()
        .zip(base_runs)
        .map(|(m, b)| m.eps / b.eps)
        .collect();
    let lo = paired.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = paired.iter().copied().fold(0.0, f64::max);
    let target = if is_base {
        "-".to_string()
    } else {
        format!(">= 0.7x {}", if wall >= 0.7 { "met" } else { "**missed**" })
    };
    let to = if c.baseline {
        format!("{} (baseline)", c.to())
    } else {
        c.to().to_string()
    };
    format!(
        "| {} | {to} | {:.0} | {:.0} | {wall:.2}x ({best:.2}x) | {lo:.2}-{hi:.2}x | {:.2} | {:.2} | {:.2}x | {target} | {:.1}-{:.1} |\n",
        c.from,
        s.median_eps,
        s.best_eps,
        s.orders_us,
        s.broker_us,
        base.total_us / s.total_us,
        s.load.0,
        s.load.1
    )
}

/// Every run: events/s, then CPU seconds of `orders` + the broker.
fn per_run_table(md: &mut String, configs: &[Config], runs: &[Vec<Measured>]) {
    let n = runs.first().map_or(0, Vec::len);
    md.push_str("\nEvery run: events/s (CPU s of `orders` + broker), in the order run.\n\n| configuration |");
    for r in 1..=n {
        write!(md, " run {r} |").unwrap();
    }
    md.push_str("\n|---|");
    md.push_str(&"---:|".repeat(n));
    md.push('\n');
    for (c, rs) in configs.iter().zip(runs) {
        write!(md, "| {} |", c.name()).unwrap();
        for m in rs {
            write!(md, " {:.0} ({:.2} + {:.2}) |", m.eps, m.cpu, m.broker).unwrap();
        }
        md.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(Vec::new()), 0.0);
    }

    fn runs(eps: &[f64], cpu: f64, broker: f64) -> Vec<Measured> {
        eps.iter()
            .map(|&eps| Measured {
                eps,
                cpu,
                broker,
                load: 1.0,
            })
            .collect()
    }

    #[test]
    fn ratios_in_wall_time_per_run_and_in_cpu() {
        let config = |from, out: Option<&str>| Config {
            from,
            input: String::new(),
            out_topic: out.map(str::to_string),
            bin: PathBuf::new(),
            baseline: false,
        };
        let configs = [config("file", None), config("kafka", None)];
        // 1M events: 1 CPU s is 1 µs/event.
        let all = [
            runs(&[100.0, 200.0, 150.0], 1.0, 0.0),
            runs(&[60.0, 160.0, 90.0], 1.5, 0.5),
        ];
        let shape = Shape {
            quick: false,
            events: 1_000_000,
            partitions: 4,
            runs: 3,
        };
        let md = report(&shape, &configs, &all, None);
        let kafka = md.lines().find(|l| l.starts_with("| kafka |")).unwrap();
        // Medians 90 / 150, bests 160 / 200, rounds 0.6, 0.8, 0.6; CPU 1.0 / 2.0.
        assert_eq!(
            kafka,
            "| kafka | file | 90 | 160 | 0.60x (0.80x) | 0.60-0.80x | 1.50 | 0.50 | 0.50x | >= 0.7x **missed** | 1.0-1.0 |"
        );
        assert!(md.contains(
            "| kafka -> file | 60 (1.50 + 0.50) | 160 (1.50 + 0.50) | 90 (1.50 + 0.50) |"
        ));
    }
}

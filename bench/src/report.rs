//! `target/bench/report.json`, `report.md` and `throughput.svg`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{json, Value};

use crate::checkpoints::{CheckpointCost, Overhead};
use crate::disk_state::{DiskState, FLINK_ROCKSDB_EPS};
use crate::incremental::IncrementalCost;
use crate::tracking_memory::TrackingMemory;
use crate::WorkloadResult;

#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub nproc: usize,
    pub cpu: String,
    pub loadavg_start: String,
    pub loadavg_end: String,
    pub rustc: String,
    pub os: String,
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

impl Machine {
    pub fn probe() -> Machine {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        let rustc = std::process::Command::new("rustc")
            .arg("-V")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default();
        let os = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| format!("Linux {}", s.trim()))
            .unwrap_or_else(|_| std::env::consts::OS.to_string());
        Machine {
            nproc: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            cpu,
            loadavg_start: loadavg(),
            loadavg_end: String::new(),
            rustc,
            os,
        }
    }
    pub fn finish(mut self) -> Machine {
        self.loadavg_end = loadavg();
        self
    }
}

pub struct Report {
    pub quick: bool,
    pub events: usize,
    pub keys: u64,
    pub runs: usize,
    pub machine: Machine,
    pub seconds: f64,
    pub end_to_end: Option<crate::e2e::E2e>,
    pub workloads: Vec<WorkloadResult>,
    pub checkpoints: Vec<CheckpointCost>,
    pub overhead: Option<Overhead>,
    pub incremental: Vec<IncrementalCost>,
    pub tracking: Vec<TrackingMemory>,
    pub disk_state: Option<DiskState>,
    pub failures: Vec<String>,
}

/// The pipeline's target ratio to the hand loop.
fn target(name: &str) -> f64 {
    if name.starts_with("count_by_key") {
        0.95
    } else {
        0.9
    }
}

impl Report {
    fn json(&self) -> Value {
        let workloads: Vec<Value> = self
            .workloads
            .iter()
            .map(|w| {
                let hand = w.eps("hand");
                let pipe = w.eps("pipeline");
                let timely = w.eps("timely");
                let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
                    (Some(a), Some(b)) => json!(a / b),
                    _ => Value::Null,
                };
                let r = pipe.zip(hand).map(|(p, h)| p / h);
                let instr = |imp: &str| {
                    w.impls
                        .iter()
                        .find(|i| i.imp == imp)
                        .and_then(|i| i.instructions_per_event)
                };
                let instr_ratio = instr("pipeline").zip(instr("hand")).map(|(p, h)| p / h);
                json!({
                    "name": w.name,
                    "description": w.description,
                    "events": w.events,
                    "keys": w.keys,
                    "rows": w.rows,
                    "hand_eps": hand,
                    "pipeline_eps": pipe,
                    "timely_eps": timely,
                    "ratio_pipeline_to_hand": ratio(pipe, hand),
                    "ratio_timely_to_hand": ratio(timely, hand),
                    "ratio_pipeline_to_timely": ratio(pipe, timely),
                    "target_ratio_pipeline_to_hand": target(w.name),
                    "meets_target": r.map(|r| r >= target(w.name)),
                    "ahead_of_timely": pipe.zip(timely).map(|(p, t)| p > t),
                    "instructions_per_event_hand": instr("hand"),
                    "instructions_per_event_pipeline": instr("pipeline"),
                    "instructions_per_event_timely": instr("timely"),
                    "instructions_ratio_pipeline_to_hand": instr_ratio,
                    "impls": w.impls,
                })
            })
            .collect();
        json!({
            "quick": self.quick,
            "events_per_workload": self.events,
            "keys": self.keys,
            "runs": self.runs,
            "method": "events generated once in memory before timing; one warm-up round, then `runs` rounds with implementations interleaved; *_eps is the best run (median_eps per impl too); results (digest of output rows or final state) equal across implementations",
            "machine": self.machine,
            "seconds": self.seconds,
            "end_to_end": self.end_to_end.as_ref().map(|e| {
                let mut v = serde_json::to_value(e).expect("json");
                v["target_ratio_orders_to_hand"] = json!(0.9);
                v["meets_target"] = json!(e.ratio_orders_to_hand >= 0.9);
                v
            }),
            "workloads": workloads,
            "checkpoints": self.checkpoints,
            "overhead": self.overhead.as_ref().map(|o| {
                let mut v = serde_json::to_value(o).expect("json");
                v["meets_target"] = json!(o.overhead_pct <= 5.0);
                v
            }),
            "incremental": self.incremental,
            "tracking_memory": self.tracking,
            "disk_state": self.disk_state,
            "failures": self.failures,
        })
    }

    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let m = &self.machine;
        let _ = writeln!(
            s,
            "# SimpleStream benchmarks{}\n",
            if self.quick { " (quick)" } else { "" }
        );
        let _ = writeln!(
            s,
            "Machine: {} x {}, {}, {}; load average {} at start, {} at end. {} events per workload, best of {} runs after a warm-up (median in parentheses); M = million events/s.\n",
            m.nproc, m.cpu, m.os, m.rustc, m.loadavg_start, m.loadavg_end, self.events, self.runs
        );
        if let Some(e) = &self.end_to_end {
            e2e_table(&mut s, e);
        }
        let _ = writeln!(s, "## Throughput\n");
        let _ = writeln!(s, "| workload | hand | pipeline! | timely (1 worker) | pipeline / hand | target | timely / hand | state per key (hand / pipeline / timely) |");
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|");
        for w in &self.workloads {
            let cell = |imp: &str| {
                w.impls
                    .iter()
                    .find(|i| i.imp == imp)
                    .map(|i| format!("{:.2} M ({:.2})", i.best_eps / 1e6, i.median_eps / 1e6))
                    .unwrap_or_else(|| "-".into())
            };
            let hand = w.eps("hand");
            let r = |imp: &str| {
                w.eps(imp)
                    .zip(hand)
                    .map(|(a, h)| format!("{:.2}x", a / h))
                    .unwrap_or_else(|| "-".into())
            };
            let t = target(w.name);
            let ok = w
                .eps("pipeline")
                .zip(hand)
                .map(|(p, h)| if p / h >= t { "met" } else { "**missed**" })
                .unwrap_or("-");
            let mem: Vec<String> = ["hand", "pipeline", "timely"]
                .iter()
                .filter_map(|imp| w.impls.iter().find(|i| i.imp == *imp))
                .map(|i| match (i.bytes_per_key, i.state_bytes) {
                    (Some(b), _) => format!("{b:.0} B"),
                    (None, Some(sb)) => format!("{:.1} MB", sb as f64 / 1e6),
                    _ => "-".into(),
                })
                .collect();
            let _ = writeln!(
                s,
                "| `{}` | {} | {} | {} | {} | >= {:.2}x {} | {} | {} |",
                w.name,
                cell("hand"),
                cell("pipeline"),
                cell("timely"),
                r("pipeline"),
                t,
                ok,
                r("timely"),
                mem.join(" / ")
            );
        }
        let _ = writeln!(s);
        for w in &self.workloads {
            let _ = writeln!(
                s,
                "- `{}`: {} ({} output rows or final keys).",
                w.name, w.description, w.rows
            );
        }
        if self
            .workloads
            .iter()
            .any(|w| w.impls.iter().any(|i| i.instructions_per_event.is_some()))
        {
            let _ = writeln!(s, "\n### Instructions per event (callgrind, inside the run only; not disturbed by machine load)\n");
            let _ = writeln!(
                s,
                "| workload | hand | pipeline! | timely | pipeline / hand (instructions) |"
            );
            let _ = writeln!(s, "|---|---:|---:|---:|---:|");
            for w in &self.workloads {
                let get = |imp: &str| {
                    w.impls
                        .iter()
                        .find(|i| i.imp == imp)
                        .and_then(|i| i.instructions_per_event)
                };
                let f = |v: Option<f64>| v.map(|v| format!("{v:.1}")).unwrap_or_else(|| "-".into());
                let ratio = get("pipeline")
                    .zip(get("hand"))
                    .map(|(p, h)| format!("{:.2}x", p / h))
                    .unwrap_or_else(|| "-".into());
                let _ = writeln!(
                    s,
                    "| `{}` | {} | {} | {} | {} |",
                    w.name,
                    f(get("hand")),
                    f(get("pipeline")),
                    f(get("timely")),
                    ratio
                );
            }
        }
        let _ = writeln!(s, "\nState per key: the run's own peak RSS (VmHWM after resetting it, minus RSS before the run; events excluded), in a child process, divided by the key-space size (for the join: MB of the run).");
        if !self.checkpoints.is_empty() {
            let _ = writeln!(s, "\n## Checkpoint costs\n");
            let _ = writeln!(s, "State: the String-key count + sum stage. Plain: the same map (`FastMap<String, (u64, f64)>`) with `serde_json::to_vec` / `postcard::to_allocvec`, and `File::write_all + sync_all`. Ratios are checkpoint / plain.\n");
            let _ = writeln!(s, "| keys | codec | snapshot ms (x plain) | of which sorting keys | bytes (x plain) | B/key | write+fsync ms (x plain) | restore ms (x plain) |");
            let _ = writeln!(s, "|---:|---|---:|---:|---:|---:|---:|---:|");
            for c in &self.checkpoints {
                let _ = writeln!(
                    s,
                    "| {} | {} | {:.2} ({:.2}x) | {} | {} ({:.2}x) | {:.1} | {:.2} ({:.2}x) | {:.2} ({:.2}x) |",
                    c.keys, c.codec, c.snapshot_ms, c.ratio_snapshot_to_plain,
                    c.sort_keys_ms.map(|m| format!("{m:.2} ms")).unwrap_or_else(|| "-".into()),
                    c.bytes, c.ratio_bytes_to_plain,
                    c.bytes_per_key, c.write_ms, c.ratio_write_to_plain, c.restore_ms, c.ratio_restore_to_plain
                );
            }
            let counted: Vec<_> = self
                .checkpoints
                .iter()
                .filter_map(|c| Some((c, c.snapshot_instructions?, c.plain_instructions?)))
                .collect();
            if !counted.is_empty() {
                let _ = writeln!(s, "\nInstructions of one snapshot (callgrind, inside the operation only; not moved by machine load):\n");
                let _ = writeln!(s, "| keys | codec | snapshot, per key | plain serialize, per key | snapshot / plain |");
                let _ = writeln!(s, "|---:|---|---:|---:|---:|");
                for (c, a, b) in counted {
                    let _ = writeln!(
                        s,
                        "| {} | {} | {:.1} | {:.1} | {:.2}x |",
                        c.keys,
                        c.codec,
                        a as f64 / c.keys as f64,
                        b as f64 / c.keys as f64,
                        a as f64 / b as f64
                    );
                }
            }
        }
        if let Some(o) = &self.overhead {
            let _ = writeln!(s, "\n## Checkpoint overhead\n");
            let _ = writeln!(
                s,
                "`count_by_key` with {} keys, binary codec, `Coordinator` + `FileStore`, {} events per run, A/B alternated {} times (medians; best: {:.2} M / {:.2} M):\n",
                o.keys, o.events_per_run, o.runs, o.best_eps_without / 1e6, o.best_eps_with_1s_checkpoints / 1e6
            );
            let _ = writeln!(s, "| without | with a checkpoint every 1 s | overhead | time in pauses | target | checkpoints | bytes each | pause p50 | pause max |");
            let _ = writeln!(s, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
            let _ = writeln!(
                s,
                "| {:.2} M | {:.2} M | {:.1} % | {:.2} % | <= 5 % {} | {} | {} | {:.2} ms | {:.2} ms |",
                o.eps_without / 1e6,
                o.eps_with_1s_checkpoints / 1e6,
                o.overhead_pct,
                o.pause_share_pct,
                if o.overhead_pct <= 5.0 {
                    "met"
                } else {
                    "**missed**"
                },
                o.checkpoints,
                o.checkpoint_bytes,
                o.pause_ms_p50,
                o.pause_ms_max
            );
        }
        if !self.incremental.is_empty() {
            incremental_table(&mut s, &self.incremental);
        }
        if let Some(d) = &self.disk_state {
            disk_table(&mut s, d);
        }
        if !self.tracking.is_empty() {
            tracking_table(&mut s, &self.tracking);
        }
        if !self.failures.is_empty() {
            let _ = writeln!(s, "\n## FAILURES: results differ\n");
            for f in &self.failures {
                let _ = writeln!(s, "- {f}");
            }
        }
        s
    }

    /// Horizontal bars, one group per workload, one bar per implementation. Throughputs
    /// differ by two orders of magnitude between workloads, so each group is scaled to its
    /// own fastest bar; the labels give the absolute numbers and the ratio to the hand loop.
    pub fn svg(&self) -> String {
        let colors = [
            ("hand", "#8c8c8c"),
            ("pipeline", "#2f6fdf"),
            ("timely", "#e8871e"),
        ];
        let bar_h = 18.0;
        let gap = 4.0;
        let label_w = 170.0;
        let plot_w = 430.0;
        let right = 230.0;
        let width = label_w + plot_w + right;
        let mut y = 70.0;
        let mut body = String::new();
        for w in &self.workloads {
            let group_h = w.impls.len() as f64 * (bar_h + gap);
            let max = w.impls.iter().map(|i| i.best_eps).fold(1.0, f64::max);
            let _ = writeln!(
                body,
                r#"<text x="{:.0}" y="{:.1}" text-anchor="end" font-weight="bold">{}</text>"#,
                label_w - 10.0,
                y + group_h / 2.0 + 2.0,
                w.name
            );
            let hand = w.eps("hand").unwrap_or(1.0);
            for i in &w.impls {
                let color = colors
                    .iter()
                    .find(|c| c.0 == i.imp)
                    .map(|c| c.1)
                    .unwrap_or("#444444");
                let len = (i.best_eps / max * plot_w).max(1.0);
                let _ = writeln!(
                    body,
                    r#"<rect x="{label_w:.0}" y="{y:.1}" width="{len:.1}" height="{bar_h}" fill="{color}"><title>{} {}: {:.2} M events/s</title></rect>"#,
                    w.name,
                    i.imp,
                    i.best_eps / 1e6
                );
                let _ = writeln!(
                    body,
                    r#"<text x="{:.1}" y="{:.1}">{} {:.2} M/s ({:.2}x hand)</text>"#,
                    label_w + len + 5.0,
                    y + bar_h - 4.0,
                    i.imp,
                    i.best_eps / 1e6,
                    i.best_eps / hand
                );
                y += bar_h + gap;
            }
            y += 14.0;
        }
        let height = y + 10.0;
        let mut s = String::new();
        let _ = writeln!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" font-family="sans-serif" font-size="12">"#
        );
        let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
        let _ = writeln!(
            s,
            r#"<text x="10" y="22" font-size="15" font-weight="bold">Events per second, by workload and implementation{}</text>"#,
            if self.quick { " (quick run)" } else { "" }
        );
        let _ = writeln!(
            s,
            r##"<text x="10" y="40" fill="#555555">{} x {}; {} events per workload; best of {} runs; each workload's bars scaled to its fastest</text>"##,
            self.machine.nproc,
            xml(&self.machine.cpu),
            self.events,
            self.runs
        );
        let mut lx = 10.0;
        for (name, color) in colors {
            let _ = writeln!(
                s,
                r#"<rect x="{lx:.0}" y="48" width="12" height="12" fill="{color}"/><text x="{:.0}" y="58">{}</text>"#,
                lx + 16.0,
                match name {
                    "hand" => "hand-written loop",
                    "pipeline" => "pipeline!",
                    _ => "timely (1 worker)",
                }
            );
            lx += 150.0;
        }
        s.push_str(&body);
        let _ = writeln!(
            s,
            r#"<line x1="{label_w:.0}" y1="66" x2="{label_w:.0}" y2="{:.0}" stroke="black"/>"#,
            y - 10.0
        );
        s.push_str("</svg>\n");
        s
    }

    pub fn write(&self, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
        std::fs::create_dir_all(dir)?;
        let files = [
            (
                dir.join("report.json"),
                serde_json::to_string_pretty(&self.json()).expect("json") + "\n",
            ),
            (dir.join("report.md"), self.markdown()),
            (dir.join("throughput.svg"), self.svg()),
        ];
        let mut out = Vec::new();
        for (p, text) in files {
            std::fs::write(&p, text)?;
            out.push(p);
        }
        Ok(out)
    }
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Incremental against whole checkpoints, with each target's verdict.
fn incremental_table(s: &mut String, rows: &[IncrementalCost]) {
    let verdict = |ratio: f64, target: f64| {
        if ratio <= target {
            format!("{ratio:.3}x (<= {target}x met)")
        } else {
            format!("{ratio:.3}x (<= {target}x **missed**)")
        }
    };
    let _ = writeln!(s, "\n## Incremental checkpoints\n");
    let _ = writeln!(s, "String-key count + sum state, 1 % of keys updated between checkpoints, binary codec, `Coordinator` + `FileStore` (a pause is the whole `checkpoint` call):\n");
    let _ = writeln!(s, "| keys | whole pause | delta pause | delta / whole | whole bytes | delta bytes | changed entries (plain) | delta / changed | restore base + deltas | plain decode | restore / plain |");
    let _ = writeln!(
        s,
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for r in rows {
        let big = r.keys >= 1_000_000;
        let _ = writeln!(
            s,
            "| {} | {:.2} ms | {:.2} ms | {} | {} | {} | {} | {} | {:.1} ms | {:.1} ms | {} |",
            r.keys,
            r.whole_pause_ms,
            r.delta_pause_ms,
            if big {
                verdict(r.ratio_pause, 0.10)
            } else {
                format!("{:.3}x", r.ratio_pause)
            },
            r.whole_bytes,
            r.delta_bytes,
            r.changed_plain_bytes,
            if big {
                verdict(r.ratio_bytes, 3.0)
            } else {
                format!("{:.2}x", r.ratio_bytes)
            },
            r.restore_ms,
            r.plain_decode_ms,
            if r.keys >= 10_000_000 {
                verdict(r.ratio_restore, 1.5)
            } else {
                format!("{:.2}x", r.ratio_restore)
            },
        );
    }
}

/// The disk state backend's rows, with each target's verdict.
fn disk_table(s: &mut String, d: &DiskState) {
    let met = |ok: bool| if ok { "met" } else { "**missed**" };
    let _ = writeln!(s, "\n## Disk state backend\n");
    let _ = writeln!(s, "String-key count + sum, memory and disk backends in turn in one process (best of runs). Zipf s=1: the key of popularity rank r has probability proportional to 1/(r+1):\n");
    let _ = writeln!(s, "| case | keys | key choice | events | --state-memory | keys on disk | memory backend | disk backend | disk / memory | target |");
    let _ = writeln!(s, "|---|---:|---|---:|---:|---:|---:|---:|---:|---|");
    for r in &d.throughput {
        let target = if r.case == "fits" {
            format!(
                "disk / memory >= 0.25x: {}",
                met(r.disk_over_memory >= 0.25)
            )
        } else {
            let want = 5.0 * FLINK_ROCKSDB_EPS;
            format!(
                "disk >= {:.1} M events/s (5x Flink RocksDB): {}",
                want / 1e6,
                met(r.disk_eps >= want)
            )
        };
        let _ =
            writeln!(
            s,
            "| {} | {} | {} | {} | {} MiB | {} | {:.2} M events/s | {:.2} M events/s | {:.2}x | {} |",
            r.case, r.keys, r.distribution.describe(), r.events, r.budget_mib, r.keys_on_disk,
            r.memory_eps / 1e6, r.disk_eps / 1e6, r.disk_over_memory, target
        );
    }
    let _ = writeln!(s, "\nIncremental checkpoint pause with the disk backend, 1 % of keys updated between checkpoints (`Coordinator` + `FileStore`, binary; p50 and max over the checkpoints of each mode: `checkpoint` stores in the pause as `--upload inline` does, `begin_upload` as `--upload background` does):\n");
    let _ = writeln!(
        s,
        "| keys | --state-memory | keys on disk | updated | inline pause p50 / max | background pause p50 / max | upload p50 | delta bytes | target |"
    );
    let _ = writeln!(s, "|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    for p in &d.pauses {
        let target = if p.keys >= 10_000_000 {
            format!("<= 50 ms: {}", met(p.delta_pause_max_ms <= 50.0))
        } else {
            "(<= 50 ms at 10M keys)".to_string()
        };
        let _ = writeln!(
            s,
            "| {} | {} MiB | {} | {} | {:.2} / {:.2} ms | {:.2} / {:.2} ms | {:.2} ms | {} | {} |",
            p.keys,
            p.budget_mib,
            p.keys_on_disk,
            p.updated_keys,
            p.inline_p50_ms,
            p.inline_max_ms,
            p.delta_pause_ms,
            p.delta_pause_max_ms,
            p.upload_p50_ms,
            p.delta_bytes,
            target
        );
    }
}

fn e2e_table(s: &mut String, e: &crate::e2e::E2e) {
    let min = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    let _ = writeln!(s, "## End to end\n");
    let _ = writeln!(
        s,
        "The `orders` program (release build, only its first and final checkpoint) over {} events ({} bytes of JSON lines), against hand-written programs (whole file read at once, serde_json into a struct borrowing the customer `&str`, FxHash maps, the same windows and watermark, rows written with serde_json) that keep the customer key three ways: borrowed from the file, an owned `String`, or inline in the table (up to 22 bytes). The fastest of them in this run is the baseline. Outputs compared byte for byte on every run ({} bytes). Best of {} runs after a warm-up; CPU time is user + system of the process.\n",
        e.events, e.input_bytes, e.output_bytes, e.runs
    );
    let _ = writeln!(s, "| program | wall ms (runs) | CPU ms (runs) |");
    let _ = writeln!(s, "|---|---:|---:|");
    let runs = |v: &[f64]| {
        v.iter()
            .map(|m| format!("{m:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let hands = e
        .hands
        .iter()
        .map(|h| (format!("hand-written, {} keys", h.keys), &h.ms, &h.cpu_ms));
    for (name, w, c) in hands.chain([("`orders`".to_string(), &e.orders_ms, &e.orders_cpu_ms)]) {
        let _ = writeln!(
            s,
            "| {name} | {:.0} ({}) | {:.0} ({}) |",
            min(w),
            runs(w),
            min(c),
            runs(c)
        );
    }
    let _ = writeln!(
        s,
        "\n`orders` / the fastest hand program ({} keys) (speed): **{:.2}x** wall, {:.2}x CPU; target >= 0.90x {}.\n\nCommand: `{}`\n",
        e.fastest_hand,
        e.ratio_orders_to_hand,
        e.ratio_cpu_orders_to_hand,
        if e.ratio_orders_to_hand >= 0.9 { "met" } else { "**missed**" },
        e.command
    );
    if let Some(q) = &e.sql {
        let _ = writeln!(
            s,
            "### SQL: interpreted vs compiled
"
        );
        let _ = writeln!(
            s,
            "`{}` over the same input: compiled by `pipeline!` (the `sql_orders` example) and interpreted by `simplestream sql`, both with the runner's first and final checkpoint; outputs equal the hand program's byte for byte on every run.\n",
            q.query
        );
        let _ = writeln!(s, "| program | wall ms (runs) | CPU ms (runs) |");
        let _ = writeln!(s, "|---|---:|---:|");
        for (name, w, c) in [
            (
                "`sql_orders` (compiled)",
                &q.compiled_ms,
                &q.compiled_cpu_ms,
            ),
            (
                "`simplestream sql` (interpreted)",
                &q.interpreted_ms,
                &q.interpreted_cpu_ms,
            ),
        ] {
            let _ = writeln!(
                s,
                "| {name} | {:.0} ({}) | {:.0} ({}) |",
                min(w),
                runs(w),
                min(c),
                runs(c)
            );
        }
        let _ = writeln!(
            s,
            "\ninterpreted / compiled (speed): **{:.2}x** wall.\n\nCommand: `{}`\n",
            q.ratio_interpreted_to_compiled, q.command
        );
    }
}

/// Memory of the same state with and without change stamps.
fn tracking_table(s: &mut String, rows: &[TrackingMemory]) {
    let _ = writeln!(s, "\n## Change tracking memory\n");
    let _ = writeln!(s, "String-key count + sum state built in a child process, its own peak RSS (VmHWM after resetting it, minus RSS before): without stamps a `FastMap<String, (u64, f64)>`, with them the runtime's `KeyedState<String, (u64, f64)>` (the same keys, inserted in the same order):\n");
    let _ = writeln!(
        s,
        "| keys | without tracking | B/key | with tracking | B/key | with / without |"
    );
    let _ = writeln!(s, "|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        let _ = writeln!(
            s,
            "| {} | {:.1} MB | {:.1} | {:.1} MB | {:.1} | {:.3}x |",
            r.keys,
            r.plain_bytes as f64 / 1e6,
            r.plain_per_key,
            r.tracked_bytes as f64 / 1e6,
            r.tracked_per_key,
            r.ratio
        );
    }
}

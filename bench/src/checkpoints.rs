//! Checkpoint costs (snapshot, bytes, durable write, restore) against a plain serialize
//! of the same map, and the throughput cost of checkpointing once a second.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;
use simplestream::envelope;
use simplestream::pipeline::Discard;
use simplestream::state::FastMap;
use simplestream::store::{CheckpointStore, FileStore, FileStoreOptions};
use simplestream::{Codec, Coordinator, CoordinatorConfig, Pipeline};

use crate::workloads::{count_pipeline, string_state, CountByStringKeyP};
use crate::{best_of, ms};

/// One row of the checkpoint-cost table.
#[derive(Debug, Clone, Serialize)]
pub struct CheckpointCost {
    pub keys: u64,
    pub codec: &'static str,
    pub snapshot_ms: f64,
    pub bytes: u64,
    pub write_ms: f64,
    pub restore_ms: f64,
    pub plain_serialize_ms: f64,
    pub plain_bytes: u64,
    pub plain_write_ms: f64,
    pub plain_deserialize_ms: f64,
    pub ratio_snapshot_to_plain: f64,
    pub ratio_bytes_to_plain: f64,
    pub ratio_write_to_plain: f64,
    pub ratio_restore_to_plain: f64,
    pub bytes_per_key: f64,
    /// JSON only: time to sort the keys alone (`KeyedState::sorted`), which the JSON
    /// codec does so that the same state always gives the same bytes.
    pub sort_keys_ms: Option<f64>,
    /// With `--instructions`: instructions of one snapshot and of one plain serialize
    /// (callgrind, inside the operation only).
    pub snapshot_instructions: Option<u64>,
    pub plain_instructions: Option<u64>,
}

/// Instructions of one `bench --profile checkpoint OP --keys K` operation (callgrind).
fn instructions(op: &str, keys: u64) -> Option<u64> {
    let exe = std::env::current_exe().ok()?;
    let o = std::process::Command::new("valgrind")
        .args([
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            "--collect-atstart=no",
            "--toggle-collect=*checkpoints::measured*",
        ])
        .arg(exe)
        .args(["--profile", "checkpoint", op, "--keys", &keys.to_string()])
        .output()
        .ok()?;
    String::from_utf8_lossy(&o.stderr)
        .lines()
        .find_map(|l| l.split("Collected :").nth(1))
        .and_then(|v| v.trim().parse().ok())
}

fn codec_name(c: Codec) -> &'static str {
    match c {
        Codec::Json => "json",
        Codec::Binary => "binary",
    }
}

/// Writes `bytes` to `path` and fsyncs it: the plain durable write.
fn plain_write(path: &Path, bytes: &[u8]) -> Duration {
    let t = Instant::now();
    let mut f = File::create(path).expect("create plain file");
    f.write_all(bytes).expect("write plain file");
    f.sync_all().expect("fsync plain file");
    drop(f);
    let el = t.elapsed();
    fs::remove_file(path).ok();
    el
}

/// Measures every (keys, codec) pair. `runs` timed runs after one warm-up; best kept.
/// With `count_instructions`, also the instructions of each snapshot and plain serialize.
pub fn costs(
    key_counts: &[u64],
    runs: usize,
    scratch: &Path,
    count_instructions: bool,
) -> Vec<CheckpointCost> {
    let mut out = Vec::new();
    for &keys in key_counts {
        // The String-key count+sum pipeline, every key seen twice.
        let p = string_state(keys, 2);
        assert_eq!(p.per_key.state.len() as u64, keys);
        // The same content as a plain map.
        let plain: FastMap<String, (u64, f64)> = p
            .per_key
            .state
            .iter()
            .map(|(k, a)| (String::from(k.into_owned()), (a.count, a.amount)))
            .collect();
        let positions: BTreeMap<String, u64> = [("events".to_string(), 2 * keys)].into();
        for codec in [Codec::Json, Codec::Binary] {
            let cname = codec_name(codec);
            let encode = || envelope::encode(&p, codec, 1, 0, positions.clone()).expect("encode");
            let bytes = encode();
            let snapshot = best_of(runs, || {
                let t = Instant::now();
                let b = encode();
                let el = t.elapsed();
                drop(b);
                el
            });
            let plain_ser_fn = || match codec {
                Codec::Json => serde_json::to_vec(&plain).expect("json"),
                Codec::Binary => postcard::to_allocvec(&plain).expect("postcard"),
            };
            let plain_bytes = plain_ser_fn();
            let plain_ser = best_of(runs, || {
                let t = Instant::now();
                let b = plain_ser_fn();
                let el = t.elapsed();
                drop(b);
                el
            });
            // Restore, and check it gives the same state.
            let (_, back) = envelope::decode::<CountByStringKeyP>(&bytes).expect("decode");
            assert!(back.per_key == p.per_key, "restored state differs");
            drop(back);
            let restore = best_of(runs, || {
                let t = Instant::now();
                let r = envelope::decode::<CountByStringKeyP>(&bytes).expect("decode");
                let el = t.elapsed();
                drop(r);
                el
            });
            let plain_de = best_of(runs, || {
                let t = Instant::now();
                let m: FastMap<String, (u64, f64)> = match codec {
                    Codec::Json => serde_json::from_slice(&plain_bytes).expect("json"),
                    Codec::Binary => postcard::from_bytes(&plain_bytes).expect("postcard"),
                };
                let el = t.elapsed();
                assert_eq!(m.len() as u64, keys);
                drop(m);
                el
            });
            // Durable writes: the real FileStore (temp file, fsync, rename, dir fsync)
            // against a plain write + fsync of the same bytes.
            let dir = scratch.join("checkpoint-costs");
            let instance = format!("k{keys}-{cname}");
            fs::remove_dir_all(dir.join("checkpoints").join(&instance)).ok();
            let mut store =
                FileStore::open(&dir, &instance, FileStoreOptions::default()).expect("open store");
            let mut n = 0u64;
            let write = best_of(runs, || {
                n += 1;
                let name = simplestream::coordinator::checkpoint_name(0, n, codec);
                let t = Instant::now();
                store.put(&name, &bytes).expect("put");
                let el = t.elapsed();
                store.delete(&name).ok();
                el
            });
            drop(store);
            fs::create_dir_all(&dir).ok();
            let plain_path = dir.join(format!("plain-{instance}.bin"));
            let plain_w = best_of(runs, || plain_write(&plain_path, &bytes));
            let sort_keys_ms = (codec == Codec::Json).then(|| {
                ms(best_of(runs, || {
                    let t = Instant::now();
                    let v = p.per_key.state.sorted();
                    let el = t.elapsed();
                    drop(v);
                    el
                }))
            });
            let (snapshot_instructions, plain_instructions) = if count_instructions {
                (
                    instructions(cname, keys),
                    instructions(&format!("plain-{cname}"), keys),
                )
            } else {
                (None, None)
            };
            let c = CheckpointCost {
                keys,
                codec: cname,
                snapshot_ms: ms(snapshot),
                bytes: bytes.len() as u64,
                write_ms: ms(write),
                restore_ms: ms(restore),
                plain_serialize_ms: ms(plain_ser),
                plain_bytes: plain_bytes.len() as u64,
                plain_write_ms: ms(plain_w),
                plain_deserialize_ms: ms(plain_de),
                ratio_snapshot_to_plain: ms(snapshot) / ms(plain_ser),
                ratio_bytes_to_plain: bytes.len() as f64 / plain_bytes.len() as f64,
                ratio_write_to_plain: ms(write) / ms(plain_w),
                ratio_restore_to_plain: ms(restore) / ms(plain_de),
                bytes_per_key: bytes.len() as f64 / keys as f64,
                sort_keys_ms,
                snapshot_instructions,
                plain_instructions,
            };
            println!(
                "  checkpoint {:>7} keys {:<6}  snapshot {:>8.2} ms ({:.2}x plain)  {:>10} B ({:.2}x)  write+fsync {:>7.2} ms ({:.2}x)  restore {:>8.2} ms ({:.2}x plain){}",
                keys, cname, c.snapshot_ms, c.ratio_snapshot_to_plain, c.bytes, c.ratio_bytes_to_plain,
                c.write_ms, c.ratio_write_to_plain, c.restore_ms, c.ratio_restore_to_plain,
                c.sort_keys_ms.map(|m| format!("  [sorting the keys alone: {m:.2} ms]")).unwrap_or_default()
            );
            if let (Some(a), Some(b)) = (c.snapshot_instructions, c.plain_instructions) {
                println!(
                    "   callgrind: snapshot {:.1} instructions per key, plain {:.1} ({:.2}x)",
                    a as f64 / keys as f64,
                    b as f64 / keys as f64,
                    a as f64 / b as f64
                );
            }
            out.push(c);
        }
    }
    out
}

/// What `bench --profile checkpoint OP --keys K` runs once, for callgrind or perf: `json`,
/// `binary` (a snapshot), `restore-json`, `restore-binary`, or `plain-` before any of them
/// (the same on the plain map). Only [`measured`] is the operation itself.
pub fn profile(op: &str, keys: u64) {
    let p = string_state(keys, 2);
    let plain: FastMap<String, (u64, f64)> = p
        .per_key
        .state
        .iter()
        .map(|(k, a)| (String::from(k.into_owned()), (a.count, a.amount)))
        .collect();
    let (plain_op, op) = match op.strip_prefix("plain-") {
        Some(rest) => (true, rest),
        None => (false, op),
    };
    let (restore, codec) = match op {
        "json" => (false, Codec::Json),
        "binary" => (false, Codec::Binary),
        "restore-json" => (true, Codec::Json),
        "restore-binary" => (true, Codec::Binary),
        other => {
            eprintln!("bench: unknown checkpoint operation {other}");
            std::process::exit(2)
        }
    };
    let positions: BTreeMap<String, u64> = [("events".to_string(), 2 * keys)].into();
    let bytes = match (plain_op, codec) {
        (false, _) => envelope::encode(&p, codec, 1, 0, positions.clone()).expect("encode"),
        (true, Codec::Json) => serde_json::to_vec(&plain).expect("json"),
        (true, Codec::Binary) => postcard::to_allocvec(&plain).expect("postcard"),
    };
    let n = measured(&|| match (restore, plain_op, codec) {
        (false, false, _) => envelope::encode(&p, codec, 1, 0, positions.clone())
            .expect("encode")
            .len(),
        (false, true, Codec::Json) => serde_json::to_vec(&plain).expect("json").len(),
        (false, true, Codec::Binary) => postcard::to_allocvec(&plain).expect("postcard").len(),
        (true, false, _) => envelope::decode::<CountByStringKeyP>(&bytes)
            .expect("decode")
            .1
            .per_key
            .state
            .len(),
        (true, true, Codec::Json) => {
            let m: FastMap<String, (u64, f64)> = serde_json::from_slice(&bytes).expect("json");
            m.len()
        }
        (true, true, Codec::Binary) => {
            let m: FastMap<String, (u64, f64)> = postcard::from_bytes(&bytes).expect("postcard");
            m.len()
        }
    });
    println!("checkpoint {op} (plain: {plain_op}) of {keys} keys: {n}");
}

/// The operation a profile counts (callgrind: `--toggle-collect=*checkpoints::measured*`).
#[inline(never)]
fn measured(f: &dyn Fn() -> usize) -> usize {
    std::hint::black_box(f())
}

/// Throughput with and without a checkpoint every second.
#[derive(Debug, Clone, Serialize)]
pub struct Overhead {
    pub keys: u64,
    pub codec: &'static str,
    pub events_per_run: u64,
    pub runs: usize,
    /// Median of the runs.
    pub eps_without: f64,
    /// Median of the runs.
    pub eps_with_1s_checkpoints: f64,
    pub best_eps_without: f64,
    pub best_eps_with_1s_checkpoints: f64,
    /// `1 - with / without`, medians.
    pub overhead_pct: f64,
    pub checkpoints: usize,
    pub checkpoint_bytes: u64,
    pub pause_ms_p50: f64,
    pub pause_ms_max: f64,
    pub pause_ms_all: Vec<f64>,
    /// Time spent in checkpoint pauses / run time of the runs with checkpoints: the
    /// overhead without the run-to-run noise of the throughput comparison.
    pub pause_share_pct: f64,
}

/// Runs the 100k-key count pipeline over the events again and again for about
/// `target` per run, with (B) and without (A) a checkpoint every second, alternating
/// A B A B ... `runs` times each. The wall clock is looked at every 4096 events in both.
pub fn overhead(
    events: &[crate::events::Ev],
    keys: u64,
    target: Duration,
    runs: usize,
    scratch: &Path,
) -> Overhead {
    const CHECK_EVERY: usize = 4096;
    let mut p = count_pipeline(events); // all keys present before measuring
    assert_eq!(p.per_key.state.len() as u64, keys);
    // One pass, to size the runs.
    let t = Instant::now();
    for e in events {
        p.process(*e, &mut Discard);
    }
    let pass = t.elapsed();
    let passes = ((target.as_secs_f64() / pass.as_secs_f64()).ceil() as usize).max(1);
    let total = (passes * events.len()) as u64;

    let dir = scratch.join("overhead");
    fs::remove_dir_all(&dir).ok();
    let store = FileStore::open(&dir, "overhead", FileStoreOptions::default()).expect("open store");
    let mut coord = Coordinator::new(
        store,
        CoordinatorConfig {
            every_events: None,
            every_ms: Some(1000),
            codec: Codec::Binary,
            keep: 2,
        },
    );
    let mut pauses: Vec<f64> = Vec::new();
    let mut ckpt_bytes = 0u64;
    let mut without = Vec::new();
    let mut with = Vec::new();
    let mut processed = 0u64;
    let mut with_time = Duration::ZERO;
    let mut with_pause = Duration::ZERO;
    for _ in 0..runs {
        for checkpointing in [false, true] {
            let start = Instant::now();
            let mut last = start;
            let mut pause_total = Duration::ZERO;
            for _ in 0..passes {
                for chunk in events.chunks(CHECK_EVERY) {
                    for e in chunk {
                        p.process(*e, &mut Discard);
                    }
                    processed += chunk.len() as u64;
                    let now = Instant::now();
                    if now.duration_since(last) >= Duration::from_secs(1) {
                        if checkpointing {
                            let positions: BTreeMap<String, u64> =
                                [("events".to_string(), processed)].into();
                            let info = coord
                                .checkpoint(&p, positions, simplestream::time::now_ms())
                                .expect("checkpoint");
                            ckpt_bytes = info.size;
                            let end = Instant::now();
                            let pause = end.duration_since(now);
                            pause_total += pause;
                            pauses.push(ms(pause));
                            last = end;
                        } else {
                            last = now;
                        }
                    }
                }
            }
            let el = start.elapsed();
            let eps = total as f64 / el.as_secs_f64();
            if checkpointing {
                with.push(eps);
                with_time += el;
                with_pause += pause_total;
            } else {
                without.push(eps);
            }
        }
    }
    drop(coord);
    fs::remove_dir_all(&dir).ok();
    let med = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
        v[v.len() / 2]
    };
    let best = |v: &[f64]| v.iter().cloned().fold(0.0, f64::max);
    let (bw, bc) = (best(&without), best(&with));
    let (mw, mc) = (med(&mut without), med(&mut with));
    let mut sorted = pauses.clone();
    sorted.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    let p50 = sorted.get(sorted.len() / 2).copied().unwrap_or(f64::NAN);
    let max = sorted.last().copied().unwrap_or(f64::NAN);
    Overhead {
        keys,
        codec: "binary",
        events_per_run: total,
        runs,
        eps_without: mw,
        eps_with_1s_checkpoints: mc,
        best_eps_without: bw,
        best_eps_with_1s_checkpoints: bc,
        overhead_pct: (1.0 - mc / mw) * 100.0,
        checkpoints: pauses.len(),
        checkpoint_bytes: ckpt_bytes,
        pause_ms_p50: p50,
        pause_ms_max: max,
        pause_ms_all: pauses,
        pause_share_pct: with_pause.as_secs_f64() / with_time.as_secs_f64() * 100.0,
    }
}

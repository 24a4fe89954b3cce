//! The disk state backend (issue 16) on the String-key count + sum pipeline, memory and
//! disk backends in one process, one run after the other: throughput on a state that fits
//! the budget, throughput on one that does not (most keys on disk), and the pause of an
//! incremental checkpoint with 1 % of the keys updated while most keys are on disk.

use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;
use simplestream::pipeline::Discard;
use simplestream::spill::{self, DiskConfig, StateBackend};
use simplestream::Pipeline;

use crate::events::{self, SEv};
use crate::workloads::{string_state, CountByStringKeyP};
use crate::{best_of, incremental, ms};

/// Flink with RocksDB state on this machine class (issue 16), events per second.
pub const FLINK_ROCKSDB_EPS: f64 = 200_000.0;

/// The throughput cases, for `--disk-cases`.
pub const CASES: [&str; 3] = ["fits", "exceeds", "skewed"];

/// How the events' keys are drawn.
#[derive(Debug, Clone, Copy, Serialize)]
pub enum Keys {
    Uniform,
    /// Zipf with exponent 1 (`events::zipf_string_events`).
    Zipf1,
}

impl Keys {
    pub fn describe(self) -> &'static str {
        match self {
            Keys::Uniform => "uniform",
            Keys::Zipf1 => "Zipf s=1",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Throughput {
    pub case: &'static str,
    pub distribution: Keys,
    pub keys: u64,
    pub events: usize,
    pub budget_mib: usize,
    pub memory_eps: f64,
    pub disk_eps: f64,
    pub disk_over_memory: f64,
    /// Keys on disk at the end of the disk run.
    pub keys_on_disk: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Pause {
    pub keys: u64,
    pub budget_mib: usize,
    pub keys_on_disk: u64,
    pub updated_keys: u64,
    /// `checkpoint` (everything in the pause, as `--upload inline`): p50 and max, ms.
    pub inline_p50_ms: f64,
    pub inline_max_ms: f64,
    /// `begin_upload` (as `--upload background`): the pause, p50 and max, ms.
    pub delta_pause_ms: f64,
    pub delta_pause_max_ms: f64,
    /// CPU time of the pausing thread in those pauses (`/proc/thread-self/schedstat`),
    /// p50 and max, ms: what the pause costs apart from waiting for a core.
    pub inline_cpu_p50_ms: f64,
    pub inline_cpu_max_ms: f64,
    pub delta_cpu_p50_ms: f64,
    pub delta_cpu_max_ms: f64,
    /// The background upload that follows it (`finish_upload` right away), p50, ms.
    pub upload_p50_ms: f64,
    pub delta_bytes: u64,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct DiskState {
    pub throughput: Vec<Throughput>,
    pub pauses: Vec<Pause>,
}

fn set(backend: StateBackend) {
    spill::set_state_backend(backend).expect("state backend");
}

fn disk(scratch: &Path, budget_mib: usize) -> StateBackend {
    StateBackend::Disk(DiskConfig {
        dir: scratch.join("disk-state"),
        memory: budget_mib << 20,
    })
}

/// Events per `Pipeline::prefetch` call. In `exceeds`, 16k ran 0.85-0.92 M events/s
/// against 0.78 for 4k (two runs each, alternated): a batch reads more of each block it
/// brings in, and memory (refilled to the table's usable slots after each eviction) takes
/// it whole.
const BATCH: usize = 16384;

/// One run over `events`, in batches each read ahead while the batch before runs and
/// prefetched before its own events (both backends: the memory backend's calls do
/// nothing, and pay for that): the elapsed time, the keys on disk and a digest of the
/// state (keys, total count, total amount in cents).
fn run(events: &[SEv]) -> (Duration, u64, (usize, u64, i64)) {
    let mut batches: Vec<Vec<SEv>> = events.chunks(BATCH).map(crate::owned_copy).collect();
    let t = Instant::now();
    let mut p = CountByStringKeyP::new();
    if let Some(first) = batches.first() {
        p.prefetch(first);
    }
    for n in 0..batches.len() {
        // The next batch's keys are read on another thread while this one runs.
        if let Some(next) = batches.get(n + 1) {
            p.read_ahead(next);
        }
        for e in std::mem::take(&mut batches[n]) {
            p.process(e, &mut Discard);
        }
        if let Some(next) = batches.get(n + 1) {
            p.prefetch(next);
        }
    }
    let el = t.elapsed();
    let s = &p.per_key.state;
    let mut digest = (s.len(), 0, 0);
    for (_, a) in s.iter() {
        digest.1 += a.count;
        digest.2 += (a.amount * 100.0).round() as i64;
    }
    (el, s.on_disk(), digest)
}

/// One throughput case: `n` events over `keys` keys drawn as `dist` says.
struct Case {
    name: &'static str,
    dist: Keys,
    keys: u64,
    n: usize,
    budget_mib: usize,
}

fn throughput(c: Case, runs: usize, scratch: &Path) -> Throughput {
    let Case {
        name: case,
        dist,
        keys,
        n,
        budget_mib,
    } = c;
    let events = match dist {
        Keys::Uniform => events::string_events(1, n, keys),
        Keys::Zipf1 => events::zipf_string_events(1, n, keys),
    };
    set(StateBackend::Memory);
    let mut want = None;
    let mem = best_of(runs, || {
        let (el, _, d) = run(&events);
        want = Some(d);
        el
    });
    set(disk(scratch, budget_mib));
    let mut on_disk = 0;
    let dsk = best_of(runs, || {
        let (el, od, d) = run(&events);
        assert_eq!(Some(d), want, "{case}: the disk backend's state differs");
        on_disk = od;
        el
    });
    set(StateBackend::Memory);
    let eps = |d: Duration| n as f64 / d.as_secs_f64();
    let r = Throughput {
        case,
        distribution: dist,
        keys,
        events: n,
        budget_mib,
        memory_eps: eps(mem),
        disk_eps: eps(dsk),
        disk_over_memory: mem.as_secs_f64() / dsk.as_secs_f64(),
        keys_on_disk: on_disk,
    };
    println!(
        "  {case}: {keys} keys ({}), {n} events, --state-memory {budget_mib}MiB: memory {:.2} M events/s, disk {:.2} M events/s ({:.2}x), {on_disk} keys on disk",
        dist.describe(),
        r.memory_eps / 1e6,
        r.disk_eps / 1e6,
        r.disk_over_memory
    );
    r
}

/// CPU time this thread has run (Linux; zero elsewhere).
fn thread_cpu() -> Duration {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .map_or(Duration::ZERO, Duration::from_nanos)
}

/// Median and largest of `v`.
fn p50_max(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[v.len() - 1])
}

fn pause(keys: u64, budget_mib: usize, runs: usize, scratch: &Path) -> Pause {
    let dir = scratch.join("disk-state-checkpoints");
    set(disk(scratch, budget_mib));
    let mut p = string_state(keys, 1);
    let mut c = incremental::coordinator(&dir, &format!("disk-{keys}"), true);
    let mut round = 1;
    incremental::timed_checkpoint(&mut c, &p, round);
    let (mut bytes, mut updated) = (0, 0);
    let rounds = runs.max(5);
    let (mut inline, mut inline_cpu) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        round += 1;
        updated = incremental::update(&mut p, keys, round).len() as u64;
        let cpu = thread_cpu();
        let (el, size) = incremental::timed_checkpoint(&mut c, &p, round);
        inline_cpu.push(ms(thread_cpu() - cpu));
        bytes = size;
        inline.push(ms(el));
    }
    let (mut background, mut background_cpu, mut uploads) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        round += 1;
        incremental::update(&mut p, keys, round);
        let positions = [("events".to_string(), round)].into();
        let (t, cpu) = (Instant::now(), thread_cpu());
        c.begin_upload(&p, positions, round as i64)
            .expect("checkpoint");
        background.push(ms(t.elapsed()));
        background_cpu.push(ms(thread_cpu() - cpu));
        let t = Instant::now();
        let info = c.finish_upload().expect("in flight").expect("upload");
        uploads.push(ms(t.elapsed()));
        bytes = info.size;
    }
    let on_disk = p.per_key.state.on_disk();
    drop((p, c));
    set(StateBackend::Memory);
    std::fs::remove_dir_all(&dir).ok();
    println!("  each pause, ms (wall / CPU): inline {inline:.1?} / {inline_cpu:.1?}; background {background:.1?} / {background_cpu:.1?}");
    let ((inline_p50, inline_max), (pause_p50, pause_max)) = (p50_max(inline), p50_max(background));
    let ((icpu_p50, icpu_max), (dcpu_p50, dcpu_max)) =
        (p50_max(inline_cpu), p50_max(background_cpu));
    let r = Pause {
        keys,
        budget_mib,
        keys_on_disk: on_disk,
        updated_keys: updated,
        inline_p50_ms: inline_p50,
        inline_max_ms: inline_max,
        delta_pause_ms: pause_p50,
        delta_pause_max_ms: pause_max,
        inline_cpu_p50_ms: icpu_p50,
        inline_cpu_max_ms: icpu_max,
        delta_cpu_p50_ms: dcpu_p50,
        delta_cpu_max_ms: dcpu_max,
        upload_p50_ms: p50_max(uploads).0,
        delta_bytes: bytes,
    };
    println!(
        "  checkpoint pause: {keys} keys ({on_disk} on disk, {updated} updated), --state-memory {budget_mib}MiB, {rounds} checkpoints each: inline p50 {inline_p50:.2} ms, max {inline_max:.2} ms; background p50 {pause_p50:.2} ms, max {pause_max:.2} ms, upload p50 {:.2} ms; {bytes} B; pause CPU p50 / max: inline {icpu_p50:.2} / {icpu_max:.2} ms, background {dcpu_p50:.2} / {dcpu_max:.2} ms",
        r.upload_p50_ms
    );
    r
}

/// The rows: `quick` sizes by default; `cases` picks throughput cases (None: all);
/// `pause_keys` are the key counts of the pause row.
pub fn measure(
    quick: bool,
    cases: Option<&[String]>,
    pause_keys: &[u64],
    runs: usize,
    scratch: &Path,
) -> DiskState {
    // Four events per key where the state does not fit: with uniform keys most events
    // update a key on disk; with Zipf keys most update a hot key.
    let (n, big, budget) = if quick {
        (2_000_000, 500_000, 16)
    } else {
        (8_000_000, 2_000_000, 64)
    };
    let all = [
        ("fits", Keys::Uniform, 100_000, 256),
        ("exceeds", Keys::Uniform, big, budget),
        ("skewed", Keys::Zipf1, big, budget),
    ];
    let wanted = |name: &str| cases.is_none_or(|c| c.iter().any(|w| w == name));
    let out = DiskState {
        throughput: all
            .into_iter()
            .filter(|c| wanted(c.0))
            .map(|(name, dist, keys, budget_mib)| {
                let c = Case {
                    name,
                    dist,
                    keys,
                    n,
                    budget_mib,
                };
                throughput(c, runs, scratch)
            })
            .collect(),
        pauses: pause_keys
            .iter()
            .map(|&k| pause(k, 64, runs, scratch))
            .collect(),
    };
    std::fs::remove_dir_all(scratch.join("disk-state")).ok();
    out
}

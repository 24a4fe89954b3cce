//! Helpers for tests that drive the `orders` example as a real process, and the servers
//! the remote-store tests run against ([`servers`]).
#![allow(dead_code)]

pub mod kafka;
pub mod servers;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// 2021-11-01 04:00:00 UTC, on a 5-minute boundary.
pub const BASE: i64 = 1_635_739_200_000;
/// Event-time step of [`good_line`]: 40 s, so a 5-minute window closes every ~8 lines.
pub const STEP: i64 = 40_000;

pub fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// A valid order: customer C1..C3 in turn, event time `BASE + i * STEP`.
pub fn good_line(i: usize) -> Vec<u8> {
    format!(
        "{{\"customer\":\"C{}\",\"amount\":{i}.25,\"ts\":{}}}",
        i % 3 + 1,
        BASE + i as i64 * STEP
    )
    .into_bytes()
}

/// Lines joined with `\n`, with a final newline.
pub fn join(lines: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for l in lines {
        out.extend_from_slice(l);
        out.push(b'\n');
    }
    out
}

pub fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn code(out: &Output) -> Option<i32> {
    out.status.code()
}

/// Writes `input` into `<dir>/in.jsonl` (creating `dir`) and returns its path.
pub fn put_input(dir: &Path, input: &[u8]) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let p = dir.join("in.jsonl");
    std::fs::write(&p, input).unwrap();
    p
}

/// A position recorded in a checkpoint (or `latest.json`).
pub fn pos(ck: &serde_json::Value, key: &str) -> u64 {
    ck["positions"][key]
        .as_u64()
        .unwrap_or_else(|| panic!("no position {key} in {ck}"))
}

/// `cargo` without the package variables cargo sets for tests: `ring`'s build script
/// reruns when they change, so a build from a test would redo the one `cargo build` (or
/// `cargo xtask test`) made, and the other way round.
fn plain_cargo() -> Command {
    let mut c = Command::new(env!("CARGO"));
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy();
        if k.starts_with("CARGO_PKG_") || k.starts_with("CARGO_MANIFEST_") {
            c.env_remove(&*k);
        }
    }
    c
}

/// The `orders` example binary, built once. It is the dev-profile build `cargo test
/// --workspace` makes anyway, so under `cargo xtask test` this is a no-op and CI compiles
/// no release copy of the dependencies (the workspace builds the runtime at opt-level 1
/// for these runs).
pub fn orders_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target"));
        // `--workspace` resolves features as `cargo test --workspace` does, so both share
        // one set of artifacts.
        let status = plain_cargo()
            .current_dir(root)
            .args([
                "build",
                "--workspace",
                "--quiet",
                "--example",
                "orders",
                "--bin",
                "simplestream",
            ])
            .status()
            .expect("run cargo build");
        assert!(status.success(), "building the orders example failed");
        target.join("debug/examples/orders")
    })
    .clone()
}

/// The `simplestream` tool (built with [`orders_bin`]).
pub fn tool_bin() -> PathBuf {
    orders_bin()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("simplestream")
}

/// SplitMix64.
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// `n` order lines (JSON, one per line), out of order by up to 5 s, with a late event
/// (far behind the watermark) every `late_every` lines and a malformed line every
/// `bad_every` lines (0: never).
pub fn order_lines(
    seed: u64,
    n: usize,
    customers: u64,
    late_every: usize,
    bad_every: usize,
) -> String {
    let mut rng = Rng(seed);
    let mut t: i64 = 1_635_739_200_000;
    let mut s = String::with_capacity(n * 60);
    for i in 1..=n {
        t += (rng.next() % 80) as i64;
        let c = rng.next() % customers + 1;
        let cents = rng.next() % 20_000;
        if bad_every > 0 && i % bad_every == 0 {
            match (i / bad_every) % 4 {
                0 => s.push_str(&format!("{{\"amount\":1.0,\"ts\":{t}}}\n")),
                1 => s.push_str(&format!(
                    "{{\"customer\":\"C{c:03}\",\"amount\":\"lots\",\"ts\":{t}}}\n"
                )),
                2 => s.push_str("{not json\n"),
                _ => s.push('\n'),
            }
            continue;
        }
        let ts = if late_every > 0 && i % late_every == 0 {
            t - 900_000
        } else {
            t - (rng.next() % 5_000) as i64
        };
        s.push_str(&format!(
            "{{\"customer\":\"C{c:03}\",\"amount\":{}.{:02},\"ts\":{ts}}}\n",
            cents / 100,
            cents % 100
        ));
    }
    s
}

/// Runs `orders` in `dir` (output, late, dead letters and checkpoints inside it).
pub fn orders(dir: &Path, input: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(orders_bin());
    c.arg("--input").arg(input);
    c.arg("--output").arg(dir.join("out.jsonl"));
    c.arg("--checkpoint-dir").arg(dir.join("ckpt"));
    c.args(["--instance", "app-instance-1"]);
    c.args(extra);
    c.env_remove("SIMPLESTREAM_FAILPOINT")
        .env_remove("SIMPLESTREAM_FAIL_WRITES")
        .env_remove("RUST_LOG");
    c
}

/// Runs to completion; panics with stderr on an unexpected exit status.
pub fn run_ok(mut c: Command) -> Output {
    let out = c.output().expect("start orders");
    assert!(
        out.status.success(),
        "orders failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The line the runner prints on stderr at a `SIMPLESTREAM_PAUSE_AT` pause point.
pub const PAUSED: &str = "simplestream: paused at event";

/// The line the runner prints on stderr at a `SIMPLESTREAM_HOLD` point.
pub const HELD: &str = "simplestream: held at";

/// `n` distinct event counts drawn at random from `range`, ascending.
pub fn pause_targets(seed: u64, n: usize, range: std::ops::Range<u64>) -> Vec<u64> {
    assert!(
        range.end - range.start >= n as u64,
        "{n} targets in {range:?}"
    );
    let mut rng = Rng(seed);
    let mut t = std::collections::BTreeSet::new();
    while t.len() < n {
        t.insert(range.start + rng.next() % (range.end - range.start));
    }
    t.into_iter().collect()
}

type StderrLines = std::io::Lines<std::io::BufReader<std::process::ChildStderr>>;

/// A running command stopped at a pause point (see [`spawn_until_paused`]); killed if
/// dropped before it exits.
pub struct Paused {
    pub child: std::process::Child,
    /// The pause line, and every stderr line before it.
    pub stderr: Vec<String>,
    lines: Option<StderrLines>,
}

impl Drop for Paused {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Paused {
    /// Lets the program go on (to its next pause point, or to the end).
    pub fn resume(&mut self) {
        use std::io::Write;
        let stdin = self.child.stdin.as_mut().expect("stdin is piped");
        stdin.write_all(b"\n").expect("resume the paused program");
        stdin.flush().unwrap();
    }

    /// After [`resume`](Self::resume): waits for the next pause line (`None`: it exited).
    pub fn next_pause(&mut self) -> Option<String> {
        for line in self.lines.as_mut().expect("stderr is read").by_ref() {
            let line = line.expect("read stderr");
            self.stderr.push(line.clone());
            if line.starts_with(PAUSED) {
                return Some(line);
            }
        }
        None
    }

    /// After [`resume`](Self::resume): reads stderr until a line contains `needle`
    /// (`false`: it exited first).
    pub fn wait_for_line(&mut self, needle: &str) -> bool {
        for line in self.lines.as_mut().expect("stderr is read").by_ref() {
            let line = line.expect("read stderr");
            self.stderr.push(line.clone());
            if line.contains(needle) {
                return true;
            }
        }
        false
    }

    /// Kills it (SIGKILL) where it stands.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Lets it run to the end; returns its exit status and the rest of stderr.
    pub fn finish(mut self) -> (std::process::ExitStatus, String) {
        drop(self.child.stdin.take()); // end of file: any later pause point goes on at once
        let rest: Vec<String> = self.lines.take().unwrap().map(|l| l.unwrap()).collect();
        self.stderr.extend(rest);
        (self.child.wait().unwrap(), self.stderr.join("\n"))
    }
}

/// Starts `c` with pause points at `events` (counted as the checkpoint counts them) and
/// waits until it stands at the first one. Panics if it exits first.
pub fn spawn_until_paused(mut c: Command, events: &[u64]) -> Paused {
    let list: Vec<String> = events.iter().map(u64::to_string).collect();
    c.env("SIMPLESTREAM_PAUSE_AT", list.join(","))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().expect("spawn the program");
    let stderr = child.stderr.take().unwrap();
    let mut p = Paused {
        child,
        stderr: Vec::new(),
        lines: Some(std::io::BufRead::lines(std::io::BufReader::new(stderr))),
    };
    if p.next_pause().is_none() {
        let (status, err) = p.finish();
        panic!(
            "the program exited ({status}) before event {}:\n{err}",
            events[0]
        );
    }
    p
}

/// Runs the command `make` builds (an `orders` run) once per target in `targets` (event
/// counts, ascending), killing it with SIGKILL while it stands at that pause point, then
/// once more to the end. Kills land on progress, not on time: their number is exactly
/// `targets.len()` on any machine. Each restart resumes from a checkpoint taken before
/// the previous target, so every target is reached again.
pub fn run_with_kills(mut make: impl FnMut() -> Command, targets: &[u64]) -> usize {
    for &t in targets {
        let mut c = make();
        c.arg("--quiet");
        spawn_until_paused(c, &[t]).kill();
    }
    let mut c = make();
    c.arg("--quiet");
    run_ok(c);
    targets.len()
}

/// The instance's checkpoint directory.
pub fn ckpt_dir(dir: &Path) -> PathBuf {
    dir.join("ckpt/checkpoints/app-instance-1")
}

/// The checkpoint `latest.json` points to, as JSON (binary ones decoded by the program's
/// own `orders checkpoints show`).
pub fn latest_checkpoint(dir: &Path) -> serde_json::Value {
    let out = Command::new(orders_bin())
        .args(["checkpoints", "show"])
        .arg(dir.join("ckpt"))
        .args(["--instance", "app-instance-1"])
        .output()
        .expect("run orders checkpoints show");
    assert!(
        out.status.success(),
        "checkpoints show failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("show prints JSON")
}

/// Per-customer (count, amount in cents) computed straight from the input, independently
/// of SimpleStream: valid lines only.
pub fn expected_stats(input: &str) -> std::collections::BTreeMap<String, (u64, i64)> {
    let mut m = std::collections::BTreeMap::new();
    for line in input.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let (Some(c), Some(a), Some(_)) = (
            v["customer"].as_str(),
            v["amount"].as_f64(),
            v["ts"].as_i64(),
        ) else {
            continue;
        };
        let e = m.entry(c.to_string()).or_insert((0, 0));
        e.0 += 1;
        e.1 += (a * 100.0).round() as i64;
    }
    m
}

/// Asserts two files are byte-identical (missing counts as empty).
pub fn assert_same_file(a: &Path, b: &Path) {
    let ra = std::fs::read(a).unwrap_or_default();
    let rb = std::fs::read(b).unwrap_or_default();
    if ra != rb {
        let first = ra
            .iter()
            .zip(&rb)
            .position(|(x, y)| x != y)
            .unwrap_or(ra.len().min(rb.len()));
        panic!(
            "{} ({} bytes) and {} ({} bytes) differ from byte {first}",
            a.display(),
            ra.len(),
            b.display(),
            rb.len()
        );
    }
}

/// Bounds a wait for a condition: only a hang guard, generous for slow machines.
pub const GUARD: std::time::Duration = std::time::Duration::from_secs(120);

pub fn wait_until(what: &str, timeout: std::time::Duration, mut f: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !f() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Waits for `child` to exit; fails if it is still running after `guard` (a bound on a
/// hang, never a verdict on speed).
pub fn finish_within(mut child: Running, guard: std::time::Duration, what: &str) -> Output {
    let start = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(start.elapsed() < guard, "{what} did not exit");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    child.finish()
}

/// A running `orders` process, killed if the test ends (or panics) before it exits.
pub struct Running(Option<std::process::Child>);

impl Running {
    pub fn new(c: std::process::Child) -> Self {
        Running(Some(c))
    }

    /// Waits for the exit and collects the piped output.
    pub fn finish(mut self) -> Output {
        self.0.take().unwrap().wait_with_output().unwrap()
    }
}

impl std::ops::Deref for Running {
    type Target = std::process::Child;
    fn deref(&self) -> &std::process::Child {
        self.0.as_ref().unwrap()
    }
}

impl std::ops::DerefMut for Running {
    fn deref_mut(&mut self) -> &mut std::process::Child {
        self.0.as_mut().unwrap()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(c) = &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn send_signal(child: &std::process::Child, sig: &str) {
    let st = Command::new("kill")
        .args([&format!("-{sig}"), &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(st.success(), "kill -{sig} failed");
}

/// Re-seals a JSON checkpoint: recomputes the `crc32:` trailer over the bytes before it.
pub fn json_reseal(bytes: &[u8]) -> Vec<u8> {
    let trailer = b",\"checksum\":\"crc32:";
    let at = bytes
        .windows(trailer.len())
        .rposition(|w| w == trailer)
        .expect("a JSON checkpoint has a checksum trailer");
    let mut out = bytes[..at].to_vec();
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(format!(",\"checksum\":\"crc32:{crc:08x}\"}}\n").as_bytes());
    out
}

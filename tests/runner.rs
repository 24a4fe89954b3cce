//! The runner as users meet it: the `orders` program driven as a real process. Bad input
//! in each `--on-bad-input` mode, signals, restarts, reruns and appends, corrupt or
//! foreign checkpoints, a (simulated) full disk, the instance lock, instance names, the
//! `simplestream checkpoints` tool, `--help` and `--follow`.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::*;

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// Byte offset of line `n` (1-based) in `join(lines)`.
fn offset_of(lines: &[Vec<u8>], n: usize) -> u64 {
    lines[..n - 1].iter().map(|l| l.len() as u64 + 1).sum()
}

fn stdout_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// An uninterrupted run over `input` in a fresh `dir`; returns `dir`.
fn reference(dir: &Path, input: &[u8], extra: &[&str]) -> PathBuf {
    let inp = put_input(dir, input);
    let mut c = orders(dir, &inp, extra);
    c.arg("--quiet");
    run_ok(c);
    dir.to_path_buf()
}

fn assert_same_outputs(reference: &Path, dir: &Path) {
    for f in ["out.jsonl", "out.jsonl.late"] {
        assert_same_file(&reference.join(f), &dir.join(f));
    }
}

fn file_len(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

/// `latest.json` of the instance, if it exists and parses.
fn latest_meta(dir: &Path) -> Option<Value> {
    let b = std::fs::read(ckpt_dir(dir).join("latest.json")).ok()?;
    serde_json::from_slice(&b).ok()
}

/// The runner's debug line when `--follow` meets a line still being written.
const WAITING_FOR_LINE: &str = "waiting for the rest of a line being written";

/// Stderr of a running process, read line by line on a thread of its own.
struct StderrWatch(std::sync::Arc<(std::sync::Mutex<Vec<String>>, std::sync::Condvar)>);

impl StderrWatch {
    fn new(child: &mut Child) -> Self {
        use std::io::BufRead;
        let shared = std::sync::Arc::new((std::sync::Mutex::new(Vec::new()), Default::default()));
        let stderr = child.stderr.take().expect("stderr is piped");
        let s2 = std::sync::Arc::clone(&shared);
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                let (lines, cv): &(std::sync::Mutex<Vec<String>>, std::sync::Condvar) = &s2;
                lines.lock().unwrap().push(line);
                cv.notify_all();
            }
        });
        StderrWatch(shared)
    }

    /// Waits until a line has every one of `parts` (bounded only as a hang guard).
    fn wait_for(&self, parts: &[&str]) -> String {
        let (lines, cv) = &*self.0;
        let mut l = lines.lock().unwrap();
        let start = Instant::now();
        loop {
            if let Some(hit) = l.iter().find(|x| parts.iter().all(|p| x.contains(p))) {
                return hit.clone();
            }
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "no stderr line with {parts:?}: {l:?}"
            );
            l = cv.wait_timeout(l, Duration::from_secs(1)).unwrap().0;
        }
    }

    fn text(&self) -> String {
        self.0 .0.lock().unwrap().join("\n")
    }
}

/// Asserts the child is still running (so a signal sent now lands mid-run).
fn assert_running(child: &mut Child, why: &str) {
    if let Some(st) = child.try_wait().unwrap() {
        panic!("orders exited ({st}) before {why}; the input is too small for this machine");
    }
}

/// Count per customer in a checkpoint's `customer_stats`.
fn counts(ck: &Value) -> std::collections::BTreeMap<String, u64> {
    ck["customer_stats"]
        .as_object()
        .unwrap_or_else(|| panic!("no customer_stats in {ck}"))
        .iter()
        .map(|(k, v)| (k.clone(), v["count"].as_u64().unwrap()))
        .collect()
}

fn assert_stats_match(ck: &Value, input: &[u8]) {
    let expected = expected_stats(&String::from_utf8_lossy(input));
    let stats = ck["customer_stats"].as_object().unwrap();
    assert_eq!(stats.len(), expected.len(), "{stats:?}");
    for (c, (count, cents)) in &expected {
        assert_eq!(stats[c]["count"].as_u64().unwrap(), *count, "count of {c}");
        let amount = stats[c]["amount"].as_f64().unwrap();
        assert!(
            (amount * 100.0 - *cents as f64).abs() < 0.5,
            "amount of {c}: {amount} vs {cents} cents"
        );
    }
}

/// Flips one bit of the byte in the middle of `path`.
fn flip_middle_byte(path: &Path) {
    let mut b = std::fs::read(path).unwrap();
    let i = b.len() / 2;
    b[i] ^= 0x01;
    std::fs::write(path, b).unwrap();
}

/// The checkpoint files of the instance, sorted by name.
fn checkpoint_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(ckpt_dir(dir))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("checkpoint_"))
        .collect();
    v.sort();
    v
}

fn latest_file(dir: &Path) -> String {
    latest_meta(dir).expect("latest.json")["file"]
        .as_str()
        .unwrap()
        .to_string()
}

// ---------------------------------------------------------------------------------------
// 1. Bad input
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum Bad {
    Malformed,
    MissingField,
    Mistyped,
    NonUtf8,
    Array,
    Trailing,
    Huge,
}

/// Number of lines of a bad-input test file, and the (1-based) number of the bad one.
const LINES: usize = 25;
const BAD_AT: usize = 12;
const HUGE: usize = 10 << 20;

impl Bad {
    fn line(self, i: usize) -> Vec<u8> {
        let ts = BASE + i as i64 * STEP;
        match self {
            Bad::Malformed => b"{not json".to_vec(),
            Bad::MissingField => format!("{{\"amount\":1.0,\"ts\":{ts}}}").into_bytes(),
            Bad::Mistyped => {
                format!("{{\"customer\":\"C1\",\"amount\":\"lots\",\"ts\":{ts}}}").into_bytes()
            }
            Bad::NonUtf8 => {
                let mut v = b"{\"customer\":\"C".to_vec(); // 14 bytes: the bad one is column 15
                v.extend_from_slice(&[0xff, 0xfe]);
                v.extend_from_slice(format!("1\",\"amount\":1.0,\"ts\":{ts}}}").as_bytes());
                v
            }
            Bad::Array => format!("[\"C1\",1.0,{ts}]").into_bytes(),
            Bad::Trailing => {
                format!("{{\"customer\":\"C1\",\"amount\":1.0,\"ts\":{ts}}} x").into_bytes()
            }
            Bad::Huge => format!(
                "{{\"customer\":\"{}\",\"amount\":1.0,\"ts\":{ts}}}",
                "x".repeat(HUGE)
            )
            .into_bytes(),
        }
    }

    /// What the error message says about the line (the whole reason, except for
    /// malformed JSON where it is serde_json's wording).
    fn reason(self) -> &'static str {
        match self {
            Bad::Malformed => "key must be a string",
            Bad::MissingField => "missing field `customer`",
            Bad::Mistyped => "field `amount`: invalid type: string \"lots\", expected f64",
            Bad::NonUtf8 => "not valid UTF-8 (bad byte at column 15)",
            Bad::Array => "a JSON array, not an object: each line must be one JSON object",
            Bad::Trailing => "trailing characters",
            Bad::Huge => "line is longer than 1048576 bytes (see --max-line-bytes)",
        }
    }

    /// Is `reason()` the complete reason?
    fn exact(self) -> bool {
        !matches!(self, Bad::Malformed)
    }

    /// The test file's lines: good ones, and this bad one at line `BAD_AT`.
    fn lines(self) -> Vec<Vec<u8>> {
        (0..LINES)
            .map(|i| {
                if i + 1 == BAD_AT {
                    self.line(i)
                } else {
                    good_line(i)
                }
            })
            .collect()
    }
}

/// The bad line replaced by a valid order of another length.
fn fixed_lines(mut lines: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    let ts = BASE + (BAD_AT as i64 - 1) * STEP;
    lines[BAD_AT - 1] =
        format!("{{\"customer\":\"C9\",\"amount\":123.5,\"ts\":{ts}}}").into_bytes();
    lines
}

fn without_bad(mut lines: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    lines.remove(BAD_AT - 1);
    lines
}

/// The stderr line that reports the bad line, with its reason.
fn assert_reports(err: &str, prefix: &str, bad: Bad, offset: u64) {
    let head = format!("{prefix}line {BAD_AT} (byte offset {offset}): ");
    let line = err
        .lines()
        .find(|l| l.contains(&head))
        .unwrap_or_else(|| panic!("{bad:?}: no `{head}` in stderr:\n{err}"));
    let reason = &line[line.find(&head).unwrap() + head.len()..];
    if bad.exact() {
        assert_eq!(reason, bad.reason(), "{bad:?}: {line}");
    } else {
        assert!(reason.contains(bad.reason()), "{bad:?}: {line}");
    }
}

fn bad_input_fail(bad: Bad) {
    let t = tmp();
    let lines = bad.lines();
    let offset = offset_of(&lines, BAD_AT);
    let fixed = join(&fixed_lines(lines.clone()));
    let refdir = reference(&t.path().join("ref"), &fixed, &[]);

    let dir = t.path().join("run");
    let input = put_input(&dir, &join(&lines));
    let extra = ["--checkpoint-every", "4"];
    let out = orders(&dir, &input, &extra).output().unwrap();
    let err = stderr_of(&out);
    assert_eq!(code(&out), Some(2), "{bad:?}: exit code; stderr:\n{err}");
    assert_reports(&err, "", bad, offset);
    assert!(
        err.contains("stopped before this line (checkpoint saved); fix the line and run again"),
        "{bad:?}: {err}"
    );
    assert!(!err.contains("done:"), "{bad:?}: {err}");

    // A checkpoint right before the bad line.
    let ck = latest_checkpoint(&dir);
    assert_eq!(pos(&ck, "source.line"), BAD_AT as u64, "{bad:?}: {ck}");
    assert_eq!(pos(&ck, "source.offset"), offset, "{bad:?}");
    assert_eq!(pos(&ck, "events"), BAD_AT as u64 - 1, "{bad:?}");
    assert_stats_match(&ck, &join(&lines[..BAD_AT - 1]));

    // Outputs hold exactly what was committed before the bad line: a prefix of the
    // reference (results of the lines before it), and not empty.
    let got = std::fs::read(dir.join("out.jsonl")).unwrap();
    assert_eq!(got.len() as u64, pos(&ck, "output.len"), "{bad:?}");
    assert!(
        !got.is_empty(),
        "{bad:?}: windows closed before the bad line"
    );
    let want = std::fs::read(refdir.join("out.jsonl")).unwrap();
    assert!(
        want.starts_with(&got) && want.len() > got.len(),
        "{bad:?}: output is not a proper prefix of the reference"
    );
    assert_eq!(
        file_len(&dir.join("out.jsonl.late")),
        pos(&ck, "late.len"),
        "{bad:?}"
    );

    // Fix the line (another length) and run again: resumes at the fixed line.
    std::fs::write(&input, &fixed).unwrap();
    let out = orders(&dir, &input, &extra).output().unwrap();
    let err = stderr_of(&out);
    assert_eq!(code(&out), Some(0), "{bad:?}: rerun after the fix:\n{err}");
    assert!(
        err.contains(&format!(
            "{} events processed, input offset {offset}",
            BAD_AT - 1
        )),
        "{bad:?}: {err}"
    );
    assert!(
        err.contains(&format!(
            "done: {LINES} events ({} this run",
            LINES - BAD_AT + 1
        )),
        "{bad:?}: {err}"
    );
    assert_same_outputs(&refdir, &dir);
    assert_stats_match(&latest_checkpoint(&dir), &fixed);
}

fn bad_input_skip(bad: Bad) {
    let t = tmp();
    let lines = bad.lines();
    let offset = offset_of(&lines, BAD_AT);
    let refdir = reference(
        &t.path().join("ref"),
        &join(&without_bad(lines.clone())),
        &[],
    );

    let dir = t.path().join("run");
    let input = put_input(&dir, &join(&lines));
    let out = orders(
        &dir,
        &input,
        &["--on-bad-input", "skip", "--checkpoint-every", "4"],
    )
    .output()
    .unwrap();
    let err = stderr_of(&out);
    assert_eq!(code(&out), Some(0), "{bad:?}:\n{err}");
    assert_reports(&err, "skipped ", bad, offset);
    assert!(
        err.contains(&format!("done: {} events", LINES - 1)) && err.contains("1 bad line(s)"),
        "{bad:?}: {err}"
    );
    assert_same_outputs(&refdir, &dir);
    assert!(!dir.join("out.jsonl.dead").exists(), "{bad:?}");
    let ck = latest_checkpoint(&dir);
    assert_eq!(pos(&ck, "source.line"), LINES as u64 + 1);
    assert_stats_match(&ck, &join(&without_bad(lines)));
}

fn bad_input_dead_letter(bad: Bad) {
    let t = tmp();
    let lines = bad.lines();
    let offset = offset_of(&lines, BAD_AT);
    let refdir = reference(
        &t.path().join("ref"),
        &join(&without_bad(lines.clone())),
        &[],
    );

    let dir = t.path().join("run");
    let input = put_input(&dir, &join(&lines));
    let out = orders(
        &dir,
        &input,
        &["--on-bad-input", "dead-letter", "--checkpoint-every", "4"],
    )
    .output()
    .unwrap();
    let err = stderr_of(&out);
    assert_eq!(code(&out), Some(0), "{bad:?}:\n{err}");
    assert_reports(&err, "dead-lettered ", bad, offset);
    assert_same_outputs(&refdir, &dir);

    let dead_path = dir.join("out.jsonl.dead");
    let dead = std::fs::read(&dead_path).unwrap();
    assert!(
        dead.len() < 1 << 21,
        "{bad:?}: dead-letter file has {} bytes",
        dead.len()
    );
    let text = String::from_utf8(dead).expect("dead letters are UTF-8 JSON lines");
    let recs: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(recs.len(), 1, "{bad:?}: {text}");
    let r = &recs[0];
    assert_eq!(r["line"], json!(BAD_AT), "{bad:?}: {r}");
    assert_eq!(r["offset"], json!(offset), "{bad:?}: {r}");
    let error = r["error"].as_str().unwrap();
    if bad.exact() {
        assert_eq!(error, bad.reason(), "{bad:?}");
    } else {
        assert!(error.contains(bad.reason()), "{bad:?}: {error}");
    }
    let raw = r["raw"].as_str().unwrap();
    match bad {
        // Not the 10 MB: the reader stops keeping bytes past --max-line-bytes (today it
        // keeps none).
        Bad::Huge => assert!(raw.len() <= 1 << 20, "{bad:?}: raw has {} bytes", raw.len()),
        _ => assert_eq!(
            raw,
            String::from_utf8_lossy(&lines[BAD_AT - 1]),
            "{bad:?}: raw"
        ),
    }
    let ck = latest_checkpoint(&dir);
    assert_eq!(pos(&ck, "dead_letter.len"), text.len() as u64);

    // A rerun does not write the dead letter again.
    run_ok(orders(&dir, &input, &["--on-bad-input", "dead-letter"]));
    assert_eq!(std::fs::read_to_string(&dead_path).unwrap(), text);
    assert_same_outputs(&refdir, &dir);
}

macro_rules! bad_input_tests {
    ($($name:ident: $kind:expr;)*) => {
        $(
            mod $name {
                use super::*;
                #[test]
                fn fail_then_fix_and_resume() {
                    bad_input_fail($kind);
                }
                #[test]
                fn skip() {
                    bad_input_skip($kind);
                }
                #[test]
                fn dead_letter() {
                    bad_input_dead_letter($kind);
                }
            }
        )*
    };
}

bad_input_tests! {
    bad_malformed_json: Bad::Malformed;
    bad_missing_field: Bad::MissingField;
    bad_mistyped_field: Bad::Mistyped;
    bad_non_utf8: Bad::NonUtf8;
    bad_json_array: Bad::Array;
    bad_trailing_characters: Bad::Trailing;
    bad_10mb_line: Bad::Huge;
}

/// Malformed JSON has no field to name; the message must not pretend it does.
#[test]
fn malformed_json_does_not_name_a_bogus_field() {
    let t = tmp();
    let dir = t.path().join("run");
    for line in [&b"{not json"[..], br#"{"customer":"C1","amount":1.0,"ts":"#] {
        let input = put_input(&dir, &join(&[line.to_vec()]));
        let out = orders(&dir, &input, &["--from-scratch"]).output().unwrap();
        let err = stderr_of(&out);
        assert_eq!(code(&out), Some(2), "{err}");
        assert!(err.contains("line 1 (byte offset 0): "), "{err}");
        assert!(!err.contains("field `?`"), "{err}");
    }
}

// ---------------------------------------------------------------------------------------
// 2. and 3. Signals and restarts
// ---------------------------------------------------------------------------------------

const SIGNAL_LINES: usize = 250_000;

/// SIGTERM/SIGINT mid-run: a clean stop with a checkpoint; the restart finishes with the
/// output of a run that never stopped.
fn stop_by_signal(sig: &str, seed: u64) {
    let t = tmp();
    let text = order_lines(seed, SIGNAL_LINES, 300, 997, 0);
    let refdir = reference(&t.path().join("ref"), text.as_bytes(), &[]);
    let dir = t.path().join("run");
    let input = put_input(&dir, text.as_bytes());
    let extra = ["--checkpoint-every", "300"];

    // The signal arrives while the program stands at a pause point after 5000 events
    // (signal handlers are installed before the first event): it stops right there.
    let mut child = spawn_until_paused(orders(&dir, &input, &extra), &[5_000]);
    send_signal(&child.child, sig);
    child.resume();
    let (status, err) = child.finish();
    assert_eq!(status.code(), Some(0), "SIG{sig}: {status}\n{err}");
    assert!(err.contains("stopped by signal: 5000 events"), "{err}");
    let ck = latest_checkpoint(&dir);
    let events = pos(&ck, "events");
    assert_eq!(events, 5_000);
    assert_eq!(file_len(&dir.join("out.jsonl")), pos(&ck, "output.len"));
    assert_eq!(file_len(&dir.join("out.jsonl.late")), pos(&ck, "late.len"));

    let out = run_ok(orders(&dir, &input, &extra));
    let err = stderr_of(&out);
    assert!(
        err.contains(&format!(
            "restored checkpoint #{} ",
            ck["checkpoint_id"].as_u64().unwrap()
        )),
        "{err}"
    );
    assert!(err.contains(&format!("{events} events processed")), "{err}");
    assert!(
        err.contains(&format!("done: {SIGNAL_LINES} events")),
        "{err}"
    );
    assert_same_outputs(&refdir, &dir);
    assert_stats_match(&latest_checkpoint(&dir), text.as_bytes());
}

#[test]
fn sigterm_stops_cleanly_and_the_restart_finishes() {
    stop_by_signal("TERM", 31);
}

#[test]
fn sigint_stops_cleanly_and_the_restart_finishes() {
    stop_by_signal("INT", 32);
}

const SAVEPOINT_LINES: usize = 20_000;

/// SIGUSR1 at event 5000 takes a savepoint there; the 50 checkpoints after it, with
/// `--keep 1`, never delete it; `--from-savepoint` restarts from it (the outputs cut
/// back to its lengths) and the output equals a run that never stopped.
fn savepoint_by_signal(extra: &[&str], ext: &str, seed: u64) {
    let t = tmp();
    let text = order_lines(seed, SAVEPOINT_LINES, 300, 997, 0);
    let refdir = reference(&t.path().join("ref"), text.as_bytes(), &[]);
    let dir = t.path().join("run");
    let input = put_input(&dir, text.as_bytes());
    let mut args = vec!["--checkpoint-every", "300", "--keep", "1"];
    args.extend(extra);
    let with = |more: &[&str]| orders(&dir, &input, &[&args[..], more].concat());

    let mut child = spawn_until_paused(with(&["--savepoint-name", "sp-1"]), &[5_000]);
    send_signal(&child.child, "USR1");
    child.resume();
    let (status, err) = child.finish();
    assert_eq!(status.code(), Some(0), "{status}\n{err}");
    let file = format!("checkpoint_savepoint-sp-1.{ext}");
    assert!(
        err.contains(&format!("savepoint `sp-1` taken ({file}, checkpoint #")),
        "{err}"
    );
    assert!(err.contains(", 5000 events): retention keeps it"), "{err}");
    assert_same_outputs(&refdir, &dir);
    let taken: u64 = err
        .lines()
        .find(|l| l.starts_with("done: "))
        .and_then(|l| l.split(" checkpoint(s)").next())
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{err}"));
    assert!(taken >= 50, "checkpoints after the savepoint: {err}");
    assert!(ckpt_dir(&dir).join(&file).is_file(), "retention deleted it");
    let list = Command::new(orders_bin())
        .args(["checkpoints", "list"])
        .arg(dir.join("ckpt"))
        .args(["--instance", "app-instance-1"])
        .output()
        .unwrap();
    let list = stdout_of(&list);
    let row = list
        .lines()
        .find(|l| l.ends_with(&file))
        .unwrap_or_else(|| panic!("{list}"));
    assert!(
        row.contains("savepoint") && row.contains("5000  yes"),
        "{row}"
    );
    assert!(
        list.lines().filter(|l| l.contains("(latest)")).count() == 1,
        "{list}"
    );

    let out = run_ok(with(&["--from-savepoint", "sp-1"]));
    let err = stderr_of(&out);
    assert!(
        err.contains(&format!("restored savepoint `sp-1` ({file}, taken "))
            && err.contains("5000 events processed"),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "done: {SAVEPOINT_LINES} events ({} this run",
            SAVEPOINT_LINES - 5_000
        )),
        "{err}"
    );
    assert_same_outputs(&refdir, &dir);
    assert!(ckpt_dir(&dir).join(&file).is_file());
}

#[test]
fn a_savepoint_by_signal_outlives_retention_and_restarts_the_run() {
    savepoint_by_signal(&[], "json", 41);
}

#[test]
fn a_savepoint_outlives_incremental_retention() {
    savepoint_by_signal(&["--incremental", "--codec", "binary"], "bin", 42);
}

/// `checkpoints savepoint` from outside the program, killed at event 2200: the latest
/// checkpoint (at 2100), an
/// incremental one merged into a whole one by the program (the `simplestream` tool,
/// which cannot decode binary deltas, says so and writes nothing); a name taken is
/// refused; `--from-savepoint` restores it with every other checkpoint gone, and the
/// output equals a run that never stopped.
#[test]
fn savepoint_command_takes_the_latest_checkpoint_whole() {
    let t = tmp();
    let text = order_lines(44, 4_000, 200, 997, 0);
    let refdir = reference(&t.path().join("ref"), text.as_bytes(), &[]);
    let dir = t.path().join("run");
    let input = put_input(&dir, text.as_bytes());
    let args = [
        "--checkpoint-every",
        "300",
        "--incremental",
        "--codec",
        "binary",
    ];
    let mut p = spawn_until_paused(orders(&dir, &input, &args), &[2_200]);
    p.child.kill().unwrap();
    p.child.wait().unwrap();
    assert!(
        latest_file(&dir).contains(".manifest."),
        "{}",
        latest_file(&dir)
    );
    let file = "checkpoint_savepoint-sp-1.bin";

    let out = tool(&["savepoint", "sp-1"], &dir);
    let err = stderr_of(&out);
    assert_eq!(code(&out), Some(1), "{err}");
    assert!(
        err.contains("is an incremental checkpoint of pipeline `Orders` (base and deltas): merging them takes the pipeline"),
        "{err}"
    );
    assert!(!ckpt_dir(&dir).join(file).exists());

    let out = own(&["savepoint", "sp-1"], &dir);
    let said = stdout_of(&out);
    assert_eq!(code(&out), Some(0), "{said}{}", stderr_of(&out));
    assert!(
        said.starts_with(&format!("savepoint `sp-1` written: {file} in ")),
        "{said}"
    );
    assert!(said.contains("its base and deltas merged"), "{said}");
    assert!(
        said.contains(", 2100 events; restore it with --from-savepoint sp-1"),
        "{said}"
    );
    let written = std::fs::read(ckpt_dir(&dir).join(file)).unwrap();

    let out = own(&["savepoint", "sp-1"], &dir);
    let err = stderr_of(&out);
    assert_eq!(code(&out), Some(1), "{err}");
    assert!(
        err.contains("already holds a savepoint of that name"),
        "{err}"
    );
    assert_eq!(std::fs::read(ckpt_dir(&dir).join(file)).unwrap(), written);
    let list = stdout_of(&tool(&["list"], &dir));
    let row = list
        .lines()
        .find(|l| l.ends_with(file))
        .unwrap_or_else(|| panic!("{list}"));
    assert!(
        row.contains("savepoint") && row.contains("2100  yes"),
        "{row}"
    );

    // Only the savepoint is left to restore from: it holds the whole state.
    for name in checkpoint_files(&dir) {
        if name != file {
            std::fs::remove_file(ckpt_dir(&dir).join(name)).unwrap();
        }
    }
    let out = run_ok(orders(
        &dir,
        &input,
        &[&args[..], &["--from-savepoint", "sp-1"]].concat(),
    ));
    assert!(
        stderr_of(&out).contains("2100 events processed"),
        "{}",
        stderr_of(&out)
    );
    assert_same_outputs(&refdir, &dir);
}

/// The `simplestream` tool copies a whole checkpoint into a savepoint as it is.
#[test]
fn savepoint_tool_copies_a_whole_checkpoint() {
    let t = tmp();
    let dir = t.path().to_path_buf();
    let input = put_input(&dir, order_lines(45, 500, 20, 0, 0).as_bytes());
    run_ok(orders(&dir, &input, &["--quiet"]));
    let latest = std::fs::read(ckpt_dir(&dir).join(latest_file(&dir))).unwrap();
    let out = Command::new(tool_bin())
        .args(["savepoint"])
        .arg(dir.join("ckpt"))
        .args(["before-v2", "--instance", "app-instance-1"])
        .output()
        .unwrap();
    assert_eq!(code(&out), Some(0), "{}", stderr_of(&out));
    assert!(
        stdout_of(&out).contains("a whole checkpoint, copied as it is"),
        "{}",
        stdout_of(&out)
    );
    let sp = std::fs::read(ckpt_dir(&dir).join("checkpoint_savepoint-before-v2.json")).unwrap();
    assert_eq!(sp, latest);
}

/// A missing savepoint, or another pipeline's, is refused in one line before anything
/// is written.
#[test]
fn from_savepoint_refuses_a_missing_or_foreign_one() {
    let t = tmp();
    let dir = t.path().to_path_buf();
    let text = order_lines(43, 2_000, 50, 0, 0);
    let input = put_input(&dir, text.as_bytes());
    run_ok(orders(&dir, &input, &["--quiet"]));
    let out_before = std::fs::read(dir.join("out.jsonl")).unwrap();
    let ck_before = std::fs::read(ckpt_dir(&dir).join("latest.json")).unwrap();
    let latest: Value = serde_json::from_slice(&ck_before).unwrap();
    let own = std::fs::read(ckpt_dir(&dir).join(latest["file"].as_str().unwrap())).unwrap();
    let foreign = String::from_utf8(own).unwrap().replacen(
        "\"pipeline\":\"Orders\"",
        "\"pipeline\":\"Billing\"",
        1,
    );
    let sp = ckpt_dir(&dir).join("checkpoint_savepoint-other.json");
    std::fs::write(&sp, json_reseal(foreign.as_bytes())).unwrap();
    let refusals = [
        (
            "nope",
            "savepoint `nope`: there is no savepoint of that name in ",
        ),
        (
            "other",
            "savepoint `other`: checkpoint_savepoint-other.json cannot be restored: ",
        ),
    ];
    for (name, says) in refusals {
        let out = orders(&dir, &input, &["--quiet", "--from-savepoint", name])
            .output()
            .unwrap();
        let err = stderr_of(&out);
        assert_eq!(code(&out), Some(1), "{err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(err.contains(says), "{err}");
        assert_eq!(std::fs::read(dir.join("out.jsonl")).unwrap(), out_before);
        let latest_now = std::fs::read(ckpt_dir(&dir).join("latest.json")).unwrap();
        assert_eq!(latest_now, ck_before);
    }
    let err = stderr_of(
        &orders(&dir, &input, &["--from-savepoint", "../x"])
            .output()
            .unwrap(),
    );
    assert!(err.contains("is not a savepoint name"), "{err}");
}

#[test]
fn restart_after_sigkill_says_what_it_restored() {
    let t = tmp();
    let text = order_lines(33, 100_000, 200, 997, 0);
    let refdir = reference(&t.path().join("ref"), text.as_bytes(), &[]);
    let dir = t.path().join("run");
    let input = put_input(&dir, text.as_bytes());
    let extra = ["--checkpoint-every", "300"];

    // Killed after 1150 events: the latest checkpoint is the one at 900.
    spawn_until_paused(orders(&dir, &input, &extra), &[1_150]).kill();

    let meta = latest_meta(&dir).unwrap();
    let id = meta["checkpoint_id"].as_u64().unwrap();
    let events = pos(&meta, "events");
    assert_eq!(events, 900);
    let out = run_ok(orders(&dir, &input, &extra));
    let err = stderr_of(&out);
    assert!(
        err.contains(&format!(
            "restored checkpoint #{id} ({}) taken ",
            meta["file"].as_str().unwrap()
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{events} events processed, input offset {}",
            pos(&meta, "source.offset")
        )),
        "{err}"
    );
    assert_same_outputs(&refdir, &dir);
}

// ---------------------------------------------------------------------------------------
// 4. Reruns and appends
// ---------------------------------------------------------------------------------------

#[test]
fn rerun_changes_nothing_and_appended_lines_are_processed_once() {
    let t = tmp();
    let dir = t.path().join("run");
    let lines: Vec<Vec<u8>> = (0..20).map(good_line).collect();
    let input = put_input(&dir, &join(&lines));
    run_ok(orders(&dir, &input, &[]));
    let out1 = std::fs::read(dir.join("out.jsonl")).unwrap();
    let late1 = std::fs::read(dir.join("out.jsonl.late")).unwrap();
    assert!(!out1.is_empty());
    let c1 = counts(&latest_checkpoint(&dir));

    // Rerun: nothing new, nothing changes.
    let out = run_ok(orders(&dir, &input, &[]));
    assert!(
        stderr_of(&out).contains("done: 20 events (0 this run"),
        "{}",
        stderr_of(&out)
    );
    assert_eq!(std::fs::read(dir.join("out.jsonl")).unwrap(), out1);
    assert_eq!(std::fs::read(dir.join("out.jsonl.late")).unwrap(), late1);
    assert_eq!(counts(&latest_checkpoint(&dir)), c1);

    // An order of C1 in a later window: counted once, its window is written at the end.
    let ts = BASE + 30 * STEP;
    let new = format!("{{\"customer\":\"C1\",\"amount\":4.5,\"ts\":{ts}}}\n");
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&input)
        .unwrap();
    std::io::Write::write_all(&mut f, new.as_bytes()).unwrap();
    let out = run_ok(orders(&dir, &input, &[]));
    assert!(
        stderr_of(&out).contains("done: 21 events (1 this run"),
        "{}",
        stderr_of(&out)
    );
    let c2 = counts(&latest_checkpoint(&dir));
    assert_eq!(c2["C1"], c1["C1"] + 1);
    assert_eq!(c2["C2"], c1["C2"]);
    assert_eq!(c2["C3"], c1["C3"]);
    let out2 = std::fs::read(dir.join("out.jsonl")).unwrap();
    assert!(
        out2.starts_with(&out1),
        "earlier results are kept as they were"
    );
    let added: Vec<Value> = String::from_utf8(out2[out1.len()..].to_vec())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let win = ts - ts % 300_000;
    assert_eq!(
        added,
        vec![
            json!({"customer":"C1","window_start":win,"window_end":win + 300_000,"orders":1,"amount":4.5})
        ]
    );
    assert_eq!(std::fs::read(dir.join("out.jsonl.late")).unwrap(), late1);

    // An order far behind the watermark: late, yet counted (the count is not windowed).
    let late = format!("{{\"customer\":\"C2\",\"amount\":7.5,\"ts\":{BASE}}}\n");
    std::io::Write::write_all(&mut f, late.as_bytes()).unwrap();
    drop(f);
    run_ok(orders(&dir, &input, &[]));
    let c3 = counts(&latest_checkpoint(&dir));
    assert_eq!(c3["C2"], c2["C2"] + 1);
    assert_eq!(c3["C1"], c2["C1"]);
    assert_eq!(std::fs::read(dir.join("out.jsonl")).unwrap(), out2);
    let late2 = std::fs::read(dir.join("out.jsonl.late")).unwrap();
    assert!(late2.starts_with(&late1));
    let late_recs: Vec<Value> = String::from_utf8(late2[late1.len()..].to_vec())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        late_recs,
        vec![json!({"stage":"per_5min","event":{"customer":"C2","amount":7.5,"ts":BASE}})]
    );
    // The late line is written as-is (field order of the event).
    assert!(String::from_utf8_lossy(&late2).contains(
        &format!("{{\"stage\":\"per_5min\",\"event\":{{\"customer\":\"C2\",\"amount\":7.5,\"ts\":{BASE}}}}}\n")
    ));

    // And again: nothing changes.
    run_ok(orders(&dir, &input, &[]));
    assert_eq!(std::fs::read(dir.join("out.jsonl")).unwrap(), out2);
    assert_eq!(std::fs::read(dir.join("out.jsonl.late")).unwrap(), late2);
    assert_eq!(counts(&latest_checkpoint(&dir)), c3);
}

// ---------------------------------------------------------------------------------------
// 5. Corruption seen by the program
// ---------------------------------------------------------------------------------------

#[test]
fn corrupt_checkpoint_or_latest_record_falls_back_and_recovers() {
    let t = tmp();
    let text = order_lines(41, 20_000, 50, 997, 0);
    let extra = ["--checkpoint-every", "2000"];
    let refdir = reference(&t.path().join("ref"), text.as_bytes(), &extra);
    let dir = t.path().join("run");
    let input = put_input(&dir, text.as_bytes());
    run_ok(orders(&dir, &input, &extra));
    assert!(checkpoint_files(&dir).len() >= 3);

    // A flipped byte in the newest checkpoint: falls back to the one before it.
    let newest = latest_file(&dir);
    flip_middle_byte(&ckpt_dir(&dir).join(&newest));
    let before = checkpoint_files(&dir);
    let older = before[before.len() - 2].clone();
    let out = run_ok(orders(&dir, &input, &extra));
    let err = stderr_of(&out);
    assert!(
        err.contains(&format!(
            "latest points to {newest}, which cannot be restored"
        )),
        "{err}"
    );
    assert!(err.contains("checksum mismatch"), "{err}");
    assert!(
        err.contains(&format!(
            "fell back to {older}, the newest checkpoint that verifies"
        )),
        "{err}"
    );
    assert_same_outputs(&refdir, &dir);
    assert_stats_match(&latest_checkpoint(&dir), text.as_bytes());

    // latest.json deleted: the newest checkpoint is found without it.
    let newest = latest_file(&dir);
    std::fs::remove_file(ckpt_dir(&dir).join("latest.json")).unwrap();
    let out = run_ok(orders(&dir, &input, &extra));
    let err = stderr_of(&out);
    assert!(err.contains("the latest record is missing"), "{err}");
    assert!(err.contains(&format!("fell back to {newest}")), "{err}");
    assert_same_outputs(&refdir, &dir);

    // latest.json garbled.
    let newest = latest_file(&dir);
    std::fs::write(
        ckpt_dir(&dir).join("latest.json"),
        b"{\"checkpoint_id\": 7, gar",
    )
    .unwrap();
    let out = run_ok(orders(&dir, &input, &extra));
    let err = stderr_of(&out);
    assert!(err.contains("latest record is corrupt"), "{err}");
    assert!(err.contains(&format!("fell back to {newest}")), "{err}");
    assert_same_outputs(&refdir, &dir);
    assert!(latest_meta(&dir).is_some(), "latest.json is rewritten");
}

/// The latest record points to a deleted file: the newest file that is there is used.
/// The only checkpoint corrupt: refused with exit 1, outputs untouched.
#[test]
fn missing_latest_file_falls_back_and_a_lone_corrupt_checkpoint_is_refused() {
    let t = tmp();
    let text = order_lines(47, 5_000, 20, 0, 0);
    let extra = ["--checkpoint-every", "1000"];
    let refdir = reference(&t.path().join("ref"), text.as_bytes(), &extra);
    let dir = t.path().join("run");
    let input = put_input(&dir, text.as_bytes());
    run_ok(orders(&dir, &input, &extra));

    let newest = latest_file(&dir);
    std::fs::remove_file(ckpt_dir(&dir).join(&newest)).unwrap();
    let files = checkpoint_files(&dir);
    let out = run_ok(orders(&dir, &input, &extra));
    let err = stderr_of(&out);
    assert!(
        err.contains(&format!(
            "latest points to {newest}, which cannot be restored"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!("fell back to {}", files.last().unwrap())),
        "{err}"
    );
    assert_same_outputs(&refdir, &dir);

    // Keep one checkpoint and corrupt it: nothing can be restored.
    let newest = latest_file(&dir);
    for f in checkpoint_files(&dir) {
        if f != newest {
            std::fs::remove_file(ckpt_dir(&dir).join(f)).unwrap();
        }
    }
    flip_middle_byte(&ckpt_dir(&dir).join(&newest));
    std::fs::write(dir.join("out.jsonl.late"), b"left alone\n").unwrap();
    let out_before = std::fs::read(dir.join("out.jsonl")).unwrap();
    let out = orders(&dir, &input, &extra).output().unwrap();
    let err = stderr_of(&out);
    assert_eq!(code(&out), Some(1), "{err}");
    assert!(err.contains("can be restored:"), "{err}");
    assert!(
        err.contains(&newest) && err.contains("checksum mismatch"),
        "{err}"
    );
    assert!(err.contains("nothing was loaded"), "{err}");
    assert_eq!(std::fs::read(dir.join("out.jsonl")).unwrap(), out_before);
    assert_eq!(
        std::fs::read(dir.join("out.jsonl.late")).unwrap(),
        b"left alone\n"
    );
    // --from-scratch gets going again.
    let out = run_ok(orders(&dir, &input, &["--from-scratch"]));
    assert!(
        stderr_of(&out).contains("--from-scratch: ignoring 1 existing checkpoint(s)"),
        "{}",
        stderr_of(&out)
    );
    assert_same_outputs(&refdir, &dir);
}

/// Input or output changed behind the program's back (shorter, or replaced by other
/// bytes of the same length or longer): refused, and the files are left as they are.
#[test]
fn changed_input_or_output_is_refused() {
    let t = tmp();
    let text = order_lines(48, 3_000, 20, 0, 0);
    let dir = t.path().join("run");
    let input = put_input(&dir, text.as_bytes());
    run_ok(orders(&dir, &input, &[]));
    let ck = latest_checkpoint(&dir);

    // Input shorter than the checkpoint's offset.
    let half = &text.as_bytes()[..text.len() / 2];
    std::fs::write(&input, half).unwrap();
    let out = orders(&dir, &input, &[]).output().unwrap();
    let err = stderr_of(&out);
    assert_eq!(code(&out), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "the checkpoint is at byte {} of {}, but the file has only {} bytes",
            pos(&ck, "source.offset"),
            input.display(),
            half.len()
        )),
        "{err}"
    );
    assert!(err.contains("--from-scratch"), "{err}");

    // Input of the same length with other bytes before the offset.
    let mut other = text.clone().into_bytes();
    let i = other.len() - 20;
    other[i] = if other[i] == b'1' { b'2' } else { b'1' };
    std::fs::write(&input, &other).unwrap();
    let out = orders(&dir, &input, &[]).output().unwrap();
    let err = stderr_of(&out);
    assert_eq!(code(&out), Some(1), "{err}");
    assert!(err.contains("changed since the checkpoint"), "{err}");
    std::fs::write(&input, &text).unwrap();

    // Output shorter than what the checkpoint committed.
    let out_path = dir.join("out.jsonl");
    let full = std::fs::read(&out_path).unwrap();
    std::fs::write(&out_path, &full[..full.len() / 2]).unwrap();
    let out = orders(&dir, &input, &[]).output().unwrap();
    let err = stderr_of(&out);
    assert_eq!(code(&out), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "{} has {} bytes but the checkpoint committed {}",
            out_path.display(),
            full.len() / 2,
            full.len()
        )),
        "{err}"
    );
    assert_eq!(file_len(&out_path), full.len() as u64 / 2, "left as it was");

    // Output replaced by a file of the same size, or a larger one.
    let mut same_size = full.clone();
    let j = same_size.len() - 5;
    same_size[j] = b'#';
    let mut larger = b"the user's own notes\n".to_vec();
    larger.extend_from_slice(&full);
    for theirs in [same_size, larger] {
        std::fs::write(&out_path, &theirs).unwrap();
        let out = orders(&dir, &input, &[]).output().unwrap();
        let err = stderr_of(&out);
        assert_eq!(code(&out), Some(1), "{err}");
        assert!(
            err.contains(&format!(
                "{} is not the file this program wrote",
                out_path.display()
            )),
            "{err}"
        );
        assert_eq!(std::fs::read(&out_path).unwrap(), theirs, "left as it was");
    }

    // Put back, the run goes on.
    std::fs::write(&out_path, &full).unwrap();
    run_ok(orders(&dir, &input, &[]));
    assert_eq!(std::fs::read(&out_path).unwrap(), full);
}

/// A corrupt checkpoint met mid-way: the restart after a SIGKILL falls back past it and
/// still ends with the reference output.
#[test]
fn corrupt_newest_checkpoint_after_a_crash_falls_back() {
    let t = tmp();
    let text = order_lines(42, 20_000, 50, 997, 0);
    let extra = ["--checkpoint-every", "2000", "--codec", "binary"];
    let refdir = reference(&t.path().join("ref"), text.as_bytes(), &extra);
    let dir = t.path().join("run");
    let input = put_input(&dir, text.as_bytes());
    // Run over the first half (--follow waits at its end), SIGKILL, corrupt the newest checkpoint.
    let half: String = text
        .lines()
        .take(10_000)
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&input, &half).unwrap();
    let mut child = orders(
        &dir,
        &input,
        &[
            "--checkpoint-every",
            "2000",
            "--codec",
            "binary",
            "--follow",
        ],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .map(Running::new)
    .unwrap();
    wait_until("5 checkpoints", GUARD, || {
        latest_meta(&dir).is_some_and(|m| pos(&m, "events") == 10_000)
    });
    child.kill().unwrap();
    child.wait().unwrap();
    std::fs::write(&input, &text).unwrap();
    let newest = latest_file(&dir);
    assert!(newest.ends_with(".bin"), "{newest}");
    flip_middle_byte(&ckpt_dir(&dir).join(&newest));
    let out = run_ok(orders(&dir, &input, &extra));
    let err = stderr_of(&out);
    assert!(
        err.contains(&newest) && err.contains("fell back to"),
        "{err}"
    );
    assert!(err.contains("8000 events processed"), "{err}");
    assert_same_outputs(&refdir, &dir);
}

#[test]
fn checkpoint_of_a_foreign_pipeline_is_refused_until_from_scratch() {
    let t = tmp();
    let text = order_lines(43, 3_000, 20, 0, 0);
    let refdir = reference(&t.path().join("ref"), text.as_bytes(), &[]);
    let dir = t.path().join("run");
    let input = put_input(&dir, text.as_bytes());
    run_ok(orders(&dir, &input, &["--checkpoint-every", "1000"]));

    // Keep only the newest checkpoint, and make it another pipeline's.
    let newest = latest_file(&dir);
    for f in checkpoint_files(&dir) {
        if f != newest {
            std::fs::remove_file(ckpt_dir(&dir).join(f)).unwrap();
        }
    }
    let path = ckpt_dir(&dir).join(&newest);
    let original = std::fs::read(&path).unwrap();
    let s = String::from_utf8(original.clone()).unwrap();
    assert_eq!(s.matches("\"pipeline\":\"Orders\"").count(), 1);
    let foreign = json_reseal(
        s.replace("\"pipeline\":\"Orders\"", "\"pipeline\":\"Others\"")
            .as_bytes(),
    );
    assert_eq!(foreign.len(), original.len());
    std::fs::write(&path, &foreign).unwrap();

    // The tool agrees the file itself is sound (checksum ok), it just is not ours.
    let v = Command::new(tool_bin())
        .args(["checkpoints", "list"])
        .arg(dir.join("ckpt"))
        .args(["--instance", "app-instance-1"])
        .output()
        .unwrap();
    assert!(v.status.success());
    assert!(stdout_of(&v).contains(&newest), "{}", stdout_of(&v));

    let out_before = std::fs::read(dir.join("out.jsonl")).unwrap();
    let late_before = std::fs::read(dir.join("out.jsonl.late")).unwrap();
    // Make the outputs look like an interrupted run: a refused start must not touch them.
    std::fs::write(dir.join("out.jsonl"), b"partial\n").unwrap();
    let out = orders(&dir, &input, &[]).output().unwrap();
    let err = stderr_of(&out);
    assert_eq!(code(&out), Some(1), "{err}");
    assert!(err.contains("belongs to pipeline `Others`"), "{err}");
    assert!(err.contains("not `Orders`"), "{err}");
    assert!(err.contains("can be restored"), "{err}");
    assert!(err.contains(&newest), "{err}");
    assert!(err.contains("--from-scratch"), "{err}");
    assert_eq!(std::fs::read(dir.join("out.jsonl")).unwrap(), b"partial\n");
    assert_eq!(
        std::fs::read(dir.join("out.jsonl.late")).unwrap(),
        late_before
    );
    assert_eq!(
        std::fs::read(&path).unwrap(),
        foreign,
        "the checkpoint is left alone"
    );

    // --from-scratch runs, says so, and rewrites the outputs.
    let out = run_ok(orders(&dir, &input, &["--from-scratch"]));
    let err = stderr_of(&out);
    assert!(
        err.contains("--from-scratch: ignoring 1 existing checkpoint(s)"),
        "{err}"
    );
    assert!(
        err.contains("outputs are rewritten from the start"),
        "{err}"
    );
    assert_same_outputs(&refdir, &dir);
    assert_eq!(std::fs::read(dir.join("out.jsonl")).unwrap(), out_before);
    // Its checkpoint is newer than the foreign one, and a normal run now uses it.
    let ck = latest_checkpoint(&dir);
    assert_eq!(ck["pipeline"], "Orders");
    let out = run_ok(orders(&dir, &input, &[]));
    assert!(
        stderr_of(&out).contains(&format!(
            "restored checkpoint #{} ",
            ck["checkpoint_id"].as_u64().unwrap()
        )),
        "{}",
        stderr_of(&out)
    );
    assert_same_outputs(&refdir, &dir);
}

// ---------------------------------------------------------------------------------------
// 6. Simulated full disk
// ---------------------------------------------------------------------------------------

#[test]
fn full_disk_stops_with_the_previous_checkpoint_valid_and_nothing_is_lost() {
    let t = tmp();
    let text = order_lines(44, 10_000, 50, 997, 0);
    let refdir = reference(&t.path().join("ref"), text.as_bytes(), &[]);
    let dir = t.path().join("run");
    let input = put_input(&dir, text.as_bytes());
    let extra = [
        "--checkpoint-every",
        "1000",
        "--max-failed-checkpoints",
        "3",
    ];
    // The fourth write fails: #0 (the start), #1 and #2 are stored, #3 is not.
    let mut c = orders(&dir, &input, &extra);
    c.env("SIMPLESTREAM_FAIL_WRITES", "4");
    let out = c.output().unwrap();
    let err = stderr_of(&out);
    assert_eq!(code(&out), Some(1), "{err}");
    assert!(err.contains("simulated: no space left on device"), "{err}");
    // The path of the checkpoint that could not be written (the third).
    let cdir = ckpt_dir(&dir).display().to_string();
    let failed_path = err
        .lines()
        .find(|l| l.contains("checkpoint failed (1/3 in a row)"))
        .unwrap_or_else(|| panic!("{err}"));
    assert!(
        failed_path.contains(&format!("writing checkpoint {cdir}/checkpoint_"))
            && failed_path.contains("-000003.json"),
        "{failed_path}"
    );
    assert!(err.contains("checkpoint failed (2/3 in a row)"), "{err}");
    assert!(err.contains("checkpoint failed (3/3 in a row)"), "{err}");
    assert!(
        err.contains("3 checkpoints failed in a row; stopping"),
        "{err}"
    );
    let meta = latest_meta(&dir).unwrap();
    assert_eq!(meta["checkpoint_id"], 2);
    assert!(
        err.contains(&format!(
            "the previous checkpoint ({}) stays valid",
            meta["file"].as_str().unwrap()
        )),
        "{err}"
    );
    assert_eq!(pos(&meta, "events"), 2000);
    assert_eq!(
        checkpoint_files(&dir).len(),
        3,
        "nothing written past the failure"
    );
    assert!(!err.contains("done:"), "{err}");

    // Disk "freed": the next run resumes from checkpoint #2 and loses nothing.
    let out = run_ok(orders(&dir, &input, &extra));
    let err = stderr_of(&out);
    assert!(err.contains("restored checkpoint #2 "), "{err}");
    assert!(err.contains("2000 events processed"), "{err}");
    assert_same_outputs(&refdir, &dir);
    assert_stats_match(&latest_checkpoint(&dir), text.as_bytes());
}

// ---------------------------------------------------------------------------------------
// 7. One process per instance
// ---------------------------------------------------------------------------------------

#[test]
fn second_process_on_the_same_instance_is_refused() {
    let t = tmp();
    let text = order_lines(45, 2_000, 20, 0, 0);
    let dir = t.path().join("run");
    let input = put_input(&dir, text.as_bytes());
    // --follow keeps the first one running for as long as the test needs.
    let mut first = orders(&dir, &input, &["--follow"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(Running::new)
        .unwrap();
    let pid = first.id();
    let lock = ckpt_dir(&dir).join(".lock");
    wait_until("the lock", GUARD, || {
        std::fs::read_to_string(&lock).is_ok_and(|s| s.trim() == pid.to_string())
    });
    wait_until("the first run to read everything", GUARD, || {
        latest_meta(&dir).is_some_and(|m| pos(&m, "events") == 2_000)
    });
    let out_before = std::fs::read(dir.join("out.jsonl")).unwrap();

    // Refused, not queued behind the lock: the first one never exits on its own, so a
    // second one that waited would hang here (the guard only bounds that hang).
    let second = orders(&dir, &input, &[])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map(Running::new)
        .unwrap();
    let out = finish_within(second, Duration::from_secs(120), "the second process");
    let err = stderr_of(&out);
    assert_eq!(code(&out), Some(1), "{err}");
    assert!(
        err.contains("another process is running on instance `app-instance-1`"),
        "{err}"
    );
    assert!(err.contains(&format!("held by pid {pid}")), "{err}");
    assert!(err.contains(&lock.display().to_string()), "{err}");
    assert_running(&mut first, "the end of the test");
    assert_eq!(std::fs::read(dir.join("out.jsonl")).unwrap(), out_before);

    // Another instance on the same directory is fine meanwhile.
    let other = t.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    let out = Command::new(orders_bin())
        .arg("--input")
        .arg(&input)
        .arg("--output")
        .arg(other.join("out.jsonl"))
        .arg("--checkpoint-dir")
        .arg(dir.join("ckpt"))
        .args(["--instance", "app-instance-2", "--quiet"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));

    first.kill().unwrap();
    first.wait().unwrap();
    // The lock died with the process.
    run_ok(orders(&dir, &input, &["--quiet"]));
}

// ---------------------------------------------------------------------------------------
// 8. Instance names
// ---------------------------------------------------------------------------------------

#[test]
fn bad_instance_names_are_refused_and_create_nothing() {
    let t = tmp();
    let input = t.path().join("in.jsonl");
    std::fs::write(&input, join(&[good_line(0)])).unwrap();
    let work = t.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    for bad in ["../evil", "a/b", "..", ".hidden", "/abs", ""] {
        let out = Command::new(orders_bin())
            .current_dir(&work)
            .arg("--input")
            .arg(&input)
            .arg("--output")
            .arg(work.join("out.jsonl"))
            .arg("--checkpoint-dir")
            .arg(work.join("ckpt"))
            .args(["--instance", bad])
            .output()
            .unwrap();
        let err = stderr_of(&out);
        assert_eq!(code(&out), Some(1), "{bad:?}: {err}");
        assert!(
            err.contains(&format!("checking instance name {bad:?}")),
            "{bad:?}: {err}"
        );
        assert!(err.contains("use letters, digits"), "{bad:?}: {err}");
    }
    let left: Vec<_> = std::fs::read_dir(&work).unwrap().collect();
    assert!(left.is_empty(), "created: {left:?}");
    let mut top: Vec<_> = std::fs::read_dir(t.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    top.sort();
    assert_eq!(top, ["in.jsonl", "work"]);
}

// ---------------------------------------------------------------------------------------
// 9. The checkpoint tool
// ---------------------------------------------------------------------------------------

fn tool(args: &[&str], dir: &Path) -> Output {
    checkpoints_of(tool_bin(), args, dir)
}

/// The program's own `checkpoints` subcommand (it decodes its binary checkpoints).
fn own(args: &[&str], dir: &Path) -> Output {
    checkpoints_of(orders_bin(), args, dir)
}

fn checkpoints_of(bin: PathBuf, args: &[&str], dir: &Path) -> Output {
    Command::new(bin)
        .args(["checkpoints", args[0]])
        .arg(dir.join("ckpt"))
        .args(["--instance", "app-instance-1"])
        .args(&args[1..])
        .output()
        .unwrap()
}

#[test]
fn checkpoints_tool_lists_shows_and_verifies() {
    let t = tmp();
    let text = order_lines(46, 6_000, 40, 997, 0);
    let json_dir = t.path().join("json");
    let bin_dir = t.path().join("bin");
    reference(
        &json_dir,
        text.as_bytes(),
        &["--checkpoint-every", "1000", "--keep", "3"],
    );
    reference(
        &bin_dir,
        text.as_bytes(),
        &[
            "--checkpoint-every",
            "1000",
            "--codec",
            "binary",
            "--keep",
            "3",
        ],
    );

    // list
    let out = tool(&["list"], &json_dir);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let listing = stdout_of(&out);
    let files = checkpoint_files(&json_dir);
    assert_eq!(files.len(), 3, "--keep 3");
    let meta = latest_meta(&json_dir).unwrap();
    let latest_id = meta["checkpoint_id"].as_u64().unwrap();
    for f in &files {
        let line = listing
            .lines()
            .find(|l| l.contains(f.as_str()))
            .unwrap_or_else(|| panic!("{f} not listed:\n{listing}"));
        let id: u64 = line.split_whitespace().next().unwrap().parse().unwrap();
        assert!(f.contains(&format!("-{id:06}.json")), "{line}");
        assert!(line.contains(" json "), "{line}");
        assert!(line.contains(" whole "), "{line}");
        assert!(line.contains(" yes "), "{line}");
        assert_eq!(line.ends_with(" (latest)"), id == latest_id, "{line}");
    }
    assert_eq!(listing.matches("(latest)").count(), 1, "{listing}");
    assert!(listing.starts_with("    ID  TIME (UTC)"), "{listing}");

    // show: the latest by default, and by id.
    let out = tool(&["show"], &json_dir);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["checkpoint_id"], latest_id);
    assert_stats_match(&shown, text.as_bytes());
    let first_id = latest_id - 2;
    let out = tool(&["show", "--id", &first_id.to_string()], &json_dir);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let older: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(older["checkpoint_id"], first_id);
    assert!(pos(&older, "events") < pos(&shown, "events"));
    let out = tool(&["show", "--id", "999"], &json_dir);
    assert_eq!(code(&out), Some(1));
    assert!(
        stderr_of(&out).contains("no checkpoint #999"),
        "{}",
        stderr_of(&out)
    );

    // show of a binary checkpoint: the tool prints its header and says who decodes the
    // rest; the program's own `checkpoints show` gives the JSON shape and state.
    let out = tool(&["show"], &bin_dir);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let header: Value = serde_json::from_slice(&out.stdout).unwrap();
    let bin_file = latest_file(&bin_dir);
    assert!(bin_file.ends_with(".bin"));
    assert!(header.get("customer_stats").is_none(), "{header}");
    let note = stderr_of(&out);
    assert!(
        note.contains(&format!("{bin_file} is binary (checksum ok)"))
            && note.contains("of the program that wrote it (pipeline `Orders`) decodes them"),
        "{note}"
    );
    let out = own(&["show"], &bin_dir);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let bin_shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    for field in [
        "pipeline",
        "fingerprint",
        "checkpoint_id",
        "watermark",
        "positions",
    ] {
        assert_eq!(header[field], bin_shown[field], "{field}");
    }
    assert_eq!(bin_shown["customer_stats"], shown["customer_stats"]);
    assert_eq!(bin_shown["per_5min"], shown["per_5min"]);
    // The same positions, but for which files each run read and wrote.
    let without_file_id = |v: &Value| {
        let mut p = v["positions"].clone();
        p.as_object_mut()
            .unwrap()
            .retain(|k, _| !k.ends_with(".file_id") && !k.ends_with(".file_born_ns"));
        p
    };
    assert_eq!(without_file_id(&bin_shown), without_file_id(&shown));
    assert_eq!(bin_shown["watermark"], shown["watermark"]);
    let out = tool(&["list"], &bin_dir);
    assert!(stdout_of(&out).contains(" binary "), "{}", stdout_of(&out));

    // verify: good dirs pass.
    for d in [&json_dir, &bin_dir] {
        let out = tool(&["verify"], d);
        assert_eq!(code(&out), Some(0), "{}", stderr_of(&out));
        let s = stdout_of(&out);
        assert_eq!(s.matches("ok   checkpoint_").count(), 3, "{s}");
        assert!(
            s.contains(&format!("ok   latest.json -> {}", latest_file(d))),
            "{s}"
        );
    }

    // The program's own verify decodes the stages of its binary checkpoints too.
    let out = own(&["verify"], &bin_dir);
    assert_eq!(code(&out), Some(0), "{}", stderr_of(&out));
    assert!(!stderr_of(&out).contains("note:"), "{}", stderr_of(&out));
    let out = tool(&["verify"], &bin_dir);
    assert!(
        stderr_of(&out)
            .contains("note: checkpoints of pipeline `Orders` were checked up to their checksum"),
        "{}",
        stderr_of(&out)
    );

    // A flipped byte in one checkpoint: verify fails naming it; list marks it.
    for d in [&json_dir, &bin_dir] {
        let victim = checkpoint_files(d)[1].clone();
        flip_middle_byte(&ckpt_dir(d).join(&victim));
        let out = tool(&["verify"], d);
        assert_eq!(code(&out), Some(1), "{}", stdout_of(&out));
        let err = stderr_of(&out);
        assert!(err.contains(&format!("error: {victim} is bad: ")), "{err}");
        assert!(
            stdout_of(&out).contains(&format!("BAD  {victim}: ")),
            "{}",
            stdout_of(&out)
        );
        let out = tool(&["list"], d);
        assert!(out.status.success());
        let l = stdout_of(&out);
        let line = l.lines().find(|x| x.contains(&victim)).unwrap();
        assert!(line.contains(" NO "), "{line}");
    }
}

// ---------------------------------------------------------------------------------------
// 10. --help
// ---------------------------------------------------------------------------------------

#[test]
fn help_mentions_every_flag() {
    let out = Command::new(orders_bin()).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = stdout_of(&out);
    for flag in [
        "--input",
        "--output",
        "--checkpoint-dir",
        "--instance",
        "--checkpoint-every",
        "--checkpoint-interval",
        "--codec",
        "--keep",
        "--from-scratch",
        "--accept-changed-input",
        "--on-bad-input",
        "--dead-letter",
        "--follow",
        "--quiet",
        "--late-output",
        "--max-failed-checkpoints",
        "--max-line-bytes",
    ] {
        assert!(
            help.lines()
                .any(|l| l.trim_start().starts_with(&format!("{flag} ")) || l.trim_start() == flag),
            "{flag} is not described in --help:\n{help}"
        );
    }
    for mode in ["fail", "skip", "dead-letter"] {
        assert!(help.contains(&format!("- {mode}:")), "{help}");
    }
    assert!(help.contains("checkpoints"), "{help}");
}

// ---------------------------------------------------------------------------------------
// 11. --follow
// ---------------------------------------------------------------------------------------

#[test]
fn follow_reads_appended_lines_and_waits_for_partial_ones() {
    use std::io::Write;
    let t = tmp();
    let dir = t.path().join("run");
    let lines: Vec<Vec<u8>> = (0..12).map(good_line).collect();
    let input = put_input(&dir, &join(&lines[..3]));
    let mut child = orders(&dir, &input, &["--follow", "--checkpoint-every", "1"])
        .env("RUST_LOG", "debug")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map(Running::new)
        .unwrap();
    let watch = StderrWatch::new(&mut child);
    let events = |n: u64| {
        let dir = dir.clone();
        move || latest_meta(&dir).is_some_and(|m| pos(&m, "events") == n)
    };
    wait_until("3 events", GUARD, events(3));

    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&input)
        .unwrap();
    // Whole lines.
    f.write_all(&join(&lines[3..6])).unwrap();
    wait_until("6 events", GUARD, events(6));

    // A line in two writes, twice (split at different places).
    for (i, split) in [(6, 10), (7, 1)] {
        let l = &lines[i];
        f.write_all(&l[..split]).unwrap();
        f.flush().unwrap();
        // The program saw the partial line and chose to wait for its newline.
        watch.wait_for(&[
            WAITING_FOR_LINE,
            &format!("line={}", i + 1),
            &format!("bytes={split}"),
        ]);
        assert_running(&mut child, "the rest of a partial line");
        assert_eq!(
            pos(&latest_meta(&dir).unwrap(), "events"),
            i as u64,
            "a partial line must not be read"
        );
        f.write_all(&l[split..]).unwrap();
        f.write_all(b"\n").unwrap();
        f.flush().unwrap();
        wait_until("the completed line", GUARD, events(i as u64 + 1));
    }
    // A whole line plus half of the next in one write, then the rest with one more line.
    let mut chunk = join(&lines[8..9]);
    let half = lines[9].len() / 2;
    chunk.extend_from_slice(&lines[9][..half]);
    f.write_all(&chunk).unwrap();
    wait_until("9 events", GUARD, events(9));
    watch.wait_for(&[WAITING_FOR_LINE, "line=10", &format!("bytes={half}")]);
    assert_running(&mut child, "the rest of a partial line");
    assert_eq!(pos(&latest_meta(&dir).unwrap(), "events"), 9);
    let mut rest = lines[9][half..].to_vec();
    rest.push(b'\n');
    rest.extend_from_slice(&join(&lines[10..12]));
    f.write_all(&rest).unwrap();
    wait_until("12 events", GUARD, events(12));
    drop(f);

    send_signal(&child, "TERM");
    let out = child.finish();
    let summary = watch.wait_for(&["stopped by signal: "]);
    assert_eq!(code(&out), Some(0), "{}: {}", out.status, watch.text());
    assert!(
        summary.contains("stopped by signal: 12 events"),
        "{summary}"
    );
    assert!(summary.contains("0 bad line(s)"), "{summary}");
    let all = std::fs::read(&input).unwrap();
    assert_eq!(all, join(&lines));
    let ck = latest_checkpoint(&dir);
    assert_stats_match(&ck, &all);
    assert_eq!(pos(&ck, "source.offset"), all.len() as u64);
    assert_eq!(pos(&ck, "source.line"), 13);

    // Without --follow the same state finishes: all windows closed, as in one run.
    let t2 = tmp();
    let refdir = reference(&t2.path().join("ref"), &all, &[]);
    run_ok(orders(&dir, &input, &[]));
    assert_same_outputs(&refdir, &dir);
}

// ---------------------------------------------------------------------------------------
// Regressions: bugs found by these tests, fixed
// ---------------------------------------------------------------------------------------

/// Dead letters written by an earlier run survive a later run in another mode.
#[test]
fn dead_letters_survive_a_run_in_another_mode() {
    let t = tmp();
    let dir = t.path().join("run");
    let mut lines: Vec<Vec<u8>> = (0..6).map(good_line).collect();
    lines[2] = b"bad one".to_vec();
    let input = put_input(&dir, &join(&lines));
    run_ok(orders(&dir, &input, &["--on-bad-input", "dead-letter"]));
    let dead = std::fs::read_to_string(dir.join("out.jsonl.dead")).unwrap();
    assert_eq!(dead.lines().count(), 1, "{dead}");

    // More input, a run without the flag (no bad line in it, so it succeeds)...
    let mut more = lines.clone();
    more.push(good_line(6));
    std::fs::write(&input, join(&more)).unwrap();
    run_ok(orders(&dir, &input, &[]));
    assert_eq!(
        std::fs::read_to_string(dir.join("out.jsonl.dead")).unwrap(),
        dead
    );
    // ...then one more bad line in dead-letter mode: the first dead letter must still be there.
    more.push(b"bad two".to_vec());
    std::fs::write(&input, join(&more)).unwrap();
    run_ok(orders(&dir, &input, &["--on-bad-input", "dead-letter"]));
    let now = std::fs::read_to_string(dir.join("out.jsonl.dead")).unwrap();
    assert!(
        now.starts_with(&dead),
        "earlier dead letters were erased: {now:?}"
    );
    assert_eq!(now.lines().count(), 2, "{now}");
}

/// A file whose last line had no newline, appended to later (`printf '\n{...}\n' >>`).
#[test]
fn newline_appended_after_an_unterminated_last_line_is_not_a_bad_line() {
    let t = tmp();
    let dir = t.path().join("run");
    let mut text = join(&[good_line(0), good_line(1)]);
    text.pop(); // no final newline
    let input = put_input(&dir, &text);
    run_ok(orders(&dir, &input, &[]));
    assert_eq!(counts(&latest_checkpoint(&dir))["C2"], 1);

    text.push(b'\n');
    text.extend_from_slice(&join(&[good_line(4)]));
    std::fs::write(&input, &text).unwrap();
    let out = orders(&dir, &input, &[]).output().unwrap();
    let err = stderr_of(&out);
    assert_eq!(code(&out), Some(0), "{err}");
    assert_eq!(counts(&latest_checkpoint(&dir))["C2"], 2);
}

/// `--follow` with an over-long line that is still being written: it is one bad line.
#[test]
fn follow_waits_for_the_end_of_an_over_long_line() {
    use std::io::Write;
    let t = tmp();
    let dir = t.path().join("run");
    let input = put_input(&dir, &join(&[good_line(0)]));
    let mut child = orders(
        &dir,
        &input,
        &[
            "--follow",
            "--checkpoint-every",
            "1",
            "--on-bad-input",
            "dead-letter",
        ],
    )
    .env("RUST_LOG", "debug")
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .map(Running::new)
    .unwrap();
    let watch = StderrWatch::new(&mut child);
    wait_until("1 event", GUARD, || {
        latest_meta(&dir).is_some_and(|m| pos(&m, "events") == 1)
    });
    let huge = Bad::Huge.line(1);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&input)
        .unwrap();
    let split = 2 << 20; // past --max-line-bytes, before the end of the line
    f.write_all(&huge[..split]).unwrap();
    f.flush().unwrap();
    // It saw the first part, too long already, and waits for the end of the line.
    watch.wait_for(&[WAITING_FOR_LINE, "line=2"]);
    f.write_all(&huge[split..]).unwrap();
    f.write_all(b"\n").unwrap();
    f.write_all(&join(&[good_line(2)])).unwrap();
    drop(f);
    wait_until("line 3", GUARD, || {
        latest_meta(&dir).is_some_and(|m| pos(&m, "events") == 2)
    });
    send_signal(&child, "TERM");
    let out = child.finish();
    watch.wait_for(&["stopped by signal: "]);
    let err = watch.text();
    assert_eq!(code(&out), Some(0), "{err}");
    let dead = std::fs::read_to_string(dir.join("out.jsonl.dead")).unwrap();
    assert_eq!(
        dead.lines().count(),
        1,
        "one over-long line, one dead letter: {dead}"
    );
    let ck = latest_checkpoint(&dir);
    assert_eq!(pos(&ck, "source.line"), 4, "{err}");
}

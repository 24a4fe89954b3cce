//! What the runner refuses, and why: the `orders` program as a real process, given files
//! that overlap, planted symlinks, checkpoints that lie about their files, inputs and
//! outputs changed between runs, and input lines that are not events.

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;
use support::*;

fn good_lines(n: usize) -> Vec<Vec<u8>> {
    (0..n).map(good_line).collect()
}

/// Asserts a refused start: exit 1, and one error line, the last, that contains `what`.
fn assert_refused(out: &Output, what: &str) -> String {
    let err = stderr_of(out);
    assert_eq!(code(out), Some(1), "{err}");
    let errors: Vec<&str> = err.lines().filter(|l| l.contains(" ERROR ")).collect();
    assert_eq!(errors.len(), 1, "one error line: {err}");
    assert_eq!(err.trim_end().lines().last(), Some(errors[0]), "{err}");
    assert!(errors[0].contains(what), "expected `{what}` in: {err}");
    err
}

/// `orders` with every file named explicitly (none derived from `--output`).
fn orders_with(dir: &Path, files: &[(&str, &Path)], extra: &[&str]) -> std::process::Command {
    let mut c = std::process::Command::new(orders_bin());
    for (flag, p) in files {
        c.arg(flag).arg(p);
    }
    c.arg("--checkpoint-dir").arg(dir.join("ckpt"));
    c.args(["--instance", "app-instance-1"]);
    c.args(extra);
    c.env_remove("SIMPLESTREAM_FAILPOINT")
        .env_remove("SIMPLESTREAM_FAIL_WRITES")
        .env_remove("RUST_LOG");
    c
}

// ---------------------------------------------------------------------------------------
// Paths the program writes
// ---------------------------------------------------------------------------------------

/// Any two of input, output, late output and dead letters naming one file (however
/// spelled, through symlinks or hard links), or a file inside the checkpoint store: the
/// run is refused with one line before anything is written, and the input is intact.
#[test]
fn overlapping_paths_are_refused_before_anything_is_written() {
    let t = tmp();
    let dir = t.path().join("run");
    let text = join(&good_lines(20));
    let input = put_input(&dir, &text);
    std::fs::create_dir(dir.join("sub")).unwrap();
    let link = dir.join("link.jsonl");
    std::os::unix::fs::symlink(&input, &link).unwrap();
    let hard = dir.join("hard.jsonl");
    std::fs::hard_link(&input, &hard).unwrap();
    let dangling = dir.join("dangling");
    std::os::unix::fs::symlink("sub/new.jsonl", &dangling).unwrap();
    let out = dir.join("out.jsonl");
    let late = dir.join("late.jsonl");
    let spelled = dir.join("sub/../in.jsonl");
    let dotted = dir.join("./in.jsonl");
    let new_out = dir.join("sub/new.jsonl");
    let in_ckpt = dir.join("ckpt/checkpoints/app-instance-1/latest.json");
    let ckpt = dir.join("ckpt");

    type Case<'a> = (Vec<(&'a str, &'a Path)>, &'a [&'a str], &'a str);
    let cases: Vec<Case> = vec![
        (
            vec![("--input", &input), ("--output", &input)],
            &[],
            "--input",
        ),
        (
            vec![("--input", &input), ("--output", &spelled)],
            &[],
            "--output",
        ),
        (
            vec![("--input", &input), ("--output", &dotted)],
            &[],
            "--output",
        ),
        (
            vec![("--input", &input), ("--output", &link)],
            &[],
            "--output",
        ),
        (
            vec![("--input", &input), ("--output", &hard)],
            &[],
            "--output",
        ),
        (
            vec![
                ("--input", &input),
                ("--output", &out),
                ("--late-output", &link),
            ],
            &[],
            "--late-output",
        ),
        // Neither exists yet: the same place once created.
        (
            vec![
                ("--input", &input),
                ("--output", &new_out),
                ("--late-output", &dangling),
            ],
            &[],
            "--late-output",
        ),
        (
            vec![
                ("--input", &input),
                ("--output", &out),
                ("--late-output", &late),
                ("--dead-letter", &spelled),
            ],
            &["--on-bad-input", "dead-letter"],
            "--dead-letter",
        ),
        (
            vec![
                ("--input", &input),
                ("--output", &out),
                ("--late-output", &late),
                ("--dead-letter", &late),
            ],
            &["--on-bad-input", "dead-letter"],
            "--dead-letter",
        ),
        (
            vec![("--input", &input), ("--output", &in_ckpt)],
            &[],
            "checkpoint directory",
        ),
        (
            vec![("--input", &input), ("--output", &ckpt)],
            &[],
            "checkpoint directory",
        ),
    ];
    for (files, extra, what) in cases {
        let res = orders_with(&dir, &files, extra).output().unwrap();
        let err = assert_refused(&res, what);
        assert!(
            err.contains("are the same file") || err.contains("lies in the checkpoint directory"),
            "{files:?}: {err}"
        );
        assert_eq!(
            std::fs::read(&input).unwrap(),
            text,
            "{files:?}: input damaged"
        );
        assert!(
            !dir.join("ckpt").exists(),
            "{files:?}: the store was created"
        );
        for p in [&out, &late, &new_out] {
            assert!(!p.exists(), "{files:?}: {} was created", p.display());
        }
    }

    // The same files, each distinct: runs.
    let ok = orders_with(
        &dir,
        &[
            ("--input", &input),
            ("--output", &out),
            ("--late-output", &late),
        ],
        &[],
    )
    .output()
    .unwrap();
    assert_eq!(code(&ok), Some(0), "{}", stderr_of(&ok));
    assert_eq!(std::fs::read(&input).unwrap(), text);
}

/// The instance's checkpoint directory.
fn inst(dir: &Path) -> PathBuf {
    ckpt_dir(dir)
}

/// The checkpoint `latest.json` names.
fn latest_name(dir: &Path) -> String {
    let b = std::fs::read(inst(dir).join("latest.json")).unwrap();
    let v: Value = serde_json::from_slice(&b).unwrap();
    v["file"].as_str().unwrap().to_string()
}

/// A planted symlink as the lock file, or as the instance or `checkpoints` directory: the
/// run is refused with one line and the link's target is untouched.
#[test]
fn planted_symlinks_in_the_checkpoint_tree_are_refused() {
    let t = tmp();
    let dir = t.path().join("run");
    let input = put_input(&dir, &join(&good_lines(10)));
    let victim = t.path().join("victim.txt");
    std::fs::write(&victim, b"precious").unwrap();
    let elsewhere = t.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();

    std::fs::create_dir_all(inst(&dir)).unwrap();
    std::os::unix::fs::symlink(&victim, inst(&dir).join(".lock")).unwrap();
    let out = orders(&dir, &input, &[]).output().unwrap();
    assert_refused(&out, "opening lock file");
    assert!(
        stderr_of(&out).contains("symbolic link"),
        "{}",
        stderr_of(&out)
    );
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    assert!(!dir.join("out.jsonl").exists());

    std::fs::remove_dir_all(dir.join("ckpt")).unwrap();
    std::fs::create_dir_all(dir.join("ckpt/checkpoints")).unwrap();
    std::os::unix::fs::symlink(&elsewhere, inst(&dir)).unwrap();
    let out = orders(&dir, &input, &[]).output().unwrap();
    assert_refused(&out, "is a symbolic link");
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);

    std::fs::remove_dir_all(dir.join("ckpt")).unwrap();
    std::fs::create_dir_all(dir.join("ckpt")).unwrap();
    std::os::unix::fs::symlink(&elsewhere, dir.join("ckpt/checkpoints")).unwrap();
    let out = orders(&dir, &input, &[]).output().unwrap();
    assert_refused(&out, "is a symbolic link");
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
}

/// An instance directory owned by another user is refused (this needs a process that
/// may give a directory away: root, as in CI; the check itself is unit-tested in the
/// file store).
#[test]
fn instance_directory_of_another_user_is_refused() {
    let t = tmp();
    let dir = t.path().join("run");
    let input = put_input(&dir, &join(&good_lines(10)));
    std::fs::create_dir_all(inst(&dir)).unwrap();
    if std::os::unix::fs::chown(inst(&dir), Some(65534), Some(65534)).is_err() {
        eprintln!("not run: chown needs root here");
        return;
    }
    let out = orders(&dir, &input, &[]).output().unwrap();
    assert_refused(&out, "is owned by user id 65534, not by this user");
    assert!(!dir.join("out.jsonl").exists());
    assert_eq!(std::fs::read_dir(inst(&dir)).unwrap().count(), 0);
}

/// The checkpoint `latest.json` names replaced by a symlink to a large file, or by a
/// FIFO: neither is read (no hang, no gigabytes in memory); the run falls back to the
/// checkpoint before it and ends as a run that never stopped.
#[test]
fn checkpoint_that_is_a_symlink_or_fifo_is_not_read() {
    let t = tmp();
    let lines = good_lines(40);
    let extra = ["--checkpoint-every", "10"];
    let refdir = t.path().join("ref");
    let refin = put_input(&refdir, &join(&lines));
    run_ok(orders(&refdir, &refin, &extra));

    for kind in ["symlink", "fifo"] {
        let dir = t.path().join(kind);
        let input = put_input(&dir, &join(&lines[..30]));
        run_ok(orders(&dir, &input, &extra));
        std::fs::write(&input, join(&lines)).unwrap();
        let newest = inst(&dir).join(latest_name(&dir));
        std::fs::remove_file(&newest).unwrap();
        if kind == "symlink" {
            let big = t.path().join("big");
            let f = std::fs::File::create(&big).unwrap();
            f.set_len(512 << 20).unwrap(); // sparse: takes no disk
            std::os::unix::fs::symlink(&big, &newest).unwrap();
        } else {
            let st = std::process::Command::new("mkfifo")
                .arg(&newest)
                .status()
                .unwrap();
            assert!(st.success());
        }
        let child = orders(&dir, &input, &extra)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map(Running::new)
            .unwrap();
        let out = finish_within(child, GUARD, kind);
        let err = stderr_of(&out);
        assert_eq!(code(&out), Some(0), "{kind}: {err}");
        let why = if kind == "symlink" {
            "symbolic link"
        } else {
            "not a regular file"
        };
        assert!(err.contains(why), "{kind}: {err}");
        assert!(err.contains("fell back to"), "{kind}: {err}");
        for f in ["out.jsonl", "out.jsonl.late"] {
            assert_same_file(&refdir.join(f), &dir.join(f));
        }
    }
}

/// New outputs and new checkpoint directories get their parent directory flushed once
/// (the debug log says so); existing ones are not created again.
#[test]
fn new_outputs_and_checkpoint_directories_are_flushed_in_their_parent() {
    let t = tmp();
    let dir = t.path().join("run");
    let input = put_input(&dir, &join(&good_lines(10)));
    let run = || {
        let mut c = orders(&dir, &input, &[]);
        c.env("RUST_LOG", "debug");
        run_ok(c)
    };
    let err = stderr_of(&run());
    for (p, what) in [
        (dir.join("ckpt"), "flushed its parent"),
        (dir.join("ckpt/checkpoints"), "flushed its parent"),
        (inst(&dir), "flushed its parent"),
        (dir.join("out.jsonl"), "flushed its directory"),
        (dir.join("out.jsonl.late"), "flushed its directory"),
    ] {
        let line = format!("created {} and {what}", p.display());
        assert_eq!(err.matches(&line).count(), 1, "`{line}` once in:\n{err}");
    }
    let err = stderr_of(&run());
    assert!(!err.contains("and flushed its"), "{err}");
}

// ---------------------------------------------------------------------------------------
// The input or the outputs changed under the checkpoint
// ---------------------------------------------------------------------------------------

/// Per-customer counts in the latest checkpoint.
fn counts(dir: &Path) -> std::collections::BTreeMap<String, u64> {
    latest_checkpoint(dir)["customer_stats"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v["count"].as_u64().unwrap()))
        .collect()
}

/// The input replaced by other content (same length, or longer) is refused with one
/// line naming both ways out, and nothing is written; `--accept-changed-input` resumes
/// at the old offset with a warning; appending to the same input is fine.
#[test]
fn input_replaced_under_the_checkpoint_is_refused() {
    let t = tmp();
    let dir = t.path().join("run");
    let lines = good_lines(20);
    let input = put_input(&dir, &join(&lines));
    run_ok(orders(&dir, &input, &[]));
    let ck = latest_checkpoint(&dir);
    let offset = pos(&ck, "source.offset");
    assert_eq!(pos(&ck, "source.tail_len"), offset.min(4096));
    let outputs: Vec<Vec<u8>> = ["out.jsonl", "out.jsonl.late"]
        .iter()
        .map(|f| std::fs::read(dir.join(f)).unwrap())
        .collect();

    // Another file of the same length (one amount changed), then a longer one.
    let mut same_len = join(&lines);
    let at = same_len.len() - 10;
    same_len[at] = if same_len[at] == b'1' { b'2' } else { b'1' };
    let mut longer = join(&good_lines(25)[5..]);
    longer.extend_from_slice(&join(&good_lines(30)[25..]));
    for replaced in [&same_len, &longer] {
        std::fs::write(&input, replaced).unwrap();
        let out = orders(&dir, &input, &[]).output().unwrap();
        let err = assert_refused(&out, "changed since the checkpoint");
        assert!(
            err.contains(&format!("bytes before byte {offset}")),
            "{err}"
        );
        assert!(
            err.contains("--from-scratch") && err.contains("--accept-changed-input"),
            "{err}"
        );
        for (f, before) in ["out.jsonl", "out.jsonl.late"].iter().zip(&outputs) {
            assert_eq!(
                &std::fs::read(dir.join(f)).unwrap(),
                before,
                "{f} was touched"
            );
        }
        assert_eq!(latest_checkpoint(&dir), ck, "no new checkpoint");
    }

    // Accepted on request: resumes at the old offset of the new file.
    let mut grown = same_len.clone();
    grown.extend_from_slice(&join(&[good_line(40)]));
    std::fs::write(&input, &grown).unwrap();
    let out = run_ok(orders(&dir, &input, &["--accept-changed-input"]));
    let err = stderr_of(&out);
    assert!(err.contains("resuming at byte"), "{err}");
    assert!(err.contains("done: 21 events (1 this run"), "{err}");

    // The same input with lines appended: no complaint.
    let mut appended = grown.clone();
    appended.extend_from_slice(&join(&[good_line(41)]));
    std::fs::write(&input, &appended).unwrap();
    let out = run_ok(orders(&dir, &input, &[]));
    let err = stderr_of(&out);
    assert!(!err.contains("changed since"), "{err}");
    assert!(err.contains("done: 22 events (1 this run"), "{err}");
}

/// A checkpoint of an older version (no `*.tail_*` positions) is still restored, with a
/// warning that the input and outputs could not be checked.
#[test]
fn checkpoint_without_tails_is_accepted_with_a_warning() {
    let t = tmp();
    let dir = t.path().join("run");
    let lines = good_lines(20);
    let input = put_input(&dir, &join(&lines[..15]));
    run_ok(orders(&dir, &input, &[]));
    let path = inst(&dir).join(latest_name(&dir));
    let mut v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let positions = v["positions"].as_object_mut().unwrap();
    let before = positions.len();
    positions.retain(|k, _| !k.contains(".tail_"));
    assert_eq!(
        before - positions.len(),
        6,
        "3 tails of 2 keys: {positions:?}"
    );
    // Back to the checkpoint's own layout (its checksum trailer comes last).
    v.as_object_mut().unwrap().remove("checksum");
    let mut bytes = serde_json::to_vec(&v).unwrap();
    bytes.pop();
    bytes.extend_from_slice(b",\"checksum\":\"crc32:00000000\"}\n");
    std::fs::write(&path, json_reseal(&bytes)).unwrap();
    std::fs::write(&input, join(&lines)).unwrap();
    let out = run_ok(orders(&dir, &input, &[]));
    let err = stderr_of(&out);
    assert!(
        err.contains(&format!(
            "the checkpoint does not record what {} looked like",
            input.display()
        )),
        "{err}"
    );
    assert!(err.contains("done: 20 events (5 this run"), "{err}");
}

/// An output replaced by another file of the same size or larger is refused and left
/// as it is (today it would be cut back to the committed length), for each output.
#[test]
fn output_replaced_by_a_same_size_or_larger_file_is_refused_and_kept() {
    let t = tmp();
    let dir = t.path().join("run");
    let mut lines = good_lines(30);
    lines[4] = b"not an event".to_vec();
    lines.push(format!("{{\"customer\":\"C1\",\"amount\":1.0,\"ts\":{BASE}}}").into_bytes());
    let input = put_input(&dir, &join(&lines));
    let extra = ["--on-bad-input", "dead-letter"];
    run_ok(orders(&dir, &input, &extra));
    for f in ["out.jsonl", "out.jsonl.late", "out.jsonl.dead"] {
        let p = dir.join(f);
        let ours = std::fs::read(&p).unwrap();
        assert!(!ours.is_empty(), "{f}");
        let mut same = ours.clone();
        let last = same.len() - 2;
        same[last] = b'#';
        let mut larger = b"user data\n".to_vec();
        larger.extend_from_slice(&ours);
        for theirs in [same, larger] {
            std::fs::write(&p, &theirs).unwrap();
            let out = orders(&dir, &input, &extra).output().unwrap();
            let err = assert_refused(&out, "is not the file this program wrote");
            assert!(err.contains(&p.display().to_string()), "{err}");
            assert_eq!(std::fs::read(&p).unwrap(), theirs, "{f} was changed");
        }
        std::fs::write(&p, &ours).unwrap();
    }
    // Ours, with uncommitted bytes after the committed length: cut back as before.
    let p = dir.join("out.jsonl");
    let ours = std::fs::read(&p).unwrap();
    let mut extended = ours.clone();
    extended.extend_from_slice(b"{\"half\":");
    std::fs::write(&p, &extended).unwrap();
    run_ok(orders(&dir, &input, &extra));
    assert_eq!(std::fs::read(&p).unwrap(), ours);
}

// ---------------------------------------------------------------------------------------
// Outputs a run has not written yet
// ---------------------------------------------------------------------------------------

const OUTPUTS: [(&str, &str); 3] = [
    ("out.jsonl", "--output"),
    ("out.jsonl.late", "--late-output"),
    ("out.jsonl.dead", "--dead-letter"),
];

/// `n` lines: [`good_line`]s, a malformed line every 101 and a late order every 97.
fn mixed_lines(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| match i {
            i if i % 101 == 100 => b"not an event".to_vec(),
            i if i % 97 == 96 => format!(
                "{{\"customer\":\"C1\",\"amount\":1.5,\"ts\":{}}}",
                BASE + (i as i64 - 20) * STEP
            )
            .into_bytes(),
            i => good_line(i),
        })
        .collect()
}

/// An uninterrupted run of `args` over `input` in `dir`.
fn run_in(dir: &Path, input: &[u8], args: &[&str]) -> PathBuf {
    let inp = put_input(dir, input);
    run_ok(orders(dir, &inp, args));
    dir.to_path_buf()
}

fn assert_same_three(a: &Path, b: &Path) {
    for (f, _) in OUTPUTS {
        assert_same_file(&a.join(f), &b.join(f));
    }
}

fn file_len(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

fn latest_id(dir: &Path) -> u64 {
    let b = std::fs::read(inst(dir).join("latest.json")).unwrap();
    let v: Value = serde_json::from_slice(&b).unwrap();
    v["checkpoint_id"].as_u64().unwrap()
}

/// A first run (no checkpoint) that finds a non-empty file where an output goes (last
/// month's report, another instance's output) is refused with one line naming it, its
/// size and the ways out; every file is left as it was and nothing is created. An empty
/// file there is fine, and --from-scratch overwrites a non-empty one.
#[test]
fn first_run_refuses_a_non_empty_output_it_did_not_write() {
    let t = tmp();
    let text = join(&mixed_lines(300));
    let extra = ["--on-bad-input", "dead-letter"];
    let refdir = run_in(&t.path().join("ref"), &text, &extra);
    for (f, _) in OUTPUTS {
        assert!(
            file_len(&refdir.join(f)) > 0,
            "{f}: the reference writes it"
        );
    }
    for (f, flag) in OUTPUTS {
        let dir = t.path().join(f);
        let input = put_input(&dir, &text);
        let theirs = b"last month's report\n".repeat(3);
        let p = dir.join(f);
        std::fs::write(&p, &theirs).unwrap();
        let out = orders(&dir, &input, &extra).output().unwrap();
        let err = assert_refused(
            &out,
            &format!(
                "{} already exists and has {} bytes",
                p.display(),
                theirs.len()
            ),
        );
        assert!(
            err.contains(&format!("give {flag} another path")) && err.contains("--from-scratch"),
            "{err}"
        );
        assert_eq!(std::fs::read(&p).unwrap(), theirs, "{f} was changed");
        for (other, _) in OUTPUTS.iter().filter(|(o, _)| *o != f) {
            assert!(!dir.join(other).exists(), "{f}: {other} was created");
        }
        assert!(
            !inst(&dir).join("latest.json").exists(),
            "{f}: a checkpoint was taken"
        );

        let mut scratch = extra.to_vec();
        scratch.push("--from-scratch");
        let out = run_ok(orders(&dir, &input, &scratch));
        let err = stderr_of(&out);
        assert!(
            err.contains(&format!(
                "--from-scratch: rewriting {} ({} bytes) from its start",
                p.display(),
                theirs.len()
            )),
            "{err}"
        );
        assert_same_three(&refdir, &dir);
    }

    let dir = t.path().join("empty");
    let input = put_input(&dir, &text);
    for (f, _) in OUTPUTS {
        std::fs::write(dir.join(f), b"").unwrap();
    }
    run_ok(orders(&dir, &input, &extra));
    assert_same_three(&refdir, &dir);
}

/// A first run killed after output reached its files but before its first regular
/// checkpoint (SIGKILL at a pause point; an abort inside that checkpoint, after every
/// output was flushed): the start checkpoint (#0, nothing processed) recorded the
/// outputs, so the restart cuts them back to empty and ends byte-identical to a run that
/// never crashed. A file put in an output's place meanwhile is refused, not cut.
#[test]
fn first_run_killed_before_its_first_checkpoint_restarts_identical() {
    let t = tmp();
    let text = join(&mixed_lines(12_000));
    let extra = [
        "--on-bad-input",
        "dead-letter",
        "--checkpoint-every",
        "15000",
    ];
    let refdir = run_in(&t.path().join("ref"), &text, &extra);

    let dir = t.path().join("killed");
    let input = put_input(&dir, &text);
    let p = spawn_until_paused(orders(&dir, &input, &extra), &[10_000]);
    let line = p.stderr.last().unwrap().clone();
    assert!(line.contains("0 checkpoint(s) this run"), "{line}");
    assert!(
        file_len(&dir.join("out.jsonl")) > 0,
        "no output reached the file"
    );
    p.kill();
    assert_eq!(latest_id(&dir), 0);
    let out = run_ok(orders(&dir, &input, &extra));
    let err = stderr_of(&out);
    assert!(err.contains("restored checkpoint #0 "), "{err}");
    assert!(
        err.contains(": 0 events processed, input offset 0"),
        "{err}"
    );
    assert_same_three(&refdir, &dir);

    for replaced in [false, true] {
        let dir = t.path().join(format!("aborted-{replaced}"));
        let input = put_input(&dir, &text);
        let mut c = orders(&dir, &input, &extra);
        c.env("SIMPLESTREAM_FAILPOINT", "after-output-commit");
        let out = c.output().unwrap();
        let err = stderr_of(&out);
        assert!(!out.status.success(), "{err}");
        assert!(err.contains("failpoint after-output-commit"), "{err}");
        for (f, _) in OUTPUTS {
            assert!(file_len(&dir.join(f)) > 0, "{f} was not flushed");
        }
        assert_eq!(latest_id(&dir), 0);
        let late = dir.join("out.jsonl.late");
        if replaced {
            let theirs = b"someone else's file\n".to_vec();
            std::fs::remove_file(&late).unwrap();
            std::fs::write(&late, &theirs).unwrap();
            let out = orders(&dir, &input, &extra).output().unwrap();
            assert_refused(
                &out,
                &format!(
                    "{} has {} bytes, but it is not the file the checkpoint recorded there",
                    late.display(),
                    theirs.len()
                ),
            );
            assert_eq!(std::fs::read(&late).unwrap(), theirs);
            std::fs::remove_file(&late).unwrap();
        }
        run_ok(orders(&dir, &input, &extra));
        assert_same_three(&refdir, &dir);
    }
}

/// An output the restored checkpoint does not record (dead letters asked for the first
/// time on this instance) is claimed like a first run's: a file already there with
/// bytes is refused; otherwise a checkpoint records the new file before anything is
/// written to it, so a crash right after still restarts byte-identical.
#[test]
fn a_new_dead_letter_file_is_claimed_like_a_first_run_output() {
    let t = tmp();
    let lines = mixed_lines(3_000);
    let (first, all) = (join(&lines[..1_000]), join(&lines));
    let dead_mode = ["--on-bad-input", "dead-letter"];
    let refdir = run_in(&t.path().join("ref"), &first, &["--on-bad-input", "skip"]);
    run_in(&refdir, &all, &dead_mode);
    assert!(file_len(&refdir.join("out.jsonl.dead")) > 0);

    let dir = t.path().join("run");
    run_in(&dir, &first, &["--on-bad-input", "skip"]);
    let input = put_input(&dir, &all);
    let dead = dir.join("out.jsonl.dead");
    let theirs = b"older dead letters\n".to_vec();
    std::fs::write(&dead, &theirs).unwrap();
    let out = orders(&dir, &input, &dead_mode).output().unwrap();
    assert_refused(
        &out,
        &format!(
            "{} already exists and has {} bytes",
            dead.display(),
            theirs.len()
        ),
    );
    assert_eq!(std::fs::read(&dead).unwrap(), theirs);
    std::fs::remove_file(&dead).unwrap();

    let before = latest_id(&dir);
    let mut c = orders(&dir, &input, &dead_mode);
    c.env("SIMPLESTREAM_FAILPOINT", "after-output-commit");
    let out = c.output().unwrap();
    let err = stderr_of(&out);
    assert!(err.contains("failpoint after-output-commit"), "{err}");
    assert!(
        err.contains(&format!("checkpoint #{} (", before + 1))
            && err.contains("records the outputs as this run's"),
        "{err}"
    );
    assert!(file_len(&dead) > 0, "dead letters were flushed");
    assert_eq!(latest_id(&dir), before + 1);
    run_ok(orders(&dir, &input, &dead_mode));
    assert_same_three(&refdir, &dir);
}

// ---------------------------------------------------------------------------------------
// Lines that are not events
// ---------------------------------------------------------------------------------------

/// An uninterrupted run over `input` in `dir`.
fn reference(dir: &Path, input: &[u8]) -> PathBuf {
    let inp = put_input(dir, input);
    run_ok(orders(dir, &inp, &[]));
    dir.to_path_buf()
}

fn assert_same_outputs(a: &Path, b: &Path) {
    for f in ["out.jsonl", "out.jsonl.late"] {
        assert_same_file(&a.join(f), &b.join(f));
    }
}

/// An unterminated last line that does not parse is not consumed, in every mode: the
/// run stops before it, says so, and the next run reads it whole.
#[test]
fn unterminated_unparsable_last_line_is_left_for_the_next_run() {
    for mode in ["fail", "skip", "dead-letter"] {
        let t = tmp();
        let dir = t.path().join("run");
        let lines = good_lines(12);
        let full = join(&lines);
        let mut partial = join(&lines[..11]);
        let start = partial.len() as u64;
        let cut = lines[11].len() / 2;
        partial.extend_from_slice(&lines[11][..cut]);
        let input = put_input(&dir, &partial);
        let extra = ["--on-bad-input", mode];
        let out = run_ok(orders(&dir, &input, &extra));
        let err = stderr_of(&out);
        assert!(
            err.contains(&format!(
                "line 12 (byte offset {start}) has no newline and does not parse"
            )),
            "{mode}: {err}"
        );
        assert!(err.contains("0 bad line(s)"), "{mode}: {err}");
        let ck = latest_checkpoint(&dir);
        assert_eq!(pos(&ck, "source.offset"), start, "{mode}");
        assert_eq!(pos(&ck, "events"), 11, "{mode}");
        assert!(
            !dir.join("out.jsonl.dead").exists()
                || std::fs::read(dir.join("out.jsonl.dead"))
                    .unwrap()
                    .is_empty(),
            "{mode}"
        );

        // The writer finishes the line: it is read whole, once.
        std::fs::write(&input, &full).unwrap();
        let out = run_ok(orders(&dir, &input, &extra));
        let err = stderr_of(&out);
        assert!(err.contains("done: 12 events (1 this run"), "{mode}: {err}");
        assert!(err.contains("0 bad line(s)"), "{mode}: {err}");
        let mut want = std::collections::BTreeMap::new();
        for i in 0..12 {
            *want.entry(format!("C{}", i % 3 + 1)).or_insert(0u64) += 1;
        }
        assert_eq!(counts(&dir), want, "{mode}");
    }
}

/// A parsable last line without a newline is read, as before.
#[test]
fn unterminated_parsable_last_line_is_read() {
    let t = tmp();
    let dir = t.path().join("run");
    let mut text = join(&good_lines(5));
    text.pop();
    let input = put_input(&dir, &text);
    let out = run_ok(orders(&dir, &input, &[]));
    let err = stderr_of(&out);
    assert!(err.contains("done: 5 events"), "{err}");
    assert!(!err.contains("has no newline"), "{err}");
}

/// Blank lines (empty, spaces, a lone `\r`, trailing ones) are skipped and counted; a
/// byte order mark is skipped; CRLF line ends are accepted: the outputs are those of
/// the plain file.
#[test]
fn blank_lines_bom_and_crlf_are_accepted() {
    let t = tmp();
    let lines = good_lines(30);
    let plain = join(&lines);
    let refdir = reference(&t.path().join("ref"), &plain);

    let mut blanks = Vec::new();
    blanks.extend_from_slice(b"\n");
    for (i, l) in lines.iter().enumerate() {
        blanks.extend_from_slice(l);
        blanks.push(b'\n');
        match i % 7 {
            0 => blanks.extend_from_slice(b"\n"),
            3 => blanks.extend_from_slice(b"   \t\n"),
            5 => blanks.extend_from_slice(b"\r\n"),
            _ => {}
        }
    }
    blanks.extend_from_slice(b"\n\n");
    let n_blank = 1 + (0..30).filter(|i| [0, 3, 5].contains(&(i % 7))).count() + 2;

    let mut bom = b"\xEF\xBB\xBF".to_vec();
    bom.extend_from_slice(&plain);

    let crlf: Vec<u8> = lines
        .iter()
        .flat_map(|l| l.iter().copied().chain(*b"\r\n"))
        .collect();

    for (name, text, blank) in [
        ("blanks", blanks, n_blank),
        ("bom", bom, 0),
        ("crlf", crlf, 0),
    ] {
        let dir = t.path().join(name);
        let input = put_input(&dir, &text);
        let out = run_ok(orders(&dir, &input, &[]));
        let err = stderr_of(&out);
        assert!(err.contains("done: 30 events"), "{name}: {err}");
        assert!(err.contains("0 bad line(s)"), "{name}: {err}");
        assert!(
            err.contains(&format!("{blank} blank line(s) skipped")),
            "{name}: {err}"
        );
        assert_same_outputs(&refdir, &dir);
    }
}

// ---------------------------------------------------------------------------------------
// --follow and log rotation
// ---------------------------------------------------------------------------------------

/// `positions` of `latest.json`, if it exists and parses.
fn latest_positions(dir: &Path) -> Option<Value> {
    let b = std::fs::read(inst(dir).join("latest.json")).ok()?;
    let v: Value = serde_json::from_slice(&b).ok()?;
    Some(v["positions"].clone())
}

/// Waits (hang guard only) until the latest checkpoint has `events` events at `offset`.
fn wait_for(dir: &Path, events: u64, offset: u64, child: &mut Running) {
    wait_until(&format!("{events} events at byte {offset}"), GUARD, || {
        if let Some(st) = child.try_wait().unwrap() {
            panic!("orders exited ({st}) before {events} events at byte {offset}");
        }
        latest_positions(dir).is_some_and(|p| {
            p["events"].as_u64() == Some(events) && p["source.offset"].as_u64() == Some(offset)
        })
    });
}

/// Under `--follow`, copytruncate (truncated, then refilled past the old end) and rename
/// rotation (the path names a new file) are noticed and logged; the new file is read from its
/// start, nothing is skipped or read twice, and a restart resumes in the new file.
#[test]
fn follow_reads_rotated_files_from_their_start() {
    use std::fs::OpenOptions;
    use std::io::Write;
    let append = |p: &Path, bytes: &[u8]| {
        let mut f = OpenOptions::new().append(true).open(p).unwrap();
        f.write_all(bytes).unwrap();
    };
    let t = tmp();
    let dir = t.path().join("run");
    let lines = good_lines(20);
    let input = put_input(&dir, &join(&lines[..6]));
    let mut run = orders(&dir, &input, &["--follow", "--checkpoint-every", "1"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map(Running::new)
        .unwrap();
    wait_for(&dir, 6, join(&lines[..6]).len() as u64, &mut run);

    // copytruncate: copied away, truncated, then written again past the old end: noticed
    // whether the reader looks while it is short or after it is refilled.
    std::fs::copy(&input, dir.join("in.jsonl.1")).unwrap();
    OpenOptions::new()
        .write(true)
        .open(&input)
        .unwrap()
        .set_len(0)
        .unwrap();
    let refill = join(&lines[6..13]);
    assert!(refill.len() > join(&lines[..6]).len());
    append(&input, &refill);
    wait_for(&dir, 13, refill.len() as u64, &mut run);

    // Rename rotation: the old file gets its last lines (the very last without a newline,
    // which is then complete: nothing is appended to a file rotated away), is renamed
    // away, and a new one starts.
    append(&input, &join(&lines[13..15]));
    append(&input, &lines[15]);
    std::fs::rename(&input, dir.join("in.jsonl.2")).unwrap();
    std::fs::write(&input, join(&lines[16..18])).unwrap();
    wait_for(&dir, 18, join(&lines[16..18]).len() as u64, &mut run);

    send_signal(&run, "TERM");
    let out = run.finish();
    let err = stderr_of(&out);
    assert_eq!(code(&out), Some(0), "{err}");
    for how in [
        "was truncated and rewritten (copytruncate rotation)",
        "now names another file (rename rotation); the old one was read to its end",
    ] {
        let line = format!("input {} {how}: reading it from its start", input.display());
        assert_eq!(err.matches(&line).count(), 1, "`{line}` once in:\n{err}");
    }
    assert!(err.contains("stopped by signal: 18 events"), "{err}");
    assert!(err.contains("0 bad line(s)"), "{err}");

    // A restart resumes in the new file, and reads what was appended to it once.
    append(&input, &join(&lines[18..]));
    let out = run_ok(orders(&dir, &input, &[]));
    let err = stderr_of(&out);
    assert!(err.contains("done: 20 events (2 this run"), "{err}");
    let mut want = std::collections::BTreeMap::new();
    for i in 0..20 {
        *want.entry(format!("C{}", i % 3 + 1)).or_insert(0u64) += 1;
    }
    assert_eq!(counts(&dir), want);
}

//! `simplestream state lock`: the lock file it writes holds, for each stateful stage,
//! exactly the layout the pipeline's checkpoints record (what `pipeline!` checks later
//! changes against), and it never overwrites a file that is not a lock.

use std::path::Path;
use std::process::Command;

use simplestream::upgrade::{layouts, SOURCE_CLOCKS};
use simplestream::Pipeline;
use simplestream_dsl::lock::file;
use simplestream_examples::nexmark::{Q3, Q4, Q5, Q7, Q8};
use simplestream_examples::orders::Orders;

fn tool() -> Command {
    Command::new(env!("CARGO_BIN_EXE_simplestream"))
}

/// Copies the example pipelines' sources into `dir` and locks them with the tool.
fn lock_examples(dir: &Path) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/pipelines/src");
    for f in ["orders.rs", "nexmark.rs"] {
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
    }
    let out = tool()
        .args(["state", "lock"])
        .arg(dir.join("orders.rs"))
        .arg(dir.join("nexmark.rs"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("Orders.state.lock: 2 stateful stages"),
        "{said}"
    );
}

/// The locked stages of `P` against what its checkpoints record (but for line breaks
/// the compiler puts in long types' text: Q5's custom column).
fn assert_locks<P: Pipeline>(dir: &Path) {
    let text = std::fs::read_to_string(file::path(dir, P::NAME)).unwrap();
    let lock = file::parse(&text).unwrap();
    let recorded: Vec<(String, String)> = layouts::<P>()
        .into_iter()
        .filter(|s| s.name != SOURCE_CLOCKS)
        .map(|s| (s.name, simplestream_dsl::lock::layout::flat(&s.layout)))
        .collect();
    assert!(!recorded.is_empty(), "{} keeps state", P::NAME);
    assert_eq!(lock.stages, recorded, "{}", P::NAME);
}

#[test]
fn the_lock_holds_the_layouts_checkpoints_record() {
    let dir = tempfile::tempdir().unwrap();
    lock_examples(dir.path());
    // Running aggregates, tumbling windows, window joins, global windows, sessions.
    assert_locks::<Orders>(dir.path());
    assert_locks::<Q3>(dir.path());
    assert_locks::<Q4>(dir.path());
    assert_locks::<Q5>(dir.path());
    assert_locks::<Q7>(dir.path());
    assert_locks::<Q8>(dir.path());
}

#[test]
fn the_tool_overwrites_its_own_lock_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    lock_examples(dir.path());
    let lock = file::path(dir.path(), "Orders");
    let first = std::fs::read(&lock).unwrap();
    lock_examples(dir.path());
    assert_eq!(std::fs::read(&lock).unwrap(), first, "relocking is stable");

    std::fs::write(&lock, "my notes\n").unwrap();
    let out = tool()
        .args(["state", "lock"])
        .arg(dir.path().join("orders.rs"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("is not a state lock") && err.contains("not overwriting it"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&lock).unwrap(), "my notes\n");
}

#[test]
fn a_file_without_a_pipeline_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("main.rs");
    std::fs::write(&src, "fn main() {}\n").unwrap();
    let out = tool().args(["state", "lock"]).arg(&src).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no `pipeline! { .. }` at module level"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "nothing written"
    );
}

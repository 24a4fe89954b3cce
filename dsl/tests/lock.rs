//! The state lock check on the trybuild cases' own files (`ui-tests/tests/ui/lock_*.rs` and
//! `ui-tests/tests/ui-pass/lock_kept.rs`, with their `.state.lock` files beside them): the
//! messages, without compiling the cases (the spans are checked by trybuild).

use std::path::{Path, PathBuf};

use proc_macro2::TokenStream;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../ui-tests")
}

/// The `compile_error!` messages `pipeline!` gives for the pipeline in `file`.
fn errors(file: &str) -> Vec<String> {
    let path = root().join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    let parsed = syn::parse_file(&text).unwrap();
    let body: TokenStream = parsed
        .items
        .iter()
        .find_map(|i| match i {
            syn::Item::Macro(m) if m.mac.path.is_ident("pipeline") => Some(m.mac.tokens.clone()),
            _ => None,
        })
        .expect("a pipeline! in the file");
    let out = simplestream_dsl::pipeline_at(body, Some(&path)).to_string();
    assert!(out.contains("include_bytes"), "the lock is tracked: {file}");
    out.split("compile_error ! {")
        .skip(1)
        .map(|e| {
            e.split('"')
                .nth(1)
                .unwrap_or_default()
                .replace("\\\"", "\"")
        })
        .collect()
}

fn one_error(file: &str) -> String {
    let e = errors(file);
    assert_eq!(e.len(), 1, "{e:?}");
    e[0].clone()
}

#[test]
fn added_column_without_migration() {
    let e = one_error("tests/ui/lock_added_column.rs");
    assert!(e.starts_with("stage `customer_stats` changed its state layout (added column `max_amount`) but no migration from the locked layout is declared; add `#[migrate(added(max_amount))]` to the stage, or run `simplestream state lock` to accept losing this stage's state"), "{e}");
}

#[test]
fn key_type_changed() {
    let e = one_error("tests/ui/lock_key_type_changed.rs");
    assert!(e.contains("(key `shard` was `u32`, is `u64` now)"), "{e}");
    assert!(
        e.contains("`#[migrate(old_key = |k: u32| -> u64 { .. })]`"),
        "{e}"
    );
}

#[test]
fn window_size_changed() {
    let e = one_error("tests/ui/lock_window_size_changed.rs");
    assert!(
        e.contains("(window was `tumbling 300000ms`, is `tumbling 600000ms` now)"),
        "{e}"
    );
    assert!(e.contains("a window's size cannot be migrated"), "{e}");
}

#[test]
fn lateness_changed() {
    let e = one_error("tests/ui/lock_lateness_changed.rs");
    assert!(
        e.contains("(allowed lateness was 0ms, is 10000ms now)"),
        "{e}"
    );
    assert!(e.contains("`#[migrate(old_lateness = 0ms)]`"), "{e}");
}

#[test]
fn stage_removed() {
    let e = one_error("tests/ui/lock_stage_removed.rs");
    assert!(
        e.starts_with(
            "stage `per_5min` is in `LockStageRemoved.state.lock` but gone from the pipeline"
        ),
        "{e}"
    );
    assert!(e.contains("--allow-dropped-state per_5min"), "{e}");
}

#[test]
fn renamed_without_was() {
    let e = one_error("tests/ui/lock_renamed_without_was.rs");
    assert!(e.contains("write `#[was(stats)]` on it"), "{e}");
}

#[test]
fn declared_changes_pass() {
    assert_eq!(errors("tests/ui-pass/lock_kept.rs"), Vec::<String>::new());
}

/// What `pipeline!` gives for pipeline `P` (DSL `body`) beside a `P.state.lock` of `lock`.
fn expanded_with_lock(tag: &str, lock: &str, body: &str) -> String {
    let dir = std::env::temp_dir().join(format!("ss-lock-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("main.rs");
    std::fs::write(&src, "").unwrap();
    std::fs::write(dir.join("P.state.lock"), lock).unwrap();
    let body: TokenStream = body.parse().unwrap();
    let out = simplestream_dsl::pipeline_at(body, Some(&src)).to_string();
    std::fs::remove_dir_all(&dir).unwrap();
    out
}

#[test]
fn a_migration_from_another_layout_is_reported() {
    let out = expanded_with_lock(
        "migration",
        "stats = key k: String; aggregate n: u64 = count, x: u64 = count\n",
        r#"
        pipeline P;
        source orders: Order, event_time = |o| o.ts, max_delay = 5s;
        #[migrate(added(top, x))]
        stats = orders.key_by(k: String = |o| o.k.clone()).aggregate(n = count(), top: f64 = max(|o| o.v), x = count());
    "#,
    );
    // `x` is locked already: the declared migration is from an older layout.
    assert!(out.contains("stage `stats`: this migration converts from `key k: String; aggregate n: u64 = count`, but the locked layout is `key k: String; aggregate n: u64 = count, x: u64 = count`"), "{out}");
}

#[test]
fn a_join_that_now_folds_for_its_reader() {
    let e = one_error("tests/ui/lock_join_now_folds.rs");
    assert!(e.starts_with("stage `opened` changed its state layout (the join now keeps per key and window each input's event count and its reader's columns folded from them, not the events)"), "{e}");
    assert!(
        e.contains("cannot be converted between buffered events and folds"),
        "{e}"
    );
}

#[test]
fn a_join_that_buffers_again() {
    // The filter before `key_by` stops the fold: the join buffers its events.
    let out = expanded_with_lock(
        "fold",
        "opened = join id: u64 of L, R; window tumbling 10000ms, lateness 0ms; folded n: u64 = count\n",
        r#"
        pipeline P;
        source ls: L, event_time = |l| l.ts, max_delay = 1s;
        source rs: R, event_time = |r| r.ts, max_delay = 1s;
        opened = ls.join(rs, id: u64 = |l| l.id, |r| r.id).window(tumbling(10s));
        q = opened.filter(|_| true).key_by(id: u64 = |j| j.id).window(tumbling(10s)).aggregate(n = count());
        sink q;
    "#,
    );
    assert!(out.contains("stage `opened` changed its state layout (the join now buffers its events instead of folding them for its reader)"), "{out}");
}

//! What `cargo expand` shows a user: the expansion of the orders pipeline (a copy of
//! `examples/orders/pipeline.rs`'s `pipeline!` body, in `expansion/orders.pipeline`),
//! pretty-printed and compared with the checked-in `expansion/orders.expanded.rs`.
//!
//! After a change to the generated code, rewrite the golden file with
//! `UPDATE_GOLDEN=1 cargo test -p simplestream-dsl --test expansion` and read its diff.

use std::path::Path;

use proc_macro2::TokenStream;

fn expand_pretty(input: &str) -> String {
    let tokens: TokenStream = input.parse().expect("the input tokenizes");
    let code = simplestream_dsl::pipeline(tokens);
    let text = code.to_string();
    assert!(
        !text.contains("compile_error"),
        "the input has errors: {text}"
    );
    let file: syn::File = syn::parse2(code).expect("the expansion parses as Rust items");
    prettyplease::unparse(&file)
}

/// The first line where `got` and `want` differ, with some lines around it.
fn first_difference(got: &str, want: &str) -> String {
    let (g, w): (Vec<&str>, Vec<&str>) = (got.lines().collect(), want.lines().collect());
    let at = (0..g.len().max(w.len()))
        .find(|&i| g.get(i) != w.get(i))
        .unwrap_or(0);
    let around = |lines: &[&str]| {
        let from = at.saturating_sub(3);
        lines[from.min(lines.len())..(at + 4).min(lines.len())].join("\n")
    };
    format!(
        "first difference at line {}:\n--- golden\n{}\n--- expansion\n{}",
        at + 1,
        around(&w),
        around(&g)
    )
}

#[test]
fn the_orders_pipeline_expands_as_the_golden_file_shows() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/expansion");
    let input = std::fs::read_to_string(dir.join("orders.pipeline")).expect("input");
    let got = expand_pretty(&input);
    let golden = dir.join("orders.expanded.rs");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, &got).expect("write the golden file");
        return;
    }
    let want = std::fs::read_to_string(&golden)
        .expect("read the golden file (create it with UPDATE_GOLDEN=1)");
    assert!(
        got == want,
        "the expansion differs from {}; if the change is intended, rerun with UPDATE_GOLDEN=1 and read the diff\n{}",
        golden.display(),
        first_difference(&got, &want)
    );
}

//! Compile-time diagnostics of `pipeline!`: each file in `tests/ui/` must fail to compile
//! with exactly the checked-in `.stderr`; each file in `tests/ui-pass/` must compile.
//!
//! Regenerate the expected output with `TRYBUILD=overwrite cargo test -p simplestream-ui-tests`
//! and read the diff before committing it.

#[test]
fn compile_fail() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}

#[test]
fn pass() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui-pass/*.rs");
}

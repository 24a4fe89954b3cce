//! No code: the trybuild cases live in `tests/`; see `tests/compile_fail.rs`.
#![forbid(unsafe_code)]

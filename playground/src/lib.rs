//! The browser playground (see issue: WASM playground). Not built yet.
#![forbid(unsafe_code)]

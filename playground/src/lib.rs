//! The browser playground of SimpleStream: real `pipeline!`-generated code compiled to
//! WebAssembly, checkpointing into the browser's localStorage.
//!
//! The page (`playground/www/`) lets a newcomer watch state build up, take checkpoints,
//! press "crash" and see everything come back. Everything but the browser glue is plain
//! Rust that also builds natively, so its logic is unit-tested by `cargo test`:
//!
//! - [`gallery`]: the pipelines shown (orders per customer, sliding and session windows,
//!   a window over all events, a join of two sources), each written with `pipeline!`;
//! - [`source`]: the deterministic, seeded event source and manual-event validation;
//! - [`query`]: the SQL editor's query, checked against the orders source and run by
//!   the interpreter of `simplestream sql`;
//! - [`lab`]: one pipeline's life: process, checkpoint, crash, restore (through the
//!   runtime's [`Coordinator`](simplestream::Coordinator)), corrupt, reference check;
//! - [`diagram`] and [`tables`]: the stage diagram and the state tables, laid out by the
//!   plan each pipeline carries (`Pipeline::PLAN`); [`text`]: how values are written;
//! - [`b64`]: base64, how binary checkpoints are stored as text;
//! - [`prune`]: which checkpoints make room when localStorage is full;
//! - `local_storage` and `web` (wasm32 only): `LocalStorageStore` (the runtime's
//!   `CheckpointStore` over `window.localStorage`) and the `#[wasm_bindgen]` API the page
//!   calls.
#![forbid(unsafe_code)]

pub mod b64;
pub mod diagram;
pub mod gallery;
pub mod lab;
pub mod prune;
pub mod query;
pub mod source;
pub mod tables;
pub mod text;

#[cfg(target_arch = "wasm32")]
pub mod local_storage;
#[cfg(target_arch = "wasm32")]
pub mod web;

#[cfg(target_arch = "wasm32")]
pub use local_storage::LocalStorageStore;

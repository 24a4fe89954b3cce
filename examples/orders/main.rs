//! The `orders` program: the article's pipeline over a JSON-lines file, with file
//! checkpoints. Kill it at any moment; start it again; nothing is lost or doubled.
//!
//! ```text
//! cargo run --release --example orders -- --input orders.jsonl --output out.jsonl \
//!     --checkpoint-dir ckpt --instance app-instance-1 --checkpoint-every 1000
//! ```
#![forbid(unsafe_code)]

use std::process::ExitCode;

use simplestream_examples::orders::Orders;

fn main() -> ExitCode {
    simplestream::runner::main::<Orders>()
}

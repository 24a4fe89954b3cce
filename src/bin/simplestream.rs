//! `simplestream`: checkpoint tools.
//!
//! ```text
//! simplestream checkpoints list   DIR --instance app-instance-1
//! simplestream checkpoints show   DIR --instance app-instance-1 [--id 42]
//! simplestream checkpoints verify DIR --instance app-instance-1
//! ```
//! Listing and verifying work for any pipeline's checkpoints; `show` decodes binary
//! checkpoints of the pipelines compiled into this tool (the `orders` example); for
//! your own pipeline, use your program's `checkpoints` subcommand, which the runner adds.
#![forbid(unsafe_code)]

#[path = "../../examples/orders/pipeline.rs"]
#[allow(dead_code)]
mod orders;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use simplestream::runner::checkpoints::{self, CheckpointsCommand};

#[derive(Parser)]
#[command(name = "simplestream", about = "SimpleStream checkpoint tools")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// List, show or verify checkpoints.
    #[command(subcommand)]
    Checkpoints(CheckpointsCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Checkpoints(c) => checkpoints::run::<orders::Orders>(c),
    }
}

//! `simplestream`: checkpoint tools for any pipeline's checkpoints.
//!
//! ```text
//! simplestream checkpoints list   DIR|URL --instance app-instance-1
//! simplestream checkpoints show   DIR|URL --instance app-instance-1 [--id 42]
//! simplestream checkpoints verify DIR|URL --instance app-instance-1
//! ```
//! No pipeline is compiled in. JSON checkpoints describe themselves: all three work on
//! them in full. Of a binary checkpoint, `show` prints the header and `verify` checks the
//! checksum; the stages are decoded by the `checkpoints` subcommand of the program that
//! wrote it (`simplestream::runner::main` adds it).
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use simplestream::runner::checkpoints::{self, InspectCommand};

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
    Checkpoints(InspectCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Checkpoints(c) => checkpoints::run_any(c),
    }
}

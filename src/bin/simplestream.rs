//! `simplestream`: checkpoint tools for any pipeline's checkpoints, and the state lock.
//!
//! ```text
//! simplestream checkpoints list   DIR|URL --instance app-instance-1
//! simplestream checkpoints show   DIR|URL --instance app-instance-1 [--id 42]
//! simplestream checkpoints verify DIR|URL --instance app-instance-1
//! simplestream state lock src/main.rs
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
    /// The state lock that `pipeline!` checks changes against.
    #[command(subcommand)]
    State(StateCommand),
}

#[derive(Subcommand)]
enum StateCommand {
    /// Write `Name.state.lock` next to each source file, for each `pipeline!` in it: its
    /// stateful stages and their state layouts. Run it when that version is deployed.
    Lock {
        /// Rust source files holding `pipeline! { .. }`.
        #[arg(required = true, value_name = "SOURCE.rs")]
        sources: Vec<std::path::PathBuf>,
    },
}

fn lock(sources: &[std::path::PathBuf]) -> ExitCode {
    for source in sources {
        match simplestream_dsl::lock::file::write_for_source(source) {
            Ok(written) => {
                for w in written {
                    let s = if w.stages == 1 { "" } else { "s" };
                    println!("wrote {}: {} stateful stage{s}", w.path.display(), w.stages);
                }
            }
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Checkpoints(c) => checkpoints::run_any(c),
        Cmd::State(StateCommand::Lock { sources }) => lock(&sources),
    }
}

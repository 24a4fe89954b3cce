//! `simplestream`: SQL over JSON lines, checkpoint tools for any pipeline's checkpoints,
//! and the state lock.
//!
//! ```text
//! simplestream sql "SELECT customer, COUNT(*) AS n FROM orders GROUP BY customer, TUMBLE(ts, INTERVAL '5' MINUTE)" \
//!     --input orders.jsonl --output out.jsonl --checkpoint-dir ck
//! simplestream checkpoints list   DIR|URL --instance app-instance-1
//! simplestream checkpoints show   DIR|URL --instance app-instance-1 [--id 42]
//! simplestream checkpoints verify DIR|URL --instance app-instance-1
//! simplestream savepoint DIR|URL before-v2 --instance app-instance-1
//! simplestream state lock src/main.rs
//! ```
//! `sql` runs a query with the runner of compiled pipelines (same checkpoints, recovery
//! and flags). The `checkpoints` tools need no pipeline: JSON checkpoints describe
//! themselves, so all three work on them in full. Of a binary checkpoint, `show` prints
//! the header and `verify` checks the checksum; the stages are decoded by the
//! `checkpoints` subcommand of the program that wrote it (`simplestream::runner::main`
//! adds it; for a query, `simplestream sql "<query>" checkpoints ...`).
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use simplestream::runner::checkpoints::{self, InspectCommand};
use simplestream::runner::{self, Command};
use simplestream::sql::{self, SqlPipeline};
use simplestream::time::parse_duration_ms;

#[derive(Parser)]
#[command(
    name = "simplestream",
    about = "SimpleStream: SQL over JSON lines, checkpoint tools, the state lock"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// List, show or verify checkpoints.
    #[command(subcommand)]
    Checkpoints(InspectCommand),
    /// Take a savepoint from the latest checkpoint, without the program (as
    /// `checkpoints savepoint`): restore it with `--from-savepoint NAME`.
    Savepoint(checkpoints::SavepointArgs),
    /// The state lock that `pipeline!` checks changes against.
    #[command(subcommand)]
    State(StateCommand),
    /// Run a SQL query over JSON lines, with checkpoints that survive crashes.
    #[command(args_conflicts_with_subcommands = true)]
    Sql(Box<SqlArgs>),
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

#[derive(clap::Args)]
struct SqlArgs {
    /// The query: `[CREATE TABLE src (col TYPE, ..);] SELECT ... FROM src ...`.
    query: String,
    /// The event-time column (integer ms) [default: the window function's column].
    #[arg(long, value_name = "COLUMN")]
    event_time: Option<String>,
    /// How far the watermark stays behind the newest event time (a window closes once
    /// the watermark passes its end).
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration_ms)]
    max_delay: i64,
    #[command(flatten)]
    run: runner::Args,
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
        Cmd::Savepoint(a) => checkpoints::run_any(InspectCommand::Savepoint(a)),
        Cmd::State(StateCommand::Lock { sources }) => lock(&sources),
        Cmd::Sql(a) => run_sql(*a),
    }
}

fn run_sql(a: SqlArgs) -> ExitCode {
    let opts = sql::Options {
        event_time: a.event_time,
        max_delay_ms: a.max_delay,
    };
    let query = match sql::parse(&a.query, &opts) {
        Ok(q) => q,
        Err(e) => {
            eprintln!("error: {}", e.render(&a.query));
            return ExitCode::from(2);
        }
    };
    sql::install(sql::prepare(query)).expect("the only query of this process");
    runner::init_logging(a.run.quiet);
    if let Some(Command::Checkpoints(cmd)) = a.run.command {
        return checkpoints::run::<SqlPipeline>(cmd);
    }
    runner::exit(runner::run::<SqlPipeline>(&a.run), a.run.quiet)
}

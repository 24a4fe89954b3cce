//! Turns any generated pipeline into a command-line program with file checkpoints.
//!
//! ```no_run
//! # use simplestream_runtime as simplestream;
//! # fn demo<P: simplestream::Pipeline>() -> std::process::ExitCode
//! # where P::Event: serde::de::DeserializeOwned {
//! // In your program's main: `fn main() -> ExitCode { simplestream::runner::main::<MyPipeline>() }`
//! simplestream::runner::main::<P>()
//! # }
//! ```
//!
//! The program reads JSON lines, writes results as JSON lines, and checkpoints into
//! `<checkpoint-dir>/checkpoints/<instance>/`. Every checkpoint holds the input's byte
//! offset and the committed length of each output file; outputs are flushed and fsynced
//! before the checkpoint is written. On restart, outputs are truncated back to those
//! lengths and the input resumes at that offset, so after any number of crashes the
//! output is byte-identical to a run that never crashed. Only bytes provably written by
//! this program are cut: before it writes to an output no checkpoint records (a first
//! run: checkpoint #0), it takes a checkpoint recording it, and a non-empty file found
//! there is refused instead (unless `--from-scratch`).

mod block;
pub mod checkpoints;
mod early_sync;
pub mod endpoint;
pub mod fence;
pub mod group;
pub mod identity;
pub mod input;
#[cfg(feature = "kafka")]
pub mod kafka;
#[cfg(feature = "kafka")]
mod kafka_input;
pub mod output;
pub mod paths;
pub mod pause;
mod progress;
mod read_ahead;
mod row_key;
mod savepoint;
pub mod sink;
pub mod source;
mod tasks;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand, ValueEnum};
use serde::de::DeserializeOwned;
use tracing::{debug, error, info, warn};

use crate::coordinator::{Coordinator, CoordinatorConfig, CoordinatorError};
use crate::envelope::Codec;
use crate::pipeline::{Collector, OutputRecord, Pipeline};
use crate::store::{CheckpointStore, FileStore, FileStoreOptions, StoreUrl};
use crate::time::{now_ms, parse_duration_ms};
use endpoint::Endpoint;
use input::{LineReader, Read};
use sink::Sink;
use source::Source;

/// What to do with a line that is not a valid event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnBadInput {
    /// Stop with an error naming the line and field; a checkpoint lets you fix the line
    /// and resume from it.
    Fail,
    /// Log a warning and go on.
    Skip,
    /// Write the line and the error to the dead-letter file and go on.
    DeadLetter,
}

/// Command-line options of a pipeline program.
#[derive(Debug, Parser)]
#[command(
    about = "Runs a SimpleStream pipeline over a JSON-lines file, with checkpoints that survive crashes.",
    long_about = "Runs a SimpleStream pipeline over a JSON-lines file, with checkpoints that survive crashes.\n\n\
        Kill it at any moment (even with kill -9) and start it again with the same arguments: it restores the \
        newest valid checkpoint, truncates the outputs back to what that checkpoint committed, and resumes reading \
        where it was taken. The output is then byte-identical to a run that never crashed.",
    args_conflicts_with_subcommands = true
)]
pub struct Args {
    /// Input: a file of one JSON event per line, or `kafka://host:port[,host:port]/topic`
    /// (every partition; one JSON event per record).
    #[arg(long, value_name = "FILE|URL", required = true)]
    pub input: Option<PathBuf>,
    /// Output: a file of one JSON result per line (closed windows, sink records), or
    /// kafka://host:port/topic (one record per result, partition 0; with --partitions,
    /// the partition each task reads).
    #[arg(long, value_name = "FILE|URL", required = true)]
    pub output: Option<PathBuf>,
    /// File or topic for late events (arrived after their window closed)
    /// [default: OUTPUT.late].
    #[arg(long, value_name = "FILE|URL")]
    pub late_output: Option<PathBuf>,
    /// Directory holding checkpoints (in DIR/checkpoints/INSTANCE/).
    #[arg(long, value_name = "DIR", default_value = "checkpoints-data")]
    pub checkpoint_dir: PathBuf,
    /// Where checkpoints go: file:///dir (the default: --checkpoint-dir),
    /// s3://bucket/prefix, gs://bucket/prefix, az://container/prefix (settings from the
    /// AWS_*, GOOGLE_*, AZURE_* variables) or kafka://host:port/topic.
    #[arg(long, value_name = "URL")]
    pub checkpoint_store: Option<String>,
    /// When to upload checkpoints: inline (in the pause), background (serialize in the
    /// pause, upload while processing goes on; at most one upload in flight; `latest`
    /// moves only once the upload is durable), or auto (background for remote stores
    /// and the disk state backend).
    #[arg(long, value_enum, default_value = "auto")]
    pub upload: Upload,
    /// Name of this instance; two processes cannot run on one instance.
    #[arg(long, value_name = "NAME", default_value = "default")]
    pub instance: String,
    /// Take a checkpoint every N events (0: not by count).
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub checkpoint_every: u64,
    /// Also take a checkpoint every DURATION of wall-clock time (e.g. 10s, 1min).
    #[arg(long, value_name = "DURATION", value_parser = parse_interval)]
    pub checkpoint_interval: Option<i64>,
    /// Checkpoint codec: readable JSON or compact binary.
    #[arg(long, value_name = "CODEC", default_value = "json", value_parser = Codec::parse)]
    pub codec: Codec,
    /// Keep the newest K checkpoints.
    #[arg(long, value_name = "K", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    pub keep: u64,
    /// Incremental checkpoints: each writes what changed since the previous one (a delta)
    /// and a manifest naming the pieces a restore needs; every 10th (or once the deltas
    /// outweigh half the last whole one) is whole again.
    #[arg(long)]
    pub incremental: bool,
    /// Ignore existing checkpoints and start from the beginning (outputs are rewritten,
    /// whoever wrote them).
    #[arg(long)]
    pub from_scratch: bool,
    /// Resume even though the input's bytes before the checkpoint's offset changed (the
    /// file was replaced or edited): reading goes on at that offset of the new file.
    #[arg(long)]
    pub accept_changed_input: bool,
    /// What to do with a malformed line.
    #[arg(long, value_enum, default_value = "fail")]
    pub on_bad_input: OnBadInput,
    /// Dead-letter file or topic for --on-bad-input dead-letter [default: OUTPUT.dead].
    #[arg(long, value_name = "FILE|URL")]
    pub dead_letter: Option<PathBuf>,
    /// Kafka input: run one task per listed partition (e.g. 0,2), each with its own
    /// state and checkpoints (DIR/GROUP/checkpoints/partition-N/), writing partition N
    /// of the output topics. Several instances share a topic by listing different
    /// partitions; an instance taking a partition over fences out its previous owner.
    #[arg(long, value_name = "N,N,...", value_delimiter = ',', num_args = 1..)]
    pub partitions: Option<Vec<i32>>,
    /// With --partitions or --group-assign: the key column the input topic is
    /// partitioned by (records with one key in one partition); every stateful stage
    /// must be keyed by it.
    #[arg(long, value_name = "COLUMN")]
    pub partition_key: Option<String>,
    /// Kafka input: let Kafka's consumer-group protocol assign the topic's partitions to
    /// the running instances (group id: --group); partitions move as instances come and
    /// go, each restoring its latest checkpoint from --checkpoint-dir (a disk all
    /// instances share). Needs --partition-key, as --partitions does.
    #[arg(long, conflicts_with = "partitions")]
    pub group_assign: bool,
    /// With --group-assign: a member that sends no heartbeat for this long loses its
    /// partitions (and writes nothing more for them); also how long a rebalance waits
    /// for members to rejoin (e.g. 10s).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_interval)]
    pub session_timeout: i64,
    /// With --partitions or --group-assign: the name the instances sharing a topic use
    /// for its partitions' checkpoints (and the consumer group's id) [default: the
    /// pipeline's name].
    #[arg(long, value_name = "NAME")]
    pub group: Option<String>,
    /// Kafka output: partitions to create a missing output topic with [default: as
    /// many as the Kafka input topic has, else 1]. Rows are placed by key over them.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i32).range(1..),
          conflicts_with_all = ["partitions", "group_assign"])]
    pub output_partitions: Option<i32>,
    /// Kafka input without a checkpoint: start at each partition's oldest record
    /// (earliest) or after its newest (latest). A checkpoint's offsets always win.
    #[arg(long, value_enum, default_value = "earliest")]
    pub from: StartAt,
    /// Kafka input with --follow: a partition with nothing to read for this long stops
    /// holding the others (and the watermark) back (e.g. 5s).
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_interval)]
    pub idle_timeout: i64,
    /// Keep reading the input as it grows (like tail -f); stop with Ctrl-C.
    #[arg(long)]
    pub follow: bool,
    /// Only print warnings and errors.
    #[arg(long)]
    pub quiet: bool,
    /// Restore even though the checkpoint holds state of stage STAGE that this version
    /// cannot take (the stage is gone, or its state layout changed with no migration):
    /// that state is dropped. Repeat for several stages.
    #[arg(long, value_name = "STAGE")]
    pub allow_dropped_state: Vec<String>,
    /// Start from savepoint NAME (taken on SIGUSR1 or with --savepoint-on-stop) instead
    /// of the latest checkpoint; outputs are cut back to what it recorded.
    #[arg(long, value_name = "NAME", value_parser = savepoint::parse_name, conflicts_with = "from_scratch")]
    pub from_savepoint: Option<String>,
    /// Name of the savepoint SIGUSR1 takes [default: the time, e.g. 20241201_140000_123].
    #[arg(long, value_name = "NAME", value_parser = savepoint::parse_name)]
    pub savepoint_name: Option<String>,
    /// On SIGTERM or SIGINT, also take savepoint NAME after the final checkpoint.
    #[arg(long, value_name = "NAME", value_parser = savepoint::parse_name)]
    pub savepoint_on_stop: Option<String>,
    /// Exit with an error after this many checkpoints fail in a row.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub max_failed_checkpoints: u32,
    /// Longest accepted input line, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 1 << 20)]
    pub max_line_bytes: usize,
    /// Where running aggregates keep their per-key state: memory (every key in a hash
    /// map) or disk (hot keys in memory within --state-memory, the rest in an embedded
    /// store in --state-dir).
    #[arg(long, value_enum, default_value = "memory")]
    pub state_backend: StateBackendArg,
    /// The disk backend's memory budget for keyed state and its store's cache (e.g.
    /// 64MiB, 1GiB).
    #[arg(long, value_name = "SIZE", default_value = "256MiB", value_parser = crate::spill::parse_size)]
    pub state_memory: usize,
    /// The disk backend's working directory, a local cache that checkpoints rebuild
    /// [default: CHECKPOINT_DIR/state/INSTANCE, or a temporary directory for remote
    /// stores].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Inspect checkpoints instead of running.
    #[command(subcommand)]
    pub command: Option<Command>,
}

fn parse_interval(s: &str) -> Result<i64, String> {
    let ms = parse_duration_ms(s)?;
    if ms <= 0 {
        return Err("the interval must be more than zero".into());
    }
    Ok(ms)
}

/// `--state-backend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StateBackendArg {
    /// Every key in memory.
    Memory,
    /// Hot keys in memory, the rest on disk.
    Disk,
}

/// Sets the process's state backend as `args` say (before a pipeline is made).
fn set_state_backend(args: &Args, remote: bool) -> Result<(), RunError> {
    let backend = match args.state_backend {
        StateBackendArg::Memory => crate::spill::StateBackend::Memory,
        StateBackendArg::Disk => {
            let dir = match (&args.state_dir, remote) {
                (Some(d), _) => d.clone(),
                (None, false) => args.checkpoint_dir.join("state").join(&args.instance),
                (None, true) => std::env::temp_dir()
                    .join("simplestream-state")
                    .join(&args.instance),
            };
            crate::spill::StateBackend::Disk(crate::spill::DiskConfig {
                dir,
                memory: args.state_memory,
            })
        }
    };
    crate::spill::set_state_backend(backend).map_err(RunError::Fatal)
}

/// Where a Kafka input without a checkpoint starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StartAt {
    /// Each partition's oldest record.
    Earliest,
    /// After each partition's newest record: only what is produced from now on.
    Latest,
}

/// When checkpoints are uploaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Upload {
    /// Background for remote stores, inline for files.
    Auto,
    /// In the pause: processing waits until the checkpoint and `latest` are durable.
    Inline,
    /// Off the hot path: processing resumes once the state is serialized.
    Background,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List, show or verify checkpoints, or print the layout of their stage states.
    #[command(subcommand)]
    Checkpoints(checkpoints::CheckpointsCommand),
}

/// Parses the command line, runs, and turns errors into a message and exit code 1
/// (2 for bad input in `fail` mode).
pub fn main<P>() -> ExitCode
where
    P: Pipeline,
    P::Event: DeserializeOwned,
{
    let args = Args::parse();
    init_logging(args.quiet);
    if let Some(Command::Checkpoints(cmd)) = args.command {
        return checkpoints::run::<P>(cmd);
    }
    exit(run::<P>(&args), args.quiet)
}

/// A run's outcome as the program's exit: the summary (unless `quiet`) and 0, or the
/// error and 2 for bad input in `fail` mode, 1 otherwise.
pub fn exit(r: Result<String, RunError>, quiet: bool) -> ExitCode {
    match r {
        Ok(summary) => {
            if !quiet {
                eprintln!("{summary}");
            }
            ExitCode::SUCCESS
        }
        Err(RunError::BadInput(msg)) => {
            error!("{msg}");
            ExitCode::from(2)
        }
        Err(RunError::Fatal(msg)) => {
            error!("{msg}");
            ExitCode::FAILURE
        }
    }
}

/// Sets up `tracing` on stderr; `RUST_LOG` overrides the level.
pub fn init_logging(quiet: bool) {
    use tracing_subscriber::EnvFilter;
    // The storage clients log each retry at info: ours says what failed, once.
    let default = if quiet {
        "warn"
    } else {
        "info,object_store=warn,rskafka=warn"
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

/// Why a run stopped with an error.
#[derive(Debug)]
pub enum RunError {
    /// A malformed line in `fail` mode (a checkpoint was taken at that line).
    BadInput(String),
    /// Anything else.
    Fatal(String),
}

impl From<&str> for RunError {
    fn from(s: &str) -> Self {
        RunError::Fatal(s.to_string())
    }
}

impl From<String> for RunError {
    fn from(s: String) -> Self {
        RunError::Fatal(s)
    }
}

struct Outputs {
    main: Box<dyn Sink>,
    late: Box<dyn Sink>,
    dead: Option<Box<dyn Sink>>,
    /// The checkpoint's dead-letter positions (length, tail), kept when this run does
    /// not write dead letters (so a later dead-letter run does not truncate them away).
    dead_carry: BTreeMap<String, u64>,
    multi_sink: bool,
    scratch: Vec<u8>,
    /// Keys of main output rows, for an output that places rows by key.
    keys: row_key::RowKeys,
    key_scratch: Vec<u8>,
    /// A keyed row of one of several sinks, before it is wrapped in [`Tagged`].
    row_scratch: Vec<u8>,
}

impl Outputs {
    fn write<O: OutputRecord>(&mut self, rec: &O) -> Result<(), String> {
        let enc = |e: serde_json::Error| format!("encoding an output record: {e}");
        if rec.is_late() {
            return self.late.write_with(&mut self.scratch, &mut |buf| {
                crate::codec::json_line(buf, rec).map_err(enc)
            });
        }
        if !self.main.keyed() {
            let multi_sink = self.multi_sink;
            return self.main.write_with(&mut self.scratch, &mut |buf| {
                let r = if multi_sink {
                    let tagged = Tagged {
                        sink: rec.sink(),
                        record: rec,
                    };
                    crate::codec::json_line(buf, &tagged)
                } else {
                    crate::codec::json_line(buf, rec)
                };
                r.map_err(enc)
            });
        }
        // Keyed: the key is read back from the row itself, which is encoded once.
        self.scratch.clear();
        self.key_scratch.clear();
        let line = if self.multi_sink {
            self.row_scratch.clear();
            crate::codec::to_json_writer(&mut self.row_scratch, rec).map_err(enc)?;
            tagged_into(&mut self.scratch, rec.sink(), &self.row_scratch).map_err(enc)?;
            &self.row_scratch
        } else {
            crate::codec::to_json_writer(&mut self.scratch, rec).map_err(enc)?;
            &self.scratch
        };
        let found = self.keys.key_into(rec.sink(), line, &mut self.key_scratch);
        let key = found.then_some(self.key_scratch.as_slice());
        self.main.write_keyed(key, &self.scratch)
    }

    /// See [`Sink::flush`](sink::Sink::flush): a followed input has gone quiet.
    fn flush(&mut self) -> Result<(), String> {
        self.main.flush()?;
        self.late.flush()?;
        self.dead.as_mut().map_or(Ok(()), |d| d.flush())
    }

    /// Does the checkpoint's `positions` prove every output this run's? Not on a fresh
    /// start, nor for an output it did not write (a new dead-letter file, a new path).
    fn recorded_in(&self, positions: &BTreeMap<String, u64>) -> bool {
        self.main.recorded_in("output", positions)
            && self.late.recorded_in("late", positions)
            && self
                .dead
                .as_ref()
                .is_none_or(|d| d.recorded_in("dead_letter", positions))
    }

    fn commit(&mut self, positions: &mut BTreeMap<String, u64>) -> Result<(), String> {
        self.main.commit_into("output", positions)?;
        self.late.commit_into("late", positions)?;
        match &mut self.dead {
            Some(d) => d.commit_into("dead_letter", positions)?,
            None => {
                positions.insert("dead_letter.len".into(), 0);
                positions.extend(self.dead_carry.clone());
            }
        }
        Ok(())
    }
}

#[derive(serde::Serialize)]
struct Tagged<'a, O> {
    sink: &'static str,
    record: &'a O,
}

/// Writes to `out` what [`Tagged`] encodes to, around `row` (the record already encoded).
fn tagged_into(out: &mut Vec<u8>, sink: &str, row: &[u8]) -> serde_json::Result<()> {
    out.extend_from_slice(b"{\"sink\":");
    crate::codec::to_json_writer(&mut *out, sink)?;
    out.extend_from_slice(b",\"record\":");
    out.extend_from_slice(row);
    out.push(b'}');
    Ok(())
}

#[derive(serde::Serialize)]
struct DeadLetter<'a> {
    line: u64,
    offset: u64,
    error: &'a str,
    raw: std::borrow::Cow<'a, str>,
}

struct Run<P: Pipeline, S: Source = LineReader> {
    pipeline: P,
    coord: Coordinator<Box<dyn CheckpointStore + Send>>,
    background: bool,
    /// Pause per checkpoint (processing stopped), ms.
    pauses: Vec<f64>,
    /// Time to store each checkpoint (write, `latest`, retention), ms.
    uploads: Vec<f64>,
    outputs: Outputs,
    input: S,
    events: u64,
    failures: u32,
    max_failures: u32,
    checkpoints: u64,
    last_ckpt: Option<(u64, Duration)>,
    /// `--savepoint-name`, `--savepoint-on-stop`.
    savepoint_name: Option<String>,
    savepoint_on_stop: Option<String>,
}

/// Stops the run before anything computed after a failure of the disk backend's working
/// directory leaves the process.
fn spill_ok() -> Result<(), String> {
    match crate::spill::failure() {
        None => Ok(()),
        Some(e) => Err(format!(
            "{e}\nstopped: nothing computed since was written; fix the state directory (--state-dir) and run again to resume from the last checkpoint"
        )),
    }
}

/// Writes each output record as the pipeline emits it: a window that closes many keys
/// emits them in one call, and writing them as they come keeps them out of a vector larger
/// than the cache. After the first error nothing more is written; [`done`](Self::done)
/// returns it and the run stops.
struct Direct<'a> {
    outputs: &'a mut Outputs,
    failed: Option<String>,
}

impl<'a> Direct<'a> {
    fn to(outputs: &'a mut Outputs) -> Self {
        Direct {
            outputs,
            failed: None,
        }
    }

    fn done(self) -> Result<(), String> {
        self.failed.map_or(Ok(()), Err)
    }
}

impl<O: OutputRecord> Collector<O> for Direct<'_> {
    #[inline]
    fn collect(&mut self, rec: O) {
        if self.failed.is_none() {
            if let Err(e) = spill_ok().and_then(|()| self.outputs.write(&rec)) {
                self.failed = Some(e);
            }
        }
    }
}

impl<P: Pipeline, S: Source> Run<P, S> {
    /// Where the run stands, with the outputs made durable first.
    fn positions(&mut self) -> Result<BTreeMap<String, u64>, String> {
        spill_ok()?;
        let mut positions = BTreeMap::new();
        positions.insert("events".into(), self.events);
        self.input.save_positions(&mut positions)?;
        self.outputs.commit(&mut positions)?;
        Ok(positions)
    }

    /// Before a byte is written to an output the restored checkpoint does not record (on
    /// a fresh start: all of them, with the pipeline empty): a checkpoint that records
    /// them, empty, and which files they are. A crash before the next checkpoint then
    /// restores this one, and the restart may cut back what this run wrote, provably its
    /// own. Not counted among the run's checkpoints.
    fn checkpoint_start(&mut self) -> Result<(), String> {
        let positions = self.positions()?;
        self.coord.start_at_zero();
        let info = self
            .coord
            .checkpoint(&self.pipeline, positions, now_ms())
            .map_err(|e| {
                format!("the start checkpoint, which records the outputs as this run's, failed: {e}; nothing was written; run again")
            })?;
        info!(
            "checkpoint #{} ({}) records the outputs as this run's before anything is written to them",
            info.id, info.name
        );
        Ok(())
    }

    /// Pause, make outputs durable, checkpoint, resume. A failed checkpoint keeps the
    /// previous one valid; the next trigger retries. With background uploads the state
    /// is serialized here and stored while processing goes on; `last` (end of input, a
    /// signal, a bad line) always waits until everything is durable.
    fn checkpoint(&mut self, why: &str, last: bool) -> Result<bool, String> {
        spill_ok()?;
        let started = Instant::now();
        // At most one upload in flight: collect the previous one first.
        if let Some(r) = self.coord.finish_upload() {
            self.outcome(r.map_err(Failure::from), "background upload", None)?;
        }
        let positions = match self.positions() {
            Ok(p) => p,
            // A fenced output: another instance owns this partition now.
            Err(e) if e.starts_with("fenced:") || e.ends_with(sink::STOPPED) => return Err(e),
            Err(e) => return self.outcome(Err(Failure::Retry(e)), why, Some(started)),
        };
        // Outputs durable past what the latest checkpoint records: a restart truncates.
        crate::checkpoint_failpoint("after-output-commit");
        if self.background && !last {
            match self.coord.begin_upload(&self.pipeline, positions, now_ms()) {
                Ok(id) => {
                    self.coord.reset_trigger(now_ms());
                    let took = started.elapsed();
                    self.pauses.push(took.as_secs_f64() * 1e3);
                    debug!(
                        id,
                        ms = took.as_millis() as u64,
                        why,
                        "checkpoint serialized; uploading in the background"
                    );
                    Ok(true)
                }
                Err(e) => self.outcome(Err(e.into()), why, Some(started)),
            }
        } else {
            let r = self
                .coord
                .checkpoint(&self.pipeline, positions, now_ms())
                .map_err(Failure::from);
            self.outcome(r, why, Some(started))
        }
    }

    /// Books a checkpoint's outcome: counts, logs, and stops after too many failures.
    fn outcome(
        &mut self,
        r: Result<crate::coordinator::CheckpointInfo, Failure>,
        why: &str,
        started: Option<Instant>,
    ) -> Result<bool, String> {
        let r = match r {
            Err(Failure::Fatal(e)) => {
                return Err(format!("checkpoint failed: {e}"));
            }
            Err(Failure::Retry(e)) => Err(e),
            Ok(i) => Ok(i),
        };
        match r {
            Ok(info) => {
                self.failures = 0;
                self.checkpoints += 1;
                self.uploads.push(info.store_ms);
                let took = started.map(|s| s.elapsed());
                if took.is_some() {
                    // The interval counts from the end of the pause.
                    self.coord.reset_trigger(now_ms());
                }
                if let Some(t) = took {
                    self.pauses.push(t.as_secs_f64() * 1e3);
                }
                self.last_ckpt = Some((
                    info.size,
                    took.unwrap_or(Duration::from_secs_f64(info.store_ms / 1e3)),
                ));
                debug!(id = info.id, name = %info.name, bytes = info.size, store_ms = info.store_ms, why, "checkpoint");
                Ok(true)
            }
            Err(e) => {
                self.failures += 1;
                self.coord.postpone(now_ms());
                let prev = self
                    .coord
                    .latest()
                    .ok()
                    .flatten()
                    .map(|m| m.file)
                    .unwrap_or_else(|| "none".into());
                error!(
                    "checkpoint failed ({}/{} in a row): {e}; the previous checkpoint ({prev}) stays valid; retrying at the next trigger",
                    self.failures, self.max_failures
                );
                if self.failures >= self.max_failures {
                    return Err(format!(
                        "{} checkpoints failed in a row; stopping (last error: {e})",
                        self.failures
                    ));
                }
                Ok(false)
            }
        }
    }
}

/// A failed checkpoint: worth retrying at the next trigger, or not (another process
/// writes this instance: going on would interleave two histories).
enum Failure {
    Retry(String),
    Fatal(String),
}

impl From<CoordinatorError> for Failure {
    fn from(e: CoordinatorError) -> Self {
        match &e {
            CoordinatorError::Store(s) if s.kind == crate::store::StoreErrorKind::Conflict => {
                Failure::Fatal(e.to_string())
            }
            _ => Failure::Retry(e.to_string()),
        }
    }
}

/// Runs the pipeline as `args` say; returns a one-line summary (one per partition with
/// `--partitions`).
pub fn run<P>(args: &Args) -> Result<String, RunError>
where
    P: Pipeline,
    P::Event: DeserializeOwned,
{
    match &args.partitions {
        Some(parts) => tasks::run_all::<P>(args, parts),
        #[cfg(feature = "kafka")]
        None if args.group_assign => group::run::<P>(args),
        #[cfg(not(feature = "kafka"))]
        None if args.group_assign => Err("--group-assign needs Kafka: this build has no Kafka support (enable the `kafka` feature of simplestream)".into()),
        None => run_task::<P>(args, None),
    }
}

/// One run: the whole input, or with `task` one partition of it.
fn run_task<P>(args: &Args, task: Option<&tasks::Task>) -> Result<String, RunError>
where
    P: Pipeline,
    P::Event: DeserializeOwned,
{
    let ends = endpoint::Endpoints::of(args)?;
    let url = match &args.checkpoint_store {
        Some(u) => StoreUrl::parse(u).map_err(|e| e.to_string())?,
        None => StoreUrl::File(args.checkpoint_dir.clone()),
    };
    let remote = !matches!(url, StoreUrl::File(_));
    check_paths(&ends, &url)?;
    let store: Box<dyn CheckpointStore + Send> = match (&url, task) {
        (StoreUrl::File(dir), Some(t)) => {
            let store = FileStore::open_unlocked(dir.join(&t.group), &t.store_instance())
                .map_err(|e| e.to_string())?;
            Box::new(fence::FencedStore::new(store, t.fence.clone()))
        }
        (StoreUrl::File(dir), None) => {
            let store = FileStore::open(dir, &args.instance, FileStoreOptions::default())
                .map_err(|e| e.to_string())?;
            for t in store.cleaned_temp_files() {
                warn!("removed {t}, a checkpoint write cut off by a crash");
            }
            Box::new(store)
        }
        (other, _) => other
            .open(&args.instance, false)
            .map_err(|e| e.to_string())?,
    };
    // The disk backend's deltas are stored after the pause too: their fsyncs would be
    // most of it.
    let background = match args.upload {
        Upload::Auto => remote || args.state_backend == StateBackendArg::Disk,
        Upload::Inline => false,
        Upload::Background => true,
    };
    let config = CoordinatorConfig {
        every_events: (args.checkpoint_every > 0).then_some(args.checkpoint_every),
        every_ms: args.checkpoint_interval,
        codec: args.codec,
        keep: args.keep as usize,
    };
    for note in store.left_alone() {
        warn!("{note}");
    }
    set_state_backend(args, remote)?;
    let mut coord = Coordinator::new(store, config);
    coord.set_restore_options(crate::upgrade::RestoreOptions {
        allow_dropped: args.allow_dropped_state.clone(),
    });
    if args.incremental {
        coord.set_incremental(Some(crate::incremental::IncrementalConfig::default()));
    }
    let (pipeline, positions) = if let Some(name) = &args.from_savepoint {
        savepoint::restore::<P>(&mut coord, name)?
    } else if args.from_scratch {
        let n = coord.store().list().map(|l| l.len()).unwrap_or(0);
        if n > 0 {
            warn!("--from-scratch: ignoring {n} existing checkpoint(s) in {}; outputs are rewritten from the start", coord.store().location());
        }
        // New checkpoints must sort after (and never overwrite) the old ones.
        coord.skip_existing_ids();
        (P::new(), BTreeMap::new())
    } else {
        match coord.recover::<P>() {
            Ok(Some(r)) => {
                for w in &r.warnings {
                    warn!("{w}");
                }
                checkpoints::check_runner_positions(&r.header, &r.name)?;
                let age = (now_ms() - r.header.timestamp).max(0);
                info!(
                    "restored checkpoint #{} ({}) taken {} ago: {} events processed, input offset {}, watermark {}",
                    r.header.checkpoint_id,
                    r.name,
                    human_ms(age),
                    r.header.positions.get("events").copied().unwrap_or(0),
                    r.header.positions.get("source.offset").copied().unwrap_or(0),
                    r.header.watermark
                );
                for a in &r.actions {
                    if !matches!(a, crate::upgrade::StageAction::Restore { .. }) {
                        info!("{a}");
                    }
                }
                (r.pipeline, r.header.positions)
            }
            Ok(None) => {
                info!(
                    "no checkpoint in {}: starting from the beginning",
                    coord.store().location()
                );
                (P::new(), BTreeMap::new())
            }
            Err(e @ CoordinatorError::NoValidCheckpoint { .. }) => {
                return Err(RunError::Fatal(e.to_string()))
            }
            Err(e) => return Err(RunError::Fatal(e.to_string())),
        }
    };
    let input_path = match &ends.input {
        Endpoint::File(p) => p.clone(),
        #[cfg(feature = "kafka")]
        Endpoint::Kafka(url) => {
            let input = kafka::KafkaSource::open(
                url,
                &positions,
                args.from,
                args.follow,
                Duration::from_millis(args.idle_timeout as u64),
                P::event_time,
                task.map(|t| t.partition),
            )?;
            let outputs = open_outputs::<P>(args, &ends, &positions, task)?;
            let run = Run::new(
                pipeline, coord, background, outputs, input, &positions, args,
            );
            let revoke = task.and_then(|t| t.revoke.as_deref());
            return kafka_input::drive(run, args, &positions, revoke);
        }
    };
    let pos = |k: &str| positions.get(k).copied().unwrap_or(0);
    let input_file = File::open(&input_path)
        .map_err(|e| format!("opening input {}: {e}", input_path.display()))?;
    let input_len = input_file.metadata().map(|m| m.len()).unwrap_or(0);
    if pos("source.offset") > input_len {
        return Err(RunError::Fatal(format!(
            "the checkpoint is at byte {} of {}, but the file has only {input_len} bytes: the input was replaced or truncated; use --from-scratch to start over",
            pos("source.offset"),
            input_path.display()
        )));
    }
    identity::check_input(
        &input_file,
        &input_path,
        &positions,
        args.accept_changed_input,
    )?;
    let mut input = LineReader::new(
        input_file,
        pos("source.offset"),
        pos("source.line").max(1),
        args.max_line_bytes,
        pos("source.pending_newline") == 1,
    )
    .map_err(|e| format!("reading {}: {e}", input_path.display()))?;
    input.follow = args.follow;
    let outputs = open_outputs::<P>(args, &ends, &positions, task)?;
    let signals = savepoint::Signals::install()?;
    let mut run = Run::new(
        pipeline, coord, background, outputs, input, &positions, args,
    );
    if !run.outputs.recorded_in(&positions) {
        run.checkpoint_start()?;
    }
    run.coord.start_clock(now_ms());
    let started = Instant::now();
    let start_events = run.events;
    let mut progress = progress::Progress::new(!args.quiet);
    let mut pause_points = pause::PausePoints::from_env()?;
    let mut bad_lines = 0u64;
    let mut blank_lines = 0u64;
    let disk = matches!(
        crate::spill::state_backend(),
        crate::spill::StateBackend::Disk(_)
    );
    let mut ahead = read_ahead::ReadAhead::<P::Event>::new(disk, args.max_line_bytes);
    if disk {
        run.input.read_in(read_ahead::READ);
    }

    let interrupted = loop {
        if signals.stop.load(Ordering::Relaxed) {
            break true;
        }
        if signals.savepoint_asked() {
            run.savepoint_on_request()?;
        }
        let read = run
            .input
            .next_line()
            .map_err(|e| format!("reading {}: {e}", input_path.display()))?;
        let (bytes, unterminated, parsed) = match read {
            Read::Eof => {
                ahead.clear();
                if !args.follow {
                    break false;
                }
                if let Some(how) = run
                    .input
                    .follow_rotation(&input_path)
                    .map_err(|e| format!("reading {}: {e}", input_path.display()))?
                {
                    warn!(
                        "input {} {how}: reading it from its start",
                        input_path.display()
                    );
                    // Record the switch at once: a restart then resumes in the new file.
                    run.checkpoint("input rotated", true)?;
                    continue;
                }
                if run.coord.due(now_ms()) {
                    run.checkpoint("interval", false)?;
                }
                run.outputs.flush()?;
                progress.tick(
                    run.events,
                    run.input.offset,
                    run.input.file_len(),
                    run.checkpoints,
                    run.last_ckpt,
                );
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
            Read::Line {
                unterminated: true,
                bytes,
            }
            | Read::TooLong {
                unterminated: true,
                bytes,
            } if args.follow && !rotated_away(&run.input, &input_path)? => {
                // A writer is still appending this line: wait for its newline.
                debug!(
                    line = run.input.line,
                    bytes, "waiting for the rest of a line being written"
                );
                ahead.clear();
                run.input
                    .rewind()
                    .map_err(|e| format!("reading {}: {e}", input_path.display()))?;
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
            Read::Line {
                bytes,
                unterminated,
            } => {
                if !unterminated && input::is_blank(run.input.line()) {
                    run.input.advance(bytes);
                    blank_lines += 1;
                    continue;
                }
                let early = if unterminated {
                    None
                } else {
                    let input = &run.input;
                    let current = input.line_text();
                    let pipeline = &mut run.pipeline;
                    let hand = |batch: &[P::Event], b| match b {
                        read_ahead::Batch::Now => pipeline.prefetch(batch),
                        read_ahead::Batch::Next => pipeline.read_ahead(batch),
                    };
                    ahead.take(hand, input.offset, bytes, current, input.ahead())
                };
                let parsed = match early {
                    Some(event) => Ok(event),
                    None => run.input.parse::<P::Event>(),
                };
                (bytes, unterminated, parsed)
            }
            Read::TooLong {
                bytes,
                unterminated,
            } => (
                bytes,
                unterminated,
                Err(format!(
                    "line is longer than {} bytes (see --max-line-bytes)",
                    args.max_line_bytes
                )),
            ),
        };
        match parsed {
            Ok(event) => {
                let mut out = Direct::to(&mut run.outputs);
                run.pipeline.process(event, &mut out);
                out.done()?;
                run.input.advance(bytes);
                run.events += 1;
                run.coord.note_events(1);
            }
            Err(msg) if unterminated && !args.follow => {
                // Maybe a writer is still appending it: leave it whole for the next run.
                ahead.clear();
                run.input
                    .rewind()
                    .map_err(|e| format!("reading {}: {e}", input_path.display()))?;
                warn!(
                    "line {} (byte offset {}) has no newline and does not parse ({msg}): stopped before it; the next run reads it again, complete",
                    run.input.line, run.input.offset
                );
                break false;
            }
            Err(msg) => {
                let full = format!(
                    "line {} (byte offset {}): {msg}",
                    run.input.line, run.input.offset
                );
                match args.on_bad_input {
                    OnBadInput::Fail => {
                        // Checkpoint *before* the bad line, so a fixed file resumes right there.
                        run.checkpoint("bad input", true)?;
                        return Err(RunError::BadInput(format!(
                            "{full}\nstopped before this line (checkpoint saved); fix the line and run again to resume from it, or use --on-bad-input skip|dead-letter"
                        )));
                    }
                    OnBadInput::Skip => {
                        warn!("skipped {full}");
                    }
                    OnBadInput::DeadLetter => {
                        let rec = DeadLetter {
                            line: run.input.line,
                            offset: run.input.offset,
                            error: &msg,
                            raw: String::from_utf8_lossy(run.input.line()),
                        };
                        let line = serde_json::to_vec(&rec).map_err(|e| e.to_string())?;
                        let dead = run
                            .outputs
                            .dead
                            .as_mut()
                            .expect("dead-letter mode opens the file");
                        dead.write_line(&line)?;
                        warn!("dead-lettered {full}");
                    }
                }
                bad_lines += 1;
                run.input.advance(bytes);
                run.coord.note_events(1);
            }
        }
        // The clock is read only when a time trigger is set: this runs per event.
        if run.coord.due_with(now_ms) {
            run.checkpoint("trigger", false)?;
        }
        if run.events >= pause_points.next {
            pause_points.pause(
                run.events,
                run.input.offset,
                run.checkpoints,
                run.coord.upload_in_flight(),
                None,
            );
        }
        if run.events & 0x3ff == 0 {
            progress.tick(
                run.events,
                run.input.offset,
                input_len.max(run.input.offset),
                run.checkpoints,
                run.last_ckpt,
            );
        }
    };
    progress.finish();
    run.wrap_up(interrupted, started, start_events, bad_lines, blank_lines)
}

impl<P: Pipeline, S: Source> Run<P, S> {
    fn new(
        pipeline: P,
        coord: Coordinator<Box<dyn CheckpointStore + Send>>,
        background: bool,
        outputs: Outputs,
        input: S,
        positions: &BTreeMap<String, u64>,
        args: &Args,
    ) -> Self {
        Run {
            pipeline,
            coord,
            background,
            pauses: Vec::new(),
            uploads: Vec::new(),
            outputs,
            input,
            events: positions.get("events").copied().unwrap_or(0),
            failures: 0,
            max_failures: args.max_failed_checkpoints.max(1),
            checkpoints: 0,
            last_ckpt: None,
            savepoint_name: args.savepoint_name.clone(),
            savepoint_on_stop: args.savepoint_on_stop.clone(),
        }
    }

    /// End of the run: closes every window at the end of a bounded input, takes the
    /// final checkpoint, and sums up.
    fn wrap_up(
        mut self,
        interrupted: bool,
        started: Instant,
        start_events: u64,
        bad_lines: u64,
        blank_lines: u64,
    ) -> Result<String, RunError> {
        let run = &mut self;
        if !interrupted {
            // End of a bounded input is end of stream: close every window.
            let mut out = Direct::to(&mut run.outputs);
            run.pipeline.finish(&mut out);
            out.done()?;
        }
        // Final checkpoint; on failure, retry a few times before giving up.
        let mut ok = false;
        for _ in 0..run.max_failures {
            if run.checkpoint(
                if interrupted {
                    "signal"
                } else {
                    "end of input"
                },
                true,
            )? {
                ok = true;
                break;
            }
        }
        if !ok {
            return Err(RunError::Fatal("the final checkpoint failed".into()));
        }
        if let Some(name) = run.savepoint_on_stop.clone().filter(|_| interrupted) {
            run.savepoint(&name).map_err(|e| {
                format!("--savepoint-on-stop: {e}; the final checkpoint was taken, so a restart without --from-savepoint resumes from it")
            })?;
        }
        Ok(run.summary(interrupted, started, start_events, bad_lines, blank_lines))
    }

    fn summary(
        &self,
        interrupted: bool,
        started: Instant,
        start_events: u64,
        bad_lines: u64,
        blank_lines: u64,
    ) -> String {
        let run = self;
        let secs = started.elapsed().as_secs_f64().max(1e-9);
        let done = run.events - start_events;
        let p50_max = |v: &[f64]| {
            let mut v = v.to_vec();
            v.sort_by(f64::total_cmp);
            Some((*v.get(v.len() / 2)?, *v.last()?))
        };
        let pause = match (p50_max(&run.pauses), p50_max(&run.uploads)) {
            (Some((p, pm)), Some((u, um))) => format!(
                " (pause p50 {p:.1} ms, max {pm:.1} ms; upload p50 {u:.1} ms, max {um:.1} ms; {} uploads)",
                if run.background { "background" } else { "inline" }
            ),
            _ => String::new(),
        };
        let unit = if run.outputs.main.describe().starts_with("kafka://") {
            "records"
        } else {
            "bytes"
        };
        format!(
            "{}: {} events ({} this run, {:.0}/s), {} bad line(s), {} blank line(s) skipped, {} checkpoint(s){pause}; output {} ({} {unit}){}{}",
            if interrupted { "stopped by signal" } else { "done" },
            run.events,
            done,
            done as f64 / secs,
            bad_lines,
            blank_lines,
            run.checkpoints,
            run.outputs.main.describe(),
            run.outputs.main.len(),
            if run.outputs.late.is_empty() { String::new() } else { format!(", late events in {}", run.outputs.late.describe()) },
            match crate::spill::state_backend() {
                crate::spill::StateBackend::Disk(_) => format!("; disk backend: {} entries evicted to disk this run", crate::spill::evicted()),
                crate::spill::StateBackend::Memory => String::new(),
            },
        )
    }
}

/// Opens the outputs, each checked before any is changed: a refusal leaves them all
/// alone.
fn open_outputs<P: Pipeline>(
    args: &Args,
    ends: &endpoint::Endpoints,
    positions: &BTreeMap<String, u64>,
    task: Option<&tasks::Task>,
) -> Result<Outputs, RunError> {
    let main = endpoint::claim(&ends.output, "output", positions, args, task)?;
    let late = endpoint::claim(&ends.late, "late", positions, args, task)?;
    let dead = match &ends.dead {
        Some(d) => Some(endpoint::claim(d, "dead_letter", positions, args, task)?),
        None => None,
    };
    Ok(Outputs {
        main: main.open()?,
        late: late.open()?,
        dead: dead.map(|d| d.open()).transpose()?,
        dead_carry: positions
            .iter()
            .filter(|(k, _)| k.starts_with("dead_letter."))
            .map(|(k, v)| (k.clone(), *v))
            .collect(),
        multi_sink: P::sinks().len() > 1,
        scratch: Vec::new(),
        keys: row_key::RowKeys::of(P::plan()),
        key_scratch: Vec::new(),
        row_scratch: Vec::new(),
    })
}

/// Under `--follow`, a partial last line of a file rotated away is complete: nothing
/// will be appended to it any more.
fn rotated_away(input: &LineReader, path: &std::path::Path) -> Result<bool, RunError> {
    input
        .rotated_away(path)
        .map_err(|e| RunError::Fatal(format!("reading {}: {e}", path.display())))
}

/// Refuses overlapping files (and topics) before anything is opened for writing.
fn check_paths(ends: &endpoint::Endpoints, url: &StoreUrl) -> Result<(), RunError> {
    let dir = match url {
        StoreUrl::File(d) => Some(d.as_path()),
        _ => None,
    };
    ends.check_distinct()?;
    paths::check_distinct(&ends.files(), dir).map_err(|e| RunError::Fatal(e.to_string()))
}

/// `3.2s`, `4min 10s`, ... for messages.
pub fn human_ms(ms: i64) -> String {
    if ms < 1_000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else if ms < 3_600_000 {
        format!("{}min {}s", ms / 60_000, ms / 1000 % 60)
    } else {
        format!("{}h {}min", ms / 3_600_000, ms / 60_000 % 60)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn tagged_into_writes_what_tagged_encodes_to() {
        let rec = serde_json::json!({"customer": "C\"1", "amount": 1.5});
        let mut want = Vec::new();
        let tagged = super::Tagged {
            sink: "per_5\"min",
            record: &rec,
        };
        crate::codec::to_json_writer(&mut want, &tagged).unwrap();
        let mut row = Vec::new();
        crate::codec::to_json_writer(&mut row, &rec).unwrap();
        let mut got = Vec::new();
        super::tagged_into(&mut got, "per_5\"min", &row).unwrap();
        assert_eq!(
            String::from_utf8(got).unwrap(),
            String::from_utf8(want).unwrap()
        );
    }
}

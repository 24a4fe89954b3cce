//! `checkpoints list|show|verify|layout`: inspect an instance's checkpoints, even while
//! the program runs (the store is opened read-only, without the lock).
//!
//! A program's own subcommand ([`run`]) knows its pipeline: it decodes the stages of its
//! binary checkpoints and prints their layout from the pipeline's plan. The `simplestream`
//! tool ([`run_any`]) has no pipeline compiled in: JSON checkpoints describe themselves,
//! but binary ones (postcard) do not, so of those it shows the header and checks the
//! checksum, and points to the program that wrote them for the stages.

mod check;
mod layout;
mod pretty;
mod savepoint;

use std::process::ExitCode;

use clap::Subcommand;

pub use check::check;
pub use layout::layout;

use crate::coordinator::{Coordinator, CoordinatorConfig};
use crate::envelope::{self, Codec, Verified};
use crate::names::{parse_name, EntryKind};
use crate::pipeline::Pipeline;
use crate::store::{redact_urls, CheckpointStore, StoreErrorKind, StoreUrl};
use crate::time::iso_utc;
use pretty::pretty;

/// A pipeline program's checkpoint tools: those of [`InspectCommand`], which decode its
/// own binary checkpoints too, and `layout`.
///
/// ```
/// use clap::Parser;
/// use simplestream_runtime::runner::checkpoints::{CheckpointsCommand, InspectCommand};
///
/// #[derive(Parser)]
/// struct Program {
///     #[command(subcommand)]
///     checkpoints: CheckpointsCommand,
/// }
/// let p = Program::parse_from(["program", "show", "ckpt", "--id", "42"]);
/// assert!(matches!(p.checkpoints, CheckpointsCommand::Inspect(InspectCommand::Show { id: Some(42), .. })));
/// let p = Program::parse_from(["program", "layout", "--mermaid"]);
/// assert!(matches!(p.checkpoints, CheckpointsCommand::Layout { mermaid: true }));
/// ```
#[derive(Debug, Subcommand)]
pub enum CheckpointsCommand {
    /// List, show or verify checkpoints.
    #[command(flatten)]
    Inspect(InspectCommand),
    /// Before a deploy: what this program would do with the latest checkpoint, stage by
    /// stage (restore, migrate, start empty, drop, refuse); exit 1 if it cannot restore it.
    Check {
        /// The checkpoint directory or store URL.
        #[arg(value_name = "DIR|URL")]
        dir: String,
        /// The instance.
        #[arg(long, default_value = "default")]
        instance: String,
        /// As for a run: the state of stage STAGE may be dropped.
        #[arg(long, value_name = "STAGE")]
        allow_dropped_state: Vec<String>,
    },
    /// Print what every checkpoint of this program holds: one line per stage state (its
    /// key, windows and columns), from the pipeline's plan.
    Layout {
        /// Print the pipeline's plan as a mermaid flowchart instead.
        #[arg(long)]
        mermaid: bool,
    },
}

/// Checkpoint tools that work without the pipeline (the `simplestream` tool's).
///
/// ```
/// use clap::Parser;
/// use simplestream_runtime::runner::checkpoints::InspectCommand;
///
/// #[derive(Parser)]
/// struct Tool {
///     #[command(subcommand)]
///     checkpoints: InspectCommand,
/// }
/// let t = Tool::parse_from(["tool", "verify", "s3://bucket/app", "--instance", "i-1"]);
/// assert!(matches!(t.checkpoints, InspectCommand::Verify { instance, .. } if instance == "i-1"));
/// ```
#[derive(Debug, Subcommand)]
pub enum InspectCommand {
    /// One line per checkpoint and savepoint: id, time, size, codec, kind, events, valid?
    List {
        /// The checkpoint directory (as given to --checkpoint-dir) or store URL (as given
        /// to --checkpoint-store: s3://bucket/prefix, kafka://host:port/topic, ...).
        #[arg(value_name = "DIR|URL")]
        dir: String,
        /// The instance.
        #[arg(long, default_value = "default")]
        instance: String,
    },
    /// Print a checkpoint as pretty JSON. A binary one is decoded to the same JSON by the
    /// program that wrote it; other programs and the `simplestream` tool print its header
    /// and say so.
    Show {
        /// The checkpoint directory or store URL.
        #[arg(value_name = "DIR|URL")]
        dir: String,
        /// The instance.
        #[arg(long, default_value = "default")]
        instance: String,
        /// Checkpoint id [default: the one `latest` points to].
        #[arg(long)]
        id: Option<u64>,
    },
    /// Check every checkpoint and the latest record; exit 1 naming the first bad one.
    Verify {
        /// The checkpoint directory or store URL.
        #[arg(value_name = "DIR|URL")]
        dir: String,
        /// The instance.
        #[arg(long, default_value = "default")]
        instance: String,
    },
    /// Take savepoint NAME from the latest checkpoint (an incremental one merged into a
    /// whole one), without the program: restore it later with `--from-savepoint NAME`.
    /// A name already taken is refused. A file store must not be in use (a running
    /// program takes its savepoints on SIGUSR1).
    Savepoint(SavepointArgs),
}

/// Where `checkpoints savepoint` (and the `simplestream savepoint` tool) takes a
/// savepoint, and its name.
///
/// ```
/// use clap::Parser;
/// use simplestream_runtime::runner::checkpoints::SavepointArgs;
/// #[derive(Parser)]
/// struct Cli {
///     #[command(flatten)]
///     savepoint: SavepointArgs,
/// }
/// let cli = Cli::try_parse_from(["tool", "ck", "before-v2"]).unwrap();
/// assert_eq!(cli.savepoint.instance, "default");
/// ```
#[derive(Debug, clap::Args)]
pub struct SavepointArgs {
    /// The checkpoint directory or store URL.
    #[arg(value_name = "DIR|URL")]
    pub dir: String,
    /// The savepoint's name (letters, digits, `-`, `_`, `.`).
    #[arg(value_name = "NAME")]
    pub name: String,
    /// The instance.
    #[arg(long, default_value = "default")]
    pub instance: String,
}

/// The pipeline a program decodes its own checkpoints with.
#[derive(Clone, Copy)]
struct Own {
    name: &'static str,
    /// Decodes every stage (a verify that goes past the checksum).
    decode: fn(&[u8]) -> Result<(), String>,
    /// The checkpoint as pretty JSON.
    pretty: fn(&[u8]) -> Result<String, String>,
    /// An incremental checkpoint (its manifest) restored from base and deltas, as pretty JSON.
    manifest: fn(&(dyn CheckpointStore + Send), &[u8]) -> Result<String, String>,
    /// Restores an incremental checkpoint (every piece read and checked).
    restore: fn(&(dyn CheckpointStore + Send), &[u8]) -> Result<(), String>,
    /// An incremental checkpoint restored and encoded whole, in the codec given.
    whole: Whole,
}

/// Restores an incremental checkpoint (store, manifest) and encodes it whole in a codec.
type Whole = fn(&(dyn CheckpointStore + Send), &[u8], Codec) -> Result<Vec<u8>, String>;

impl Own {
    fn of<P: Pipeline>() -> Own {
        Own {
            name: P::name(),
            decode: |b| {
                envelope::decode::<P>(b)
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            },
            pretty: to_pretty_json::<P>,
            manifest: manifest_json::<P>,
            restore: |store, m| {
                crate::incremental::chain::restore::<P, _>(store, m, &Default::default())
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            },
            whole: whole::<P>,
        }
    }
}

/// A store opened read-only, with the coordinator's reading of it.
type Reader = Coordinator<Box<dyn CheckpointStore + Send>>;

fn open(dir: &str, instance: &str) -> Result<Reader, String> {
    let url = StoreUrl::parse(dir).map_err(|e| e.to_string())?;
    let store = url.open(instance, true).map_err(|e| {
        if e.kind == StoreErrorKind::NotFound {
            format!(
                "no checkpoints for instance `{instance}` in {} ({e})",
                redact_urls(dir)
            )
        } else {
            e.to_string()
        }
    })?;
    Ok(Coordinator::new(store, CoordinatorConfig::default()))
}

/// Runs a program's checkpoints subcommand; `P`, its pipeline, decodes its binary
/// checkpoints and gives the layout.
///
/// ```
/// # use simplestream_runtime::plan::Plan;
/// # use simplestream_runtime::pipeline::{Clock, Collector, OutputRecord, Pipeline};
/// # use simplestream_runtime::codec::{CheckpointError, Codec, StageWriter};
/// # struct Nothing;
/// # #[derive(serde::Serialize)] struct Out;
/// # impl OutputRecord for Out { fn sink(&self) -> &'static str { "out" } fn is_late(&self) -> bool { false } }
/// # impl Pipeline for Nothing {
/// #     type Event = (); type Output = Out;
/// #     const NAME: &'static str = "Nothing"; const FINGERPRINT: u64 = 1;
/// #     const STAGES: &'static [&'static str] = &[]; const SINKS: &'static [&'static str] = &[];
/// #     const PLAN: &'static Plan = &Plan { name: "Nothing", sources: &[], stages: &[] };
/// #     const SOURCE_TEXT: &'static str = "";
/// #     fn new() -> Self { Nothing }
/// #     fn process<C: Collector<Out>>(&mut self, _: (), _: &mut C) {}
/// #     fn advance_watermark<C: Collector<Out>>(&mut self, _: i64, _: &mut C) {}
/// #     fn finish<C: Collector<Out>>(&mut self, _: &mut C) {}
/// #     fn clock(&self) -> Clock { Clock::default() }
/// #     fn write_stages(&self, _: &mut StageWriter<'_>) -> Result<(), CheckpointError> { Ok(()) }
/// #     fn decode_stages(_: Codec, _: &[u8], _: Clock) -> Result<Self, CheckpointError> { Ok(Nothing) }
/// #     fn stage_json(&self, _: &str) -> Option<serde_json::Value> { None }
/// # }
/// use std::process::ExitCode;
/// use simplestream_runtime::runner::checkpoints::{run, CheckpointsCommand, InspectCommand};
///
/// // `Nothing` is a pipeline (as `pipeline!` generates them).
/// let layout = CheckpointsCommand::Layout { mermaid: false };
/// assert_eq!(run::<Nothing>(layout), ExitCode::SUCCESS);
/// let dir = tempfile::tempdir().unwrap();
/// let missing = dir.path().join("typo").to_str().unwrap().to_string();
/// let list = InspectCommand::List { dir: missing, instance: "default".into() };
/// assert_eq!(run::<Nothing>(CheckpointsCommand::Inspect(list)), ExitCode::FAILURE);
/// ```
pub fn run<P: Pipeline>(cmd: CheckpointsCommand) -> ExitCode {
    match cmd {
        CheckpointsCommand::Inspect(cmd) => inspect(cmd, Some(Own::of::<P>())),
        CheckpointsCommand::Check {
            dir,
            instance,
            allow_dropped_state,
        } => {
            let opts = crate::upgrade::RestoreOptions {
                allow_dropped: allow_dropped_state,
            };
            match check::<P>(&dir, &instance, opts) {
                Ok(report) => {
                    print!("{report}");
                    ExitCode::SUCCESS
                }
                Err(report) => {
                    print!("{report}");
                    ExitCode::FAILURE
                }
            }
        }
        CheckpointsCommand::Layout { mermaid: false } => {
            print!("{}", layout(P::plan(), P::fingerprint()));
            ExitCode::SUCCESS
        }
        CheckpointsCommand::Layout { mermaid: true } => {
            print!("{}", P::plan().mermaid());
            ExitCode::SUCCESS
        }
    }
}

/// Runs a checkpoints subcommand without a pipeline (the `simplestream` tool): binary
/// checkpoints are checked up to their checksum, and `show` prints their header.
///
/// ```
/// use std::process::ExitCode;
/// use simplestream_runtime::runner::checkpoints::{run_any, InspectCommand};
///
/// let dir = tempfile::tempdir().unwrap();
/// let missing = dir.path().join("typo").to_str().unwrap().to_string();
/// let verify = InspectCommand::Verify { dir: missing, instance: "default".into() };
/// assert_eq!(run_any(verify), ExitCode::FAILURE, "no checkpoints there");
/// ```
pub fn run_any(cmd: InspectCommand) -> ExitCode {
    inspect(cmd, None)
}

fn inspect(cmd: InspectCommand, own: Option<Own>) -> ExitCode {
    let r = match cmd {
        InspectCommand::List { dir, instance } => list(&dir, &instance),
        InspectCommand::Show { dir, instance, id } => show(&dir, &instance, id, own),
        InspectCommand::Verify { dir, instance } => verify(&dir, &instance, own),
        InspectCommand::Savepoint(a) => savepoint::take(&a.dir, &a.instance, &a.name, own),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn list(dir: &str, instance: &str) -> Result<(), String> {
    let c = open(dir, instance)?;
    for note in c.store().left_alone() {
        println!("note: {note}");
    }
    let all = c.inspect().map_err(|e| e.to_string())?;
    if all.is_empty() {
        println!("no checkpoints in {}", c.store().location());
        return Ok(());
    }
    println!(
        "{:>6}  {:<24}  {:>10}  {:<6}  {:<8}  {:>10}  {:<5}  FILE",
        "ID", "TIME (UTC)", "BYTES", "CODEC", "KIND", "EVENTS", "VALID"
    );
    for l in &all {
        let mark = if l.is_latest { " (latest)" } else { "" };
        let kind = match l.kind {
            Some(EntryKind::Whole) => "whole",
            Some(EntryKind::Delta) => "delta",
            Some(EntryKind::Manifest) => "manifest",
            None if crate::names::savepoint_of(&l.name).is_some() => "savepoint",
            None => "?",
        };
        match &l.header {
            Ok(h) => println!(
                "{:>6}  {:<24}  {:>10}  {:<6}  {kind:<8}  {:>10}  {:<5}  {}{mark}",
                h.checkpoint_id,
                iso_utc(h.timestamp),
                l.size,
                l.codec.map(|c| c.to_string()).unwrap_or_default(),
                h.positions.get("events").copied().unwrap_or(0),
                "yes",
                l.name
            ),
            Err(e) => println!(
                "{:>6}  {:<24}  {:>10}  {:<6}  {kind:<8}  {:>10}  {:<5}  {}{mark}  ({e})",
                "?", "?", l.size, "?", "?", "NO", l.name
            ),
        }
    }
    Ok(())
}

/// The name of checkpoint `id`, or of the one `latest` points to (else the newest).
fn pick(c: &Reader, id: Option<u64>) -> Result<String, String> {
    let entries = c.store().list().map_err(|e| e.to_string())?;
    match id {
        Some(id) => entries
            .iter()
            .find(|e| {
                crate::names::restorable(&e.name)
                    && crate::names::parse_name(&e.name).map(|(i, _)| i) == Some(id)
            })
            .map(|e| e.name.clone())
            .ok_or_else(|| format!("no checkpoint #{id} in {}", c.store().location())),
        None => match c.latest() {
            Ok(Some(m)) => Ok(m.file),
            _ => entries
                .last()
                .map(|e| e.name.clone())
                .ok_or_else(|| format!("no checkpoints in {}", c.store().location())),
        },
    }
}

fn show(dir: &str, instance: &str, id: Option<u64>, own: Option<Own>) -> Result<(), String> {
    let c = open(dir, instance)?;
    let name = pick(&c, id)?;
    let bytes = c.store().get(&name).map_err(|e| e.to_string())?;
    if let Some((_, EntryKind::Manifest)) = parse_name(&name) {
        let text = show_manifest(c.store().as_ref(), &name, &bytes, own);
        println!("{}", text.map_err(|e| format!("{name}: {e}"))?);
        return Ok(());
    }
    let v = envelope::verify(&bytes).map_err(|e| format!("{name}: {e}"))?;
    let text = match (v.codec, own) {
        (Codec::Json, _) => pretty(&bytes),
        (Codec::Binary, Some(own)) if own.name == v.header.pipeline => (own.pretty)(&bytes),
        (Codec::Binary, _) => {
            eprintln!("note: {}", binary_note(&name, &v, dir, instance));
            serde_json::to_string_pretty(&v.header).map_err(|e| e.to_string())
        }
    };
    println!("{}", text.map_err(|e| format!("{name}: {e}"))?);
    Ok(())
}

/// An incremental checkpoint: restored into the program's own pipeline, or else its
/// manifest (JSON, every piece checked) with a note on who can restore it.
fn show_manifest(
    store: &(dyn CheckpointStore + Send),
    name: &str,
    bytes: &[u8],
    own: Option<Own>,
) -> Result<String, String> {
    match own {
        // A restore checks every piece as it reads it: no separate pass over them.
        Some(own) if own.name == manifest_pipeline(bytes)? => (own.manifest)(store, bytes),
        _ => {
            let (h, _) =
                crate::incremental::chain::verify(store, bytes).map_err(|e| e.to_string())?;
            eprintln!(
                "note: {name} is an incremental checkpoint of pipeline `{}` (all its pieces check out); `checkpoints show` of the program that wrote it restores its state from them",
                h.pipeline
            );
            pretty(bytes)
        }
    }
}

/// An incremental checkpoint as the whole checkpoint it stands for: base and deltas
/// restored into pipeline `P`, written as JSON.
fn manifest_json<P: Pipeline>(
    store: &(dyn CheckpointStore + Send),
    manifest: &[u8],
) -> Result<String, String> {
    let (h, p, _, _) =
        crate::incremental::chain::restore::<P, _>(store, manifest, &Default::default())
            .map_err(|e| e.to_string())?;
    let bytes = envelope::encode(&p, Codec::Json, h.checkpoint_id, h.timestamp, h.positions)
        .map_err(|e| e.to_string())?;
    pretty(&bytes)
}

/// An incremental checkpoint as the whole checkpoint it stands for, in `codec`: its
/// id, time and positions, and the state its base and deltas restore to.
fn whole<P: Pipeline>(
    store: &(dyn CheckpointStore + Send),
    manifest: &[u8],
    codec: Codec,
) -> Result<Vec<u8>, String> {
    let (h, p, _, _) =
        crate::incremental::chain::restore::<P, _>(store, manifest, &Default::default())
            .map_err(|e| e.to_string())?;
    envelope::encode(&p, codec, h.checkpoint_id, h.timestamp, h.positions)
        .map_err(|e| e.to_string())
}

/// The pipeline an incremental checkpoint's manifest names.
fn manifest_pipeline(manifest: &[u8]) -> Result<String, String> {
    crate::incremental::Manifest::decode(manifest)
        .map(|m| m.pipeline)
        .map_err(|e| e.to_string())
}

/// Says, in one line, what could not be shown of a binary checkpoint, and who can show it.
fn binary_note(name: &str, v: &Verified<'_>, dir: &str, instance: &str) -> String {
    format!(
        "{name} is binary (checksum ok): its {} bytes of stage state are postcard, which does not describe itself; `checkpoints show {} --instance {instance} --id {}` of the program that wrote it (pipeline `{}`) decodes them",
        v.stages.len(),
        redact_urls(dir),
        v.header.checkpoint_id,
        v.header.pipeline
    )
}

/// A checkpoint as pretty JSON; binary checkpoints of pipeline `P` are decoded and
/// re-encoded as JSON (the same shape a JSON checkpoint has).
pub fn to_pretty_json<P: Pipeline>(bytes: &[u8]) -> Result<String, String> {
    let v = envelope::verify(bytes).map_err(|e| e.to_string())?;
    match v.codec {
        Codec::Json => pretty(bytes),
        Codec::Binary => {
            if v.header.pipeline != P::name() {
                return Err(format!(
                    "a binary checkpoint of pipeline `{}`; this program decodes `{}` only: run `checkpoints show` of the program that wrote it",
                    v.header.pipeline,
                    P::name()
                ));
            }
            let (h, p) = envelope::decode::<P>(bytes).map_err(|e| e.to_string())?;
            let json = envelope::encode(&p, Codec::Json, h.checkpoint_id, h.timestamp, h.positions)
                .map_err(|e| e.to_string())?;
            pretty(&json)
        }
    }
}

fn verify(dir: &str, instance: &str, own: Option<Own>) -> Result<(), String> {
    let c = open(dir, instance)?;
    let entries = c.store().list().map_err(|e| e.to_string())?;
    if entries.is_empty() {
        return Err(format!("no checkpoints in {}", c.store().location()));
    }
    let mut first_bad = None;
    let mut undecoded = std::collections::BTreeSet::new();
    for e in &entries {
        let bytes = c.store().get(&e.name).map_err(|e| e.to_string())?;
        let result = verify_one(c.store().as_ref(), &e.name, &bytes, own, &mut undecoded);
        match result {
            Ok(()) => println!("ok   {}", e.name),
            Err(err) => {
                println!("BAD  {}: {err}", e.name);
                first_bad.get_or_insert(format!("{} is bad: {err}", e.name));
            }
        }
    }
    check_latest(&c, &entries, &mut first_bad);
    if !undecoded.is_empty() {
        let names: Vec<String> = undecoded.iter().map(|n| format!("`{n}`")).collect();
        eprintln!(
            "note: checkpoints of pipeline {} were checked up to their checksum and header; `checkpoints verify` of the program that wrote them also decodes their stages",
            names.join(", ")
        );
    }
    match first_bad {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Verifies one stored object: a whole checkpoint (decoded if it is the program's own), a
/// delta, or a manifest with every piece it names (restored if it is the program's own).
/// Pipelines whose stages were not decoded are added to `undecoded`.
fn verify_one(
    store: &(dyn CheckpointStore + Send),
    name: &str,
    bytes: &[u8],
    own: Option<Own>,
    undecoded: &mut std::collections::BTreeSet<String>,
) -> Result<(), String> {
    match parse_name(name).map(|(_, k)| k) {
        Some(EntryKind::Delta) => envelope::verify_delta(bytes)
            .map(|_| ())
            .map_err(|e| e.to_string()),
        Some(EntryKind::Manifest) => match own {
            Some(own) if own.name == manifest_pipeline(bytes)? => (own.restore)(store, bytes),
            _ => {
                let (h, _) =
                    crate::incremental::chain::verify(store, bytes).map_err(|e| e.to_string())?;
                undecoded.insert(h.pipeline);
                Ok(())
            }
        },
        _ => {
            let v = envelope::verify(bytes).map_err(|e| e.to_string())?;
            match own {
                Some(own) if own.name == v.header.pipeline => (own.decode)(bytes),
                _ => {
                    undecoded.insert(v.header.pipeline);
                    Ok(())
                }
            }
        }
    }
}

/// Checks that `latest` exists and points to a checkpoint in `entries`.
fn check_latest(c: &Reader, entries: &[crate::store::StoredEntry], first_bad: &mut Option<String>) {
    match c.latest() {
        Ok(Some(m)) => match entries.iter().find(|e| e.name == m.file) {
            Some(_) => println!("ok   latest.json -> {}", m.file),
            None => {
                println!(
                    "BAD  latest.json points to {}, which does not exist",
                    m.file
                );
                first_bad.get_or_insert(format!("latest.json points to missing {}", m.file));
            }
        },
        Ok(None) => {
            println!("BAD  latest.json is missing");
            first_bad.get_or_insert("latest.json is missing".into());
        }
        Err(e) => {
            println!("BAD  {e}");
            first_bad.get_or_insert(e);
        }
    }
}

/// Positions every checkpoint the runner writes holds: without them a restore would read
/// the input from its start and cut the outputs back to nothing.
const RUNNER_POSITIONS: [&str; 3] = ["source.offset", "output.len", "late.len"];

/// Refuses a checkpoint that lacks the runner's positions (one written by a library
/// `Coordinator` or the playground), in one line.
pub(crate) fn check_runner_positions(h: &envelope::Header, name: &str) -> Result<(), String> {
    let missing: Vec<&str> = RUNNER_POSITIONS
        .into_iter()
        .filter(|k| !h.positions.contains_key(*k))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(format!(
        "checkpoint #{} ({name}) has no {} position: it was not written by this runner (a library Coordinator or the playground writes none), and restoring it would re-read the input from the start and truncate the outputs; use another --instance, or --from-scratch",
        h.checkpoint_id,
        missing.join(", ")
    ))
}

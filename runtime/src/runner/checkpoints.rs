//! `checkpoints list|show|verify`: inspect an instance's checkpoints, even while the
//! program runs (the store is opened read-only, without the lock).

use std::process::ExitCode;

use clap::Subcommand;

use crate::coordinator::{Coordinator, CoordinatorConfig};
use crate::envelope::{self, Codec};
use crate::pipeline::Pipeline;
use crate::store::{redact_urls, CheckpointStore, StoreErrorKind, StoreUrl};
use crate::time::iso_utc;

/// Checkpoint tools.
#[derive(Debug, Subcommand)]
pub enum CheckpointsCommand {
    /// One line per checkpoint: id, time, size, codec, events, valid?
    List {
        /// The checkpoint directory (as given to --checkpoint-dir) or store URL (as given
        /// to --checkpoint-store: s3://bucket/prefix, kafka://host:port/topic, ...).
        #[arg(value_name = "DIR|URL")]
        dir: String,
        /// The instance.
        #[arg(long, default_value = "default")]
        instance: String,
    },
    /// Print a checkpoint as pretty JSON (binary ones decoded to the same JSON).
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
}

fn open(dir: &str, instance: &str) -> Result<Coordinator<Box<dyn CheckpointStore + Send>>, String> {
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

/// Runs a checkpoints subcommand; `P` decodes binary checkpoints of its own pipeline.
pub fn run<P: Pipeline>(cmd: CheckpointsCommand) -> ExitCode {
    let r = match cmd {
        CheckpointsCommand::List { dir, instance } => list(&dir, &instance),
        CheckpointsCommand::Show { dir, instance, id } => show::<P>(&dir, &instance, id),
        CheckpointsCommand::Verify { dir, instance } => verify::<P>(&dir, &instance),
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
        "{:>6}  {:<24}  {:>10}  {:<6}  {:>10}  {:<5}  FILE",
        "ID", "TIME (UTC)", "BYTES", "CODEC", "EVENTS", "VALID"
    );
    for l in &all {
        let mark = if l.is_latest { " (latest)" } else { "" };
        match &l.header {
            Ok(h) => println!(
                "{:>6}  {:<24}  {:>10}  {:<6}  {:>10}  {:<5}  {}{mark}",
                h.checkpoint_id,
                iso_utc(h.timestamp),
                l.size,
                l.codec.map(|c| c.to_string()).unwrap_or_default(),
                h.positions.get("events").copied().unwrap_or(0),
                "yes",
                l.name
            ),
            Err(e) => println!(
                "{:>6}  {:<24}  {:>10}  {:<6}  {:>10}  {:<5}  {}{mark}  ({e})",
                "?", "?", l.size, "?", "?", "NO", l.name
            ),
        }
    }
    Ok(())
}

fn show<P: Pipeline>(dir: &str, instance: &str, id: Option<u64>) -> Result<(), String> {
    let c = open(dir, instance)?;
    let entries = c.store().list().map_err(|e| e.to_string())?;
    let name = match id {
        Some(id) => entries
            .iter()
            .find(|e| {
                crate::names::restorable(&e.name)
                    && crate::names::parse_name(&e.name).map(|(i, _)| i) == Some(id)
            })
            .map(|e| e.name.clone())
            .ok_or_else(|| format!("no checkpoint #{id} in {}", c.store().location()))?,
        None => match c.latest() {
            Ok(Some(m)) => m.file,
            _ => entries
                .last()
                .map(|e| e.name.clone())
                .ok_or_else(|| format!("no checkpoints in {}", c.store().location()))?,
        },
    };
    let bytes = c.store().get(&name).map_err(|e| e.to_string())?;
    let json = match crate::names::parse_name(&name) {
        Some((_, crate::names::EntryKind::Manifest)) => manifest_json::<P>(c.store(), &bytes),
        _ => to_pretty_json::<P>(&bytes),
    };
    println!("{}", json.map_err(|e| format!("{name}: {e}"))?);
    Ok(())
}

/// An incremental checkpoint as the whole checkpoint it stands for: base and deltas
/// restored into pipeline `P`, written as JSON.
fn manifest_json<P: Pipeline>(
    store: &(impl crate::CheckpointStore + ?Sized),
    manifest: &[u8],
) -> Result<String, String> {
    let m = crate::incremental::Manifest::decode(manifest).map_err(|e| e.to_string())?;
    if m.pipeline != P::NAME {
        return Err(format!(
            "an incremental checkpoint of pipeline `{}`; this program restores `{}` only: run `checkpoints show` of the program that wrote it",
            m.pipeline,
            P::NAME
        ));
    }
    let (h, p, _) =
        crate::incremental::chain::restore::<P, _>(store, manifest).map_err(|e| e.to_string())?;
    let bytes = envelope::encode(&p, Codec::Json, h.checkpoint_id, h.timestamp, h.positions)
        .map_err(|e| e.to_string())?;
    to_pretty_json::<P>(&bytes)
}

/// A checkpoint as pretty JSON; binary checkpoints of pipeline `P` are decoded and
/// re-encoded as JSON (the same shape a JSON checkpoint has).
pub fn to_pretty_json<P: Pipeline>(bytes: &[u8]) -> Result<String, String> {
    let v = envelope::verify(bytes).map_err(|e| e.to_string())?;
    let json_bytes = match v.codec {
        Codec::Json => bytes.to_vec(),
        Codec::Binary => {
            if v.header.pipeline != P::NAME {
                return Err(format!(
                    "a binary checkpoint of pipeline `{}`; this program decodes `{}` only: run `checkpoints show` of the program that wrote it",
                    v.header.pipeline,
                    P::NAME
                ));
            }
            let (h, p) = envelope::decode::<P>(bytes).map_err(|e| e.to_string())?;
            envelope::encode(&p, Codec::Json, h.checkpoint_id, h.timestamp, h.positions)
                .map_err(|e| e.to_string())?
        }
    };
    let value: serde_json::Value =
        serde_json::from_slice(&json_bytes).map_err(|e| e.to_string())?;
    serde_json::to_string_pretty(&value).map_err(|e| e.to_string())
}

fn verify<P: Pipeline>(dir: &str, instance: &str) -> Result<(), String> {
    let c = open(dir, instance)?;
    let entries = c.store().list().map_err(|e| e.to_string())?;
    if entries.is_empty() {
        return Err(format!("no checkpoints in {}", c.store().location()));
    }
    let mut first_bad = None;
    for e in &entries {
        let bytes = c.store().get(&e.name).map_err(|e| e.to_string())?;
        let result = verify_one::<P>(c.store(), &e.name, &bytes);
        match result {
            Ok(()) => println!("ok   {}", e.name),
            Err(err) => {
                println!("BAD  {}: {err}", e.name);
                first_bad.get_or_insert(format!("{} is bad: {err}", e.name));
            }
        }
    }
    verify_latest(&c, &entries, &mut first_bad);
    match first_bad {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Verifies one stored object: a whole checkpoint (decoded if it is `P`'s), a delta, or
/// a manifest with every piece it names (restored if it is `P`'s).
fn verify_one<P: Pipeline>(
    store: &(impl crate::CheckpointStore + ?Sized),
    name: &str,
    bytes: &[u8],
) -> Result<(), String> {
    use crate::names::{parse_name, EntryKind};
    match parse_name(name).map(|(_, k)| k) {
        Some(EntryKind::Delta) => envelope::verify_delta(bytes)
            .map(|_| ())
            .map_err(|e| e.to_string()),
        Some(EntryKind::Manifest) => {
            let (h, _) =
                crate::incremental::chain::verify(store, bytes).map_err(|e| e.to_string())?;
            if h.pipeline != P::NAME {
                return Ok(());
            }
            crate::incremental::chain::restore::<P, _>(store, bytes)
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
        _ => envelope::verify(bytes)
            .map_err(|e| e.to_string())
            .and_then(|v| {
                if v.header.pipeline == P::NAME {
                    envelope::decode::<P>(bytes)
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                } else {
                    Ok(())
                }
            }),
    }
}

fn verify_latest(
    c: &Coordinator<Box<dyn CheckpointStore + Send>>,
    entries: &[crate::store::StoredEntry],
    first_bad: &mut Option<String>,
) {
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

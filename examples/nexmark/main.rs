//! Runs a Nexmark query natively with file checkpoints.
//!
//! ```text
//! cargo run --release --example nexmark -- --query q5 --events 10000000 \
//!     --checkpoint-dir nexmark-ckpt --checkpoint-every 1000000 [--output q5.jsonl] [--from-scratch]
//! ```
//! Kill it and run it again: it restores the latest checkpoint and regenerates the event
//! stream from the saved offset (the generator is deterministic).
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use simplestream::runner::output::SinkFile;
use simplestream::store::{FileStore, FileStoreOptions};
use simplestream::{Codec, Coordinator, CoordinatorConfig, OutputRecord, Pipeline};
use simplestream_examples::nexmark::*;

#[derive(Parser)]
#[command(about = "Runs a Nexmark query (q0-q5, q7, q8) with file checkpoints")]
struct Args {
    /// The query: q0, q1, q2, q3, q4, q5, q7 or q8.
    #[arg(long, default_value = "q5")]
    query: String,
    /// Number of generated events (persons, auctions and bids together).
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// Checkpoint directory.
    #[arg(long, default_value = "nexmark-checkpoints")]
    checkpoint_dir: PathBuf,
    /// Instance name [default: the query].
    #[arg(long)]
    instance: Option<String>,
    /// Checkpoint every N generated events (0: only at the end).
    #[arg(long, default_value_t = 1_000_000)]
    checkpoint_every: u64,
    /// Checkpoint codec.
    #[arg(long, default_value = "binary", value_parser = Codec::parse)]
    codec: Codec,
    /// Write results as JSON lines here (exactly once across restarts).
    #[arg(long)]
    output: Option<PathBuf>,
    /// Ignore existing checkpoints and start from the beginning (the output is rewritten,
    /// whoever wrote it).
    #[arg(long)]
    from_scratch: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let r = match args.query.as_str() {
        "q0" => run::<Q0>(&args, inputs::bids),
        "q1" => run::<Q1>(&args, inputs::bids),
        "q2" => run::<Q2>(&args, inputs::bids),
        "q3" => run::<Q3>(&args, inputs::q3),
        "q4" => run::<Q4>(&args, inputs::q4),
        "q5" => run::<Q5>(&args, inputs::bids),
        "q7" => run::<Q7>(&args, inputs::bids),
        "q8" => run::<Q8>(&args, inputs::q8),
        other => Err(format!(
            "unknown query `{other}`: use q0, q1, q2, q3, q4, q5, q7 or q8"
        )),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run<P: Pipeline>(args: &Args, input: fn(Event) -> Option<P::Event>) -> Result<(), String> {
    let instance = args.instance.clone().unwrap_or_else(|| args.query.clone());
    let store = FileStore::open(&args.checkpoint_dir, &instance, FileStoreOptions::default())
        .map_err(|e| e.to_string())?;
    let config = CoordinatorConfig {
        every_events: (args.checkpoint_every > 0).then_some(args.checkpoint_every),
        every_ms: None,
        codec: args.codec,
        keep: 3,
    };
    let mut coord = Coordinator::new(store, config);
    let recovered = if args.from_scratch {
        // New checkpoints must sort after (and never overwrite) the old ones.
        coord.skip_existing_ids();
        None
    } else {
        coord.recover::<P>().map_err(|e| e.to_string())?
    };
    let (mut p, positions) = match recovered {
        Some(r) => {
            for w in &r.warnings {
                eprintln!("warning: {w}");
            }
            eprintln!(
                "restored checkpoint #{} at event {}",
                r.header.checkpoint_id,
                r.header.positions.get("events").copied().unwrap_or(0)
            );
            (r.pipeline, r.header.positions)
        }
        None => (P::new(), BTreeMap::new()),
    };
    let done = positions.get("events").copied().unwrap_or(0);
    // The output is cut back to the checkpoint only if the checkpoint proves it ours.
    let mut sink = match &args.output {
        Some(path) if args.from_scratch => Some(SinkFile::claim_overwrite(path)?.open()?),
        Some(path) => Some(SinkFile::claim(path, "output", &positions)?.open()?),
        None => None,
    };
    let mut outputs = positions.get("outputs").copied().unwrap_or(0);
    let mut out: Vec<P::Output> = Vec::new();
    let mut line = Vec::new();
    let started = Instant::now();
    let mut n = done;
    let mut write = |out: &mut Vec<P::Output>,
                     sink: &mut Option<SinkFile>,
                     outputs: &mut u64|
     -> Result<(), String> {
        for rec in out.drain(..) {
            *outputs += 1;
            if let Some(s) = sink {
                line.clear();
                simplestream::codec::to_json_writer(&mut line, &rec).map_err(|e| e.to_string())?;
                s.write_line(&line).map_err(|e| e.to_string())?;
            }
            let _ = rec.is_late();
        }
        Ok(())
    };
    let checkpoint = |p: &P,
                      n: u64,
                      sink: &mut Option<SinkFile>,
                      outputs: u64,
                      coord: &mut Coordinator<FileStore>|
     -> Result<(), String> {
        let mut pos = BTreeMap::from([("events".to_string(), n), ("outputs".to_string(), outputs)]);
        if let Some(s) = sink {
            s.commit_into("output", &mut pos)?;
        }
        let t = Instant::now();
        let info = coord
            .checkpoint(p, pos, simplestream::time::now_ms())
            .map_err(|e| e.to_string())?;
        eprintln!(
            "checkpoint #{} at event {n}: {} bytes in {:.1} ms",
            info.id,
            info.size,
            t.elapsed().as_secs_f64() * 1e3
        );
        Ok(())
    };
    if sink
        .as_ref()
        .is_some_and(|s| !s.recorded_in("output", &positions))
    {
        // Recorded before anything is written, so a restart may cut back this run's bytes.
        coord.start_at_zero();
        checkpoint(&p, n, &mut sink, outputs, &mut coord)?;
    }
    for e in events(done, (args.events.saturating_sub(done)) as usize) {
        n += 1;
        coord.note_events(1);
        if let Some(ev) = input(e) {
            p.process(ev, &mut out);
            if !out.is_empty() {
                write(&mut out, &mut sink, &mut outputs)?;
            }
        }
        if coord.due(0) {
            checkpoint(&p, n, &mut sink, outputs, &mut coord)?;
        }
    }
    p.finish(&mut out);
    write(&mut out, &mut sink, &mut outputs)?;
    let secs = started.elapsed().as_secs_f64().max(1e-9);
    checkpoint(&p, n, &mut sink, outputs, &mut coord)?;
    println!(
        "{}: {} events ({} this run) in {:.2}s, {:.0} events/s, {outputs} results",
        args.query,
        n,
        n - done,
        secs,
        (n - done) as f64 / secs
    );
    Ok(())
}

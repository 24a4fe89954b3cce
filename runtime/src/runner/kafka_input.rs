//! The run loop over a Kafka input: records in event-time order across partitions,
//! bad records handled as bad lines are, positions per partition in every checkpoint.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use tracing::warn;

use super::kafka::source::Poll;
use super::kafka::{KafkaSource, Polled};
use super::{pause, progress, savepoint, Args, Direct, OnBadInput, Run, RunError};
use crate::pipeline::Pipeline;
use crate::time::now_ms;

#[derive(serde::Serialize)]
struct DeadRecord<'a> {
    topic: &'a str,
    partition: i32,
    offset: i64,
    error: &'a str,
    raw: std::borrow::Cow<'a, str>,
}

/// Reads the topic to its end (or forever with `--follow`), then finishes as a file
/// run does.
pub(super) fn drive<P>(
    mut run: Run<P, KafkaSource<P::Event>>,
    args: &Args,
    positions: &BTreeMap<String, u64>,
    revoke: Option<&AtomicBool>,
) -> Result<String, RunError>
where
    P: Pipeline,
    P::Event: DeserializeOwned,
{
    let signals = savepoint::Signals::install()?;
    if !run.outputs.recorded_in(positions) {
        run.checkpoint_start()?;
    }
    run.coord.start_clock(now_ms());
    let started = Instant::now();
    let start_events = run.events;
    let mut progress = progress::Progress::new(!args.quiet);
    let mut pause_points = pause::PausePoints::from_env()?;
    let mut bad = 0u64;
    let interrupted = loop {
        if signals.stop.load(Ordering::Relaxed) || revoke.is_some_and(|r| r.load(Ordering::Relaxed))
        {
            break true;
        }
        if signals.savepoint_asked() {
            run.savepoint_on_request()?;
        }
        let rec = match run.input.poll()? {
            Poll::End => break false,
            Poll::Idle => {
                if run.coord.due(now_ms()) {
                    run.checkpoint("interval", false)?;
                }
                run.outputs.flush()?;
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
            Poll::Record(r) => r,
        };
        match rec.event {
            Ok(event) => {
                let mut out = Direct::to(&mut run.outputs);
                run.pipeline.process(event, &mut out);
                out.done()?;
                run.events += 1;
                run.coord.note_events(1);
            }
            Err(_) => {
                bad_record(&mut run, rec, args.on_bad_input)?;
                bad += 1;
                run.coord.note_events(1);
            }
        }
        if run.coord.due_with(now_ms) {
            run.checkpoint("trigger", false)?;
        }
        if run.events >= pause_points.next {
            pause_points.pause(
                run.events,
                run.input.consumed,
                run.checkpoints,
                run.coord.upload_in_flight(),
                revoke,
            );
        }
        if run.events & 0x3ff == 0 {
            progress.tick(
                run.events,
                run.input.consumed,
                run.input.consumed,
                run.checkpoints,
                run.last_ckpt,
            );
        }
    };
    progress.finish();
    run.wrap_up(interrupted, started, start_events, bad, 0)
}

/// A record that is not an event: `fail` stops before it (checkpoint saved there),
/// `skip` logs it, `dead-letter` writes it with its topic, partition and offset.
fn bad_record<P: Pipeline>(
    run: &mut Run<P, KafkaSource<P::Event>>,
    rec: Polled<P::Event>,
    mode: OnBadInput,
) -> Result<(), RunError>
where
    P::Event: DeserializeOwned,
{
    let topic = run.input.url().topic.clone();
    let msg = rec.event.as_ref().err().cloned().unwrap_or_default();
    let full = format!(
        "topic {topic} partition {} offset {}: {msg}",
        rec.partition, rec.offset
    );
    match mode {
        OnBadInput::Fail => {
            run.input.unpoll(rec);
            run.checkpoint("bad input", true)?;
            Err(RunError::BadInput(format!(
                "{full}\nstopped before this record (checkpoint saved); a Kafka record cannot be fixed in place: run again with --on-bad-input skip|dead-letter to go past it"
            )))
        }
        OnBadInput::Skip => {
            warn!("skipped {full}");
            Ok(())
        }
        OnBadInput::DeadLetter => {
            let line = serde_json::to_vec(&DeadRecord {
                topic: &topic,
                partition: rec.partition,
                offset: rec.offset,
                error: &msg,
                raw: String::from_utf8_lossy(&rec.raw),
            })
            .map_err(|e| e.to_string())?;
            let dead = run
                .outputs
                .dead
                .as_mut()
                .expect("dead-letter mode opens the output");
            dead.write_line(&line)?;
            warn!("dead-lettered {full}");
            Ok(())
        }
    }
}

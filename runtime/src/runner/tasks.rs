//! Several instances sharing a Kafka topic by partition (`--partitions 0,2`): one task
//! per owned input partition, each with its own pipeline, state, checkpoints
//! (`<checkpoint-dir>/<group>/checkpoints/partition-<n>/`) and output partition (input
//! partition `n` writes partition `n` of each output topic), run on a thread of its own.
//! A task takes its partition over with a [`Fence`]: whoever took it before writes
//! nothing more for it.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use tracing::{info, info_span, warn};

#[cfg(feature = "kafka")]
use super::endpoint::Endpoint;
use super::endpoint::Endpoints;
use super::fence::Fence;
use super::{Args, RunError};
use crate::pipeline::Pipeline;
use crate::plan::State;
use crate::store::StoreUrl;

/// One owned partition.
// Without Kafka there are no partitions to own: nothing reads the fields below.
#[cfg_attr(not(feature = "kafka"), allow(dead_code))]
pub(crate) struct Task {
    /// The input partition, also the output partition written.
    pub partition: i32,
    /// How many partitions the input topic has (an output topic created is given as many).
    pub partitions: i32,
    /// The group's name: the checkpoint directory and the writer name of its rows.
    pub group: String,
    /// This task's claim on the partition.
    pub fence: Fence,
    /// Set when the partition is being taken away (a group rebalance): the task stops
    /// at the next record with a final checkpoint.
    pub revoke: Option<Arc<AtomicBool>>,
}

impl Task {
    /// The partition's checkpoint instance, `partition-<n>`, under `<dir>/<group>`.
    pub fn store_instance(&self) -> String {
        format!("partition-{}", self.partition)
    }

    /// The writer named in the rows it outputs: the same for every owner the partition
    /// has had, so a new owner recognises the rows the old one wrote past its checkpoint.
    #[cfg(feature = "kafka")]
    pub fn sink_target(&self) -> super::kafka::sink::SinkTarget {
        super::kafka::sink::SinkTarget {
            writer: format!("{}/{}", self.group, self.store_instance()),
            partition: self.partition,
            create_partitions: self.partitions,
            fence: Some(self.fence.clone()),
        }
    }
}

/// Runs the tasks of `args.partitions`, each on its own thread; returns their summaries
/// (one line each), or the first error once all of them stopped.
pub(crate) fn run_all<P>(args: &Args, parts: &[i32]) -> Result<String, RunError>
where
    P: Pipeline,
    P::Event: DeserializeOwned,
{
    let total = check::<P>(args, parts)?;
    let group = group_name::<P>(args)?;
    let list: Vec<String> = parts.iter().map(i32::to_string).collect();
    info!(
        "instance {} owns partitions {} of {} ({total} partitions; group {group}, static assignment)",
        args.instance,
        list.join(","),
        args.input.as_deref().unwrap_or("".as_ref()).display(),
    );
    let results = on_threads(parts, |p| start::<P>(args, p, total, group.clone()));
    let mut lines = Vec::new();
    let mut first_err = None;
    for (p, r) in results {
        match r {
            Ok(s) => lines.push(format!("partition {p}: {s}")),
            Err(e) => {
                let e = match e {
                    RunError::BadInput(m) => RunError::BadInput(format!("partition {p}: {m}")),
                    RunError::Fatal(m) => RunError::Fatal(format!("partition {p}: {m}")),
                };
                first_err.get_or_insert(e);
            }
        }
    }
    match first_err {
        Some(e) => {
            for l in &lines {
                info!("{l}");
            }
            Err(e)
        }
        None => Ok(lines.join("\n")),
    }
}

/// Runs `task(p)` for every partition in `parts`, each on its own named thread, and
/// returns every result in the order of `parts` (a panicked task is an error).
pub(crate) fn on_threads<F>(parts: &[i32], task: F) -> Vec<(i32, Result<String, RunError>)>
where
    F: Fn(i32) -> Result<String, RunError> + Sync,
{
    let task = &task;
    std::thread::scope(|s| {
        let handles: Vec<_> = parts
            .iter()
            .map(|&p| {
                let h = std::thread::Builder::new()
                    .name(format!("partition-{p}"))
                    .spawn_scoped(s, move || {
                        let _span = info_span!("partition", p).entered();
                        task(p)
                    });
                (p, h)
            })
            .collect();
        handles
            .into_iter()
            .map(|(p, h)| {
                let r = match h {
                    Ok(h) => h.join().unwrap_or_else(|_| {
                        Err(RunError::Fatal(format!("partition {p}: its task panicked")))
                    }),
                    Err(e) => Err(RunError::Fatal(format!("starting partition {p}: {e}"))),
                };
                (p, r)
            })
            .collect()
    })
}

/// Takes partition `p` over and runs its task.
fn start<P>(args: &Args, p: i32, total: i32, group: String) -> Result<String, RunError>
where
    P: Pipeline,
    P::Event: DeserializeOwned,
{
    let dir = args
        .checkpoint_dir
        .join(&group)
        .join("checkpoints")
        .join(format!("partition-{p}"));
    let owner = format!("instance {}", args.instance);
    let fence = Fence::acquire(&dir, &owner)?;
    log_takeover(p, &fence);
    let task = Task {
        partition: p,
        partitions: total,
        group,
        fence,
        revoke: None,
    };
    super::run_task::<P>(args, Some(&task))
}

/// The group's name: `--group`, or the pipeline's.
pub(crate) fn group_name<P: Pipeline>(args: &Args) -> Result<String, RunError> {
    let group = args.group.clone().unwrap_or_else(|| P::NAME.to_string());
    crate::store::validate_instance(&group).map_err(|e| format!("--group: {e}"))?;
    Ok(group)
}

/// Says who had partition `p` before this fence's epoch.
pub(crate) fn log_takeover(p: i32, fence: &Fence) {
    match fence.previous() {
        Some((e, who)) => info!(
            "took partition {p} over at epoch {} from {who} (epoch {e})",
            fence.epoch()
        ),
        None => info!("took partition {p} (epoch 1: its first owner)"),
    }
}

/// What `--partitions` (and `--group-assign`) needs, checked before any partition is taken: Kafka input and
/// outputs, a checkpoint directory, and stateful stages all keyed by the column the
/// input is partitioned by. Returns the input topic's partition count.
pub(crate) fn check<P: Pipeline>(args: &Args, parts: &[i32]) -> Result<i32, RunError> {
    let flag = if args.group_assign {
        "--group-assign"
    } else {
        "--partitions"
    };
    let ends = Endpoints::of(args)?;
    if args.checkpoint_store.is_some()
        && !matches!(
            StoreUrl::parse(args.checkpoint_store.as_deref().unwrap_or_default()),
            Ok(StoreUrl::File(_))
        )
    {
        return Err(format!(
            "{flag} keeps each partition's checkpoints in --checkpoint-dir (a disk all instances share); other checkpoint stores are not supported with it yet"
        )
        .into());
    }
    check_keys::<P>(args.partition_key.as_deref(), flag)?;
    let mut seen = std::collections::BTreeSet::new();
    if let Some(p) = parts.iter().find(|p| !seen.insert(**p) || **p < 0) {
        return Err(format!("--partitions: partition {p} is negative or given twice").into());
    }
    topics(&ends, parts, flag)
}

#[cfg(feature = "kafka")]
fn topics(ends: &Endpoints, parts: &[i32], flag: &str) -> Result<i32, RunError> {
    let Endpoint::Kafka(input) = &ends.input else {
        return Err(format!(
            "{flag} reads partitions of a Kafka topic: give --input kafka://host:port/topic"
        )
        .into());
    };
    for (flag, e) in [
        ("--output", Some(&ends.output)),
        ("--late-output", Some(&ends.late)),
        ("--dead-letter", ends.dead.as_ref()),
    ] {
        if let Some(Endpoint::File(f)) = e {
            return Err(format!(
                "{flag} writes each partition's rows to that partition of a Kafka topic, not to a file ({flag} {}): give {flag} kafka://host:port/topic",
                f.display()
            )
            .into());
        }
    }
    let Some(total) = super::kafka::partition_count(input)? else {
        return Err(format!(
            "{input}: there is no topic `{}` on the brokers (create it, or fix the URL)",
            input.topic
        )
        .into());
    };
    if let Some(p) = parts.iter().find(|&&p| p >= total) {
        return Err(format!("{input}: there is no partition {p} (the topic has {total})").into());
    }
    Ok(total)
}

#[cfg(not(feature = "kafka"))]
fn topics(_: &Endpoints, _: &[i32], flag: &str) -> Result<i32, RunError> {
    Err(format!("{flag} needs Kafka: this build has no Kafka support (enable the `kafka` feature of simplestream)").into())
}

/// Every stateful stage must be keyed by `key`, the column the input topic is
/// partitioned by: each key's events then meet in one partition, whose task holds its
/// state. Anything else is refused (no repartitioning through another topic).
fn check_keys<P: Pipeline>(key: Option<&str>, flag: &str) -> Result<(), RunError> {
    let stateful = P::PLAN
        .stages
        .iter()
        .filter(|s| !matches!(s.state, State::None));
    for stage in stateful {
        let Some(by) = stage.state.key() else {
            return Err(format!(
                "{flag}: stage `{}` is a window over all events: each partition's task would see only its own events; run it without {flag}",
                stage.name
            )
            .into());
        };
        match key {
            None => {
                return Err(format!(
                    "{flag} needs --partition-key: the column the input topic is partitioned by (stage `{}` is keyed by `{by}`)",
                    stage.name
                )
                .into())
            }
            Some(k) if k != by => {
                return Err(format!(
                    "{flag}: stage `{}` is keyed by `{by}`, but the input is partitioned by `{k}` (--partition-key): one {by}'s events would be counted in several partitions; partition the topic by `{by}`, or run without {flag}",
                    stage.name
                )
                .into())
            }
            Some(_) => {}
        }
    }
    if key.is_none() {
        warn!("{flag}: the pipeline keeps no keyed state; --partition-key is not needed");
    }
    Ok(())
}

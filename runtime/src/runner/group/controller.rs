//! The member's loop: join, run the generation's tasks, give them up, rejoin.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use tracing::{info, warn};

use super::marker::{self, all_done, part_dir};
use super::member::{Assignment, Live, Member};
use crate::pipeline::Pipeline;
use crate::runner::endpoint::{Endpoint, Endpoints};
use crate::runner::fence::Fence;
use crate::runner::tasks::{self, on_threads, Task};
use crate::runner::{Args, RunError};

/// Runs as a member of the group until every partition is done (or a signal); returns
/// the summary of every task run, one line each.
pub(crate) fn run<P>(args: &Args) -> Result<String, RunError>
where
    P: Pipeline,
    P::Event: DeserializeOwned,
{
    let total = tasks::check::<P>(args, &[])?;
    let group = tasks::group_name::<P>(args)?;
    let Endpoint::Kafka(input) = Endpoints::of(args)?.input else {
        return Err(
            "--group-assign reads a Kafka topic: give --input kafka://host:port/topic".into(),
        );
    };
    let dir = group_dir(args, &group);
    let session = Duration::from_millis(args.session_timeout.max(1) as u64);
    let mut member = Member::connect(
        &input.brokers,
        &group,
        &input.topic,
        &args.instance,
        total,
        session,
    )?;
    let stop = crate::runner::savepoint::Signals::install()?.stop;
    let mut lines = Vec::new();
    let mut owned: Vec<i32> = Vec::new();
    let mut reread = std::collections::BTreeMap::new();
    loop {
        let done = !args.follow && all_done(&dir, total) && {
            // Records appended since a partition was marked are read, not skipped.
            marker::drop_stale(&dir, &input, total, &mut reread)?.is_empty()
        };
        if stop.load(Ordering::SeqCst) || done {
            member.leave();
            if lines.is_empty() {
                lines.push(format!("every partition of {} was done", input.topic));
            }
            return Ok(lines.join("\n"));
        }
        let asked = Instant::now();
        let a = member.join().map_err(RunError::Fatal)?;
        log_assignment(args, &group, total, &a, &owned, asked.elapsed());
        owned = a.partitions.clone();
        let quit = Arc::new(AtomicBool::new(false));
        let (live, beating) = member.heartbeat(a.generation, Arc::clone(&quit));
        let r = generation::<P>(args, &group, total, &a, &live, &stop, &mut lines);
        quit.store(true, Ordering::SeqCst);
        member = beating
            .join()
            .map_err(|_| RunError::Fatal("the heartbeat thread panicked".into()))?;
        if let Err(e) = r {
            member.leave();
            return Err(e);
        }
    }
}

fn log_assignment(
    args: &Args,
    group: &str,
    total: i32,
    a: &Assignment,
    before: &[i32],
    took: Duration,
) {
    let list = |v: &[i32]| {
        let s: Vec<String> = v.iter().map(i32::to_string).collect();
        if s.is_empty() {
            "none".to_string()
        } else {
            s.join(",")
        }
    };
    let gained: Vec<i32> = a
        .partitions
        .iter()
        .copied()
        .filter(|p| !before.contains(p))
        .collect();
    let gave: Vec<i32> = before
        .iter()
        .copied()
        .filter(|p| !a.partitions.contains(p))
        .collect();
    info!(
        "group {group} generation {}: instance {} owns partitions {} of {total} ({} member(s): {}{}; joined in {:.2}s); gained {}, gave up {}",
        a.generation,
        args.instance,
        list(&a.partitions),
        a.members.len(),
        a.members.join(", "),
        if a.leader { "; this one leads" } else { "" },
        took.as_secs_f64(),
        list(&gained),
        list(&gave),
    );
}

/// One generation: runs the assigned partitions that are not done until a rebalance
/// (or a signal), then returns; a fatal task error is returned, a fenced task only
/// reported.
fn generation<P>(
    args: &Args,
    group: &str,
    total: i32,
    a: &Assignment,
    live: &Arc<Live>,
    stop: &AtomicBool,
    lines: &mut Vec<String>,
) -> Result<(), RunError>
where
    P: Pipeline,
    P::Event: DeserializeOwned,
{
    let dir = &group_dir(args, group);
    let todo: Vec<i32> = a
        .partitions
        .iter()
        .copied()
        .filter(|&p| args.follow || !marker::is_done(dir, p))
        .collect();
    let results = on_threads(&todo, |p| task::<P>(args, group, p, total, live, stop));
    for (p, r) in results {
        match r {
            Ok(s) => lines.push(format!("partition {p} (generation {}): {s}", a.generation)),
            Err(RunError::Fatal(m) | RunError::BadInput(m)) if m.contains("fenced:") => {
                warn!("partition {p}: {m}");
            }
            Err(RunError::Fatal(m)) => return Err(RunError::Fatal(format!("partition {p}: {m}"))),
            Err(RunError::BadInput(m)) => {
                return Err(RunError::BadInput(format!("partition {p}: {m}")))
            }
        }
    }
    // Everything assigned is done (or fenced): stay a member until the group rebalances,
    // the whole topic is done, or a signal.
    while !live.revoke.load(Ordering::SeqCst) && !stop.load(Ordering::SeqCst) {
        if !args.follow && all_done(dir, total) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    if let (false, Some(t)) = (todo.is_empty(), live.revoked_at.get()) {
        info!(
            "generation {}: gave partitions up {:.2}s after the rebalance began (final checkpoints taken)",
            a.generation,
            t.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// Takes partition `p` for this generation and runs it; marks it done at its end.
fn task<P>(
    args: &Args,
    group: &str,
    p: i32,
    total: i32,
    live: &Arc<Live>,
    stop: &AtomicBool,
) -> Result<String, RunError>
where
    P: Pipeline,
    P::Event: DeserializeOwned,
{
    let dir = &group_dir(args, group);
    let owner = format!(
        "instance {} (generation {})",
        args.instance, live.generation
    );
    let fence = Fence::acquire(&part_dir(dir, p), &owner)?.with_member(Arc::clone(live));
    tasks::log_takeover(p, &fence);
    let t = Task {
        partition: p,
        partitions: total,
        group: group.to_string(),
        fence,
        revoke: Some(Arc::clone(&live.revoke)),
    };
    let summary = crate::runner::run_task::<P>(args, Some(&t))?;
    let revoked = live.revoke.load(Ordering::SeqCst) || stop.load(Ordering::SeqCst);
    if !revoked && !args.follow {
        t.fence.check()?;
        marker::mark(dir, p, &owner)?;
    }
    Ok(summary)
}

/// Where the group's partition checkpoints are: `<checkpoint-dir>/<group>/checkpoints`.
fn group_dir(args: &Args, group: &str) -> PathBuf {
    args.checkpoint_dir.join(group).join("checkpoints")
}

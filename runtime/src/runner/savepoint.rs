//! Savepoints in a run: taken on SIGUSR1 or at a stop by signal, restored with
//! `--from-savepoint`. Signal handlers only set flags; the run loop takes the savepoint
//! between two events, where the state and the outputs agree.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tracing::{error, info};

use super::{checkpoints, Failure, Run, RunError};
use crate::coordinator::{CheckpointInfo, Coordinator};
use crate::pipeline::Pipeline;
use crate::store::CheckpointStore;
use crate::time::{compact_utc, now_ms};

/// What the signals asked for, set by their handlers and read by the run loop.
pub(super) struct Signals {
    /// SIGINT or SIGTERM: stop at the next event with a checkpoint.
    pub stop: Arc<AtomicBool>,
    /// SIGUSR1: take a savepoint at the next event.
    savepoint: Arc<AtomicBool>,
}

impl Signals {
    /// Installs the handlers (flag setters only).
    pub fn install() -> Result<Self, RunError> {
        let stop = Arc::new(AtomicBool::new(false));
        let savepoint = Arc::new(AtomicBool::new(false));
        let flags = [
            (signal_hook::consts::SIGINT, &stop),
            (signal_hook::consts::SIGTERM, &stop),
            (signal_hook::consts::SIGUSR1, &savepoint),
        ];
        for (sig, flag) in flags {
            signal_hook::flag::register(sig, Arc::clone(flag))
                .map_err(|e| format!("installing signal handler: {e}"))?;
        }
        Ok(Signals { stop, savepoint })
    }

    /// True once per SIGUSR1 (several before the next event count as one).
    #[inline]
    pub fn savepoint_asked(&self) -> bool {
        self.savepoint.load(Ordering::Relaxed) && self.savepoint.swap(false, Ordering::Relaxed)
    }
}

/// A savepoint name given on the command line.
pub(super) fn parse_name(s: &str) -> Result<String, String> {
    crate::names::validate_savepoint(s)?;
    Ok(s.to_string())
}

impl<P: Pipeline, S: super::Source> Run<P, S> {
    /// Takes savepoint `name` here, between two events: outputs made durable, then the
    /// whole state with their lengths and the input position.
    pub(super) fn savepoint(&mut self, name: &str) -> Result<CheckpointInfo, String> {
        if let Some(r) = self.coord.finish_upload() {
            self.outcome(r.map_err(Failure::from), "background upload", None)?;
        }
        let positions = self.positions()?;
        let info = self
            .coord
            .savepoint(&self.pipeline, name, positions, now_ms())
            .map_err(|e| e.to_string())?;
        info!(
            "savepoint `{name}` taken ({}, checkpoint #{}, {} events): retention keeps it; restart from it with --from-savepoint {name}",
            info.name, info.id, self.events
        );
        Ok(info)
    }

    /// On SIGUSR1: a savepoint named by `--savepoint-name`, else by the time. A failure
    /// is logged and the run goes on: the checkpoints are unaffected.
    pub(super) fn savepoint_on_request(&mut self) -> Result<(), String> {
        let name = match &self.savepoint_name {
            Some(n) => n.clone(),
            None => compact_utc(now_ms()),
        };
        match self.savepoint(&name) {
            Ok(_) => Ok(()),
            Err(e) if e.starts_with("fenced:") => Err(e),
            Err(e) => {
                error!("the savepoint asked for by SIGUSR1 was not taken: {e}; the run goes on");
                Ok(())
            }
        }
    }
}

/// `--from-savepoint NAME`: restores it, then records it as the latest checkpoint before
/// any output is cut back to its lengths, so that a crash from here on resumes from it
/// (not from a newer checkpoint whose outputs were cut).
pub(super) fn restore<P: Pipeline>(
    coord: &mut Coordinator<Box<dyn CheckpointStore + Send>>,
    name: &str,
) -> Result<(P, BTreeMap<String, u64>), RunError> {
    let r = coord
        .recover_savepoint::<P>(name)
        .map_err(|e| RunError::Fatal(format!("--from-savepoint: {e}")))?;
    checkpoints::check_runner_positions(&r.header, &r.name)?;
    for a in &r.actions {
        if !matches!(a, crate::upgrade::StageAction::Restore { .. }) {
            info!("{a}");
        }
    }
    let positions = r.header.positions;
    let info = coord
        .checkpoint(&r.pipeline, positions.clone(), now_ms())
        .map_err(|e| {
            format!("--from-savepoint: recording savepoint `{name}` as the latest checkpoint failed: {e}; nothing was written; run again")
        })?;
    let at = |k: &str| positions.get(k).copied().unwrap_or(0);
    info!(
        "restored savepoint `{name}` ({}, taken {}): {} events processed, input offset {}; checkpoint #{} records it as the latest",
        r.name,
        crate::time::iso_utc(r.header.timestamp),
        at("events"),
        at("source.offset"),
        info.id
    );
    if !info.deleted.is_empty() {
        info!(
            "checkpoints newer than the savepoint were removed by retention: {}",
            info.deleted.join(", ")
        );
    }
    Ok((r.pipeline, positions))
}

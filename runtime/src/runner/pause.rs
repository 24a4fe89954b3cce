//! Test hook: pause points that make kills land at a known amount of progress.
//!
//! With `SIMPLESTREAM_PAUSE_AT=1000,5000` the runner stops once it has processed 1000
//! events (counted as the checkpoint counts them, across restarts), prints one line
//! starting with [`PAUSED`] on stderr, and waits for a line (or end of file) on stdin
//! before going on; then likewise at 5000. Crash tests kill the process while it waits,
//! so the number of kills never depends on how fast the machine is.

use std::io::{BufRead, Write};

/// The start of the line printed at a pause point.
pub const PAUSED: &str = "simplestream: paused at event";

pub(crate) struct PausePoints {
    /// Pending points, largest first.
    pending: Vec<u64>,
    /// The smallest pending point (`u64::MAX`: none), so the per-event test is one compare.
    pub(crate) next: u64,
}

impl PausePoints {
    pub(crate) fn from_env() -> Result<Self, String> {
        let mut pending = match std::env::var("SIMPLESTREAM_PAUSE_AT") {
            Ok(s) if !s.trim().is_empty() => s
                .split(',')
                .map(|p| {
                    p.trim()
                        .parse::<u64>()
                        .map_err(|e| format!("SIMPLESTREAM_PAUSE_AT: {p:?}: {e}"))
                })
                .collect::<Result<Vec<_>, _>>()?,
            _ => Vec::new(),
        };
        pending.sort_unstable_by(|a, b| b.cmp(a));
        let next = pending.last().copied().unwrap_or(u64::MAX);
        Ok(PausePoints { pending, next })
    }

    /// Called once `events >= self.next`: reports, then waits for stdin.
    pub(crate) fn pause(&mut self, events: u64, offset: u64, checkpoints: u64, uploading: bool) {
        while self.pending.last().is_some_and(|&p| p <= events) {
            self.pending.pop();
        }
        self.next = self.pending.last().copied().unwrap_or(u64::MAX);
        let mut err = std::io::stderr().lock();
        let _ = writeln!(
            err,
            "{PAUSED} {events} (input offset {offset}, {checkpoints} checkpoint(s) this run, upload in flight: {uploading})"
        );
        let _ = err.flush();
        drop(err);
        let mut line = String::new();
        let _ = std::io::stdin().lock().read_line(&mut line);
    }
}

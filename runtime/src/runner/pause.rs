//! Test hook: pause points that make kills land at a known amount of progress.
//!
//! With `SIMPLESTREAM_PAUSE_AT=1000,5000` the runner stops once it has processed 1000
//! events (counted as the checkpoint counts them, across restarts), prints one line
//! starting with [`PAUSED`] on stderr, and waits for a line (or end of file) on stdin
//! before going on; then likewise at 5000. Crash tests kill the process while it waits,
//! so the number of kills never depends on how fast the machine is. Each stdin line lets
//! one waiting pause go (end of file lets every pause go); a group rebalance lets the
//! paused tasks it revokes go without one.

use std::io::{BufRead, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::Duration;

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

    /// Called once `events >= self.next`: reports, then waits for a stdin line or
    /// for `revoke`.
    pub(crate) fn pause(
        &mut self,
        events: u64,
        offset: u64,
        checkpoints: u64,
        uploading: bool,
        revoke: Option<&AtomicBool>,
    ) {
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
        wait_for_line(revoke);
    }
}

/// Stdin lines not yet used by a pause, and whether stdin ended.
struct Lines {
    state: Mutex<(u64, bool)>,
    cv: Condvar,
}

/// Stdin is read by one thread for every task of the process: each line is one go.
fn lines() -> &'static Lines {
    static LINES: OnceLock<Lines> = OnceLock::new();
    LINES.get_or_init(|| {
        std::thread::spawn(|| {
            let mut stdin = std::io::stdin().lock();
            loop {
                let mut line = String::new();
                let eof = !matches!(stdin.read_line(&mut line), Ok(n) if n > 0);
                let l = lines();
                let mut s = l.state.lock().unwrap_or_else(|e| e.into_inner());
                if eof {
                    s.1 = true;
                } else {
                    s.0 += 1;
                }
                l.cv.notify_all();
                if eof {
                    return;
                }
            }
        });
        Lines {
            state: Mutex::new((0, false)),
            cv: Condvar::new(),
        }
    })
}

fn wait_for_line(revoke: Option<&AtomicBool>) {
    let l = lines();
    let mut s = l.state.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        if s.1 {
            return;
        }
        if s.0 > 0 {
            s.0 -= 1;
            return;
        }
        if revoke.is_some_and(|r| r.load(Ordering::SeqCst)) {
            return;
        }
        // The timeout only lets a revocation be seen; stdin lines notify at once.
        s =
            l.cv.wait_timeout(s, Duration::from_millis(50))
                .unwrap_or_else(|e| e.into_inner())
                .0;
    }
}

//! A progress line on a terminal; periodic log lines otherwise.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

pub(crate) struct Progress {
    enabled: bool,
    tty: bool,
    started: Instant,
    last: Instant,
    last_events: u64,
    every: Duration,
    drawn: bool,
}

impl Progress {
    pub(crate) fn new(enabled: bool) -> Self {
        let tty = std::io::stderr().is_terminal();
        let now = Instant::now();
        Progress {
            enabled,
            tty,
            started: now,
            last: now,
            last_events: 0,
            every: if tty {
                Duration::from_millis(200)
            } else {
                Duration::from_secs(5)
            },
            drawn: false,
        }
    }

    pub(crate) fn tick(
        &mut self,
        events: u64,
        offset: u64,
        total: u64,
        checkpoints: u64,
        last: Option<(u64, Duration)>,
    ) {
        if !self.enabled || self.last.elapsed() < self.every {
            return;
        }
        let dt = self.last.elapsed().as_secs_f64().max(1e-9);
        let eps = (events.saturating_sub(self.last_events)) as f64 / dt;
        self.last = Instant::now();
        self.last_events = events;
        let pct = if total > 0 {
            offset as f64 * 100.0 / total as f64
        } else {
            0.0
        };
        let ck = match last {
            Some((size, took)) => format!(", last {} KiB in {} ms", size / 1024, took.as_millis()),
            None => String::new(),
        };
        if self.tty {
            let width = 30usize;
            let filled = ((pct / 100.0) * width as f64).round().min(width as f64) as usize;
            eprint!(
                "\r[{}{}] {pct:5.1}%  {events} events  {eps:.0}/s  {checkpoints} checkpoints{ck}   ",
                "#".repeat(filled),
                "-".repeat(width - filled)
            );
            let _ = std::io::stderr().flush();
            self.drawn = true;
        } else {
            tracing::info!(
                "progress: {events} events ({eps:.0}/s), {pct:.1}% of input, {checkpoints} checkpoints{ck}, {:.0}s elapsed",
                self.started.elapsed().as_secs_f64()
            );
        }
    }

    pub(crate) fn finish(&mut self) {
        if self.drawn {
            eprintln!();
        }
    }
}

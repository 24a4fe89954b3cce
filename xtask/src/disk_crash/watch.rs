//! One `orders` run watched to a kill point (or to its end): kills land on progress (a
//! pause point, the output's length, a new checkpoint file), never after a sleep.

use std::collections::BTreeSet;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

/// The line the runner prints at a `SIMPLESTREAM_PAUSE_AT` point.
const PAUSED: &str = "simplestream: paused at event";
/// How often the files and the process are looked at (not a verdict: a kill waits for
/// its condition however long it takes).
const POLL: Duration = Duration::from_millis(5);
/// A run whose output, checkpoint files and CPU time all stand still this long is hung.
const HANG: Duration = Duration::from_secs(15 * 60);

/// Where a run is killed with SIGKILL.
#[derive(Clone, Copy, Debug)]
pub enum Trigger {
    /// Stopped by the runner's pause hook at this event count, killed while it waits.
    Paused(u64),
    /// Killed as soon as the output file has this many bytes.
    OutputBytes(u64),
    /// Killed as soon as a new file appears in the checkpoint directory once the output
    /// has this many bytes: inside a checkpoint (a delta or manifest being written,
    /// retention deleting).
    NewCheckpointFile(u64),
    /// Run to the end.
    End,
}

/// What the files of a run are.
pub struct Files<'a> {
    pub output: &'a Path,
    pub checkpoints: &'a Path,
}

/// What one run did.
pub struct RunReport {
    pub wall: Duration,
    /// `VmHWM`, read every 0.1 s and just before a kill.
    pub peak_rss_kb: u64,
    /// Output bytes when it was killed or ended.
    pub output_len: u64,
    /// What it was killed at (`None`: it ran to the end).
    pub killed: Option<String>,
}

/// Runs `cmd` until `trigger`, then kills it (or, for [`Trigger::End`], until it exits
/// successfully).
pub fn run(mut cmd: Command, trigger: Trigger, files: &Files) -> Result<RunReport, String> {
    if let Trigger::Paused(e) = trigger {
        cmd.env("SIMPLESTREAM_PAUSE_AT", e.to_string());
    }
    cmd.stdin(Stdio::piped()).stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start orders: {e}"))?;
    // Held open: its end would let every pause point go.
    let _stdin = child.stdin.take();
    let paused = forward_stderr(&mut child)?;
    let mut w = Watch::new(child.id());
    let result = watch(&mut child, trigger, files, &paused, &mut w);
    if result.as_ref().is_ok_and(|k| k.is_some()) || result.is_err() {
        w.sample_rss();
        let _ = child.kill(); // SIGKILL: no chance to clean up
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    let killed = result?;
    if killed.is_none() && !status.success() {
        return Err(format!("orders failed: {status}"));
    }
    Ok(RunReport {
        wall: start.elapsed(),
        peak_rss_kb: w.peak_rss_kb,
        output_len: len(files.output),
        killed,
    })
}

/// Copies the child's stderr to ours in a thread; pause lines are also sent on.
fn forward_stderr(child: &mut Child) -> Result<Receiver<String>, String> {
    let stderr = child.stderr.take().ok_or("no stderr")?;
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.starts_with(PAUSED) {
                let _ = tx.send(line);
            } else {
                eprintln!("  | {line}");
            }
        }
    });
    Ok(rx)
}

/// Polls until the trigger (`Some(what)`) or the process's exit (`None`).
fn watch(
    child: &mut Child,
    trigger: Trigger,
    files: &Files,
    paused: &Receiver<String>,
    w: &mut Watch,
) -> Result<Option<String>, String> {
    let mut before: Option<BTreeSet<String>> = None;
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            return match trigger {
                Trigger::End => Ok(None),
                _ => Err(format!("orders ended ({status}) before {trigger:?}")),
            };
        }
        w.tick(files)?;
        match trigger {
            Trigger::Paused(_) => {
                if let Ok(line) = paused.try_recv() {
                    return Ok(Some(line.replace("simplestream: ", "")));
                }
            }
            Trigger::OutputBytes(b) => {
                let n = len(files.output);
                if n >= b {
                    return Ok(Some(format!("output at {n} bytes (>= {b})")));
                }
            }
            Trigger::NewCheckpointFile(b) => match &before {
                None if len(files.output) >= b => before = Some(names(files.checkpoints)),
                None => {}
                Some(old) => {
                    let new = names(files.checkpoints);
                    if let Some(n) = new.difference(old).next() {
                        return Ok(Some(format!(
                            "new checkpoint file {n} (output at {} bytes, >= {b})",
                            len(files.output)
                        )));
                    }
                    before = Some(new);
                }
            },
            Trigger::End => {}
        }
        std::thread::sleep(POLL);
    }
}

/// Peak RSS and the hang guard of one process.
struct Watch {
    status: PathBuf,
    stat: PathBuf,
    peak_rss_kb: u64,
    last_sample: Instant,
    progress: (u64, u64, usize),
    progress_at: Instant,
}

impl Watch {
    fn new(pid: u32) -> Watch {
        let proc = PathBuf::from(format!("/proc/{pid}"));
        Watch {
            status: proc.join("status"),
            stat: proc.join("stat"),
            peak_rss_kb: 0,
            last_sample: Instant::now(),
            progress: (0, 0, 0),
            progress_at: Instant::now(),
        }
    }

    fn tick(&mut self, files: &Files) -> Result<(), String> {
        if self.last_sample.elapsed() < Duration::from_millis(100) {
            return Ok(());
        }
        self.last_sample = Instant::now();
        self.sample_rss();
        let now = (
            len(files.output),
            self.cpu_ticks(),
            names(files.checkpoints).len(),
        );
        if now != self.progress {
            self.progress = now;
            self.progress_at = Instant::now();
        } else if self.progress_at.elapsed() > HANG {
            return Err(format!(
                "no progress for {} s (output, CPU time and checkpoint files unchanged): hung",
                HANG.as_secs()
            ));
        }
        Ok(())
    }

    fn sample_rss(&mut self) {
        let text = fs::read_to_string(&self.status).unwrap_or_default();
        let hwm = text
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0);
        self.peak_rss_kb = self.peak_rss_kb.max(hwm);
    }

    /// User + system CPU ticks (fields 14 and 15 of `/proc/PID/stat`).
    fn cpu_ticks(&self) -> u64 {
        let text = fs::read_to_string(&self.stat).unwrap_or_default();
        // The command name (field 2) may hold spaces; fields after it do not.
        let rest = text.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        rest.split_whitespace()
            .skip(11)
            .take(2)
            .filter_map(|f| f.parse::<u64>().ok())
            .sum()
    }
}

pub fn len(p: &Path) -> u64 {
    fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

fn names(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

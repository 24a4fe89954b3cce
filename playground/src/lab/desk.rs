//! The half of a lab that does not depend on its pipeline's type: the coordinator and
//! its store, the source, the sink, the log, and what they say. [`Lab`](super::Lab) keeps only
//! what needs the pipeline's type, so that this is compiled once rather than once per
//! gallery pipeline (the WASM's size). What the page shows of it is in `page`.

use std::collections::BTreeMap;

use serde::Serialize;
use simplestream::coordinator::{CheckpointInfo, CoordinatorError};
use simplestream::envelope::Header;
use simplestream::plan::Plan;
use simplestream::store::StoreErrorKind;
use simplestream::{Codec, Coordinator, CoordinatorConfig};

use super::{PlayStore, Sink, SinkLine, KEEP, OUTPUT_KEY, SEED, SOURCE_KEY};
use crate::gallery::Demo;
use crate::source::{parse_json_line, FieldError, Topic, MALFORMED};
use crate::text::{hms, ms_label, size_label, when};

pub(super) const LOG_LINES: usize = 200;
pub(super) const SHOWN_OUTPUTS: usize = 30;

/// What the page shows about a gallery pipeline besides its state: its `Demo` and
/// `Pipeline` constants.
pub(crate) struct About {
    pub instance: &'static str,
    pub name: &'static str,
    pub title: &'static str,
    pub blurb: &'static str,
    pub source_path: &'static str,
    pub source_file: &'static str,
    pub plan: &'static Plan,
    pub stages: &'static [&'static str],
    pub sinks: &'static [&'static str],
    pub late_by_ms: i64,
}

impl About {
    pub fn of<P: Demo>() -> About {
        About {
            instance: P::INSTANCE,
            name: P::name(),
            title: P::TITLE,
            blurb: P::BLURB,
            source_path: P::SOURCE_PATH,
            source_file: P::SOURCE_FILE,
            plan: P::plan(),
            stages: P::stages(),
            sinks: P::sinks(),
            late_by_ms: P::LATE_BY_MS,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct LogLine {
    t: i64,
    pub level: &'static str,
    pub msg: String,
}

#[derive(Debug, Clone, Serialize)]
pub(super) struct DeadLetter {
    t: i64,
    line: String,
    error: String,
}

/// Everything of a lab but its pipelines.
pub(crate) struct Desk<S: PlayStore> {
    pub about: About,
    pub coord: Coordinator<S>,
    pub topic: Topic,
    pub sink: Sink,
    pub sink_dirty: bool,
    pub auto_every: Option<u64>,
    pub codec: Codec,
    pub read_upto: u64,
    pub(super) log: Vec<LogLine>,
    pub status: LogLine,
    pub form_error: Option<FieldError>,
    pub(super) dead_letters: Vec<DeadLetter>,
    malformed_next: usize,
}

/// Changes one character of a checkpoint, the way a bad disk or a bad edit would: a
/// digit near the end of a JSON checkpoint (the JSON still parses; only the checksum
/// tells), or one bit in the middle of a binary one.
pub fn garble(bytes: &[u8]) -> (Vec<u8>, String) {
    let mut b = bytes.to_vec();
    if b.first() == Some(&b'{') {
        let end = b
            .windows(11)
            .rposition(|w| w == b",\"checksum\"")
            .unwrap_or(b.len());
        if let Some(i) = b[..end].iter().rposition(u8::is_ascii_digit) {
            let old = b[i];
            let new = if old == b'9' { b'8' } else { old + 1 };
            b[i] = new;
            let how = format!(
                "changed one digit at byte {i} ('{}' → '{}'): the JSON still parses, only its checksum can tell",
                old as char, new as char
            );
            return (b, how);
        }
    }
    if b.is_empty() {
        return (b"garbage".to_vec(), "replaced it with `garbage`".into());
    }
    let i = (b.len() / 2).max(b.len().min(19) - 1);
    b[i] ^= 0x08;
    (
        b,
        format!("flipped one bit of byte {i} of the binary payload"),
    )
}

/// The positions a checkpoint saves: the source offset and the sink's length.
pub(crate) fn positions(offset: u64, sink_len: u64) -> BTreeMap<String, u64> {
    BTreeMap::from([
        ("source.offset".to_string(), offset),
        ("output.len".to_string(), sink_len),
    ])
}

fn coordinator_error(e: &CoordinatorError) -> String {
    match e {
        CoordinatorError::Store(s) if s.kind == StoreErrorKind::Full => format!(
            "storage is full: {s}. The previous checkpoint is still valid; delete some (Clear storage) or use the binary codec."
        ),
        CoordinatorError::NoValidCheckpoint { problems, .. } => format!(
            "no checkpoint can be restored: {}",
            problems.join("; ")
        ),
        other => other.to_string(),
    }
}

impl<S: PlayStore> Desk<S> {
    /// A desk over `store`, reading the side records now: the source's hand-written
    /// events and the sink's output.
    pub fn new(about: About, store: S) -> Self {
        let topic = store
            .get_extra(SOURCE_KEY)
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_else(|| Topic::new(SEED));
        let sink = store
            .get_extra(OUTPUT_KEY)
            .map(|t| Sink::from_text(&t))
            .unwrap_or_default();
        Desk {
            about,
            coord: Coordinator::new(store, Self::config(None, Codec::Json)),
            topic,
            sink,
            sink_dirty: false,
            auto_every: None,
            codec: Codec::Json,
            read_upto: 0,
            log: Vec::new(),
            status: LogLine {
                t: 0,
                level: "info",
                msg: String::new(),
            },
            form_error: None,
            dead_letters: Vec::new(),
            malformed_next: 0,
        }
    }

    fn config(every: Option<u64>, codec: Codec) -> CoordinatorConfig {
        CoordinatorConfig {
            every_events: every,
            every_ms: None,
            codec,
            keep: KEEP,
        }
    }

    /// A new coordinator over the same storage: the coordinator is process memory too.
    pub fn new_coordinator(&mut self) {
        let store = self.coord.store().clone();
        self.coord = Coordinator::new(store, Self::config(self.auto_every, self.codec));
    }

    pub fn note(&mut self, now: i64, level: &'static str, msg: impl Into<String>) {
        self.log.push(LogLine {
            t: now,
            level,
            msg: msg.into(),
        });
        if self.log.len() > LOG_LINES * 2 {
            self.log.drain(..LOG_LINES);
        }
    }

    /// Logs and shows `msg` as the status.
    pub fn say(&mut self, now: i64, level: &'static str, msg: impl Into<String>) {
        let msg = msg.into();
        self.note(now, level, msg.clone());
        self.status = LogLine { t: now, level, msg };
    }

    fn store_notes(&mut self, now: i64) {
        for n in self.coord.store_mut().take_notes() {
            self.note(now, "warn", n);
        }
    }

    pub fn save_topic(&mut self, now: i64) -> bool {
        let json = serde_json::to_string(&self.topic).unwrap_or_default();
        match self.coord.store_mut().put_extra(SOURCE_KEY, &json) {
            Ok(()) => true,
            Err(e) => {
                self.note(
                    now,
                    "error",
                    format!("cannot save the source's events: {e}"),
                );
                false
            }
        }
    }

    pub fn save_sink(&mut self, now: i64) -> bool {
        if !self.sink_dirty {
            return true;
        }
        let text = self.sink.to_text();
        match self.coord.store_mut().put_extra(OUTPUT_KEY, &text) {
            Ok(()) => {
                self.sink_dirty = false;
                true
            }
            Err(e) => {
                self.note(now, "error", format!("cannot save the sink's output: {e}"));
                false
            }
        }
    }

    /// Empties the sink (a fresh start).
    pub fn reset_sink(&mut self) {
        if !self.sink.is_empty() {
            self.sink = Sink::default();
            self.sink_dirty = true;
        }
    }

    pub fn crashed_msg(&mut self, now: i64) {
        self.say(
            now,
            "error",
            "The pipeline has crashed: there is nothing in memory to run. Press Restore.",
        );
    }

    /// Writes one event's outputs (`(record, is late)`) to the sink; returns the
    /// (results, late) counts.
    pub fn emit(&mut self, lines: Vec<(SinkLine, bool)>) -> (usize, usize) {
        let late = lines.iter().filter(|(_, late)| *late).count();
        let results = lines.len() - late;
        if !lines.is_empty() {
            self.sink_dirty = true;
        }
        for (line, _) in lines {
            self.sink.push(line);
        }
        self.coord.note_events(1);
        (results, late)
    }

    /// True if an automatic checkpoint is due.
    pub fn auto_due(&self, now: i64) -> bool {
        self.auto_every.is_some() && self.coord.due(now)
    }

    /// Saves the sink before a checkpoint; on failure, the reason not to take it.
    pub fn before_checkpoint(&mut self, now: i64) -> Result<(), String> {
        if self.save_sink(now) {
            return Ok(());
        }
        self.coord.postpone(now);
        Err("the sink's output could not be saved, so no checkpoint was taken (it would point past the saved output)".into())
    }

    /// What a checkpoint at `offset` came to, in words.
    pub fn after_checkpoint(
        &mut self,
        now: i64,
        offset: u64,
        result: Result<CheckpointInfo, CoordinatorError>,
    ) -> Result<String, String> {
        self.store_notes(now);
        match result {
            Ok(info) => {
                let mut msg = format!(
                    "Checkpoint #{} saved at offset {offset}: {} ({}, {}).",
                    info.id,
                    info.name,
                    size_label(info.size),
                    info.codec
                );
                if !info.deleted.is_empty() {
                    msg.push_str(&format!(
                        " Kept the newest {KEEP}; deleted {}.",
                        info.deleted.join(", ")
                    ));
                }
                Ok(msg)
            }
            Err(e) => {
                self.coord.postpone(now);
                Err(coordinator_error(&e))
            }
        }
    }

    fn restore_prefix(on_load: bool, was_live: bool) -> &'static str {
        if on_load {
            "Page loaded: "
        } else if was_live {
            "Dropped the in-memory pipeline and "
        } else {
            ""
        }
    }

    /// A checkpoint was recovered: cuts the sink back to what it saw and says so, with
    /// what the restore changed (`changes`: stages migrated, new, dropped). Returns the
    /// offset to read on from.
    pub fn restored(
        &mut self,
        now: i64,
        (on_load, was_live): (bool, bool),
        (header, name): (&Header, &str),
        warnings: &[String],
        changes: &[String],
    ) -> u64 {
        let pos = |k: &str| header.positions.get(k).copied().unwrap_or(0);
        let offset = pos("source.offset");
        let out_len = pos("output.len");
        for w in warnings {
            self.note(now, "warn", format!("detected: {w}"));
        }
        let prefix = Self::restore_prefix(on_load, was_live);
        let mut msg = format!(
            "{}{} checkpoint #{} ({}, taken {} UTC): offset {offset}, watermark {}.",
            prefix,
            if prefix.is_empty() || on_load {
                "Restored"
            } else {
                "restored"
            },
            header.checkpoint_id,
            name,
            hms(header.timestamp),
            when(header.watermark)
        );
        if !warnings.is_empty() {
            msg.push_str(&format!(" Detected: {}", warnings.join("; ")));
            msg.push('.');
        }
        for c in changes {
            msg.push_str(&format!(" Upgrade: {c}."));
        }
        if self.sink.len() > out_len {
            self.sink.truncate(out_len);
            self.sink_dirty = true;
        } else if self.sink.len() < out_len {
            self.note(
                now,
                "warn",
                format!(
                    "the sink holds {} records but the checkpoint saw {out_len}: some output was lost",
                    self.sink.len()
                ),
            );
        }
        if self.read_upto > offset {
            msg.push_str(&format!(
                " Events {offset}–{} will be read again: the source gives the same events at the same offsets.",
                self.read_upto - 1
            ));
        }
        let level = if warnings.is_empty() { "ok" } else { "warn" };
        self.say(now, level, msg);
        offset
    }

    /// There was no checkpoint: the pipeline starts empty.
    pub fn nothing_to_restore(&mut self, now: i64, on_load: bool) {
        let msg = if on_load {
            "Page loaded: no checkpoint in localStorage yet, so the pipeline starts empty at offset 0."
        } else {
            "No checkpoint to restore: started a new, empty pipeline at offset 0."
        };
        self.say(now, "info", msg);
    }

    /// Recovery failed. On page load the pipeline starts empty (with new checkpoint ids);
    /// otherwise nothing is loaded.
    pub fn restore_failed(&mut self, now: i64, on_load: bool, e: &CoordinatorError) {
        let why = coordinator_error(e);
        if on_load {
            self.coord.skip_existing_ids();
            self.say(
                now,
                "error",
                format!("Page loaded: {why}. Started a new, empty pipeline at offset 0."),
            );
        } else {
            self.say(
                now,
                "error",
                format!("Nothing was loaded: {why}. Clear storage and press Restore to start from scratch."),
            );
        }
    }

    /// Says what `generate` did.
    pub fn generated(
        &mut self,
        now: i64,
        (from, n): (u64, u64),
        counts: (usize, usize),
        autos: &[String],
    ) {
        let (results, late) = counts;
        let to = from + n;
        let mut msg = format!(
            "Read {n} events (offset {from} → {to}): {results} results emitted{}.",
            if late > 0 {
                format!(", {late} late")
            } else {
                String::new()
            }
        );
        if let Some(last) = autos.last() {
            msg.push_str(&format!(
                " {} automatic checkpoint{}; last: {last}",
                autos.len(),
                if autos.len() == 1 { "" } else { "s" }
            ));
        }
        self.say(now, "info", msg);
    }

    /// Says what a crash dropped (the offset it was at, if it was running).
    pub fn crashed(&mut self, now: i64, offset: Option<u64>) {
        match offset {
            Some(offset) => self.say(
                now,
                "error",
                format!(
                    "Crashed at offset {offset}: the pipeline in memory is gone (state, windows, watermark, offset). \
                     The checkpoints in localStorage are not. Press Restore."
                ),
            ),
            None => self.say(now, "error", "Already crashed: press Restore."),
        }
    }

    pub fn corrupt_latest(&mut self, now: i64) {
        self.form_error = None;
        let listed = self.coord.inspect().unwrap_or_default();
        let latest = self.coord.latest().ok().flatten().map(|m| m.file);
        let target = listed
            .iter()
            .find(|l| Some(&l.name) == latest.as_ref() && l.header.is_ok())
            .or_else(|| listed.iter().rev().find(|l| l.header.is_ok()))
            .map(|l| l.name.clone());
        let Some(name) = target else {
            return self.say(
                now,
                "error",
                "There is no valid checkpoint to corrupt: take one first.",
            );
        };
        let bytes = match self.coord.store().get(&name) {
            Ok(b) => b,
            Err(e) => return self.say(now, "error", format!("Cannot read {name}: {e}")),
        };
        let (garbled, how) = garble(&bytes);
        match self.coord.store_mut().put(&name, &garbled) {
            Ok(()) => self.say(
                now,
                "warn",
                format!("Corrupted {name}: {how}. Press Restore: recovery will detect it and fall back to the previous checkpoint."),
            ),
            Err(e) => self.say(now, "error", format!("Cannot corrupt {name}: {e}")),
        }
    }

    pub fn clear_storage(&mut self, now: i64) {
        self.form_error = None;
        let n = self.coord.store().list().map(|l| l.len()).unwrap_or(0);
        match self.coord.store_mut().clear_checkpoints() {
            Ok(()) => {
                let msg = format!(
                    "Deleted {n} checkpoint{} and the latest record of `{}` from localStorage. The pipeline in memory is untouched.",
                    if n == 1 { "" } else { "s" },
                    self.about.instance
                );
                self.say(now, "info", msg)
            }
            Err(e) => self.say(now, "error", format!("Cannot clear storage: {e}")),
        }
    }

    /// The manual form's fields were wrong: nothing is sent.
    pub fn form_rejected(&mut self, now: i64, e: FieldError) {
        let msg = format!("Not sent: {e}. Nothing changed.");
        self.form_error = Some(e);
        self.say(now, "error", msg);
    }

    /// Says what an event sent by hand did.
    pub fn sent(&mut self, now: i64, shown: &str, sent: (u64, usize, usize, Option<String>)) {
        let (offset, results, late, auto) = sent;
        let mut msg = format!("Sent {shown} at offset {offset}");
        if late > 0 {
            msg.push_str(
                ": it is late (its window already closed), so it went to the late output.",
            );
        } else if results > 0 {
            msg.push_str(&format!(
                ": it moved the watermark, and {results} results were emitted."
            ));
        } else {
            msg.push('.');
        }
        if let Some(a) = auto {
            msg.push_str(&format!(" {a}"));
        }
        self.say(now, "info", msg);
    }

    pub fn nothing_late_yet(&mut self, now: i64) {
        self.say(
            now,
            "error",
            "Nothing can be late yet: generate some events first, so the watermark moves.",
        );
    }

    /// Says what the late button's event at `ts` did.
    pub fn sent_late(&mut self, now: i64, offset: u64, ts: i64, late: bool) {
        let msg = if late {
            format!(
                "Sent a late event at offset {offset}: ts {} is {} behind the watermark, its windows had closed, so it went to the late output (never silently dropped).",
                when(ts),
                ms_label(self.about.late_by_ms)
            )
        } else {
            format!(
                "Sent an old event at offset {offset} (ts {}); no window had closed for it.",
                when(ts)
            )
        };
        self.say(now, "warn", msg);
    }

    pub fn send_malformed(&mut self, now: i64, offset: Option<u64>) {
        self.form_error = None;
        let line = MALFORMED[self.malformed_next % MALFORMED.len()];
        self.malformed_next += 1;
        match parse_json_line(line) {
            Ok(_) => self.say(now, "error", format!("bug: {line} parsed")),
            Err(error) => {
                let offset = offset.map_or("none (crashed)".to_string(), |o| o.to_string());
                self.dead_letters.push(DeadLetter {
                    t: now,
                    line: line.to_string(),
                    error: error.clone(),
                });
                self.say(
                    now,
                    "error",
                    format!("Rejected malformed event {line}: {error}. Nothing changed (offset still {offset}); it is in the dead letters."),
                );
            }
        }
    }

    pub fn set_auto(&mut self, every: Option<u64>, now: i64) {
        let every = every.filter(|&n| n > 0);
        self.auto_every = every;
        self.coord.config_mut().every_events = every;
        match every {
            Some(n) => self.say(
                now,
                "info",
                format!("Automatic checkpoints every {n} events: on."),
            ),
            None => self.say(now, "info", "Automatic checkpoints: off."),
        }
    }

    pub fn set_codec(&mut self, codec: Codec, now: i64) {
        self.codec = codec;
        self.coord.config_mut().codec = codec;
        let how = self.coord.store().stored_as(codec);
        self.say(
            now,
            "info",
            format!("New checkpoints use the {codec} codec (stored as {how})."),
        );
    }
}

//! One gallery pipeline's life in the playground: read events, checkpoint, crash,
//! restore, corrupt, and compare with a run that never crashed.
//!
//! Everything goes through the runtime as a real program would: checkpoints are taken
//! and recovered by the [`Coordinator`] over a [`CheckpointStore`] (localStorage in the
//! browser, [`MemoryPlayStore`] in native tests). The engine itself is plain Rust, so the
//! whole crash-and-restore story is unit-tested natively below.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use simplestream::coordinator::{id_from_name, CoordinatorError};
use simplestream::envelope;
use simplestream::store::{StoreError, StoreErrorKind, StoredEntry};
use simplestream::{
    CheckpointStore, Codec, Coordinator, CoordinatorConfig, MemoryStore, OutputRecord, Pipeline,
};

use crate::diagram::diagram;
use crate::gallery::{dsl_region, AllOrders, Demo, Order, Orders, PaidSales, Sessions, SlidingTop};
use crate::source::{parse_json_line, parse_manual, FieldError, Topic, BASE_TS, MALFORMED};
use crate::tables::table;
use crate::text::{hms, ms_label, size_label, when};

/// Checkpoints kept per pipeline (older ones are deleted after each checkpoint).
pub const KEEP: usize = 5;
/// Seed of every pipeline's source.
pub const SEED: u64 = 42;
/// Most events one "generate" may read.
pub const MAX_GENERATE: u64 = 100_000;
const LOG_LINES: usize = 200;
const SHOWN_OUTPUTS: usize = 30;

/// A checkpoint store the playground can use: the runtime's [`CheckpointStore`], plus a
/// place for the source's hand-written events and the sink's output (which live outside
/// the pipeline and survive its crashes), and a way to delete everything.
pub trait PlayStore: CheckpointStore + Clone + 'static {
    /// Reads a side record (`source.json`, `output.jsonl`).
    fn get_extra(&self, key: &str) -> Option<String>;
    /// Writes a side record.
    fn put_extra(&mut self, key: &str, value: &str) -> Result<(), StoreError>;
    /// Deletes every checkpoint and the `latest` record (not the side records).
    fn clear_checkpoints(&mut self) -> Result<(), StoreError>;
    /// Things the store did on its own since the last call (e.g. pruned old checkpoints
    /// to make room), for the log.
    fn take_notes(&mut self) -> Vec<String> {
        Vec::new()
    }
    /// How a checkpoint of this codec is kept, for the checkpoint list.
    fn stored_as(&self, codec: Codec) -> &'static str {
        let _ = codec;
        "bytes"
    }
    /// Storage used and available, for display.
    fn usage(&self) -> Option<String> {
        None
    }
}

/// A [`PlayStore`] in memory: for native tests. Cloning it copies it, so a clone handed
/// to a new [`Lab`] is what a reloaded page would find.
#[derive(Debug, Clone, Default)]
pub struct MemoryPlayStore {
    /// The checkpoints.
    pub checkpoints: MemoryStore,
    /// The side records.
    pub extra: BTreeMap<String, String>,
}

impl CheckpointStore for MemoryPlayStore {
    fn location(&self) -> String {
        self.checkpoints.location()
    }
    fn put(&mut self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        self.checkpoints.put(name, bytes)
    }
    fn get(&self, name: &str) -> Result<Vec<u8>, StoreError> {
        self.checkpoints.get(name)
    }
    fn list(&self) -> Result<Vec<StoredEntry>, StoreError> {
        self.checkpoints.list()
    }
    fn delete(&mut self, name: &str) -> Result<(), StoreError> {
        self.checkpoints.delete(name)
    }
    fn put_latest(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        self.checkpoints.put_latest(bytes)
    }
    fn get_latest(&self) -> Result<Option<Vec<u8>>, StoreError> {
        self.checkpoints.get_latest()
    }
}

impl PlayStore for MemoryPlayStore {
    fn get_extra(&self, key: &str) -> Option<String> {
        self.extra.get(key).cloned()
    }
    fn put_extra(&mut self, key: &str, value: &str) -> Result<(), StoreError> {
        self.extra.insert(key.to_string(), value.to_string());
        Ok(())
    }
    fn clear_checkpoints(&mut self) -> Result<(), StoreError> {
        self.checkpoints = MemoryStore::new();
        Ok(())
    }
}

/// Side record: the events written into the source by hand.
pub const SOURCE_KEY: &str = "source.json";
/// Side record: the sink's output, one JSON line per record, after a first line
/// `{"first":N}` saying how many older records were compacted away.
pub const OUTPUT_KEY: &str = "output.jsonl";
/// Records the sink keeps (older ones are compacted away, like a log's retention).
pub const SINK_KEEP: usize = 2000;

/// What the page drives: one gallery pipeline, whatever its type.
pub trait LabApi {
    /// Instance name (`orders`, `sliding`, `sessions`, `global`, `join`).
    fn instance(&self) -> &'static str;
    /// Menu title.
    fn title(&self) -> &'static str;
    /// Page load: restores the latest checkpoint if there is one, else starts at offset 0.
    fn start(&mut self, now_ms: i64);
    /// Reads the next `n` events from the source.
    fn generate(&mut self, n: u64, now_ms: i64);
    /// Takes a checkpoint now.
    fn checkpoint(&mut self, now_ms: i64);
    /// Drops the in-memory pipeline (and its coordinator), as a crash would.
    fn crash(&mut self, now_ms: i64);
    /// Restores the latest valid checkpoint through `Coordinator::recover`.
    fn restore(&mut self, now_ms: i64);
    /// Garbles the latest checkpoint (one character), so the next restore falls back.
    fn corrupt_latest(&mut self, now_ms: i64);
    /// Deletes every checkpoint of this pipeline.
    fn clear_storage(&mut self, now_ms: i64);
    /// Sends an event typed into the form (fields as typed; empty `ts`: just after the
    /// latest event).
    fn send_manual(&mut self, customer: &str, amount: &str, ts: &str, now_ms: i64);
    /// Sends an event whose window has already closed.
    fn send_late(&mut self, now_ms: i64);
    /// Sends a malformed JSON line: rejected, naming the field; nothing changes.
    fn send_malformed(&mut self, now_ms: i64);
    /// Automatic checkpoints every `every` events, or off.
    fn set_auto(&mut self, every: Option<u64>, now_ms: i64);
    /// Codec of the next checkpoints.
    fn set_codec(&mut self, codec: Codec, now_ms: i64);
    /// Everything the page shows.
    fn view(&mut self, now_ms: i64) -> Value;
    /// One stored checkpoint, as JSON (binary ones decoded), or why it cannot be read.
    fn checkpoint_view(&self, name: &str) -> Value;
    /// The source offset, `None` after a crash.
    fn offset(&self) -> Option<u64>;
    /// The selected pipeline's main state (its first stateful stage) as compact JSON.
    fn state_json(&self) -> String;
    /// Whether the live state equals a never-crashed run's up to the same offset.
    fn reference_match(&mut self) -> Option<bool>;
}

/// The gallery's pipelines over stores made by `store` (given each instance name).
pub fn gallery_labs<S: PlayStore>(store: impl Fn(&'static str) -> S) -> Vec<Box<dyn LabApi>> {
    vec![
        Box::new(Lab::<Orders, S>::new(store(Orders::INSTANCE))),
        Box::new(Lab::<SlidingTop, S>::new(store(SlidingTop::INSTANCE))),
        Box::new(Lab::<Sessions, S>::new(store(Sessions::INSTANCE))),
        Box::new(Lab::<AllOrders, S>::new(store(AllOrders::INSTANCE))),
        Box::new(Lab::<PaidSales, S>::new(store(PaidSales::INSTANCE))),
    ]
}

/// One output record, as the sink keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SinkLine {
    /// Sink name, or `late`.
    pub sink: String,
    /// The record's JSON.
    pub record: Value,
}

/// The sink: every output record, in order; only the newest [`SINK_KEEP`] are kept.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sink {
    /// Records compacted away before `rows[0]`.
    pub first: u64,
    /// The kept records.
    pub rows: Vec<SinkLine>,
}

impl Sink {
    /// Records ever written (what a checkpoint saves as `output.len`).
    pub fn len(&self) -> u64 {
        self.first + self.rows.len() as u64
    }

    /// True when nothing was ever written.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn push(&mut self, line: SinkLine) {
        self.rows.push(line);
        if self.rows.len() >= SINK_KEEP + SINK_KEEP / 4 {
            let drop = self.rows.len() - SINK_KEEP;
            self.rows.drain(..drop);
            self.first += drop as u64;
        }
    }

    /// Cuts the sink back to `len` records (a restore to a checkpoint's `output.len`).
    fn truncate(&mut self, len: u64) {
        if len >= self.first {
            self.rows.truncate((len - self.first) as usize);
        } else {
            self.rows.clear();
            self.first = len;
        }
    }

    /// Same length, and the same records where both still have them.
    pub fn same_as(&self, other: &Sink) -> bool {
        if self.len() != other.len() {
            return false;
        }
        let from = self.first.max(other.first);
        let a = &self.rows[(from - self.first) as usize..];
        let b = &other.rows[(from - other.first) as usize..];
        a == b
    }

    fn to_text(&self) -> String {
        let mut text = format!("{{\"first\":{}}}\n", self.first);
        for l in &self.rows {
            text.push_str(&serde_json::to_string(l).unwrap_or_default());
            text.push('\n');
        }
        text
    }

    fn from_text(text: &str) -> Sink {
        let mut sink = Sink::default();
        for (i, l) in text.lines().enumerate() {
            if i == 0 {
                if let Ok(v) = serde_json::from_str::<Value>(l) {
                    if let Some(first) = v.get("first").and_then(Value::as_u64) {
                        sink.first = first;
                        continue;
                    }
                }
            }
            if let Ok(line) = serde_json::from_str(l) {
                sink.rows.push(line);
            }
        }
        sink
    }
}

#[derive(Debug, Clone, Serialize)]
struct LogLine {
    t: i64,
    level: &'static str,
    msg: String,
}

#[derive(Debug, Clone, Serialize)]
struct DeadLetter {
    t: i64,
    line: String,
    error: String,
}

struct Live<P> {
    pipeline: P,
    offset: u64,
}

struct Reference<P> {
    pipeline: P,
    offset: u64,
    sink: Sink,
}

impl<P: Pipeline> Reference<P> {
    fn new() -> Self {
        Reference {
            pipeline: P::new(),
            offset: 0,
            sink: Sink::default(),
        }
    }
}

/// One gallery pipeline and everything around it.
pub struct Lab<P: Demo, S: PlayStore> {
    coord: Coordinator<S>,
    live: Option<Live<P>>,
    reference: Reference<P>,
    topic: Topic,
    sink: Sink,
    sink_dirty: bool,
    auto_every: Option<u64>,
    codec: Codec,
    read_upto: u64,
    log: Vec<LogLine>,
    status: LogLine,
    form_error: Option<FieldError>,
    dead_letters: Vec<DeadLetter>,
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

fn positions(offset: u64, sink_len: u64) -> BTreeMap<String, u64> {
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

impl<P: Demo, S: PlayStore> Lab<P, S> {
    /// A lab over `store`, crashed until [`start`](LabApi::start) (reads the side records
    /// now: the source's hand-written events and the sink's output).
    pub fn new(store: S) -> Self {
        let topic = store
            .get_extra(SOURCE_KEY)
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_else(|| Topic::new(SEED));
        let sink = store
            .get_extra(OUTPUT_KEY)
            .map(|t| Sink::from_text(&t))
            .unwrap_or_default();
        Lab {
            coord: Coordinator::new(store, Self::config(None, Codec::Json)),
            live: None,
            reference: Reference::new(),
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

    /// The store.
    pub fn store(&self) -> &S {
        self.coord.store()
    }

    /// The store, mutably (tests use it to simulate damage).
    pub fn store_mut(&mut self) -> &mut S {
        self.coord.store_mut()
    }

    /// The live pipeline, `None` after a crash.
    pub fn pipeline(&self) -> Option<&P> {
        self.live.as_ref().map(|l| &l.pipeline)
    }

    /// The sink's records.
    pub fn sink(&self) -> &Sink {
        &self.sink
    }

    /// The last status message and its level (`ok`, `info`, `warn`, `error`).
    pub fn status(&self) -> (&str, &str) {
        (self.status.level, &self.status.msg)
    }

    fn note(&mut self, now: i64, level: &'static str, msg: impl Into<String>) {
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
    fn say(&mut self, now: i64, level: &'static str, msg: impl Into<String>) {
        let msg = msg.into();
        self.note(now, level, msg.clone());
        self.status = LogLine { t: now, level, msg };
    }

    fn store_notes(&mut self, now: i64) {
        for n in self.coord.store_mut().take_notes() {
            self.note(now, "warn", n);
        }
    }

    fn save_topic(&mut self, now: i64) -> bool {
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

    fn save_sink(&mut self, now: i64) -> bool {
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

    fn crashed_msg(&mut self, now: i64) {
        self.say(
            now,
            "error",
            "The pipeline has crashed: there is nothing in memory to run. Press Restore.",
        );
    }

    /// Reads one event from the source at the live offset. Returns (results, late) counts
    /// and the auto-checkpoint taken, if any.
    fn read_one(&mut self, now: i64) -> (usize, usize, Option<String>) {
        let Some(live) = self.live.as_mut() else {
            return (0, 0, None);
        };
        let event = self.topic.event::<P>(live.offset);
        let mut outs: Vec<P::Output> = Vec::new();
        live.pipeline.process(event, &mut outs);
        live.offset += 1;
        self.read_upto = self.read_upto.max(live.offset);
        let (mut results, mut late) = (0, 0);
        for o in &outs {
            if o.is_late() {
                late += 1;
            } else {
                results += 1;
            }
            self.sink.push(SinkLine {
                sink: o.sink().to_string(),
                record: simplestream::codec::to_json_value(o).unwrap_or(Value::Null),
            });
        }
        if !outs.is_empty() {
            self.sink_dirty = true;
        }
        self.coord.note_events(1);
        let mut auto = None;
        if self.auto_every.is_some() && self.coord.due(now) {
            match self.take_checkpoint(now) {
                Ok(name) => auto = Some(name),
                Err(e) => self.note(now, "error", format!("automatic checkpoint failed: {e}")),
            }
        }
        (results, late, auto)
    }

    /// Saves the sink, then checkpoints the live pipeline. On failure nothing changed and
    /// the previous checkpoint stays the latest.
    fn take_checkpoint(&mut self, now: i64) -> Result<String, String> {
        if !self.save_sink(now) {
            self.coord.postpone(now);
            return Err("the sink's output could not be saved, so no checkpoint was taken (it would point past the saved output)".into());
        }
        let Some(live) = self.live.as_ref() else {
            return Err("the pipeline has crashed: nothing to checkpoint".into());
        };
        let pos = positions(live.offset, self.sink.len());
        let offset = live.offset;
        let result = self.coord.checkpoint(&live.pipeline, pos, now);
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

    /// Restores through the coordinator. `on_load`: the page was (re)loaded.
    fn recover(&mut self, now: i64, on_load: bool) {
        let was_live = self.live.take().is_some();
        // A new process: a new coordinator over the same storage.
        let store = self.coord.store().clone();
        self.coord = Coordinator::new(store, Self::config(self.auto_every, self.codec));
        let prefix = if on_load {
            "Page loaded: "
        } else if was_live {
            "Dropped the in-memory pipeline and "
        } else {
            ""
        };
        match self.coord.recover::<P>() {
            Ok(Some(r)) => {
                let pos = |k: &str| r.header.positions.get(k).copied().unwrap_or(0);
                let offset = pos("source.offset");
                let out_len = pos("output.len");
                for w in &r.warnings {
                    self.note(now, "warn", format!("detected: {w}"));
                }
                let mut msg = format!(
                    "{}{} checkpoint #{} ({}, taken {} UTC): offset {offset}, watermark {}.",
                    prefix,
                    if prefix.is_empty() || on_load {
                        "Restored"
                    } else {
                        "restored"
                    },
                    r.header.checkpoint_id,
                    r.name,
                    hms(r.header.timestamp),
                    when(r.header.watermark)
                );
                if !r.warnings.is_empty() {
                    msg.push_str(&format!(" Detected: {}", r.warnings.join("; ")));
                    msg.push('.');
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
                self.live = Some(Live {
                    pipeline: r.pipeline,
                    offset,
                });
                let level = if r.warnings.is_empty() { "ok" } else { "warn" };
                self.say(now, level, msg);
            }
            Ok(None) => {
                self.start_fresh();
                let msg = if on_load {
                    "Page loaded: no checkpoint in localStorage yet, so the pipeline starts empty at offset 0."
                } else {
                    "No checkpoint to restore: started a new, empty pipeline at offset 0."
                };
                self.say(now, "info", msg);
            }
            Err(e) => {
                let why = coordinator_error(&e);
                if on_load {
                    self.coord.skip_existing_ids();
                    self.start_fresh();
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
        }
        self.save_sink(now);
    }

    fn start_fresh(&mut self) {
        self.live = Some(Live {
            pipeline: P::new(),
            offset: 0,
        });
        if !self.sink.is_empty() {
            self.sink = Sink::default();
            self.sink_dirty = true;
        }
    }

    /// Brings the never-crashed reference run to the live offset.
    fn sync_reference(&mut self) {
        let Some(live) = &self.live else { return };
        if self.reference.offset > live.offset {
            self.reference = Reference::new();
        }
        while self.reference.offset < live.offset {
            let ev = self.topic.event::<P>(self.reference.offset);
            let mut outs: Vec<P::Output> = Vec::new();
            self.reference.pipeline.process(ev, &mut outs);
            self.reference.offset += 1;
            for o in &outs {
                self.reference.sink.push(SinkLine {
                    sink: o.sink().to_string(),
                    record: simplestream::codec::to_json_value(o).unwrap_or(Value::Null),
                });
            }
        }
    }

    fn compare_reference(&mut self) -> Option<(bool, bool)> {
        self.sync_reference();
        let live = self.live.as_ref()?;
        let encode = |p: &P| {
            let mut b = Vec::new();
            p.encode_stages(Codec::Json, &mut b).map(|()| b).ok()
        };
        let state = encode(&live.pipeline) == encode(&self.reference.pipeline)
            && live.pipeline.clock() == self.reference.pipeline.clock();
        let output = self.sink.same_as(&self.reference.sink);
        Some((state, output))
    }

    /// Writes an event into the source at the live offset and reads it.
    fn send(&mut self, now: i64, order: Order) -> Option<(u64, usize, usize, Option<String>)> {
        let offset = self.live.as_ref()?.offset;
        self.topic.write(offset, order);
        if self.reference.offset > offset {
            self.reference = Reference::new();
        }
        if !self.save_topic(now) {
            self.topic.written.remove(&offset);
            self.say(
                now,
                "error",
                "Not sent: the source could not save the event.",
            );
            return None;
        }
        let (results, late, auto) = self.read_one(now);
        Some((offset, results, late, auto))
    }

    /// Each stateful stage's state as a table laid out by the plan, and as JSON.
    fn stage_views(&self) -> Vec<Value> {
        P::PLAN
            .stateful_stages()
            .map(|stage| {
                let json = self
                    .live
                    .as_ref()
                    .and_then(|l| l.pipeline.stage_json(stage.name))
                    .unwrap_or(Value::Null);
                let t = table(stage, &json);
                json!({
                    "name": stage.name,
                    "what": t.what,
                    "stage_watermark": t.watermark.map(when),
                    "header": t.header,
                    "rows": t.rows,
                    "label_cols": t.label_cols,
                    "json": serde_json::to_string_pretty(&json).unwrap_or_default(),
                })
            })
            .collect()
    }

    fn checkpoint_list(&self) -> Vec<Value> {
        let listed = match self.coord.inspect() {
            Ok(l) => l,
            Err(e) => {
                return vec![
                    json!({"name": format!("cannot list checkpoints: {e}"), "valid": false}),
                ]
            }
        };
        listed
            .into_iter()
            .rev()
            .map(|l| {
                let codec = l.codec.unwrap_or(if l.name.ends_with(".bin") {
                    Codec::Binary
                } else {
                    Codec::Json
                });
                let (time, offset, error) = match &l.header {
                    Ok(h) => (
                        hms(h.timestamp),
                        h.positions.get("source.offset").copied(),
                        None,
                    ),
                    Err(e) => {
                        // The name holds the time: checkpoint_20241201_140000_123-000042.json
                        let t = l
                            .name
                            .get(20..26)
                            .map(|s| format!("{}:{}:{}", &s[0..2], &s[2..4], &s[4..6]))
                            .unwrap_or_default();
                        (t, None, Some(e.clone()))
                    }
                };
                json!({
                    "name": l.name,
                    "id": id_from_name(&l.name),
                    "time": time,
                    "size": l.size,
                    "size_label": size_label(l.size),
                    "codec": codec.to_string(),
                    "stored_as": self.coord.store().stored_as(codec),
                    "valid": error.is_none(),
                    "error": error,
                    "is_latest": l.is_latest,
                    "offset": offset,
                })
            })
            .collect()
    }

    fn outputs_view(&self, late: bool) -> Value {
        let all: Vec<&SinkLine> = self
            .sink
            .rows
            .iter()
            .filter(|l| (l.sink == "late") == late)
            .collect();
        let shown: Vec<String> = all
            .iter()
            .rev()
            .take(SHOWN_OUTPUTS)
            .map(|l| l.record.to_string())
            .collect();
        json!({"total": all.len(), "last": shown, "compacted": self.sink.first})
    }
}

impl<P: Demo, S: PlayStore> LabApi for Lab<P, S> {
    fn instance(&self) -> &'static str {
        P::INSTANCE
    }

    fn title(&self) -> &'static str {
        P::TITLE
    }

    fn start(&mut self, now: i64) {
        self.recover(now, true);
    }

    fn generate(&mut self, n: u64, now: i64) {
        self.form_error = None;
        let Some(from) = self.live.as_ref().map(|l| l.offset) else {
            return self.crashed_msg(now);
        };
        let n = n.min(MAX_GENERATE);
        let (mut results, mut late, mut autos) = (0, 0, Vec::new());
        for _ in 0..n {
            let (r, l, a) = self.read_one(now);
            results += r;
            late += l;
            autos.extend(a);
        }
        self.save_sink(now);
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

    fn checkpoint(&mut self, now: i64) {
        self.form_error = None;
        if self.live.is_none() {
            return self.crashed_msg(now);
        }
        match self.take_checkpoint(now) {
            Ok(msg) => self.say(now, "ok", msg),
            Err(e) => self.say(now, "error", format!("Checkpoint failed: {e}")),
        }
    }

    fn crash(&mut self, now: i64) {
        self.form_error = None;
        self.save_sink(now);
        let had = self.live.take();
        // The coordinator is process memory too.
        let store = self.coord.store().clone();
        self.coord = Coordinator::new(store, Self::config(self.auto_every, self.codec));
        match had {
            Some(l) => self.say(
                now,
                "error",
                format!(
                    "Crashed at offset {}: the pipeline in memory is gone (state, windows, watermark, offset). \
                     The checkpoints in localStorage are not. Press Restore.",
                    l.offset
                ),
            ),
            None => self.say(now, "error", "Already crashed: press Restore."),
        }
    }

    fn restore(&mut self, now: i64) {
        self.form_error = None;
        self.recover(now, false);
    }

    fn corrupt_latest(&mut self, now: i64) {
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

    fn clear_storage(&mut self, now: i64) {
        self.form_error = None;
        let n = self.coord.store().list().map(|l| l.len()).unwrap_or(0);
        match self.coord.store_mut().clear_checkpoints() {
            Ok(()) => self.say(
                now,
                "info",
                format!(
                    "Deleted {n} checkpoint{} and the latest record of `{}` from localStorage. The pipeline in memory is untouched.",
                    if n == 1 { "" } else { "s" },
                    P::INSTANCE
                ),
            ),
            Err(e) => self.say(now, "error", format!("Cannot clear storage: {e}")),
        }
    }

    fn send_manual(&mut self, customer: &str, amount: &str, ts: &str, now: i64) {
        let Some(live) = self.live.as_ref() else {
            return self.crashed_msg(now);
        };
        let clock = live.pipeline.clock();
        let default_ts = if clock.max_event_time == i64::MIN {
            BASE_TS
        } else {
            clock.max_event_time + 1000
        };
        let order = match parse_manual(customer, amount, ts, default_ts) {
            Ok(o) => o,
            Err(e) => {
                let msg = format!("Not sent: {e}. Nothing changed.");
                self.form_error = Some(e);
                return self.say(now, "error", msg);
            }
        };
        self.form_error = None;
        let shown = serde_json::to_string(&order).unwrap_or_default();
        if let Some((offset, results, late, auto)) = self.send(now, order) {
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
    }

    fn send_late(&mut self, now: i64) {
        self.form_error = None;
        let Some(live) = self.live.as_ref() else {
            return self.crashed_msg(now);
        };
        let wm = live.pipeline.clock().watermark;
        if wm == i64::MIN {
            return self.say(
                now,
                "error",
                "Nothing can be late yet: generate some events first, so the watermark moves.",
            );
        }
        let order = Order {
            customer: "C001".into(),
            amount: 9.99,
            ts: wm - P::LATE_BY_MS,
        };
        let ts = order.ts;
        if let Some((offset, _, late, _)) = self.send(now, order) {
            let msg = if late > 0 {
                format!(
                    "Sent a late event at offset {offset}: ts {} is {} behind the watermark, its windows had closed, so it went to the late output (never silently dropped).",
                    when(ts),
                    ms_label(P::LATE_BY_MS)
                )
            } else {
                format!(
                    "Sent an old event at offset {offset} (ts {}); no window had closed for it.",
                    when(ts)
                )
            };
            self.say(now, "warn", msg);
        }
    }

    fn send_malformed(&mut self, now: i64) {
        self.form_error = None;
        let line = MALFORMED[self.malformed_next % MALFORMED.len()];
        self.malformed_next += 1;
        match parse_json_line(line) {
            Ok(_) => self.say(now, "error", format!("bug: {line} parsed")),
            Err(error) => {
                let offset = self
                    .live
                    .as_ref()
                    .map_or("none (crashed)".to_string(), |l| l.offset.to_string());
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

    fn set_auto(&mut self, every: Option<u64>, now: i64) {
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

    fn set_codec(&mut self, codec: Codec, now: i64) {
        self.codec = codec;
        self.coord.config_mut().codec = codec;
        let how = self.coord.store().stored_as(codec);
        self.say(
            now,
            "info",
            format!("New checkpoints use the {codec} codec (stored as {how})."),
        );
    }

    fn view(&mut self, now: i64) -> Value {
        let reference = match self.compare_reference() {
            Some((state, output)) => json!({
                "state": if state { "match" } else { "mismatch" },
                "output": if output { "match" } else { "mismatch" },
                "offset": self.reference.offset,
                "outputs": self.reference.sink.len(),
            }),
            None => json!({"state": "n/a", "output": "n/a", "offset": null}),
        };
        let (clock, offset, preview) = match &self.live {
            Some(l) => {
                let c = l.pipeline.clock();
                let preview = envelope::encode(
                    &l.pipeline,
                    Codec::Json,
                    self.coord.next_id(),
                    now,
                    positions(l.offset, self.sink.len()),
                )
                .ok()
                .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
                .and_then(|v| serde_json::to_string_pretty(&v).ok());
                (
                    json!({
                        "max_event_time": when(c.max_event_time),
                        "watermark": when(c.watermark),
                        "watermark_ms": (c.watermark != i64::MIN).then_some(c.watermark),
                    }),
                    Some(l.offset),
                    preview,
                )
            }
            None => (Value::Null, None, None),
        };
        let log: Vec<&LogLine> = self.log.iter().rev().take(LOG_LINES).collect();
        json!({
            "instance": P::INSTANCE,
            "name": P::NAME,
            "title": P::TITLE,
            "blurb": P::BLURB,
            "source_path": P::SOURCE_PATH,
            "dsl": dsl_region(P::SOURCE_FILE),
            "diagram": diagram(P::PLAN),
            "stages_list": P::STAGES,
            "sinks": P::SINKS,
            "crashed": self.live.is_none(),
            "offset": offset,
            "read_upto": self.read_upto,
            "clock": clock,
            "state_json": self.state_json(),
            "stages": self.stage_views(),
            "checkpoint_preview": preview,
            "outputs": self.outputs_view(false),
            "late": self.outputs_view(true),
            "dead_letters": self.dead_letters.iter().rev().take(SHOWN_OUTPUTS).collect::<Vec<_>>(),
            "checkpoints": self.checkpoint_list(),
            "storage": {
                "location": self.coord.store().location(),
                "usage": self.coord.store().usage(),
                "keep": KEEP,
            },
            "auto": {"on": self.auto_every.is_some(), "every": self.auto_every, "since": self.coord.events_since()},
            "codec": self.codec.to_string(),
            "next_id": self.coord.next_id(),
            "reference": reference,
            "status": self.status,
            "form_error": self.form_error,
            "log": log,
            "seed": self.topic.seed,
            "written_events": self.topic.written.len(),
        })
    }

    fn checkpoint_view(&self, name: &str) -> Value {
        let store = self.coord.store();
        let bytes = match store.get(name) {
            Ok(b) => b,
            Err(e) => return json!({"name": name, "error": e.to_string()}),
        };
        let raw = |b: &[u8]| -> String {
            let shown = &b[..b.len().min(4000)];
            if b.first() == Some(&b'{') {
                String::from_utf8_lossy(shown).into_owned()
            } else {
                format!("(binary) {}", crate::b64::encode(shown))
            }
        };
        match envelope::verify(&bytes) {
            Err(e) => json!({"name": name, "error": e.to_string(), "raw": raw(&bytes)}),
            Ok(v) if v.codec == Codec::Json => {
                let pretty = serde_json::from_slice::<Value>(&bytes)
                    .ok()
                    .and_then(|v| serde_json::to_string_pretty(&v).ok());
                json!({"name": name, "json": pretty, "note": format!("JSON checkpoint, {} bytes, stored as text.", bytes.len())})
            }
            Ok(_) => match envelope::decode::<P>(&bytes) {
                Ok((h, p)) => {
                    let pretty = envelope::encode(
                        &p,
                        Codec::Json,
                        h.checkpoint_id,
                        h.timestamp,
                        h.positions,
                    )
                    .ok()
                    .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
                    .and_then(|v| serde_json::to_string_pretty(&v).ok());
                    json!({"name": name, "json": pretty, "note": format!(
                        "Binary checkpoint (postcard), {} bytes, stored as {}; shown decoded, as the JSON checkpoint of the same state.",
                        bytes.len(), store.stored_as(Codec::Binary))})
                }
                Err(e) => json!({"name": name, "error": e.to_string(), "raw": raw(&bytes)}),
            },
        }
    }

    fn offset(&self) -> Option<u64> {
        self.live.as_ref().map(|l| l.offset)
    }

    fn state_json(&self) -> String {
        let main = P::STAGES.first().copied().unwrap_or_default();
        self.live
            .as_ref()
            .and_then(|l| l.pipeline.stage_json(main))
            .map(|v| v.to_string())
            .unwrap_or_else(|| "{}".into())
    }

    fn reference_match(&mut self) -> Option<bool> {
        self.compare_reference().map(|(state, _)| state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type OrdersLab = Lab<Orders, MemoryPlayStore>;

    fn started() -> OrdersLab {
        let mut lab = OrdersLab::new(MemoryPlayStore::default());
        lab.start(1_000);
        lab
    }

    /// A page reload: a new lab over what the old one left in storage.
    fn reload<P: Demo>(lab: &Lab<P, MemoryPlayStore>, now: i64) -> Lab<P, MemoryPlayStore> {
        let mut l = Lab::<P, MemoryPlayStore>::new(lab.store().clone());
        l.start(now);
        l
    }

    #[test]
    fn checkpoint_crash_restore_gives_back_the_state() {
        let mut lab = started();
        assert_eq!(lab.offset(), Some(0));
        assert_eq!(lab.status().1, "Page loaded: no checkpoint in localStorage yet, so the pipeline starts empty at offset 0.");
        lab.generate(100, 2_000);
        lab.checkpoint(3_000);
        assert_eq!(lab.status().0, "ok", "{}", lab.status().1);
        let at_checkpoint = lab.state_json();
        lab.generate(50, 4_000);
        assert_eq!(lab.offset(), Some(150));
        lab.crash(5_000);
        assert_eq!(lab.offset(), None);
        assert_eq!(lab.state_json(), "{}");
        assert_eq!(lab.reference_match(), None);
        lab.restore(6_000);
        assert_eq!(lab.offset(), Some(100));
        assert_eq!(lab.state_json(), at_checkpoint);
        assert!(
            lab.status().1.contains("Events 100–149 will be read again"),
            "{}",
            lab.status().1
        );
        assert_eq!(lab.reference_match(), Some(true));
        lab.generate(50, 7_000);
        assert_eq!(lab.reference_match(), Some(true));
        let v = lab.view(8_000);
        assert_eq!(v["reference"]["output"], "match");
        assert!(
            v["outputs"]["total"].as_u64().unwrap() > 0,
            "windows closed"
        );
        assert!(lab.state_json().starts_with(r#"{"C001":{"count":"#));
    }

    #[test]
    fn reload_restores_the_latest_checkpoint_and_the_sink() {
        let mut lab = started();
        lab.generate(120, 2_000);
        lab.checkpoint(3_000);
        lab.generate(30, 4_000);
        let mut again = reload(&lab, 5_000);
        assert_eq!(again.offset(), Some(120));
        assert!(
            again
                .status()
                .1
                .starts_with("Page loaded: Restored checkpoint #1"),
            "{}",
            again.status().1
        );
        assert_eq!(again.reference_match(), Some(true));
        let v = again.view(6_000);
        assert_eq!(
            v["reference"]["output"], "match",
            "the sink was cut back to the checkpoint"
        );
        again.generate(30, 7_000);
        assert_eq!(again.state_json(), lab.state_json());
        assert_eq!(again.sink(), lab.sink());
    }

    #[test]
    fn corrupt_latest_falls_back_to_the_previous_checkpoint() {
        for codec in [Codec::Json, Codec::Binary] {
            let mut lab = started();
            lab.set_codec(codec, 1_500);
            lab.generate(40, 2_000);
            lab.checkpoint(3_000);
            let first = lab.state_json();
            lab.generate(40, 4_000);
            lab.checkpoint(5_000);
            lab.corrupt_latest(6_000);
            assert_eq!(lab.status().0, "warn", "{}", lab.status().1);
            let v = lab.view(6_500);
            let list = v["checkpoints"].as_array().unwrap();
            assert_eq!(list.len(), 2);
            assert_eq!(list[0]["valid"], false, "{codec}: newest first, corrupt");
            assert!(list[0]["error"]
                .as_str()
                .unwrap()
                .contains("checksum mismatch"));
            lab.restore(7_000);
            let (level, msg) = lab.status();
            assert_eq!(level, "warn");
            assert!(msg.contains("checksum mismatch"), "{msg}");
            assert!(msg.contains("fell back to"), "{msg}");
            assert_eq!(lab.offset(), Some(40));
            assert_eq!(lab.state_json(), first);
            assert_eq!(lab.reference_match(), Some(true));
            // The next checkpoint gets a new id and becomes the latest.
            lab.checkpoint(8_000);
            assert!(
                lab.status().1.contains("Checkpoint #3"),
                "{}",
                lab.status().1
            );
            lab.crash(9_000);
            lab.restore(10_000);
            assert_eq!(lab.status().0, "ok");
        }
    }

    #[test]
    fn nothing_restorable_is_reported_and_loads_nothing() {
        let mut lab = started();
        lab.generate(10, 2_000);
        lab.checkpoint(3_000);
        lab.corrupt_latest(4_000);
        lab.crash(5_000);
        lab.restore(6_000);
        assert_eq!(lab.offset(), None);
        assert!(lab
            .status()
            .1
            .starts_with("Nothing was loaded: no checkpoint can be restored"));
        // On page load it starts from scratch instead, and new ids do not collide.
        let mut again = reload(&lab, 7_000);
        assert_eq!(again.offset(), Some(0));
        again.generate(5, 8_000);
        again.checkpoint(9_000);
        assert!(
            again.status().1.contains("Checkpoint #2"),
            "{}",
            again.status().1
        );
        // Clear storage, then restore: a fresh start.
        lab.clear_storage(10_000);
        lab.restore(11_000);
        assert_eq!(lab.offset(), Some(0));
    }

    #[test]
    fn manual_late_and_malformed_events() {
        let mut lab = started();
        lab.send_late(1_500);
        assert!(lab.status().1.starts_with("Nothing can be late yet"));
        lab.generate(100, 2_000);
        let before = lab.state_json();
        lab.send_malformed(3_000);
        assert!(
            lab.status().1.contains("amount: invalid type"),
            "{}",
            lab.status().1
        );
        assert_eq!(lab.state_json(), before);
        assert_eq!(lab.offset(), Some(100));
        lab.send_manual("C009", "abc", "", 4_000);
        let v = lab.view(4_000);
        assert_eq!(v["form_error"]["field"], "amount");
        assert_eq!(lab.offset(), Some(100));
        lab.send_manual("C009", "12.5", "", 5_000);
        assert_eq!(lab.offset(), Some(101));
        assert!(lab
            .state_json()
            .contains(r#""C009":{"count":1,"amount":12.5}"#));
        lab.send_late(6_000);
        assert!(
            lab.status().1.contains("went to the late output"),
            "{}",
            lab.status().1
        );
        let v = lab.view(6_000);
        assert_eq!(v["late"]["total"], 1);
        assert!(v["late"]["last"][0]
            .as_str()
            .unwrap()
            .starts_with(r#"{"stage":"per_5min""#));
        // Both hand-written events are replayed after a restore from before them.
        lab.checkpoint(7_000);
        let _ = lab;
        let mut lab = started();
        lab.generate(100, 2_000);
        lab.checkpoint(3_000);
        lab.send_manual("C009", "1", "", 4_000);
        lab.send_late(5_000);
        let with = lab.state_json();
        lab.crash(6_000);
        let mut lab = reload(&lab, 7_000);
        lab.generate(2, 8_000);
        assert_eq!(lab.state_json(), with);
        assert_eq!(lab.reference_match(), Some(true));
        assert_eq!(lab.view(9_000)["reference"]["output"], "match");
    }

    #[test]
    fn automatic_checkpoints_and_retention() {
        let mut lab = started();
        lab.set_auto(Some(10), 1_500);
        lab.generate(95, 2_000);
        assert!(
            lab.status().1.contains("9 automatic checkpoints"),
            "{}",
            lab.status().1
        );
        let v = lab.view(3_000);
        assert_eq!(v["checkpoints"].as_array().unwrap().len(), KEEP);
        assert_eq!(v["checkpoints"][0]["offset"], 90);
        assert_eq!(v["checkpoints"][0]["is_latest"], true);
        lab.crash(4_000);
        lab.restore(5_000);
        assert_eq!(lab.offset(), Some(90));
    }

    #[test]
    fn every_gallery_pipeline_survives_crashes_and_shows_tables() {
        fn run<P: Demo>() {
            let mut lab = Lab::<P, MemoryPlayStore>::new(MemoryPlayStore::default());
            lab.start(0);
            for round in 0..4 {
                lab.generate(37 + round * 11, 1_000);
                lab.checkpoint(2_000 + round as i64);
                lab.generate(13, 3_000);
                lab.crash(4_000);
                lab.restore(5_000);
                assert_eq!(lab.reference_match(), Some(true), "{}", P::NAME);
            }
            lab.send_late(6_000);
            assert!(
                lab.status().1.contains("late output"),
                "{}: {}",
                P::NAME,
                lab.status().1
            );
            let v = lab.view(7_000);
            assert_eq!(v["reference"]["output"], "match", "{}", P::NAME);
            assert!(
                v["outputs"]["total"].as_u64().unwrap() > 0,
                "{}: windows closed",
                P::NAME
            );
            let stage = &v["stages"][0];
            assert!(!stage["rows"].as_array().unwrap().is_empty(), "{}", P::NAME);
            let header = stage["header"].as_array().unwrap();
            assert_eq!(header.len(), stage["rows"][0].as_array().unwrap().len());
            assert!(v["checkpoint_preview"]
                .as_str()
                .unwrap()
                .contains("\"checksum\""));
            let name = v["checkpoints"][0]["name"].as_str().unwrap().to_string();
            let shown = lab.checkpoint_view(&name);
            assert!(shown["json"]
                .as_str()
                .unwrap()
                .contains("simplestream-checkpoint"));
        }
        run::<Orders>();
        run::<SlidingTop>();
        run::<Sessions>();
        run::<AllOrders>();
        run::<PaidSales>();
    }

    #[test]
    fn the_join_restores_its_buffers_and_draws_both_inputs() {
        let mut lab = Lab::<PaidSales, MemoryPlayStore>::new(MemoryPlayStore::default());
        lab.start(0);
        lab.generate(60, 1_000);
        lab.checkpoint(2_000);
        let at_checkpoint = lab.view(2_500)["stages"].clone();
        let buffered = |stages: &Value, input: &str| {
            stages[0]["rows"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|r| r[2] == input)
                .count()
        };
        assert!(buffered(&at_checkpoint, "sales") > 0);
        assert!(buffered(&at_checkpoint, "payments") > 0);
        lab.generate(25, 3_000);
        lab.crash(4_000);
        assert_eq!(lab.view(4_500)["stages"][0]["rows"], json!([]));
        lab.restore(5_000);
        assert_eq!(lab.view(5_500)["stages"], at_checkpoint);
        lab.generate(25, 6_000);
        assert_eq!(lab.reference_match(), Some(true));
        // A sale typed by hand is a sale of the join, with its offset as id.
        lab.send_manual("C042", "3.5", "", 7_000);
        let v = lab.view(7_000);
        let rows = v["stages"][0]["rows"].as_array().unwrap();
        assert!(
            rows.iter().any(|r| r[1] == "85"
                && r[2] == "sales"
                && r[3].as_str().unwrap().contains("C042")),
            "{rows:?}"
        );
        let diagram = v["diagram"].as_array().unwrap();
        let join = diagram.iter().find(|n| n["id"] == "same_window").unwrap();
        assert_eq!(join["inputs"], json!(["sales", "payments"]));
        assert_eq!(v["stages_list"], json!(["same_window", "paid_in_5s"]));
    }

    #[test]
    fn the_sink_keeps_its_newest_records_and_still_compares() {
        let mut lab = Lab::<SlidingTop, MemoryPlayStore>::new(MemoryPlayStore::default());
        lab.start(0);
        lab.generate(2_000, 1_000);
        lab.checkpoint(2_000);
        lab.generate(4_000, 3_000);
        let sink = lab.sink();
        assert!(
            sink.first > 0,
            "compacted: {} of {}",
            sink.first,
            sink.len()
        );
        assert!(sink.rows.len() <= SINK_KEEP + SINK_KEEP / 4);
        let v = lab.view(4_000);
        assert_eq!(v["reference"]["output"], "match");
        // Restoring before the compacted records: the replay writes them again.
        let mut again = reload(&lab, 5_000);
        assert_eq!(again.offset(), Some(2_000));
        assert_eq!(again.view(6_000)["reference"]["output"], "match");
        again.generate(4_000, 7_000);
        assert_eq!(again.sink().len(), lab.sink().len());
        assert!(again.sink().same_as(lab.sink()));
        assert_eq!(again.view(8_000)["reference"]["output"], "match");
    }

    #[test]
    fn binary_checkpoints_are_shown_as_json() {
        let mut lab = started();
        lab.set_codec(Codec::Binary, 0);
        lab.generate(20, 1_000);
        lab.checkpoint(2_000);
        let v = lab.view(3_000);
        assert_eq!(v["checkpoints"][0]["codec"], "binary");
        let name = v["checkpoints"][0]["name"].as_str().unwrap().to_string();
        assert!(name.ends_with(".bin"));
        let shown = lab.checkpoint_view(&name);
        assert!(shown["note"]
            .as_str()
            .unwrap()
            .starts_with("Binary checkpoint"));
        assert!(shown["json"]
            .as_str()
            .unwrap()
            .contains("\"customer_stats\""));
    }

    #[test]
    fn garble_changes_exactly_one_byte_and_is_detected() {
        let mut lab = started();
        lab.generate(30, 1_000);
        let p = lab.pipeline().unwrap();
        for codec in [Codec::Json, Codec::Binary] {
            let bytes = envelope::encode(p, codec, 1, 0, BTreeMap::new()).unwrap();
            let (g, _) = garble(&bytes);
            assert_eq!(g.len(), bytes.len());
            assert_eq!(g.iter().zip(&bytes).filter(|(a, b)| a != b).count(), 1);
            let e = envelope::decode::<Orders>(&g).unwrap_err().to_string();
            assert!(e.contains("checksum mismatch"), "{codec}: {e}");
        }
    }
}

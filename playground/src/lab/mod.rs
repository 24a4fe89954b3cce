//! One gallery pipeline's life in the playground: read events, checkpoint, crash,
//! restore, corrupt, and compare with a run that never crashed.
//!
//! Everything goes through the runtime as a real program would: checkpoints are taken
//! and recovered by the [`Coordinator`](simplestream::Coordinator) over a
//! [`CheckpointStore`](simplestream::CheckpointStore) (localStorage in the browser,
//! [`MemoryPlayStore`] in native tests). The engine itself is plain Rust, so the whole
//! crash-and-restore story is unit-tested natively (`lab/tests.rs`).
//!
//! [`Lab`] holds what needs the pipeline's type (the live pipeline and the reference
//! run); the rest is in `desk` and `page`, compiled once for all gallery pipelines.

mod desk;
mod page;
mod sink;
mod sql;
mod store;
mod upgrade;

use serde_json::Value;
use simplestream::sql::SqlPipeline;
use simplestream::upgrade::StageAction;
use simplestream::{envelope, Codec, OutputRecord, Pipeline};

use crate::gallery::{AllOrders, Demo, Order, Orders, PaidSales, Sessions, SlidingTop};
use crate::source::{parse_manual, BASE_TS};
use desk::{positions, About, Desk};
use page::Snapshot;

pub use desk::garble;
pub use sink::{Sink, SinkLine, SINK_KEEP};
pub use sql::{SqlLab, QUERY_KEY};
pub use store::{MemoryPlayStore, PlayStore, OUTPUT_KEY, SOURCE_KEY};
pub use upgrade::{
    UpgradeLab, Version, INSTANCE as UPGRADE_INSTANCE, UPGRADED_AT_KEY, VERSION_KEY,
};

/// Checkpoints kept per pipeline (older ones are deleted after each checkpoint).
pub const KEEP: usize = 5;
/// Seed of every pipeline's source.
pub const SEED: u64 = 42;
/// Most events one "generate" may read.
pub const MAX_GENERATE: u64 = 100_000;

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
    /// Runs `text` as the pipeline's query (the SQL editor), from offset 0; false if the
    /// pipeline is compiled and takes no query.
    fn set_query(&mut self, text: &str, now_ms: i64) -> bool {
        let _ = (text, now_ms);
        false
    }
    /// Deploys version `version` of the pipeline (the upgrade lab): the running one
    /// stops and the new one restores the latest checkpoint; false if this pipeline has
    /// no versions.
    fn deploy(&mut self, version: u8, now_ms: i64) -> bool {
        let _ = (version, now_ms);
        false
    }
}

/// The gallery's pipelines over stores made by `store` (given each instance name).
pub fn gallery_labs<S: PlayStore>(store: impl Fn(&'static str) -> S) -> Vec<Box<dyn LabApi>> {
    vec![
        Box::new(Lab::<Orders, S>::new(store(Orders::INSTANCE))),
        Box::new(SqlLab::new(store(SqlPipeline::INSTANCE))),
        Box::new(Lab::<SlidingTop, S>::new(store(SlidingTop::INSTANCE))),
        Box::new(Lab::<Sessions, S>::new(store(Sessions::INSTANCE))),
        Box::new(Lab::<AllOrders, S>::new(store(AllOrders::INSTANCE))),
        Box::new(Lab::<PaidSales, S>::new(store(PaidSales::INSTANCE))),
        Box::new(UpgradeLab::new(store(upgrade::INSTANCE))),
    ]
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

    /// The reference run from `origin` (a checkpoint of another version, decoded into
    /// this one), or from offset 0 without one.
    fn from(origin: Option<&Origin>) -> Self {
        let Some(o) = origin else {
            return Self::new();
        };
        match envelope::decode::<P>(&o.checkpoint) {
            Ok((_, pipeline)) => Reference {
                pipeline,
                offset: o.offset,
                sink: o.sink.clone(),
            },
            Err(_) => Self::new(),
        }
    }
}

/// Where a reference run starts when the live run was upgraded: a never-crashed run of
/// the old version up to `offset`, checkpointed in memory.
pub(crate) struct Origin {
    checkpoint: Vec<u8>,
    offset: u64,
    sink: Sink,
}

/// What the last restore did: its offset and each stage's action (`None`: it started
/// empty at offset 0).
type LastRestore = Option<(u64, Vec<simplestream::upgrade::StageAction>)>;

/// An output record as the sink keeps it, and whether it is late.
fn sink_line<O: OutputRecord>(o: &O) -> (SinkLine, bool) {
    let line = SinkLine {
        sink: o.sink().to_string(),
        record: simplestream::codec::to_json_value(o).unwrap_or(Value::Null),
    };
    (line, o.is_late())
}

/// One gallery pipeline and everything around it.
pub struct Lab<P: Demo, S: PlayStore> {
    desk: Desk<S>,
    live: Option<Live<P>>,
    reference: Reference<P>,
    origin: Option<Origin>,
    last_restore: LastRestore,
}

impl<P: Demo, S: PlayStore> Lab<P, S> {
    /// A lab over `store`, crashed until [`start`](LabApi::start) (reads the side records
    /// now: the source's hand-written events and the sink's output).
    pub fn new(store: S) -> Self {
        Lab {
            desk: Desk::new(About::of::<P>(), store),
            live: None,
            reference: Reference::new(),
            origin: None,
            last_restore: None,
        }
    }

    /// The store.
    pub fn store(&self) -> &S {
        self.desk.coord.store()
    }

    /// The store, mutably (tests use it to simulate damage).
    pub fn store_mut(&mut self) -> &mut S {
        self.desk.coord.store_mut()
    }

    /// The live pipeline, `None` after a crash.
    pub fn pipeline(&self) -> Option<&P> {
        self.live.as_ref().map(|l| &l.pipeline)
    }

    /// Where the reference run starts: a run of another version up to an offset (the
    /// live run was upgraded from its checkpoint there), or offset 0.
    fn set_origin(&mut self, origin: Option<Origin>) {
        self.reference = Reference::from(origin.as_ref());
        self.origin = origin;
    }

    /// The sink's records.
    pub fn sink(&self) -> &Sink {
        &self.desk.sink
    }

    /// The last status message and its level (`ok`, `info`, `warn`, `error`).
    pub fn status(&self) -> (&str, &str) {
        (self.desk.status.level, &self.desk.status.msg)
    }

    /// Reads one event from the source at the live offset. Returns (results, late) counts
    /// and the auto-checkpoint taken, if any.
    fn read_one(&mut self, now: i64) -> (usize, usize, Option<String>) {
        let Some(live) = self.live.as_mut() else {
            return (0, 0, None);
        };
        let event = self.desk.topic.event::<P>(live.offset);
        let mut outs: Vec<P::Output> = Vec::new();
        live.pipeline.process(event, &mut outs);
        live.offset += 1;
        self.desk.read_upto = self.desk.read_upto.max(live.offset);
        let (results, late) = self.desk.emit(outs.iter().map(sink_line).collect());
        let mut auto = None;
        if self.desk.auto_due(now) {
            match self.take_checkpoint(now) {
                Ok(name) => auto = Some(name),
                Err(e) => self
                    .desk
                    .note(now, "error", format!("automatic checkpoint failed: {e}")),
            }
        }
        (results, late, auto)
    }

    /// Saves the sink, then checkpoints the live pipeline. On failure nothing changed and
    /// the previous checkpoint stays the latest.
    fn take_checkpoint(&mut self, now: i64) -> Result<String, String> {
        self.desk.before_checkpoint(now)?;
        let Some(live) = self.live.as_ref() else {
            return Err("the pipeline has crashed: nothing to checkpoint".into());
        };
        let pos = positions(live.offset, self.desk.sink.len());
        let result = self.desk.coord.checkpoint(&live.pipeline, pos, now);
        self.desk.after_checkpoint(now, live.offset, result)
    }

    /// Restores through a new coordinator, as a new process would. `on_load`: the page
    /// was (re)loaded.
    fn recover(&mut self, now: i64, on_load: bool) {
        let was_live = self.live.take().is_some();
        self.desk.new_coordinator();
        match self.desk.coord.recover::<P>() {
            Ok(Some(r)) => {
                let how = (on_load, was_live);
                let changes: Vec<String> = r
                    .actions
                    .iter()
                    .filter(|a| !matches!(a, StageAction::Restore { .. }))
                    .map(|a| a.to_string())
                    .collect();
                let offset =
                    self.desk
                        .restored(now, how, (&r.header, &r.name), &r.warnings, &changes);
                self.last_restore = Some((offset, r.actions));
                self.live = Some(Live {
                    pipeline: r.pipeline,
                    offset,
                });
            }
            Ok(None) => {
                self.start_fresh();
                self.desk.nothing_to_restore(now, on_load);
            }
            Err(e) => {
                if on_load {
                    self.start_fresh();
                }
                self.desk.restore_failed(now, on_load, &e);
            }
        }
        self.desk.save_sink(now);
    }

    fn start_fresh(&mut self) {
        self.last_restore = None;
        self.live = Some(Live {
            pipeline: P::new(),
            offset: 0,
        });
        self.desk.reset_sink();
    }

    /// Brings the never-crashed reference run to the live offset.
    fn sync_reference(&mut self) {
        let Some(live) = &self.live else { return };
        if self.reference.offset > live.offset {
            self.reference = Reference::from(self.origin.as_ref());
        }
        while self.reference.offset < live.offset {
            let ev = self.desk.topic.event::<P>(self.reference.offset);
            let mut outs: Vec<P::Output> = Vec::new();
            self.reference.pipeline.process(ev, &mut outs);
            self.reference.offset += 1;
            for o in &outs {
                self.reference.sink.push(sink_line(o).0);
            }
        }
    }

    /// (state, output): whether the live run matches the reference run.
    fn compare_reference(&mut self) -> Option<(bool, bool)> {
        self.sync_reference();
        let live = self.live.as_ref()?;
        let encode = |p: &P| {
            let mut b = Vec::new();
            p.encode_stages(Codec::Json, &mut b).map(|()| b).ok()
        };
        let state = encode(&live.pipeline) == encode(&self.reference.pipeline)
            && live.pipeline.clock() == self.reference.pipeline.clock();
        let output = self.desk.sink.same_as(&self.reference.sink);
        Some((state, output))
    }

    /// Writes an event into the source at the live offset and reads it.
    fn send(&mut self, now: i64, order: Order) -> Option<(u64, usize, usize, Option<String>)> {
        let offset = self.live.as_ref()?.offset;
        self.desk.topic.write(offset, order);
        if self.reference.offset > offset {
            self.reference = Reference::from(self.origin.as_ref());
        }
        if !self.desk.save_topic(now) {
            self.desk.topic.written.remove(&offset);
            self.desk.say(
                now,
                "error",
                "Not sent: the source could not save the event.",
            );
            return None;
        }
        let (results, late, auto) = self.read_one(now);
        Some((offset, results, late, auto))
    }

    /// What the page shows of the pipelines: read here, drawn by the desk.
    fn snapshot(&mut self, now: i64) -> Snapshot {
        let reference = self
            .compare_reference()
            .map(|(s, o)| (s, o, self.reference.offset, self.reference.sink.len()));
        let next_id = self.desk.coord.next_id();
        let sink_len = self.desk.sink.len();
        let live = self.live.as_ref().map(|l| {
            let pos = positions(l.offset, sink_len);
            let preview = envelope::encode(&l.pipeline, Codec::Json, next_id, now, pos).ok();
            (l.pipeline.clock(), l.offset, preview)
        });
        let stages = P::plan()
            .stateful_stages()
            .map(|s| {
                let json = self
                    .live
                    .as_ref()
                    .and_then(|l| l.pipeline.stage_json(s.name))
                    .map(P::table_json);
                (s, json.unwrap_or(Value::Null))
            })
            .collect();
        Snapshot {
            live,
            reference,
            stages,
            state_json: self.state_json(),
        }
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
        self.desk.form_error = None;
        let Some(from) = self.live.as_ref().map(|l| l.offset) else {
            return self.desk.crashed_msg(now);
        };
        let n = n.min(MAX_GENERATE);
        let (mut results, mut late, mut autos) = (0, 0, Vec::new());
        for _ in 0..n {
            let (r, l, a) = self.read_one(now);
            results += r;
            late += l;
            autos.extend(a);
        }
        self.desk.save_sink(now);
        self.desk.generated(now, (from, n), (results, late), &autos);
    }

    fn checkpoint(&mut self, now: i64) {
        self.desk.form_error = None;
        if self.live.is_none() {
            return self.desk.crashed_msg(now);
        }
        match self.take_checkpoint(now) {
            Ok(msg) => self.desk.say(now, "ok", msg),
            Err(e) => self
                .desk
                .say(now, "error", format!("Checkpoint failed: {e}")),
        }
    }

    fn crash(&mut self, now: i64) {
        self.desk.form_error = None;
        self.desk.save_sink(now);
        let had = self.live.take().map(|l| l.offset);
        self.desk.new_coordinator();
        self.desk.crashed(now, had);
    }

    fn restore(&mut self, now: i64) {
        self.desk.form_error = None;
        self.recover(now, false);
    }

    fn corrupt_latest(&mut self, now: i64) {
        self.desk.corrupt_latest(now);
    }

    fn clear_storage(&mut self, now: i64) {
        self.desk.clear_storage(now);
    }

    fn send_manual(&mut self, customer: &str, amount: &str, ts: &str, now: i64) {
        let Some(live) = self.live.as_ref() else {
            return self.desk.crashed_msg(now);
        };
        let clock = live.pipeline.clock();
        let default_ts = if clock.max_event_time == i64::MIN {
            BASE_TS
        } else {
            clock.max_event_time + 1000
        };
        let order = match parse_manual(customer, amount, ts, default_ts) {
            Ok(o) => o,
            Err(e) => return self.desk.form_rejected(now, e),
        };
        self.desk.form_error = None;
        let shown = serde_json::to_string(&order).unwrap_or_default();
        if let Some(sent) = self.send(now, order) {
            self.desk.sent(now, &shown, sent);
        }
    }

    fn send_late(&mut self, now: i64) {
        self.desk.form_error = None;
        let Some(live) = self.live.as_ref() else {
            return self.desk.crashed_msg(now);
        };
        let wm = live.pipeline.clock().watermark;
        if wm == i64::MIN {
            return self.desk.nothing_late_yet(now);
        }
        let order = Order {
            customer: "C001".into(),
            amount: 9.99,
            ts: wm - P::LATE_BY_MS,
        };
        let ts = order.ts;
        if let Some((offset, _, late, _)) = self.send(now, order) {
            self.desk.sent_late(now, offset, ts, late > 0);
        }
    }

    fn send_malformed(&mut self, now: i64) {
        let offset = self.offset();
        self.desk.send_malformed(now, offset);
    }

    fn set_auto(&mut self, every: Option<u64>, now: i64) {
        self.desk.set_auto(every, now);
    }

    fn set_codec(&mut self, codec: Codec, now: i64) {
        self.desk.set_codec(codec, now);
    }

    fn view(&mut self, now: i64) -> Value {
        let snap = self.snapshot(now);
        self.desk.view(snap)
    }

    fn checkpoint_view(&self, name: &str) -> Value {
        let to_json = |bytes: &[u8]| {
            let (h, p) = envelope::decode::<P>(bytes).map_err(|e| e.to_string())?;
            envelope::encode(&p, Codec::Json, h.checkpoint_id, h.timestamp, h.positions)
                .map_err(|e| e.to_string())
        };
        self.desk.checkpoint_view(name, &to_json)
    }

    fn offset(&self) -> Option<u64> {
        self.live.as_ref().map(|l| l.offset)
    }

    fn state_json(&self) -> String {
        let main = P::stages().first().copied().unwrap_or_default();
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
mod tests;

#[cfg(test)]
mod sql_tests;

#[cfg(test)]
mod upgrade_tests;

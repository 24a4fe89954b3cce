//! The [`Pipeline`] trait that `pipeline!` implements, and how outputs leave it.

use serde::{Deserialize, Serialize};

use crate::codec::{CheckpointError, Codec, StageWriter};
use crate::window::LateReason;

/// The source's event-time clock: the largest event time seen and the watermark.
///
/// The watermark is `max_event_time - max_delay` (bounded out-of-orderness) and never
/// goes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Clock {
    /// Largest event time seen, ms (`i64::MIN` before the first event).
    pub max_event_time: i64,
    /// Current watermark, ms (`i64::MIN` before the first event).
    pub watermark: i64,
}

impl Default for Clock {
    fn default() -> Self {
        Clock {
            max_event_time: i64::MIN,
            watermark: i64::MIN,
        }
    }
}

impl Clock {
    /// Observes an event time; returns true when the watermark moved.
    ///
    /// ```
    /// let mut c = simplestream_runtime::Clock::default();
    /// assert!(c.observe(10_000, 5_000));
    /// assert_eq!(c.watermark, 5_000);
    /// assert!(!c.observe(9_000, 5_000), "out of order: no move");
    /// ```
    #[inline]
    pub fn observe(&mut self, ts: i64, max_delay: i64) -> bool {
        if ts > self.max_event_time {
            self.max_event_time = ts;
            let wm = ts.saturating_sub(max_delay);
            if wm > self.watermark {
                self.watermark = wm;
                return true;
            }
        }
        false
    }
}

/// Where a pipeline puts its outputs.
///
/// ```
/// use simplestream_runtime::Collector;
/// let mut v: Vec<u32> = Vec::new();
/// v.collect(1);
/// let mut n = 0;
/// let mut count = simplestream_runtime::pipeline::FnCollector(|_: u32| n += 1);
/// count.collect(5);
/// assert_eq!((v, n), (vec![1], 1));
/// ```
pub trait Collector<T> {
    /// Takes one output.
    fn collect(&mut self, item: T);
}

impl<T> Collector<T> for Vec<T> {
    #[inline]
    fn collect(&mut self, item: T) {
        self.push(item)
    }
}

/// A [`Collector`] from a closure.
pub struct FnCollector<F>(pub F);
impl<T, F: FnMut(T)> Collector<T> for FnCollector<F> {
    #[inline]
    fn collect(&mut self, item: T) {
        (self.0)(item)
    }
}

/// A [`Collector`] that drops everything (for benchmarks and state-only runs).
pub struct Discard;
impl<T> Collector<T> for Discard {
    #[inline]
    fn collect(&mut self, _: T) {}
}

/// An output record: which sink it belongs to, and its payload (its `Serialize` writes
/// the payload only).
pub trait OutputRecord: Serialize {
    /// Name of the sink, or `"late"` for late events.
    fn sink(&self) -> &'static str;
    /// True for an event that arrived after its window closed.
    fn is_late(&self) -> bool;
}

/// A pipeline, as `pipeline!` generates it: typed operators plus the code that moves
/// events through them.
pub trait Pipeline: Sized {
    /// The source's event type.
    type Event;
    /// What comes out: one variant per sink, plus late events.
    type Output: OutputRecord;

    /// The pipeline's name, as written in the DSL.
    const NAME: &'static str;
    /// Hash of the DSL's structure and of every state type's layout.
    const FINGERPRINT: u64;
    /// Names of the stateful stages: the keys of their state in a checkpoint.
    const STAGES: &'static [&'static str];
    /// Names of the sinks.
    const SINKS: &'static [&'static str];
    /// What the DSL compiled to, as data: stages, operators, keys, windows, state layouts.
    const PLAN: &'static crate::plan::Plan;
    /// The DSL text the pipeline was written in (for display).
    const SOURCE_TEXT: &'static str;
    /// `Checkpointable::LAYOUT` of each stateful stage's state, in [`STAGES`](Self::STAGES)
    /// order: with the plan's layout text, what a checkpoint records per stage (see
    /// [`upgrade`](crate::upgrade)). Empty: the plan's text alone.
    const STATE_LAYOUTS: &'static [u64] = &[];
    /// Renamed stages: `(new name, old name)`, as declared with `#[was(old)]`.
    const RENAMES: &'static [(&'static str, &'static str)] = &[];

    /// The pipeline's name: [`NAME`](Self::NAME), unless the pipeline is built at run
    /// time (the SQL interpreter). The runtime reads identity through these methods, so
    /// generated pipelines keep their constants.
    ///
    /// ```
    /// # use simplestream_runtime::Pipeline;
    /// fn describe<P: Pipeline>() -> String {
    ///     format!("{} ({:016x})", P::name(), P::fingerprint())
    /// }
    /// ```
    fn name() -> &'static str {
        Self::NAME
    }
    /// [`FINGERPRINT`](Self::FINGERPRINT), or the run-time pipeline's.
    fn fingerprint() -> u64 {
        Self::FINGERPRINT
    }
    /// [`PLAN`](Self::PLAN), or the run-time pipeline's.
    fn plan() -> &'static crate::plan::Plan {
        Self::PLAN
    }
    /// [`STAGES`](Self::STAGES), or the run-time pipeline's.
    fn stages() -> &'static [&'static str] {
        Self::STAGES
    }
    /// [`SINKS`](Self::SINKS), or the run-time pipeline's.
    fn sinks() -> &'static [&'static str] {
        Self::SINKS
    }
    /// [`STATE_LAYOUTS`](Self::STATE_LAYOUTS), or the run-time pipeline's.
    fn state_layouts() -> &'static [u64] {
        Self::STATE_LAYOUTS
    }

    /// A pipeline with empty state.
    fn new() -> Self;
    /// Pushes one event through.
    fn process<C: Collector<Self::Output>>(&mut self, event: Self::Event, out: &mut C);
    /// Pushes one event through without taking it: the same outputs and state as
    /// [`process`](Self::process) of a clone. `pipeline!` pipelines clone only what a stage
    /// keeps (a join's buffered events, a late event's record), so a caller that reuses
    /// or shares its events does not pay for dropping them (a `String` free per event).
    /// The default clones the event.
    ///
    /// ```
    /// # use simplestream_runtime::Pipeline;
    /// fn run_all<P: Pipeline>(events: &[P::Event]) -> Vec<P::Output>
    /// where
    ///     P::Event: Clone,
    /// {
    ///     let (mut p, mut out) = (P::new(), Vec::new());
    ///     for e in events {
    ///         p.process_ref(e, &mut out);
    ///     }
    ///     p.finish(&mut out);
    ///     out
    /// }
    /// ```
    fn process_ref<C: Collector<Self::Output>>(&mut self, event: &Self::Event, out: &mut C)
    where
        Self::Event: Clone,
    {
        self.process(event.clone(), out)
    }
    /// Tells the pipeline the events it is about to [`process`](Self::process), in order,
    /// so that state on disk (the disk backend) is read for all of them in one pass
    /// instead of one lookup per event. It changes no state a checkpoint or an output
    /// can see: processing the events after it gives what processing them alone gives.
    /// `pipeline!` implements it for the running aggregates (`key_by(..).aggregate(..)`
    /// without a window) and session windows that read a pipeline's only source
    /// directly (a key's state is one entry there); other stages and the memory backend
    /// do nothing. The default does nothing.
    ///
    /// ```
    /// # use simplestream_runtime::{Collector, Pipeline};
    /// fn run_in_batches<P: Pipeline, C: Collector<P::Output>>(
    ///     p: &mut P,
    ///     events: Vec<P::Event>,
    ///     out: &mut C,
    /// ) {
    ///     let mut events = events.into_iter().peekable();
    ///     while events.peek().is_some() {
    ///         let batch: Vec<P::Event> = events.by_ref().take(4096).collect();
    ///         p.prefetch(&batch);
    ///         for e in batch {
    ///             p.process(e, out);
    ///         }
    ///     }
    /// }
    /// ```
    fn prefetch(&mut self, events: &[Self::Event]) {
        let _ = events;
    }
    /// Tells the pipeline the events it will process after those it is about to process
    /// (already [`prefetch`](Self::prefetch)ed): the keys they touch on disk are read on
    /// another thread while the events before them run, and the next `prefetch` (of
    /// these events) only brings in what was read. Like `prefetch`, it changes nothing a
    /// checkpoint or an output can see, whatever comes between. Implemented where
    /// `prefetch` is; the default does nothing.
    ///
    /// ```
    /// # use simplestream_runtime::{Collector, Pipeline};
    /// fn run_in_batches<P: Pipeline, C: Collector<P::Output>>(
    ///     p: &mut P,
    ///     mut batches: Vec<Vec<P::Event>>,
    ///     out: &mut C,
    /// ) {
    ///     if let Some(first) = batches.first() {
    ///         p.prefetch(first);
    ///     }
    ///     for n in 0..batches.len() {
    ///         // Batch n + 1's keys are read while batch n runs.
    ///         if let Some(next) = batches.get(n + 1) {
    ///             p.read_ahead(next);
    ///         }
    ///         for e in std::mem::take(&mut batches[n]) {
    ///             p.process(e, out);
    ///         }
    ///         if let Some(next) = batches.get(n + 1) {
    ///             p.prefetch(next);
    ///         }
    ///     }
    /// }
    /// ```
    fn read_ahead(&mut self, events: &[Self::Event]) {
        let _ = events;
    }
    /// Moves the watermark (the source calls this itself; use it for idle sources).
    fn advance_watermark<C: Collector<Self::Output>>(&mut self, watermark: i64, out: &mut C);
    /// The event time of `event` in ms, as the source's `event_time` closure computes it
    /// (`None` when the pipeline does not say). The runner reads partitions of a Kafka
    /// topic in this order.
    ///
    /// ```
    /// # use simplestream_runtime::Pipeline;
    /// fn time_of<P: Pipeline>(e: &P::Event) -> i64 {
    ///     P::event_time(e).unwrap_or(i64::MIN)
    /// }
    /// ```
    fn event_time(event: &Self::Event) -> Option<i64> {
        let _ = event;
        None
    }
    /// End of input: closes all open windows; events that come later and belong to
    /// them are late.
    fn finish<C: Collector<Self::Output>>(&mut self, out: &mut C);
    /// The source clock.
    fn clock(&self) -> Clock;
    /// Writes every stage's state, one [`StageWriter::field`] per stage.
    fn write_stages(&self, w: &mut StageWriter<'_>) -> Result<(), CheckpointError>;
    /// Writes every stage's state (an object keyed by stage name) in `codec`.
    fn encode_stages(&self, codec: Codec, out: &mut Vec<u8>) -> Result<(), CheckpointError> {
        let mut w = StageWriter::new(codec, out);
        self.write_stages(&mut w)?;
        w.finish();
        Ok(())
    }
    /// Builds a pipeline from stage state written by [`encode_stages`](Self::encode_stages).
    fn decode_stages(codec: Codec, bytes: &[u8], clock: Clock) -> Result<Self, CheckpointError>;
    /// Each stage's change [`Version`](crate::delta::Version), in the order
    /// [`write_stages`](Self::write_stages) writes them; `None` when this pipeline cannot
    /// write deltas (incremental checkpoints of it are then always whole).
    fn stage_versions(&self) -> Option<Vec<crate::delta::Version>> {
        None
    }
    /// Writes what changed in every stage since `since` (the
    /// [`stage_versions`](Self::stage_versions) of an earlier moment of this pipeline),
    /// one [`StageWriter::field`] per stage.
    fn write_stage_deltas(
        &self,
        since: &[crate::delta::Version],
        w: &mut StageWriter<'_>,
    ) -> Result<(), CheckpointError> {
        let _ = (since, w);
        Err(CheckpointError::Encode {
            detail: format!("pipeline `{}` cannot write deltas", Self::name()),
        })
    }
    /// Applies deltas written by [`write_stage_deltas`](Self::write_stage_deltas); the
    /// clock becomes `clock`.
    fn apply_stage_deltas(
        &mut self,
        codec: Codec,
        bytes: &[u8],
        clock: Clock,
    ) -> Result<(), CheckpointError> {
        let _ = (codec, bytes, clock);
        Err(CheckpointError::Decode {
            detail: format!("pipeline `{}` cannot apply deltas", Self::name()),
        })
    }
    /// One stage's state as JSON (for display: playground, `checkpoints show`).
    fn stage_json(&self, stage: &str) -> Option<serde_json::Value>;

    /// The migration declared for stage `stage` from the layout `from`, if any.
    fn migration(stage: &str, from: &crate::upgrade::StageLayout) -> Option<&'static str> {
        let _ = (stage, from);
        None
    }
    /// Fills stage `stage` from `bytes`, state of the layout `from`, through its
    /// migration; `false` if none applies.
    fn migrate_stage(
        &mut self,
        stage: &str,
        from: &crate::upgrade::StageLayout,
        codec: Codec,
        bytes: &[u8],
    ) -> Result<bool, CheckpointError> {
        let _ = (stage, from, codec, bytes);
        Ok(false)
    }
}

/// Event times the source's `event_time` may return: integer milliseconds.
#[diagnostic::on_unimplemented(
    message = "`event_time` must give milliseconds as an integer, not `{Self}`",
    note = "return e.g. `o.ts` where `ts: i64` or `u64` holds milliseconds since the epoch"
)]
pub trait EventTime {
    /// The time in ms.
    fn event_time_ms(self) -> i64;
}
impl EventTime for i64 {
    #[inline]
    fn event_time_ms(self) -> i64 {
        self
    }
}
impl EventTime for u64 {
    #[inline]
    fn event_time_ms(self) -> i64 {
        self.min(i64::MAX as u64) as i64
    }
}
impl EventTime for i32 {
    #[inline]
    fn event_time_ms(self) -> i64 {
        self as i64
    }
}
impl EventTime for u32 {
    #[inline]
    fn event_time_ms(self) -> i64 {
        self as i64
    }
}

/// How a late event is written: `{"stage":"per_5min","event":{...}}`, plus
/// `"reason":"event time out of range: ..."` when its windows cannot be represented.
#[derive(Serialize)]
pub struct LateRecord<'a, T> {
    /// The windowed stage it was late for.
    pub stage: &'static str,
    /// The event.
    pub event: &'a T,
    /// Why, unless a window had closed (the usual reason).
    #[serde(skip_serializing_if = "LateReason::is_closed")]
    pub reason: LateReason,
}

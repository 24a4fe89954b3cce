//! [`SqlPipeline`]: a lowered [`Query`] run as a [`Pipeline`], so the runner, the
//! checkpoints and their tools treat it as they treat a compiled pipeline.

use serde::de::{IgnoredAny, MapAccess, Visitor};
use serde::{Deserializer, Serialize, Serializer};

use super::acc::Accs;
#[cfg(feature = "sql-join")]
use super::join::JoinSpec;
#[cfg(feature = "sql-join")]
use super::joined::Joined;
use super::prepared::{installed, Prepared};
use super::query::Query;
use super::stage::{self, DynKey, Pushed, State};
use super::value::{Row, RowSeed, Schema, Val};
use crate::codec::{self, CheckpointError, Codec, StageWriter};
use crate::pipeline::{Clock, Collector, LateRecord, OutputRecord, Pipeline};
use crate::window::{Fired, LateReason};

/// The interpreter of one query.
///
/// ```
/// use simplestream_runtime::sql::{self, Row, SqlPipeline};
/// let q = sql::prepare(sql::parse(
///     "SELECT customer, COUNT(*) AS n FROM orders GROUP BY customer, TUMBLE(ts, INTERVAL '1' SECOND)",
///     &sql::Options { event_time: None, max_delay_ms: 0 },
/// ).unwrap());
/// let mut p = SqlPipeline::with(q);
/// let mut out = Vec::new();
/// for line in [r#"{"customer":"a","ts":100}"#, r#"{"customer":"a","ts":900}"#, r#"{"customer":"b","ts":2500}"#] {
///     p.push(Row::from_json(&q.query.input, line.as_bytes()).unwrap(), &mut out);
/// }
/// assert_eq!(serde_json::to_string(&out[0]).unwrap(),
///            r#"{"customer":"a","window_start":0,"window_end":1000,"n":2}"#);
/// ```
pub struct SqlPipeline {
    p: &'static Prepared,
    clock: Clock,
    state: Option<State>,
    fired_str: Vec<Fired<String, Accs>>,
    fired_int: Vec<Fired<i64, Accs>>,
    fired_all: Vec<Fired<(), Accs>>,
    /// A join's per-stream clocks (its watermark is the smaller of theirs).
    sources: [Clock; 2],
}

/// A result row or a late event.
#[derive(Debug, Clone)]
pub struct SqlOutput {
    q: &'static Query,
    what: Out,
}

impl PartialEq for SqlOutput {
    fn eq(&self, o: &Self) -> bool {
        std::ptr::eq(self.q, o.q) && self.what == o.what
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Out {
    Row(Vec<Val>),
    #[cfg(feature = "sql-join")]
    Pair(Joined),
    Late(Row, LateReason),
}

impl Serialize for SqlOutput {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.what {
            Out::Row(vals) => super::value::Named {
                names: &self.q.output.names,
                vals,
            }
            .serialize(s),
            #[cfg(feature = "sql-join")]
            Out::Pair(j) => super::joined::pair(self.q, j, s),
            Out::Late(row, reason) => LateRecord {
                stage: self.q.stage,
                event: &row.with(side_schema(self.q, row.1)),
                reason: *reason,
            }
            .serialize(s),
        }
    }
}

/// The columns of stream `side` (0, or 1: a join's right stream).
fn side_schema(q: &Query, side: u8) -> &Schema {
    match (&q.join, side) {
        (Some(j), 1) => &j.right_input,
        _ => &q.input,
    }
}

impl OutputRecord for SqlOutput {
    fn sink(&self) -> &'static str {
        match self.what {
            Out::Row(_) => self.q.stage,
            #[cfg(feature = "sql-join")]
            Out::Pair(_) => self.q.stage,
            Out::Late(..) => "late",
        }
    }
    fn is_late(&self) -> bool {
        matches!(self.what, Out::Late(..))
    }
}

impl SqlPipeline {
    /// An empty pipeline running `p`.
    pub fn with(p: &'static Prepared) -> Self {
        SqlPipeline {
            p,
            clock: Clock::default(),
            state: State::of(&p.query),
            fired_str: Vec::new(),
            fired_int: Vec::new(),
            fired_all: Vec::new(),
            sources: [Clock::default(); 2],
        }
    }

    /// Pushes one event through (what [`Pipeline::process`] does).
    pub fn push<C: Collector<SqlOutput>>(&mut self, row: Row, out: &mut C) {
        let q = &self.p.query;
        #[cfg(feature = "sql-join")]
        if let Some(j) = &q.join {
            return self.push_joined(j, row, out);
        }
        let ts = q.time.map(|i| time_of(&row.0[i]));
        let moved = ts.is_some_and(|t| self.clock.observe(t, q.max_delay_ms));
        self.accept(row, ts.unwrap_or(i64::MIN), out);
        if moved {
            self.close(Some(self.clock.watermark), out);
        }
    }

    fn accept<C: Collector<SqlOutput>>(&mut self, row: Row, ts: i64, out: &mut C) {
        let q: &'static Query = &self.p.query;
        if let Some(f) = &q.filter {
            if !f.test(&row.0) {
                return;
            }
        }
        let Some(g) = &q.grouping else {
            return out.collect(SqlOutput {
                q,
                what: Out::Row(row.0),
            });
        };
        let late = match self.state.as_mut().expect("a grouping has state") {
            State::ByString(s) => keyed(s.push(g, &row.0, ts), q, &row, out),
            State::ByInt(s) => keyed(s.push(g, &row.0, ts), q, &row, out),
            State::Global(s) => stage::push_global(s, g, &row.0, ts),
            #[cfg(feature = "sql-join")]
            State::JoinByString(_) | State::JoinByInt(_) => unreachable!("joins push apart"),
        };
        if let Some(reason) = late {
            out.collect(SqlOutput {
                q,
                what: Out::Late(row, reason),
            });
        }
    }

    #[cfg(feature = "sql-join")]
    /// An event of a join: each stream has its own clock, the join's watermark is the
    /// smaller of theirs (as in a compiled pipeline with two sources).
    fn push_joined<C: Collector<SqlOutput>>(&mut self, j: &JoinSpec, row: Row, out: &mut C) {
        let q: &'static Query = &self.p.query;
        let side = usize::from(row.1 == 1);
        let col = if side == 1 {
            j.right_time
        } else {
            q.time.expect("a join has times")
        };
        let ts = time_of(&row.0[col]);
        self.sources[side].observe(ts, q.max_delay_ms);
        let mut emit = |p| {
            out.collect(SqlOutput {
                q,
                what: Out::Pair(p),
            })
        };
        let late = match self.state.as_mut().expect("a join has state") {
            State::JoinByString(s) => s.push(j, row, ts, &mut emit),
            State::JoinByInt(s) => s.push(j, row, ts, &mut emit),
            _ => unreachable!("a join's state is a join's"),
        };
        if let Some((row, reason)) = late {
            out.collect(SqlOutput {
                q,
                what: Out::Late(row, reason),
            });
        }
        let wm = self
            .sources
            .iter()
            .map(|c| c.watermark)
            .min()
            .unwrap_or(i64::MIN);
        let max = self
            .sources
            .iter()
            .map(|c| c.max_event_time)
            .max()
            .unwrap_or(i64::MIN);
        self.clock.max_event_time = max;
        if wm > self.clock.watermark {
            self.clock.watermark = wm;
            self.close(Some(wm), out);
        }
    }

    /// Closes windows up to the watermark `wm` (`None`: all) and emits their rows.
    fn close<C: Collector<SqlOutput>>(&mut self, wm: Option<i64>, out: &mut C) {
        let q: &'static Query = &self.p.query;
        #[cfg(feature = "sql-join")]
        if let Some(j) = &q.join {
            let mut emit = |p| {
                out.collect(SqlOutput {
                    q,
                    what: Out::Pair(p),
                })
            };
            match self.state.as_mut().expect("a join has state") {
                State::JoinByString(s) => s.advance(j, wm, &mut emit),
                State::JoinByInt(s) => s.advance(j, wm, &mut emit),
                _ => unreachable!("a join's state is a join's"),
            }
            return;
        }
        let Some(g) = &q.grouping else {
            return;
        };
        match self.state.as_mut().expect("a grouping has state") {
            State::ByString(s) => s.close(g, wm, &mut self.fired_str),
            State::ByInt(s) => s.close(g, wm, &mut self.fired_int),
            State::Global(s) => stage::close_global(s, g, wm, &mut self.fired_all),
            #[cfg(feature = "sql-join")]
            State::JoinByString(_) | State::JoinByInt(_) => unreachable!("joins return above"),
        }
        for f in self.fired_str.drain(..) {
            emit(
                q,
                window_row(Some(f.key.val()), f.start, f.end, &f.acc),
                out,
            );
        }
        for f in self.fired_int.drain(..) {
            emit(
                q,
                window_row(Some(f.key.val()), f.start, f.end, &f.acc),
                out,
            );
        }
        for f in self.fired_all.drain(..) {
            emit(q, window_row(None, f.start, f.end, &f.acc), out);
        }
    }
}

/// A keyed stage's outcome: a running aggregate's row is emitted; a late row's reason
/// is returned.
fn keyed<C: Collector<SqlOutput>>(
    r: Pushed<'_>,
    q: &'static Query,
    row: &Row,
    out: &mut C,
) -> Option<LateReason> {
    match r {
        Pushed::Updated(acc) => {
            let g = q.grouping.as_ref().expect("keyed");
            let mut vals = Vec::with_capacity(1 + g.aggs.len());
            vals.push(row.0[g.key.expect("keyed").0].clone());
            vals.extend(acc.outputs());
            emit(q, vals, out);
            None
        }
        Pushed::Late(r) => Some(r),
        Pushed::Windowed => None,
    }
}

/// Emits a result row if it passes `HAVING`.
fn emit<C: Collector<SqlOutput>>(q: &'static Query, vals: Vec<Val>, out: &mut C) {
    let keep = match q.grouping.as_ref().and_then(|g| g.having.as_ref()) {
        Some(h) => h.test(&vals),
        None => true,
    };
    if keep {
        out.collect(SqlOutput {
            q,
            what: Out::Row(vals),
        });
    }
}

fn window_row(key: Option<Val>, start: i64, end: i64, acc: &Accs) -> Vec<Val> {
    let mut vals: Vec<Val> = key.into_iter().collect();
    vals.extend([Val::Int(start), Val::Int(end)]);
    vals.extend(acc.outputs());
    vals
}

/// Event time of a row's time value (typed `Int` by the schema).
fn time_of(v: &Val) -> i64 {
    match v {
        Val::Int(t) => *t,
        _ => i64::MIN,
    }
}

impl<'de> serde::Deserialize<'de> for Row {
    /// Reads a row of the [installed](super::install) query's source; for a join, an
    /// event of either stream, `{"orders": {...}}`, as compiled pipelines with several
    /// sources read them.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Row, D::Error> {
        let q = &installed().query;
        match &q.join {
            None => serde::de::DeserializeSeed::deserialize(super::value::RowSeed(&q.input), d),
            Some(j) => d.deserialize_map(Tagged {
                streams: [(q.source, &q.input), (j.right, &j.right_input)],
            }),
        }
    }
}

static EMPTY_PLAN: crate::plan::Plan = crate::plan::Plan {
    name: "sql",
    sources: &[],
    stages: &[],
};

impl Pipeline for SqlPipeline {
    type Event = Row;
    type Output = SqlOutput;
    // The identity of an interpreted pipeline is its query's: see the methods below.
    const NAME: &'static str = "sql";
    const FINGERPRINT: u64 = 0;
    const STAGES: &'static [&'static str] = &[];
    const SINKS: &'static [&'static str] = &[];
    const PLAN: &'static crate::plan::Plan = &EMPTY_PLAN;
    const SOURCE_TEXT: &'static str = "";

    fn name() -> &'static str {
        installed().plan.name
    }
    fn fingerprint() -> u64 {
        installed().fingerprint
    }
    fn plan() -> &'static crate::plan::Plan {
        installed().plan
    }
    fn stages() -> &'static [&'static str] {
        installed().stages
    }
    fn sinks() -> &'static [&'static str] {
        installed().sinks
    }
    fn state_layouts() -> &'static [u64] {
        installed().layouts
    }

    fn new() -> Self {
        SqlPipeline::with(installed())
    }

    fn process<C: Collector<SqlOutput>>(&mut self, event: Row, out: &mut C) {
        self.push(event, out)
    }

    fn advance_watermark<C: Collector<SqlOutput>>(&mut self, watermark: i64, out: &mut C) {
        if watermark > self.clock.watermark {
            self.clock.watermark = watermark;
            self.close(Some(watermark), out);
        }
    }

    fn event_time(event: &Row) -> Option<i64> {
        let q = &installed().query;
        match (&q.join, event.1) {
            (Some(j), 1) => Some(time_of(&event.0[j.right_time])),
            _ => q.time.map(|i| time_of(&event.0[i])),
        }
    }

    fn finish<C: Collector<SqlOutput>>(&mut self, out: &mut C) {
        self.close(None, out);
    }

    fn clock(&self) -> Clock {
        self.clock
    }

    fn write_stages(&self, w: &mut StageWriter<'_>) -> Result<(), CheckpointError> {
        if self.p.query.join.is_some() {
            w.field("source_clocks", &self.sources)?;
        }
        match &self.state {
            Some(s) => w.field(self.p.query.stage, s),
            None => Ok(()),
        }
    }

    fn decode_stages(codec: Codec, bytes: &[u8], clock: Clock) -> Result<Self, CheckpointError> {
        let mut p = SqlPipeline::with(installed());
        p.clock = clock;
        let q: &'static Query = &p.p.query;
        if p.state.is_none() {
            return Ok(p);
        }
        let stage = q.stage;
        let joined = q.join.is_some();
        let (clocks, state) = match codec {
            Codec::Json => {
                let mut de = serde_json::Deserializer::from_slice(bytes);
                let found =
                    de.deserialize_map(StageField(stage))
                        .map_err(|e| CheckpointError::Decode {
                            detail: format!("stage `{stage}`: {e}"),
                        })?;
                let state = found.1.ok_or_else(|| CheckpointError::Decode {
                    detail: format!("no state of stage `{stage}`"),
                })?;
                (found.0, state)
            }
            Codec::Binary if joined => {
                let (c, s): ([Clock; 2], State) = codec::read(codec, bytes)?;
                (Some(c), s)
            }
            Codec::Binary => (None, codec::read(codec, bytes)?),
        };
        if joined {
            p.sources = clocks.ok_or_else(|| CheckpointError::Decode {
                detail: "no source_clocks: not a checkpoint of a join".into(),
            })?;
        }
        if !state.fits(q) {
            return Err(CheckpointError::Decode {
                detail: format!("the state of stage `{stage}` is not of this query's kind"),
            });
        }
        p.state = Some(state);
        Ok(p)
    }

    fn stage_json(&self, stage: &str) -> Option<serde_json::Value> {
        match &self.state {
            Some(s) if stage == self.p.query.stage => codec::to_json_value(s).ok(),
            _ => None,
        }
    }
}

/// The state of one stage, from a JSON object whose other fields (the checkpoint's
/// header, other stages) are skipped.
struct StageField(&'static str);

impl<'de> Visitor<'de> for StageField {
    type Value = (Option<[Clock; 2]>, Option<State>);
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an object holding the stage's state")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
        let (mut clocks, mut found) = (None, None);
        while let Some(k) = m.next_key::<std::borrow::Cow<'de, str>>()? {
            if k == self.0 {
                found = Some(m.next_value::<State>()?);
            } else if k == "source_clocks" {
                clocks = Some(m.next_value()?);
            } else {
                m.next_value::<IgnoredAny>()?;
            }
        }
        Ok((clocks, found))
    }
}

/// An event of a join's input: `{"<stream>": {...}}`, one of two streams.
struct Tagged<'a> {
    streams: [(&'static str, &'a Schema); 2],
}

impl<'de> Visitor<'de> for Tagged<'_> {
    type Value = Row;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let [(l, _), (r, _)] = self.streams;
        write!(
            f,
            "an event of one stream, {{\"{l}\": {{..}}}} or {{\"{r}\": {{..}}}}"
        )
    }
    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Row, A::Error> {
        use serde::de::Error;
        let Some(k) = m.next_key::<std::borrow::Cow<'de, str>>()? else {
            return Err(A::Error::invalid_length(0, &self));
        };
        let Some(side) = self.streams.iter().position(|(n, _)| *n == k) else {
            let [(l, _), (r, _)] = self.streams;
            return Err(A::Error::custom(format_args!(
                "unknown stream `{k}`: an event is {{\"{l}\": {{..}}}} or {{\"{r}\": {{..}}}}"
            )));
        };
        let mut row = m.next_value_seed(RowSeed(self.streams[side].1))?;
        row.1 = side as u8;
        if m.next_key::<IgnoredAny>()?.is_some() {
            return Err(A::Error::custom("an event holds one stream's object"));
        }
        Ok(row)
    }
}

//! Windows and joins checked against a deliberately simple model, with random out-of-order
//! and late events.
//!
//! The model keeps every event with the watermark it arrived at and recomputes each
//! window from scratch when the watermark passes its end plus the allowed lateness: a
//! window holds the events whose time is in it and that arrived while it was open. It uses
//! no code of the runtime (no window arithmetic, no aggregates, no shared helpers), only
//! the rules the README states, and it builds its output lines by hand. The whole output
//! sequence (rows and late events, in order) must be equal.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use simplestream::{pipeline, Checkpointable, Pipeline};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Checkpointable)]
pub struct Ev {
    pub id: u32,
    pub k: u8,
    pub v: i64,
    pub ts: i64,
}

/// The ids of a window's events, sorted: shows exactly which events a window holds.
#[derive(Default)]
pub struct Ids;
impl simplestream::aggregate::Aggregate for Ids {
    type Input = u32;
    type Acc = Vec<u32>;
    type Output = Vec<u32>;
    fn add(&self, acc: &mut Vec<u32>, v: u32) {
        acc.push(v);
    }
    fn merge(&self, acc: &mut Vec<u32>, o: &Vec<u32>) {
        acc.extend_from_slice(o);
    }
    fn output(&self, acc: &Vec<u32>) -> Vec<u32> {
        let mut v = acc.clone();
        v.sort_unstable();
        v
    }
}

// Window parameters, in ms, repeated in the pipelines below (the DSL takes literals).
const DELAY: i64 = 3_000;
const TUMBLE: (i64, i64) = (5_000, 2_000); // size, lateness
const SLIDE: (i64, i64, i64) = (6_000, 2_000, 1_000); // size, slide, lateness
const GAP: (i64, i64) = (3_000, 2_000); // gap, lateness
const GLOBAL_TUMBLE: (i64, i64) = (4_000, 0);
const GLOBAL_SLIDE: (i64, i64, i64) = (5_000, 1_000, 1_500);
const JOIN_DELAY: i64 = 2_000;
const WJOIN: (i64, i64, i64) = (6_000, 3_000, 1_000);
const IJOIN: (i64, i64) = (2_000, 3_000); // lower, upper

pipeline! {
    pub pipeline Tumble;
    source evs: Ev, event_time = |e| e.ts, max_delay = 3s;
    w = evs.key_by(k: u8 = |e| e.k)
        .window(tumbling(5s), allowed_lateness = 2s)
        .aggregate(n = count(), total: i64 = sum(|e| e.v), lo: i64 = min(|e| e.v), hi: i64 = max(|e| e.v), ids = custom(Ids, |e| e.id));
    sink w;
}

pipeline! {
    pub pipeline Slide;
    source evs: Ev, event_time = |e| e.ts, max_delay = 3s;
    w = evs.key_by(k: u8 = |e| e.k)
        .window(sliding(6s, 2s), allowed_lateness = 1s)
        .aggregate(n = count(), total: i64 = sum(|e| e.v), lo: i64 = min(|e| e.v), hi: i64 = max(|e| e.v), ids = custom(Ids, |e| e.id));
    sink w;
}

pipeline! {
    pub pipeline Sessions;
    source evs: Ev, event_time = |e| e.ts, max_delay = 3s;
    w = evs.key_by(k: u8 = |e| e.k)
        .window(session(3s), allowed_lateness = 2s)
        .aggregate(n = count(), total: i64 = sum(|e| e.v), lo: i64 = min(|e| e.v), hi: i64 = max(|e| e.v), ids = custom(Ids, |e| e.id));
    sink w;
}

pipeline! {
    pub pipeline GlobalTumble;
    source evs: Ev, event_time = |e| e.ts, max_delay = 3s;
    w = evs.window(tumbling(4s))
        .aggregate(n = count(), total: i64 = sum(|e| e.v), lo: i64 = min(|e| e.v), hi: i64 = max(|e| e.v), ids = custom(Ids, |e| e.id));
    sink w;
}

pipeline! {
    pub pipeline GlobalSlide;
    source evs: Ev, event_time = |e| e.ts, max_delay = 3s;
    w = evs.window(sliding(5s, 1s), allowed_lateness = 1500ms)
        .aggregate(n = count(), total: i64 = sum(|e| e.v), lo: i64 = min(|e| e.v), hi: i64 = max(|e| e.v), ids = custom(Ids, |e| e.id));
    sink w;
}

pipeline! {
    pub pipeline WJoin;
    source left: Ev, event_time = |e| e.ts, max_delay = 2s;
    source right: Ev, event_time = |e| e.ts, max_delay = 2s;
    w = left.join(right, k: u8 = |l| l.k, |r| r.k).window(sliding(6s, 3s), allowed_lateness = 1s);
    sink w;
}

pipeline! {
    pub pipeline IJoin;
    source left: Ev, event_time = |e| e.ts, max_delay = 2s;
    source right: Ev, event_time = |e| e.ts, max_delay = 2s;
    w = left.interval_join(right, k: u8 = |l| l.k, |r| r.k, lower = 2s, upper = 3s);
    sink w;
}

fn ev_json(e: &Ev) -> String {
    format!(r#"{{"id":{},"k":{},"v":{},"ts":{}}}"#, e.id, e.k, e.v, e.ts)
}

fn late_json(e: &Ev) -> String {
    format!(r#"{{"stage":"w","event":{}}}"#, ev_json(e))
}

/// Count, sum, min, max and ids of a window's events, computed here from the list.
fn aggregates(events: &[&Ev]) -> String {
    let n = events.len();
    let total: i64 = events.iter().map(|e| e.v).sum();
    let lo = events
        .iter()
        .map(|e| e.v)
        .min()
        .expect("a window has events");
    let hi = events
        .iter()
        .map(|e| e.v)
        .max()
        .expect("a window has events");
    let mut ids: Vec<u32> = events.iter().map(|e| e.id).collect();
    ids.sort_unstable();
    let ids: Vec<String> = ids.iter().map(u32::to_string).collect();
    format!(
        r#""n":{n},"total":{total},"lo":{lo},"hi":{hi},"ids":[{}]"#,
        ids.join(",")
    )
}

/// What a model sees: each event with the watermark before it, watermark moves, the end.
trait Model {
    fn event(&mut self, left: bool, e: &Ev, wm: i64, out: &mut Vec<String>);
    fn watermark(&mut self, wm: i64, out: &mut Vec<String>);
    fn finish(&mut self, out: &mut Vec<String>);
}

/// Runs the model: one watermark per source (max time − delay); the pipeline's is the
/// smallest, and it only moves forward.
fn run_model(m: &mut dyn Model, events: &[(bool, Ev)], sources: usize, delay: i64) -> Vec<String> {
    let mut out = Vec::new();
    let mut max = vec![None::<i64>; sources];
    let mut wm = i64::MIN;
    for (left, e) in events {
        m.event(*left, e, wm, &mut out);
        let side = usize::from(!*left && sources == 2);
        max[side] = Some(max[side].map_or(e.ts, |m| m.max(e.ts)));
        let now = max
            .iter()
            .map(|m| m.map_or(i64::MIN, |t| t - delay))
            .min()
            .expect("a source");
        if now > wm {
            wm = now;
            m.watermark(wm, &mut out);
        }
    }
    m.finish(&mut out);
    out
}

/// Starts of the windows of `size`, one every `slide` from time 0, that hold `ts`.
fn starts(ts: i64, size: i64, slide: i64) -> Vec<i64> {
    let mut s = ts.div_euclid(slide) * slide;
    let mut v = Vec::new();
    while s + size > ts {
        v.push(s);
        s -= slide;
    }
    v
}

/// Tumbling (slide = size) and sliding windows, keyed or over all events.
struct Aligned {
    size: i64,
    slide: i64,
    lateness: i64,
    keyed: bool,
    /// Every event, with the watermark it arrived at.
    arrived: Vec<(Ev, i64)>,
    /// (start, key) of windows already emitted.
    emitted: BTreeSet<(i64, Option<u8>)>,
}

impl Aligned {
    fn new(size: i64, slide: i64, lateness: i64, keyed: bool) -> Self {
        Aligned {
            size,
            slide,
            lateness,
            keyed,
            arrived: Vec::new(),
            emitted: BTreeSet::new(),
        }
    }

    /// Emits every window not yet emitted whose end + lateness is at most `limit`.
    fn close(&mut self, limit: i64, out: &mut Vec<String>) {
        let mut due: BTreeMap<(i64, Option<u8>), Vec<&Ev>> = BTreeMap::new();
        for (e, wm) in &self.arrived {
            let key = self.keyed.then_some(e.k);
            for s in starts(e.ts, self.size, self.slide) {
                let closes = s + self.size + self.lateness;
                let open_then = closes > *wm;
                if open_then && closes <= limit && !self.emitted.contains(&(s, key)) {
                    due.entry((s + self.size, key)).or_default().push(e);
                }
            }
        }
        for ((end, key), events) in due {
            let start = end - self.size;
            let key_col = key.map_or(String::new(), |k| format!(r#""k":{k},"#));
            out.push(format!(
                r#"{{{key_col}"window_start":{start},"window_end":{end},{}}}"#,
                aggregates(&events)
            ));
            self.emitted.insert((start, key));
        }
    }
}

impl Model for Aligned {
    fn event(&mut self, _: bool, e: &Ev, wm: i64, out: &mut Vec<String>) {
        let closed = starts(e.ts, self.size, self.slide)
            .iter()
            .any(|s| s + self.size + self.lateness <= wm);
        if closed {
            out.push(late_json(e));
        }
        self.arrived.push((e.clone(), wm));
    }
    fn watermark(&mut self, wm: i64, out: &mut Vec<String>) {
        self.close(wm, out);
    }
    fn finish(&mut self, out: &mut Vec<String>) {
        self.close(i64::MAX, out);
    }
}

/// Session windows: a key's events closer than the gap form one session; a session is
/// emitted once the watermark passes its last event + gap + lateness, and its events
/// leave the model (an event arriving after that starts a new session).
struct SessionModel {
    gap: i64,
    lateness: i64,
    pending: BTreeMap<u8, Vec<Ev>>,
}

impl SessionModel {
    /// The sessions of one key's events: sorted by time, an event joins the session
    /// before it when it is earlier than that session's last event + gap.
    fn sessions(&self, events: &[Ev]) -> Vec<Vec<Ev>> {
        let mut sorted = events.to_vec();
        sorted.sort_by_key(|e| e.ts);
        let mut all: Vec<Vec<Ev>> = Vec::new();
        for e in sorted {
            match all.last_mut() {
                Some(s) if e.ts < s.last().expect("non-empty").ts + self.gap => s.push(e),
                _ => all.push(vec![e]),
            }
        }
        all
    }

    fn close(&mut self, limit: i64, out: &mut Vec<String>) {
        let mut due: BTreeMap<(i64, u8), Vec<Ev>> = BTreeMap::new();
        for (k, events) in &self.pending {
            for s in self.sessions(events) {
                let end = s.last().expect("non-empty").ts + self.gap;
                if end + self.lateness <= limit {
                    due.insert((end, *k), s);
                }
            }
        }
        for ((end, k), events) in due {
            let start = events[0].ts;
            let refs: Vec<&Ev> = events.iter().collect();
            out.push(format!(
                r#"{{"k":{k},"window_start":{start},"window_end":{end},{}}}"#,
                aggregates(&refs)
            ));
            let ids: BTreeSet<u32> = events.iter().map(|e| e.id).collect();
            let list = self.pending.get_mut(&k).expect("pending key");
            list.retain(|e| !ids.contains(&e.id));
        }
    }
}

impl Model for SessionModel {
    fn event(&mut self, _: bool, e: &Ev, wm: i64, out: &mut Vec<String>) {
        if e.ts + self.gap + self.lateness <= wm {
            out.push(late_json(e));
        } else {
            self.pending.entry(e.k).or_default().push(e.clone());
        }
    }
    fn watermark(&mut self, wm: i64, out: &mut Vec<String>) {
        self.close(wm, out);
    }
    fn finish(&mut self, out: &mut Vec<String>) {
        self.close(i64::MAX, out);
    }
}

/// Window join: in each closed window, every left event of a key pairs with every right
/// event of that key (both in arrival order).
struct WindowJoinModel {
    size: i64,
    slide: i64,
    lateness: i64,
    arrived: Vec<(bool, Ev, i64)>,
    emitted: BTreeSet<(i64, u8)>,
}

impl WindowJoinModel {
    fn close(&mut self, limit: i64, out: &mut Vec<String>) {
        type Sides<'a> = (Vec<&'a Ev>, Vec<&'a Ev>);
        let mut due: BTreeMap<(i64, u8), Sides> = BTreeMap::new();
        for (left, e, wm) in &self.arrived {
            for s in starts(e.ts, self.size, self.slide) {
                let closes = s + self.size + self.lateness;
                if closes > *wm && closes <= limit && !self.emitted.contains(&(s, e.k)) {
                    let sides = due.entry((s + self.size, e.k)).or_default();
                    if *left {
                        sides.0.push(e);
                    } else {
                        sides.1.push(e);
                    }
                }
            }
        }
        for ((end, k), (lefts, rights)) in due {
            let start = end - self.size;
            for l in &lefts {
                for r in &rights {
                    out.push(format!(
                        r#"{{"k":{k},"window_start":{start},"window_end":{end},"left":{},"right":{}}}"#,
                        ev_json(l),
                        ev_json(r)
                    ));
                }
            }
            self.emitted.insert((start, k));
        }
    }
}

impl Model for WindowJoinModel {
    fn event(&mut self, left: bool, e: &Ev, wm: i64, out: &mut Vec<String>) {
        let closed = starts(e.ts, self.size, self.slide)
            .iter()
            .any(|s| s + self.size + self.lateness <= wm);
        if closed {
            out.push(late_json(e));
        }
        self.arrived.push((left, e.clone(), wm));
    }
    fn watermark(&mut self, wm: i64, out: &mut Vec<String>) {
        self.close(wm, out);
    }
    fn finish(&mut self, out: &mut Vec<String>) {
        self.close(i64::MAX, out);
    }
}

/// Interval join: a left at `t` and a right at `t'` of the same key pair when
/// `t − lower <= t' <= t + upper`, as soon as the second arrives (pairing with the earlier
/// ones in arrival order). A left is late once `t + upper` is behind the watermark, a
/// right once `t' + lower` is: partners they could have matched may be gone. Late events
/// pair with nothing.
struct IntervalJoinModel {
    lower: i64,
    upper: i64,
    kept: Vec<(bool, Ev)>,
}

impl Model for IntervalJoinModel {
    fn event(&mut self, left: bool, e: &Ev, wm: i64, out: &mut Vec<String>) {
        let reach = if left { self.upper } else { self.lower };
        if e.ts + reach < wm {
            out.push(late_json(e));
            return;
        }
        for (other_left, o) in &self.kept {
            if *other_left == left || o.k != e.k {
                continue;
            }
            let (l, r) = if left { (e, o) } else { (o, e) };
            if l.ts - self.lower <= r.ts && r.ts <= l.ts + self.upper {
                out.push(format!(
                    r#"{{"k":{},"left":{},"right":{}}}"#,
                    e.k,
                    ev_json(l),
                    ev_json(r)
                ));
            }
        }
        self.kept.push((left, e.clone()));
    }
    fn watermark(&mut self, _: i64, _: &mut Vec<String>) {}
    fn finish(&mut self, _: &mut Vec<String>) {}
}

fn run_pipeline<P: Pipeline>(events: impl IntoIterator<Item = P::Event>) -> Vec<String> {
    let mut p = P::new();
    let mut out = Vec::new();
    for e in events {
        p.process(e, &mut out);
    }
    p.finish(&mut out);
    out.iter()
        .map(|o| serde_json::to_string(o).expect("outputs serialize"))
        .collect()
}

/// Random events: time mostly moves forward, often a little behind the newest (out of
/// order within the delay), sometimes far behind (late), around 0 (negative times too).
/// Times are on a 500 ms grid, like the window sizes, delays and lateness, so that events
/// land exactly on window bounds and closing times; some are 1 ms before a grid point.
fn arb_events() -> impl Strategy<Value = Vec<(bool, Ev)>> {
    let step = (any::<bool>(), 0u8..3, -9i64..10, 0i64..6, 0i64..12, 0u8..4);
    prop::collection::vec(step, 0..160).prop_map(|steps| {
        let mut t = -20_000i64;
        let mut out = Vec::new();
        for (i, (left, k, v, forward, back, nudge)) in steps.into_iter().enumerate() {
            t += forward * 500;
            let ts = match back {
                0 => t - 15_000,
                1..=3 => t - 6_000 + back * 1_000,
                4..=7 => t - back * 500,
                _ => t,
            } - i64::from(nudge == 0);
            let id = u32::try_from(i).expect("few events");
            out.push((left, Ev { id, k, v, ts }));
        }
        out
    })
}

/// The model's output and the pipeline's, for a one-source pipeline.
fn both<P: Pipeline<Event = Ev>>(
    m: &mut dyn Model,
    events: &[(bool, Ev)],
) -> (Vec<String>, Vec<String>) {
    let expected = run_model(m, events, 1, DELAY);
    let got = run_pipeline::<P>(events.iter().map(|(_, e)| e.clone()));
    (expected, got)
}

fn two_sources<F, I>(events: &[(bool, Ev)], wrap: F) -> Vec<I>
where
    F: Fn(bool, Ev) -> I,
{
    events.iter().map(|(l, e)| wrap(*l, e.clone())).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn tumbling_windows_match_the_model(events in arb_events()) {
        let mut m = Aligned::new(TUMBLE.0, TUMBLE.0, TUMBLE.1, true);
        let (expected, got) = both::<Tumble>(&mut m, &events);
        prop_assert_eq!(got, expected);
    }

    #[test]
    fn sliding_windows_match_the_model(events in arb_events()) {
        let mut m = Aligned::new(SLIDE.0, SLIDE.1, SLIDE.2, true);
        let (expected, got) = both::<Slide>(&mut m, &events);
        prop_assert_eq!(got, expected);
    }

    #[test]
    fn session_windows_match_the_model(events in arb_events()) {
        let mut m = SessionModel { gap: GAP.0, lateness: GAP.1, pending: BTreeMap::new() };
        let (expected, got) = both::<Sessions>(&mut m, &events);
        prop_assert_eq!(got, expected);
    }

    #[test]
    fn global_windows_match_the_model(events in arb_events()) {
        let mut m = Aligned::new(GLOBAL_TUMBLE.0, GLOBAL_TUMBLE.0, GLOBAL_TUMBLE.1, false);
        let (expected, got) = both::<GlobalTumble>(&mut m, &events);
        prop_assert_eq!(got, expected);
        let mut m = Aligned::new(GLOBAL_SLIDE.0, GLOBAL_SLIDE.1, GLOBAL_SLIDE.2, false);
        let (expected, got) = both::<GlobalSlide>(&mut m, &events);
        prop_assert_eq!(got, expected);
    }

    #[test]
    fn window_join_matches_the_model(events in arb_events()) {
        let mut m = WindowJoinModel {
            size: WJOIN.0, slide: WJOIN.1, lateness: WJOIN.2,
            arrived: Vec::new(), emitted: BTreeSet::new(),
        };
        let expected = run_model(&mut m, &events, 2, JOIN_DELAY);
        let got = run_pipeline::<WJoin>(two_sources(&events, |l, e| {
            if l { w_join::Input::Left(e) } else { w_join::Input::Right(e) }
        }));
        prop_assert_eq!(got, expected);
    }

    #[test]
    fn interval_join_matches_the_model(events in arb_events()) {
        let mut m = IntervalJoinModel { lower: IJOIN.0, upper: IJOIN.1, kept: Vec::new() };
        let expected = run_model(&mut m, &events, 2, JOIN_DELAY);
        let got = run_pipeline::<IJoin>(two_sources(&events, |l, e| {
            if l { i_join::Input::Left(e) } else { i_join::Input::Right(e) }
        }));
        prop_assert_eq!(got, expected);
    }
}

/// The generator does what the tests rely on: out-of-order and late events, rows, and
/// pairs, in every window kind (checked on a fixed seed, not on every case).
#[test]
fn the_random_events_exercise_late_and_out_of_order_cases() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{Config, TestRng, TestRunner};
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(proptest::test_runner::RngAlgorithm::ChaCha, &[7; 32]),
    );
    let mut events = Vec::new();
    while events.len() < 120 {
        events = arb_events().new_tree(&mut runner).unwrap().current();
    }
    let out = run_pipeline::<Tumble>(events.iter().map(|(_, e)| e.clone()));
    let late = out.iter().filter(|l| l.starts_with(r#"{"stage""#)).count();
    assert!(late > 0 && late < out.len(), "{out:?}");
    let out = run_pipeline::<Sessions>(events.iter().map(|(_, e)| e.clone()));
    assert!(out.iter().any(|l| l.starts_with(r#"{"stage""#)), "{out:?}");
    let pairs = run_pipeline::<IJoin>(two_sources(&events, |l, e| {
        if l {
            i_join::Input::Left(e)
        } else {
            i_join::Input::Right(e)
        }
    }));
    assert!(pairs.iter().any(|l| l.contains(r#""left""#)), "{pairs:?}");
}

//! The throughput workloads: each one is a set of implementations of the same
//! computation (a hand-written loop, the `pipeline!` version, and for some timely
//! dataflow), run over the same pre-generated events, with a digest of their results
//! that must be equal across implementations.
//!
//! # Adding a workload
//!
//! Implement [`Workload`] and add it to [`registry`]: `prepare` generates the events (once,
//! before timing) and `run` feeds them to one implementation. Everything else (warm-up,
//! best of 3, ratios, memory in a child process, report, chart) comes for free. The
//! Nexmark queries q1, q5, q7 and q8 (`simplestream_examples::nexmark`) are in
//! `nexmark_bench.rs`.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use simplestream::pipeline::Discard;
use simplestream::state::FastMap;
use simplestream::window::align;
use simplestream::{pipeline, Collector, Pipeline};

use crate::events::{self, Ev, Payment, SEv, Sale, MAX_DELAY_MS};
use crate::inline_key::Inline;

/// An implementation of a workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Impl {
    /// A hand-written loop: the limit.
    Hand,
    /// The `pipeline!` version.
    Pipeline,
    /// Timely dataflow, one worker.
    Timely,
}

impl Impl {
    pub const ALL: [Impl; 3] = [Impl::Hand, Impl::Pipeline, Impl::Timely];
    pub fn name(self) -> &'static str {
        match self {
            Impl::Hand => "hand",
            Impl::Pipeline => "pipeline",
            Impl::Timely => "timely",
        }
    }
    pub fn parse(s: &str) -> Option<Impl> {
        Impl::ALL.into_iter().find(|i| i.name() == s)
    }
}

/// What an implementation computed; equal across the implementations of a workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Digest {
    /// Output rows (or final keys, for running aggregates).
    pub rows: u64,
    /// A hash of every row (ordered for outputs, order-free for final state).
    pub check: u64,
    /// Late events.
    pub late: u64,
}

#[inline]
pub fn mix(h: u64, x: u64) -> u64 {
    (h.rotate_left(5) ^ x).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

fn entry_hash(key: u64, count: u64, amount: f64) -> u64 {
    mix(mix(mix(0x1234, key), count), amount.to_bits())
}

pub fn str_hash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

/// Order-free digest of final per-key state.
fn state_digest<'a>(entries: impl Iterator<Item = (u64, u64, f64)> + 'a) -> Digest {
    let mut d = Digest::default();
    for (k, c, a) in entries {
        d.rows += 1;
        d.check = d.check.wrapping_add(entry_hash(k, c, a));
    }
    d
}

/// A collector that keeps only a digest of the rows (ordered).
#[derive(Default)]
pub struct Tally(pub Digest);

impl Tally {
    #[inline]
    fn window_row(&mut self, key: u64, start: i64, count: u64, amount: f64) {
        self.0.rows += 1;
        self.0.check = mix(
            self.0.check,
            mix(entry_hash(key, count, amount), start as u64),
        );
    }
    #[inline]
    fn pair(&mut self, key: u64, sale_ts: i64, pay_ts: i64, ts: i64) {
        self.0.rows += 1;
        self.0.check = mix(
            self.0.check,
            mix(mix(mix(key, sale_ts as u64), pay_ts as u64), ts as u64),
        );
    }
}

/// One workload: its events and its implementations.
pub trait Workload {
    /// Short name (used on the command line and in the report).
    fn name(&self) -> &'static str;
    /// One line saying what it computes.
    fn describe(&self) -> String;
    /// Size of the key space, for bytes of state per key (None: not keyed that way).
    fn keys(&self) -> Option<u64>;
    /// The implementations it has.
    fn impls(&self) -> Vec<Impl>;
    /// Generates the events (before any timing).
    fn prepare(&mut self, n: usize);
    /// Number of events prepared.
    fn len(&self) -> usize;
    /// Runs one implementation over the events: time of the processing only, and a digest
    /// of the results (computed after the clock stopped). `on_start` is called right
    /// before the clock starts, after any per-run setup (the memory probe resets the
    /// peak-RSS counter there).
    fn run(&self, imp: Impl, on_start: &mut dyn FnMut()) -> (Duration, Digest);
    /// Frees the events.
    fn release(&mut self);
}

/// Every workload, in report order.
pub fn registry(keys: u64) -> Vec<Box<dyn Workload>> {
    let w: Vec<Box<dyn Workload>> = vec![
        Box::new(CountByKey::new(keys)),
        Box::new(CountByStringKey::new(keys)),
        Box::new(Windowed::tumbling(keys)),
        Box::new(Windowed::sliding(keys)),
        Box::new(IntervalJoinW::new()),
    ];
    // Nexmark q1, q5, q7, q8 (simplestream_examples::nexmark).
    w.into_iter()
        .chain(crate::nexmark_bench::workloads())
        .collect()
}

// ---- count_by_key: u64 keys -------------------------------------------------------------

pipeline! {
    /// Per-key count and sum, u64 keys.
    pub pipeline CountByKeyP;
    source events: Ev, event_time = |e| e.ts, max_delay = 5s;
    per_key = events
        .key_by(key: u64 = |e| e.key)
        .aggregate(count = count(), amount: f64 = sum(|e| e.amount));
}

pub struct CountByKey {
    keys: u64,
    events: Arc<Vec<Ev>>,
}

impl CountByKey {
    pub fn new(keys: u64) -> Self {
        CountByKey {
            keys,
            events: Arc::new(Vec::new()),
        }
    }
}

/// The pipeline run over `events`, for the checkpoint benchmarks too.
pub fn count_pipeline(events: &[Ev]) -> CountByKeyP {
    let mut p = CountByKeyP::new();
    for e in events {
        p.process(*e, &mut Discard);
    }
    p
}

impl Workload for CountByKey {
    fn name(&self) -> &'static str {
        "count_by_key"
    }
    fn describe(&self) -> String {
        format!(
            "running count + sum per key, {} u64 keys, no window",
            self.keys
        )
    }
    fn keys(&self) -> Option<u64> {
        Some(self.keys)
    }
    fn impls(&self) -> Vec<Impl> {
        Impl::ALL.to_vec()
    }
    fn prepare(&mut self, n: usize) {
        self.events = Arc::new(events::events(1, n, self.keys));
    }
    fn len(&self) -> usize {
        self.events.len()
    }
    fn release(&mut self) {
        self.events = Arc::new(Vec::new());
    }
    fn run(&self, imp: Impl, on_start: &mut dyn FnMut()) -> (Duration, Digest) {
        let ev = &self.events;
        match imp {
            Impl::Hand => {
                on_start();
                let t = Instant::now();
                let mut map: FastMap<u64, (u64, f64)> = FastMap::default();
                for e in ev.iter() {
                    let a = map.entry(e.key).or_default();
                    a.0 += 1;
                    a.1 += e.amount;
                }
                let el = t.elapsed();
                (el, state_digest(map.iter().map(|(k, a)| (*k, a.0, a.1))))
            }
            Impl::Pipeline => {
                on_start();
                let t = Instant::now();
                let mut p = CountByKeyP::new();
                for e in ev.iter() {
                    p.process(*e, &mut Discard);
                }
                p.finish(&mut Discard);
                let el = t.elapsed();
                let d = state_digest(p.per_key.state.iter().map(|(k, a)| (*k, a.count, a.amount)));
                (el, d)
            }
            Impl::Timely => {
                on_start();
                timely_impl::count(ev.clone())
            }
        }
    }
}

// ---- count_by_key_string: String keys ----------------------------------------------------

pipeline! {
    /// Per-key count and sum, String keys.
    pub pipeline CountByStringKeyP;
    source events: SEv, event_time = |e| e.ts, max_delay = 5s;
    per_key = events
        .key_by(customer: String = |e| e.customer.clone())
        .aggregate(count = count(), amount: f64 = sum(|e| e.amount));
}

pub struct CountByStringKey {
    keys: u64,
    events: Vec<SEv>,
}

impl CountByStringKey {
    pub fn new(keys: u64) -> Self {
        CountByStringKey {
            keys,
            events: Vec::new(),
        }
    }
}

impl Workload for CountByStringKey {
    fn name(&self) -> &'static str {
        "count_by_key_string"
    }
    fn describe(&self) -> String {
        format!(
            "running count + sum per key, {} String keys (the hand loop keeps keys inline in its buckets, up to 22 bytes, as `pipeline!`'s `KeyStr` does; both take events by value, as `process` does)",
            self.keys
        )
    }
    fn keys(&self) -> Option<u64> {
        Some(self.keys)
    }
    fn impls(&self) -> Vec<Impl> {
        vec![Impl::Hand, Impl::Pipeline]
    }
    fn prepare(&mut self, n: usize) {
        self.events = events::string_events(1, n, self.keys);
    }
    fn len(&self) -> usize {
        self.events.len()
    }
    fn release(&mut self) {
        self.events = Vec::new();
    }
    fn run(&self, imp: Impl, on_start: &mut dyn FnMut()) -> (Duration, Digest) {
        // `process` takes events by value: both implementations consume an owned copy,
        // made before the clock starts (dropping each event is part of both runs).
        let owned = crate::owned_copy(&self.events);
        // Keys are read in place on both sides: callgrind counts the digest too.
        let add = |d: &mut Digest, k: &str, c: u64, a: f64| {
            d.rows += 1;
            d.check = d.check.wrapping_add(entry_hash(str_hash(k), c, a));
        };
        match imp {
            Impl::Hand => {
                on_start();
                let t = Instant::now();
                // Keys inline in the buckets: no allocation for a new key, no pointer
                // to follow (faster here than `String` keys looked up by borrow).
                let mut map: FastMap<Inline, (u64, f64)> = FastMap::default();
                for e in owned {
                    match map.get_mut(&Inline::new(&e.customer)) {
                        Some(a) => {
                            a.0 += 1;
                            a.1 += e.amount;
                        }
                        None => {
                            map.insert(Inline::new(&e.customer), (1, 0.0 + e.amount));
                        }
                    }
                }
                let el = t.elapsed();
                let mut d = Digest::default();
                for (k, a) in &map {
                    add(&mut d, k.text(), a.0, a.1);
                }
                (el, d)
            }
            Impl::Pipeline => {
                on_start();
                let t = Instant::now();
                let mut p = CountByStringKeyP::new();
                for e in owned {
                    p.process(e, &mut Discard);
                }
                p.finish(&mut Discard);
                let el = t.elapsed();
                let mut d = Digest::default();
                for (k, a) in p.per_key.state.iter() {
                    add(&mut d, &k, a.count, a.amount);
                }
                (el, d)
            }
            Impl::Timely => unreachable!("no timely version"),
        }
    }
}

/// The String-key pipeline with `keys` keys, each seen `per_key` times (checkpoint benches).
pub fn string_state(keys: u64, per_key: u64) -> CountByStringKeyP {
    let mut p = CountByStringKeyP::new();
    let mut r = events::Rng::new(7);
    for round in 0..per_key {
        for k in 0..keys {
            let x = r.next();
            p.process(
                SEv {
                    customer: events::key_string(k),
                    amount: (x % 10_000) as f64 / 100.0,
                    ts: events::T0 + (round * keys + k) as i64,
                },
                &mut Discard,
            );
        }
    }
    p
}

// ---- windows: tumbling 5 min, sliding 10 min / 1 min ------------------------------------

pipeline! {
    /// Per-key count and sum in 5-minute tumbling windows.
    pub pipeline TumblingP;
    source events: Ev, event_time = |e| e.ts, max_delay = 5s;
    windows = events
        .key_by(key: u64 = |e| e.key)
        .window(tumbling(5min))
        .aggregate(count = count(), amount: f64 = sum(|e| e.amount));
    sink windows;
}

pipeline! {
    /// Per-key count and sum in 10-minute windows sliding by 1 minute.
    pub pipeline SlidingP;
    source events: Ev, event_time = |e| e.ts, max_delay = 5s;
    windows = events
        .key_by(key: u64 = |e| e.key)
        .window(sliding(10min, 1min))
        .aggregate(count = count(), amount: f64 = sum(|e| e.amount));
    sink windows;
}

impl Collector<tumbling_p::Output> for Tally {
    #[inline]
    fn collect(&mut self, o: tumbling_p::Output) {
        match o {
            tumbling_p::Output::Windows(r) => {
                self.window_row(r.key, r.window_start, r.count, r.amount)
            }
            tumbling_p::Output::Late(_) => self.0.late += 1,
        }
    }
}

impl Collector<sliding_p::Output> for Tally {
    #[inline]
    fn collect(&mut self, o: sliding_p::Output) {
        match o {
            sliding_p::Output::Windows(r) => {
                self.window_row(r.key, r.window_start, r.count, r.amount)
            }
            sliding_p::Output::Late(_) => self.0.late += 1,
        }
    }
}

pub struct Windowed {
    keys: u64,
    size: i64,
    slide: i64,
    events: Arc<Vec<Ev>>,
}

impl Windowed {
    pub fn tumbling(keys: u64) -> Self {
        Windowed {
            keys,
            size: 300_000,
            slide: 300_000,
            events: Arc::new(Vec::new()),
        }
    }
    pub fn sliding(keys: u64) -> Self {
        Windowed {
            keys,
            size: 600_000,
            slide: 60_000,
            events: Arc::new(Vec::new()),
        }
    }
    fn is_tumbling(&self) -> bool {
        self.size == self.slide
    }
}

/// Hand-written event-time windows: a ring of per-window maps indexed by
/// `(start - first) / slide`, a watermark `max_ts - 5s`, windows closing when the
/// watermark reaches their end, each closed window's rows sorted by key (the same output
/// order as the pipeline: by window end, then key).
pub struct HandWindows {
    size: i64,
    slide: i64,
    first: i64,
    ring: VecDeque<FastMap<u64, (u64, f64)>>,
    /// (start, ring index) of the last window looked up.
    cached: (i64, usize),
    max_ts: i64,
    wm: i64,
    pub out: Tally,
}

impl HandWindows {
    pub fn new(size: i64, slide: i64) -> Self {
        HandWindows {
            size,
            slide,
            first: 0,
            ring: VecDeque::new(),
            cached: (i64::MIN, 0),
            max_ts: i64::MIN,
            wm: i64::MIN,
            out: Tally::default(),
        }
    }

    /// Ring index of the window starting at `start`, creating it (and any gap) if needed.
    #[inline]
    fn index(&mut self, start: i64) -> usize {
        if start == self.cached.0 {
            return self.cached.1;
        }
        if self.ring.is_empty() {
            self.first = start;
        }
        while start < self.first {
            self.cached = (i64::MIN, 0);
            self.ring.push_front(FastMap::default());
            self.first -= self.slide;
        }
        let i = ((start - self.first) / self.slide) as usize;
        while i >= self.ring.len() {
            self.ring.push_back(FastMap::default());
        }
        self.cached = (start, i);
        i
    }

    #[inline]
    pub fn add(&mut self, e: &Ev) {
        // The newest window holding `e`; the others are the ones before it in the ring.
        let newest = align(e.ts, self.slide);
        let mut start = newest;
        let mut late = false;
        let mut i = usize::MAX;
        while start > e.ts - self.size {
            if start + self.size <= self.wm {
                late = true;
            } else {
                i = if i == usize::MAX || i == 0 {
                    self.index(start)
                } else {
                    i - 1
                };
                let a = self.ring[i].entry(e.key).or_default();
                a.0 += 1;
                a.1 += e.amount;
            }
            start -= self.slide;
        }
        if late {
            self.out.0.late += 1;
        }
        if e.ts > self.max_ts {
            self.max_ts = e.ts;
            let wm = e.ts - MAX_DELAY_MS;
            if wm > self.wm {
                self.wm = wm;
                if !self.ring.is_empty() && self.first + self.size <= wm {
                    self.fire(wm);
                }
            }
        }
    }

    fn fire(&mut self, wm: i64) {
        self.cached = (i64::MIN, 0);
        while !self.ring.is_empty() && self.first + self.size <= wm {
            let map = self.ring.pop_front().expect("non-empty");
            let mut rows: Vec<(u64, (u64, f64))> = map.into_iter().collect();
            rows.sort_unstable_by_key(|r| r.0);
            for (k, (c, a)) in rows {
                self.out.window_row(k, self.first, c, a);
            }
            self.first += self.slide;
        }
    }

    pub fn finish(&mut self) {
        self.fire(i64::MAX);
    }
}

impl Workload for Windowed {
    fn name(&self) -> &'static str {
        if self.is_tumbling() {
            "tumbling_5min"
        } else {
            "sliding_10min_1min"
        }
    }
    fn describe(&self) -> String {
        if self.is_tumbling() {
            format!(
                "count + sum per key in 5-minute tumbling windows, {} u64 keys, rows counted",
                self.keys
            )
        } else {
            format!("count + sum per key in 10-minute windows sliding by 1 minute (10 windows per event), {} u64 keys, rows counted", self.keys)
        }
    }
    fn keys(&self) -> Option<u64> {
        Some(self.keys)
    }
    fn impls(&self) -> Vec<Impl> {
        if self.is_tumbling() {
            Impl::ALL.to_vec()
        } else {
            vec![Impl::Hand, Impl::Pipeline]
        }
    }
    fn prepare(&mut self, n: usize) {
        self.events = Arc::new(events::events(2, n, self.keys));
    }
    fn len(&self) -> usize {
        self.events.len()
    }
    fn release(&mut self) {
        self.events = Arc::new(Vec::new());
    }
    fn run(&self, imp: Impl, on_start: &mut dyn FnMut()) -> (Duration, Digest) {
        let ev = &self.events;
        match imp {
            Impl::Hand => {
                on_start();
                let t = Instant::now();
                let mut w = HandWindows::new(self.size, self.slide);
                for e in ev.iter() {
                    w.add(e);
                }
                w.finish();
                (t.elapsed(), w.out.0)
            }
            Impl::Pipeline => {
                let mut out = Tally::default();
                on_start();
                let t = Instant::now();
                if self.is_tumbling() {
                    let mut p = TumblingP::new();
                    for e in ev.iter() {
                        p.process(*e, &mut out);
                    }
                    p.finish(&mut out);
                } else {
                    let mut p = SlidingP::new();
                    for e in ev.iter() {
                        p.process(*e, &mut out);
                    }
                    p.finish(&mut out);
                }
                (t.elapsed(), out.0)
            }
            Impl::Timely => {
                assert!(self.is_tumbling());
                on_start();
                timely_impl::tumbling(ev.clone(), self.size)
            }
        }
    }
}

// ---- interval join ----------------------------------------------------------------------

/// Interval bounds of the join: a payment matches a sale at `t` if it is at `t - 2s ..= t + 5s`.
const LOWER: i64 = 2_000;
const UPPER: i64 = 5_000;

pipeline! {
    /// Sales matched with their payments within [-2 s, +5 s].
    pub pipeline JoinP;
    source sales: Sale, event_time = |s| s.ts, max_delay = 5s;
    source payments: Payment, event_time = |p| p.ts, max_delay = 5s;
    matched = sales
        .interval_join(payments, order_id: u64 = |s| s.id, |p| p.order_id, lower = 2s, upper = 5s);
    sink matched;
}

impl Collector<join_p::Output> for Tally {
    #[inline]
    fn collect(&mut self, o: join_p::Output) {
        match o {
            join_p::Output::Matched(r) => {
                let ts = r.sales.ts.max(r.payments.ts);
                self.pair(r.order_id, r.sales.ts, r.payments.ts, ts)
            }
            join_p::Output::Late(_) => self.0.late += 1,
        }
    }
}

pub struct IntervalJoinW {
    events: Vec<join_p::Input>,
}

impl IntervalJoinW {
    pub fn new() -> Self {
        IntervalJoinW { events: Vec::new() }
    }
}

#[derive(Default)]
struct JoinBuf {
    left: Vec<(i64, Sale)>,
    right: Vec<(i64, Payment)>,
}

/// Emptied event vectors of evicted keys, per side.
type SpareBufs = (Vec<Vec<(i64, Sale)>>, Vec<Vec<(i64, Payment)>>);

/// Hand-written interval join: per-key buffers, a FIFO of (time, key) for eviction. An
/// event is kept while a non-late event of the other side can still match it (`ts +
/// lower + upper >= watermark`), and the vectors of evicted keys are reused for new keys
/// (as the runtime does: without it, allocating them is a third of the work).
struct HandJoin {
    buffers: FastMap<u64, JoinBuf>,
    fifo: VecDeque<(i64, u64)>,
    spare: SpareBufs,
    max_ts: [i64; 2],
    wm: i64,
    out: Tally,
}

impl HandJoin {
    fn new() -> Self {
        HandJoin {
            buffers: FastMap::default(),
            fifo: VecDeque::new(),
            spare: (Vec::new(), Vec::new()),
            max_ts: [i64::MIN; 2],
            wm: i64::MIN,
            out: Tally::default(),
        }
    }

    #[inline]
    fn sale(&mut self, s: &Sale) {
        let ts = s.ts;
        self.max_ts[0] = self.max_ts[0].max(ts);
        if ts + UPPER < self.wm {
            self.out.0.late += 1;
        } else {
            let b = self.buffers.entry(s.id).or_default();
            for (rts, _) in &b.right {
                if *rts >= ts - LOWER && *rts <= ts + UPPER {
                    self.out.pair(s.id, ts, *rts, ts.max(*rts));
                }
            }
            if b.left.capacity() == 0 {
                b.left = self.spare.0.pop().unwrap_or_default();
            }
            b.left.push((ts, *s));
            self.fifo.push_back((ts, s.id));
        }
        self.advance();
    }

    #[inline]
    fn payment(&mut self, p: &Payment) {
        let ts = p.ts;
        self.max_ts[1] = self.max_ts[1].max(ts);
        if ts + LOWER < self.wm {
            self.out.0.late += 1;
        } else {
            let b = self.buffers.entry(p.order_id).or_default();
            for (lts, _) in &b.left {
                if ts >= *lts - LOWER && ts <= *lts + UPPER {
                    self.out.pair(p.order_id, *lts, ts, ts.max(*lts));
                }
            }
            if b.right.capacity() == 0 {
                b.right = self.spare.1.pop().unwrap_or_default();
            }
            b.right.push((ts, *p));
            self.fifo.push_back((ts, p.order_id));
        }
        self.advance();
    }

    #[inline]
    fn advance(&mut self) {
        let wm = self.max_ts[0]
            .min(self.max_ts[1])
            .saturating_sub(MAX_DELAY_MS);
        if wm <= self.wm {
            return;
        }
        self.wm = wm;
        let horizon = LOWER + UPPER;
        while let Some(&(t, key)) = self.fifo.front() {
            if t + horizon >= wm {
                break;
            }
            self.fifo.pop_front();
            if let Some(b) = self.buffers.get_mut(&key) {
                b.left.retain(|l| l.0 + horizon >= wm);
                b.right.retain(|r| r.0 + horizon >= wm);
                if b.left.is_empty() && b.right.is_empty() {
                    let b = self.buffers.remove(&key).expect("present");
                    keep_small(&mut self.spare.0, b.left);
                    keep_small(&mut self.spare.1, b.right);
                }
            }
        }
    }
}

/// Keeps an emptied vector of at most 16 events for a new key (at most 4096 of them).
fn keep_small<T>(spare: &mut Vec<Vec<T>>, v: Vec<T>) {
    if (1..=16).contains(&v.capacity()) && spare.len() < 4096 {
        spare.push(v);
    }
}

impl Workload for IntervalJoinW {
    fn name(&self) -> &'static str {
        "interval_join"
    }
    fn describe(&self) -> String {
        "sales joined with payments on order id within [-2 s, +5 s] (two sources, pairs counted)"
            .to_string()
    }
    fn keys(&self) -> Option<u64> {
        None
    }
    fn impls(&self) -> Vec<Impl> {
        vec![Impl::Hand, Impl::Pipeline]
    }
    fn prepare(&mut self, n: usize) {
        self.events = events::sales_and_payments(3, n)
            .into_iter()
            .map(|e| match e {
                Ok(s) => join_p::Input::Sales(s),
                Err(p) => join_p::Input::Payments(p),
            })
            .collect();
    }
    fn len(&self) -> usize {
        self.events.len()
    }
    fn release(&mut self) {
        self.events = Vec::new();
    }
    fn run(&self, imp: Impl, on_start: &mut dyn FnMut()) -> (Duration, Digest) {
        match imp {
            Impl::Hand => {
                on_start();
                let t = Instant::now();
                let mut j = HandJoin::new();
                for e in &self.events {
                    match e {
                        join_p::Input::Sales(s) => j.sale(s),
                        join_p::Input::Payments(p) => j.payment(p),
                    }
                }
                (t.elapsed(), j.out.0)
            }
            Impl::Pipeline => {
                let mut out = Tally::default();
                on_start();
                let t = Instant::now();
                let mut p = JoinP::new();
                for e in &self.events {
                    p.process(e.clone(), &mut out);
                }
                p.finish(&mut out);
                (t.elapsed(), out.0)
            }
            Impl::Timely => unreachable!("no timely version"),
        }
    }
}

// ---- timely ------------------------------------------------------------------------------

mod timely_impl {
    use super::*;
    use std::collections::BTreeMap;
    use timely::container::CapacityContainerBuilder;
    use timely::dataflow::channels::pact::Pipeline as Pact;
    use timely::dataflow::operators::{Input, Operator, Probe};
    use timely::dataflow::{InputHandle, ProbeHandle};

    /// Events sent between two `worker.step()`s.
    const BATCH: usize = 1024;

    /// Per-key count and sum in one `unary_frontier` operator; its map is handed out
    /// when the input closes.
    pub fn count(events: Arc<Vec<Ev>>) -> (Duration, Digest) {
        let (el, map) = timely::execute_directly(move |worker| {
            let t = Instant::now();
            let mut input: InputHandle<u64, CapacityContainerBuilder<Vec<Ev>>> = InputHandle::new();
            let probe = ProbeHandle::new();
            type Shared = Rc<RefCell<Option<FastMap<u64, (u64, f64)>>>>;
            let result: Shared = Default::default();
            let res = result.clone();
            worker.dataflow::<u64, _, _>(|scope| {
                scope
                    .input_from(&mut input)
                    .unary_frontier::<CapacityContainerBuilder<Vec<()>>, _, _, _>(
                        Pact,
                        "CountByKey",
                        move |_cap, _info| {
                            let mut map: FastMap<u64, (u64, f64)> = FastMap::default();
                            move |(input, frontier), _output| {
                                input.for_each(|_cap, data| {
                                    for e in data.iter() {
                                        let a = map.entry(e.key).or_default();
                                        a.0 += 1;
                                        a.1 += e.amount;
                                    }
                                });
                                if frontier.is_empty() {
                                    let mut r = res.borrow_mut();
                                    if r.is_none() {
                                        *r = Some(std::mem::take(&mut map));
                                    }
                                }
                            }
                        },
                    )
                    .probe_with(&probe);
            });
            for chunk in events.chunks(BATCH) {
                for e in chunk {
                    input.send(*e);
                }
                worker.step();
            }
            drop(input);
            while !probe.done() {
                worker.step();
            }
            let el = t.elapsed();
            let map = result.borrow_mut().take().expect("operator saw the end");
            (el, map.into_iter().collect::<Vec<_>>())
        });
        (
            el,
            state_digest(map.into_iter().map(|(k, a)| (k, a.0, a.1))),
        )
    }

    /// Tumbling windows: the input's timestamp is the watermark (`max_ts - 5s`, advanced
    /// after every batch); the operator buckets events by their own time and closes a
    /// window when the frontier passes its end, rows sorted by key.
    pub fn tumbling(events: Arc<Vec<Ev>>, size: i64) -> (Duration, Digest) {
        let (el, d) = timely::execute_directly(move |worker| {
            let t = Instant::now();
            let mut input: InputHandle<u64, CapacityContainerBuilder<Vec<Ev>>> = InputHandle::new();
            let probe = ProbeHandle::new();
            let result: Rc<RefCell<Option<Digest>>> = Default::default();
            let res = result.clone();
            worker.dataflow::<u64, _, _>(|scope| {
                scope
                    .input_from(&mut input)
                    .unary_frontier::<CapacityContainerBuilder<Vec<()>>, _, _, _>(
                        Pact,
                        "Tumbling",
                        move |_cap, _info| {
                            let mut windows: BTreeMap<i64, FastMap<u64, (u64, f64)>> =
                                BTreeMap::new();
                            let mut closed_upto = i64::MIN;
                            let mut out = Tally::default();
                            move |(input, frontier), _output| {
                                input.for_each(|_cap, data| {
                                    for e in data.iter() {
                                        let start = align(e.ts, size);
                                        if start + size <= closed_upto {
                                            out.0.late += 1;
                                            continue;
                                        }
                                        let a = windows
                                            .entry(start)
                                            .or_default()
                                            .entry(e.key)
                                            .or_default();
                                        a.0 += 1;
                                        a.1 += e.amount;
                                    }
                                });
                                let wm = match frontier.frontier().first() {
                                    Some(&f) => f as i64,
                                    None => i64::MAX,
                                };
                                if wm > closed_upto {
                                    closed_upto = wm;
                                    while let Some(entry) = windows.first_entry() {
                                        let start = *entry.key();
                                        if start + size > wm {
                                            break;
                                        }
                                        let mut rows: Vec<_> = entry.remove().into_iter().collect();
                                        rows.sort_unstable_by_key(|r: &(u64, (u64, f64))| r.0);
                                        for (k, (c, a)) in rows {
                                            out.window_row(k, start, c, a);
                                        }
                                    }
                                }
                                if frontier.is_empty() {
                                    *res.borrow_mut() = Some(out.0);
                                }
                            }
                        },
                    )
                    .probe_with(&probe);
            });
            let mut max_ts = i64::MIN;
            for chunk in events.chunks(BATCH) {
                for e in chunk {
                    max_ts = max_ts.max(e.ts);
                    input.send(*e);
                }
                let wm = (max_ts - MAX_DELAY_MS).max(0) as u64;
                if wm > *input.time() {
                    input.advance_to(wm);
                }
                worker.step();
            }
            drop(input);
            while !probe.done() {
                worker.step();
            }
            let el = t.elapsed();
            let d = result.borrow_mut().take().expect("operator saw the end");
            (el, d)
        });
        (el, d)
    }
}

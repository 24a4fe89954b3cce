//! Nexmark q1, q5, q7 and q8 (`simplestream_examples::nexmark`): each query's `pipeline!`
//! version against a hand-written loop with the same semantics (same windows, watermark
//! `max event time - 1 s` per source, same tie-breaking, same output order), on events of
//! the `nexmark` generator produced once before timing.
//!
//! The hand loops read the events by reference, and so do the pipelines, through
//! `Pipeline::process_ref`: none of their stages keeps an event (q8's join folds its
//! events as they arrive, since its only reader is an aggregate of one-side columns).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use simplestream::state::FastMap;
use simplestream::window::align;
use simplestream::{Collector, Pipeline};
use simplestream_examples::nexmark::{
    self as queries, inputs, q1, q5, q7, q8, Auction, Bid, Person, Q1, Q5, Q7, Q8,
};

use crate::workloads::{mix, str_hash, Digest, Impl, Workload};

/// Watermark delay of every Nexmark pipeline (`max_delay = 1s`).
const DELAY: i64 = 1_000;

/// The four workloads, in report order.
pub fn workloads() -> Vec<Box<dyn Workload>> {
    vec![
        Box::new(BidQuery::new(Query::Q1)),
        Box::new(BidQuery::new(Query::Q5)),
        Box::new(BidQuery::new(Query::Q7)),
        Box::new(Q8W::new()),
    ]
}

// ---- events --------------------------------------------------------------------------

/// The first `n` bids of the generator (`queries::events`, fixed base time).
fn bids(n: usize) -> Vec<Bid> {
    let mut v = Vec::with_capacity(n);
    v.extend(
        queries::events(0, usize::MAX)
            .filter_map(inputs::bids)
            .take(n),
    );
    v
}

/// The first `n` persons and auctions of the generator, as q8's input.
///
/// They are 4 events in 50 (a person then three auctions, then 46 bids), so generating the
/// whole stream would mean making 12.5 events per input, most of them bids that are
/// thrown away. The generator can skip a type (`with_type_filter`, same event numbers,
/// same events): persons and auctions are generated on their own and interleaved in
/// generator order. A prefix is checked against `queries::events` + `inputs::q8`.
fn q8_inputs(n: usize) -> Vec<q8::Input> {
    use nexmark::event::{Event as N, EventType};
    let config = nexmark::config::NexmarkConfig {
        base_time: queries::BASE_TIME,
        ..Default::default()
    };
    let (pp, ap) = (config.person_proportion, config.auction_proportion);
    let mut persons =
        nexmark::EventGenerator::new(config.clone()).with_type_filter(EventType::Person);
    let mut auctions = nexmark::EventGenerator::new(config).with_type_filter(EventType::Auction);
    let mut v = Vec::with_capacity(n);
    'blocks: loop {
        for (g, k) in [(&mut persons, pp), (&mut auctions, ap)] {
            for _ in 0..k {
                if v.len() == n {
                    break 'blocks;
                }
                v.push(match g.next().expect("endless") {
                    N::Person(p) => q8::Input::Persons(Person {
                        id: p.id as u64,
                        name: p.name,
                        city: p.city,
                        state: p.state,
                        ts: p.date_time as i64,
                    }),
                    N::Auction(a) => q8::Input::Auctions(Auction {
                        id: a.id as u64,
                        seller: a.seller as u64,
                        category: a.category as u64,
                        initial_bid: a.initial_bid as u64,
                        reserve: a.reserve as u64,
                        expires: a.expires as i64,
                        ts: a.date_time as i64,
                    }),
                    N::Bid(_) => unreachable!("type filter"),
                });
            }
        }
    }
    let check = n.min(8_000);
    let reference: Vec<q8::Input> = queries::events(0, usize::MAX)
        .filter_map(inputs::q8)
        .take(check)
        .collect();
    assert!(
        v[..check] == reference[..],
        "q8 inputs differ from queries::events + inputs::q8"
    );
    v
}

// ---- digests -------------------------------------------------------------------------

/// Ordered digest of output rows (and count of late events), shared by both
/// implementations of a query.
#[derive(Default)]
struct Rows(Digest);

impl Rows {
    /// One output row, given as its fields.
    #[inline]
    fn row(&mut self, fields: &[u64]) {
        self.0.rows += 1;
        let h = fields.iter().fold(0x1234, |h, x| mix(h, *x));
        self.0.check = mix(self.0.check, h);
    }
    #[inline]
    fn euro(&mut self, auction: u64, bidder: u64, price_eur: u64, ts: i64) {
        self.row(&[auction, bidder, price_eur, ts as u64]);
    }
    #[inline]
    fn hot(&mut self, slide_end: i64, window_start: i64, window_end: i64, top: (u64, u64)) {
        self.row(&[
            slide_end as u64,
            window_start as u64,
            window_end as u64,
            top.0,
            top.1,
        ]);
    }
    #[inline]
    fn best(&mut self, start: i64, end: i64, best: (u64, u64, u64), bids: u64) {
        self.row(&[start as u64, end as u64, best.0, best.1, best.2, bids]);
    }
    #[inline]
    fn opened(&mut self, start: i64, end: i64, person: u64, name: &str, auctions: u64) {
        self.row(&[start as u64, end as u64, person, str_hash(name), auctions]);
    }
}

impl Collector<q1::Output> for Rows {
    #[inline]
    fn collect(&mut self, o: q1::Output) {
        match o {
            q1::Output::Euros(e) => self.euro(e.auction, e.bidder, e.price_eur, e.ts),
            q1::Output::Late(_) => self.0.late += 1,
        }
    }
}

impl Collector<q5::Output> for Rows {
    #[inline]
    fn collect(&mut self, o: q5::Output) {
        match o {
            q5::Output::Hot(h) => self.hot(h.slide_end, h.window_start, h.window_end, h.top),
            q5::Output::Late(_) => self.0.late += 1,
        }
    }
}

impl Collector<q7::Output> for Rows {
    #[inline]
    fn collect(&mut self, o: q7::Output) {
        match o {
            q7::Output::Q7(r) => self.best(r.window_start, r.window_end, r.best, r.bids),
            q7::Output::Late(_) => self.0.late += 1,
        }
    }
}

impl Collector<q8::Output> for Rows {
    #[inline]
    fn collect(&mut self, o: q8::Output) {
        match o {
            q8::Output::Q8(r) => {
                self.opened(r.window_start, r.window_end, r.person, &r.name, r.auctions)
            }
            q8::Output::Late(_) => self.0.late += 1,
        }
    }
}

// ---- q1, q5, q7: bids only -----------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum Query {
    Q1,
    Q5,
    Q7,
}

pub struct BidQuery {
    query: Query,
    bids: Vec<Bid>,
}

impl BidQuery {
    fn new(query: Query) -> Self {
        BidQuery {
            query,
            bids: Vec::new(),
        }
    }
}

impl Workload for BidQuery {
    fn name(&self) -> &'static str {
        match self.query {
            Query::Q1 => "q1",
            Query::Q5 => "q5",
            Query::Q7 => "q7",
        }
    }
    fn describe(&self) -> String {
        match self.query {
            Query::Q1 => "Nexmark q1: every bid's price in euros (a map; every bid is an output row)",
            Query::Q5 => "Nexmark q5: bids per auction in 2 s windows sliding by 500 ms, then the auction with the most bids per window (two chained windowed stages)",
            Query::Q7 => "Nexmark q7: the highest bid (and the bid count) per 1 s tumbling window (one key)",
        }
        .to_string()
    }
    fn keys(&self) -> Option<u64> {
        None
    }
    fn impls(&self) -> Vec<Impl> {
        vec![Impl::Hand, Impl::Pipeline]
    }
    fn prepare(&mut self, n: usize) {
        self.bids = bids(n);
    }
    fn len(&self) -> usize {
        self.bids.len()
    }
    fn release(&mut self) {
        self.bids = Vec::new();
    }
    fn run(&self, imp: Impl, on_start: &mut dyn FnMut()) -> (Duration, Digest) {
        let events = &self.bids;
        match (self.query, imp) {
            (Query::Q1, Impl::Hand) => {
                on_start();
                let t = Instant::now();
                let mut out = Rows::default();
                for b in events {
                    out.euro(b.auction, b.bidder, queries::to_euros(b.price), b.ts);
                }
                (t.elapsed(), out.0)
            }
            (Query::Q1, Impl::Pipeline) => pipeline_run_ref::<Q1>(events, on_start),
            (Query::Q5, Impl::Hand) => {
                on_start();
                let t = Instant::now();
                let mut h = HandQ5::default();
                for b in events {
                    h.add(b);
                }
                h.finish();
                (t.elapsed(), h.out.0)
            }
            (Query::Q5, Impl::Pipeline) => pipeline_run_ref::<Q5>(events, on_start),
            (Query::Q7, Impl::Hand) => {
                on_start();
                let t = Instant::now();
                let mut h = HandQ7::default();
                for b in events {
                    h.add(b);
                }
                h.finish();
                (t.elapsed(), h.out.0)
            }
            (Query::Q7, Impl::Pipeline) => pipeline_run_ref::<Q7>(events, on_start),
            (_, Impl::Timely) => unreachable!("no timely version"),
        }
    }
}

/// The pipeline over borrowed events, outputs into a [`Rows`] digest.
fn pipeline_run_ref<P: Pipeline>(
    events: &[P::Event],
    on_start: &mut dyn FnMut(),
) -> (Duration, Digest)
where
    Rows: Collector<P::Output>,
    P::Event: Clone,
{
    let mut out = Rows::default();
    on_start();
    let t = Instant::now();
    let mut p = P::new();
    for e in events {
        p.process_ref(e, &mut out);
    }
    p.finish(&mut out);
    (t.elapsed(), out.0)
}

/// Hand-written q5: a ring of per-window count maps (window `i` starts at
/// `first + i * SLIDE`), each bid counted in its 4 windows; a window closes when the
/// watermark reaches its end, and its hottest auction (most bids, then smallest id) is
/// found with one pass over its map, which is then cleared and reused.
struct HandQ5 {
    first: i64,
    ring: VecDeque<FastMap<u64, u64>>,
    spare: Vec<FastMap<u64, u64>>,
    max_ts: i64,
    wm: i64,
    out: Rows,
}

impl Default for HandQ5 {
    fn default() -> Self {
        HandQ5 {
            first: 0,
            ring: VecDeque::new(),
            spare: Vec::new(),
            max_ts: i64::MIN,
            wm: i64::MIN,
            out: Rows::default(),
        }
    }
}

impl HandQ5 {
    const SIZE: i64 = 2_000;
    const SLIDE: i64 = 500;

    #[inline]
    fn add(&mut self, b: &Bid) {
        let ts = b.ts;
        // Windows holding ts start in (ts - SIZE, newest], every SLIDE.
        let newest = align(ts, Self::SLIDE);
        let oldest = newest - (Self::SIZE - 1 - (ts - newest)) / Self::SLIDE * Self::SLIDE;
        let mut lo = oldest;
        while lo <= newest && lo + Self::SIZE <= self.wm {
            lo += Self::SLIDE;
        }
        if lo > oldest {
            self.out.0.late += 1;
        }
        if lo <= newest {
            if self.ring.is_empty() {
                self.first = lo;
            }
            while lo < self.first {
                let m = self.spare.pop().unwrap_or_default();
                self.ring.push_front(m);
                self.first -= Self::SLIDE;
            }
            let i = ((lo - self.first) / Self::SLIDE) as usize;
            let j = ((newest - self.first) / Self::SLIDE) as usize;
            while j >= self.ring.len() {
                let m = self.spare.pop().unwrap_or_default();
                self.ring.push_back(m);
            }
            for k in i..=j {
                *self.ring[k].entry(b.auction).or_insert(0) += 1;
            }
        }
        if ts > self.max_ts {
            self.max_ts = ts;
            let wm = ts - DELAY;
            if wm > self.wm {
                self.wm = wm;
                self.close(wm);
            }
        }
    }

    fn close(&mut self, wm: i64) {
        while !self.ring.is_empty() && self.first + Self::SIZE <= wm {
            let mut m = self.ring.pop_front().expect("non-empty");
            let end = self.first + Self::SIZE;
            let mut best: Option<(u64, u64)> = None;
            for (&a, &n) in &m {
                let better = match best {
                    None => true,
                    Some((bn, ba)) => n > bn || (n == bn && a < ba),
                };
                if better {
                    best = Some((n, a));
                }
            }
            if let Some(top) = best {
                self.out.hot(end, end - Self::SLIDE, end, top);
            }
            m.clear();
            self.spare.push(m);
            self.first += Self::SLIDE;
        }
    }

    fn finish(&mut self) {
        self.close(i64::MAX);
    }
}

/// Hand-written q7: a ring of per-window (best bid, count) slots, no hashing (one key).
struct HandQ7 {
    first: i64,
    ring: VecDeque<((u64, u64, u64), u64)>,
    max_ts: i64,
    wm: i64,
    out: Rows,
}

impl Default for HandQ7 {
    fn default() -> Self {
        HandQ7 {
            first: 0,
            ring: VecDeque::new(),
            max_ts: i64::MIN,
            wm: i64::MIN,
            out: Rows::default(),
        }
    }
}

impl HandQ7 {
    const SIZE: i64 = 1_000;

    #[inline]
    fn add(&mut self, b: &Bid) {
        let ts = b.ts;
        let start = align(ts, Self::SIZE);
        if start + Self::SIZE <= self.wm {
            self.out.0.late += 1;
        } else {
            if self.ring.is_empty() {
                self.first = start;
            }
            while start < self.first {
                self.ring.push_front(((0, 0, 0), 0));
                self.first -= Self::SIZE;
            }
            let i = ((start - self.first) / Self::SIZE) as usize;
            while i >= self.ring.len() {
                self.ring.push_back(((0, 0, 0), 0));
            }
            let slot = &mut self.ring[i];
            let (p, a, bd) = (b.price, b.auction, b.bidder);
            let (bp, ba, bb) = slot.0;
            if slot.1 == 0 || p > bp || (p == bp && (a, bd) < (ba, bb)) {
                slot.0 = (p, a, bd);
            }
            slot.1 += 1;
        }
        if ts > self.max_ts {
            self.max_ts = ts;
            let wm = ts - DELAY;
            if wm > self.wm {
                self.wm = wm;
                self.close(wm);
            }
        }
    }

    fn close(&mut self, wm: i64) {
        while !self.ring.is_empty() && self.first + Self::SIZE <= wm {
            let (best, n) = self.ring.pop_front().expect("non-empty");
            if n > 0 {
                self.out.best(self.first, self.first + Self::SIZE, best, n);
            }
            self.first += Self::SIZE;
        }
    }

    fn finish(&mut self) {
        self.close(i64::MAX);
    }
}

// ---- q8: persons and auctions --------------------------------------------------------

pub struct Q8W {
    events: Vec<q8::Input>,
}

impl Q8W {
    fn new() -> Self {
        Q8W { events: Vec::new() }
    }
}

/// What q8's join + aggregate keep of one (window, person id): every pair of a person and
/// an auction of that seller is one row of the join, so the aggregate's result is the
/// largest name among the persons and `persons * auctions` rows; nothing else is buffered.
#[derive(Default)]
struct Opened {
    name: Option<String>,
    persons: u64,
    auctions: u64,
}

/// Hand-written q8: a ring of per-window maps person id -> [`Opened`] (2 s tumbling), the
/// watermark the smaller of both sources' `max ts - 1 s`; a closed window's keys with
/// both a person and an auction are emitted sorted by id.
struct HandQ8 {
    first: i64,
    ring: VecDeque<FastMap<u64, Opened>>,
    spare: Vec<FastMap<u64, Opened>>,
    rows: Vec<(u64, Opened)>,
    max_ts: [i64; 2],
    wm: i64,
    out: Rows,
}

impl HandQ8 {
    const SIZE: i64 = 2_000;

    fn new() -> Self {
        HandQ8 {
            first: 0,
            ring: VecDeque::new(),
            spare: Vec::new(),
            rows: Vec::new(),
            max_ts: [i64::MIN; 2],
            wm: i64::MIN,
            out: Rows::default(),
        }
    }

    /// The (window of `ts`, `key`) slot, or None if that window closed.
    #[inline]
    fn slot(&mut self, ts: i64, key: u64) -> Option<&mut Opened> {
        let start = align(ts, Self::SIZE);
        if start + Self::SIZE <= self.wm {
            self.out.0.late += 1;
            return None;
        }
        if self.ring.is_empty() {
            self.first = start;
        }
        while start < self.first {
            let m = self.spare.pop().unwrap_or_default();
            self.ring.push_front(m);
            self.first -= Self::SIZE;
        }
        let i = ((start - self.first) / Self::SIZE) as usize;
        while i >= self.ring.len() {
            let m = self.spare.pop().unwrap_or_default();
            self.ring.push_back(m);
        }
        Some(self.ring[i].entry(key).or_default())
    }

    #[inline]
    fn add(&mut self, e: &q8::Input) {
        match e {
            q8::Input::Persons(p) => {
                let ts = p.ts;
                if let Some(s) = self.slot(ts, p.id) {
                    s.persons += 1;
                    if s.name.as_ref().is_none_or(|n| p.name > *n) {
                        s.name = Some(p.name.clone());
                    }
                }
                self.observe(0, ts);
            }
            q8::Input::Auctions(a) => {
                if let Some(s) = self.slot(a.ts, a.seller) {
                    s.auctions += 1;
                }
                self.observe(1, a.ts);
            }
        }
    }

    #[inline]
    fn observe(&mut self, source: usize, ts: i64) {
        if ts > self.max_ts[source] {
            self.max_ts[source] = ts;
            let wm = self.max_ts[0].min(self.max_ts[1]).saturating_sub(DELAY);
            if wm > self.wm {
                self.wm = wm;
                self.close(wm);
            }
        }
    }

    fn close(&mut self, wm: i64) {
        while !self.ring.is_empty() && self.first + Self::SIZE <= wm {
            let mut m = self.ring.pop_front().expect("non-empty");
            let (start, end) = (self.first, self.first + Self::SIZE);
            self.rows
                .extend(m.drain().filter(|(_, o)| o.persons > 0 && o.auctions > 0));
            self.rows.sort_unstable_by_key(|r| r.0);
            for (person, o) in self.rows.drain(..) {
                let name = o.name.as_deref().unwrap_or_default();
                self.out
                    .opened(start, end, person, name, o.persons * o.auctions);
            }
            self.spare.push(m);
            self.first += Self::SIZE;
        }
    }

    fn finish(&mut self) {
        self.close(i64::MAX);
    }
}

impl Workload for Q8W {
    fn name(&self) -> &'static str {
        "q8"
    }
    fn describe(&self) -> String {
        "Nexmark q8: persons who opened an auction in the 2 s tumbling window they registered in (a windowed join of persons and auctions on seller id, then a windowed aggregate; inputs are persons and auctions)".to_string()
    }
    fn keys(&self) -> Option<u64> {
        None
    }
    fn impls(&self) -> Vec<Impl> {
        vec![Impl::Hand, Impl::Pipeline]
    }
    fn prepare(&mut self, n: usize) {
        self.events = q8_inputs(n);
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
                let mut h = HandQ8::new();
                for e in &self.events {
                    h.add(e);
                }
                h.finish();
                (t.elapsed(), h.out.0)
            }
            Impl::Pipeline => pipeline_run_ref::<Q8>(&self.events, on_start),
            Impl::Timely => unreachable!("no timely version"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Moves every 7th event back by up to 1.5 s: some land in windows that closed (late),
    /// others arrive out of order within the 1 s delay.
    fn disorder(i: usize, ts: &mut i64) {
        if i % 7 == 3 {
            *ts -= (mix(0x5eed, i as u64) % 1_500) as i64;
        }
    }

    fn both(w: &dyn Workload) -> Digest {
        let (_, hand) = w.run(Impl::Hand, &mut || {});
        let (_, pipe) = w.run(Impl::Pipeline, &mut || {});
        assert_eq!(hand, pipe, "{}", w.name());
        hand
    }

    #[test]
    fn hand_loops_match_the_pipelines_on_disordered_and_late_events() {
        let mut b = bids(60_000);
        for (i, x) in b.iter_mut().enumerate() {
            disorder(i, &mut x.ts);
        }
        for query in [Query::Q1, Query::Q5, Query::Q7] {
            let w = BidQuery {
                query,
                bids: b.clone(),
            };
            let d = both(&w);
            assert!(d.rows > 0);
            if query != Query::Q1 {
                assert!(d.late > 0, "some events are late");
            }
        }
        let mut e = q8_inputs(60_000);
        for (i, x) in e.iter_mut().enumerate() {
            match x {
                q8::Input::Persons(p) => disorder(i, &mut p.ts),
                q8::Input::Auctions(a) => disorder(i, &mut a.ts),
            }
        }
        let d = both(&Q8W { events: e });
        assert!(d.rows > 0 && d.late > 0, "{d:?}");
    }
}

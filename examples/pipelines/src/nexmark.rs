//! Nexmark queries q0–q5, q7, q8 written with `pipeline!`.
//!
//! Events come from the `nexmark` crate's generator, converted into local types (a
//! pipeline's event types must be `Checkpointable`, which foreign types cannot be made).
//! Where the standard queries use unbounded joins or auction expiry, these use windows
//! (documented per query); the tests check each against a plain loop with the same
//! semantics, with and without crashes.
//!
//! ```
//! use simplestream::Pipeline;
//! use simplestream_examples::nexmark::{events, inputs, Q1};
//!
//! let bids: Vec<_> = events(0, 500).filter_map(inputs::bids).collect();
//! let mut q1 = Q1::new();
//! let mut out = Vec::new();
//! for b in bids.iter().cloned() {
//!     q1.process(b, &mut out);
//! }
//! assert_eq!(out.len(), bids.len(), "q1 converts every bid");
//!
//! // Borrowed events: the same rows, and the bids stay the caller's.
//! let (mut q1, mut borrowed) = (Q1::new(), Vec::new());
//! for b in &bids {
//!     q1.process_ref(b, &mut borrowed);
//! }
//! assert_eq!(borrowed, out);
//! ```

use serde::{Deserialize, Serialize};
use simplestream::aggregate::Aggregate;
use simplestream::{pipeline, Checkpointable};

/// A new person.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Checkpointable)]
pub struct Person {
    pub id: u64,
    pub name: String,
    pub city: String,
    pub state: String,
    pub ts: i64,
}

/// A new auction.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Checkpointable)]
pub struct Auction {
    pub id: u64,
    pub seller: u64,
    pub category: u64,
    pub initial_bid: u64,
    pub reserve: u64,
    pub expires: i64,
    pub ts: i64,
}

/// A bid.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Checkpointable)]
pub struct Bid {
    pub auction: u64,
    pub bidder: u64,
    pub price: u64,
    pub channel: String,
    pub ts: i64,
}

/// One generated event.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    Person(Person),
    Auction(Auction),
    Bid(Bid),
}

/// Fixed base time so that event `i` is the same in every run (the generator's default is
/// "now", which would break resuming from an offset).
pub const BASE_TIME: u64 = 1_635_739_200_000;

/// Events `offset..offset + n` of the standard generator (10 000 events/s of event time).
#[cfg(feature = "generator")]
pub fn events(offset: u64, n: usize) -> impl Iterator<Item = Event> {
    let config = ::nexmark::config::NexmarkConfig {
        base_time: BASE_TIME,
        ..Default::default()
    };
    ::nexmark::EventGenerator::new(config)
        .with_offset(offset)
        .take(n)
        .map(convert)
}

#[cfg(feature = "generator")]
fn convert(e: ::nexmark::event::Event) -> Event {
    use ::nexmark::event::Event as N;
    match e {
        N::Person(p) => Event::Person(Person {
            id: p.id as u64,
            name: p.name,
            city: p.city,
            state: p.state,
            ts: p.date_time as i64,
        }),
        N::Auction(a) => Event::Auction(Auction {
            id: a.id as u64,
            seller: a.seller as u64,
            category: a.category as u64,
            initial_bid: a.initial_bid as u64,
            reserve: a.reserve as u64,
            expires: a.expires as i64,
            ts: a.date_time as i64,
        }),
        N::Bid(b) => Event::Bid(Bid {
            auction: b.auction as u64,
            bidder: b.bidder as u64,
            price: b.price as u64,
            channel: b.channel,
            ts: b.date_time as i64,
        }),
    }
}

/// q1's result: a bid's price in euros (cents precision kept as integer).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EuroBid {
    pub auction: u64,
    pub bidder: u64,
    pub price_eur: u64,
    pub ts: i64,
}

/// q1's conversion: dollars to euros at 0.908.
pub fn to_euros(price: u64) -> u64 {
    price * 908 / 1000
}

/// q2's result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuctionPrice {
    pub auction: u64,
    pub price: u64,
}

/// q3's result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SellerAuction {
    pub name: String,
    pub city: String,
    pub state: String,
    pub auction: u64,
}

/// States q3 looks for (the generator writes them in lower case).
pub fn q3_state(s: &str) -> bool {
    matches!(s, "or" | "id" | "ca")
}

/// Keeps the largest `(count, auction)`: most bids, then the smallest auction id.
#[derive(Default)]
pub struct HottestAuction;
impl Aggregate for HottestAuction {
    type Input = (u64, u64);
    type Acc = Option<(u64, u64)>;
    type Output = (u64, u64);
    fn add(&self, acc: &mut Self::Acc, (n, auction): (u64, u64)) {
        let better = match acc {
            None => true,
            Some((bn, ba)) => n > *bn || (n == *bn && auction < *ba),
        };
        if better {
            *acc = Some((n, auction));
        }
    }
    fn merge(&self, acc: &mut Self::Acc, other: &Self::Acc) {
        if let Some(o) = other {
            self.add(acc, *o);
        }
    }
    fn output(&self, acc: &Self::Acc) -> (u64, u64) {
        acc.unwrap_or_default()
    } // The largest (n, smallest auction) whatever the order: ties are broken by the id.
    const ORDER_INSENSITIVE: bool = true;
}

/// Keeps the highest bid `(price, auction, bidder)`: ties go to the smallest auction, then bidder.
#[derive(Default)]
pub struct HighestBid;
impl Aggregate for HighestBid {
    type Input = (u64, u64, u64);
    type Acc = Option<(u64, u64, u64)>;
    type Output = (u64, u64, u64);
    fn add(&self, acc: &mut Self::Acc, (p, a, b): (u64, u64, u64)) {
        let better = match acc {
            None => true,
            Some((bp, ba, bb)) => p > *bp || (p == *bp && (a, b) < (*ba, *bb)),
        };
        if better {
            *acc = Some((p, a, b));
        }
    }
    fn merge(&self, acc: &mut Self::Acc, other: &Self::Acc) {
        if let Some(o) = other {
            self.add(acc, *o);
        }
    }
    fn output(&self, acc: &Self::Acc) -> (u64, u64, u64) {
        acc.unwrap_or_default()
    } // Ties are broken by (auction, bidder): the result does not depend on the order.
    const ORDER_INSENSITIVE: bool = true;
}

pipeline! {
    /// q0: pass-through.
    pub pipeline Q0;
    source bids: Bid, event_time = |b| b.ts, max_delay = 1s;
    sink bids;
}

pipeline! {
    /// q1: currency conversion.
    pub pipeline Q1;
    source bids: Bid, event_time = |b| b.ts, max_delay = 1s;
    euros = bids.map(|b| -> EuroBid { EuroBid { auction: b.auction, bidder: b.bidder, price_eur: to_euros(b.price), ts: b.ts } });
    sink euros;
}

pipeline! {
    /// q2: selection.
    pub pipeline Q2;
    source bids: Bid, event_time = |b| b.ts, max_delay = 1s;
    selected = bids
        .filter(|b| b.auction % 123 == 0)
        .map(|b| -> AuctionPrice { AuctionPrice { auction: b.auction, price: b.price } });
    sink selected;
}

pipeline! {
    /// q3: local item suggestion. Sellers in OR/ID/CA with auctions in category 10, joined
    /// per 2 s window (the standard query's join is unbounded).
    pub pipeline Q3;
    source persons: Person, event_time = |p| p.ts, max_delay = 1s;
    source auctions: Auction, event_time = |a| a.ts, max_delay = 1s;
    local = persons.filter(|p| q3_state(&p.state));
    cat10 = auctions.filter(|a| a.category == 10);
    q3 = cat10
        .join(local, seller: u64 = |a| a.seller, |p| p.id)
        .window(tumbling(2s))
        .map(|j| -> SellerAuction {
            SellerAuction { name: j.local.name.clone(), city: j.local.city.clone(), state: j.local.state.clone(), auction: j.cat10.id }
        });
    sink q3;
}

pipeline! {
    /// q4: average closing price per category. The closing price of an auction is its
    /// highest bid at or above the reserve and before expiry, among bids in the same 2 s
    /// window as the auction (the standard query follows each auction to its expiry).
    pub pipeline Q4;
    source auctions: Auction, event_time = |a| a.ts, max_delay = 1s;
    source bids: Bid, event_time = |b| b.ts, max_delay = 1s;
    valid_bids = auctions
        .join(bids, auction: u64 = |a| a.id, |b| b.auction)
        .window(tumbling(2s))
        .filter(|j| j.bids.ts <= j.auctions.expires && j.bids.price >= j.auctions.reserve);
    closing = valid_bids
        .key_by(auction: u64 = |j| j.auctions.id)
        .window(tumbling(2s))
        .aggregate(category: u64 = max(|j| j.auctions.category), price: u64 = max(|j| j.bids.price));
    q4 = closing
        .key_by(category: u64 = |c| c.category)
        .aggregate(auctions = count(), avg_price = avg(|c| c.price as f64));
}

pipeline! {
    /// q5: hot items. Bids per auction in 2 s windows sliding by 500 ms, and the auction
    /// with the most bids in each window.
    pub pipeline Q5;
    source bids: Bid, event_time = |b| b.ts, max_delay = 1s;
    counts = bids
        .key_by(auction: u64 = |b| b.auction)
        .window(sliding(2s, 500ms))
        .aggregate(n = count());
    hot = counts
        .key_by(slide_end: i64 = |c| c.window_end)
        .window(tumbling(500ms))
        .aggregate(top = custom(HottestAuction, |c| (c.n, c.auction)));
    sink hot;
}

pipeline! {
    /// q7: the highest bid in each 1 s window.
    pub pipeline Q7;
    source bids: Bid, event_time = |b| b.ts, max_delay = 1s;
    q7 = bids
        .window(tumbling(1s))
        .aggregate(best = custom(HighestBid, |b| (b.price, b.auction, b.bidder)), bids = count());
    sink q7;
}

pipeline! {
    /// q8: people who opened an auction in the same 2 s window as they registered.
    pub pipeline Q8;
    source persons: Person, event_time = |p| p.ts, max_delay = 1s;
    source auctions: Auction, event_time = |a| a.ts, max_delay = 1s;
    opened = persons
        .join(auctions, person: u64 = |p| p.id, |a| a.seller)
        .window(tumbling(2s));
    q8 = opened
        .key_by(person: u64 = |j| j.person)
        .window(tumbling(2s))
        .aggregate(name: String = max(|j| j.persons.name.clone()), auctions = count());
    sink q8;
}

/// The events a query reads, as its pipeline's input.
pub mod inputs {
    use super::*;

    pub fn bids(e: Event) -> Option<Bid> {
        match e {
            Event::Bid(b) => Some(b),
            _ => None,
        }
    }
    pub fn q3(e: Event) -> Option<q3::Input> {
        match e {
            Event::Person(p) => Some(q3::Input::Persons(p)),
            Event::Auction(a) => Some(q3::Input::Auctions(a)),
            _ => None,
        }
    }
    pub fn q4(e: Event) -> Option<q4::Input> {
        match e {
            Event::Auction(a) => Some(q4::Input::Auctions(a)),
            Event::Bid(b) => Some(q4::Input::Bids(b)),
            _ => None,
        }
    }
    pub fn q8(e: Event) -> Option<q8::Input> {
        match e {
            Event::Person(p) => Some(q8::Input::Persons(p)),
            Event::Auction(a) => Some(q8::Input::Auctions(a)),
            _ => None,
        }
    }
}

use serde::{Deserialize, Serialize};
use simplestream::{pipeline, Checkpointable};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Checkpointable)]
pub struct Person {
    pub id: u64,
    pub ts: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Checkpointable)]
pub struct Auction {
    pub seller: u64,
    pub reserve: u64,
    pub ts: i64,
}

// Locked when the join buffered its events (`LockJoinFolds.state.lock`); its only reader
// is an aggregate of the same window, so it now folds them as they arrive.
pipeline! {
    pipeline LockJoinFolds;
    source persons: Person, event_time = |p| p.ts, max_delay = 1s;
    source auctions: Auction, event_time = |a| a.ts, max_delay = 1s;
    opened = persons
        .join(auctions, person: u64 = |p| p.id, |a| a.seller)
        .window(tumbling(10s));
    q = opened
        .key_by(person: u64 = |j| j.person)
        .window(tumbling(10s))
        .aggregate(pairs = count(), top: u64 = max(|j| j.auctions.reserve));
    sink q;
}

fn main() {}

//! `pub(crate) pipeline`, `flat_map`, declared stage types and a sink on the source.

use serde::{Deserialize, Serialize};
use simplestream::{pipeline, Pipeline};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Basket {
    pub customer: String,
    pub items: Vec<Line>,
    pub ts: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Line {
    pub sku: String,
    pub cents: i64,
}

mod inner {
    use super::*;

    pipeline! {
        pub(crate) pipeline Baskets;
        source baskets: Basket, event_time = |b| b.ts, max_delay = 1s;
        lines: Line = baskets.flat_map(|b| b.items.clone());
        priced: i64 = lines.map(|l| l.cents);
        big = baskets.flat_map(|b| -> Vec<Line> { b.items.iter().filter(|l| l.cents > 1_000).cloned().collect() });
        per_sku: baskets::PerSkuRow = lines
            .key_by(sku: String = |l| l.sku.clone())
            .aggregate(cents: i64 = sum(|l| l.cents), n = count());
        sink baskets;
        sink priced;
        sink big;
        sink per_sku;
    }
}

fn main() {
    let mut p = inner::Baskets::new();
    let mut out = Vec::new();
    p.process(
        Basket {
            customer: "a".into(),
            items: vec![
                Line {
                    sku: "x".into(),
                    cents: 1_500,
                },
                Line {
                    sku: "y".into(),
                    cents: 20,
                },
            ],
            ts: 1_000,
        },
        &mut out,
    );
    p.finish(&mut out);
    // the basket itself, two prices, one big line, two per-sku rows
    assert_eq!(out.len(), 6);
}

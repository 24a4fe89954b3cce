//! Nexmark queries against plain loops over the same events, with and without crashes.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use simplestream::testing::{assert_crash_equivalent, run_uninterrupted, CrashPlan};
use simplestream::{OutputRecord, Pipeline};
use simplestream_examples::nexmark::*;

const N: usize = 60_000; // 6 s of event time

fn all() -> Vec<Event> {
    events(0, N).collect()
}

fn window(ts: i64, size: i64) -> i64 {
    ts - ts.rem_euclid(size)
}

fn no_late<O: OutputRecord>(out: &[O]) {
    assert!(
        out.iter().all(|o| !o.is_late()),
        "generated events are in order: nothing is late"
    );
}

#[test]
fn q0_q1_q2_are_maps_and_filters() {
    let bids: Vec<Bid> = all().into_iter().filter_map(inputs::bids).collect();
    assert!(bids.len() > 50_000);
    let r0 = run_uninterrupted::<Q0>(&bids);
    let got0: Vec<Bid> = r0
        .outputs
        .iter()
        .map(|o| match o {
            q0::Output::Bids(b) => b.clone(),
            _ => panic!("{o:?}"),
        })
        .collect();
    assert_eq!(got0, bids);

    let r1 = run_uninterrupted::<Q1>(&bids);
    let want1: Vec<(u64, u64)> = bids
        .iter()
        .map(|b| (b.auction, b.price * 908 / 1000))
        .collect();
    let got1: Vec<(u64, u64)> = r1
        .outputs
        .iter()
        .map(|o| match o {
            q1::Output::Euros(e) => (e.auction, e.price_eur),
            _ => panic!(),
        })
        .collect();
    assert_eq!(got1, want1);

    let r2 = run_uninterrupted::<Q2>(&bids);
    let want2: Vec<(u64, u64)> = bids
        .iter()
        .filter(|b| b.auction % 123 == 0)
        .map(|b| (b.auction, b.price))
        .collect();
    let got2: Vec<(u64, u64)> = r2
        .outputs
        .iter()
        .map(|o| match o {
            q2::Output::Selected(s) => (s.auction, s.price),
            _ => panic!(),
        })
        .collect();
    assert!(!want2.is_empty());
    assert_eq!(got2, want2);
    assert_crash_equivalent::<Q1>(&bids[..5_000], CrashPlan::EveryK(333));
}

#[test]
fn q3_matches_a_plain_loop() {
    let evs = all();
    let mut persons: HashMap<(u64, i64), Vec<&Person>> = HashMap::new();
    let mut auctions: Vec<&Auction> = Vec::new();
    for e in &evs {
        match e {
            Event::Person(p) if q3_state(&p.state) => persons
                .entry((p.id, window(p.ts, 2000)))
                .or_default()
                .push(p),
            Event::Auction(a) if a.category == 10 => auctions.push(a),
            _ => {}
        }
    }
    let mut want = BTreeSet::new();
    for a in auctions {
        for p in persons
            .get(&(a.seller, window(a.ts, 2000)))
            .into_iter()
            .flatten()
        {
            want.insert((p.name.clone(), a.id));
        }
    }
    assert!(want.len() >= 5, "the query finds something: {}", want.len());
    let input: Vec<q3::Input> = evs.into_iter().filter_map(inputs::q3).collect();
    let r = run_uninterrupted::<Q3>(&input);
    no_late(&r.outputs);
    let got: BTreeSet<(String, u64)> = r
        .outputs
        .iter()
        .map(|o| match o {
            q3::Output::Q3(s) => (s.name.clone(), s.auction),
            _ => panic!(),
        })
        .collect();
    assert_eq!(got, want);
    assert_eq!(got.len(), r.outputs.len(), "no duplicates");
    assert_crash_equivalent::<Q3>(
        &input,
        CrashPlan::Random {
            seed: 3,
            crashes: 20,
        },
    );
}

#[test]
fn q4_matches_a_plain_loop() {
    let evs = all();
    let mut auctions: HashMap<(u64, i64), &Auction> = HashMap::new();
    for e in &evs {
        if let Event::Auction(a) = e {
            auctions.insert((a.id, window(a.ts, 2000)), a);
        }
    }
    // Closing price per (auction, window).
    let mut closing: BTreeMap<(i64, u64), (u64, u64)> = BTreeMap::new();
    for e in &evs {
        if let Event::Bid(b) = e {
            let w = window(b.ts, 2000);
            if let Some(a) = auctions.get(&(b.auction, w)) {
                if b.ts <= a.expires && b.price >= a.reserve {
                    let c = closing.entry((w, a.id)).or_insert((a.category, 0));
                    c.1 = c.1.max(b.price);
                }
            }
        }
    }
    let mut per_cat: BTreeMap<u64, (u64, f64)> = BTreeMap::new();
    for (cat, price) in closing.values() {
        let e = per_cat.entry(*cat).or_insert((0, 0.0));
        e.0 += 1;
        e.1 += *price as f64;
    }
    assert_eq!(per_cat.len(), 5, "all five categories have closing prices");
    let input: Vec<q4::Input> = evs.into_iter().filter_map(inputs::q4).collect();
    let r = run_uninterrupted::<Q4>(&input);
    no_late(&r.outputs);
    let state: serde_json::Value = serde_json::from_str(&r.state_json).unwrap();
    let q4 = state["q4"].as_object().unwrap();
    assert_eq!(q4.len(), per_cat.len());
    for (cat, (n, sum)) in &per_cat {
        let s = &q4[&cat.to_string()];
        assert_eq!(s["auctions"].as_u64().unwrap(), *n, "category {cat}");
        let got_avg =
            s["avg_price"]["sum"].as_f64().unwrap() / s["avg_price"]["count"].as_f64().unwrap();
        assert!(
            (got_avg - sum / *n as f64).abs() < 1e-6,
            "category {cat}: {got_avg} vs {}",
            sum / *n as f64
        );
    }
    assert_crash_equivalent::<Q4>(&input[..20_000], CrashPlan::EveryK(1_111));
}

#[test]
fn q5_matches_a_plain_loop() {
    let bids: Vec<Bid> = all().into_iter().filter_map(inputs::bids).collect();
    // Counts per (window end, auction) for 2 s windows every 500 ms.
    let mut counts: BTreeMap<i64, BTreeMap<u64, u64>> = BTreeMap::new();
    for b in &bids {
        let mut start = window(b.ts, 500);
        while start > b.ts - 2000 {
            *counts
                .entry(start + 2000)
                .or_default()
                .entry(b.auction)
                .or_default() += 1;
            start -= 500;
        }
    }
    let want: Vec<(i64, u64, u64)> = counts
        .iter()
        .map(|(end, m)| {
            let (a, n) = m.iter().fold(
                (0, 0),
                |(ba, bn), (a, n)| if *n > bn { (*a, *n) } else { (ba, bn) },
            );
            (*end, a, n)
        })
        .collect();
    let r = run_uninterrupted::<Q5>(&bids);
    no_late(&r.outputs);
    let got: Vec<(i64, u64, u64)> = r
        .outputs
        .iter()
        .map(|o| match o {
            q5::Output::Hot(h) => (h.slide_end, h.top.1, h.top.0),
            _ => panic!(),
        })
        .collect();
    assert_eq!(got, want);
    assert_crash_equivalent::<Q5>(
        &bids[..10_000],
        CrashPlan::Random {
            seed: 5,
            crashes: 30,
        },
    );
}

#[test]
fn q7_matches_a_plain_loop() {
    let bids: Vec<Bid> = all().into_iter().filter_map(inputs::bids).collect();
    let mut best: BTreeMap<i64, ((u64, u64, u64), u64)> = BTreeMap::new();
    for b in &bids {
        let e = best
            .entry(window(b.ts, 1000))
            .or_insert(((b.price, b.auction, b.bidder), 0));
        let cand = (b.price, b.auction, b.bidder);
        if cand.0 > e.0 .0 || (cand.0 == e.0 .0 && (cand.1, cand.2) < (e.0 .1, e.0 .2)) {
            e.0 = cand;
        }
        e.1 += 1;
    }
    let want: Vec<(i64, (u64, u64, u64), u64)> =
        best.into_iter().map(|(w, (b, n))| (w, b, n)).collect();
    let r = run_uninterrupted::<Q7>(&bids);
    let got: Vec<(i64, (u64, u64, u64), u64)> = r
        .outputs
        .iter()
        .map(|o| match o {
            q7::Output::Q7(x) => (x.window_start, x.best, x.bids),
            _ => panic!(),
        })
        .collect();
    assert_eq!(got, want);
    assert_crash_equivalent::<Q7>(&bids[..10_000], CrashPlan::EveryK(777));
}

#[test]
fn q8_matches_a_plain_loop() {
    let evs = all();
    let mut persons: HashMap<(u64, i64), &Person> = HashMap::new();
    for e in &evs {
        if let Event::Person(p) = e {
            persons.insert((p.id, window(p.ts, 2000)), p);
        }
    }
    let mut want: BTreeMap<(i64, u64), (String, u64)> = BTreeMap::new();
    for e in &evs {
        if let Event::Auction(a) = e {
            let w = window(a.ts, 2000);
            if let Some(p) = persons.get(&(a.seller, w)) {
                want.entry((w, p.id)).or_insert((p.name.clone(), 0)).1 += 1;
            }
        }
    }
    assert!(want.len() >= 20, "{}", want.len());
    let input: Vec<q8::Input> = evs.into_iter().filter_map(inputs::q8).collect();
    let r = run_uninterrupted::<Q8>(&input);
    no_late(&r.outputs);
    let got: BTreeMap<(i64, u64), (String, u64)> = r
        .outputs
        .iter()
        .map(|o| match o {
            q8::Output::Q8(x) => ((x.window_start, x.person), (x.name.clone(), x.auctions)),
            _ => panic!(),
        })
        .collect();
    assert_eq!(got, want);
    assert_crash_equivalent::<Q8>(
        &input,
        CrashPlan::Random {
            seed: 8,
            crashes: 25,
        },
    );
}

/// Every 7th event moved back by up to 1.5 s: some land in closed windows (late), others
/// arrive out of order within the 1 s delay.
fn disordered(n: usize) -> Vec<Event> {
    let mut evs: Vec<Event> = events(0, n).collect();
    for (i, e) in evs.iter_mut().enumerate().filter(|(i, _)| i % 7 == 3) {
        let back = (i as i64 * 7919) % 1_500;
        match e {
            Event::Person(p) => p.ts -= back,
            Event::Auction(a) => a.ts -= back,
            Event::Bid(b) => b.ts -= back,
        }
    }
    evs
}

/// `process_ref` of borrowed events: the outputs and checkpoint bytes of `process`.
fn by_ref_is_by_value<P: Pipeline>(events: &[P::Event]) -> usize
where
    P::Event: Clone,
    P::Output: PartialEq + std::fmt::Debug,
{
    let (mut owned, mut borrowed) = (P::new(), P::new());
    let (mut out_owned, mut out_borrowed) = (Vec::new(), Vec::new());
    let state = |p: &P| {
        let mut bytes = Vec::new();
        p.encode_stages(simplestream::Codec::Json, &mut bytes)
            .expect("encode");
        bytes
    };
    for (i, e) in events.iter().enumerate() {
        owned.process(e.clone(), &mut out_owned);
        borrowed.process_ref(e, &mut out_borrowed);
        if i % 1_000 == 0 {
            assert_eq!(state(&owned), state(&borrowed), "{} after {i}", P::NAME);
        }
    }
    assert_eq!(state(&owned), state(&borrowed), "{}", P::NAME);
    owned.finish(&mut out_owned);
    borrowed.finish(&mut out_borrowed);
    assert_eq!(out_owned, out_borrowed, "{}", P::NAME);
    out_owned.len()
}

#[test]
fn process_ref_gives_the_outputs_and_state_of_process() {
    let evs = disordered(20_000);
    let bids: Vec<Bid> = evs.iter().cloned().filter_map(inputs::bids).collect();
    for rows in [
        by_ref_is_by_value::<Q0>(&bids),
        by_ref_is_by_value::<Q1>(&bids),
        by_ref_is_by_value::<Q2>(&bids),
        by_ref_is_by_value::<Q5>(&bids),
        by_ref_is_by_value::<Q7>(&bids),
    ] {
        assert!(rows > 0);
    }
    let q3: Vec<q3::Input> = evs.iter().cloned().filter_map(inputs::q3).collect();
    let q4: Vec<q4::Input> = evs.iter().cloned().filter_map(inputs::q4).collect();
    let q8: Vec<q8::Input> = evs.iter().cloned().filter_map(inputs::q8).collect();
    assert!(by_ref_is_by_value::<Q3>(&q3) > 0);
    assert!(by_ref_is_by_value::<Q4>(&q4) > 0);
    assert!(by_ref_is_by_value::<Q8>(&q8) > 0);
    let mut q7 = Q7::new();
    let mut out = Vec::new();
    for b in &bids {
        q7.process_ref(b, &mut out);
    }
    assert!(out.iter().any(|o| o.is_late()), "some bids are late");
}

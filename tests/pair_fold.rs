//! A windowed join whose only reader is a keyed tumbling aggregate of `count`, `min` and
//! `max` columns over one side is fused (a closed join key folds into the aggregate once,
//! not pair by pair). Each fused pipeline here has an unfused twin, the same stages with a
//! filter that keeps everything before the `key_by` (which stops the fusion): on random
//! inputs with disorder and late events they write the same output, the same stage bytes
//! in both codecs after every event, the same deltas, and each restores the other's state.
//!
//! `Fused` (the aggregate's window is the join's) folds events as they arrive: its join
//! keeps per key and window each side's count and the one-side columns, not the events.
//! Its output is the twin's; its join state is what the twin's buffers fold to after
//! every event, its aggregate's state the twin's; its deltas rebuild its state, and it
//! restores its own state in both codecs. Its layout differs from the twin's.

use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use simplestream::codec::StageWriter;
use simplestream::{pipeline, Checkpointable, Codec, Pipeline};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Checkpointable)]
pub struct Person {
    pub id: u64,
    pub name: String,
    pub city: String,
    pub ts: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Checkpointable)]
pub struct Auction {
    pub seller: u64,
    pub city: String,
    pub reserve: u64,
    pub ts: i64,
}

pipeline! {
    /// Fused: q8's shape, with a min and max of each side.
    pub pipeline Fused;
    source persons: Person, event_time = |p| p.ts, max_delay = 1s;
    source auctions: Auction, event_time = |a| a.ts, max_delay = 1s;
    opened = persons
        .join(auctions, person: u64 = |p| p.id, |a| a.seller)
        .window(tumbling(2s));
    q = opened
        .key_by(person: u64 = |j| j.person)
        .window(tumbling(2s))
        .aggregate(name: String = max(|j| j.persons.name.clone()), first: String = min(|j| j.persons.name.clone()),
                   top: u64 = max(|j| j.auctions.reserve), low: u64 = min(|j| j.auctions.reserve + j.auctions.seller), pairs = count());
    sink q;
}

pipeline! {
    /// `Fused` unfused.
    pub pipeline Unfused;
    source persons: Person, event_time = |p| p.ts, max_delay = 1s;
    source auctions: Auction, event_time = |a| a.ts, max_delay = 1s;
    opened = persons
        .join(auctions, person: u64 = |p| p.id, |a| a.seller)
        .window(tumbling(2s));
    q = opened
        .filter(|_| true)
        .key_by(person: u64 = |j| j.person)
        .window(tumbling(2s))
        .aggregate(name: String = max(|j| j.persons.name.clone()), first: String = min(|j| j.persons.name.clone()),
                   top: u64 = max(|j| j.auctions.reserve), low: u64 = min(|j| j.auctions.reserve + j.auctions.seller), pairs = count());
    sink q;
}

pipeline! {
    /// Fused: a sliding join on a String key with more lateness than its aggregate, whose
    /// windows therefore close first (pairs of late join windows take the pairs path, to
    /// the late output).
    pub pipeline FusedLate;
    source persons: Person, event_time = |p| p.ts, max_delay = 1s;
    source auctions: Auction, event_time = |a| a.ts, max_delay = 1s;
    opened = persons
        .join(auctions, city: String = |p| p.city.clone(), |a| a.city.clone())
        .window(sliding(4s, 2s), allowed_lateness = 3s);
    q = opened
        .key_by(city: String = |j| j.city.clone())
        .window(tumbling(2s))
        .aggregate(pairs = count(), name: String = max(|j| j.persons.name.clone()));
    sink q;
}

pipeline! {
    /// `FusedLate` unfused.
    pub pipeline UnfusedLate;
    source persons: Person, event_time = |p| p.ts, max_delay = 1s;
    source auctions: Auction, event_time = |a| a.ts, max_delay = 1s;
    opened = persons
        .join(auctions, city: String = |p| p.city.clone(), |a| a.city.clone())
        .window(sliding(4s, 2s), allowed_lateness = 3s);
    q = opened
        .filter(|_| true)
        .key_by(city: String = |j| j.city.clone())
        .window(tumbling(2s))
        .aggregate(pairs = count(), name: String = max(|j| j.persons.name.clone()));
    sink q;
}

pipeline! {
    /// Fused: aggregate windows spanning several join windows, so they stay open across
    /// checkpoints (deltas then carry their changed keys).
    pub pipeline FusedWide;
    source persons: Person, event_time = |p| p.ts, max_delay = 1s;
    source auctions: Auction, event_time = |a| a.ts, max_delay = 1s;
    opened = persons
        .join(auctions, person: u64 = |p| p.id, |a| a.seller)
        .window(tumbling(1s));
    q = opened
        .key_by(person: u64 = |j| j.person)
        .window(tumbling(6s), allowed_lateness = 2s)
        .aggregate(pairs = count(), top: u64 = max(|j| j.auctions.reserve));
    sink q;
}

pipeline! {
    /// `FusedWide` unfused.
    pub pipeline UnfusedWide;
    source persons: Person, event_time = |p| p.ts, max_delay = 1s;
    source auctions: Auction, event_time = |a| a.ts, max_delay = 1s;
    opened = persons
        .join(auctions, person: u64 = |p| p.id, |a| a.seller)
        .window(tumbling(1s));
    q = opened
        .filter(|_| true)
        .key_by(person: u64 = |j| j.person)
        .window(tumbling(6s), allowed_lateness = 2s)
        .aggregate(pairs = count(), top: u64 = max(|j| j.auctions.reserve));
    sink q;
}

/// One generated event: a person or an auction, for one of a few ids and cities, at a
/// time that mostly moves forward and sometimes jumps back (late or out of order).
#[derive(Clone, Debug)]
struct Ev {
    auction: bool,
    id: u64,
    name: u8,
    reserve: u64,
    step: i64,
}

fn ev() -> impl Strategy<Value = Ev> {
    (any::<bool>(), 0u64..6, 0u8..5, 0u64..50, -3_000i64..700).prop_map(
        |(auction, id, name, reserve, step)| Ev {
            auction,
            id,
            name,
            reserve,
            step,
        },
    )
}

/// The two sources' events of a generated list, as `Input` of pipeline module `m`.
macro_rules! inputs {
    ($m:ident, $evs:expr) => {{
        let mut t = 10_000i64;
        let mut v = Vec::new();
        for e in $evs {
            // Most steps go forward; a negative one is a single event back in time.
            let ts = if e.step < 0 {
                t + e.step
            } else {
                t += e.step;
                t
            };
            let city = format!("c{}", e.id % 3);
            v.push(if e.auction {
                $m::Input::Auctions(Auction {
                    seller: e.id,
                    city,
                    reserve: e.reserve,
                    ts,
                })
            } else {
                let name = format!("n{}", e.name);
                $m::Input::Persons(Person {
                    id: e.id,
                    name,
                    city,
                    ts,
                })
            });
        }
        v
    }};
}

/// Output records as JSON lines, with their sink.
fn lines<O: simplestream::pipeline::OutputRecord>(out: &[O]) -> Vec<String> {
    out.iter()
        .map(|o| format!("{} {}", o.sink(), serde_json::to_string(o).unwrap()))
        .collect()
}

fn stages<P: Pipeline>(p: &P, codec: Codec) -> Vec<u8> {
    let mut out = Vec::new();
    p.encode_stages(codec, &mut out).unwrap();
    out
}

fn delta<P: Pipeline>(p: &P, since: &[simplestream::delta::Version]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut w = StageWriter::new(Codec::Json, &mut out);
    p.write_stage_deltas(since, &mut w).unwrap();
    w.finish();
    out
}

/// Runs `F` and `U` side by side over the same events, comparing state after every event
/// and deltas every `every` events; at `restore_at`, each continues from the other's
/// state (binary stage bytes). Returns the number of rows and of the aggregate's late
/// records.
fn compare<F: Pipeline, U: Pipeline>(
    f_in: Vec<F::Event>,
    u_in: Vec<U::Event>,
    every: usize,
    restore_at: usize,
) -> (usize, usize) {
    let (mut f, mut u) = (F::new(), U::new());
    let (mut fo, mut uo) = (Vec::new(), Vec::new());
    let (mut fv, mut uv) = (f.stage_versions().unwrap(), u.stage_versions().unwrap());
    for (i, (fe, ue)) in f_in.into_iter().zip(u_in).enumerate() {
        f.process(fe, &mut fo);
        u.process(ue, &mut uo);
        assert_eq!(
            stages(&f, Codec::Json),
            stages(&u, Codec::Json),
            "event {i}"
        );
        if i % every == 0 {
            assert_eq!(delta(&f, &fv), delta(&u, &uv), "delta at event {i}");
            (fv, uv) = (f.stage_versions().unwrap(), u.stage_versions().unwrap());
        }
        if i == restore_at {
            // Binary bytes follow hash order (seeded per map), so they are compared by
            // what they decode to.
            let (fb, ub) = (stages(&f, Codec::Binary), stages(&u, Codec::Binary));
            let (fc, uc) = (f.clock(), u.clock());
            f = F::decode_stages(Codec::Binary, &ub, uc).unwrap();
            u = U::decode_stages(Codec::Binary, &fb, fc).unwrap();
            assert_eq!(
                stages(&f, Codec::Json),
                stages(&u, Codec::Json),
                "restored at {i}"
            );
            (fv, uv) = (f.stage_versions().unwrap(), u.stage_versions().unwrap());
        }
    }
    f.finish(&mut fo);
    u.finish(&mut uo);
    assert_eq!(
        stages(&f, Codec::Json),
        stages(&u, Codec::Json),
        "after finish"
    );
    let (fl, ul) = (lines(&fo), lines(&uo));
    assert_eq!(fl, ul);
    let late = fl.iter().filter(|l| l.starts_with("late")).count();
    // Late records of the aggregate: pairs of join windows that closed after its own.
    let late_pairs = fl.iter().filter(|l| l.contains(r#""stage":"q""#)).count();
    (fl.len() - late, late_pairs)
}

/// What `Fused`'s join keeps, computed from `Unfused`'s buffered events (the join stage
/// `opened` as JSON): per window and key, each side's count and its columns' folds.
fn folds_of_buffers(buffers: &serde_json::Value) -> serde_json::Value {
    use serde_json::{json, Map, Value};
    let mut windows = Map::new();
    for (start, keys) in buffers["windows"].as_object().expect("windows") {
        let mut folded = Map::new();
        for (key, b) in keys.as_object().expect("keys") {
            let (left, right) = (
                b["left"].as_array().unwrap(),
                b["right"].as_array().unwrap(),
            );
            let names = left.iter().map(|p| p["name"].as_str().unwrap().to_string());
            let reserves = right.iter().map(|a| a["reserve"].as_u64().unwrap());
            let lows = right
                .iter()
                .map(|a| a["reserve"].as_u64().unwrap() + a["seller"].as_u64().unwrap());
            let acc = json!({
                "name": names.clone().max(),
                "first": names.min(),
                "top": reserves.max(),
                "low": lows.min(),
                "pairs": 0,
            });
            let f = json!({"left": left.len(), "right": right.len(), "acc": acc});
            folded.insert(key.clone(), f);
        }
        windows.insert(start.clone(), Value::Object(folded));
    }
    json!({"watermark": buffers["watermark"], "windows": windows})
}

/// `Fused` (folding at arrival) against `Unfused` over the same events (see the module
/// doc); at `restore_at`, `Fused` continues from its own state decoded in both codecs.
/// Returns the number of rows.
fn compare_folded(evs: &[Ev], every: usize, restore_at: usize) -> usize {
    let (mut f, mut u, mut replica) = (Fused::new(), Unfused::new(), Fused::new());
    let (mut fo, mut uo) = (Vec::new(), Vec::new());
    let mut fv = f.stage_versions().unwrap();
    for (i, (fe, ue)) in inputs!(fused, evs)
        .into_iter()
        .zip(inputs!(unfused, evs))
        .enumerate()
    {
        f.process(fe, &mut fo);
        u.process(ue, &mut uo);
        let want = folds_of_buffers(&u.stage_json("opened").unwrap());
        assert_eq!(f.stage_json("opened").unwrap(), want, "event {i}");
        assert_eq!(f.stage_json("q"), u.stage_json("q"), "event {i}");
        if i % every == 0 {
            replica
                .apply_stage_deltas(Codec::Json, &delta(&f, &fv), f.clock())
                .unwrap();
            assert_eq!(
                stages(&replica, Codec::Json),
                stages(&f, Codec::Json),
                "delta at {i}"
            );
            fv = f.stage_versions().unwrap();
        }
        if i == restore_at {
            let json = stages(&f, Codec::Json);
            for codec in [Codec::Binary, Codec::Json] {
                let back = Fused::decode_stages(codec, &stages(&f, codec), f.clock()).unwrap();
                assert_eq!(stages(&back, Codec::Json), json, "restored at {i}");
            }
            let bytes = stages(&f, Codec::Binary);
            f = Fused::decode_stages(Codec::Binary, &bytes, f.clock()).unwrap();
            replica = Fused::decode_stages(Codec::Binary, &bytes, f.clock()).unwrap();
            fv = f.stage_versions().unwrap();
        }
    }
    f.finish(&mut fo);
    u.finish(&mut uo);
    let (fl, ul) = (lines(&fo), lines(&uo));
    assert_eq!(fl, ul);
    fl.iter().filter(|l| !l.starts_with("late")).count()
}

#[test]
fn folding_at_arrival_has_a_layout_of_its_own() {
    assert_ne!(Fused::state_layouts(), Unfused::state_layouts());
    assert_eq!(FusedWide::state_layouts(), UnfusedWide::state_layouts());
    // The plan says what the join keeps, so tools and checkpoints describe it as it is.
    let state = |p: &'static simplestream::plan::Plan| p.stage("opened").unwrap().state;
    let simplestream::plan::State::JoinFolds {
        left,
        right,
        key,
        reader,
        columns,
    } = state(Fused::PLAN)
    else {
        panic!("{:?}", state(Fused::PLAN));
    };
    assert_eq!(
        (left, right, key, reader),
        ("persons", "auctions", "person", "q")
    );
    let names: Vec<&str> = columns.iter().map(|c| c.name).collect();
    assert_eq!(names, ["name", "first", "top", "low", "pairs"]);
    for p in [Unfused::PLAN, FusedWide::PLAN] {
        assert!(matches!(
            state(p),
            simplestream::plan::State::JoinBuffers { .. }
        ));
    }
    let join = |layouts: Vec<simplestream::upgrade::StageLayout>| {
        layouts
            .into_iter()
            .find(|s| s.name == "opened")
            .unwrap()
            .layout
    };
    assert_eq!(
        join(simplestream::upgrade::layouts::<Fused>()),
        "join person: u64 of Person, Auction; window tumbling 2000ms, lateness 0ms; \
         folded name: String = max, first: String = min, top: u64 = max, low: u64 = min, pairs: u64 = count"
    );
    assert_eq!(
        join(simplestream::upgrade::layouts::<Unfused>()),
        "join person: u64 of Person, Auction; window tumbling 2000ms, lateness 0ms"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn fused_and_unfused_agree(evs in prop::collection::vec(ev(), 1..300), every in 1usize..40, restore in 0usize..300) {
        compare_folded(&evs, every, restore);
        compare::<FusedLate, UnfusedLate>(inputs!(fused_late, &evs), inputs!(unfused_late, &evs), every, restore);
        compare::<FusedWide, UnfusedWide>(inputs!(fused_wide, &evs), inputs!(unfused_wide, &evs), every, restore);
    }
}

/// The random inputs above make rows, and late records at the aggregate of `FusedLate`
/// (the fallback to pairs), not only empty outputs: checked on one fixed input.
#[test]
fn the_comparison_sees_rows_and_late_pairs() {
    let evs: Vec<Ev> = (0..400u64)
        .map(|i| Ev {
            auction: i % 3 != 0,
            id: (i * 7) % 5,
            name: (i % 5) as u8,
            reserve: i % 37,
            step: if i % 11 == 5 { -2_500 } else { 150 },
        })
        .collect();
    let rows = compare_folded(&evs, 7, 200);
    assert!(rows > 20, "{rows} rows");
    let (rows, late) = compare::<FusedLate, UnfusedLate>(
        inputs!(fused_late, &evs),
        inputs!(unfused_late, &evs),
        7,
        200,
    );
    assert!(rows > 0 && late > 0, "{rows} rows, {late} late");
    let (rows, _) = compare::<FusedWide, UnfusedWide>(
        inputs!(fused_wide, &evs),
        inputs!(unfused_wide, &evs),
        7,
        200,
    );
    assert!(rows > 5, "{rows} rows");
}

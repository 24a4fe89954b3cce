//! Property tests of change tracking for every stateful operator: random events and
//! watermarks with deltas, new bases and restores interleaved. A restore (the base, then
//! every delta since, through the codec) always equals the live state, and a delta taken
//! right after another holds nothing.

use std::fmt::Debug;

use proptest::prelude::*;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::codec::{self, Codec, StageWriter};
use crate::delta::{DeltaOf, Tracked};
use crate::distinct::SeenKeys;
use crate::join::{IntervalJoin, WindowJoin};
use crate::window::{GlobalWindows, Session, Sliding, Tumbling};

#[derive(Debug, Clone)]
enum Op {
    /// An event of `key` at the watermark plus `ahead` ms (on the right side for joins).
    Event {
        key: u8,
        ahead: i64,
        right: bool,
    },
    /// The watermark moves forward by this much (windows close, buffers are evicted).
    Advance(i64),
    Delta,
    /// A whole snapshot becomes the base.
    Base,
    /// The state is replaced by base + deltas and goes on from there.
    Restore,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0u8..12, -3_000i64..9_000, any::<bool>())
            .prop_map(|(key, ahead, right)| Op::Event { key, ahead, right }),
        3 => (0i64..4_000).prop_map(Op::Advance),
        3 => Just(Op::Delta),
        1 => Just(Op::Base),
        1 => Just(Op::Restore),
    ]
}

fn ops() -> impl Strategy<Value = (Vec<Op>, bool)> {
    (prop::collection::vec(op(), 1..120), any::<bool>())
}

/// Bytes of `s` as a checkpoint stage.
fn encode<T: Serialize>(s: &T, codec: Codec) -> Vec<u8> {
    let mut out = Vec::new();
    codec::write(codec, s, &mut out).unwrap();
    out
}

/// The delta of `s` since `since`, written and read back as a checkpoint does.
fn delta_bytes<T: Tracked>(s: &T, since: crate::delta::Version, codec: Codec) -> Vec<u8> {
    let mut out = Vec::new();
    let mut w = StageWriter::new(codec, &mut out);
    s.write_delta(Some(since), "s", &mut w).unwrap();
    w.finish();
    out
}

fn read_delta<T: Tracked>(bytes: &[u8], codec: Codec) -> DeltaOf<T> {
    #[derive(serde::Deserialize)]
    #[serde(bound = "D: DeserializeOwned")]
    struct Stage<D> {
        s: D,
    }
    codec::read::<Stage<DeltaOf<T>>>(codec, bytes).unwrap().s
}

/// Base + deltas, through the codec.
fn restore<T: Tracked + DeserializeOwned>(base: &[u8], deltas: &[Vec<u8>], codec: Codec) -> T {
    let mut s: T = codec::read(codec, base).unwrap();
    for d in deltas {
        s.apply_delta(read_delta::<T>(d, codec));
    }
    s
}

/// Runs `ops` on a `T`, `event` applying an event at a time (`wm` is the watermark the
/// driver keeps) and `advance` moving the watermark; `empty` says a delta holds nothing.
fn check<T>(
    (ops, binary): (Vec<Op>, bool),
    mut event: impl FnMut(&mut T, u8, i64, bool),
    mut advance: impl FnMut(&mut T, i64),
    empty: impl Fn(&DeltaOf<T>) -> bool,
) -> Result<(), TestCaseError>
where
    T: Tracked + Default + PartialEq + Debug + Serialize + DeserializeOwned,
{
    let codec = if binary { Codec::Binary } else { Codec::Json };
    let snapshot = |s: &T| String::from_utf8(encode(s, Codec::Json)).unwrap();
    let mut live = T::default();
    let (mut base, mut deltas) = (encode(&live, codec), Vec::new());
    let mut since = live.version();
    let mut wm = 0i64;
    for op in ops {
        match op {
            Op::Event { key, ahead, right } => event(&mut live, key, wm + ahead, right),
            Op::Advance(by) => {
                wm += by;
                advance(&mut live, wm);
            }
            Op::Delta => {
                deltas.push(delta_bytes(&live, since, codec));
                since = live.version();
                let restored: T = restore(&base, &deltas, codec);
                prop_assert_eq!(snapshot(&restored), snapshot(&live));
                prop_assert_eq!(&restored, &live);
                let again = read_delta::<T>(&delta_bytes(&live, since, codec), codec);
                prop_assert!(empty(&again), "a delta with nothing changed since");
            }
            Op::Base => {
                base = encode(&live, codec);
                deltas.clear();
                since = live.version();
            }
            Op::Restore => {
                deltas.push(delta_bytes(&live, since, codec));
                live = restore(&base, &deltas, codec);
                since = live.version();
            }
        }
    }
    deltas.push(delta_bytes(&live, since, codec));
    let restored: T = restore(&base, &deltas, codec);
    prop_assert_eq!(snapshot(&restored), snapshot(&live));
    Ok(())
}

/// A keyed delta that holds nothing.
fn unchanged<K: std::hash::Hash + Eq, V>(d: &crate::state::KeyedDelta<K, V>) -> bool {
    !d.reset && d.upserts.is_empty() && d.removed.is_empty()
}

const SIZE: i64 = 5_000;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn tumbling_windows(case in ops()) {
        check::<Tumbling<u8, u64>>(
            case,
            |w, k, ts, _| if let Some(a) = w.acc_for(ts, &k, SIZE, 1_000) { *a += 1 },
            |w, wm| w.advance(wm, SIZE, 1_000, &mut Vec::new()),
            |d| !d.reset && d.changed.is_empty(),
        )?;
    }

    #[test]
    fn sliding_windows(case in ops()) {
        check::<Sliding<u8, u64>>(
            case,
            |w, k, ts, _| { w.add(ts, &k, SIZE, 2_000, 0, |a| *a += 1); },
            |w, wm| w.advance(wm, SIZE, 0, &mut Vec::new()),
            |d| !d.reset && d.changed.is_empty(),
        )?;
    }

    #[test]
    fn global_windows(case in ops()) {
        check::<GlobalWindows<u64>>(
            case,
            |w, k, ts, sliding| if sliding {
                w.add(ts, SIZE, 2_500, 0, |a| *a += k as u64);
            } else if let Some(a) = w.acc_for(ts, SIZE, 0) {
                *a += k as u64;
            },
            |w, wm| w.advance(wm, SIZE, 0, &mut Vec::new()),
            |d| !d.reset && d.changed.is_empty(),
        )?;
    }

    #[test]
    fn session_windows(case in ops()) {
        check::<Session<u8, u64>>(
            case,
            |w, k, ts, _| { w.add(ts, k, 2_000, 500, |a| *a += 1); },
            |w, wm| w.advance(wm, 500, &mut Vec::new()),
            |d| unchanged(&d.sessions),
        )?;
    }

    #[test]
    fn window_joins(case in ops()) {
        check::<WindowJoin<u8, i64, i64>>(
            case,
            |j, k, ts, right| { if right {
                j.add_right(ts, k, ts, SIZE, 2_500, 0);
            } else {
                j.add_left(ts, k, ts, SIZE, 2_500, 0);
            } },
            |j, wm| j.advance(wm, SIZE, 0, &mut Vec::new()),
            |d| !d.reset && d.changed.is_empty(),
        )?;
    }

    #[test]
    fn interval_joins(case in ops()) {
        check::<IntervalJoin<u8, i64, i64>>(
            case,
            |j, k, ts, right| { if right {
                j.add_right(ts, k, ts, 1_000, 2_000, &mut Vec::new());
            } else {
                j.add_left(ts, k, ts, 1_000, 2_000, &mut Vec::new());
            } },
            |j, wm| j.advance(wm, 1_000, 2_000),
            |d| unchanged(&d.buffers) && d.timers.is_empty(),
        )?;
    }

    #[test]
    fn distinct_keys(case in ops()) {
        check::<SeenKeys<u64>>(
            case,
            |s, k, ts, _| { s.insert(k as u64 * 100_000 + ts.rem_euclid(7) as u64); },
            |_, _| {},
            |d| !d.reset && d.keys.is_empty(),
        )?;
    }
}

/// Keyed windows, window joins and sessions spilling to disk (a budget of a few hundred
/// bytes for up to 192 keys): deltas and restores as above, and the rows fired and the
/// final state equal those of the memory backend.
#[cfg(feature = "disk")]
mod on_disk {
    use super::*;
    use crate::join::Pair;
    use crate::spill::tests::DiskBackend;
    use crate::window::Fired;

    type W = Sliding<u16, u64>;

    /// Many keys from few: the key and the event's time.
    fn key(k: u8, ts: i64) -> u16 {
        k as u16 * 16 + ts.rem_euclid(16) as u16
    }

    fn event(w: &mut W, k: u8, ts: i64, sliding: bool) {
        if sliding {
            w.add(ts, &key(k, ts), SIZE, 2_500, 0, |a| *a += 1);
        } else if let Some(a) = w.acc_for(ts, &key(k, ts), SIZE, 0) {
            *a += 1;
        }
    }

    /// What `ops` fire and the final state (JSON), each restore a whole checkpoint round
    /// trip in the case's codec: `event(.., fired)` applies an event, `close(state,
    /// Some(wm), fired)` moves the watermark, `close(state, None, fired)` ends the input.
    fn replay<T, F>(
        (ops, binary): &(Vec<Op>, bool),
        event: fn(&mut T, u8, i64, bool, &mut Vec<F>),
        close: fn(&mut T, Option<i64>, &mut Vec<F>),
    ) -> (Vec<F>, String)
    where
        T: Default + Serialize + DeserializeOwned,
    {
        let codec = if *binary { Codec::Binary } else { Codec::Json };
        let (mut s, mut fired, mut wm) = (T::default(), Vec::new(), 0i64);
        for op in ops {
            match op {
                Op::Event { key, ahead, right } => {
                    event(&mut s, *key, wm + ahead, *right, &mut fired)
                }
                Op::Advance(by) => {
                    wm += by;
                    close(&mut s, Some(wm), &mut fired);
                }
                Op::Restore => s = codec::read(codec, &encode(&s, codec)).unwrap(),
                Op::Delta | Op::Base => {}
            }
        }
        let state = String::from_utf8(encode(&s, Codec::Json)).unwrap();
        close(&mut s, None, &mut fired);
        (fired, state)
    }

    fn run(case: &(Vec<Op>, bool)) -> (Vec<Fired<u16, u64>>, String) {
        let event = |w: &mut W, k, ts, sliding, _: &mut _| event(w, k, ts, sliding);
        replay(case, event, |w: &mut W, wm, fired| match wm {
            Some(wm) => w.advance(wm, SIZE, 0, fired),
            None => w.flush(SIZE, 0, fired),
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        #[test]
        fn spilled_windows_track_changes_and_restore(case in ops()) {
            let _disk = DiskBackend::new(512);
            check::<W>(
                case,
                event,
                |w, wm| w.advance(wm, SIZE, 0, &mut Vec::new()),
                |d| !d.reset && d.changed.is_empty(),
            )?;
        }

        #[test]
        fn spilled_windows_fire_what_memory_fires(case in ops()) {
            same_on_disk(run, &case)?;
        }
    }

    type J = WindowJoin<u16, i64, i64>;

    fn join_event(j: &mut J, k: u8, ts: i64, right: bool) {
        if right {
            j.add_right(ts, key(k, ts), ts, SIZE, 2_500, 0);
        } else {
            j.add_left(ts, key(k, ts), ts, SIZE, 2_500, 0);
        }
    }

    /// A pair fired: window start, key, left and right events.
    type Paired = (i64, u16, Vec<i64>, Vec<i64>);

    /// Pairs fired and the final state (JSON) of a window join, as [`run`].
    fn run_join(case: &(Vec<Op>, bool)) -> (Vec<Paired>, String) {
        let event = |j: &mut J, k, ts, right, _: &mut _| join_event(j, k, ts, right);
        let (fired, state) = replay(case, event, |j: &mut J, wm, fired| match wm {
            Some(wm) => j.advance(wm, SIZE, 0, fired),
            None => j.flush(SIZE, 0, fired),
        });
        let pairs = fired.into_iter().map(|f| (f.start, f.key, f.left, f.right));
        (pairs.collect(), state)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        #[test]
        fn spilled_join_buffers_track_changes_and_restore(case in ops()) {
            let _disk = DiskBackend::new(512);
            check::<J>(
                case,
                join_event,
                |j, wm| j.advance(wm, SIZE, 0, &mut Vec::new()),
                |d| !d.reset && d.changed.is_empty(),
            )?;
        }

        #[test]
        fn spilled_join_buffers_pair_what_memory_pairs(case in ops()) {
            same_on_disk(run_join, &case)?;
        }
    }

    /// A generated case: operations and whether the codec is binary.
    type Case = (Vec<Op>, bool);

    /// `run` of `case` with the disk backend fires what it fires with memory, and ends
    /// in the same state.
    fn same_on_disk<F: PartialEq + Debug>(
        run: fn(&Case) -> (Vec<F>, String),
        case: &Case,
    ) -> Result<(), TestCaseError> {
        let memory = run(case);
        let disk = DiskBackend::new(512);
        let spilled = run(case);
        drop(disk);
        prop_assert_eq!(&spilled.1, &memory.1);
        prop_assert_eq!(spilled.0, memory.0);
        Ok(())
    }

    type S = Session<u16, u64>;

    fn session_event(s: &mut S, k: u8, ts: i64, _: bool) {
        s.add(ts, key(k, ts), 2_000, 500, |a| *a += 1);
    }

    /// Sessions fired and the final state (JSON), as [`run`].
    fn run_sessions(case: &(Vec<Op>, bool)) -> (Vec<Fired<u16, u64>>, String) {
        let event = |s: &mut S, k, ts, _, _: &mut _| session_event(s, k, ts, false);
        replay(case, event, |s: &mut S, wm, fired| match wm {
            Some(wm) => s.advance(wm, 500, fired),
            None => s.flush(500, fired),
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        #[test]
        fn spilled_sessions_track_changes_and_restore(case in ops()) {
            let _disk = DiskBackend::new(512);
            check::<S>(
                case,
                session_event,
                |s, wm| s.advance(wm, 500, &mut Vec::new()),
                |d| unchanged(&d.sessions),
            )?;
        }

        #[test]
        fn spilled_sessions_fire_what_memory_fires(case in ops()) {
            same_on_disk(run_sessions, &case)?;
        }
    }

    type I = IntervalJoin<u16, i64, i64>;

    fn interval_event(
        j: &mut I,
        k: u8,
        ts: i64,
        right: bool,
        pairs: &mut Vec<Pair<u16, i64, i64>>,
    ) {
        if right {
            j.add_right(ts, key(k, ts), ts, 1_000, 2_000, pairs);
        } else {
            j.add_left(ts, key(k, ts), ts, 1_000, 2_000, pairs);
        }
    }

    /// Pairs made and the final state (JSON) of an interval join, as [`run`].
    fn run_interval(case: &(Vec<Op>, bool)) -> (Vec<Pair<u16, i64, i64>>, String) {
        replay(case, interval_event, |j: &mut I, wm, _| {
            if let Some(wm) = wm {
                j.advance(wm, 1_000, 2_000);
            }
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        #[test]
        fn spilled_interval_buffers_track_changes_and_restore(case in ops()) {
            let _disk = DiskBackend::new(512);
            check::<I>(
                case,
                |j, k, ts, right| interval_event(j, k, ts, right, &mut Vec::new()),
                |j, wm| j.advance(wm, 1_000, 2_000),
                |d| unchanged(&d.buffers) && d.timers.is_empty(),
            )?;
        }

        #[test]
        fn spilled_interval_buffers_pair_what_memory_pairs(case in ops()) {
            same_on_disk(run_interval, &case)?;
        }
    }

    type D = SeenKeys<u64>;

    /// `distinct`: the keys let through.
    fn distinct_event(s: &mut D, k: u8, ts: i64, _: bool, passed: &mut Vec<u64>) {
        let key = k as u64 * 100_000 + ts.rem_euclid(64) as u64;
        if s.insert(key) {
            passed.push(key);
        }
    }

    fn run_distinct(case: &Case) -> (Vec<u64>, String) {
        replay(case, distinct_event, |_: &mut D, _, _| {})
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        #[test]
        fn spilled_distinct_keys_track_changes_and_restore(case in ops()) {
            let _disk = DiskBackend::new(512);
            check::<D>(
                case,
                |s, k, ts, _| distinct_event(s, k, ts, false, &mut Vec::new()),
                |_, _| {},
                |d| !d.reset && d.keys.is_empty(),
            )?;
        }

        #[test]
        fn spilled_distinct_keys_pass_what_memory_passes(case in ops()) {
            same_on_disk(run_distinct, &case)?;
        }
    }

    /// `distinct`'s keys go to disk, and a key seen there is not let through again.
    #[test]
    fn distinct_keys_go_to_disk_and_are_found_there() {
        let _disk = DiskBackend::new(512);
        let mut s = D::default();
        for k in 0..1_000 {
            assert!(s.insert(k));
        }
        assert!(s.on_disk() > 500, "{} keys on disk", s.on_disk());
        for k in (0..1_000).rev() {
            assert!(!s.insert(k), "{k} seen before");
        }
        assert!(s.insert(1_000));
        assert_eq!(s.len(), 1_001);
    }

    /// Files of the working directory other than its marker.
    fn store_files(disk: &DiskBackend) -> Vec<String> {
        let dir = std::fs::read_dir(disk.dir.path().join("state")).unwrap();
        let names = dir.map(|e| e.unwrap().file_name().to_string_lossy().into_owned());
        names.filter(|n| n != crate::spill::MARKER).collect()
    }

    /// The budget above does send window entries to disk, and a window that closes
    /// takes its files with it.
    #[test]
    fn a_few_hundred_keys_in_512_bytes_go_to_disk_until_their_window_closes() {
        let disk = DiskBackend::new(512);
        let evicted = crate::spill::evicted();
        let mut w = W::default();
        for i in 0..600i64 {
            event(&mut w, (i % 12) as u8, i * 7, i % 2 == 0);
        }
        let on_disk: u64 = w.windows().map(|(_, t)| t.on_disk()).sum();
        assert!(
            on_disk > 50,
            "{on_disk} entries of the open windows on disk"
        );
        assert!(!store_files(&disk).is_empty());
        assert!(crate::spill::evicted() > evicted);
        let mut fired = Vec::new();
        w.flush(SIZE, 0, &mut fired);
        assert_eq!(fired.iter().map(|f| f.acc).sum::<u64>(), 300 + 300 * 2);
        assert!(w.is_empty());
        assert_eq!(store_files(&disk), Vec::<String>::new());
    }

    /// Join buffers go to disk too, and leave with their window.
    #[test]
    fn join_buffers_go_to_disk_until_their_window_closes() {
        let disk = DiskBackend::new(512);
        let mut j = J::default();
        for i in 0..600i64 {
            // Events 48 apart have the same key, on alternate sides: pairs.
            join_event(&mut j, (i % 12) as u8, i * 7, i / 48 % 2 == 0);
        }
        let on_disk: u64 = j.windows().map(|(_, t)| t.on_disk()).sum();
        assert!(on_disk > 50, "{on_disk} keys' buffers on disk");
        assert!(!store_files(&disk).is_empty());
        assert_eq!(j.buffered(), 600 * 2, "each event in two sliding windows");
        let mut fired = Vec::new();
        j.flush(SIZE, 0, &mut fired);
        assert!(!fired.is_empty());
        assert_eq!(store_files(&disk), Vec::<String>::new());
    }

    /// Sessions go to disk too, and their files go once every session closed.
    #[test]
    fn sessions_go_to_disk_until_they_close() {
        let disk = DiskBackend::new(512);
        let mut s = S::default();
        for i in 0..600i64 {
            // 200 keys, each with events 2 s apart (the gap): three sessions a key.
            s.add(i * 10, (i % 200) as u16, 2_000, 500, |a| *a += 1);
        }
        assert!(
            s.sessions.on_disk() > 50,
            "{} keys on disk",
            s.sessions.on_disk()
        );
        assert!(!store_files(&disk).is_empty());
        let mut fired = Vec::new();
        s.advance(3_000, 500, &mut fired);
        assert!(
            !fired.is_empty() && s.open_entries() > 0,
            "some closed, some open"
        );
        assert!(
            !store_files(&disk).is_empty(),
            "files stay while sessions are on disk"
        );
        s.flush(500, &mut fired);
        assert_eq!(fired.iter().map(|f| f.acc).sum::<u64>(), 600);
        assert!(s.sessions.is_empty());
        assert_eq!(store_files(&disk), Vec::<String>::new());
    }

    /// An interval join's buffers go to disk, are read back to be evicted, and their
    /// files go once every event expired (at the watermark step after).
    #[test]
    fn interval_buffers_go_to_disk_until_they_expire() {
        let disk = DiskBackend::new(512);
        let (mut j, mut pairs) = (I::default(), Vec::new());
        for i in 0..600i64 {
            // 200 keys, each with a left event then a right one 2 s later: a pair each.
            let (k, ts) = ((i % 200) as u16, i * 10);
            j.add_left(ts, k, i, 1_000, 2_000, &mut pairs);
            j.add_right(ts + 2_000, k, i, 1_000, 2_000, &mut pairs);
        }
        assert!(
            j.buffers.on_disk() > 50,
            "{} keys on disk",
            j.buffers.on_disk()
        );
        assert_eq!(
            pairs.len(),
            600 + 400,
            "its own pair, and the key's next left"
        );
        j.advance(8_000, 1_000, 2_000);
        assert_eq!(j.buffered(), 100 + 300, "the events from 5 s on");
        j.advance(11_000, 1_000, 2_000);
        assert_eq!(j.buffered(), 0);
        assert!(j.buffers.is_empty() && j.timers.is_empty());
        // The files go at the next watermark step (the eviction loop stays as it is
        // with the memory backend).
        j.advance(11_001, 1_000, 2_000);
        assert_eq!(store_files(&disk), Vec::<String>::new());
    }
}

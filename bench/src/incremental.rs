//! Incremental checkpoints against whole ones, on the String-key count + sum state with
//! 1 % of the keys updated between checkpoints: the pause of a checkpoint (the
//! coordinator's whole `checkpoint` call into a FileStore: serialize, self-check, write,
//! fsync, `latest`, retention), the bytes written, and a restore of base + deltas against
//! decoding the same map with the plain codec.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;
use simplestream::incremental::IncrementalConfig;
use simplestream::pipeline::Discard;
use simplestream::state::FastMap;
use simplestream::store::{FileStore, FileStoreOptions};
use simplestream::{Codec, Coordinator, CoordinatorConfig, Pipeline};

use crate::events::{self, SEv};
use crate::workloads::{string_state, CountByStringKeyP};
use crate::{best_of, ms};

/// Deltas on one base before the restore is measured.
const DELTAS: u64 = 3;

/// One row of the incremental-checkpoint table.
#[derive(Debug, Clone, Serialize)]
pub struct IncrementalCost {
    pub keys: u64,
    pub updated_keys: u64,
    pub whole_pause_ms: f64,
    pub delta_pause_ms: f64,
    /// Target: at most 0.10 (1M keys).
    pub ratio_pause: f64,
    pub whole_bytes: u64,
    pub delta_bytes: u64,
    /// The changed entries as a plain postcard map.
    pub changed_plain_bytes: u64,
    /// Target: at most 3 (1M keys).
    pub ratio_bytes: f64,
    pub restore_ms: f64,
    pub plain_decode_ms: f64,
    /// Target: at most 1.5 (10M keys).
    pub ratio_restore: f64,
}

/// Updates 1 % of the keys (a different 1 % each `round`); returns the keys touched.
pub fn update(p: &mut CountByStringKeyP, keys: u64, round: u64) -> Vec<String> {
    let step = 100;
    (0..keys / step)
        .map(|i| {
            let k = i * step + round % step;
            let customer = events::key_string(k);
            let ev = SEv {
                customer: customer.clone(),
                amount: 1.25,
                ts: events::T0 + (keys * 4 + round * keys + k) as i64,
            };
            p.process(ev, &mut Discard);
            customer
        })
        .collect()
}

pub fn coordinator(dir: &Path, instance: &str, incremental: bool) -> Coordinator<FileStore> {
    fs::remove_dir_all(dir.join("checkpoints").join(instance)).ok();
    let store = FileStore::open(dir, instance, FileStoreOptions::default()).expect("open store");
    let config = CoordinatorConfig {
        every_events: None,
        codec: Codec::Binary,
        keep: 2,
        ..CoordinatorConfig::default()
    };
    let mut c = Coordinator::new(store, config);
    if incremental {
        c.set_incremental(Some(IncrementalConfig {
            max_deltas: usize::MAX,
            max_delta_ratio: f64::INFINITY,
        }));
    }
    c
}

pub fn timed_checkpoint(
    c: &mut Coordinator<FileStore>,
    p: &CountByStringKeyP,
    id: u64,
) -> (Duration, u64) {
    let positions: BTreeMap<String, u64> = [("events".to_string(), id)].into();
    let t = Instant::now();
    let info = c.checkpoint(p, positions, id as i64).expect("checkpoint");
    (t.elapsed(), info.size)
}

/// Measures each key count: `runs` timed checkpoints of each kind, best kept.
pub fn costs(key_counts: &[u64], runs: usize, scratch: &Path) -> Vec<IncrementalCost> {
    let dir = scratch.join("incremental-costs");
    let mut out = Vec::new();
    for &keys in key_counts {
        let mut p = string_state(keys, 2);
        let mut round = 0;
        // Whole binary checkpoints, each after the same 1 % update.
        let mut whole = coordinator(&dir, &format!("whole-{keys}"), false);
        let mut whole_bytes = 0;
        let whole_pause = best_of(runs, || {
            round += 1;
            update(&mut p, keys, round);
            let (el, size) = timed_checkpoint(&mut whole, &p, round);
            whole_bytes = size;
            el
        });
        drop(whole);
        // Incremental: a base, then deltas.
        let mut inc = coordinator(&dir, &format!("incremental-{keys}"), true);
        round += 1;
        timed_checkpoint(&mut inc, &p, round);
        let (mut delta_bytes, mut changed) = (0, Vec::new());
        let delta_pause = best_of(runs.max(DELTAS as usize), || {
            round += 1;
            changed = update(&mut p, keys, round);
            let (el, size) = timed_checkpoint(&mut inc, &p, round);
            delta_bytes = size;
            el
        });
        let changed_plain: FastMap<&String, (u64, f64)> = changed
            .iter()
            .map(|k| {
                let a = p.per_key.state.get(k).expect("updated key");
                (k, (a.count, a.amount))
            })
            .collect();
        let changed_plain_bytes = postcard::to_allocvec(&changed_plain)
            .expect("postcard")
            .len() as u64;
        let (restore, plain_decode) = restore_costs(&mut inc, &p, keys, runs);
        drop(inc);
        fs::remove_dir_all(&dir).ok();
        let c = IncrementalCost {
            keys,
            updated_keys: changed.len() as u64,
            whole_pause_ms: ms(whole_pause),
            delta_pause_ms: ms(delta_pause),
            ratio_pause: ms(delta_pause) / ms(whole_pause),
            whole_bytes,
            delta_bytes,
            changed_plain_bytes,
            ratio_bytes: delta_bytes as f64 / changed_plain_bytes as f64,
            restore_ms: ms(restore),
            plain_decode_ms: ms(plain_decode),
            ratio_restore: ms(restore) / ms(plain_decode),
        };
        println!(
            "  incremental {:>8} keys ({} updated): pause {:.2} ms vs whole {:.2} ms ({:.3}x); delta {} B vs {} B changed plain ({:.2}x); restore base+deltas {:.1} ms vs plain decode {:.1} ms ({:.2}x)",
            keys, c.updated_keys, c.delta_pause_ms, c.whole_pause_ms, c.ratio_pause, c.delta_bytes,
            c.changed_plain_bytes, c.ratio_bytes, c.restore_ms, c.plain_decode_ms, c.ratio_restore
        );
        out.push(c);
    }
    out
}

/// Restoring the latest checkpoint (base + deltas) against postcard-decoding the same
/// map; the restored state is checked equal first.
fn restore_costs(
    c: &mut Coordinator<FileStore>,
    p: &CountByStringKeyP,
    keys: u64,
    runs: usize,
) -> (Duration, Duration) {
    let r = c
        .recover::<CountByStringKeyP>()
        .expect("recover")
        .expect("a checkpoint");
    assert!(r.pipeline.per_key == p.per_key, "restored state differs");
    assert!(r.name.ends_with(".manifest.json"), "restored {}", r.name);
    drop(r);
    let restore = best_of(runs, || {
        let t = Instant::now();
        let r = c.recover::<CountByStringKeyP>().expect("recover");
        let el = t.elapsed();
        drop(r);
        el
    });
    let plain: FastMap<String, (u64, f64)> = p
        .per_key
        .state
        .iter()
        .map(|(k, a)| (String::from(k.into_owned()), (a.count, a.amount)))
        .collect();
    let bytes = postcard::to_allocvec(&plain).expect("postcard");
    drop(plain);
    let plain_decode = best_of(runs, || {
        let t = Instant::now();
        let m: FastMap<String, (u64, f64)> = postcard::from_bytes(&bytes).expect("postcard");
        let el = t.elapsed();
        assert_eq!(m.len() as u64, keys);
        drop(m);
        el
    });
    (restore, plain_decode)
}

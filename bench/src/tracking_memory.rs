//! What change tracking costs in memory: the String-key count + sum state built with and
//! without per-entry change stamps, each in a child process whose own peak RSS is measured
//! (VmHWM after resetting it, minus RSS before the build).
//!
//! Without: a `FastMap<String, (u64, f64)>` (what a hand-written loop keeps). With: the
//! runtime's `KeyedState<String, (u64, f64)>`, whose entries carry the stamp of their last
//! change. Both insert the same keys in the same order, so the difference is the stamp.

use std::process::Command;

use serde::Serialize;
use simplestream::state::FastMap;
use simplestream::KeyedState;

use crate::events;
use crate::{status_bytes, MemProbe};

/// One row: a key count, both states' peak memory.
#[derive(Debug, Clone, Serialize)]
pub struct TrackingMemory {
    pub keys: u64,
    pub plain_bytes: u64,
    pub tracked_bytes: u64,
    pub plain_per_key: f64,
    pub tracked_per_key: f64,
    /// tracked / plain.
    pub ratio: f64,
}

/// In the child: builds state `kind` (`plain` or `tracked`) of `keys` keys and prints
/// its memory probe.
pub fn child(kind: &str, keys: u64) {
    let mut probe = MemProbe {
        baseline: status_bytes("VmRSS:").unwrap_or(0),
        hwm: 0,
        reset: std::fs::write("/proc/self/clear_refs", "5").is_ok(),
    };
    match kind {
        "plain" => {
            let mut m: FastMap<String, (u64, f64)> = FastMap::default();
            for k in 0..keys {
                let e = m.entry(events::key_string(k)).or_default();
                e.0 += 1;
                e.1 += 1.25;
            }
            std::hint::black_box(&m);
            probe.hwm = status_bytes("VmHWM:").unwrap_or(0);
        }
        "tracked" => {
            let mut m: KeyedState<String, (u64, f64)> = KeyedState::default();
            for k in 0..keys {
                let e = m.entry(events::key_string(k));
                e.0 += 1;
                e.1 += 1.25;
            }
            std::hint::black_box(&m);
            probe.hwm = status_bytes("VmHWM:").unwrap_or(0);
        }
        other => {
            eprintln!("bench: unknown state {other} (plain or tracked)");
            std::process::exit(2)
        }
    }
    println!("{}", serde_json::to_string(&probe).expect("json"));
}

/// The state's own peak bytes, measured by a child process.
fn measure(kind: &str, keys: u64) -> Option<u64> {
    let exe = std::env::current_exe().ok()?;
    let o = Command::new(exe)
        .args(["--child", "state", kind, "--keys", &keys.to_string()])
        .output()
        .ok()?;
    let s = String::from_utf8_lossy(&o.stdout);
    let p: MemProbe = serde_json::from_str(s.lines().last()?).ok()?;
    p.reset.then(|| p.hwm.saturating_sub(p.baseline))
}

/// Measures each key count; rows whose probe failed are left out (and said so).
pub fn measure_all(key_counts: &[u64]) -> Vec<TrackingMemory> {
    let mut out = Vec::new();
    for &keys in key_counts {
        let (Some(plain), Some(tracked)) = (measure("plain", keys), measure("tracked", keys))
        else {
            println!("  tracking memory {keys} keys: no measurement (needs /proc/self/clear_refs)");
            continue;
        };
        let row = TrackingMemory {
            keys,
            plain_bytes: plain,
            tracked_bytes: tracked,
            plain_per_key: plain as f64 / keys as f64,
            tracked_per_key: tracked as f64 / keys as f64,
            ratio: tracked as f64 / plain as f64,
        };
        println!(
            "  tracking memory {:>8} keys: without stamps {:.1} MB ({:.1} B/key), with {:.1} MB ({:.1} B/key): {:.3}x",
            keys,
            plain as f64 / 1e6,
            row.plain_per_key,
            tracked as f64 / 1e6,
            row.tracked_per_key,
            row.ratio
        );
        out.push(row);
    }
    out
}

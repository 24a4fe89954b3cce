//! The runtime behind SimpleStream's `pipeline!` macro.
//!
//! A few small traits and plain structs, one concept a module:
//!
//! - [`Checkpointable`]: state that can be saved and restored;
//! - [`KeyedState`]: per-key state on a fast, seeded hasher;
//! - [`delta`]: change tracking for incremental checkpoints;
//! - [`aggregate`]: `count`, `sum`, `min`, `max`, `avg` and user-defined aggregates;
//! - [`window`]: tumbling, sliding and session windows;
//! - [`window_delta`], [`timed_delta`]: what changed in windows, sessions and joins;
//! - [`distinct`]: the keys `distinct` has let through;
//! - [`Pipeline`]: what the macro generates;
//! - [`plan`]: what the macro compiled, as data for tools;
//! - [`codec`]: the two codecs (JSON, binary) and the errors of encoding and decoding;
//! - [`envelope`]: the checkpoint format (JSON or binary, checksummed);
//! - [`store`]: where checkpoints go ([`MemoryStore`], `FileStore`);
//! - [`coordinator`]: when and how checkpoints are taken, retention, recovery;
//! - [`incremental`]: deltas, manifests and retention of shared pieces;
//! - [`names`]: the names of stored checkpoints, deltas and manifests;
//! - [`testing`]: crash-and-restore testing for your own pipelines;
//! - `runner` (feature `native`): turns a pipeline into a command-line program.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod aggregate;
pub mod checkpoint;
pub mod codec;
pub mod columns;
pub mod coordinator;
pub mod delta;
pub mod distinct;
pub mod envelope;
pub mod fingerprint;
pub mod incremental;
pub mod join;
pub mod names;
pub mod pipeline;
pub mod plan;
pub mod spill;
pub mod state;
pub mod store;
pub mod testing;
pub mod time;
pub mod timed_delta;
pub mod upgrade;
pub mod window;
pub mod window_delta;

#[cfg(test)]
mod delta_tests;

// Group membership (native) and the Kafka store (`kafka`) both speak it.
#[cfg(feature = "native")]
#[cfg_attr(not(feature = "kafka"), allow(dead_code))]
mod kafka_wire;
#[cfg(feature = "native")]
pub mod runner;
#[cfg(feature = "sql")]
pub mod sql;

pub use checkpoint::Checkpointable;
pub use codec::{CheckpointError, Codec};
pub use columns::Columns;
pub use coordinator::{Coordinator, CoordinatorConfig};
pub use envelope::Header;
pub use pipeline::{Clock, Collector, OutputRecord, Pipeline};
pub use state::{KeyStr, KeyedState};
pub use store::{CheckpointStore, MemoryStore, StoreError};

/// Re-exports used by code that `pipeline!` generates. Not a stable API.
#[doc(hidden)]
pub mod __private {
    pub use serde;
    pub use serde_json;
}

/// The start of the line printed at a [`hold_point`].
#[doc(hidden)]
pub const HELD: &str = "simplestream: held at";

/// Test hook: with `SIMPLESTREAM_HOLD=<name>:<file>` set, a thread reaching point `name`
/// prints a line starting with [`HELD`] and waits until `file` exists, so a test can
/// stop a process exactly inside a window (between a fence check and the write it
/// allows) and let it go once another process has acted.
#[doc(hidden)]
pub fn hold_point(name: &str, what: &dyn std::fmt::Display) {
    #[cfg(all(feature = "native", not(target_arch = "wasm32")))]
    {
        use std::sync::OnceLock;
        static HOLD: OnceLock<Option<(String, std::path::PathBuf)>> = OnceLock::new();
        let hold = HOLD.get_or_init(|| {
            let v = std::env::var("SIMPLESTREAM_HOLD").ok()?;
            let (point, file) = v.split_once(':')?;
            Some((point.to_string(), file.into()))
        });
        let Some((point, file)) = hold else { return };
        if point != name || file.exists() {
            return;
        }
        eprintln!("{HELD} {name} ({what}): waiting for {}", file.display());
        // Polling: the test creates the file once, from another process.
        while !file.exists() {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
    #[cfg(not(all(feature = "native", not(target_arch = "wasm32"))))]
    let _ = (name, what);
}

/// Test hook: with `SIMPLESTREAM_FAILPOINT=<name>` set, the process aborts at that point,
/// as a crash would (used by the crash tests to kill inside a checkpoint write);
/// `<name>:<k>` aborts the `k`-th time the process reaches it (`after-retention-delete:3`:
/// after the third delete).
#[doc(hidden)]
pub fn checkpoint_failpoint(name: &str) {
    #[cfg(all(feature = "native", not(target_arch = "wasm32")))]
    {
        use std::sync::atomic::{AtomicU64, Ordering};
        use std::sync::OnceLock;
        static FP: OnceLock<Option<(String, u64)>> = OnceLock::new();
        static HITS: AtomicU64 = AtomicU64::new(0);
        let fp = FP.get_or_init(|| {
            let v = std::env::var("SIMPLESTREAM_FAILPOINT").ok()?;
            match v.rsplit_once(':').map(|(n, k)| (n, k.parse::<u64>())) {
                Some((n, Ok(k))) => Some((n.to_string(), k)),
                _ => Some((v, 1)),
            }
        });
        if let Some((point, k)) = fp {
            if point == name && HITS.fetch_add(1, Ordering::Relaxed) + 1 == *k {
                // The thread tells a background upload from the pause.
                let thread = std::thread::current();
                let on = thread.name().unwrap_or("unnamed");
                eprintln!("failpoint {name} (hit {k}): aborting (thread {on})");
                std::process::abort();
            }
        }
    }
    #[cfg(not(all(feature = "native", not(target_arch = "wasm32"))))]
    let _ = name;
}

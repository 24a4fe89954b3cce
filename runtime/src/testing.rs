//! Crash testing for your own pipelines.
//!
//! [`assert_crash_equivalent`] runs a pipeline over your events twice: once without
//! interruption, and once crashing at chosen points, where the pipeline is checkpointed,
//! thrown away, and restored from the checkpoint bytes into a new one. Outputs and final
//! state must be equal, in both codecs; otherwise it panics showing the first difference.
//!
//! ```
//! # // A pipeline written by hand would do; the README shows one made with `pipeline!`.
//! use simplestream_runtime::testing::CrashPlan;
//! assert_eq!(CrashPlan::EveryK(3).points(10), vec![3, 6, 9]);
//! ```

use std::fmt::Debug;

use crate::coordinator::{Coordinator, CoordinatorConfig};
use crate::envelope::{self, Codec};
use crate::incremental::IncrementalConfig;
use crate::names::{parse_name, EntryKind};
use crate::pipeline::Pipeline;
use crate::store::MemoryStore;

/// Where to crash, as event indexes (a crash at `i` happens before event `i`).
#[derive(Debug, Clone)]
pub enum CrashPlan {
    /// Before every k-th event.
    EveryK(usize),
    /// At `crashes` points drawn from `seed`.
    Random {
        /// Seed of the draw (the same seed gives the same points).
        seed: u64,
        /// How many crashes.
        crashes: usize,
    },
    /// At exactly these indexes.
    At(Vec<usize>),
}

impl CrashPlan {
    /// The crash points for `n` events, sorted and deduplicated.
    pub fn points(&self, n: usize) -> Vec<usize> {
        let mut v: Vec<usize> = match self {
            CrashPlan::EveryK(k) => (1..=n).filter(|i| *k > 0 && i % k == 0).collect(),
            CrashPlan::Random { seed, crashes } => {
                let mut s = *seed;
                (0..*crashes)
                    .map(|_| (splitmix(&mut s) % (n as u64 + 1)) as usize)
                    .collect()
            }
            CrashPlan::At(v) => v.iter().copied().filter(|i| *i <= n).collect(),
        };
        v.sort_unstable();
        v.dedup();
        v
    }
}

fn splitmix(s: &mut u64) -> u64 {
    *s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *s;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The result of a run: outputs and the final state as JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct RunResult<O> {
    /// Every output, in order.
    pub outputs: Vec<O>,
    /// Final state of every stage, JSON (sorted keys, so comparable as text).
    pub state_json: String,
    /// Number of restores performed.
    pub restores: usize,
}

/// Runs `events` through a fresh pipeline, then ends the input.
pub fn run_uninterrupted<P: Pipeline>(events: &[P::Event]) -> RunResult<P::Output>
where
    P::Event: Clone,
{
    run_with_crashes::<P>(events, &[], Codec::Json).expect("no crash, no decode")
}

/// Runs `events`, checkpointing, dropping and restoring the pipeline before each index in
/// `crash_points`.
pub fn run_with_crashes<P: Pipeline>(
    events: &[P::Event],
    crash_points: &[usize],
    codec: Codec,
) -> Result<RunResult<P::Output>, String>
where
    P::Event: Clone,
{
    let mut p = P::new();
    let mut outputs = Vec::new();
    let mut restores = 0;
    let mut next = crash_points.iter().copied().peekable();
    for (i, e) in events.iter().enumerate() {
        while next.peek() == Some(&i) {
            next.next();
            p = crash_and_restore(p, codec, i as u64)?;
            restores += 1;
        }
        p.process(e.clone(), &mut outputs);
    }
    if next.peek().is_some() {
        p = crash_and_restore(p, codec, events.len() as u64)?;
        restores += 1;
    }
    p.finish(&mut outputs);
    let mut state = Vec::new();
    p.encode_stages(Codec::Json, &mut state)
        .map_err(|e| e.to_string())?;
    Ok(RunResult {
        outputs,
        state_json: String::from_utf8(state).expect("JSON is UTF-8"),
        restores,
    })
}

fn crash_and_restore<P: Pipeline>(p: P, codec: Codec, id: u64) -> Result<P, String> {
    let bytes =
        envelope::encode(&p, codec, id + 1, 0, Default::default()).map_err(|e| e.to_string())?;
    drop(p); // the crash: all in-memory state is gone
    let (header, restored) =
        envelope::decode::<P>(&bytes).map_err(|e| format!("restore before event {id}: {e}"))?;
    if header.checkpoint_id != id + 1 {
        return Err(format!(
            "restored checkpoint {} instead of {}",
            header.checkpoint_id,
            id + 1
        ));
    }
    Ok(restored)
}

/// Runs `events` with incremental checkpoints into a [`MemoryStore`]: a checkpoint before
/// each index in `points` (a delta on the previous one, a whole one every third), and at
/// every second point a crash: pipeline and coordinator are dropped, and a new
/// coordinator restores from the store (base plus deltas). Also returns how many
/// restores read deltas.
pub fn run_with_incremental_crashes<P: Pipeline>(
    events: &[P::Event],
    points: &[usize],
    codec: Codec,
) -> Result<(RunResult<P::Output>, usize), String>
where
    P::Event: Clone,
{
    let config = CoordinatorConfig {
        every_events: None,
        codec,
        keep: 2,
        ..CoordinatorConfig::default()
    };
    let incremental = IncrementalConfig {
        max_deltas: 2,
        max_delta_ratio: f64::INFINITY,
    };
    let mut c = Coordinator::new(MemoryStore::new(), config.clone());
    c.set_incremental(Some(incremental.clone()));
    let (mut p, mut outputs, mut restores, mut from_deltas) = (P::new(), Vec::new(), 0, 0);
    let at = |i: usize, p: &mut P, c: &mut Coordinator<MemoryStore>, n: usize| {
        c.checkpoint(&*p, Default::default(), i as i64)
            .map_err(|e| format!("incremental checkpoint before event {i}: {e}"))?;
        if n.is_multiple_of(2) {
            return Ok::<_, String>(false);
        }
        let store =
            std::mem::replace(c, Coordinator::new(MemoryStore::new(), config.clone())).into_store();
        *c = Coordinator::new(store, config.clone());
        c.set_incremental(Some(incremental.clone()));
        let r = c
            .recover::<P>()
            .map_err(|e| format!("incremental restore before event {i}: {e}"))?
            .ok_or_else(|| format!("no checkpoint to restore before event {i}"))?;
        *p = r.pipeline;
        Ok(matches!(
            parse_name(&r.name),
            Some((_, EntryKind::Manifest))
        ))
    };
    let mut n = 0usize;
    let mut next = points.iter().copied().peekable();
    for (i, e) in events.iter().enumerate() {
        while next.peek() == Some(&i) {
            next.next();
            let crashed = !n.is_multiple_of(2);
            from_deltas += usize::from(at(i, &mut p, &mut c, n)?);
            restores += usize::from(crashed);
            n += 1;
        }
        p.process(e.clone(), &mut outputs);
    }
    for _ in next {
        let crashed = !n.is_multiple_of(2);
        from_deltas += usize::from(at(events.len(), &mut p, &mut c, n)?);
        restores += usize::from(crashed);
        n += 1;
    }
    p.finish(&mut outputs);
    let mut state = Vec::new();
    p.encode_stages(Codec::Json, &mut state)
        .map_err(|e| e.to_string())?;
    let state_json = String::from_utf8(state).expect("JSON is UTF-8");
    let result = RunResult {
        outputs,
        state_json,
        restores,
    };
    Ok((result, from_deltas))
}

/// Asserts that crashing and restoring at `plan`'s points, in both codecs, gives exactly
/// the outputs and final state of an uninterrupted run; and the same with incremental
/// checkpoints (see [`run_with_incremental_crashes`]), restoring from deltas.
///
/// # Panics
/// With the first differing output (index, expected, found) or the differing state; and
/// when `plan` gives no crash point for these events (such a test would prove nothing).
pub fn assert_crash_equivalent<P: Pipeline>(events: &[P::Event], plan: CrashPlan)
where
    P::Event: Clone,
    P::Output: PartialEq + Debug,
{
    let points = crash_points::<P>(&plan, events.len());
    let reference = run_uninterrupted::<P>(events);
    check_crashes::<P>(events, &points, &reference);
}

/// `plan`'s points for `n` events; panics if there are none: a plan that crashes nowhere
/// would compare a run with itself and always pass.
fn crash_points<P: Pipeline>(plan: &CrashPlan, n: usize) -> Vec<usize> {
    let points = plan.points(n);
    assert!(
        !points.is_empty(),
        "{}: {plan:?} gives no crash point for {n} events, so nothing would be tested: use a smaller k or more events",
        P::name(),
    );
    points
}

/// The crashed runs of [`assert_crash_equivalent`], compared with `reference`.
fn check_crashes<P: Pipeline>(
    events: &[P::Event],
    points: &[usize],
    reference: &RunResult<P::Output>,
) where
    P::Event: Clone,
    P::Output: PartialEq + Debug,
{
    for codec in [Codec::Json, Codec::Binary] {
        let crashed = run_with_crashes::<P>(events, points, codec)
            .unwrap_or_else(|e| panic!("{}: {codec} checkpoint failed: {e}", P::name()));
        assert_eq!(
            crashed.restores,
            points.len(),
            "{}: {} restores for {} crash points ({codec})",
            P::name(),
            crashed.restores,
            points.len()
        );
        compare(reference, &crashed, codec, points);
        let (incremental, from_deltas) = run_with_incremental_crashes::<P>(events, points, codec)
            .unwrap_or_else(|e| panic!("{}: {codec}: {e}", P::name()));
        compare(&incremental, reference, codec, points);
        // Two checkpoints make a base and a delta, and the second one is restored.
        if points.len() >= 2 && P::new().stage_versions().is_some() {
            assert!(
                from_deltas > 0,
                "{}: no restore read a delta ({codec})",
                P::name()
            );
        }
    }
}

/// [`assert_crash_equivalent`] with the disk state backend: the uninterrupted run and
/// every crashed one (both codecs, whole and incremental checkpoints) run with `disk`
/// as the backend, and each must give exactly the outputs and final state of an
/// uninterrupted run with the memory backend. Choose `disk.memory` small enough that
/// most keys live on disk (a few KiB for a few thousand keys).
///
/// The backend is process-wide ([`set_state_backend`](crate::spill::set_state_backend)):
/// calls of this function wait for each other, and it sets the backend back as it found
/// it, but other code of the process creating state meanwhile gets the disk backend too.
///
/// # Panics
/// As [`assert_crash_equivalent`]; when nothing was evicted to disk (the budget held
/// every key, so the disk backend was not tested); and when the working directory failed
/// ([`failure`](crate::spill::failure)).
///
/// ```
/// use simplestream_runtime::spill::DiskConfig;
/// use simplestream_runtime::testing::CrashPlan;
/// // 64 KiB for 5,000 customers of the README's `orders` pipeline: most live on disk.
/// let dir = tempfile::tempdir().unwrap();
/// let disk = DiskConfig { dir: dir.path().join("state"), memory: 64 << 10 };
/// let plan = CrashPlan::Random { seed: 7, crashes: 12 };
/// // assert_crash_equivalent_on_disk::<Orders>(&orders, plan, disk);
/// # let _ = (disk, plan);
/// ```
#[cfg(feature = "disk")]
pub fn assert_crash_equivalent_on_disk<P: Pipeline>(
    events: &[P::Event],
    plan: CrashPlan,
    disk: crate::spill::DiskConfig,
) where
    P::Event: Clone,
    P::Output: PartialEq + Debug,
{
    use crate::spill::{self, StateBackend};
    static ONE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = ONE.lock().unwrap_or_else(|e| e.into_inner());
    let points = crash_points::<P>(&plan, events.len());
    /// Sets the backend back when dropped, also when a comparison panics.
    struct Restore(StateBackend);
    impl Drop for Restore {
        fn drop(&mut self) {
            // The one found may be gone (another test's directory): memory then.
            if spill::set_state_backend(self.0.clone()).is_err() {
                let _ = spill::set_state_backend(StateBackend::Memory);
            }
        }
    }
    let _restore = Restore(spill::state_backend());
    spill::set_state_backend(StateBackend::Memory).expect("the memory backend");
    let reference = run_uninterrupted::<P>(events);
    let budget = disk.memory;
    spill::set_state_backend(StateBackend::Disk(disk))
        .unwrap_or_else(|e| panic!("{}: {e}", P::name()));
    let evicted = spill::evicted();
    let on_disk = run_uninterrupted::<P>(events);
    compare(&reference, &on_disk, Codec::Json, &[]);
    check_crashes::<P>(events, &points, &reference);
    if let Some(e) = spill::failure() {
        panic!(
            "{}: the disk backend's working directory failed: {e}",
            P::name()
        );
    }
    assert!(
        spill::evicted() > evicted,
        "{}: no entry went to disk with a budget of {budget} bytes, so the disk backend was not tested: use a smaller budget or more keys",
        P::name()
    );
}

fn compare<O: PartialEq + Debug>(
    r: &RunResult<O>,
    c: &RunResult<O>,
    codec: Codec,
    points: &[usize],
) {
    let first = r.outputs.iter().zip(&c.outputs).position(|(a, b)| a != b);
    if let Some(i) = first {
        panic!(
            "output {i} differs after crashes at {points:?} ({codec}):\n  uninterrupted: {:?}\n  restored:      {:?}",
            r.outputs[i], c.outputs[i]
        );
    }
    assert_eq!(
        r.outputs.len(),
        c.outputs.len(),
        "output count differs after crashes at {points:?} ({codec})"
    );
    assert_eq!(
        r.state_json, c.state_json,
        "final state differs after crashes at {points:?} ({codec})"
    );
}

//! Savepoints: whole checkpoints the user asked for and named.
//!
//! A savepoint is stored beside the checkpoints under a name retention never deletes
//! ([`savepoint_name`]), is always whole (it names no base or delta that retention could
//! take away), and leaves `latest` and the incremental chain alone: the run goes on as
//! if it had not been taken. [`Coordinator::recover_savepoint`] restores one by name.

use std::collections::BTreeMap;

use super::{max_id, self_check, CheckpointInfo, Coordinator, CoordinatorError, Recovered, BUSY};
use crate::envelope;
use crate::incremental::Piece;
use crate::names::{savepoint_name, savepoint_of, validate_savepoint};
use crate::pipeline::Pipeline;
use crate::store::{CheckpointStore, StoredEntry};

impl<S: CheckpointStore> Coordinator<S> {
    /// Takes savepoint `name` of `pipeline` now: a whole checkpoint (decoded once before
    /// it is stored, as every checkpoint is) that retention keeps until the user deletes
    /// it. A name already taken is refused: a savepoint is never overwritten.
    ///
    /// ```
    /// use simplestream_runtime::{Coordinator, CoordinatorConfig, MemoryStore, Pipeline};
    /// fn before_an_upgrade<P: Pipeline>(p: &P) {
    ///     let config = CoordinatorConfig { keep: 1, ..Default::default() };
    ///     let mut c = Coordinator::new(MemoryStore::new(), config);
    ///     let sp = c.savepoint(p, "before-v2", Default::default(), 0).unwrap();
    ///     assert_eq!(sp.name, "checkpoint_savepoint-before-v2.json");
    ///     for t in 1..5 {
    ///         c.checkpoint(p, Default::default(), t).unwrap(); // retention keeps it
    ///     }
    ///     let r = c.recover_savepoint::<P>("before-v2").unwrap();
    ///     assert_eq!(r.header.checkpoint_id, sp.id);
    /// }
    /// ```
    pub fn savepoint<P: Pipeline>(
        &mut self,
        pipeline: &P,
        name: &str,
        positions: BTreeMap<String, u64>,
        now_ms: i64,
    ) -> Result<CheckpointInfo, CoordinatorError> {
        let fail = |problem: String| CoordinatorError::Savepoint {
            name: name.to_string(),
            problem,
        };
        validate_savepoint(name).map_err(fail)?;
        if let Some(Err(e)) = self.finish_upload() {
            return Err(e);
        }
        let started = crate::time::Stopwatch::start();
        let store = self.store.as_mut().expect(BUSY);
        name_is_free(&*store, name)?;
        let id = self.next_id;
        let codec = self.config.codec;
        let encoded = envelope::encode_staged(pipeline, codec, id, now_ms, positions)?;
        self_check::<P>(&encoded.bytes)
            .map_err(|source| CoordinatorError::Unrestorable { id, source })?;
        let stored = savepoint_name(name, codec);
        store.put_staged(&stored, &encoded.bytes, &encoded.stages)?;
        self.next_id = id.saturating_add(1);
        Ok(CheckpointInfo {
            id,
            name: stored,
            size: encoded.bytes.len() as u64,
            codec,
            deleted: Vec::new(),
            store_ms: started.elapsed_ms(),
        })
    }

    /// Restores savepoint `name` (stages matched as [`recover`](Self::recover) matches
    /// them). A missing savepoint, or one this pipeline cannot take (another pipeline's,
    /// corrupt, a layout change with no migration), is refused in one message and
    /// nothing is loaded. The next checkpoint is whole and numbered after every
    /// checkpoint in the store.
    pub fn recover_savepoint<P: Pipeline>(
        &mut self,
        name: &str,
    ) -> Result<Recovered<P>, CoordinatorError> {
        let fail = |problem: String| CoordinatorError::Savepoint {
            name: name.to_string(),
            problem,
        };
        validate_savepoint(name).map_err(fail)?;
        let listed = self.store_mut().list()?;
        let Some(entry) = find(&listed, name) else {
            let there: Vec<&str> = listed
                .iter()
                .filter_map(|e| savepoint_of(&e.name))
                .collect();
            let there = match there.is_empty() {
                true => "there are none there".to_string(),
                false => format!("the savepoints there: {}", there.join(", ")),
            };
            return Err(fail(format!(
                "there is no savepoint of that name in {} ({there})",
                self.store().location()
            )));
        };
        let bytes = self.store().get(&entry.name)?;
        let r = envelope::decode_with::<P>(&bytes, &self.restore)
            .map_err(|e| fail(format!("{} cannot be restored: {e}", entry.name)))?;
        self.next_id = self.next_id.max(max_id(&listed).saturating_add(1));
        let piece = Piece::of(&entry.name, r.header.checkpoint_id, &bytes);
        let loaded = (r.header, r.pipeline, vec![piece], r.actions);
        let recovered = self.restored(loaded, entry.name.clone(), Vec::new());
        // No chain builds on a savepoint: its deltas would outlive their base's purpose.
        self.chain = None;
        Ok(recovered)
    }
}

/// The stored savepoint called `name`, in either codec.
/// Refuses `name` if `store` already holds a savepoint of that name: a savepoint is
/// never overwritten (the program's SIGUSR1 and the `checkpoints savepoint` tool alike).
pub(crate) fn name_is_free<S: CheckpointStore + ?Sized>(
    store: &S,
    name: &str,
) -> Result<(), CoordinatorError> {
    match find(&store.list()?, name) {
        Some(e) => Err(CoordinatorError::Savepoint {
            name: name.to_string(),
            problem: format!(
                "{} already holds a savepoint of that name in {}: savepoints are never overwritten; choose another name",
                e.name,
                store.location()
            ),
        }),
        None => Ok(()),
    }
}

fn find<'a>(listed: &'a [StoredEntry], name: &str) -> Option<&'a StoredEntry> {
    listed.iter().find(|e| savepoint_of(&e.name) == Some(name))
}

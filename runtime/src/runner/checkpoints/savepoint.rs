//! `checkpoints savepoint DIR NAME`: a savepoint taken from outside the program, from
//! the latest checkpoint in the store. It is the whole checkpoint that checkpoint
//! stands for (an incremental one's base and deltas merged), stored under the
//! savepoint's name: the store writes it whole or not at all (a file store writes a
//! temporary file and renames it), and a name already taken is refused.

use crate::coordinator::{Coordinator, CoordinatorConfig};
use crate::envelope::{self, Codec};
use crate::names::{parse_name, savepoint_name, savepoint_of, validate_savepoint, EntryKind};
use crate::store::{redact_urls, CheckpointStore, StoreErrorKind, StoreUrl};
use crate::time::iso_utc;

use super::{open, Own};

/// Takes savepoint `name` from the latest checkpoint of `instance`; says what it wrote.
pub(super) fn take(dir: &str, instance: &str, name: &str, own: Option<Own>) -> Result<(), String> {
    validate_savepoint(name)?;
    // Read-only first: a missing store is reported, not created.
    open(dir, instance)?;
    let url = StoreUrl::parse(dir).map_err(|e| e.to_string())?;
    let store = url.open(instance, false).map_err(|e| match e.kind {
        StoreErrorKind::Locked => format!(
            "{e}: the program is running; send it SIGUSR1 for a savepoint taken between two events (`kill -USR1 PID`, named by its --savepoint-name), or stop it first"
        ),
        _ => e.to_string(),
    })?;
    let mut c = Coordinator::new(store, CoordinatorConfig::default());
    let from = latest(&c)?;
    let bytes = c.store().get(&from).map_err(|e| e.to_string())?;
    let (whole, codec, how) = match parse_name(&from) {
        Some((_, EntryKind::Manifest)) => resolve_chain(c.store().as_ref(), &from, &bytes, own)?,
        _ => {
            let v = envelope::verify(&bytes).map_err(|e| format!("{from}: {e}"))?;
            if let Some(own) = own.filter(|o| o.name == v.header.pipeline) {
                (own.decode)(&bytes).map_err(|e| format!("{from}: {e}"))?;
            }
            let codec = v.codec;
            (bytes, codec, "a whole checkpoint, copied as it is")
        }
    };
    let stored = savepoint_name(name, codec);
    let store = c.store_mut();
    crate::coordinator::savepoint::name_is_free(&**store, name).map_err(|e| e.to_string())?;
    store.put(&stored, &whole).map_err(|e| e.to_string())?;
    let h = envelope::verify(&whole).map_err(|e| e.to_string())?.header;
    let events = h.positions.get("events").copied().unwrap_or(0);
    println!(
        "savepoint `{name}` written: {stored} in {}, from checkpoint #{} ({from}: {how}), taken {}, {events} events; restore it with --from-savepoint {name}",
        redact_urls(&store.location()),
        h.checkpoint_id,
        iso_utc(h.timestamp),
    );
    Ok(())
}

/// The latest checkpoint: the one `latest` points to, else the newest restorable one.
fn latest(c: &Coordinator<Box<dyn CheckpointStore + Send>>) -> Result<String, String> {
    if let Ok(Some(m)) = c.latest() {
        return Ok(m.file);
    }
    let entries = c.store().list().map_err(|e| e.to_string())?;
    entries
        .iter()
        .rev()
        .find(|e| crate::names::restorable(&e.name) && savepoint_of(&e.name).is_none())
        .map(|e| e.name.clone())
        .ok_or_else(|| format!("no checkpoints in {}", c.store().location()))
}

/// An incremental checkpoint merged into the whole one it stands for, by the program
/// that wrote it (the `simplestream` tool cannot decode binary stage state).
fn resolve_chain(
    store: &(dyn CheckpointStore + Send),
    from: &str,
    manifest: &[u8],
    own: Option<Own>,
) -> Result<(Vec<u8>, Codec, &'static str), String> {
    let (h, codec) =
        crate::incremental::chain::verify(store, manifest).map_err(|e| format!("{from}: {e}"))?;
    match own {
        Some(own) if own.name == h.pipeline => {
            let whole = (own.whole)(store, manifest, codec).map_err(|e| format!("{from}: {e}"))?;
            Ok((whole, codec, "an incremental checkpoint, its base and deltas merged"))
        }
        _ => Err(format!(
            "{from} is an incremental checkpoint of pipeline `{}` (base and deltas): merging them takes the pipeline; run `checkpoints savepoint` of the program that wrote it, or take one with SIGUSR1",
            h.pipeline
        )),
    }
}

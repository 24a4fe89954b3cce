//! A binary delta of a spilled state, written without gathering its entries: the
//! changed entries on disk go to a scratch file as they are found (the map's length comes
//! before its entries), then every entry is encoded straight into the checkpoint.

use std::cell::Cell;
use std::hash::Hash;
use std::io::{BufReader, BufWriter, Read, Write};

use serde::de::DeserializeOwned;
use serde::ser::{Error as _, SerializeMap};
use serde::{Serialize, Serializer};

use super::serde_impls::{Frame, View};
use super::{decode, Scratch, SpillState};
use crate::codec::{CheckpointError, StageWriter};

/// Writes field `name`: the entries of `state` changed after stamp `after`, and the keys
/// removed since, as a [`KeyedDelta`](crate::state::KeyedDelta) decodes them.
pub(super) fn write_changes<K, V, B>(
    state: &SpillState<K, V, B>,
    after: u64,
    frame: impl Frame,
    name: &'static str,
    w: &mut StageWriter<'_>,
) -> Result<(), CheckpointError>
where
    K: Hash + Eq + Clone + Serialize + DeserializeOwned,
    V: Clone + Serialize + DeserializeOwned,
{
    let bad = |detail: String| CheckpointError::Encode { detail };
    let disk = state.disk.as_ref().expect("a spilled state");
    let tier = disk.tier.as_ref().expect("a spilled state");
    let side = Scratch::create(&disk.config.dir).map_err(bad)?;
    let mut on_disk = 0;
    let mut out = BufWriter::with_capacity(1 << 16, side.file());
    tier.changed_after(after, |k, v| {
        // A stale copy of a key in memory.
        if state.mem.contains(&decode::<K>(k)?) {
            return Ok(());
        }
        on_disk += 1;
        put(&mut out, k).and_then(|()| put(&mut out, v))
    })
    .map_err(bad)?;
    out.flush().map_err(|e| bad(side.failed(e)))?;
    drop(out);
    // Changes up to `after` are in the checkpoint a delta is taken against.
    tier.ack(after);
    let upserts = Changed {
        state,
        after,
        on_disk,
        side: &side,
        failed: Cell::new(None),
    };
    let view = View {
        reset: false,
        upserts: &upserts,
        removed: state.mem.removed_after(after),
    };
    let wrote = frame.write(&view, name, w);
    match upserts.failed.take() {
        Some(e) => Err(bad(e)),
        None => wrote,
    }
}

/// A length-prefixed record of the scratch file.
fn put(out: &mut impl Write, bytes: &[u8]) -> Result<(), String> {
    let len = u32::try_from(bytes.len()).map_err(|_| "an entry over 4 GiB".to_string())?;
    out.write_all(&len.to_le_bytes())
        .and_then(|()| out.write_all(bytes))
        .map_err(|e| format!("state working directory: writing a delta's entries: {e}"))
}

fn take(r: &mut impl Read) -> Result<Vec<u8>, String> {
    let mut len = [0u8; 4];
    let read = |e| format!("state working directory: reading a delta's entries back: {e}");
    r.read_exact(&mut len).map_err(read)?;
    let mut b = vec![0; u32::from_le_bytes(len) as usize];
    r.read_exact(&mut b).map_err(read)?;
    Ok(b)
}

/// The changed entries as a map: memory's, then the disk's from the scratch file.
struct Changed<'a, K, V, B> {
    state: &'a SpillState<K, V, B>,
    after: u64,
    on_disk: usize,
    side: &'a Scratch,
    /// Why reading the scratch file failed (the serializer's error says less).
    failed: Cell<Option<String>>,
}

impl<K, V, B> Serialize for Changed<'_, K, V, B>
where
    K: Hash + Eq + Serialize + DeserializeOwned,
    V: Serialize + DeserializeOwned,
{
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mem = &self.state.mem;
        let in_mem = mem.changed_since(self.after).count();
        let mut m = s.serialize_map(Some(in_mem + self.on_disk))?;
        for (k, v) in mem.changed_since(self.after) {
            m.serialize_entry(k, v)?;
        }
        let fail = |e: String| {
            self.failed.set(Some(e.clone()));
            S::Error::custom(e)
        };
        let mut r = BufReader::with_capacity(1 << 16, self.side.rewound().map_err(fail)?);
        for _ in 0..self.on_disk {
            let k: K = take(&mut r).and_then(|b| decode(&b)).map_err(fail)?;
            let v: V = take(&mut r).and_then(|b| decode(&b)).map_err(fail)?;
            m.serialize_entry(&k, &v)?;
        }
        m.end()
    }
}

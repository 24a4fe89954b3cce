//! [`SpillState`] in checkpoints: the same bytes as a [`KeyedState`] with the same
//! entries, so each backend restores the other's checkpoints; its deltas; and the
//! traits a stage's state derives.

use std::borrow::Cow;
use std::fmt;
use std::hash::Hash;
use std::marker::PhantomData;

use serde::de::{DeserializeOwned, MapAccess, Visitor};
use serde::ser::{Error as _, SerializeMap, SerializeStruct};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::SpillState;
use crate::checkpoint::Checkpointable;
use crate::codec::{CheckpointError, Codec, StageWriter};
use crate::delta::{Tracked, Version};
use crate::state::{Key, KeyedDelta, KeyedState};

impl<K: Key, V: Checkpointable + Clone, B> Checkpointable for SpillState<K, V, B> {
    const LAYOUT: u64 = <KeyedState<K, V> as Checkpointable>::LAYOUT;
}

pub(super) type Owned<'a, K, V> = Vec<(Cow<'a, K>, Cow<'a, V>)>;

impl<K, V, B> SpillState<K, V, B>
where
    K: Hash + Eq + Ord + Clone + Serialize + DeserializeOwned + 'static,
    V: Clone + Serialize + DeserializeOwned,
{
    /// Every entry, memory's and the disk's, sorted by key if `sorted`.
    pub(super) fn all(&self, sorted: bool) -> Result<Owned<'_, K, V>, String> {
        let mut v: Owned<'_, K, V> = self
            .mem
            .iter()
            .map(|(k, v)| (Cow::Borrowed(k), Cow::Borrowed(v)))
            .collect();
        for r in self.disk_entries() {
            let (k, _, val) = r?;
            v.push((Cow::Owned(k), Cow::Owned(val)));
        }
        if sorted {
            v.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        }
        Ok(v)
    }

    /// Entries changed after stamp `after`, in memory and on disk (all held at once:
    /// for readable deltas, which are sorted).
    pub(super) fn changed_after(&self, after: u64) -> Result<Owned<'_, K, V>, String> {
        let mut v: Owned<'_, K, V> = self
            .mem
            .changed_after(after, false)
            .into_iter()
            .map(|(k, v)| (Cow::Borrowed(k), Cow::Borrowed(v)))
            .collect();
        if let Some(tier) = self.disk.as_ref().and_then(|d| d.tier.as_ref()) {
            tier.changed_after(after, |k, val| {
                let k: K = super::decode(k)?;
                if !self.mem.contains(&k) {
                    v.push((Cow::Owned(k), Cow::Owned(super::decode(val)?)));
                }
                Ok(())
            })?;
            // Changes up to `after` are in the checkpoint a delta is taken against.
            tier.ack(after);
        }
        Ok(v)
    }
}

/// Owned and borrowed entries written as a map.
struct Map<'a, 'b, K: Clone, V: Clone>(&'b [(Cow<'a, K>, Cow<'a, V>)]);

impl<K: Serialize + Clone, V: Serialize + Clone> Serialize for Map<'_, '_, K, V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (k.as_ref(), v.as_ref())))
    }
}

impl<K, V, B> Serialize for SpillState<K, V, B>
where
    K: Hash + Eq + Ord + Clone + Serialize + DeserializeOwned + 'static,
    V: Clone + Serialize + DeserializeOwned,
{
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.on_disk() == 0 {
            return self.mem.serialize(s);
        }
        if s.is_human_readable() {
            let all = self.all(true).map_err(S::Error::custom)?;
            return Map(&all).serialize(s);
        }
        // Binary: one entry in memory at a time, however many are on disk.
        let mut m = s.serialize_map(Some(self.len()))?;
        for (k, v) in self.mem.iter() {
            m.serialize_entry(k, v)?;
        }
        for r in self.disk_entries() {
            let (k, _, v) = r.map_err(S::Error::custom)?;
            m.serialize_entry(&k, &v)?;
        }
        m.end()
    }
}

impl<'de, K, V, B> Deserialize<'de> for SpillState<K, V, B>
where
    K: Hash + Eq + Clone + Serialize + DeserializeOwned,
    V: Clone + Serialize + DeserializeOwned,
{
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Vis<K, V, B>(PhantomData<(K, V, B)>);
        impl<'de, K, V, B> Visitor<'de> for Vis<K, V, B>
        where
            K: Hash + Eq + Clone + Serialize + DeserializeOwned,
            V: Clone + Serialize + DeserializeOwned,
        {
            type Value = SpillState<K, V, B>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of keyed state")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                let mut s = SpillState::default();
                if super::backend::checking() {
                    while a.next_entry::<K, V>()?.is_some() {}
                    return Ok(s);
                }
                while let Some((k, v)) = a.next_entry()? {
                    s.restore_entry(k, v).map_err(serde::de::Error::custom)?;
                }
                Ok(s)
            }
        }
        d.deserialize_map(Vis(PhantomData))
    }
}

/// The delta of a [`SpillState`], written as a [`KeyedState`]'s is; `upserts` is a map.
pub(super) struct View<'a, K, U> {
    pub(super) reset: bool,
    pub(super) upserts: U,
    pub(super) removed: Vec<&'a K>,
}

impl<K: Serialize, U: Serialize> Serialize for View<'_, K, U> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("KeyedDelta", 3)?;
        st.serialize_field("reset", &self.reset)?;
        st.serialize_field("upserts", &self.upserts)?;
        st.serialize_field("removed", &self.removed)?;
        st.end()
    }
}

/// Where a stage writes a [`SpillState`]'s delta: as the field itself ([`Bare`]) or inside
/// a view of its own (session windows put their watermark beside it). Generic rather
/// than a value, so that a binary delta still streams from disk.
pub(crate) trait Frame {
    /// Writes field `name` of `w`, holding `delta` (a [`KeyedDelta`] when decoded).
    fn write<T: Serialize>(
        self,
        delta: &T,
        name: &'static str,
        w: &mut StageWriter<'_>,
    ) -> Result<(), CheckpointError>;
}

/// The delta is the field.
pub(crate) struct Bare;

impl Frame for Bare {
    fn write<T: Serialize>(
        self,
        delta: &T,
        name: &'static str,
        w: &mut StageWriter<'_>,
    ) -> Result<(), CheckpointError> {
        w.field(name, delta)
    }
}

impl<K, V, B> SpillState<K, V, B>
where
    K: Hash + Ord + Clone + Serialize + DeserializeOwned + 'static,
    V: Clone + Serialize + DeserializeOwned,
{
    /// The stamp a delta since `since` holds the changes after; `None`: the delta is
    /// whole (`since` is of another history).
    pub(crate) fn delta_after(&self, since: Option<Version>) -> Option<u64> {
        let now = self.mem.version();
        since
            .filter(|v| v.lineage == now.lineage && v.changes <= now.changes)
            .map(|v| v.changes)
    }

    /// [`Tracked::write_delta`], written through `frame`.
    pub(crate) fn write_delta_in(
        &self,
        since: Option<Version>,
        frame: impl Frame,
        name: &'static str,
        w: &mut StageWriter<'_>,
    ) -> Result<(), CheckpointError> {
        if self.disk.as_ref().is_none_or(|d| d.tier.is_none()) {
            let view = self.mem.delta_since(since, w.codec() == Codec::Json);
            return frame.write(&view, name, w);
        }
        let after = self.delta_after(since);
        if w.codec() == Codec::Binary {
            let Some(a) = after else {
                // Every entry, streamed from disk as a whole binary checkpoint is.
                let view = View {
                    reset: true,
                    upserts: self,
                    removed: Vec::<&K>::new(),
                };
                return frame.write(&view, name, w);
            };
            return super::delta::write_changes(self, a, frame, name, w);
        }
        // Readable deltas are sorted: every entry they hold is in memory at once.
        let bad = |detail: String| CheckpointError::Encode { detail };
        let (reset, mut upserts, mut removed) = match after {
            None => (true, self.all(true).map_err(bad)?, Vec::new()),
            Some(a) => (
                false,
                self.changed_after(a).map_err(bad)?,
                self.mem.removed_after(a),
            ),
        };
        upserts.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        removed.sort_unstable();
        let view = View {
            reset,
            upserts: Map(&upserts),
            removed,
        };
        frame.write(&view, name, w)
    }
}

impl<K, V, B> Tracked for SpillState<K, V, B>
where
    K: Hash + Ord + Clone + Serialize + DeserializeOwned + 'static,
    V: Clone + Serialize + DeserializeOwned,
{
    type Delta = KeyedDelta<K, V>;

    fn version(&self) -> Version {
        self.mem.version()
    }

    fn write_delta(
        &self,
        since: Option<Version>,
        name: &'static str,
        w: &mut StageWriter<'_>,
    ) -> Result<(), CheckpointError> {
        self.write_delta_in(since, Bare, name, w)
    }

    fn apply_delta(&mut self, mut delta: KeyedDelta<K, V>) {
        if delta.reset {
            *self = SpillState::default();
        }
        for k in &delta.removed {
            self.remove(k);
        }
        for (k, v) in delta.upserts.drain() {
            self.insert(k, v);
        }
    }
}

impl<K, V, B> Clone for SpillState<K, V, B>
where
    K: Hash + Eq + Ord + Clone + Serialize + DeserializeOwned,
    V: Clone + Serialize + DeserializeOwned,
{
    /// A clone starts a history of its own, as a [`KeyedState`]'s does.
    fn clone(&self) -> Self {
        if self.on_disk() == 0 && self.disk.is_none() {
            return SpillState {
                mem: self.mem.clone(),
                disk: None,
                ahead: None,
            };
        }
        let mut c = SpillState::default();
        for (k, v) in self.iter() {
            if let Err(e) = c.restore_entry(k.into_owned(), v.into_owned()) {
                super::failure::record(e);
            }
        }
        c
    }
}

impl<K, V, B> fmt::Debug for SpillState<K, V, B>
where
    K: Hash + Eq + Ord + Clone + fmt::Debug + Serialize + DeserializeOwned + 'static,
    V: Clone + fmt::Debug + Serialize + DeserializeOwned,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let all = self.all(true).map_err(|_| fmt::Error)?;
        f.debug_map()
            .entries(all.iter().map(|(k, v)| (k.as_ref(), v.as_ref())))
            .finish()
    }
}

impl<K, V, B> PartialEq for SpillState<K, V, B>
where
    K: Hash + Eq + Ord + Clone + Serialize + DeserializeOwned,
    V: Clone + PartialEq + Serialize + DeserializeOwned,
{
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len()
            && self
                .iter()
                .all(|(k, v)| other.get(&*k).as_deref() == Some(v.as_ref()))
    }
}

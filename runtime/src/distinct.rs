//! [`SeenKeys`]: the state of `distinct`, every key seen so far.

use std::borrow::Cow;
use std::fmt;
use std::hash::Hash;
use std::marker::PhantomData;

use serde::de::{DeserializeOwned, SeqAccess, Visitor};
use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::checkpoint::Checkpointable;
use crate::codec::{CheckpointError, StageWriter};
use crate::delta::{Tracked, Version};
use crate::fingerprint::{combine, fnv1a};
use crate::spill::SpillState;
use crate::state::Key;

/// The keys `distinct` has let through. It only grows: one entry per distinct key. With
/// the disk backend the keys seen longest ago go to disk; a key found there stays there.
///
/// Each key keeps the stamp of its insertion, so a delta holds the keys seen since the
/// version it is taken against (see [`Tracked`]).
///
/// In human-readable formats (the JSON codec) keys are written sorted, so the same set
/// always gives the same bytes; binary formats skip the sort.
///
/// ```
/// use simplestream_runtime::distinct::SeenKeys;
/// let mut seen: SeenKeys<String> = SeenKeys::default();
/// assert!(seen.insert("C002".to_string()));
/// assert!(seen.insert("C001".to_string()));
/// assert!(!seen.insert("C002".to_string()), "already seen");
/// assert_eq!(serde_json::to_string(&seen).unwrap(), r#"["C001","C002"]"#);
/// ```
pub struct SeenKeys<K> {
    /// Each key with the stamp of its insertion.
    keys: SpillState<K, ()>,
}

impl<K> Default for SeenKeys<K> {
    fn default() -> Self {
        SeenKeys {
            keys: SpillState::default(),
        }
    }
}

// Serde's bounds, not `Key`: a key type missing `Checkpointable` is then reported once,
// by the stage's `Checkpointable` impl.
impl<K: Hash + Eq + Ord + Clone + Serialize + DeserializeOwned + 'static> SeenKeys<K> {
    /// Records `key`; true if it had not been seen.
    #[inline]
    pub fn insert(&mut self, key: K) -> bool {
        self.keys.insert_if_absent(key)
    }

    /// True if `key` has been seen.
    pub fn contains(&self, key: &K) -> bool {
        self.keys.get(key).is_some()
    }

    /// Number of keys seen.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True before the first key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Keys on disk (0 with the memory backend).
    pub fn on_disk(&self) -> u64 {
        self.keys.on_disk()
    }

    /// The keys, sorted (all of them in memory at once).
    pub fn sorted(&self) -> Vec<Cow<'_, K>> {
        self.keys.sorted().into_iter().map(|(k, _)| k).collect()
    }
}

impl<K> Clone for SeenKeys<K>
where
    K: Hash + Eq + Ord + Clone + Serialize + DeserializeOwned + 'static,
{
    fn clone(&self) -> Self {
        SeenKeys {
            keys: self.keys.clone(),
        }
    }
}

impl<K> fmt::Debug for SeenKeys<K>
where
    K: Hash + Eq + Ord + Clone + Serialize + DeserializeOwned + fmt::Debug + 'static,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.sorted()).finish()
    }
}

impl<K> PartialEq for SeenKeys<K>
where
    K: Hash + Eq + Ord + Clone + Serialize + DeserializeOwned + 'static,
{
    fn eq(&self, other: &Self) -> bool {
        self.keys == other.keys
    }
}

impl<K> Serialize for SeenKeys<K>
where
    K: Hash + Eq + Ord + Clone + Serialize + DeserializeOwned + 'static,
{
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Sorting costs O(n log n); only readable formats promise stable bytes.
        if s.is_human_readable() {
            return s.collect_seq(self.sorted());
        }
        All(&self.keys).serialize(s)
    }
}

/// Every key of a set, memory's then the disk's, one at a time.
struct All<'a, K>(&'a SpillState<K, ()>);

impl<K> Serialize for All<'_, K>
where
    K: Hash + Eq + Ord + Clone + Serialize + DeserializeOwned + 'static,
{
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for (k, _) in self.0.mem.iter() {
            seq.serialize_element(k)?;
        }
        for r in self.0.disk_entries() {
            let (k, _, ()) = r.map_err(serde::ser::Error::custom)?;
            seq.serialize_element(&k)?;
        }
        seq.end()
    }
}

impl<'de, K> Deserialize<'de> for SeenKeys<K>
where
    K: Hash + Eq + Clone + Serialize + DeserializeOwned,
{
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Keys<K>(PhantomData<K>);
        impl<'de, K> Visitor<'de> for Keys<K>
        where
            K: Hash + Eq + Clone + Serialize + DeserializeOwned,
        {
            type Value = SeenKeys<K>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of keys")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                let mut keys = SpillState::default();
                if crate::spill::checking() {
                    while a.next_element::<K>()?.is_some() {}
                    return Ok(SeenKeys { keys });
                }
                while let Some(k) = a.next_element()? {
                    keys.restore_entry(k, ())
                        .map_err(serde::de::Error::custom)?;
                }
                Ok(SeenKeys { keys })
            }
        }
        d.deserialize_seq(Keys(PhantomData))
    }
}

impl<K: Key> Checkpointable for SeenKeys<K> {
    const LAYOUT: u64 = combine(fnv1a("SeenKeys"), K::LAYOUT);
}

/// What a delta of [`SeenKeys`] holds: the keys seen since (all of them after a reset).
///
/// ```
/// use simplestream_runtime::{Codec, codec::StageWriter, delta::Tracked, distinct::SeenKeys};
/// let mut seen: SeenKeys<u32> = SeenKeys::default();
/// seen.insert(1);
/// let since = seen.version();
/// seen.insert(3);
/// seen.insert(1); // seen before: no change
/// let mut out = Vec::new();
/// let mut w = StageWriter::new(Codec::Json, &mut out);
/// seen.write_delta(Some(since), "seen", &mut w).unwrap();
/// w.finish();
/// assert_eq!(out, br#"{"seen":{"reset":false,"keys":[3]}}"#);
/// ```
#[derive(Serialize, Deserialize)]
pub struct SeenDelta<K> {
    /// The set starts empty before this delta.
    pub reset: bool,
    /// Keys seen since the version the delta was taken against.
    pub keys: Vec<K>,
}

/// The keys a delta writes: those seen since, or every key (streamed) for a whole
/// binary delta.
#[derive(Serialize)]
#[serde(
    untagged,
    bound = "K: Hash + Ord + Clone + Serialize + DeserializeOwned + 'static"
)]
enum DeltaKeys<'a, K: Clone> {
    Listed(Vec<Cow<'a, K>>),
    All(All<'a, K>),
}

#[derive(Serialize)]
#[serde(bound = "K: Hash + Ord + Clone + Serialize + DeserializeOwned + 'static")]
struct DeltaView<'a, K: Clone> {
    reset: bool,
    keys: DeltaKeys<'a, K>,
}

impl<K> Tracked for SeenKeys<K>
where
    K: Hash + Eq + Ord + Clone + Serialize + DeserializeOwned + 'static,
{
    type Delta = SeenDelta<K>;

    fn version(&self) -> Version {
        self.keys.version()
    }

    fn write_delta(
        &self,
        since: Option<Version>,
        name: &'static str,
        w: &mut StageWriter<'_>,
    ) -> Result<(), CheckpointError> {
        let after = self.keys.delta_after(since);
        let sorted = w.codec() == crate::Codec::Json;
        let keys = if after.is_none() && !sorted {
            DeltaKeys::All(All(&self.keys))
        } else {
            let changed = (self.keys.changed_entries(after, sorted))
                .map_err(|detail| CheckpointError::Encode { detail })?;
            DeltaKeys::Listed(changed.into_iter().map(|(k, _)| k).collect())
        };
        let view = DeltaView {
            reset: after.is_none(),
            keys,
        };
        w.field(name, &view)
    }

    fn apply_delta(&mut self, delta: SeenDelta<K>) {
        if delta.reset {
            *self = SeenKeys::default();
        }
        for k in delta.keys {
            self.insert(k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_codecs_restore_the_same_set() {
        let mut seen: SeenKeys<u64> = SeenKeys::default();
        for k in [5, 1, 9, 1, 5] {
            seen.insert(k);
        }
        assert_eq!(seen.len(), 3);
        let json = serde_json::to_string(&seen).unwrap();
        assert_eq!(json, "[1,5,9]");
        assert_eq!(serde_json::from_str::<SeenKeys<u64>>(&json).unwrap(), seen);
        let bin = postcard::to_allocvec(&seen).unwrap();
        let back: SeenKeys<u64> = postcard::from_bytes(&bin).unwrap();
        assert_eq!(back, seen);
        assert!(back.contains(&9) && !back.contains(&2));
    }
}

//! [`SeenKeys`]: the state of `distinct`, every key seen so far.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::marker::PhantomData;

use serde::de::{SeqAccess, Visitor};
use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::checkpoint::Checkpointable;
use crate::codec::{CheckpointError, StageWriter};
use crate::delta::{History, Tracked, Version};
use crate::fingerprint::{combine, fnv1a};
use crate::state::{FastHasher, Key};

/// The keys `distinct` has let through. It only grows: one entry per distinct key.
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
#[derive(Clone)]
pub struct SeenKeys<K> {
    /// Each key with the stamp of its insertion.
    keys: HashMap<K, u64, FastHasher>,
    history: History,
}

impl<K> Default for SeenKeys<K> {
    fn default() -> Self {
        SeenKeys {
            keys: HashMap::default(),
            history: History::default(),
        }
    }
}

impl<K: Hash + Eq> SeenKeys<K> {
    /// Records `key`; true if it had not been seen.
    #[inline]
    pub fn insert(&mut self, key: K) -> bool {
        match self.keys.entry(key) {
            Entry::Occupied(_) => false,
            Entry::Vacant(v) => {
                v.insert(self.history.tick());
                true
            }
        }
    }

    /// True if `key` has been seen.
    pub fn contains(&self, key: &K) -> bool {
        self.keys.contains_key(key)
    }

    /// Number of keys seen.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True before the first key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The keys, sorted.
    pub fn sorted(&self) -> Vec<&K>
    where
        K: Ord,
    {
        let mut v: Vec<&K> = self.keys.keys().collect();
        v.sort_unstable();
        v
    }
}

impl<K: Hash + Eq + Ord + fmt::Debug> fmt::Debug for SeenKeys<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.sorted()).finish()
    }
}

impl<K: Hash + Eq> PartialEq for SeenKeys<K> {
    fn eq(&self, other: &Self) -> bool {
        self.keys.len() == other.keys.len() && self.keys.keys().all(|k| other.contains(k))
    }
}

impl<K: Serialize + Ord + Hash + Eq> Serialize for SeenKeys<K> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Sorting costs O(n log n); only readable formats promise stable bytes.
        let readable = s.is_human_readable();
        let mut seq = s.serialize_seq(Some(self.keys.len()))?;
        if readable {
            for k in self.sorted() {
                seq.serialize_element(k)?;
            }
        } else {
            for k in self.keys.keys() {
                seq.serialize_element(k)?;
            }
        }
        seq.end()
    }
}

impl<'de, K: Deserialize<'de> + Hash + Eq> Deserialize<'de> for SeenKeys<K> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Keys<K>(PhantomData<K>);
        impl<'de, K: Deserialize<'de> + Hash + Eq> Visitor<'de> for Keys<K> {
            type Value = SeenKeys<K>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of keys")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                // Cap the pre-allocation: the size hint comes from untrusted bytes.
                let cap = a.size_hint().unwrap_or(0).min(1 << 20);
                let mut keys = HashMap::with_capacity_and_hasher(cap, FastHasher::default());
                while let Some(k) = a.next_element()? {
                    keys.insert(k, 0);
                }
                Ok(SeenKeys {
                    keys,
                    history: History::default(),
                })
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

// Serde's bounds, so a bad key type is reported once (by the stage's `Checkpointable`).
impl<K: Hash + Eq + Ord + Serialize + serde::de::DeserializeOwned> Tracked for SeenKeys<K> {
    type Delta = SeenDelta<K>;

    fn version(&self) -> Version {
        self.history.version()
    }

    fn write_delta(
        &self,
        since: Option<Version>,
        name: &'static str,
        w: &mut StageWriter<'_>,
    ) -> Result<(), CheckpointError> {
        let after = self.history.after(since);
        let mut keys: Vec<&K> = match after {
            Some(after) => self
                .keys
                .iter()
                .filter(|(_, at)| **at > after)
                .map(|(k, _)| k)
                .collect(),
            None => self.keys.keys().collect(),
        };
        if w.codec() == crate::Codec::Json {
            keys.sort_unstable();
        }
        let view = SeenDelta {
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

//! [`SeenKeys`]: the state of `distinct`, every key seen so far.

use std::collections::HashSet;
use std::fmt;
use std::hash::Hash;
use std::marker::PhantomData;

use serde::de::{SeqAccess, Visitor};
use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::checkpoint::Checkpointable;
use crate::fingerprint::{combine, fnv1a};
use crate::state::{FastHasher, Key};

/// The keys `distinct` has let through. It only grows: one entry per distinct key.
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
    keys: HashSet<K, FastHasher>,
}

impl<K> Default for SeenKeys<K> {
    fn default() -> Self {
        SeenKeys {
            keys: HashSet::default(),
        }
    }
}

impl<K: Hash + Eq> SeenKeys<K> {
    /// Records `key`; true if it had not been seen.
    #[inline]
    pub fn insert(&mut self, key: K) -> bool {
        self.keys.insert(key)
    }

    /// True if `key` has been seen.
    pub fn contains(&self, key: &K) -> bool {
        self.keys.contains(key)
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
        let mut v: Vec<&K> = self.keys.iter().collect();
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
        self.keys == other.keys
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
            for k in &self.keys {
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
                let mut keys = HashSet::with_capacity_and_hasher(cap, FastHasher::default());
                while let Some(k) = a.next_element()? {
                    keys.insert(k);
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

// Written whole into every delta; serde's bounds, so a bad key type is reported once.
crate::delta::whole_state!(SeenKeys<K> where K: Hash + Eq + Ord + Serialize + serde::de::DeserializeOwned);

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

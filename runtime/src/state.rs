//! [`KeyedState`]: per-key state on a fast hasher with random seeds.

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::marker::PhantomData;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::checkpoint::Checkpointable;
use crate::fingerprint::{combine, fnv1a};

/// The hasher of all keyed state: foldhash, seeded at random per map, so keys taken from
/// untrusted input cannot be chosen to collide (hash flooding), at a cost close to FxHash.
pub type FastHasher = foldhash::fast::RandomState;

/// A hash map on [`FastHasher`].
pub type FastMap<K, V> = HashMap<K, V, FastHasher>;

/// What a key must be: hashable, ordered (for deterministic output), clonable, storable.
pub trait Key: Hash + Eq + Ord + Clone + Checkpointable {}
impl<T: Hash + Eq + Ord + Clone + Checkpointable> Key for T {}

/// Per-key state.
///
/// In human-readable formats (the JSON codec) entries are written sorted by key, so the
/// same state always gives the same bytes; binary formats skip the sort.
///
/// ```
/// use simplestream_runtime::KeyedState;
/// let mut s: KeyedState<String, u64> = KeyedState::default();
/// *s.entry("C002".to_string()) += 1;
/// *s.entry("C001".to_string()) += 25;
/// assert_eq!(serde_json::to_string(&s).unwrap(), r#"{"C001":25,"C002":1}"#);
/// ```
#[derive(Clone)]
pub struct KeyedState<K, V> {
    map: FastMap<K, V>,
}

impl<K, V> Default for KeyedState<K, V> {
    fn default() -> Self {
        KeyedState {
            map: FastMap::default(),
        }
    }
}

impl<K: Hash + Eq, V> KeyedState<K, V> {
    /// The value for `key`, created with `V::default()` if missing.
    #[inline]
    pub fn entry(&mut self, key: K) -> &mut V
    where
        V: Default,
    {
        self.map.entry(key).or_default()
    }

    /// The value for `key`, if any.
    #[inline]
    pub fn get(&self, key: &K) -> Option<&V> {
        self.map.get(key)
    }

    /// Removes `key`.
    pub fn remove(&mut self, key: &K) -> Option<V> {
        self.map.remove(key)
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when no key has state.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Iterates in hash order (not deterministic; see [`sorted`](Self::sorted)).
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.map.iter()
    }

    /// Entries sorted by key.
    pub fn sorted(&self) -> Vec<(&K, &V)>
    where
        K: Ord,
    {
        let mut v: Vec<_> = self.map.iter().collect();
        v.sort_unstable_by(|a, b| a.0.cmp(b.0));
        v
    }

    /// The underlying map.
    pub fn as_map(&self) -> &FastMap<K, V> {
        &self.map
    }

    /// The underlying map, mutably.
    pub fn as_map_mut(&mut self) -> &mut FastMap<K, V> {
        &mut self.map
    }
}

impl<K: Hash + Eq + fmt::Debug, V: fmt::Debug> fmt::Debug for KeyedState<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.map.iter()).finish()
    }
}

impl<K: Hash + Eq + Ord, V: PartialEq> PartialEq for KeyedState<K, V> {
    fn eq(&self, other: &Self) -> bool {
        self.map.len() == other.map.len()
            && self.map.iter().all(|(k, v)| other.map.get(k) == Some(v))
    }
}

impl<K: Serialize + Ord + Hash + Eq, V: Serialize> Serialize for KeyedState<K, V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Sorting costs O(n log n); only readable formats promise stable bytes.
        let readable = s.is_human_readable();
        let mut m = s.serialize_map(Some(self.map.len()))?;
        if readable {
            for (k, v) in self.sorted() {
                m.serialize_entry(k, v)?;
            }
        } else {
            for (k, v) in &self.map {
                m.serialize_entry(k, v)?;
            }
        }
        m.end()
    }
}

impl<'de, K, V> Deserialize<'de> for KeyedState<K, V>
where
    K: Deserialize<'de> + Hash + Eq,
    V: Deserialize<'de>,
{
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V2<K, V>(PhantomData<(K, V)>);
        impl<'de, K: Deserialize<'de> + Hash + Eq, V: Deserialize<'de>> Visitor<'de> for V2<K, V> {
            type Value = KeyedState<K, V>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of keyed state")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                // Cap the pre-allocation: the size hint comes from untrusted bytes.
                let cap = a.size_hint().unwrap_or(0).min(1 << 20);
                let mut map = FastMap::with_capacity_and_hasher(cap, FastHasher::default());
                while let Some((k, v)) = a.next_entry()? {
                    map.insert(k, v);
                }
                Ok(KeyedState { map })
            }
        }
        d.deserialize_map(V2(PhantomData))
    }
}

impl<K: Key, V: Checkpointable> Checkpointable for KeyedState<K, V> {
    const LAYOUT: u64 = combine(combine(fnv1a("KeyedState"), K::LAYOUT), V::LAYOUT);
}

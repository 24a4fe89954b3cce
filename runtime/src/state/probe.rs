//! [`Probe`] and [`Take`]: the forms of a key a table can be looked up with.

use std::hash::Hash;

use super::key_str::KeyStr;

/// A borrowed form of a key of type `K` that a table of `K` keys can be probed with: it
/// hashes as the key it stands for, and becomes a `K` only when it is inserted. A key is
/// one of itself; `str` is one of `String`; `str` and `String` are ones of [`KeyStr`],
/// compared byte for byte.
pub trait Probe<K>: Hash {
    /// Whether `key` is the key this stands for.
    fn matches(&self, key: &K) -> bool;
    /// The key to insert.
    fn to_key(&self) -> K;
}

impl<K: Hash + Eq + Clone> Probe<K> for K {
    #[inline(always)]
    fn matches(&self, key: &K) -> bool {
        self == key
    }
    #[inline]
    fn to_key(&self) -> K {
        self.clone()
    }
}

impl Probe<String> for str {
    #[inline(always)]
    fn matches(&self, key: &String) -> bool {
        self == key
    }
    #[inline]
    fn to_key(&self) -> String {
        self.to_owned()
    }
}

impl Probe<KeyStr> for str {
    #[inline(always)]
    fn matches(&self, key: &KeyStr) -> bool {
        key.is(self)
    }
    #[inline]
    fn to_key(&self) -> KeyStr {
        KeyStr::from(self)
    }
}

impl Probe<KeyStr> for String {
    #[inline(always)]
    fn matches(&self, key: &KeyStr) -> bool {
        <str as Probe<KeyStr>>::matches(self, key)
    }
    #[inline]
    fn to_key(&self) -> KeyStr {
        <str as Probe<KeyStr>>::to_key(self)
    }
}

/// A key the caller owns and no longer needs: a table takes it when it is new instead of
/// cloning it.
pub trait Take<K>: Probe<K> {
    /// The key to insert; `self` may be left empty.
    fn take_key(&mut self) -> K;
}

impl<K: Hash + Eq + Clone + Default> Take<K> for K {
    #[inline]
    fn take_key(&mut self) -> K {
        std::mem::take(self)
    }
}

impl Take<KeyStr> for String {
    #[inline]
    fn take_key(&mut self) -> KeyStr {
        KeyStr::from(std::mem::take(self))
    }
}

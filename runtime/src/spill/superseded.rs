//! The dirty marks (key, stamp) whose entry was taken back into memory since it was
//! evicted: a delta skips them. Looked up by borrowed key bytes, so taking an entry
//! back and evicting it again allocate nothing but the entry kept.

use std::hash::BuildHasher;

use hashbrown::HashTable;

/// Bytes an entry holds beside its key: the stamp, the box and the slot, rounded up.
const OVERHEAD: usize = 64;

#[derive(Default)]
pub(crate) struct Superseded {
    set: HashTable<(Box<[u8]>, u64)>,
    /// Bytes held, estimated.
    bytes: usize,
}

fn hash(key: &[u8], stamp: u64) -> u64 {
    foldhash::fast::FixedState::with_seed(stamp).hash_one(key)
}

fn same(key: &[u8], stamp: u64) -> impl Fn(&(Box<[u8]>, u64)) -> bool + '_ {
    move |e| e.1 == stamp && *e.0 == *key
}

fn rehash(e: &(Box<[u8]>, u64)) -> u64 {
    hash(&e.0, e.1)
}

impl Superseded {
    /// Bytes held, estimated.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    pub(crate) fn insert(&mut self, key: &[u8], stamp: u64) {
        let h = hash(key, stamp);
        if self.set.find(h, same(key, stamp)).is_none() {
            self.set.insert_unique(h, (key.into(), stamp), rehash);
            self.bytes += key.len() + OVERHEAD;
        }
    }

    pub(crate) fn contains(&self, key: &[u8], stamp: u64) -> bool {
        self.set.find(hash(key, stamp), same(key, stamp)).is_some()
    }

    pub(crate) fn remove(&mut self, key: &[u8], stamp: u64) {
        if self.set.is_empty() {
            return;
        }
        if let Ok(e) = self.set.find_entry(hash(key, stamp), same(key, stamp)) {
            e.remove();
            self.bytes -= key.len() + OVERHEAD;
        }
    }

    /// Keeps only the marks stamped after `stamp`.
    pub(crate) fn keep_after(&mut self, stamp: u64) {
        self.set.retain(|e| e.1 > stamp);
        self.bytes = self.set.iter().map(|e| e.0.len() + OVERHEAD).sum();
    }

    pub(crate) fn clear(&mut self) {
        self.set.clear();
        self.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::Superseded;

    #[test]
    fn marks_are_told_apart_by_key_and_stamp() {
        let mut s = Superseded::default();
        s.insert(b"a", 1);
        s.insert(b"a", 2);
        s.insert(b"a", 2);
        s.insert(b"b", 1);
        assert!(s.contains(b"a", 1) && s.contains(b"a", 2) && s.contains(b"b", 1));
        assert!(!s.contains(b"b", 2) && !s.contains(b"c", 1));
        assert_eq!(s.bytes(), 3 * (1 + 64));
        s.remove(b"a", 1);
        assert!(!s.contains(b"a", 1) && s.contains(b"a", 2));
        s.keep_after(1);
        assert!(s.contains(b"a", 2) && !s.contains(b"b", 1));
        assert_eq!(s.bytes(), 1 + 64);
        s.clear();
        assert!(!s.contains(b"a", 2));
        assert_eq!(s.bytes(), 0);
    }
}

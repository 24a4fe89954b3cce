//! The dirty marks (key, stamp) whose entry was taken back into memory since it was
//! evicted: a delta skips them. Keys are appended to one buffer, and the table holds
//! where each is: taking an entry back allocates nothing (but the buffer's growth), and
//! an entry costs its key bytes and a 16-byte slot.

use std::hash::BuildHasher;

use hashbrown::HashTable;

#[derive(Default)]
pub(crate) struct Superseded {
    /// (stamp, where its key starts in `keys`, its length).
    set: HashTable<Entry>,
    /// The keys one after the other; a removed entry's bytes stay until the next clear
    /// or `keep_after`.
    keys: Vec<u8>,
}

type Entry = (u64, u32, u32);

fn hash(key: &[u8], stamp: u64) -> u64 {
    foldhash::fast::FixedState::with_seed(stamp).hash_one(key)
}

fn key_of<'a>(keys: &'a [u8], e: &Entry) -> &'a [u8] {
    &keys[e.1 as usize..(e.1 + e.2) as usize]
}

fn same<'a>(keys: &'a [u8], key: &'a [u8], stamp: u64) -> impl Fn(&Entry) -> bool + 'a {
    move |e| e.0 == stamp && key_of(keys, e) == key
}

impl Superseded {
    /// Bytes held: the table's slots and control bytes and the key buffer.
    pub(crate) fn bytes(&self) -> usize {
        self.set.allocation_size() + self.keys.capacity()
    }

    /// False when it could not be added (4 GiB of keys): the caller must then check
    /// these marks another way.
    #[must_use]
    pub(crate) fn insert(&mut self, key: &[u8], stamp: u64) -> bool {
        let h = hash(key, stamp);
        let keys = &mut self.keys;
        if self.set.find(h, same(keys, key, stamp)).is_some() {
            return true;
        }
        let (Ok(at), Ok(len)) = (u32::try_from(keys.len()), u32::try_from(key.len())) else {
            return false;
        };
        if at.checked_add(len).is_none() {
            return false;
        }
        keys.extend_from_slice(key);
        let keys = &self.keys;
        self.set
            .insert_unique(h, (stamp, at, len), |e| hash(key_of(keys, e), e.0));
        true
    }

    pub(crate) fn contains(&self, key: &[u8], stamp: u64) -> bool {
        (self.set)
            .find(hash(key, stamp), same(&self.keys, key, stamp))
            .is_some()
    }

    /// True when the mark was here.
    pub(crate) fn remove(&mut self, key: &[u8], stamp: u64) -> bool {
        if self.set.is_empty() {
            return false;
        }
        match (self.set).find_entry(hash(key, stamp), same(&self.keys, key, stamp)) {
            Ok(e) => {
                e.remove();
                true
            }
            Err(_) => false,
        }
    }

    /// Keeps only the marks stamped after `stamp`.
    pub(crate) fn keep_after(&mut self, stamp: u64) {
        let old = std::mem::take(&mut self.keys);
        let kept: Vec<(u64, &[u8])> = (self.set.iter())
            .filter(|e| e.0 > stamp)
            .map(|e| (e.0, key_of(&old, e)))
            .collect();
        let mut fresh = Superseded::default();
        for (stamp, key) in kept {
            // Fewer keys than were held: they fit.
            let added = fresh.insert(key, stamp);
            debug_assert!(added);
        }
        *self = fresh;
    }

    /// Empties it and gives its memory back: a table cleared but kept at the size that
    /// went over the cap stays over it, and was cleared again at every insert.
    pub(crate) fn clear(&mut self) {
        *self = Superseded::default();
    }
}

#[cfg(test)]
mod tests {
    use super::Superseded;

    #[test]
    fn marks_are_told_apart_by_key_and_stamp() {
        let mut s = Superseded::default();
        for (k, stamp) in [(&b"a"[..], 1), (b"a", 2), (b"a", 2), (b"bb", 1)] {
            assert!(s.insert(k, stamp));
        }
        assert!(s.contains(b"a", 1) && s.contains(b"a", 2) && s.contains(b"bb", 1));
        assert!(!s.contains(b"bb", 2) && !s.contains(b"c", 1) && !s.contains(b"b", 1));
        assert_eq!((s.set.len(), s.keys.len()), (3, 4));
        assert!(s.bytes() >= 3 * 16 + 4);
        s.remove(b"a", 1);
        assert!(!s.contains(b"a", 1) && s.contains(b"a", 2));
        s.keep_after(1);
        assert!(s.contains(b"a", 2) && !s.contains(b"bb", 1));
        assert_eq!(s.keys, b"a");
        s.clear();
        assert!(!s.contains(b"a", 2));
        assert_eq!(s.set.len(), 0);
    }
}

//! Which keys may be on disk: a Bloom filter over every key ever written to the store, so
//! a key seen for the first time (most keys of a growing state) costs no B-tree lookup.
//!
//! Keys only join it: a key taken back into memory or removed may stay "present", which
//! costs one store lookup, never a wrong answer. It grows by adding a filter of twice
//! the capacity when the newest is full, so nothing is rebuilt from the store.

/// Bits per key: with [`PROBES`] bits set in one 512-bit block, about 1 % false positives
/// per filter.
const BITS_PER_KEY: usize = 12;
const PROBES: u32 = 7;
/// Keys of the first filter.
const FIRST: usize = 1 << 16;

/// One 64-byte block: the probes of a key fall in one cache line.
type Block = [u64; 8];

struct Filter {
    blocks: Vec<Block>,
    capacity: usize,
    keys: usize,
}

impl Filter {
    fn new(capacity: usize) -> Filter {
        let n = (capacity * BITS_PER_KEY).div_ceil(512).max(1);
        Filter {
            blocks: vec![[0; 8]; n],
            capacity,
            keys: 0,
        }
    }

    /// The block and the bits of `hash` in it.
    fn probes(&self, hash: u64) -> (usize, impl Iterator<Item = (usize, u64)>) {
        // The high half picks the block (multiply-shift, no modulo), the low half the bits.
        let block = ((hash >> 32) * self.blocks.len() as u64) >> 32;
        let (mut h, step) = (hash as u32, (hash as u32).rotate_left(15) | 1);
        let bits = (0..PROBES).map(move |_| {
            h = h.wrapping_add(step);
            let bit = (h >> 23) as usize; // 9 bits: 0..512
            (bit / 64, 1u64 << (bit % 64))
        });
        (block as usize, bits)
    }

    fn insert(&mut self, hash: u64) {
        let (b, bits) = self.probes(hash);
        let block = &mut self.blocks[b];
        for (word, mask) in bits {
            block[word] |= mask;
        }
        self.keys += 1;
    }

    fn may_contain(&self, hash: u64) -> bool {
        let (b, mut bits) = self.probes(hash);
        let block = &self.blocks[b];
        bits.all(|(word, mask)| block[word] & mask != 0)
    }
}

/// Keys that may be on disk.
#[derive(Default)]
pub(crate) struct Presence {
    filters: Vec<Filter>,
}

impl Presence {
    pub(crate) fn insert(&mut self, key: &[u8]) {
        let hash = hash(key);
        match self.filters.last_mut() {
            Some(f) if f.keys < f.capacity => f.insert(hash),
            _ => {
                let capacity = self.filters.last().map_or(FIRST, |f| f.capacity * 2);
                let mut f = Filter::new(capacity);
                f.insert(hash);
                self.filters.push(f);
            }
        }
    }

    /// False when `key` was never inserted; true when it was, or rarely when it was not.
    pub(crate) fn may_contain(&self, key: &[u8]) -> bool {
        let hash = hash(key);
        self.filters.iter().any(|f| f.may_contain(hash))
    }

    /// Bytes held, for the memory budget.
    pub(crate) fn bytes(&self) -> usize {
        self.filters
            .iter()
            .map(|f| f.blocks.len() * size_of::<Block>())
            .sum()
    }
}

fn hash(key: &[u8]) -> u64 {
    use std::hash::BuildHasher;
    foldhash::quality::FixedState::with_seed(0x5eed).hash_one(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u64) -> Vec<u8> {
        format!("C{i}").into_bytes()
    }

    #[test]
    fn every_inserted_key_is_present_and_few_others_are() {
        let mut p = Presence::default();
        let n = 300_000;
        for i in 0..n {
            p.insert(&key(i));
        }
        assert!((0..n).all(|i| p.may_contain(&key(i))));
        // Three filters (64k, 128k, 256k keys); each adds its false positives.
        assert_eq!(p.filters.len(), 3);
        let false_hits = (n..n + 100_000).filter(|&i| p.may_contain(&key(i))).count();
        assert!(false_hits < 3_000, "{false_hits} false positives in 100000");
        assert_eq!(p.bytes(), (7 << 16) * 12 / 8);
    }

    #[test]
    fn an_empty_filter_holds_nothing() {
        let p = Presence::default();
        assert!(!p.may_contain(b"C1"));
        assert_eq!(p.bytes(), 0);
    }
}

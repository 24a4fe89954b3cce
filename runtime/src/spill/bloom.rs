//! A Bloom filter of the keys of one sorted run, so a lookup skips the runs that cannot
//! hold its key (a key seen for the first time, most keys of a growing state, skips them
//! all).

/// Bits per key: with [`PROBES`] bits set in one 512-bit block, about 1 % false positives.
const BITS_PER_KEY: usize = 12;
const PROBES: u32 = 7;

/// One 64-byte block: the probes of a key fall in one cache line.
type Block = [u64; 8];

pub(crate) struct Bloom {
    blocks: Vec<Block>,
}

impl Bloom {
    /// A filter sized for `capacity` keys.
    pub(crate) fn new(capacity: usize) -> Bloom {
        let n = (capacity * BITS_PER_KEY).div_ceil(512).max(1);
        Bloom {
            blocks: vec![[0; 8]; n],
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

    /// Adds the key whose [`hash`] is `hash`.
    pub(crate) fn insert(&mut self, hash: u64) {
        let (b, bits) = self.probes(hash);
        let block = &mut self.blocks[b];
        for (word, mask) in bits {
            block[word] |= mask;
        }
    }

    /// False when the key was never inserted; true when it was, or rarely when it was not.
    pub(crate) fn may_contain(&self, hash: u64) -> bool {
        let (b, mut bits) = self.probes(hash);
        let block = &self.blocks[b];
        bits.all(|(word, mask)| block[word] & mask != 0)
    }

    /// Bytes held, for the memory budget.
    pub(crate) fn bytes(&self) -> usize {
        self.blocks.len() * size_of::<Block>()
    }
}

/// The hash of key bytes that the filters use.
pub(crate) fn hash(key: &[u8]) -> u64 {
    use std::hash::BuildHasher;
    foldhash::quality::FixedState::with_seed(0x5eed).hash_one(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u64) -> u64 {
        hash(format!("C{i}").as_bytes())
    }

    #[test]
    fn every_inserted_key_is_present_and_few_others_are() {
        let n = 100_000;
        let mut b = Bloom::new(n as usize);
        for i in 0..n {
            b.insert(key(i));
        }
        assert!((0..n).all(|i| b.may_contain(key(i))));
        let false_hits = (n..n + 100_000).filter(|&i| b.may_contain(key(i))).count();
        assert!(false_hits < 1_500, "{false_hits} false positives in 100000");
        assert_eq!(b.bytes(), 100_000 * 12 / 512 * 64 + 64);
    }

    #[test]
    fn an_empty_filter_holds_nothing() {
        let b = Bloom::new(10);
        assert!(!b.may_contain(hash(b"C1")));
    }
}

//! Keys a batch prefetch found on no run. Their events follow at once and each would
//! look its key up again, asking every run's Bloom filter (a cache miss each) and
//! reading a block on a false positive; a key new to the state (most keys of a growing
//! one) does that for nothing. Valid until the next run is written, the only way keys
//! come onto disk.

use std::cmp::Ordering;

use super::key_order::compare;

/// Encoded keys in [`compare`] order, one after the other.
#[derive(Default)]
pub(crate) struct Absent {
    bytes: Vec<u8>,
    /// Where each key ends in `bytes`.
    ends: Vec<usize>,
}

impl Absent {
    pub(crate) fn clear(&mut self) {
        self.bytes.clear();
        self.ends.clear();
    }

    /// Adds `key`, which follows every key added since the last clear.
    pub(crate) fn push(&mut self, key: &[u8]) {
        debug_assert!(self.ends.is_empty() || compare(self.key(self.ends.len() - 1), key).is_lt());
        self.bytes.extend_from_slice(key);
        self.ends.push(self.bytes.len());
    }

    fn key(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.bytes[start..self.ends[i]]
    }

    pub(crate) fn contains(&self, key: &[u8]) -> bool {
        let (mut lo, mut hi) = (0, self.ends.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            match compare(self.key(mid), key) {
                Ordering::Less => lo = mid + 1,
                Ordering::Greater => hi = mid,
                Ordering::Equal => return true,
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_exactly_the_keys_pushed() {
        let mut keys: Vec<Vec<u8>> = (0..300u32)
            .map(|i| postcard::to_allocvec(&format!("C{}", i * 7)).unwrap())
            .collect();
        keys.sort_by(|a, b| compare(a, b));
        let mut a = Absent::default();
        for k in keys.iter().step_by(2) {
            a.push(k);
        }
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(a.contains(k), i % 2 == 0, "key {i}");
        }
        a.clear();
        assert!(keys.iter().all(|k| !a.contains(k)));
    }
}

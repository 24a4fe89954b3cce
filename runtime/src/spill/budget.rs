//! The memory budget of the disk backend, shared by every spilling state of the process.

use std::sync::atomic::{AtomicUsize, Ordering};

use serde::Serialize;

use super::batch::Batch;
use super::heap;
use crate::state::KeyStr;

/// Estimated bytes held in memory by all spilling states.
static USED: AtomicUsize = AtomicUsize::new(0);

/// One state's share of the budget: its hash table's allocation, the heap its entries
/// own (estimated per entry) and its disk tier's filters and indexes.
pub(crate) struct Budget {
    /// Bytes for in-memory entries and the runs' filters and indexes: five eighths of
    /// the budget. The rest is slack for everything else: the eviction batch in flight,
    /// allocator rounding, and the old table while a grown one is filled (a table is
    /// charged at its grown size before it grows, so the old one is at most half of
    /// five eighths).
    limit: usize,
    key: KeyHeap,
    /// Whether values own heap memory (strings, vectors).
    value_heap: bool,
    /// Heap bytes per entry, estimated from the entries evicted so far.
    heap_avg: usize,
    charged: usize,
}

impl Budget {
    pub(crate) fn new<K, V>(memory: usize) -> Budget {
        let key = if !std::mem::needs_drop::<K>() {
            KeyHeap::None
        } else if std::any::type_name::<K>() == std::any::type_name::<KeyStr>() {
            // Only the (rare) long ones own a heap copy. A name compare, not a type id:
            // keys need not be `'static`, and a wrong answer only skews this estimate.
            KeyHeap::KeyStr
        } else {
            KeyHeap::Encoded
        };
        let value_heap = std::mem::needs_drop::<V>();
        Budget {
            limit: memory / 8 * 5,
            // Before anything is measured: one small allocation and its header.
            heap_avg: if key == KeyHeap::Encoded || value_heap {
                32
            } else {
                0
            },
            key,
            value_heap,
            charged: 0,
        }
    }

    /// Heap bytes an entry owns (estimated).
    pub(crate) fn heap_per_entry(&self) -> usize {
        self.heap_avg
    }

    /// Charges `bytes` held by this state; true when the process is over its budget.
    pub(crate) fn charge(&mut self, bytes: usize) -> bool {
        if bytes >= self.charged {
            USED.fetch_add(bytes - self.charged, Ordering::Relaxed);
        } else {
            USED.fetch_sub(self.charged - bytes, Ordering::Relaxed);
        }
        self.charged = bytes;
        USED.load(Ordering::Relaxed) > self.limit
    }

    /// Bytes this state could hold beyond `bytes` before the process is over its budget.
    pub(crate) fn room(&self, bytes: usize) -> usize {
        let others = USED.load(Ordering::Relaxed).saturating_sub(self.charged);
        self.limit.saturating_sub(others + bytes)
    }

    /// An empty eviction batch that estimates the heap its entries owned.
    pub(crate) fn batch(&self) -> Batch {
        Batch::counting(HeapCount {
            key: self.key,
            value: self.value_heap,
        })
    }

    /// Learns the heap bytes per entry from the entries of an eviction batch (made by
    /// [`batch`](Self::batch)).
    pub(crate) fn measured(&mut self, batch: &Batch) {
        if batch.len() == 0 || (self.key == KeyHeap::None && !self.value_heap) {
            return;
        }
        self.heap_avg = batch.heap() / batch.len();
    }
}

/// How an eviction batch estimates the heap its entries owned.
#[derive(Clone, Copy, Default)]
pub(crate) struct HeapCount {
    key: KeyHeap,
    value: bool,
}

impl HeapCount {
    /// The heap `key` (`encoded_key` bytes encoded) and `value` owned in memory: nothing
    /// for a key or value that needs no drop; for a [`KeyStr`], its encoded bytes if it is
    /// too long to be kept inline; otherwise each string, sequence and map it holds
    /// ([`heap::owned`]).
    pub(crate) fn entry<K: Serialize, V: Serialize>(
        &self,
        key: &K,
        encoded_key: usize,
        value: &V,
    ) -> usize {
        let key = match self.key {
            KeyHeap::None => 0,
            KeyHeap::KeyStr if encoded_key <= KeyStr::INLINE + 1 => 0,
            KeyHeap::KeyStr => allocation(encoded_key),
            KeyHeap::Encoded => heap::owned(key),
        };
        key + if self.value { heap::owned(value) } else { 0 }
    }
}

/// What the keys of a state own on the heap.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
enum KeyHeap {
    /// Nothing (numbers, tuples of them).
    #[default]
    None,
    /// A [`KeyStr`]: nothing up to its inline length, a copy of a longer one.
    KeyStr,
    /// Their strings, sequences and maps ([`heap::owned`]).
    Encoded,
}

/// Bytes of a heap allocation holding `bytes`: a header and rounding to 16 bytes, at
/// least 32 (glibc's smallest chunk).
pub(crate) fn allocation(bytes: usize) -> usize {
    (bytes + 8).next_multiple_of(16).max(32)
}

impl Drop for Budget {
    fn drop(&mut self) {
        USED.fetch_sub(self.charged, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use serde::Serialize;

    use super::*;

    fn heap_of<K: Serialize, V: Serialize>(entries: &[(K, V)]) -> usize {
        let mut b = Budget::new::<K, V>(1 << 20);
        let mut batch = b.batch();
        for (k, v) in entries {
            batch.push(k, v, 1).unwrap();
        }
        b.measured(&batch);
        b.heap_per_entry()
    }

    /// Heap is charged for what owns heap: short `KeyStr` keys and plain values own
    /// none; long `KeyStr` keys, and each string of a key or value, one allocation each.
    #[test]
    fn heap_per_entry_follows_what_keys_and_values_own() {
        let short = KeyStr::from("C0000001");
        let long = KeyStr::from("a customer id longer than twenty-two bytes");
        assert_eq!(heap_of(&[(short.clone(), 3u64), (short.clone(), 4)]), 0);
        assert_eq!(heap_of(&[(1u64, 2u64)]), 0);
        // 42 bytes and a length byte, a header: 64 B; averaged with a short key.
        assert_eq!(heap_of(&[(long.clone(), 1u64)]), 64);
        assert_eq!(heap_of(&[(long, 1u64), (short, 1)]), 32);
        // A short String still owns an allocation; so does a String value.
        assert_eq!(heap_of(&[("C0000001".to_string(), 1u64)]), 32);
        assert_eq!(heap_of(&[(7u64, "x".repeat(40))]), 48);
        assert_eq!(heap_of(&[("C1".to_string(), "x".repeat(40))]), 80);
        // Two strings in a key are two allocations (their encoded bytes would be one).
        assert_eq!(heap_of(&[(("C1".to_string(), "S2".to_string()), 1u64)]), 64);
        assert_eq!(heap_of(&[(1u64, vec![0.5f64; 10])]), 96);
    }
}

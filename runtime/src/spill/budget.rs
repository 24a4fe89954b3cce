//! The memory budget of the disk backend, shared by every spilling state of the process.

use std::sync::atomic::{AtomicUsize, Ordering};

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
    /// Whether keys or values own heap memory (strings, vectors).
    heap: bool,
    /// Heap bytes per entry, from the encoded size of the entries evicted so far.
    heap_avg: usize,
    charged: usize,
}

impl Budget {
    pub(crate) fn new<K, V>(memory: usize) -> Budget {
        let heap = std::mem::needs_drop::<K>() || std::mem::needs_drop::<V>();
        Budget {
            limit: memory / 8 * 5,
            heap,
            // Before anything is measured: one small allocation and its header.
            heap_avg: if heap { 32 } else { 0 },
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

    /// Learns the heap bytes per entry from `n` evicted entries of `encoded` bytes: a
    /// heap allocation holds about its encoded bytes plus a header and rounding.
    pub(crate) fn measured(&mut self, n: usize, encoded: usize) {
        if self.heap && n > 0 {
            self.heap_avg = encoded / n + 16;
        }
    }
}

impl Drop for Budget {
    fn drop(&mut self) {
        USED.fetch_sub(self.charged, Ordering::Relaxed);
    }
}

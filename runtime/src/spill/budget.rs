//! The memory budget of the disk backend, shared by every spilling state of the process.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Estimated bytes held in memory by all spilling states.
static USED: AtomicUsize = AtomicUsize::new(0);

/// One state's share of the budget, charged as entries × estimated bytes per entry.
pub(crate) struct Budget {
    /// Bytes for in-memory entries and the runs' filters and indexes: five eighths of
    /// the budget (the rest is slack for everything else: the eviction batch in flight,
    /// allocator rounding).
    limit: usize,
    /// A hash table's bytes per entry, counting the slack of a table that doubles.
    table: usize,
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
            table: (std::mem::size_of::<(K, V, u64)>() + 1) * 16 / 7,
            heap,
            // Before anything is measured: one small allocation and its header.
            heap_avg: if heap { 32 } else { 0 },
            charged: 0,
        }
    }

    pub(crate) fn per_entry(&self) -> usize {
        self.table + self.heap_avg
    }

    /// Charges `entries` in memory and `held` other bytes of this state (its disk tier's
    /// filter); true when the process is over its budget.
    pub(crate) fn charge(&mut self, entries: usize, held: usize) -> bool {
        let now = entries * self.per_entry() + held;
        if now >= self.charged {
            USED.fetch_add(now - self.charged, Ordering::Relaxed);
        } else {
            USED.fetch_sub(self.charged - now, Ordering::Relaxed);
        }
        self.charged = now;
        USED.load(Ordering::Relaxed) > self.limit
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

//! Emptied vectors kept by capacity, for a window join's new keys and for its full
//! vectors (reusable storage, never state).
//!
//! A full vector swaps its events into a larger kept one instead of reallocating. A
//! reallocation to 1 KiB or more is a large-bin request in glibc's malloc, which first
//! merges every small chunk freed since the last one (`malloc_consolidate`): with the
//! buffered events' strings freed as windows close, q8 spent 37 instructions per event
//! there, about 195,000 per merge.

/// Emptied vectors, `classes[i]` holding those of capacity in `[2^i, 2^(i+1))`.
pub(crate) struct VecPool<T> {
    classes: Vec<Vec<Vec<T>>>,
    len: usize,
    max: usize,
}

impl<T> VecPool<T> {
    /// A pool keeping at most `max` vectors.
    pub(crate) fn new(max: usize) -> Self {
        VecPool {
            classes: Vec::new(),
            len: 0,
            max,
        }
    }

    /// Keeps `v` (emptied here) if it has capacity and there is room.
    #[inline]
    pub(crate) fn put(&mut self, mut v: Vec<T>) {
        if v.capacity() == 0 || self.len >= self.max {
            return;
        }
        v.clear();
        let c = class(v.capacity());
        if self.classes.len() <= c {
            self.classes.resize_with(c + 1, Vec::new);
        }
        self.classes[c].push(v);
        self.len += 1;
    }

    /// The smallest kept vector, for a new key.
    #[inline]
    pub(crate) fn take(&mut self) -> Option<Vec<T>> {
        let v = self.classes.iter_mut().find_map(|c| c.pop())?;
        self.len -= 1;
        Some(v)
    }

    /// Appends `e` to `buf`, which takes a kept vector rather than allocating when it is
    /// empty, and moves into a larger one rather than reallocating when it is full.
    #[inline]
    pub(crate) fn push(&mut self, buf: &mut Vec<T>, e: T) {
        if buf.len() == buf.capacity() {
            self.make_room(buf);
        }
        buf.push(e);
    }

    /// A kept vector for an empty `buf`; a larger kept one for a full `buf`, whose events
    /// move there (its own vector is kept in turn).
    fn make_room(&mut self, buf: &mut Vec<T>) {
        if buf.capacity() == 0 {
            if let Some(v) = self.take() {
                *buf = v;
            }
            return;
        }
        let first = class(buf.capacity()) + 1;
        let Some(c) = self.classes.iter_mut().skip(first).find(|c| !c.is_empty()) else {
            return;
        };
        let mut larger = c.pop().expect("non-empty class");
        self.len -= 1;
        larger.append(buf);
        let full = std::mem::replace(buf, larger);
        self.put(full);
    }
}

/// The class of a non-zero capacity: its base-2 logarithm, rounded down.
#[inline]
fn class(capacity: usize) -> usize {
    capacity.ilog2() as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_vector_moves_into_a_larger_kept_one_with_its_events_in_order() {
        let mut pool: VecPool<u32> = VecPool::new(8);
        pool.put(Vec::with_capacity(64));
        let mut buf = Vec::with_capacity(4);
        for i in 0..4 {
            pool.push(&mut buf, i);
        }
        assert_eq!(buf.capacity(), 4);
        pool.push(&mut buf, 4);
        assert_eq!(buf, vec![0, 1, 2, 3, 4]);
        assert_eq!(buf.capacity(), 64, "took the kept vector");
        let small = pool.take().expect("the full one was kept");
        assert!(small.is_empty() && small.capacity() == 4);
        assert!(pool.take().is_none());
    }

    #[test]
    fn new_keys_take_the_smallest_and_full_ones_grow_without_a_larger_one() {
        let mut pool: VecPool<u32> = VecPool::new(8);
        pool.put(vec![1; 32]);
        pool.put(vec![1, 2, 3, 4]);
        let mut buf = Vec::new();
        pool.push(&mut buf, 7);
        assert_eq!((buf.as_slice(), buf.capacity()), (&[7][..], 4));
        let mut other: Vec<u32> = Vec::with_capacity(32);
        other.extend(0..32);
        pool.push(&mut other, 32);
        assert_eq!(other, (0..=32).collect::<Vec<_>>(), "grew in place");
        assert_eq!(pool.take().map(|v| v.capacity()), Some(32));
    }

    #[test]
    fn it_keeps_at_most_its_bound_and_no_empty_vectors() {
        let mut pool: VecPool<u8> = VecPool::new(2);
        pool.put(Vec::new());
        for _ in 0..3 {
            pool.put(Vec::with_capacity(8));
        }
        assert_eq!(pool.len, 2);
        assert!(pool.take().is_some() && pool.take().is_some() && pool.take().is_none());
    }
}

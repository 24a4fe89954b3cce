//! An eviction batch: the entries leaving memory, encoded into one buffer. A batch holds
//! up to a quarter of memory's entries; two allocations for each would add a third to
//! what memory holds while it is written.

use serde::Serialize;

use super::budget::HeapCount;

#[derive(Default)]
pub(crate) struct Batch {
    bytes: Vec<u8>,
    /// Per entry: where its key starts and ends in `bytes`, where its value ends, stamp.
    items: Vec<(usize, usize, usize, u64)>,
    count: HeapCount,
    /// Heap bytes the entries owned in memory (estimated as `count` says).
    heap: usize,
}

impl Batch {
    pub(crate) fn push<K: Serialize, V: Serialize>(
        &mut self,
        key: &K,
        value: &V,
        stamp: u64,
    ) -> Result<(), String> {
        let start = self.bytes.len();
        let bytes = std::mem::take(&mut self.bytes);
        let bytes = postcard::to_extend(key, bytes).map_err(|e| e.to_string())?;
        let key_end = bytes.len();
        self.bytes = postcard::to_extend(value, bytes).map_err(|e| e.to_string())?;
        self.items.push((start, key_end, self.bytes.len(), stamp));
        self.heap += self.count.entry(key, key_end - start, value);
        Ok(())
    }

    /// A batch that estimates the heap its entries owned as `count` says.
    pub(crate) fn counting(count: HeapCount) -> Batch {
        Batch {
            count,
            ..Batch::default()
        }
    }

    /// Heap bytes its entries owned in memory (estimated).
    pub(crate) fn heap(&self) -> usize {
        self.heap
    }

    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    /// Encoded bytes of keys and values.
    #[cfg(all(test, feature = "disk"))]
    pub(crate) fn encoded(&self) -> usize {
        self.bytes.len()
    }

    // `sort` and `iter` serve the disk tier only; without `disk` a batch is just counted.
    /// Orders the entries by key bytes, the order of a run.
    #[cfg(feature = "disk")]
    pub(crate) fn sort(&mut self) {
        let (bytes, items) = (&self.bytes, &self.items);
        let order =
            super::key_order::sorted_indexes(items.len(), |i| &bytes[items[i].0..items[i].1]);
        self.items = order.into_iter().map(|i| items[i]).collect();
    }

    /// (key, stamp, value) of each entry.
    #[cfg(feature = "disk")]
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&[u8], u64, &[u8])> + '_ {
        self.items
            .iter()
            .map(|&(s, k, v, stamp)| (&self.bytes[s..k], stamp, &self.bytes[k..v]))
    }
}

#[cfg(all(test, feature = "disk"))]
mod tests {
    use super::Batch;

    #[test]
    fn entries_come_back_as_encoded_in_key_order() {
        let mut b = Batch::default();
        b.push(&"b".to_string(), &2u64, 7).unwrap();
        b.push(&"a".to_string(), &300u64, 9).unwrap();
        b.sort();
        let got: Vec<_> = b
            .iter()
            .map(|(k, s, v)| (k.to_vec(), s, v.to_vec()))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    postcard::to_allocvec("a").unwrap(),
                    9,
                    postcard::to_allocvec(&300u64).unwrap()
                ),
                (
                    postcard::to_allocvec("b").unwrap(),
                    7,
                    postcard::to_allocvec(&2u64).unwrap()
                ),
            ]
        );
        assert_eq!((b.len(), b.encoded()), (2, 2 + 2 + 2 + 1));
    }
}

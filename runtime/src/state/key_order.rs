//! Putting `String` keys in order without comparing strings: each key gets the 8 bytes
//! that follow the prefix all keys share, as a big-endian `u64`, and records are sorted
//! by that number with a radix sort; only keys whose 8 bytes are equal are compared whole.

/// The length of the prefix every key in `keys` shares.
pub(crate) struct Shared {
    first: Option<Vec<u8>>,
    len: usize,
}

impl Shared {
    /// Nothing seen yet.
    pub(crate) fn new() -> Self {
        Shared {
            first: None,
            len: 0,
        }
    }

    /// Takes one more key into account.
    #[inline]
    pub(crate) fn see(&mut self, key: &[u8]) {
        match &self.first {
            None => {
                self.len = key.len();
                self.first = Some(key.to_vec());
            }
            Some(first) => {
                let n = self.len;
                if key.len() < n || key[..n] != first[..n] {
                    self.len = first[..n]
                        .iter()
                        .zip(key)
                        .take_while(|(a, b)| a == b)
                        .count();
                }
            }
        }
    }

    /// The shared length.
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

/// The 8 bytes of `key` after `shared`, zero-padded, big-endian: a key whose number is
/// smaller is smaller, and keys with equal numbers must be compared whole.
#[inline]
pub(crate) fn prefix(key: &[u8], shared: usize) -> u64 {
    let s = &key[shared.min(key.len())..];
    let mut b = [0u8; 8];
    let n = s.len().min(8);
    b[..n].copy_from_slice(&s[..n]);
    u64::from_be_bytes(b)
}

/// Sorts `v` by `key`, keeping the order of equal keys: least significant byte first, one
/// pass per byte, none for a byte that all records share.
pub(crate) fn radix_sort<T: Copy>(v: &mut Vec<T>, key: impl Fn(&T) -> u64) {
    let n = v.len();
    if n <= 64 {
        v.sort_by_key(&key);
        return;
    }
    let mut counts = [[0usize; 256]; 8];
    for t in v.iter() {
        let k = key(t);
        for (d, c) in counts.iter_mut().enumerate() {
            c[(k >> (8 * d)) as usize & 0xff] += 1;
        }
    }
    let mut other = v.clone();
    for (d, c) in counts.iter().enumerate() {
        if c.contains(&n) {
            continue;
        }
        let mut at = [0usize; 256];
        let mut sum = 0;
        for (a, &x) in at.iter_mut().zip(c) {
            *a = sum;
            sum += x;
        }
        for t in v.iter() {
            let b = (key(t) >> (8 * d)) as usize & 0xff;
            other[at[b]] = *t;
            at[b] += 1;
        }
        std::mem::swap(v, &mut other);
    }
}

/// Sorts records already ordered by their `u64` prefix by whole key where prefixes tie.
pub(crate) fn settle_ties<T>(
    v: &mut [T],
    prefix: impl Fn(&T) -> u64,
    whole: impl Fn(&T, &T) -> std::cmp::Ordering,
) {
    let mut i = 0;
    while i < v.len() {
        let p = prefix(&v[i]);
        let mut j = i + 1;
        while j < v.len() && prefix(&v[j]) == p {
            j += 1;
        }
        if j - i > 1 {
            v[i..j].sort_unstable_by(&whole);
        }
        i = j;
    }
}

/// Sorts `v[base..]` by the string `key` gives for each record: by prefix with
/// [`radix_sort`], ties settled whole, then each record moved once into its place.
pub(crate) fn sort_tail_by_str<T>(v: &mut Vec<T>, base: usize, key: impl Fn(&T) -> &str) {
    let tail = &v[base..];
    if tail.len() <= 64 {
        v[base..].sort_unstable_by(|a, b| key(a).cmp(key(b)));
        return;
    }
    let mut shared = Shared::new();
    for t in tail {
        shared.see(key(t).as_bytes());
    }
    let shared = shared.len();
    let mut order: Vec<(u64, usize)> = tail
        .iter()
        .enumerate()
        .map(|(i, t)| (prefix(key(t).as_bytes(), shared), i))
        .collect();
    radix_sort(&mut order, |r| r.0);
    settle_ties(
        &mut order,
        |r| r.0,
        |a, b| key(&tail[a.1]).cmp(key(&tail[b.1])),
    );
    apply_order(&mut v[base..], &mut order);
}

/// Moves `tail[order[k].1]` to `tail[k]` for every `k`, in place: each cycle of the
/// permutation is followed once with swaps, so the records are not moved out and back
/// through a second vector (a closed window's tail is often larger than the cache).
/// `order`'s indices are used up.
fn apply_order<T>(tail: &mut [T], order: &mut [(u64, usize)]) {
    const PLACED: usize = usize::MAX;
    for start in 0..tail.len() {
        let mut k = start;
        loop {
            let from = std::mem::replace(&mut order[k].1, PLACED);
            if from == PLACED || from == start {
                break;
            }
            // `tail[k]` holds the record that started at `start`; it moves on to `from`.
            tail.swap(k, from);
            k = from;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Radix sort on the prefix, then ties settled, gives the order of the strings.
        #[test]
        fn prefix_order_then_ties_is_string_order(
            keys in prop::collection::btree_set("(ab|abc|customer-0|\\PC){0,4}[\\x00-\\x7f\u{e9}\u{10348}]{0,12}", 0..300),
        ) {
            let keys: Vec<&String> = keys.iter().collect();
            let mut shared = Shared::new();
            for k in &keys {
                shared.see(k.as_bytes());
            }
            let shared = shared.len();
            // In an order that is not the sorted one.
            let mut recs: Vec<(u64, &String)> =
                keys.iter().rev().map(|k| (prefix(k.as_bytes(), shared), *k)).collect();
            radix_sort(&mut recs, |r| r.0);
            settle_ties(&mut recs, |r| r.0, |a, b| a.1.cmp(b.1));
            let got: Vec<&String> = recs.iter().map(|r| r.1).collect();
            prop_assert_eq!(got, keys);
        }

        /// Shifted so that the high bytes of all records are often the same.
        #[test]
        fn radix_sort_is_a_stable_sort(
            shift in 0u32..64,
            v in prop::collection::vec((any::<u64>(), 0u8..4), 0..500),
        ) {
            let v: Vec<(u64, u8)> = v.into_iter().map(|(x, t)| (x >> shift, t)).collect();
            let mut want = v.clone();
            want.sort_by_key(|t| t.0);
            let mut got = v;
            radix_sort(&mut got, |t| t.0);
            prop_assert_eq!(got, want);
        }
    }

    proptest! {
        /// Records after `base` come out in the order of their strings; those before
        /// stay where they were.
        #[test]
        fn tail_sorted_by_str_is_in_string_order(
            keys in prop::collection::btree_set("(C|customer-)?[0-9]{0,7}|\\PC{0,10}", 0..300),
            base in 0usize..5,
        ) {
            let mut recs: Vec<(String, usize)> =
                keys.iter().rev().cloned().enumerate().map(|(i, k)| (k, i)).collect();
            let base = base.min(recs.len());
            let mut want = recs.clone();
            want[base..].sort_unstable();
            sort_tail_by_str(&mut recs, base, |r| r.0.as_str());
            prop_assert_eq!(recs, want);
        }
    }

    proptest! {
        /// Any permutation, one cycle or many, is applied as `order` says.
        #[test]
        fn order_applied_in_place(
            from in (0usize..200).prop_flat_map(|n| Just((0..n).collect::<Vec<_>>()).prop_shuffle()),
        ) {
            let mut tail: Vec<String> = (0..from.len()).map(|i| format!("r{i}")).collect();
            let want: Vec<String> = from.iter().map(|&i| tail[i].clone()).collect();
            let mut order: Vec<(u64, usize)> = from.iter().map(|&i| (0, i)).collect();
            apply_order(&mut tail, &mut order);
            prop_assert_eq!(tail, want);
        }
    }

    #[test]
    fn shared_prefix_of_keys() {
        let mut s = Shared::new();
        for k in ["customer-001", "customer-002", "customer-1"] {
            s.see(k.as_bytes());
        }
        assert_eq!(s.len(), "customer-".len());
        s.see(b"cu");
        assert_eq!(s.len(), 2);
        s.see(b"");
        assert_eq!(s.len(), 0);
    }
}

//! The order of encoded keys in runs: plain byte order, compared eight bytes at a time.
//! Keys are short (a postcard-encoded customer id is about 8 bytes), where a call to the
//! C library's `memcmp` for each comparison of a lookup cost a tenth of a run with most
//! keys on disk.

use std::cmp::Ordering;

use crate::state::key_order::Shared;

/// The order of `a.cmp(b)` (lexicographic bytes).
#[inline]
pub(crate) fn compare(a: &[u8], b: &[u8]) -> Ordering {
    let n = a.len().min(b.len());
    let (mut x, mut y) = (&a[..n], &b[..n]);
    while x.len() >= 8 {
        let (hx, tx) = x.split_at(8);
        let (hy, ty) = y.split_at(8);
        let (u, v) = (be(hx), be(hy));
        if u != v {
            return u.cmp(&v);
        }
        (x, y) = (tx, ty);
    }
    for (p, q) in x.iter().zip(y) {
        if p != q {
            return p.cmp(q);
        }
    }
    a.len().cmp(&b.len())
}

/// The first eight bytes, zero-padded, as a number: a smaller prefix means a smaller key;
/// equal prefixes say nothing.
#[inline]
pub(crate) fn prefix(key: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    let n = key.len().min(8);
    b[..n].copy_from_slice(&key[..n]);
    u64::from_be_bytes(b)
}

/// The indexes `0..n` ordered by (`key(i)`, `i`): first by eight bytes of each key past
/// the bytes all the keys share (a sort of plain numbers), then ties by whole keys. With
/// the comparisons going through `key(i)` instead, the sort was a seventh of a run with
/// most keys on disk.
pub(crate) fn sorted_indexes<'a>(n: usize, key: impl Fn(usize) -> &'a [u8]) -> Vec<usize> {
    let Some(first) = (n > 0).then(|| key(0)) else {
        return Vec::new();
    };
    let mut shared = Shared::new();
    shared.see(first);
    (1..n).for_each(|i| shared.see(key(i)));
    let shared = shared.len();
    let mut order: Vec<(u64, usize)> = (0..n).map(|i| (prefix(&key(i)[shared..]), i)).collect();
    order.sort_unstable();
    let mut out: Vec<usize> = order.iter().map(|&(_, i)| i).collect();
    // Equal prefixes say nothing of the keys: such a stretch is sorted again, whole.
    let mut at = 0;
    while at < order.len() {
        let p = order[at].0;
        let len = order[at..].iter().take_while(|o| o.0 == p).count();
        if len > 1 {
            out[at..at + len].sort_unstable_by(|&a, &b| compare(key(a), key(b)).then(a.cmp(&b)));
        }
        at += len;
    }
    out
}

fn be(b: &[u8]) -> u64 {
    u64::from_be_bytes(b.try_into().expect("8 bytes"))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn orders_as_slices_do(a in proptest::collection::vec(0u8..4, 0..20),
                               b in proptest::collection::vec(0u8..4, 0..20)) {
            prop_assert_eq!(super::compare(&a, &b), a.cmp(&b));
            let (pa, pb) = (super::prefix(&a), super::prefix(&b));
            if pa != pb {
                prop_assert_eq!(pa.cmp(&pb), a.cmp(&b));
            }
        }

        #[test]
        fn sorted_indexes_order_by_key_then_index(
            keys in proptest::collection::vec(proptest::collection::vec(0u8..3, 0..12), 0..60),
            common in proptest::collection::vec(0u8..3, 0..10),
        ) {
            let keys: Vec<Vec<u8>> = keys.into_iter().map(|k| [common.clone(), k].concat()).collect();
            let got = super::sorted_indexes(keys.len(), |i| &keys[i]);
            let mut want: Vec<usize> = (0..keys.len()).collect();
            want.sort_by(|&a, &b| keys[a].cmp(&keys[b]).then(a.cmp(&b)));
            prop_assert_eq!(got, want);
        }
    }
}

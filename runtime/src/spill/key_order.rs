//! The order of encoded keys in runs: plain byte order, compared eight bytes at a time.
//! Keys are short (a postcard-encoded customer id is about 8 bytes), where a call to the
//! C library's `memcmp` for each comparison of a lookup cost a tenth of a run with most
//! keys on disk.

use std::cmp::Ordering;

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
    }
}

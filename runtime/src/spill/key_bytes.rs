//! The store's key type: encoded key bytes in plain byte order, compared eight bytes at
//! a time. Keys are short (a postcard-encoded customer id is about 8 bytes), where a call
//! to the C library's `memcmp` for each comparison of a B-tree search cost a tenth of a
//! run with most keys on disk.

use std::borrow::Cow;
use std::cmp::Ordering;

use redb::{Key, TypeName, Value};

#[derive(Debug)]
pub(crate) struct KeyBytes;

impl Value for KeyBytes {
    type SelfType<'a>
        = &'a [u8]
    where
        Self: 'a;
    type AsBytes<'a>
        = &'a [u8]
    where
        Self: 'a;

    fn fixed_width() -> Option<usize> {
        None
    }

    fn from_bytes<'a>(data: &'a [u8]) -> &'a [u8]
    where
        Self: 'a,
    {
        data
    }

    fn as_bytes<'a, 'b: 'a>(value: &'a &'b [u8]) -> &'a [u8]
    where
        Self: 'b,
    {
        value
    }

    fn type_name() -> TypeName {
        TypeName::new("simplestream::spill::KeyBytes")
    }
}

impl Key for KeyBytes {
    fn compare(a: &[u8], b: &[u8]) -> Ordering {
        compare(a, b)
    }

    fn separator<'a>(left: &'a [u8], right: &'a [u8]) -> Cow<'a, [u8]> {
        <&[u8] as Key>::separator(left, right)
    }
}

/// The order of `a.cmp(b)` (lexicographic bytes).
#[inline]
fn compare(a: &[u8], b: &[u8]) -> Ordering {
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
        }
    }
}

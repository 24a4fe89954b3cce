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
            Some(first) => self.len = common_len(&first[..self.len], key),
        }
    }

    /// The shared length.
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

/// How many bytes `a` and `b` share at their start, compared 8 at a time (no `memcmp`
/// call for a handful of bytes), the last 8 overlapping those before.
#[inline]
pub(crate) fn common_len(a: &[u8], b: &[u8]) -> usize {
    let n = a.len().min(b.len());
    if n < 8 {
        return a.iter().zip(b).take_while(|(x, y)| x == y).count();
    }
    let word = |s: &[u8], at: usize| u64::from_le_bytes(s[at..at + 8].try_into().expect("8"));
    let first_diff = |at: usize| {
        let diff = word(a, at) ^ word(b, at);
        (diff != 0).then(|| at + diff.trailing_zeros() as usize / 8)
    };
    let mut i = 0;
    while i + 8 < n {
        if let Some(d) = first_diff(i) {
            return d;
        }
        i += 8;
    }
    // Bytes before `i` are equal, so a difference here is at `i` or after.
    first_diff(n - 8).unwrap_or(n)
}

/// The 8 bytes of `key` after `shared`, zero-padded, big-endian: a key whose number is
/// smaller is smaller, and keys with equal numbers must be compared whole.
#[inline]
pub(crate) fn prefix(key: &[u8], shared: usize) -> u64 {
    let s = &key[shared.min(key.len())..];
    if let Some(w) = s.first_chunk::<8>() {
        return u64::from_be_bytes(*w);
    }
    s.iter()
        .enumerate()
        .fold(0, |x, (i, &c)| x | (c as u64) << (56 - 8 * i))
}

/// [`prefix`] of the key of `len` bytes at `text[at..]`, `shared` of them shared: one
/// 8-byte load, the bytes past the key masked off, when `text` goes on that far.
#[inline]
pub(crate) fn prefix_in(text: &[u8], at: usize, len: usize, shared: usize) -> u64 {
    let rest = len - shared;
    match text.get(at + shared..).and_then(<[u8]>::first_chunk::<8>) {
        Some(w) if rest < 8 => u64::from_be_bytes(*w) & !(u64::MAX >> (8 * rest)),
        Some(w) => u64::from_be_bytes(*w),
        None => prefix(&text[at..at + len], shared),
    }
}

/// The bits of every byte but the low four, in which keys such as decimal digits agree.
const HIGH_NIBBLES: u64 = 0xF0F0_F0F0_F0F0_F0F0;

/// True if numbers that differ (`diff`: each one XOR one of them) in the low four bits
/// of their bytes only keep their order under [`low_nibbles`].
#[inline]
pub(crate) fn low_nibbles_suffice(diff: u64) -> bool {
    diff & HIGH_NIBBLES == 0
}

/// The low four bits of each byte of `x`, most significant first, as one 32-bit number:
/// where all numbers agree in the other bits, it orders them as they are ordered, in half
/// the bits (so half the radix passes).
#[inline]
pub(crate) fn low_nibbles(x: u64) -> u64 {
    let x = x & !HIGH_NIBBLES;
    let x = (x | x >> 4) & 0x00FF_00FF_00FF_00FF;
    let x = (x | x >> 8) & 0x0000_FFFF_0000_FFFF;
    (x | x >> 16) & 0xFFFF_FFFF
}

/// The widest radix digit, in bits: 24 bits (six decimal digits under
/// [`low_nibbles`]) take two passes.
const MAX_DIGIT: u32 = 12;

/// Sorts `v` by `key`, keeping the order of equal keys: least significant digit first,
/// over the bits in which the keys differ only, in as few passes of at most
/// [`MAX_DIGIT`] bits as cover them; a digit that all records share is skipped.
pub(crate) fn radix_sort<T: Copy>(v: &mut Vec<T>, key: impl Fn(&T) -> u64) {
    let k0 = v.first().map_or(0, &key);
    let diff = v.iter().fold(0, |d, t| d | (key(t) ^ k0));
    radix_sort_differing(v, key, diff);
}

/// [`radix_sort`] where the caller knows `diff`, the OR of every key XOR one of them.
pub(crate) fn radix_sort_differing<T: Copy>(v: &mut Vec<T>, key: impl Fn(&T) -> u64, diff: u64) {
    const SIZE: usize = 1 << MAX_DIGIT;
    let n = v.len();
    if n <= 64 {
        v.sort_by_key(&key);
        return;
    }
    if diff == 0 {
        return;
    }
    let low = diff.trailing_zeros();
    let bits = 64 - diff.leading_zeros() - low;
    let passes = bits.div_ceil(MAX_DIGIT);
    let width = bits.div_ceil(passes);
    // Also below `SIZE`, which spares the bounds checks.
    let mask = ((1 << width) - 1) & (SIZE - 1);
    let mut counts = vec![[0usize; SIZE]; passes as usize];
    for t in v.iter() {
        let mut k = key(t) >> low;
        for c in counts.iter_mut() {
            c[k as usize & mask] += 1;
            k >>= width;
        }
    }
    let mut other = v.clone();
    for (p, c) in (0..).zip(counts.iter_mut()) {
        if c.contains(&n) {
            continue;
        }
        // Each count becomes where its first record goes.
        let mut sum = 0;
        for x in c.iter_mut() {
            (*x, sum) = (sum, sum + *x);
        }
        let shift = low + p * width;
        for t in v.iter() {
            let at = &mut c[(key(t) >> shift) as usize & mask];
            other[*at] = *t;
            *at += 1;
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

/// Sorts `v[base..]` by the string `key` gives for each record (as UTF-8 bytes, which
/// order as the strings do): by prefix with [`radix_sort`], ties settled whole, then each
/// record moved once into its place.
pub(crate) fn sort_tail_by_str<T>(v: &mut [T], base: usize, key: impl Fn(&T) -> &[u8]) {
    let tail = &v[base..];
    if tail.len() <= 64 {
        v[base..].sort_unstable_by(|a, b| key(a).cmp(key(b)));
        return;
    }
    let mut shared = Shared::new();
    for t in tail {
        shared.see(key(t));
    }
    let shared = shared.len();
    let mut order: Vec<(u64, usize)> = tail
        .iter()
        .enumerate()
        .map(|(i, t)| (prefix(key(t), shared), i))
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
            sort_tail_by_str(&mut recs, base, |r| r.0.as_bytes());
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

        /// The masked load gives the same number as the padded copy, with any bytes
        /// after the key, or none.
        #[test]
        fn prefix_in_text_is_the_prefix(
            key in prop::collection::vec(any::<u8>(), 0..20),
            shared in 0usize..20,
            after in prop::collection::vec(any::<u8>(), 0..10),
        ) {
            let shared = shared.min(key.len());
            let text: Vec<u8> = [&b"ab"[..], &key, &after].concat();
            prop_assert_eq!(prefix_in(&text, 2, key.len(), shared), prefix(&key, shared));
        }

        /// Numbers that agree in their high nibbles compare as their low nibbles do.
        #[test]
        fn low_nibbles_keep_the_order(
            high in any::<u64>(),
            a in any::<u64>(),
            b in any::<u64>(),
        ) {
            let same_high = |x: u64| (x & !HIGH_NIBBLES) | (high & HIGH_NIBBLES);
            let (a, b) = (same_high(a), same_high(b));
            prop_assert!(low_nibbles(a) <= u64::from(u32::MAX));
            prop_assert_eq!(low_nibbles(a).cmp(&low_nibbles(b)), a.cmp(&b));
        }

        #[test]
        fn common_len_is_the_shared_start(
            a in prop::collection::vec(0u8..3, 0..30),
            b in prop::collection::vec(0u8..3, 0..30),
        ) {
            let want = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
            prop_assert_eq!(common_len(&a, &b), want);
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

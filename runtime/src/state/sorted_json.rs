//! The JSON object of a map with `String` keys, keys in order, byte for byte what
//! `serde_json` writes for the entries sorted, without sorting strings or walking the
//! map in key order: each entry (`"key":value`) is written once, in the map's own order,
//! into one buffer; the entries are then ordered by [`key_order`](super::key_order) and
//! copied out straight into the checkpoint's output.

use std::io;

use serde::Serialize;

use super::key_order::{
    low_nibbles, low_nibbles_suffice, prefix_in, radix_sort_differing, settle_ties, Shared,
};
use crate::codec::compact;
use crate::codec::floats::Floats;
use crate::codec::raw;

/// One entry in the buffer, and its key's sort number (its key's length until that is
/// known). 16 bytes: the radix sort moves these.
#[derive(Clone, Copy)]
struct Entry {
    prefix: u64,
    start: u32,
    len: u32,
}

/// The entries' text, and where each one lies in key order.
pub(crate) struct SortedObject {
    text: Vec<u8>,
    order: Vec<Entry>,
}

/// The object `{"k1":v1,...}` in key order, or `None` if a key needs escaping in JSON
/// (the caller then writes the entries one by one).
pub(crate) fn sorted_object<'a, V: Serialize + 'a>(
    entries: impl ExactSizeIterator<Item = (&'a str, &'a V)>,
) -> Result<Option<SortedObject>, serde_json::Error> {
    let n = entries.len();
    let mut buf = Vec::new();
    let mut recs = Vec::with_capacity(n);
    let mut shared = Shared::new();
    let mut longest = 0;
    for (k, v) in entries {
        if recs.len() == 64 {
            // Room for all entries at the size of the first ones.
            buf.reserve(buf.len() / 64 * n);
        }
        if needs_escape(k.as_bytes()) {
            return Ok(None);
        }
        shared.see(k.as_bytes());
        longest = longest.max(k.len());
        let start = buf.len();
        buf.push(b'"');
        buf.extend_from_slice(k.as_bytes());
        buf.extend_from_slice(b"\":");
        let value_at = buf.len();
        if compact::write(&mut buf, v).is_err() {
            buf.truncate(value_at);
            serde_json::to_writer(&mut buf, &Floats(v))?;
        }
        // The comma goes with the entry: one copy each when they are put in order.
        buf.push(b',');
        // Past 4 GiB of text the entries are written one by one.
        let (Ok(start), Ok(len)) = (u32::try_from(start), u32::try_from(buf.len() - start)) else {
            return Ok(None);
        };
        recs.push(Entry {
            prefix: k.len() as u64,
            start,
            len,
        });
    }
    order(&buf, &mut recs, shared.len(), longest);
    Ok(Some(SortedObject {
        text: buf,
        order: recs,
    }))
}

/// Puts the entries of `text` in key order; `shared` is the length of the prefix all keys
/// share, `longest` the longest key's.
fn order(text: &[u8], recs: &mut Vec<Entry>, shared: usize, longest: usize) {
    let number = |e: &Entry| prefix_in(text, e.start as usize + 1, e.prefix as usize, shared);
    let first = recs.first().map_or(0, number);
    let mut diff = 0;
    for e in recs.iter_mut() {
        e.prefix = number(e);
        diff |= e.prefix ^ first;
    }
    if low_nibbles_suffice(diff) {
        for e in recs.iter_mut() {
            e.prefix = low_nibbles(e.prefix);
        }
        // The packing keeps and moves bits alone, so it packs their differences too.
        diff = low_nibbles(diff);
    }
    radix_sort_differing(recs, |e| e.prefix, diff);
    // When no key goes on past its 8 bytes, equal numbers would be equal keys (none has
    // a zero byte, which JSON escapes, to tell a padded key from a longer one).
    if longest > shared + 8 {
        // Keys end at the first `"`: none has one.
        let key = |e: &Entry| {
            let s = &text[e.start as usize + 1..];
            &s[..memchr::memchr(b'"', s).unwrap_or(s.len())]
        };
        settle_ties(recs, |e| e.prefix, |a, b| key(a).cmp(key(b)));
    }
}

impl raw::Text for SortedObject {
    fn write_to(&self, out: &mut dyn io::Write) -> io::Result<()> {
        out.write_all(b"{")?;
        let Some((last, rest)) = self.order.split_last() else {
            return out.write_all(b"}");
        };
        let entry = |e: &Entry| &self.text[e.start as usize..][..e.len as usize];
        for e in rest {
            out.write_all(entry(e))?;
        }
        // The last entry's comma closes the object.
        let last = entry(last);
        out.write_all(&last[..last.len() - 1])?;
        out.write_all(b"}")
    }
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// True if JSON needs an escape for a byte of `b` (a control character, `"` or `\`),
/// eight bytes at a time.
#[inline]
fn needs_escape(b: &[u8]) -> bool {
    let mut words = b.chunks_exact(8);
    let mut flags = 0;
    for w in &mut words {
        flags |= escape_flags(u64::from_le_bytes(w.try_into().expect("8 bytes")));
    }
    flags & HIGH != 0
        || words
            .remainder()
            .iter()
            .any(|&c| c < 0x20 || c == b'"' || c == b'\\')
}

/// A high bit set in some byte when a byte of `x` is below 0x20, `"` or `\`. Exact for
/// the word as a whole (a borrow only starts at a byte that is one of them), and with
/// no branch: `(y - 0x01..) & !y` flags a zero byte of `y`, `(x - 0x20..) & !x` a byte
/// below 0x20.
#[inline]
fn escape_flags(x: u64) -> u64 {
    let quote = x ^ (ONES * b'"' as u64);
    let backslash = x ^ (ONES * b'\\' as u64);
    (x.wrapping_sub(ONES * 0x20) & !x)
        | (quote.wrapping_sub(ONES) & !quote)
        | (backslash.wrapping_sub(ONES) & !backslash)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use raw::Text;
    use std::collections::BTreeMap;

    fn text(o: SortedObject) -> Vec<u8> {
        let mut out = Vec::new();
        o.write_to(&mut out).unwrap();
        out
    }

    proptest! {
        #[test]
        fn escapes_are_found(s in "[\\x00-\\x7f\u{e9}\u{ff}\u{10348}]{0,40}") {
            let want = s.bytes().any(|c| c < 0x20 || c == b'"' || c == b'\\');
            prop_assert_eq!(needs_escape(s.as_bytes()), want);
        }

        /// The object is the sorted map's JSON, non-finite floats included.
        #[test]
        fn same_bytes_as_the_sorted_map(
            m in prop::collection::hash_map(
                "(customer-0|ab|\\PC){0,3}[a-z0-9\u{e9}]{0,12}",
                (any::<u64>(), prop_oneof![any::<f64>(), Just(f64::NAN), Just(f64::INFINITY)]),
                0..200,
            ),
        ) {
            let got = sorted_object(m.iter().map(|(k, v)| (k.as_str(), v))).unwrap().map(text);
            let sorted: BTreeMap<&String, &(u64, f64)> = m.iter().collect();
            let mut want = Vec::new();
            crate::codec::to_json_writer(&mut want, &sorted).unwrap();
            let escapes = m.keys().any(|k| k.bytes().any(|c| c < 0x20 || c == b'"' || c == b'\\'));
            let want = (!escapes).then_some(&want[..]);
            prop_assert_eq!(got.as_deref(), want);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        /// Enough entries for the radix sort and for more than one piece of output;
        /// numbers of one width (whose digits take the low-nibble path) or of any.
        #[test]
        fn many_numbered_keys_in_order(
            nums in prop::collection::hash_set(0u32..10_000_000, 0..3000),
            one_width in any::<bool>(),
        ) {
            let m: std::collections::HashMap<String, u32> = nums
                .iter()
                .map(|&n| match one_width {
                    true => (format!("customer-{n:07}"), n),
                    false => (format!("customer-{n}"), n),
                })
                .collect();
            let got = sorted_object(m.iter().map(|(k, v)| (k.as_str(), v))).unwrap().map(text);
            let sorted: BTreeMap<&String, &u32> = m.iter().collect();
            prop_assert_eq!(got, Some(serde_json::to_vec(&sorted).unwrap()));
        }
    }

    #[test]
    fn a_key_that_needs_escaping_is_left_to_the_caller() {
        let m = [("a\"b".to_string(), 1u64)];
        assert!(sorted_object(m.iter().map(|(k, v)| (k.as_str(), v)))
            .unwrap()
            .is_none());
    }
}

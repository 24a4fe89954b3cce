//! The JSON object of a map with `String` keys, keys in order, byte for byte what
//! `serde_json` writes for the entries sorted, without sorting strings or walking the
//! map in key order: each entry (`"key":value`) is written once, in the map's own order,
//! into one buffer; the entries are then ordered by [`key_order`](super::key_order) and
//! copied out.

use serde::Serialize;

use super::key_order::{prefix_in, radix_sort, settle_ties, Shared};
use crate::codec::compact;
use crate::codec::floats::Floats;

/// One entry in the buffer, and its key's sort number (its key's length until that is
/// known). 16 bytes: the radix sort moves these.
#[derive(Clone, Copy)]
struct Entry {
    prefix: u64,
    start: u32,
    len: u32,
}

/// The object `{"k1":v1,...}` in key order, or `None` if a key needs escaping in JSON
/// (the caller then writes the entries one by one).
pub(crate) fn sorted_object<'a, V: Serialize + 'a>(
    entries: impl ExactSizeIterator<Item = (&'a str, &'a V)>,
) -> Result<Option<String>, serde_json::Error> {
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
    let shared = shared.len();
    for e in &mut recs {
        e.prefix = prefix_in(&buf, e.start as usize + 1, e.prefix as usize, shared);
    }
    radix_sort(&mut recs, |e| e.prefix);
    // When no key goes on past its 8 bytes, equal numbers would be equal keys (none has
    // a zero byte, which JSON escapes, to tell a padded key from a longer one).
    if longest > shared + 8 {
        // Keys end at the first `"`: none has one.
        let key = |e: &Entry| {
            let s = &buf[e.start as usize + 1..];
            &s[..memchr::memchr(b'"', s).unwrap_or(s.len())]
        };
        settle_ties(&mut recs, |e| e.prefix, |a, b| key(a).cmp(key(b)));
    }
    let mut out = Vec::with_capacity(buf.len() + 2);
    out.push(b'{');
    for e in &recs {
        out.extend_from_slice(&buf[e.start as usize..][..e.len as usize]);
    }
    // The last entry's comma closes the object.
    match out.last_mut() {
        Some(c) if n > 0 => *c = b'}',
        _ => out.push(b'}'),
    }
    String::from_utf8(out)
        .map(Some)
        .map_err(serde::ser::Error::custom)
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
    use std::collections::BTreeMap;

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
            let got = sorted_object(m.iter().map(|(k, v)| (k.as_str(), v))).unwrap();
            let sorted: BTreeMap<&String, &(u64, f64)> = m.iter().collect();
            let mut want = Vec::new();
            crate::codec::to_json_writer(&mut want, &sorted).unwrap();
            let escapes = m.keys().any(|k| k.bytes().any(|c| c < 0x20 || c == b'"' || c == b'\\'));
            let want = (!escapes).then_some(&want[..]);
            prop_assert_eq!(got.as_deref().map(str::as_bytes), want);
        }
    }

    #[test]
    fn a_key_that_needs_escaping_is_left_to_the_caller() {
        let m = [("a\"b".to_string(), 1u64)];
        assert_eq!(
            sorted_object(m.iter().map(|(k, v)| (k.as_str(), v))).unwrap(),
            None
        );
    }
}

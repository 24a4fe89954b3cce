//! The JSON object of a map with `String` keys, keys in order, byte for byte what
//! `serde_json` writes for the entries sorted, without sorting strings or walking the
//! map in key order: each entry (`"key":value`) is written once, in the map's own order,
//! into one buffer; the entries are then ordered by [`key_order`](super::key_order) and
//! copied out.

use serde::Serialize;

use super::key_order::{prefix, radix_sort, settle_ties, Shared};
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
    for (k, v) in entries {
        if recs.len() == 64 {
            // Room for all entries at the size of the first ones.
            buf.reserve(buf.len() / 64 * n);
        }
        if needs_escape(k.as_bytes()) {
            return Ok(None);
        }
        shared.see(k.as_bytes());
        let start = buf.len();
        buf.push(b'"');
        buf.extend_from_slice(k.as_bytes());
        buf.extend_from_slice(b"\":");
        let value_at = buf.len();
        if compact::write(&mut buf, v).is_err() {
            buf.truncate(value_at);
            serde_json::to_writer(&mut buf, &Floats(v))?;
        }
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
        let key = &buf[e.start as usize + 1..][..e.prefix as usize];
        e.prefix = prefix(key, shared);
    }
    radix_sort(&mut recs, |e| e.prefix);
    // Keys end at the first `"`: none has one.
    let key = |e: &Entry| {
        let s = &buf[e.start as usize + 1..];
        &s[..memchr::memchr(b'"', s).unwrap_or(s.len())]
    };
    settle_ties(&mut recs, |e| e.prefix, |a, b| key(a).cmp(key(b)));
    let mut out = Vec::with_capacity(buf.len() + recs.len() + 2);
    out.push(b'{');
    for (i, e) in recs.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&buf[e.start as usize..][..e.len as usize]);
    }
    out.push(b'}');
    String::from_utf8(out)
        .map(Some)
        .map_err(serde::ser::Error::custom)
}

/// True if JSON needs an escape for a byte of `b` (a control character, `"` or `\`),
/// eight bytes at a time.
fn needs_escape(b: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Exact for the word as a whole: some byte is below `n` (n <= 128) / is zero.
    let below = |x: u64, n: u64| x.wrapping_sub(ONES * n) & !x & HIGH != 0;
    let zero = |x: u64| below(x, 1);
    let mut words = b.chunks_exact(8);
    for w in &mut words {
        let x = u64::from_le_bytes(w.try_into().expect("8 bytes"));
        if below(x, 0x20) || zero(x ^ (ONES * b'"' as u64)) || zero(x ^ (ONES * b'\\' as u64)) {
            return true;
        }
    }
    words
        .remainder()
        .iter()
        .any(|&c| c < 0x20 || c == b'"' || c == b'\\')
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

//! Kafka's record batches (format v2) read in place: each record's offset and where its
//! value lies in the fetched bytes, nothing copied or allocated per record.

use std::ops::Range;

/// Base offset (8) and batch length (4): what the batch length does not count.
const LENGTH_END: usize = 12;
/// Leader epoch (4), magic (1), CRC (4) after the length; the CRC covers the rest.
const CRC_END: usize = LENGTH_END + 9;
/// A batch's fixed header, up to and including its record count.
const HEADER: usize = CRC_END + 40;
const COMPRESSION: i16 = 0x07;
const CONTROL: i16 = 0x20;

/// One record of a fetch: its offset, and where its value (empty for a record without
/// one) and its headers lie in the answer given to [`decode`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Rec {
    pub offset: i64,
    pub value: Range<usize>,
    pub headers: Range<usize>,
}

/// Why a batch cannot be read: what is wrong, and the batch's base offset.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Bad {
    pub offset: i64,
    pub why: String,
}

/// Appends the records of `answer[records]` (a fetch answer's record set) at offset
/// `from` and after to `out`. A batch cut short at the end is the broker's size limit, not an
/// error: it is left for the next fetch. Control batches (transaction markers) hold no
/// records to read. A batch whose CRC-32C does not match, a compressed batch, or an
/// older format is an error.
pub(super) fn decode(
    answer: &[u8],
    records: Range<usize>,
    from: i64,
    out: &mut Vec<Rec>,
) -> Result<(), Bad> {
    let shift = records.start;
    let records = &answer[records];
    let mut at = 0;
    while records.len() - at >= LENGTH_END {
        let base = be_i64(&records[at..]);
        let len = be_i32(&records[at + 8..]);
        let bad = |why: String| Bad { offset: base, why };
        let end = usize::try_from(len)
            .ok()
            .and_then(|l| (at + LENGTH_END).checked_add(l))
            .ok_or_else(|| bad(format!("a record batch of length {len}")))?;
        if end > records.len() {
            break;
        }
        batch(&records[at..end], base, shift + at, from, out).map_err(bad)?;
        at = end;
    }
    Ok(())
}

/// The records of one whole batch (`b`, at `shift` in the record set).
fn batch(b: &[u8], base: i64, shift: usize, from: i64, out: &mut Vec<Rec>) -> Result<(), String> {
    if b.len() < HEADER {
        return Err(format!("a record batch of {} bytes", b.len()));
    }
    let magic = b[LENGTH_END + 4];
    if magic != 2 {
        return Err(format!(
            "record batch format v{magic} (only v2, Kafka 0.11 and later, is read)"
        ));
    }
    let crc = u32::from_be_bytes([b[17], b[18], b[19], b[20]]);
    if crc32c::crc32c(&b[CRC_END..]) != crc {
        return Err("the record batch's CRC-32C does not match its bytes (corrupt)".into());
    }
    let attributes = i16::from_be_bytes([b[21], b[22]]);
    if attributes & COMPRESSION != 0 {
        let codec = match attributes & COMPRESSION {
            1 => "gzip",
            2 => "snappy",
            3 => "lz4",
            4 => "zstd",
            _ => "an unknown codec",
        };
        return Err(format!(
            "the record batch is compressed ({codec}); only uncompressed batches are read: produce to this topic without compression"
        ));
    }
    if attributes & CONTROL != 0 {
        return Ok(());
    }
    let count = be_i32(&b[HEADER - 4..]);
    let mut c = Varints { b, at: HEADER };
    for _ in 0..count {
        let len = c.size()?;
        let end =
            c.at.checked_add(len)
                .filter(|&e| e <= b.len())
                .ok_or("a record runs past its batch")?;
        c.at += 1; // attributes
        c.varint()?; // timestamp delta
        let offset = base + c.varint()?;
        let key = c.nullable_size()?;
        c.skip(key)?;
        let value_len = c.nullable_size()?;
        let value = c.at..c.at + value_len;
        c.skip(value_len)?;
        if c.at > end {
            return Err(format!("record at offset {offset} runs past its length"));
        }
        let headers = c.at..end;
        c.at = end;
        if offset >= from {
            out.push(Rec {
                offset,
                value: value.start + shift..value.end + shift,
                headers: headers.start + shift..headers.end + shift,
            });
        }
    }
    Ok(())
}

/// The value of header `key` in a record's `headers` (the first one of that name).
pub(super) fn header<'a>(headers: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    let mut c = Varints { b: headers, at: 0 };
    for _ in 0..c.size().ok()? {
        let k = c.size().ok()?;
        let name = c.at..c.at + k;
        c.skip(k).ok()?;
        let v = c.nullable_size().ok()?;
        let value = c.at..c.at + v;
        c.skip(v).ok()?;
        if &headers[name] == key {
            return Some(&headers[value]);
        }
    }
    None
}

/// Reads Kafka's zigzag varints from `b` at `at`.
struct Varints<'a> {
    b: &'a [u8],
    at: usize,
}

impl Varints<'_> {
    fn varint(&mut self) -> Result<i64, String> {
        let mut z = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self.b.get(self.at).ok_or("a record ends early")?;
            self.at += 1;
            z |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Ok((z >> 1) as i64 ^ -((z & 1) as i64));
            }
        }
        Err("a varint longer than 10 bytes".into())
    }

    /// A length that must not be negative.
    fn size(&mut self) -> Result<usize, String> {
        let n = self.varint()?;
        usize::try_from(n).map_err(|_| format!("a negative length {n}"))
    }

    /// A length where -1 means null (taken as empty).
    fn nullable_size(&mut self) -> Result<usize, String> {
        match self.varint()? {
            -1 => Ok(0),
            n => usize::try_from(n).map_err(|_| format!("a negative length {n}")),
        }
    }

    fn skip(&mut self, n: usize) -> Result<(), String> {
        self.at = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.b.len())
            .ok_or("a record ends early")?;
        Ok(())
    }
}

fn be_i64(b: &[u8]) -> i64 {
    i64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
}

fn be_i32(b: &[u8]) -> i32 {
    i32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

#[cfg(test)]
mod tests {
    use super::super::batch::Batch;
    use super::super::record_batch::{encode, Stamp};
    use super::*;

    fn stamp() -> Stamp<'static> {
        Stamp {
            instance: b"inst",
            first_seq: 0,
            timestamp_ms: 1_700_000_000_000,
            producer: super::super::epoch::Epoch { id: 1, epoch: 0 },
            epoch_from: 0,
        }
    }

    /// Two batches as our producer writes them, based at offsets 10 and 13.
    fn two_batches() -> Vec<u8> {
        let mut rows = Batch::default();
        rows.push(Some(b"k1"), br#"{"n":1}"#);
        rows.push(None, b"");
        rows.push(Some(b"k3"), &[b'x'; 300]);
        let mut out = Vec::new();
        encode(&mut out, &rows, 0, &stamp());
        out[..8].copy_from_slice(&10i64.to_be_bytes());
        let second = out.len();
        let mut more = Batch::default();
        more.push(None, br#"{"n":4}"#);
        encode(&mut out, &more, 0, &stamp());
        out[second..second + 8].copy_from_slice(&13i64.to_be_bytes());
        out
    }

    fn values<'a>(b: &'a [u8], recs: &[Rec]) -> Vec<(i64, &'a [u8])> {
        recs.iter()
            .map(|r| (r.offset, &b[r.value.clone()]))
            .collect()
    }

    #[test]
    fn our_encoders_batches_decode_to_their_values_offsets_and_headers() {
        // The record set after other bytes, as in a fetch answer.
        let mut b = b"answer head".to_vec();
        let start = b.len();
        b.extend_from_slice(&two_batches());
        let mut recs = Vec::new();
        decode(&b, start..b.len(), 0, &mut recs).unwrap();
        let x300 = [b'x'; 300];
        let want: Vec<(i64, &[u8])> = vec![
            (10, br#"{"n":1}"#),
            (11, b""),
            (12, &x300),
            (13, br#"{"n":4}"#),
        ];
        assert_eq!(values(&b, &recs), want);
        let seqs: Vec<&[u8]> = recs
            .iter()
            .map(|r| header(&b[r.headers.clone()], b"simplestream-seq").unwrap())
            .collect();
        assert_eq!(seqs, [&b"0"[..], b"1", b"2", b"0"]);
        let h = &b[recs[1].headers.clone()];
        assert_eq!(header(h, b"simplestream-instance"), Some(&b"inst"[..]));
        assert_eq!(header(h, b"other"), None);
        // Records before `from` are left out, also inside a batch.
        recs.clear();
        decode(&b, start..b.len(), 12, &mut recs).unwrap();
        assert_eq!(values(&b, &recs), want[2..]);
    }

    #[test]
    fn a_batch_cut_short_is_left_for_the_next_fetch() {
        let b = two_batches();
        for cut in [b.len() - 1, b.len() - 40, b.len() - 70] {
            let mut recs = Vec::new();
            decode(&b, 0..cut, 0, &mut recs).unwrap();
            assert_eq!(recs.len(), 3, "cut at {cut}: the first batch only");
        }
        let mut recs = Vec::new();
        decode(&b, 0..5, 0, &mut recs).unwrap();
        assert!(recs.is_empty());
    }

    #[test]
    fn a_corrupt_batch_is_an_error_naming_its_offset() {
        let mut b = two_batches();
        let last = b.len() - 3;
        b[last] ^= 1; // inside the second batch's last record
        let mut recs = Vec::new();
        let e = decode(&b, 0..b.len(), 0, &mut recs).unwrap_err();
        assert_eq!(e.offset, 13);
        assert!(e.why.contains("CRC-32C does not match"), "{}", e.why);
    }

    #[test]
    fn compressed_control_and_old_batches() {
        let mut b = two_batches();
        let second = first_len(&b);
        // gzip on the second batch, CRC made right again: refused by name.
        set_attributes(&mut b[second..], 1);
        let e = decode(&b, 0..b.len(), 0, &mut Vec::new()).unwrap_err();
        assert_eq!(e.offset, 13);
        assert!(e.why.contains("compressed (gzip)"), "{}", e.why);
        // A control batch: no records from it.
        set_attributes(&mut b[second..], CONTROL);
        let mut recs = Vec::new();
        decode(&b, 0..b.len(), 0, &mut recs).unwrap();
        assert_eq!(recs.last().map(|r| r.offset), Some(12));
        // Format v1.
        b[second + 16] = 1;
        let e = decode(&b, 0..b.len(), 0, &mut Vec::new()).unwrap_err();
        assert!(e.why.contains("format v1"), "{}", e.why);
    }

    fn first_len(b: &[u8]) -> usize {
        LENGTH_END + be_i32(&b[8..]) as usize
    }

    fn set_attributes(batch: &mut [u8], a: i16) {
        batch[21..23].copy_from_slice(&a.to_be_bytes());
        let crc = crc32c::crc32c(&batch[CRC_END..]);
        batch[17..21].copy_from_slice(&crc.to_be_bytes());
    }
}

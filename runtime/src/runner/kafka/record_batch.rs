//! Kafka's record batch (format v2, uncompressed) written straight from a [`Batch`]
//! into a request buffer: no allocation per record.

use super::batch::Batch;
use super::epoch::Epoch;
use super::sink::{INSTANCE_HEADER, SEQ_HEADER};

/// Bytes of a batch before its first record's fields that the batch length counts
/// from: base offset (8) and the batch length itself (4).
const LENGTH_END: usize = 12;
/// Where the CRC-covered part starts: after the leader epoch (4), magic (1), CRC (4).
const CRC_END: usize = LENGTH_END + 9;

/// Who wrote the rows: each record's [`INSTANCE_HEADER`] and the first row's
/// [`SEQ_HEADER`] number; every record is stamped `timestamp_ms`. The batch carries the
/// writer's producer id and epoch (the broker refuses an older epoch), and as base
/// sequence the first row's number counted from `epoch_from`, the row the epoch's
/// first batch started at (the broker wants each batch to start where the last ended).
pub(super) struct Stamp<'a> {
    pub instance: &'a [u8],
    pub first_seq: u64,
    pub timestamp_ms: i64,
    pub producer: Epoch,
    pub epoch_from: u64,
}

/// Appends the rows of `rows` from the `skip`-th on (at least one) to `out` as one
/// record batch; the `skip`-th row is numbered `stamp.first_seq + skip`.
pub(super) fn encode(out: &mut Vec<u8>, rows: &Batch, skip: usize, stamp: &Stamp) {
    let start = out.len();
    let n = rows.len() - skip;
    out.extend_from_slice(&0i64.to_be_bytes()); // base offset: the broker assigns it
    out.extend_from_slice(&0i32.to_be_bytes()); // batch length, patched below
    out.extend_from_slice(&(-1i32).to_be_bytes()); // partition leader epoch
    out.push(2); // magic: format v2
    out.extend_from_slice(&0u32.to_be_bytes()); // CRC-32C, patched below
    out.extend_from_slice(&0i16.to_be_bytes()); // attributes: no compression, create time
    out.extend_from_slice(&(n as i32 - 1).to_be_bytes()); // last offset delta
    out.extend_from_slice(&stamp.timestamp_ms.to_be_bytes()); // first timestamp
    out.extend_from_slice(&stamp.timestamp_ms.to_be_bytes()); // max timestamp
    let first = stamp.first_seq + skip as u64;
    out.extend_from_slice(&stamp.producer.id.to_be_bytes());
    out.extend_from_slice(&stamp.producer.epoch.to_be_bytes());
    out.extend_from_slice(&base_sequence(first - stamp.epoch_from).to_be_bytes());
    out.extend_from_slice(&(n as i32).to_be_bytes());
    let mut digits = [0; 20];
    for (delta, (key, value)) in rows.rows(skip).enumerate() {
        let seq = decimal(&mut digits, first + delta as u64);
        record(out, delta as i64, key, value, stamp.instance, seq);
    }
    let len = (out.len() - start - LENGTH_END) as i32;
    out[start + 8..start + LENGTH_END].copy_from_slice(&len.to_be_bytes());
    let crc = crc32c::crc32c(&out[start + CRC_END..]);
    out[start + CRC_END - 4..start + CRC_END].copy_from_slice(&crc.to_be_bytes());
}

/// Kafka's sequence numbers wrap from `i32::MAX` to 0.
fn base_sequence(rows_before: u64) -> i32 {
    (rows_before % (1 << 31)) as i32
}

/// One record: its length first, so every field's size is counted before writing.
fn record(
    out: &mut Vec<u8>,
    delta: i64,
    key: Option<&[u8]>,
    value: &[u8],
    inst: &[u8],
    seq: &[u8],
) {
    let headers = field_len(INSTANCE_HEADER.as_bytes())
        + field_len(inst)
        + field_len(SEQ_HEADER.as_bytes())
        + field_len(seq);
    let key_len = key.map_or(varint_len(-1), field_len);
    // attributes (1), timestamp delta 0 (1), offset delta, key, value, 2 headers (1)
    let len = 2 + varint_len(delta) + key_len + field_len(value) + 1 + headers;
    varint(out, len as i64);
    out.extend_from_slice(&[0, 0]);
    varint(out, delta);
    match key {
        Some(k) => field(out, k),
        None => varint(out, -1),
    }
    field(out, value);
    varint(out, 2);
    field(out, INSTANCE_HEADER.as_bytes());
    field(out, inst);
    field(out, SEQ_HEADER.as_bytes());
    field(out, seq);
}

/// Bytes with their length as a varint before them.
fn field(out: &mut Vec<u8>, b: &[u8]) {
    varint(out, b.len() as i64);
    out.extend_from_slice(b);
}

fn field_len(b: &[u8]) -> usize {
    varint_len(b.len() as i64) + b.len()
}

/// Kafka's varint: zigzag, then 7 bits a byte, low bits first.
fn varint(out: &mut Vec<u8>, n: i64) {
    let mut z = ((n << 1) ^ (n >> 63)) as u64;
    while z >= 0x80 {
        out.push(z as u8 | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

fn varint_len(n: i64) -> usize {
    let z = ((n << 1) ^ (n >> 63)) as u64;
    (64 - (z | 1).leading_zeros() as usize).div_ceil(7)
}

/// `n` in decimal, written at the end of `buf`.
fn decimal(buf: &mut [u8; 20], mut n: u64) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn be32(b: &[u8], at: usize) -> i32 {
        i32::from_be_bytes(b[at..at + 4].try_into().unwrap())
    }

    #[test]
    fn varints_are_zigzag_seven_bits_a_byte() {
        // Examples from Kafka's protocol guide and protobuf's zigzag table.
        let cases: [(i64, &[u8]); 7] = [
            (0, &[0]),
            (-1, &[1]),
            (1, &[2]),
            (63, &[0x7e]),
            (-64, &[0x7f]),
            (64, &[0x80, 1]),
            (300, &[0xd8, 4]),
        ];
        for (n, want) in cases {
            let mut out = Vec::new();
            varint(&mut out, n);
            assert_eq!(out, want, "{n}");
        }
        for n in [0, 63, 64, 8191, 8192, -65, 1 << 40, i64::MIN, i64::MAX] {
            let mut out = Vec::new();
            varint(&mut out, n);
            assert_eq!(varint_len(n), out.len(), "{n}");
        }
        assert_eq!(decimal(&mut [0; 20], u64::MAX), b"18446744073709551615");
        assert_eq!(decimal(&mut [0; 20], 0), b"0");
    }

    #[test]
    fn a_batch_is_laid_out_as_kafkas_format_v2() {
        let mut rows = Batch::default();
        rows.push(Some(b"skipped"), b"x");
        rows.push(None, b"v");
        rows.push(Some(b"k"), &[b'w'; 200]);
        let stamp = Stamp {
            instance: b"i",
            first_seq: 6,
            timestamp_ms: 1_700_000_000_000,
            producer: Epoch { id: 9, epoch: 4 },
            epoch_from: 5,
        };
        let mut out = b"head".to_vec();
        encode(&mut out, &rows, 1, &stamp);
        let b = &out[4..];
        assert_eq!(be32(b, 8) as usize, b.len() - 12, "batch length");
        assert_eq!((be32(b, 12), b[16]), (-1, 2), "leader epoch, magic");
        let crc = u32::from_be_bytes(b[17..21].try_into().unwrap());
        assert_eq!(crc, crc32c::crc32c(&b[21..]));
        assert_eq!(be32(b, 23), 1, "last offset delta");
        assert_eq!(&b[27..35], &1_700_000_000_000i64.to_be_bytes());
        assert_eq!(&b[43..51], &9i64.to_be_bytes(), "producer id");
        assert_eq!(&b[51..53], &4i16.to_be_bytes(), "producer epoch");
        assert_eq!(
            be32(b, 53),
            2,
            "base sequence: row 7, the third since row 5"
        );
        assert_eq!(be32(b, 57), 2, "records");
        assert_eq!(base_sequence(1 << 31), 0, "wraps");
        // The first record written by hand from the format's description.
        let mut first = vec![100, 0, 0, 0, 1, 2, b'v', 4, 42];
        first.extend_from_slice(b"simplestream-instance");
        first.extend_from_slice(&[2, b'i', 32]);
        first.extend_from_slice(b"simplestream-seq");
        first.extend_from_slice(&[2, b'7']);
        assert_eq!(&b[61..61 + first.len()], &first[..]);
        // The second: length in 2 bytes (0xf6 0x03: 251), key "k", value of 200 bytes.
        let second = &b[61 + first.len()..];
        assert_eq!(&second[..8], &[0xf6, 0x03, 0, 0, 2, 2, b'k', 0x90]);
        assert_eq!(second.len(), 2 + 251);
        assert!(second.ends_with(b"simplestream-seq\x02\x38"), "row 8");
    }
}

//! [`Batch`]: output rows waiting to be produced, packed into one buffer.
//!
//! Rows are packed on the pipeline's thread without an allocation per row; the
//! producer thread turns them into Kafka records (allocated and freed on that thread,
//! which glibc's allocator handles far faster than frees from another thread).

use std::collections::BTreeMap;

use rskafka::chrono::{DateTime, Utc};
use rskafka::record::Record;

use super::sink::{INSTANCE_HEADER, SEQ_HEADER};

/// Rows in order: their keys and values back to back in one buffer.
#[derive(Default)]
pub(super) struct Batch {
    bytes: Vec<u8>,
    rows: Vec<Span>,
}

/// One row in [`Batch::bytes`]: `start..key_end` is its key (if `keyed`), then its
/// value up to `end`.
struct Span {
    start: usize,
    key_end: usize,
    keyed: bool,
    end: usize,
}

impl Batch {
    /// An empty batch with room for `bytes` of keys and values in `rows` rows.
    pub(super) fn with_capacity(bytes: usize, rows: usize) -> Batch {
        Batch {
            bytes: Vec::with_capacity(bytes),
            rows: Vec::with_capacity(rows),
        }
    }

    /// Appends a row.
    pub(super) fn push(&mut self, key: Option<&[u8]>, value: &[u8]) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(key.unwrap_or_default());
        let key_end = self.bytes.len();
        self.bytes.extend_from_slice(value);
        self.rows.push(Span {
            start,
            key_end,
            keyed: key.is_some(),
            end: self.bytes.len(),
        });
    }

    /// Rows held.
    pub(super) fn len(&self) -> usize {
        self.rows.len()
    }

    /// Bytes of keys and values held.
    pub(super) fn bytes(&self) -> usize {
        self.bytes.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The rows from the `skip`-th on as Kafka records of `instance`, the first of the
    /// batch numbered `first_seq`.
    pub(super) fn records(
        &self,
        instance: &[u8],
        first_seq: u64,
        skip: usize,
        timestamp: DateTime<Utc>,
    ) -> Vec<Record> {
        let mut seq = [0; 20];
        self.rows[skip..]
            .iter()
            .zip(first_seq + skip as u64..)
            .map(|(r, n)| Record {
                key: r.keyed.then(|| self.bytes[r.start..r.key_end].to_vec()),
                value: Some(self.bytes[r.key_end..r.end].to_vec()),
                headers: BTreeMap::from([
                    (INSTANCE_HEADER.to_string(), instance.to_vec()),
                    (SEQ_HEADER.to_string(), decimal(&mut seq, n).to_vec()),
                ]),
                timestamp,
            })
            .collect()
    }
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

    #[test]
    fn records_keep_keys_values_and_numbers() {
        let mut b = Batch::default();
        b.push(Some(b"alice"), b"{\"n\":1}");
        b.push(None, b"{\"n\":2}");
        b.push(Some(b""), b"");
        assert_eq!((b.len(), b.bytes()), (3, 19));
        let recs = b.records(b"app-1", 9, 0, Default::default());
        let keys: Vec<_> = recs.iter().map(|r| r.key.clone()).collect();
        assert_eq!(keys, [Some(b"alice".to_vec()), None, Some(Vec::new())]);
        assert_eq!(recs[1].value.as_deref(), Some(&b"{\"n\":2}"[..]));
        let seqs: Vec<_> = recs.iter().map(|r| r.headers[SEQ_HEADER].clone()).collect();
        assert_eq!(seqs, [b"9".to_vec(), b"10".to_vec(), b"11".to_vec()]);
        assert_eq!(recs[0].headers[INSTANCE_HEADER], b"app-1");
        let rest = b.records(b"app-1", 9, 2, Default::default());
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].headers[SEQ_HEADER], b"11");
        assert_eq!(decimal(&mut [0; 20], u64::MAX), b"18446744073709551615");
        assert_eq!(decimal(&mut [0; 20], 0), b"0");
    }
}

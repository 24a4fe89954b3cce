//! [`Batch`]: output rows waiting to be produced, packed into one buffer.
//!
//! Rows are packed on the pipeline's thread without an allocation per row; the
//! producer thread encodes them into a produce request (`record_batch`).

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

    /// The rows from the `skip`-th on: (key, value).
    pub(super) fn rows(
        &self,
        skip: usize,
    ) -> impl ExactSizeIterator<Item = (Option<&[u8]>, &[u8])> {
        self.rows[skip..].iter().map(|r| {
            let key = r.keyed.then(|| &self.bytes[r.start..r.key_end]);
            (key, &self.bytes[r.key_end..r.end])
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_keep_keys_and_values() {
        let mut b = Batch::default();
        b.push(Some(b"alice"), b"{\"n\":1}");
        b.push(None, b"{\"n\":2}");
        b.push(Some(b""), b"");
        assert_eq!((b.len(), b.bytes()), (3, 19));
        let rows: Vec<_> = b.rows(0).collect();
        assert_eq!(
            rows,
            [
                (Some(&b"alice"[..]), &b"{\"n\":1}"[..]),
                (None, &b"{\"n\":2}"[..]),
                (Some(&b""[..]), &b""[..])
            ]
        );
        assert_eq!(b.rows(2).len(), 1);
    }
}

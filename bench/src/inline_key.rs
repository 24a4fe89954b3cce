//! [`Inline`]: a string key kept inside a hand loop's hash-map bucket, the fastest way a
//! hand-written program keeps short string keys (no allocation for a new key, no pointer
//! to follow when comparing).

/// A key of up to 22 bytes stored in place (24 bytes in all, as a `String`), a longer one
/// boxed. A string has one form only, so the derived `Eq` and `Hash` agree.
#[derive(Hash, PartialEq, Eq)]
pub enum Inline {
    Short { len: u8, bytes: [u8; 22] },
    Long(Box<str>),
}

impl Inline {
    #[inline]
    pub fn new(s: &str) -> Self {
        let b = s.as_bytes();
        if b.len() > 22 {
            return Inline::Long(s.into());
        }
        let mut bytes = [0u8; 22];
        bytes[..b.len()].copy_from_slice(b);
        Inline::Short {
            len: b.len() as u8,
            bytes,
        }
    }

    #[inline]
    pub fn bytes(&self) -> &[u8] {
        match self {
            Inline::Short { len, bytes } => &bytes[..*len as usize],
            Inline::Long(s) => s.as_bytes(),
        }
    }

    pub fn text(&self) -> &str {
        std::str::from_utf8(self.bytes()).expect("made from a str")
    }
}

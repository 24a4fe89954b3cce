//! Compile-time hashing used for pipeline fingerprints and state layouts.
//!
//! FNV-1a 64 is small, `const`, and stable across Rust versions, which is what a
//! fingerprint stored in checkpoint files needs (std's hashers promise none of that).

const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a 64 of a string.
///
/// ```
/// assert_eq!(simplestream_runtime::fingerprint::fnv1a(""), 0xcbf2_9ce4_8422_2325);
/// ```
pub const fn fnv1a(s: &str) -> u64 {
    let bytes = s.as_bytes();
    let mut h = OFFSET;
    let mut i = 0;
    while i < bytes.len() {
        h ^= bytes[i] as u64;
        h = h.wrapping_mul(PRIME);
        i += 1;
    }
    h
}

/// FNV-1a 64 fed piece by piece in `const` code: `Fnv::new().str("a").int(-5).finish()`
/// equals `fnv1a("a-5")`.
///
/// ```
/// use simplestream_runtime::fingerprint::{fnv1a, Fnv};
/// assert_eq!(Fnv::new().str("a").int(-5).int(0).finish(), fnv1a("a-50"));
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Self::new()
    }
}

impl Fnv {
    /// The hash of nothing.
    pub const fn new() -> Self {
        Fnv(OFFSET)
    }

    /// Feeds a string's bytes.
    pub const fn str(self, s: &str) -> Self {
        let bytes = s.as_bytes();
        let mut h = self.0;
        let mut i = 0;
        while i < bytes.len() {
            h ^= bytes[i] as u64;
            h = h.wrapping_mul(PRIME);
            i += 1;
        }
        Fnv(h)
    }

    /// Feeds a number as its decimal text (`-` for negatives).
    pub const fn int(self, n: i64) -> Self {
        let mut digits = [0u8; 20];
        let mut len = 0;
        let mut v = n.unsigned_abs();
        loop {
            digits[len] = b'0' + (v % 10) as u8;
            len += 1;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        let mut h = self;
        if n < 0 {
            h = h.str("-");
        }
        while len > 0 {
            len -= 1;
            h = h.byte(digits[len]);
        }
        h
    }

    const fn byte(self, b: u8) -> Self {
        Fnv((self.0 ^ b as u64).wrapping_mul(PRIME))
    }

    /// The hash.
    pub const fn finish(self) -> u64 {
        self.0
    }
}

/// Combines two hashes, order-sensitively.
///
/// ```
/// use simplestream_runtime::fingerprint::combine;
/// assert_ne!(combine(1, 2), combine(2, 1));
/// assert_ne!(combine(0, 1), combine(1, 0));
/// ```
pub const fn combine(a: u64, b: u64) -> u64 {
    // FNV-1a over the 16 bytes of `a` then `b`: order-sensitive, unlike a xor.
    let mut h = OFFSET;
    let mut i = 0;
    while i < 16 {
        let byte = if i < 8 {
            a >> (i * 8)
        } else {
            b >> ((i - 8) * 8)
        };
        h ^= byte & 0xff;
        h = h.wrapping_mul(PRIME);
        i += 1;
    }
    h
}

/// Formats a fingerprint the way checkpoints store it: 16 lowercase hex digits.
///
/// ```
/// assert_eq!(simplestream_runtime::fingerprint::to_hex(255), "00000000000000ff");
/// ```
pub fn to_hex(fp: u64) -> String {
    format!("{fp:016x}")
}

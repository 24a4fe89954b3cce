//! [`KeyStr`]: how state tables keep a `String` key.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::checkpoint::Checkpointable;
use crate::fingerprint::fnv1a;

/// Bytes kept in place; with the length byte and the variant's tag the key is 24 bytes,
/// the size of a `String`.
const INLINE: usize = 22;

/// A `String` key as `pipeline!`'s state tables keep it: up to 22 bytes inside the
/// table's bucket, a longer one boxed. A short key costs no allocation when it is
/// inserted and no pointer to follow when it is compared, which is what a table much
/// larger than the cache pays for on every event.
///
/// It hashes, compares, orders, prints and serializes exactly as the string it holds, so
/// checkpoints, their layout hashes and output bytes are those of a `String` key.
///
/// ```
/// use simplestream_runtime::KeyStr;
/// let k = KeyStr::from("C001");
/// assert_eq!(k, "C001");
/// assert_eq!(String::from(k.clone()), "C001");
/// assert!(KeyStr::from("C001") < KeyStr::from("C002"));
/// assert_eq!(serde_json::to_string(&k).unwrap(), r#""C001""#);
/// let long = KeyStr::from("a customer id longer than twenty-two bytes");
/// assert_eq!(long.as_str().len(), 42);
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct KeyStr(Repr);

// A string has exactly one form (by its length), so the derived equality is the string's.
#[derive(Clone, PartialEq, Eq)]
enum Repr {
    Short { len: u8, bytes: [u8; INLINE] },
    Long(Box<str>),
}

impl KeyStr {
    /// The longest key kept in place, in bytes.
    pub(crate) const INLINE: usize = INLINE;

    /// The key's bytes (UTF-8).
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Repr::Short { len, bytes } => &bytes[..*len as usize],
            Repr::Long(s) => s.as_bytes(),
        }
    }

    /// The key as a `&str`.
    #[inline]
    pub fn as_str(&self) -> &str {
        match &self.0 {
            // Built only from a `&str`, so the check cannot fail; it costs a pass over
            // at most 22 bytes and needs no unsafe code.
            Repr::Short { len, bytes } => {
                std::str::from_utf8(&bytes[..*len as usize]).expect("a KeyStr holds UTF-8")
            }
            Repr::Long(s) => s,
        }
    }

    /// Whether the key equals `s`, comparing bytes.
    #[inline]
    pub fn is(&self, s: &str) -> bool {
        self.as_bytes() == s.as_bytes()
    }
}

impl From<&str> for KeyStr {
    #[inline]
    fn from(s: &str) -> Self {
        let b = s.as_bytes();
        if b.len() > INLINE {
            return KeyStr(Repr::Long(s.into()));
        }
        let mut bytes = [0u8; INLINE];
        bytes[..b.len()].copy_from_slice(b);
        KeyStr(Repr::Short {
            len: b.len() as u8,
            bytes,
        })
    }
}

impl From<String> for KeyStr {
    #[inline]
    fn from(s: String) -> Self {
        if s.len() > INLINE {
            return KeyStr(Repr::Long(s.into_boxed_str()));
        }
        KeyStr::from(s.as_str())
    }
}

impl From<&String> for KeyStr {
    #[inline]
    fn from(s: &String) -> Self {
        KeyStr::from(s.as_str())
    }
}

impl From<KeyStr> for String {
    #[inline]
    fn from(k: KeyStr) -> Self {
        match k.0 {
            Repr::Long(s) => s.into(),
            Repr::Short { .. } => k.as_str().to_owned(),
        }
    }
}

impl Default for KeyStr {
    fn default() -> Self {
        KeyStr(Repr::Short {
            len: 0,
            bytes: [0; INLINE],
        })
    }
}

impl Hash for KeyStr {
    /// As the `str` hashes (its bytes, then `0xff`: `Hasher::write_str`'s default, which
    /// stable hashers cannot override), so a table of `KeyStr` can be probed with a
    /// `&str`; from the bytes, without `as_str`'s UTF-8 check on every hash.
    #[inline]
    fn hash<H: Hasher>(&self, h: &mut H) {
        h.write(self.as_bytes());
        h.write_u8(0xff);
    }
}

impl Ord for KeyStr {
    #[inline]
    fn cmp(&self, other: &Self) -> Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl PartialOrd for KeyStr {
    #[inline]
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Borrow<str> for KeyStr {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for KeyStr {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl std::ops::Deref for KeyStr {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq<str> for KeyStr {
    fn eq(&self, other: &str) -> bool {
        self.is(other)
    }
}

impl PartialEq<&str> for KeyStr {
    fn eq(&self, other: &&str) -> bool {
        self.is(other)
    }
}

impl PartialEq<String> for KeyStr {
    fn eq(&self, other: &String) -> bool {
        self.is(other)
    }
}

impl fmt::Debug for KeyStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for KeyStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.as_str(), f)
    }
}

impl Serialize for KeyStr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for KeyStr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = KeyStr;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<KeyStr, E> {
                Ok(KeyStr::from(s))
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<KeyStr, E> {
                Ok(KeyStr::from(s))
            }
        }
        d.deserialize_str(V)
    }
}

impl Checkpointable for KeyStr {
    /// A `String`'s: the bytes of a checkpoint do not change with the table's layout.
    const LAYOUT: u64 = fnv1a("String");
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::hash::BuildHasher;

    proptest! {
        /// Equality, order and hash are the string's, across the inline/boxed boundary.
        #[test]
        fn behaves_as_the_string(a in "\\PC{0,30}", b in "\\PC{0,30}") {
            let (ka, kb) = (KeyStr::from(a.as_str()), KeyStr::from(b.clone()));
            prop_assert_eq!(ka == kb, a == b);
            prop_assert_eq!(ka.cmp(&kb), a.cmp(&b));
            prop_assert_eq!(ka.as_str(), a.as_str());
            prop_assert_eq!(String::from(kb), b.clone());
            let h = foldhash::fast::FixedState::with_seed(7);
            prop_assert_eq!(h.hash_one(&ka), h.hash_one(a.as_str()));
            let std_hasher = std::hash::RandomState::new();
            prop_assert_eq!(std_hasher.hash_one(&ka), std_hasher.hash_one(a.as_str()));
            let json = serde_json::to_string(&ka).unwrap();
            prop_assert_eq!(&json, &serde_json::to_string(&a).unwrap());
            prop_assert_eq!(serde_json::from_str::<KeyStr>(&json).unwrap(), ka);
        }
    }

    #[test]
    fn a_key_is_as_large_as_a_string() {
        assert_eq!(std::mem::size_of::<KeyStr>(), std::mem::size_of::<String>());
    }

    #[test]
    fn the_layout_is_a_strings() {
        assert_eq!(KeyStr::LAYOUT, <String as Checkpointable>::LAYOUT);
    }
}

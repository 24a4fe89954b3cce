//! Heap bytes a key or value owns, estimated from how it serializes: one allocation per
//! non-empty string, byte string, sequence or map, sized by what it holds (a string its
//! bytes; a sequence or map its elements' inline sizes). So a `(String, String)` key
//! counts two allocations where its encoded bytes would suggest one. A `Box` or `Rc`
//! serializes as what it points to and is not counted; a string kept inline (a short
//! `KeyStr` inside another type) is counted as if it were not, which errs high.

use serde::ser::{self, Serialize};

use super::budget::allocation;

/// Heap bytes `v` owns (estimated).
pub(crate) fn owned<T: Serialize + ?Sized>(v: &T) -> usize {
    let mut s = Sizer::default();
    // Sizing fails only where encoding would, and the entry's encoding came first: a
    // failure here leaves what was seen.
    _ = v.serialize(&mut s);
    s.heap
}

/// Heap bytes so far, and the inline bytes of what was serialized (a sequence's share is
/// its elements').
#[derive(Default)]
struct Sizer {
    heap: usize,
    inline: usize,
}

impl Sizer {
    fn string(&mut self, len: usize) {
        self.inline += 24;
        if len > 0 {
            self.heap += allocation(len);
        }
    }
}

#[derive(Debug)]
struct Never(String);

impl std::fmt::Display for Never {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Never {}

impl ser::Error for Never {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        Never(msg.to_string())
    }
}

/// A sequence or map being sized (`alloc`: its elements live in an allocation of their
/// own), or a tuple or struct (inline in its parent).
struct Compound<'a> {
    s: &'a mut Sizer,
    start: usize,
    alloc: bool,
}

impl Compound<'_> {
    fn element<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Never> {
        v.serialize(&mut *self.s)
    }

    fn end(self) -> Result<(), Never> {
        if self.alloc {
            let elements = self.s.inline - self.start;
            if elements > 0 {
                self.s.heap += allocation(elements);
            }
            // The vector's pointer, length and capacity.
            self.s.inline = self.start + 24;
        }
        Ok(())
    }
}

macro_rules! inline {
    ($($f:ident: $t:ty = $n:expr),* $(,)?) => {$(
        fn $f(self, _: $t) -> Result<(), Never> {
            self.inline += $n;
            Ok(())
        }
    )*};
}

impl<'a> ser::Serializer for &'a mut Sizer {
    type Ok = ();
    type Error = Never;
    type SerializeSeq = Compound<'a>;
    type SerializeTuple = Compound<'a>;
    type SerializeTupleStruct = Compound<'a>;
    type SerializeTupleVariant = Compound<'a>;
    type SerializeMap = Compound<'a>;
    type SerializeStruct = Compound<'a>;
    type SerializeStructVariant = Compound<'a>;

    inline! {
        serialize_bool: bool = 1, serialize_i8: i8 = 1, serialize_i16: i16 = 2,
        serialize_i32: i32 = 4, serialize_i64: i64 = 8, serialize_i128: i128 = 16,
        serialize_u8: u8 = 1, serialize_u16: u16 = 2, serialize_u32: u32 = 4,
        serialize_u64: u64 = 8, serialize_u128: u128 = 16, serialize_f32: f32 = 4,
        serialize_f64: f64 = 8, serialize_char: char = 4,
        serialize_unit_struct: &'static str = 0,
    }

    fn serialize_str(self, v: &str) -> Result<(), Never> {
        self.string(v.len());
        Ok(())
    }

    fn serialize_bytes(self, v: &[u8]) -> Result<(), Never> {
        self.string(v.len());
        Ok(())
    }

    fn serialize_none(self) -> Result<(), Never> {
        Ok(())
    }

    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> Result<(), Never> {
        v.serialize(self)
    }

    fn serialize_unit(self) -> Result<(), Never> {
        Ok(())
    }

    fn serialize_unit_variant(self, _: &'static str, _: u32, _: &'static str) -> Result<(), Never> {
        self.inline += 4;
        Ok(())
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        v: &T,
    ) -> Result<(), Never> {
        v.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        v: &T,
    ) -> Result<(), Never> {
        self.inline += 4;
        v.serialize(self)
    }

    fn serialize_seq(self, _: Option<usize>) -> Result<Compound<'a>, Never> {
        Ok(self.compound(true))
    }

    fn serialize_tuple(self, _: usize) -> Result<Compound<'a>, Never> {
        Ok(self.compound(false))
    }

    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Compound<'a>, Never> {
        Ok(self.compound(false))
    }

    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Compound<'a>, Never> {
        self.inline += 4;
        Ok(self.compound(false))
    }

    fn serialize_map(self, _: Option<usize>) -> Result<Compound<'a>, Never> {
        Ok(self.compound(true))
    }

    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Compound<'a>, Never> {
        Ok(self.compound(false))
    }

    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Compound<'a>, Never> {
        self.inline += 4;
        Ok(self.compound(false))
    }
}

impl Sizer {
    fn compound(&mut self, alloc: bool) -> Compound<'_> {
        let start = self.inline;
        Compound {
            s: self,
            start,
            alloc,
        }
    }
}

macro_rules! compound {
    ($($t:ident { $f:ident $(($name:ty))? } $(key $k:ident)?;)*) => {$(
        impl ser::$t for Compound<'_> {
            type Ok = ();
            type Error = Never;
            fn $f<T: Serialize + ?Sized>(&mut self, $(_: $name,)? v: &T) -> Result<(), Never> {
                self.element(v)
            }
            $(
                fn $k<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Never> {
                    self.element(v)
                }
            )?
            fn end(self) -> Result<(), Never> {
                Compound::end(self)
            }
        }
    )*};
}

compound! {
    SerializeSeq { serialize_element };
    SerializeTuple { serialize_element };
    SerializeTupleStruct { serialize_field };
    SerializeTupleVariant { serialize_field };
    SerializeMap { serialize_value } key serialize_key;
    SerializeStruct { serialize_field(&'static str) };
    SerializeStructVariant { serialize_field(&'static str) };
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::owned;

    /// One allocation per string, sequence or map, rounded as glibc does (at least 32 B).
    #[test]
    fn counts_each_allocation() {
        assert_eq!(owned(&7u64), 0);
        assert_eq!(owned(&(1u64, 2.5f64, true)), 0);
        assert_eq!(owned(&String::new()), 0);
        assert_eq!(owned(&"C0000001".to_string()), 32);
        assert_eq!(owned(&"x".repeat(40)), 48);
        assert_eq!(owned(&("C1".to_string(), "S2".to_string())), 64);
        // Ten f64 in one allocation: 80 bytes and a header.
        assert_eq!(owned(&vec![1.0f64; 10]), 96);
        // The vector's three strings (24 B each inline) and each string's own bytes.
        assert_eq!(owned(&vec!["a".to_string(); 3]), 80 + 3 * 32);
        let mut m = BTreeMap::new();
        m.insert(1u64, 2u64);
        m.insert(3, 4);
        assert_eq!(owned(&m), 48);
        assert_eq!(owned(&Some("abc".to_string())), 32);
        assert_eq!(owned(&None::<String>), 0);
    }
}

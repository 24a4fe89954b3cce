//! Compact JSON of plain values (numbers, strings, options, structs, sequences), byte for
//! byte what `serde_json` writes through [`Floats`](super::floats::Floats), with less work
//! per value: punctuation and field names are copied, and only numbers and strings go
//! through `serde_json`. Anything else (maps, enums, bytes, a failing value) is refused
//! with [`Unsupported`], and the caller writes that value with `serde_json` instead.

use std::fmt;

use serde::ser::{self, Impossible, Serialize, Serializer};

use super::floats::{INFINITY, NAN, NEG_INFINITY};

/// A value this writer does not write (the caller uses `serde_json`).
#[derive(Debug)]
pub(crate) struct Unsupported;

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a plain value")
    }
}

impl std::error::Error for Unsupported {}

impl ser::Error for Unsupported {
    fn custom<T: fmt::Display>(_: T) -> Self {
        Unsupported
    }
}

/// Appends `value`'s JSON to `out`; on [`Unsupported`] `out` may hold part of it.
pub(crate) fn write<T: Serialize + ?Sized>(
    out: &mut Vec<u8>,
    value: &T,
) -> Result<(), Unsupported> {
    value.serialize(Compact(out))
}

/// `"name":`. Inlined where a derived `Serialize` passes the name as a constant, the
/// escape check folds away and the name is copied without a `memcpy` call.
#[inline(always)]
fn write_name(out: &mut Vec<u8>, name: &str) {
    if name.bytes().any(|c| ESCAPED[c as usize]) {
        return write_escaped_name(out, name);
    }
    out.reserve(name.len() + 3);
    out.push(b'"');
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":");
}

/// `"name":` for a name JSON escapes.
#[cold]
#[inline(never)]
fn write_escaped_name(out: &mut Vec<u8>, name: &str) {
    // Writing a string into a `Vec` does not fail.
    _ = json(out).serialize_str(name);
    out.push(b':');
}

struct Compact<'a>(&'a mut Vec<u8>);

/// A sequence or struct being written: `first` until its first element; `close` is
/// `None` when it was said to be empty and closed at once (as `serde_json` does).
pub(crate) struct Seq<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
    close: Option<u8>,
}

impl<'a> Seq<'a> {
    #[inline(always)]
    fn open(out: &'a mut Vec<u8>, len: Option<usize>, brackets: &[u8; 2]) -> Self {
        if len == Some(0) {
            out.extend_from_slice(brackets);
            return Seq {
                out,
                first: false,
                close: None,
            };
        }
        out.push(brackets[0]);
        Seq {
            out,
            first: true,
            close: Some(brackets[1]),
        }
    }
}

fn json(out: &mut Vec<u8>) -> serde_json::Serializer<&mut Vec<u8>> {
    serde_json::Serializer::new(out)
}

macro_rules! by_serde_json {
    ($($method:ident($t:ty)),*) => {$(
        fn $method(self, v: $t) -> Result<(), Unsupported> {
            json(self.0).$method(v).map_err(|_| Unsupported)
        }
    )*};
}

/// Integers as `serde_json` writes them (its `itoa` digits), without its `io::Write` path.
macro_rules! by_itoa {
    ($($method:ident($t:ty)),*) => {$(
        #[inline]
        fn $method(self, v: $t) -> Result<(), Unsupported> {
            self.0.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
            Ok(())
        }
    )*};
}

macro_rules! unsupported {
    ($($method:ident($($arg:ty),*) -> $ret:ty),*) => {$(
        fn $method(self, $(_: $arg),*) -> Result<$ret, Unsupported> {
            Err(Unsupported)
        }
    )*};
}

impl<'a> Serializer for Compact<'a> {
    type Ok = ();
    type Error = Unsupported;
    type SerializeSeq = Seq<'a>;
    type SerializeTuple = Seq<'a>;
    type SerializeTupleStruct = Seq<'a>;
    type SerializeTupleVariant = Impossible<(), Unsupported>;
    type SerializeMap = Impossible<(), Unsupported>;
    type SerializeStruct = Seq<'a>;
    type SerializeStructVariant = Impossible<(), Unsupported>;

    by_serde_json!(
        serialize_bool(bool),
        serialize_char(char),
        serialize_str(&str)
    );
    by_itoa!(
        serialize_i8(i8),
        serialize_i16(i16),
        serialize_i32(i32),
        serialize_i64(i64),
        serialize_i128(i128),
        serialize_u8(u8),
        serialize_u16(u16),
        serialize_u32(u32),
        serialize_u64(u64),
        serialize_u128(u128)
    );

    fn serialize_f32(self, v: f32) -> Result<(), Unsupported> {
        if v.is_finite() {
            return json(self.0).serialize_f32(v).map_err(|_| Unsupported);
        }
        self.serialize_str(non_finite_name(v as f64))
    }
    #[inline]
    fn serialize_f64(self, v: f64) -> Result<(), Unsupported> {
        // A finite float: `serde_json`'s own digits (`zmij`'s shortest round trip).
        if v.is_finite() {
            let mut digits = zmij::Buffer::new();
            self.0.extend_from_slice(digits.format_finite(v).as_bytes());
            return Ok(());
        }
        self.serialize_str(non_finite_name(v))
    }
    fn serialize_none(self) -> Result<(), Unsupported> {
        self.serialize_unit()
    }
    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> Result<(), Unsupported> {
        v.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Unsupported> {
        self.0.extend_from_slice(b"null");
        Ok(())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Unsupported> {
        self.serialize_unit()
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        v: &T,
    ) -> Result<(), Unsupported> {
        v.serialize(self)
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<Seq<'a>, Unsupported> {
        Ok(Seq::open(self.0, len, b"[]"))
    }
    fn serialize_tuple(self, len: usize) -> Result<Seq<'a>, Unsupported> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(self, _: &'static str, len: usize) -> Result<Seq<'a>, Unsupported> {
        self.serialize_seq(Some(len))
    }
    #[inline(always)]
    fn serialize_struct(self, name: &'static str, len: usize) -> Result<Seq<'a>, Unsupported> {
        // `serde_json` gives some struct names a meaning of its own (raw values).
        if name.starts_with("$serde_json") {
            return Err(Unsupported);
        }
        Ok(Seq::open(self.0, Some(len), b"{}"))
    }

    unsupported!(
        serialize_bytes(&[u8]) -> (),
        serialize_unit_variant(&'static str, u32, &'static str) -> (),
        serialize_tuple_variant(&'static str, u32, &'static str, usize) -> Self::SerializeTupleVariant,
        serialize_map(Option<usize>) -> Self::SerializeMap,
        serialize_struct_variant(&'static str, u32, &'static str, usize) -> Self::SerializeStructVariant
    );

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), Unsupported> {
        Err(Unsupported)
    }

    fn is_human_readable(&self) -> bool {
        true
    }
}

/// The bytes JSON escapes in a string: control characters, `"` and `\`.
static ESCAPED: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

/// How a float that is not finite is written.
fn non_finite_name(v: f64) -> &'static str {
    if v.is_nan() {
        NAN
    } else if v > 0.0 {
        INFINITY
    } else {
        NEG_INFINITY
    }
}

impl Seq<'_> {
    #[inline(always)]
    fn comma(&mut self) {
        if self.first {
            self.first = false;
        } else {
            self.out.push(b',');
        }
    }

    #[inline]
    fn element<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Unsupported> {
        self.comma();
        v.serialize(Compact(self.out))
    }

    #[inline(always)]
    fn end(self) -> Result<(), Unsupported> {
        if let Some(c) = self.close {
            self.out.push(c);
        }
        Ok(())
    }
}

impl ser::SerializeSeq for Seq<'_> {
    type Ok = ();
    type Error = Unsupported;
    #[inline]
    fn serialize_element<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Unsupported> {
        self.element(v)
    }
    #[inline]
    fn end(self) -> Result<(), Unsupported> {
        Seq::end(self)
    }
}

impl ser::SerializeTuple for Seq<'_> {
    type Ok = ();
    type Error = Unsupported;
    #[inline]
    fn serialize_element<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Unsupported> {
        self.element(v)
    }
    #[inline]
    fn end(self) -> Result<(), Unsupported> {
        Seq::end(self)
    }
}

impl ser::SerializeTupleStruct for Seq<'_> {
    type Ok = ();
    type Error = Unsupported;
    #[inline]
    fn serialize_field<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Unsupported> {
        self.element(v)
    }
    #[inline]
    fn end(self) -> Result<(), Unsupported> {
        Seq::end(self)
    }
}

impl ser::SerializeStruct for Seq<'_> {
    type Ok = ();
    type Error = Unsupported;
    // Always, so that a derived `Serialize`'s constant field name reaches `write_name`.
    #[inline(always)]
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        v: &T,
    ) -> Result<(), Unsupported> {
        self.comma();
        write_name(self.out, key);
        v.serialize(Compact(self.out))
    }
    #[inline]
    fn end(self) -> Result<(), Unsupported> {
        Seq::end(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    #[derive(serde::Serialize)]
    struct Plain {
        count: u64,
        #[serde(rename = "a\"b")]
        amount: f64,
        min: Option<f32>,
        last: Option<String>,
        pair: (i64, char),
        ints: (i8, i16, i32, u16, u32, i128, u128),
        items: Vec<u8>,
        unit: (),
        skipped: Skip,
    }

    #[derive(serde::Serialize)]
    struct Skip {
        #[serde(skip_serializing_if = "Option::is_none")]
        maybe: Option<u8>,
        always: bool,
    }

    fn serde_json_bytes<T: Serialize>(v: &T) -> Vec<u8> {
        let mut want = Vec::new();
        crate::codec::to_json_writer(&mut want, v).unwrap();
        want
    }

    proptest! {
        #[test]
        fn same_bytes_as_serde_json(
            count in any::<u64>(),
            amount in prop_oneof![any::<f64>(), Just(f64::NAN), Just(f64::NEG_INFINITY), Just(-0.0)],
            min in proptest::option::of(any::<f32>()),
            last in proptest::option::of("[\\x00-\\x7f\u{e9}\u{10348}]{0,12}"),
            pair in (any::<i64>(), any::<char>()),
            ints in (any::<i8>(), any::<i16>(), any::<i32>(), any::<u16>(), any::<u32>(), any::<i128>(), any::<u128>()),
            items in prop::collection::vec(any::<u8>(), 0..4),
            maybe in proptest::option::of(any::<u8>()),
        ) {
            let v = Plain { count, amount, min, last, pair, ints, items, unit: (), skipped: Skip { maybe, always: true } };
            let mut got = Vec::new();
            write(&mut got, &v).unwrap();
            prop_assert_eq!(&got, &serde_json_bytes(&v));
        }
    }

    #[test]
    fn maps_and_enums_are_left_to_serde_json() {
        let m: BTreeMap<u8, u8> = [(1, 2)].into();
        assert!(write(&mut Vec::new(), &m).is_err());
        assert!(write(&mut Vec::new(), &Some(Ok::<u8, u8>(1))).is_err());
        assert!(
            write(&mut Vec::new(), &b"x".as_slice()).is_ok(),
            "a slice is a sequence"
        );
    }
}

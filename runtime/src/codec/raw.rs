//! JSON text that a value has already written, handed to the checkpoint's serializer as
//! is. Only while [`write`](super::write) encodes JSON is the serializer known to be
//! `serde_json`'s (which copies such text through); a value asks [`allowed`] first and
//! serializes itself the ordinary way otherwise.

use std::cell::Cell;

use serde::ser::{Serialize, SerializeStruct, Serializer};

thread_local! {
    static ALLOWED: Cell<bool> = const { Cell::new(false) };
}

/// The name `serde_json` gives its raw values (`serde_json::value::RawValue`, feature
/// `raw_value`): a struct of this name with one field of this name, a string, is written
/// as the string's text. A test checks that it still is.
const TOKEN: &str = "$serde_json::private::RawValue";

/// True while the value being serialized goes to [`write`](super::write)'s compact
/// `serde_json` serializer, so a [`Raw`] is copied into the output.
pub(crate) fn allowed() -> bool {
    ALLOWED.with(Cell::get)
}

/// Runs `f` with [`Raw`] values allowed (and restores the previous state, even on panic).
pub(crate) fn allowing<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            ALLOWED.with(|a| a.set(self.0));
        }
    }
    let _restore = Restore(ALLOWED.with(|a| a.replace(true)));
    f()
}

/// Compact JSON text, serialized as itself (only where [`allowed`] says so).
pub(crate) struct Raw<'a>(pub(crate) &'a str);

impl Serialize for Raw<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct(TOKEN, 1)?;
        st.serialize_field(TOKEN, self.0)?;
        st.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_json_copies_the_text_through_the_float_wrapper() {
        let text = r#"{"a":[1,2.5],"b":"NaN"}"#;
        let mut out = Vec::new();
        allowing(|| super::super::write(crate::Codec::Json, &Raw(text), &mut out)).unwrap();
        assert_eq!(out, text.as_bytes());
        // The same as serde_json's own raw value.
        let own = serde_json::value::RawValue::from_string(text.to_string()).unwrap();
        assert_eq!(serde_json::to_string(&own).unwrap(), text);
    }

    #[test]
    fn allowed_only_inside_allowing() {
        assert!(!allowed());
        allowing(|| {
            assert!(allowed());
            allowing(|| assert!(allowed()));
            assert!(allowed(), "a nested call leaves it allowed");
        });
        assert!(!allowed());
        let r = std::panic::catch_unwind(|| allowing(|| panic!("in a value")));
        assert!(r.is_err());
        assert!(!allowed(), "restored after a panic");
    }
}

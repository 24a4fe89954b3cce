//! JSON text that a value writes itself, straight into the checkpoint's output. Only
//! while [`write`](super::write) encodes JSON is the serializer known to be `serde_json`'s
//! with [`Formatter`] (which writes such text in place); a value asks [`allowed`] first
//! and serializes itself the ordinary way otherwise.

use std::cell::{Cell, RefCell};
use std::io;

use serde::ser::{Error as _, SerializeStruct, Serializer};

thread_local! {
    static ALLOWED: Cell<bool> = const { Cell::new(false) };
    /// The text [`serialize`] hands to [`Formatter`].
    static PENDING: RefCell<Option<Box<dyn Text>>> = const { RefCell::new(None) };
}

/// The name `serde_json` gives its raw values (`serde_json::value::RawValue`, feature
/// `raw_value`): a struct of this name with one field of this name, a string, is written
/// by the formatter's `write_raw_fragment`. A test checks that it still is.
const TOKEN: &str = "$serde_json::private::RawValue";

/// Compact JSON text of one value, written by the value itself.
pub(crate) trait Text: 'static {
    /// Writes the text to `out`.
    fn write_to(&self, out: &mut dyn io::Write) -> io::Result<()>;
}

/// True while the value being serialized goes to [`write`](super::write)'s `serde_json`
/// serializer with [`Formatter`], so [`serialize`] writes its text in place.
pub(crate) fn allowed() -> bool {
    ALLOWED.with(Cell::get)
}

/// Runs `f` with raw text allowed (and restores the previous state, even on panic).
pub(crate) fn allowing<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            ALLOWED.with(|a| a.set(self.0));
            // A text whose value failed half-way is not written later by someone else.
            PENDING.with(|p| p.borrow_mut().take());
        }
    }
    let _restore = Restore(ALLOWED.with(|a| a.replace(true)));
    f()
}

/// Serializes `text` as itself (only where [`allowed`] says so): a raw value of no text,
/// in whose place [`Formatter`] writes `text`. Fails, having written nothing, if the
/// serializer is not one with [`Formatter`].
pub(crate) fn serialize<S: Serializer>(text: impl Text, s: S) -> Result<S::Ok, S::Error> {
    PENDING.with(|p| *p.borrow_mut() = Some(Box::new(text)));
    let mut st = s.serialize_struct(TOKEN, 1)?;
    st.serialize_field(TOKEN, "")?;
    if PENDING.with(|p| p.borrow_mut().take()).is_some() {
        return Err(S::Error::custom(
            "raw JSON text given to another serializer",
        ));
    }
    st.end()
}

/// `serde_json`'s compact formatter (every method its default), which writes the text
/// [`serialize`] left where a raw value of no text is (`serde_json`'s own raw values are
/// never empty: they hold valid JSON).
pub(crate) struct Formatter;

impl serde_json::ser::Formatter for Formatter {
    fn write_raw_fragment<W: ?Sized + io::Write>(
        &mut self,
        mut writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        if fragment.is_empty() {
            if let Some(text) = PENDING.with(|p| p.borrow_mut().take()) {
                return text.write_to(&mut writer);
            }
        }
        writer.write_all(fragment.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Serialize;

    struct Fixed(&'static str);

    impl Text for Fixed {
        fn write_to(&self, out: &mut dyn io::Write) -> io::Result<()> {
            out.write_all(self.0.as_bytes())
        }
    }

    impl Serialize for Fixed {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            serialize(Fixed(self.0), s)
        }
    }

    #[test]
    fn the_text_is_written_in_place_through_the_float_wrapper() {
        let text = r#"{"a":[1,2.5],"b":"NaN"}"#;
        let mut out = Vec::new();
        let v = (1, Fixed(text), [Fixed("2")]);
        allowing(|| super::super::write(crate::Codec::Json, &v, &mut out)).unwrap();
        assert_eq!(out, format!("[1,{text},[2]]").as_bytes());
        // serde_json's own raw value goes through the same formatter method.
        let own = serde_json::value::RawValue::from_string(text.to_string()).unwrap();
        assert_eq!(serde_json::to_string(&own).unwrap(), text);
    }

    #[test]
    fn another_serializer_gets_an_error_not_an_empty_value() {
        let e = serde_json::to_string(&Fixed("1")).unwrap_err();
        assert!(e.to_string().contains("another serializer"), "{e}");
        assert!(PENDING.with(|p| p.borrow().is_none()));
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

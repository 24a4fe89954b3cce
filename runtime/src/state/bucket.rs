//! A [`KeyedState`](super::KeyedState) table's entry, and the alignment it is given.
//!
//! hashbrown aligns a table to its entries' alignment (16 at least) and lays the entries
//! out back from there, and glibc puts a large block at a page + 16 bytes: a 32-byte entry
//! aligned to 8 then crosses a cache line every other time (a 64-byte one always), so a
//! lookup touches one line more than it needs. Aligned to its size it crosses none.
//! Stable Rust cannot align a generic type by its size, so the alignment is a type
//! parameter, chosen where the types are concrete: `pipeline!` writes
//! `Aligned<{ line_align::<K, V>() }>`.
//!
//! ```
//! use simplestream_runtime::state::{line_align, Aligned, Line32};
//! use simplestream_runtime::KeyedState;
//! // Key 8 bytes, value 16, change stamp 8: 32 bytes, aligned to 32.
//! assert_eq!(line_align::<u64, (u64, f64)>(), 32);
//! let mut s: KeyedState<u64, (u64, f64), Aligned<{ line_align::<u64, (u64, f64)>() }>> =
//!     KeyedState::default();
//! s.entry_ref(&7).0 += 1;
//! assert_eq!(s.get(&7), Some(&(1, 0.0)));
//! // A `String` key makes 48 bytes: aligned to 32 it would grow to 64, so it is not.
//! assert_eq!(line_align::<String, (u64, f64)>(), 0);
//! # let _: Line32 = Line32;
//! ```

use std::fmt;

/// One entry: the key, its value, and the change count at the value's last change, side
/// by side so that stamping a change is a store into the line in hand. `_align` gives it
/// `B`'s alignment without adding a byte.
pub(crate) struct Entry<K, V, B> {
    pub(crate) key: K,
    pub(crate) value: V,
    pub(crate) changed: u64,
    _align: [B; 0],
}

impl<K, V, B> Entry<K, V, B> {
    #[inline(always)]
    pub(crate) fn new(key: K, value: V, changed: u64) -> Self {
        Entry {
            key,
            value,
            changed,
            _align: [],
        }
    }
}

impl<K: Clone, V: Clone, B> Clone for Entry<K, V, B> {
    fn clone(&self) -> Self {
        Entry::new(self.key.clone(), self.value.clone(), self.changed)
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Natural {}
    impl Sealed for super::Line32 {}
    impl Sealed for super::Line64 {}
}

/// The alignment of a table's entries: [`Natural`], [`Line32`] or [`Line64`]. It changes
/// only where entries sit in memory, never what a checkpoint holds.
pub trait Align:
    sealed::Sealed + Clone + Copy + Default + fmt::Debug + PartialEq + Send + Sync + 'static
{
}

/// Entries aligned as their fields are (the default).
#[derive(Clone, Copy, Default, Debug, PartialEq)]
pub struct Natural;

/// Entries aligned to 32 bytes: for 32-byte entries.
#[derive(Clone, Copy, Default, Debug, PartialEq)]
#[repr(align(32))]
pub struct Line32;

/// Entries aligned to 64 bytes: for 64-byte entries.
#[derive(Clone, Copy, Default, Debug, PartialEq)]
#[repr(align(64))]
pub struct Line64;

impl Align for Natural {}
impl Align for Line32 {}
impl Align for Line64 {}

/// The alignment that keeps every entry of key `K` and value `V` within one cache line (or
/// exactly one line): the entry's size if that is 32 or 64 bytes, else 0 (natural; a
/// larger alignment would grow the entry). The argument of [`Aligned`].
pub const fn line_align<K, V>() -> usize {
    match std::mem::size_of::<Entry<K, V, Natural>>() {
        32 => 32,
        64 => 64,
        _ => 0,
    }
}

/// The [`Align`] for an answer of [`line_align`]: `Aligned<0>` is [`Natural`],
/// `Aligned<32>` is [`Line32`], `Aligned<64>` is [`Line64`].
pub type Aligned<const N: usize> = <AlignTo<N> as PickAlign>::Align;

/// A byte alignment as a type, to pick an [`Align`] with [`PickAlign`].
pub struct AlignTo<const N: usize>;

/// Maps an [`AlignTo`] to its [`Align`].
pub trait PickAlign {
    /// The alignment.
    type Align: Align;
}

impl PickAlign for AlignTo<0> {
    type Align = Natural;
}

impl PickAlign for AlignTo<32> {
    type Align = Line32;
}

impl PickAlign for AlignTo<64> {
    type Align = Line64;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{align_of, size_of};

    #[test]
    fn aligned_entries_keep_their_size() {
        type Two = (u64, f64);
        assert_eq!(size_of::<Entry<u64, Two, Natural>>(), 32);
        assert_eq!(size_of::<Entry<u64, Two, Aligned<32>>>(), 32);
        assert_eq!(align_of::<Entry<u64, Two, Aligned<32>>>(), 32);
        assert_eq!(line_align::<u64, [u64; 6]>(), 64);
        assert_eq!(size_of::<Entry<u64, [u64; 6], Aligned<64>>>(), 64);
        assert_eq!(align_of::<Entry<u64, [u64; 6], Aligned<64>>>(), 64);
        // 40 and 48 bytes: not a line's divisor, left natural.
        assert_eq!(line_align::<String, u64>(), 0);
        assert_eq!(line_align::<String, Two>(), 0);
        assert_eq!(size_of::<Entry<u64, u64, Aligned<0>>>(), 24);
    }
}

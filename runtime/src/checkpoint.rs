//! The [`Checkpointable`] trait: state that can be written into a checkpoint and read back.

use serde::{de::DeserializeOwned, Serialize};

use crate::fingerprint::{combine, fnv1a};

/// State that a checkpoint can hold.
///
/// Serialization is serde's; what this trait adds is [`LAYOUT`](Checkpointable::LAYOUT),
/// a hash of the state's shape that is folded into the pipeline fingerprint, so that a
/// checkpoint written by a pipeline whose state had another shape is refused instead of
/// being misread.
///
/// Implement it with `#[derive(Checkpointable)]` (from the `simplestream` crate) next to
/// serde's derives:
///
/// ```
/// use simplestream_runtime::Checkpointable;
/// #[derive(serde::Serialize, serde::Deserialize, Default, Clone)]
/// struct TopAmount { best: f64, seen: u64 }
/// impl Checkpointable for TopAmount {
///     const LAYOUT: u64 = simplestream_runtime::fingerprint::fnv1a("TopAmount{best:f64,seen:u64}");
/// }
/// assert_ne!(TopAmount::LAYOUT, f64::LAYOUT);
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be stored in a checkpoint",
    label = "state type without a `Checkpointable` impl",
    note = "add `#[derive(serde::Serialize, serde::Deserialize, simplestream::Checkpointable)]` to the type"
)]
pub trait Checkpointable: Serialize + DeserializeOwned {
    /// Hash of the state's shape (field names and types).
    const LAYOUT: u64;
}

macro_rules! leaf {
    ($($t:ty),*) => {$(
        impl Checkpointable for $t { const LAYOUT: u64 = fnv1a(stringify!($t)); }
    )*};
}
leaf!(
    u8,
    u16,
    u32,
    u64,
    u128,
    usize,
    i8,
    i16,
    i32,
    i64,
    i128,
    isize,
    f32,
    f64,
    bool,
    char,
    String,
    ()
);

impl<T: Checkpointable> Checkpointable for Option<T> {
    const LAYOUT: u64 = combine(fnv1a("Option"), T::LAYOUT);
}
impl<T: Checkpointable> Checkpointable for Vec<T> {
    const LAYOUT: u64 = combine(fnv1a("Vec"), T::LAYOUT);
}
impl<T: Checkpointable + Ord> Checkpointable for std::collections::BTreeSet<T> {
    const LAYOUT: u64 = combine(fnv1a("BTreeSet"), T::LAYOUT);
}
impl<K: Checkpointable + Ord, V: Checkpointable> Checkpointable
    for std::collections::BTreeMap<K, V>
{
    const LAYOUT: u64 = combine(combine(fnv1a("BTreeMap"), K::LAYOUT), V::LAYOUT);
}
impl<A: Checkpointable, B: Checkpointable> Checkpointable for (A, B) {
    const LAYOUT: u64 = combine(combine(fnv1a("(,)"), A::LAYOUT), B::LAYOUT);
}
impl<A: Checkpointable, B: Checkpointable, C: Checkpointable> Checkpointable for (A, B, C) {
    const LAYOUT: u64 = combine(
        combine(combine(fnv1a("(,,)"), A::LAYOUT), B::LAYOUT),
        C::LAYOUT,
    );
}

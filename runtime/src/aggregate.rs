//! Aggregates: `count`, `sum`, `min`, `max`, `avg`, and your own through [`Aggregate`].
//!
//! An aggregate is a type (usually zero-sized) that folds input values into an
//! accumulator. Only the accumulator is state; it is what a checkpoint holds.

use std::marker::PhantomData;

use serde::{Deserialize, Serialize};

use crate::checkpoint::Checkpointable;

/// A fold over values: the building block of `aggregate(...)` in `pipeline!`.
///
/// A user-defined aggregate (used as `custom(MyAgg, |e| value)` in the DSL):
///
/// ```
/// use simplestream_runtime::aggregate::Aggregate;
/// /// The largest amount seen, and how many times it was seen.
/// #[derive(Default)]
/// struct MaxWithCount;
/// impl Aggregate for MaxWithCount {
///     type Input = i64;
///     type Acc = (i64, u64);
///     type Output = (i64, u64);
///     fn add(&self, acc: &mut (i64, u64), v: i64) {
///         if acc.1 == 0 || v > acc.0 { *acc = (v, 1) } else if v == acc.0 { acc.1 += 1 }
///     }
///     fn merge(&self, acc: &mut (i64, u64), o: &(i64, u64)) {
///         if o.1 > 0 && (acc.1 == 0 || o.0 > acc.0) { *acc = *o } else if o.1 > 0 && o.0 == acc.0 { acc.1 += o.1 }
///     }
///     fn output(&self, acc: &(i64, u64)) -> (i64, u64) { *acc }
/// }
/// let mut acc = Default::default();
/// for v in [3, 7, 7, 1] { MaxWithCount.add(&mut acc, v) }
/// assert_eq!(MaxWithCount.output(&acc), (7, 2));
/// ```
pub trait Aggregate: Default {
    /// What each event contributes.
    type Input;
    /// The running state; this is what checkpoints store.
    type Acc: Default + Clone + Checkpointable;
    /// What the aggregate reports.
    type Output;
    /// Folds one value in.
    fn add(&self, acc: &mut Self::Acc, value: Self::Input);
    /// Folds another accumulator in (session windows merge sessions).
    fn merge(&self, acc: &mut Self::Acc, other: &Self::Acc);
    /// The current result.
    fn output(&self, acc: &Self::Acc) -> Self::Output;
    /// True when the result cannot depend on the order of the `add` calls: the same
    /// values in any order give an identical accumulator (integer sums and counts do;
    /// float sums do not, as rounding depends on the order; neither does a `max` whose
    /// ties between equal but different values go to the first).
    ///
    /// A pipeline whose windowed stage feeds only windowed aggregates that all say true
    /// hands them a closed window's rows unsorted, saving a sort per window; output and
    /// checkpoints stay the same. Leave it `false` unless you are sure.
    const ORDER_INSENSITIVE: bool = false;
}

/// Numbers that `sum` and `avg` accept.
#[diagnostic::on_unimplemented(
    message = "`sum`/`avg` need a number, but the value is `{Self}`",
    label = "not a number",
    note = "numbers are the integer and float primitives; for other types write an aggregate with `custom(YourAggregate, |e| ...)`"
)]
pub trait Numeric: Copy + Default + PartialOrd + Checkpointable {
    /// `self + other`, wrapping on integer overflow rather than panicking mid-stream.
    fn add(self, other: Self) -> Self;
    /// The value as `f64`, for averages.
    fn to_f64(self) -> f64;
    /// True when `add` is exactly associative and commutative (integers, which wrap);
    /// false (the default) for floats, whose sums depend on the order.
    const EXACT: bool = false;
}

macro_rules! numeric_int {
    ($($t:ty),*) => {$(
        impl Numeric for $t {
            #[inline] fn add(self, o: Self) -> Self { self.wrapping_add(o) }
            #[inline] fn to_f64(self) -> f64 { self as f64 }
            const EXACT: bool = true;
        }
    )*};
}
numeric_int!(u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize);
impl Numeric for f32 {
    const EXACT: bool = false;
    #[inline]
    fn add(self, o: Self) -> Self {
        self + o
    }
    #[inline]
    fn to_f64(self) -> f64 {
        self as f64
    }
}
impl Numeric for f64 {
    const EXACT: bool = false;
    #[inline]
    fn add(self, o: Self) -> Self {
        self + o
    }
    #[inline]
    fn to_f64(self) -> f64 {
        self
    }
}

/// Values that `min` and `max` accept.
#[diagnostic::on_unimplemented(
    message = "`min`/`max` need an ordered value, but the value is `{Self}`",
    note = "the value must be `PartialOrd + Clone + Default` and storable in a checkpoint"
)]
pub trait Ordered: PartialOrd + Clone + Default + Checkpointable {}
impl<T: PartialOrd + Clone + Default + Checkpointable> Ordered for T {}

/// Number of events.
#[derive(Default, Clone, Copy, Debug)]
pub struct Count;
impl Aggregate for Count {
    type Input = ();
    type Acc = u64;
    type Output = u64;
    #[inline]
    fn add(&self, acc: &mut u64, _: ()) {
        *acc += 1;
    }
    fn merge(&self, acc: &mut u64, o: &u64) {
        *acc += *o;
    }
    #[inline]
    fn output(&self, acc: &u64) -> u64 {
        *acc
    }
    const ORDER_INSENSITIVE: bool = true;
}

/// Sum of values.
#[derive(Debug)]
pub struct Sum<T>(PhantomData<T>);
impl<T> Default for Sum<T> {
    fn default() -> Self {
        Sum(PhantomData)
    }
}
impl<T: Numeric> Aggregate for Sum<T> {
    type Input = T;
    type Acc = T;
    type Output = T;
    #[inline]
    fn add(&self, acc: &mut T, v: T) {
        *acc = acc.add(v);
    }
    fn merge(&self, acc: &mut T, o: &T) {
        *acc = acc.add(*o);
    }
    #[inline]
    fn output(&self, acc: &T) -> T {
        *acc
    }
    const ORDER_INSENSITIVE: bool = T::EXACT;
}

/// Smallest value.
#[derive(Debug)]
pub struct Min<T>(PhantomData<T>);
impl<T> Default for Min<T> {
    fn default() -> Self {
        Min(PhantomData)
    }
}
impl<T: Ordered> Aggregate for Min<T> {
    type Input = T;
    type Acc = Option<T>;
    type Output = T;
    #[inline]
    fn add(&self, acc: &mut Option<T>, v: T) {
        if acc.as_ref().is_none_or(|a| v < *a) {
            *acc = Some(v);
        }
    }
    fn merge(&self, acc: &mut Option<T>, o: &Option<T>) {
        if let Some(v) = o {
            self.add(acc, v.clone())
        }
    }
    fn output(&self, acc: &Option<T>) -> T {
        acc.clone().unwrap_or_default()
    }
}

/// Largest value.
#[derive(Debug)]
pub struct Max<T>(PhantomData<T>);
impl<T> Default for Max<T> {
    fn default() -> Self {
        Max(PhantomData)
    }
}
impl<T: Ordered> Aggregate for Max<T> {
    type Input = T;
    type Acc = Option<T>;
    type Output = T;
    #[inline]
    fn add(&self, acc: &mut Option<T>, v: T) {
        if acc.as_ref().is_none_or(|a| v > *a) {
            *acc = Some(v);
        }
    }
    fn merge(&self, acc: &mut Option<T>, o: &Option<T>) {
        if let Some(v) = o {
            self.add(acc, v.clone())
        }
    }
    fn output(&self, acc: &Option<T>) -> T {
        acc.clone().unwrap_or_default()
    }
}

/// Running state of [`Avg`].
#[derive(Default, Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct AvgAcc {
    /// Sum of the values.
    pub sum: f64,
    /// Number of values.
    pub count: u64,
}
impl Checkpointable for AvgAcc {
    const LAYOUT: u64 = crate::fingerprint::fnv1a("AvgAcc{sum:f64,count:u64}");
}

/// Arithmetic mean, as `f64`.
#[derive(Debug)]
pub struct Avg<T>(PhantomData<T>);
impl<T> Default for Avg<T> {
    fn default() -> Self {
        Avg(PhantomData)
    }
}
impl<T: Numeric> Aggregate for Avg<T> {
    type Input = T;
    type Acc = AvgAcc;
    type Output = f64;
    #[inline]
    fn add(&self, acc: &mut AvgAcc, v: T) {
        acc.sum += v.to_f64();
        acc.count += 1;
    }
    fn merge(&self, acc: &mut AvgAcc, o: &AvgAcc) {
        acc.sum += o.sum;
        acc.count += o.count;
    }
    fn output(&self, acc: &AvgAcc) -> f64 {
        if acc.count == 0 {
            0.0
        } else {
            acc.sum / acc.count as f64
        }
    }
}

/// An accumulator made of several aggregates' accumulators (what `aggregate(a = .., b = ..)`
/// generates); session windows merge them.
pub trait Accumulator: Default + Clone + Checkpointable {
    /// Folds `other` into `self`.
    fn merge(&mut self, other: &Self);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_exact_aggregates_say_they_ignore_order() {
        const { assert!(Count::ORDER_INSENSITIVE) };
        const { assert!(<Sum<u64>>::ORDER_INSENSITIVE && <Sum<i32>>::ORDER_INSENSITIVE) };
        // Float sums round differently in another order.
        const { assert!(!<Sum<f64>>::ORDER_INSENSITIVE && !<Avg<u64>>::ORDER_INSENSITIVE) };
        // Equal but different values (0.0 and -0.0): the first one wins.
        const { assert!(!<Max<f64>>::ORDER_INSENSITIVE && !<Min<String>>::ORDER_INSENSITIVE) };
        let (mut a, mut b) = (0.0f64, 0.0f64);
        for v in [1e16, 1.0, -1e16] {
            Sum::<f64>::default().add(&mut a, v);
        }
        for v in [1e16, -1e16, 1.0] {
            Sum::<f64>::default().add(&mut b, v);
        }
        assert_ne!(a, b, "why float sums are order-sensitive");
    }
}

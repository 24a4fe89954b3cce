//! Accumulators of the SQL interpreter: one [`Cell`] per aggregate column, each folded
//! by the runtime's own aggregates ([`Count`], [`Sum`], [`Min`], [`Max`], [`Avg`]).

use serde::{Deserialize, Serialize};

use super::value::{Ty, Val};
use crate::aggregate::{self, Accumulator, Avg, AvgAcc, Count, Max, Min, Sum};
use crate::checkpoint::Checkpointable;

pub use simplestream_sqlplan::Func;

/// One aggregate column: its function, the input column it reads, and that column's type.
#[derive(Debug, Clone, PartialEq)]
pub struct AggSpec {
    /// Output column name.
    pub name: &'static str,
    /// The function.
    pub func: Func,
    /// The input column (none for `COUNT(*)`).
    pub col: Option<usize>,
    /// The input column's type (`Int` for counts).
    pub ty: Ty,
}

impl AggSpec {
    /// The type of the output column.
    pub fn out_ty(&self) -> Ty {
        match self.func {
            Func::Count => Ty::Int,
            Func::Avg => Ty::Float,
            _ => self.ty,
        }
    }

    fn empty(&self) -> Cell {
        match (self.func, self.ty) {
            (Func::Count, _) => Cell::Count(0),
            (Func::Sum, Ty::Int) => Cell::SumInt(0),
            (Func::Sum, _) => Cell::SumFloat(0.0),
            (Func::Min, Ty::Int) => Cell::MinInt(None),
            (Func::Min, Ty::Str) => Cell::MinStr(None),
            (Func::Min, _) => Cell::MinFloat(None),
            (Func::Max, Ty::Int) => Cell::MaxInt(None),
            (Func::Max, Ty::Str) => Cell::MaxStr(None),
            (Func::Max, _) => Cell::MaxFloat(None),
            (Func::Avg, _) => Cell::Avg(AvgAcc::default()),
        }
    }
}

/// The running state of one aggregate column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum Cell {
    Count(u64),
    SumInt(i64),
    SumFloat(f64),
    MinInt(Option<i64>),
    MinFloat(Option<f64>),
    MinStr(Option<String>),
    MaxInt(Option<i64>),
    MaxFloat(Option<f64>),
    MaxStr(Option<String>),
    Avg(AvgAcc),
}

impl Cell {
    #[inline]
    fn add(&mut self, v: &Val) {
        match (self, v) {
            (Cell::Count(a), _) => aggregate::add::<Count>(a, ()),
            (Cell::SumInt(a), Val::Int(v)) => aggregate::add::<Sum<i64>>(a, *v),
            (Cell::SumFloat(a), Val::Float(v)) => aggregate::add::<Sum<f64>>(a, *v),
            (Cell::MinInt(a), Val::Int(v)) => aggregate::add::<Min<i64>>(a, *v),
            (Cell::MinFloat(a), Val::Float(v)) => aggregate::add::<Min<f64>>(a, *v),
            (Cell::MinStr(a), Val::Str(v)) => aggregate::add::<Min<String>>(a, v.clone()),
            (Cell::MaxInt(a), Val::Int(v)) => aggregate::add::<Max<i64>>(a, *v),
            (Cell::MaxFloat(a), Val::Float(v)) => aggregate::add::<Max<f64>>(a, *v),
            (Cell::MaxStr(a), Val::Str(v)) => aggregate::add::<Max<String>>(a, v.clone()),
            (Cell::Avg(a), Val::Int(v)) => aggregate::add::<Avg<i64>>(a, *v),
            (Cell::Avg(a), Val::Float(v)) => aggregate::add::<Avg<f64>>(a, *v),
            // Rows are typed by the schema the plan gave these cells: nothing else arrives.
            _ => {}
        }
    }

    fn merge(&mut self, o: &Cell) {
        match (self, o) {
            (Cell::Count(a), Cell::Count(b)) => aggregate::merge::<Count>(a, b),
            (Cell::SumInt(a), Cell::SumInt(b)) => aggregate::merge::<Sum<i64>>(a, b),
            (Cell::SumFloat(a), Cell::SumFloat(b)) => aggregate::merge::<Sum<f64>>(a, b),
            (Cell::MinInt(a), Cell::MinInt(b)) => aggregate::merge::<Min<i64>>(a, b),
            (Cell::MinFloat(a), Cell::MinFloat(b)) => aggregate::merge::<Min<f64>>(a, b),
            (Cell::MinStr(a), Cell::MinStr(b)) => aggregate::merge::<Min<String>>(a, b),
            (Cell::MaxInt(a), Cell::MaxInt(b)) => aggregate::merge::<Max<i64>>(a, b),
            (Cell::MaxFloat(a), Cell::MaxFloat(b)) => aggregate::merge::<Max<f64>>(a, b),
            (Cell::MaxStr(a), Cell::MaxStr(b)) => aggregate::merge::<Max<String>>(a, b),
            (Cell::Avg(a), Cell::Avg(b)) => aggregate::merge::<Avg<f64>>(a, b),
            _ => {}
        }
    }

    fn output(&self) -> Val {
        match self {
            Cell::Count(a) => Val::Int(aggregate::output::<Count>(a) as i64),
            Cell::SumInt(a) => Val::Int(aggregate::output::<Sum<i64>>(a)),
            Cell::SumFloat(a) => Val::Float(aggregate::output::<Sum<f64>>(a)),
            Cell::MinInt(a) => Val::Int(aggregate::output::<Min<i64>>(a)),
            Cell::MinFloat(a) => Val::Float(aggregate::output::<Min<f64>>(a)),
            Cell::MinStr(a) => Val::Str(aggregate::output::<Min<String>>(a)),
            Cell::MaxInt(a) => Val::Int(aggregate::output::<Max<i64>>(a)),
            Cell::MaxFloat(a) => Val::Float(aggregate::output::<Max<f64>>(a)),
            Cell::MaxStr(a) => Val::Str(aggregate::output::<Max<String>>(a)),
            Cell::Avg(a) => Val::Float(aggregate::output::<Avg<f64>>(a)),
        }
    }
}

/// The accumulators of one group: a [`Cell`] per aggregate column. A new group's is
/// empty until its first event fills it from the stage's [`AggSpec`]s.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Accs(pub Vec<Cell>);

impl Checkpointable for Accs {
    const LAYOUT: u64 = crate::fingerprint::fnv1a("sql::Accs[Cell]");
}

impl Accumulator for Accs {
    fn merge(&mut self, other: &Self) {
        if self.0.is_empty() {
            self.0 = other.0.clone();
            return;
        }
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            a.merge(b);
        }
    }
}

impl Accs {
    /// Folds one event's values in.
    ///
    /// ```
    /// use simplestream_runtime::sql::{AggSpec, Accs, Func, Ty, Val};
    /// let specs = [
    ///     AggSpec { name: "n", func: Func::Count, col: None, ty: Ty::Int },
    ///     AggSpec { name: "total", func: Func::Sum, col: Some(0), ty: Ty::Float },
    /// ];
    /// let mut a = Accs::default();
    /// a.add(&specs, &[Val::Float(2.5)]);
    /// a.add(&specs, &[Val::Float(1.0)]);
    /// assert_eq!(a.outputs(), vec![Val::Int(2), Val::Float(3.5)]);
    /// ```
    #[inline]
    pub fn add(&mut self, specs: &[AggSpec], row: &[Val]) {
        if self.0.is_empty() {
            self.0 = specs.iter().map(AggSpec::empty).collect();
        }
        for (cell, spec) in self.0.iter_mut().zip(specs) {
            match spec.col {
                Some(i) => cell.add(&row[i]),
                None => cell.add(&Val::Null),
            }
        }
    }

    /// The current value of every column.
    pub fn outputs(&self) -> Vec<Val> {
        self.0.iter().map(Cell::output).collect()
    }
}

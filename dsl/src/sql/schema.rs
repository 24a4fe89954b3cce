//! The columns of what SQL reads: a source's fields (from `#[derive(Columns)]`) or the
//! columns of an earlier SQL view, with their Rust types.

use simplestream_sqlplan::Ident;
use syn::Type;

use crate::expand::plan_data::type_text;

/// A column and its Rust type.
#[derive(Clone)]
pub struct Column {
    /// Its name (a field name).
    pub name: String,
    /// Its type.
    pub ty: Type,
}

/// The columns of a stream SQL can read.
#[derive(Clone)]
pub struct Schema {
    /// The stream's name.
    pub stream: String,
    /// Its columns, in order.
    pub cols: Vec<Column>,
}

/// What a column's type is, as far as SQL expressions care.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    /// An integer type.
    Int,
    /// `f32` or `f64`.
    Float,
    /// `String`.
    Str,
    /// `bool`.
    Bool,
    /// Anything else.
    Other,
}

impl Schema {
    /// The index of the column `id` names.
    pub fn find(&self, id: &Ident) -> Option<usize> {
        simplestream_sqlplan::find(&self.names(), id)
    }

    /// The column names.
    pub fn names(&self) -> Vec<&str> {
        self.cols.iter().map(|c| c.name.as_str()).collect()
    }
}

/// The kind of a Rust type.
pub fn kind(ty: &Type) -> Kind {
    match type_text(ty).as_str() {
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" | "u8" | "u16" | "u32" | "u64" | "u128"
        | "usize" => Kind::Int,
        "f32" | "f64" => Kind::Float,
        "String" | "std::string::String" | "::std::string::String" => Kind::Str,
        "bool" => Kind::Bool,
        _ => Kind::Other,
    }
}

/// True if a column of `ty` is read by copying rather than cloning.
pub fn is_copy(ty: &Type) -> bool {
    matches!(kind(ty), Kind::Int | Kind::Float | Kind::Bool) || type_text(ty) == "char"
}

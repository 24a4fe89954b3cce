//! Event types whose fields are SQL columns.

/// A struct whose fields SQL statements in `pipeline!` read as columns. Derive it with
/// `simplestream`'s `#[derive(Columns)]`, which also tells `pipeline!` the fields'
/// types; the impl it writes is this one:
///
/// ```
/// use simplestream_runtime::Columns;
/// pub struct Order { pub customer: String, pub amount: f64, pub ts: i64 }
/// impl Columns for Order {
///     const COLUMNS: &'static [&'static str] = &["customer", "amount", "ts"];
/// }
/// assert_eq!(<Order as Columns>::COLUMNS, ["customer", "amount", "ts"]);
/// ```
#[diagnostic::on_unimplemented(
    message = "SQL reads `{Self}`, which does not derive `Columns`",
    label = "SQL columns are the fields of this type",
    note = "derive it: `#[derive(simplestream::Columns)]`; then its macro must be in scope where `pipeline!` is: define `{Self}` there, glob-import its module (`use types::*;`), or name it by its path (`source orders: types::Order`)"
)]
pub trait Columns {
    /// The field names, in order.
    const COLUMNS: &'static [&'static str];
}

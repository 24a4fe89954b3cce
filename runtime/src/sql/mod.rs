//! SQL at run time: `simplestream sql "SELECT ..."` reads a query with
//! `simplestream-sqlplan` (as `pipeline!` reads SQL), lowers its plan into the plan
//! `pipeline!` would build (one stage: `WHERE`, `GROUP BY` a column and/or a
//! window, aggregates, `HAVING`), and interprets it over rows read from JSON with the
//! runtime's own keyed state, windows and aggregates. [`SqlPipeline`] is a
//! [`Pipeline`](crate::Pipeline), so the runner gives it the same checkpoints,
//! exactly-once output and recovery as a compiled pipeline.
//!
//! ```
//! use simplestream_runtime::sql::{self, Options};
//! let ok = sql::parse("SELECT customr, SUM(amout) FROM orders GROUP BY customr", &Options::default());
//! assert!(ok.is_ok(), "no CREATE TABLE: columns are inferred from their use");
//! let err = sql::parse(
//!     "CREATE TABLE orders (customer TEXT, amount DOUBLE, ts BIGINT);
//!      SELECT customer, SUM(amout) FROM orders GROUP BY customer",
//!     &Options::default(),
//! ).unwrap_err();
//! assert_eq!(err.msg, "unknown column `amout` in `orders`; did you mean `amount`?");
//! assert_eq!(err.at, Some((2, 27)));
//! ```

mod acc;
mod columns;
mod error;
mod expr;
mod join;
#[cfg(feature = "sql-join")]
mod joined;
mod pipeline;
mod prepared;
mod query;
mod stage;
mod value;
mod window;

pub use acc::{Accs, AggSpec, Cell, Func};
pub use error::SqlError;
pub use expr::{Arith, Cmp, Ex};
pub use join::{JoinKind, JoinSpec};
#[cfg(feature = "sql-join")]
pub use joined::{Held, Joined, Joins};
pub use pipeline::{SqlOutput, SqlPipeline};
pub use prepared::{install, install_on_this_thread, installed, prepare, Prepared};
pub use query::{parse, Grouping, Options, Query};
pub use stage::{Groups, State};
pub use value::{Named, Row, RowSeed, Schema, Ty, Val};
pub use window::Win;

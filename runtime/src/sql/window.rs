//! Windows of `GROUP BY` (`TUMBLE`, `HOP`, `SESSION`), as the SQL plan reads them.

pub use simplestream_sqlplan::Win;

/// `w` as the pipeline plan records it (allowed lateness 0: SQL has no way to say
/// another).
pub fn plan(w: Win) -> crate::plan::Window {
    use crate::plan::Window as W;
    match w {
        Win::Tumbling { size } => W::Tumbling {
            size_ms: size,
            lateness_ms: 0,
        },
        Win::Sliding { size, slide } => W::Sliding {
            size_ms: size,
            slide_ms: slide,
            lateness_ms: 0,
        },
        Win::Session { gap } => W::Session {
            gap_ms: gap,
            lateness_ms: 0,
        },
    }
}

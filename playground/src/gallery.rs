//! The pipelines of the playground's gallery, each written with `pipeline!` and compiled
//! into the WASM. The page shows each one's DSL source (the `pipeline! { ... }` region of
//! its file, via `include_str!`) beside it.
//!
//! To add a pipeline: write it in `src/pipelines/`, implement [`Demo`] for it below and
//! add it to [`gallery_labs`](crate::lab::gallery_labs).

use crate::source::GenConfig;

/// The article's orders-per-customer pipeline, shared with `examples/orders`.
#[path = "../../examples/orders/pipeline.rs"]
pub mod orders;

#[path = "pipelines/sliding.rs"]
pub mod sliding;

#[path = "pipelines/sessions.rs"]
pub mod sessions;

pub use orders::{Order, Orders};
pub use sessions::Sessions;
pub use sliding::SlidingTop;

/// What the playground needs to know about a gallery pipeline besides its code.
pub trait Demo: simplestream::Pipeline<Event = Order> + 'static {
    /// Its instance name: the localStorage key prefix of its checkpoints.
    const INSTANCE: &'static str;
    /// Title in the pipeline menu.
    const TITLE: &'static str;
    /// One or two sentences: what it computes and what to watch.
    const BLURB: &'static str;
    /// Its source file's path in the repository (shown above the DSL).
    const SOURCE_PATH: &'static str;
    /// Its source file's text.
    const SOURCE_FILE: &'static str;
    /// The pace of its generated events.
    const GEN: GenConfig;
    /// How far behind the watermark the "late event" button sends an event, ms: enough
    /// for its windows to have closed (window size or gap, plus allowed lateness).
    const LATE_BY_MS: i64;
}

impl Demo for Orders {
    const INSTANCE: &'static str = "orders";
    const TITLE: &'static str = "Orders per customer (running count + 5-minute tumbling windows)";
    const BLURB: &'static str = "The article's pipeline. customer_stats keeps a running count and sum per customer: \
        the state a checkpoint saves. per_5min sums each customer's orders per 5 minutes of event time and emits a row \
        when the watermark passes the window's end.";
    const SOURCE_PATH: &'static str = "examples/orders/pipeline.rs";
    const SOURCE_FILE: &'static str = include_str!("../../examples/orders/pipeline.rs");
    const GEN: GenConfig = GenConfig {
        step_ms: 8_000,
        disorder_ms: 3_000,
        customers: 5,
    };
    const LATE_BY_MS: i64 = 6 * 60_000;
}

impl Demo for SlidingTop {
    const INSTANCE: &'static str = "sliding";
    const TITLE: &'static str = "Sliding windows (30 s windows, a new one every 10 s)";
    const BLURB: &'static str = "Every order falls into three overlapping windows. per_30s keeps count, max and \
        average per customer for each open window; a window is emitted once the watermark (latest event time − 3 s) \
        passes its end.";
    const SOURCE_PATH: &'static str = "playground/src/pipelines/sliding.rs";
    const SOURCE_FILE: &'static str = include_str!("pipelines/sliding.rs");
    const GEN: GenConfig = GenConfig {
        step_ms: 2_000,
        disorder_ms: 2_000,
        customers: 3,
    };
    const LATE_BY_MS: i64 = 45_000;
}

impl Demo for Sessions {
    const INSTANCE: &'static str = "sessions";
    const TITLE: &'static str = "Session windows (a session ends after 20 s without orders)";
    const BLURB: &'static str = "A customer's orders less than 20 s apart form one shopping session. Open sessions \
        grow and merge as orders arrive; a session is emitted when the watermark passes its end plus 5 s of \
        allowed lateness.";
    const SOURCE_PATH: &'static str = "playground/src/pipelines/sessions.rs";
    const SOURCE_FILE: &'static str = include_str!("pipelines/sessions.rs");
    const GEN: GenConfig = GenConfig {
        step_ms: 3_000,
        disorder_ms: 1_500,
        customers: 6,
    };
    const LATE_BY_MS: i64 = 60_000;
}

/// A gallery entry that does not run yet.
#[derive(Debug, Clone, Copy)]
pub struct Planned {
    /// Menu title.
    pub title: &'static str,
    /// Why it is not there.
    pub why: &'static str,
}

/// Entries shown in the menu but not runnable yet: the DSL has no joins so far. When it
/// does, a join pipeline (orders ⋈ payments by customer) goes in `src/pipelines/join.rs`
/// with its own `Demo` impl, and leaves this list.
pub const PLANNED: &[Planned] = &[Planned {
    title: "Join: orders ⋈ payments per customer (coming: joins are not in the DSL yet)",
    why: "joins are not in the pipeline! DSL yet",
}];

/// The `pipeline! { ... }` region of a source file (what the page shows).
///
/// ```
/// let file = "use x;\n\npipeline! {\n    pub pipeline P;\n}\n\nfn main() {}\n";
/// assert_eq!(simplestream_playground::gallery::dsl_region(file), "pipeline! {\n    pub pipeline P;\n}");
/// ```
pub fn dsl_region(file: &str) -> &str {
    let Some(start) = file.find("pipeline! {") else {
        return file;
    };
    let rest = &file[start..];
    let mut end = rest.len();
    let mut pos = 0;
    for line in rest.split_inclusive('\n') {
        pos += line.len();
        if line.trim_end() == "}" {
            end = pos;
            break;
        }
    }
    rest[..end].trim_end()
}

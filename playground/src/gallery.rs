//! The pipelines of the playground's gallery, each written with `pipeline!` and compiled
//! into the WASM. The page shows each one's DSL source (the `pipeline! { ... }` region of
//! its file, via `include_str!`) beside it, and draws its diagram and state tables from
//! the plan the macro emitted (`Pipeline::PLAN`).
//!
//! To add a pipeline: write it in `src/pipelines/`, implement [`Demo`] for it below and
//! add it to [`gallery_labs`](crate::lab::gallery_labs).

use crate::source::{self, GenConfig};

/// The article's orders-per-customer pipeline, shared with `examples/orders`.
pub use simplestream_examples::orders;

#[path = "pipelines/sliding.rs"]
pub mod sliding;

#[path = "pipelines/sessions.rs"]
pub mod sessions;

#[path = "pipelines/global.rs"]
pub mod global;

#[path = "pipelines/join.rs"]
pub mod join;

#[path = "pipelines/upgrade/v2.rs"]
pub mod upgrade_v2;
#[path = "pipelines/upgrade/v3.rs"]
pub mod upgrade_v3;

#[cfg(test)]
#[path = "pipelines/interval.rs"]
pub mod interval;

pub use global::AllOrders;
pub use join::{paid_sales, PaidSales, Payment, Sale};
pub use orders::{Order, Orders};
pub use sessions::Sessions;
pub use sliding::SlidingTop;

/// What the playground needs to know about a gallery pipeline besides its code.
pub trait Demo: simplestream::Pipeline + 'static {
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

    /// An order at source offset `offset` as this pipeline's event: how generated
    /// orders and events typed by hand (the form, the late button) enter it.
    fn order(offset: u64, order: Order) -> Self::Event;

    /// A stage's state JSON as its state table reads it (the checkpoint's, unless the
    /// pipeline keeps it in another shape).
    fn table_json(json: serde_json::Value) -> serde_json::Value {
        json
    }

    /// Generated event `i` of the stream seeded with `seed`: an order, unless the
    /// pipeline reads more than one source.
    fn generated(seed: u64, i: u64) -> Self::Event {
        Self::order(i, source::generated(&Self::GEN, seed, i))
    }
}

impl Demo for Orders {
    const INSTANCE: &'static str = "orders";
    const TITLE: &'static str = "Orders per customer (running count + 5-minute tumbling windows)";
    const BLURB: &'static str = "The article's pipeline. customer_stats keeps a running count and sum per customer: \
        the state a checkpoint saves. per_5min sums each customer's orders per 5 minutes of event time and emits a row \
        when the watermark passes the window's end.";
    const SOURCE_PATH: &'static str = "examples/pipelines/src/orders.rs";
    const SOURCE_FILE: &'static str = simplestream_examples::ORDERS_SOURCE;
    const GEN: GenConfig = GenConfig {
        step_ms: 8_000,
        disorder_ms: 3_000,
        customers: 5,
    };
    const LATE_BY_MS: i64 = 6 * 60_000;

    fn order(_: u64, order: Order) -> Order {
        order
    }
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

    fn order(_: u64, order: Order) -> Order {
        order
    }
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

    fn order(_: u64, order: Order) -> Order {
        order
    }
}

impl Demo for AllOrders {
    const INSTANCE: &'static str = "global";
    const TITLE: &'static str = "A window over all orders (sliding 1-minute windows, no key_by)";
    const BLURB: &'static str = "A window without key_by is over all events: last_minute keeps one accumulator per \
        open window (count, revenue, biggest order of every customer together), not one per key. A window is emitted \
        once the watermark passes its end plus 5 s of allowed lateness.";
    const SOURCE_PATH: &'static str = "playground/src/pipelines/global.rs";
    const SOURCE_FILE: &'static str = include_str!("pipelines/global.rs");
    const GEN: GenConfig = GenConfig {
        step_ms: 2_000,
        disorder_ms: 2_000,
        customers: 5,
    };
    const LATE_BY_MS: i64 = 90_000;

    fn order(_: u64, order: Order) -> Order {
        order
    }
}

impl Demo for PaidSales {
    const INSTANCE: &'static str = "join";
    const TITLE: &'static str = "Join: sales ⋈ payments (two sources, 30-second window join)";
    const BLURB: &'static str = "Two sources: the generator interleaves sales and payments, most sales paid 1 to 9 s \
        later (events typed by hand are sales, their offset as id). paid buffers the events of both sides per sale id and \
        30 s window, and pairs them when the window closes; a payment that falls in the next window misses its sale. \
        The buffered events are the state a checkpoint saves.";
    const SOURCE_PATH: &'static str = "playground/src/pipelines/join.rs";
    const SOURCE_FILE: &'static str = include_str!("pipelines/join.rs");
    const GEN: GenConfig = GenConfig {
        step_ms: 2_000,
        disorder_ms: 1_500,
        customers: 4,
    };
    const LATE_BY_MS: i64 = 60_000;

    /// A sale whose id is its offset.
    fn order(offset: u64, o: Order) -> paid_sales::Input {
        paid_sales::Input::Sales(Sale {
            id: offset,
            customer: o.customer,
            amount: o.amount,
            ts: o.ts,
        })
    }

    /// Sales, and at two in three odd offsets the payment of the sale just before.
    fn generated(seed: u64, i: u64) -> paid_sales::Input {
        let now = source::generated(&Self::GEN, seed, i);
        let Some(delay) = source::payment_delay(seed, i) else {
            return Self::order(i, now);
        };
        let sale = source::generated(&Self::GEN, seed, i - 1);
        paid_sales::Input::Payments(Payment {
            sale_id: i - 1,
            amount: sale.amount,
            ts: sale.ts + delay,
        })
    }
}

/// The upgrade lab's versions: the orders pipeline's pace, in its own localStorage.
macro_rules! upgrade_version {
    ($ty:ty, $title:literal, $blurb:literal, $file:literal) => {
        impl Demo for $ty {
            const INSTANCE: &'static str = crate::lab::UPGRADE_INSTANCE;
            const TITLE: &'static str = $title;
            const BLURB: &'static str = $blurb;
            const SOURCE_PATH: &'static str = concat!("playground/src/pipelines/upgrade/", $file);
            const SOURCE_FILE: &'static str = include_str!(concat!("pipelines/upgrade/", $file));
            const GEN: GenConfig = Orders::GEN;
            const LATE_BY_MS: i64 = Orders::LATE_BY_MS;

            fn order(_: u64, order: Order) -> Order {
                order
            }
        }
    };
}

upgrade_version!(
    upgrade_v2::Orders,
    "Upgrade: version 2 (one more column, migrated)",
    "Version 2 adds max_amount to customer_stats and declares #[migrate(added(max_amount))]: restoring version 1's \
    checkpoint keeps every count and sum (C001 goes on from n to n + 1) and max_amount starts from its default.",
    "v2.rs"
);
upgrade_version!(
    upgrade_v3::Orders,
    "Upgrade: version 3 (window resized, refused)",
    "Version 3 resizes per_5min's windows to 10 minutes. No migration can do that (the open windows would cover \
    other times), so restoring an earlier version's checkpoint is refused, saying why, and nothing is loaded.",
    "v3.rs"
);

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_payments_pay_the_sale_just_before_them() {
        let events: Vec<paid_sales::Input> =
            (0..400).map(|i| PaidSales::generated(42, i)).collect();
        let mut payments = 0;
        for (i, e) in events.iter().enumerate() {
            match e {
                paid_sales::Input::Sales(s) => assert_eq!(s.id, i as u64),
                paid_sales::Input::Payments(p) => {
                    payments += 1;
                    let paid_sales::Input::Sales(sale) = &events[i - 1] else {
                        panic!("offset {}: a payment after a payment", i - 1)
                    };
                    assert_eq!((p.sale_id, p.amount), (sale.id, sale.amount));
                    assert!(
                        (1_000..=9_000).contains(&(p.ts - sale.ts)),
                        "{p:?} {sale:?}"
                    );
                }
            }
        }
        assert!((100..200).contains(&payments), "{payments} payments");
    }
}

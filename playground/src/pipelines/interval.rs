//! An interval join of the gallery's sales and payments, for the tests of the diagram and
//! the state tables (not in the gallery: each pipeline adds tens of KB to the WASM).

use simplestream::pipeline;

use crate::gallery::{paid_sales, Payment, Sale};

pipeline! {
    /// Each sale with the payments of it at most 5 s later.
    pub pipeline PaidQuickly;
    source sales: Sale, event_time = |s| s.ts, max_delay = 3s;
    source payments: Payment, event_time = |p| p.ts, max_delay = 3s;
    paid_in_5s = sales
        .interval_join(payments, sale_id: u64 = |s| s.id, |p| p.sale_id, lower = 0s, upper = 5s);
    sink paid_in_5s;
}

/// The gallery join's event as this pipeline's.
pub fn input(e: paid_sales::Input) -> paid_quickly::Input {
    match e {
        paid_sales::Input::Sales(s) => paid_quickly::Input::Sales(s),
        paid_sales::Input::Payments(p) => paid_quickly::Input::Payments(p),
    }
}

//! A join pipeline for the playground: sales and their payments, two sources, paired when
//! they fall in the same 30-second window.

use serde::{Deserialize, Serialize};
use simplestream::{pipeline, Checkpointable};

/// A sale: `{"id":7,"customer":"C001","amount":12.5,"ts":1635739530000}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Checkpointable)]
pub struct Sale {
    /// Sale id.
    pub id: u64,
    /// Customer id.
    pub customer: String,
    /// Sale amount.
    pub amount: f64,
    /// Event time, ms since the epoch.
    pub ts: i64,
}

/// A payment of a sale: `{"sale_id":7,"amount":12.5,"ts":1635739534000}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Checkpointable)]
pub struct Payment {
    /// The sale it pays.
    pub sale_id: u64,
    /// Amount paid.
    pub amount: f64,
    /// Event time, ms since the epoch.
    pub ts: i64,
}

pipeline! {
    /// Sales with their payments: a sale and a payment of it pair if they fall in the same 30 s window.
    pub pipeline PaidSales;
    source sales: Sale, event_time = |s| s.ts, max_delay = 3s;
    source payments: Payment, event_time = |p| p.ts, max_delay = 3s;
    paid = sales
        .join(payments, sale_id: u64 = |s| s.id, |p| p.sale_id)
        .window(tumbling(30s));
    sink paid;
}

//! The event source: a deterministic, seeded stream of orders, like a topic whose
//! offset `i` always holds the same event.
//!
//! Event `i` is a pure function of `(seed, i)`, so after a restore from a checkpoint
//! taken at offset `n`, reading on from `n` gives exactly the events the crashed run
//! read. Events typed in by hand (the manual form, the "late event" button) are written
//! into the topic at the offset where they were sent, and persisted with it, so a
//! replay reads them again too.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::gallery::{Demo, Order};

/// Event time of the first generated event: 2021-11-01T04:00:00Z, the article's day.
pub const BASE_TS: i64 = 1_635_739_200_000;

/// How a pipeline's events are generated (each gallery pipeline has its own pace).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GenConfig {
    /// Event time between consecutive events, ms.
    pub step_ms: i64,
    /// Events arrive up to this much out of order, ms (keep it below `max_delay`).
    pub disorder_ms: i64,
    /// Number of customers, `C001` to `C{n}`.
    pub customers: u64,
}

fn mix(mut z: u64) -> u64 {
    // splitmix64's finalizer.
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Generated event `i` of the stream seeded with `seed`.
///
/// ```
/// use simplestream_playground::source::{generated, GenConfig};
/// let g = GenConfig { step_ms: 8_000, disorder_ms: 3_000, customers: 5 };
/// assert_eq!(generated(&g, 42, 7), generated(&g, 42, 7));
/// assert_ne!(generated(&g, 42, 7), generated(&g, 43, 7));
/// ```
pub fn generated(cfg: &GenConfig, seed: u64, i: u64) -> Order {
    let r = |k: u64| mix(mix(seed) ^ mix(i.wrapping_mul(8).wrapping_add(k)));
    let jitter = if cfg.disorder_ms > 0 {
        (r(0) % (cfg.disorder_ms as u64 + 1)) as i64
    } else {
        0
    };
    let cents = 100 + r(1) % 9_900;
    Order {
        customer: format!("C{:03}", 1 + r(2) % cfg.customers.max(1)),
        amount: cents as f64 / 100.0,
        ts: BASE_TS + (i as i64) * cfg.step_ms - jitter,
    }
}

/// In a stream of sales and payments: if generated event `i` is a payment, how long
/// after the sale just before it (at `i - 1`) it was paid, 1 to 9 s. Two in three odd
/// offsets are payments; even offsets are always sales.
///
/// ```
/// use simplestream_playground::source::payment_delay;
/// assert_eq!((payment_delay(42, 0), payment_delay(42, 2)), (None, None));
/// let delays: Vec<i64> = (0..300).filter_map(|i| payment_delay(42, i)).collect();
/// assert!(delays.len() > 50 && delays.iter().all(|d| (1_000..=9_000).contains(d)));
/// ```
pub fn payment_delay(seed: u64, i: u64) -> Option<i64> {
    let r = |k: u64| mix(mix(seed) ^ mix(i.wrapping_mul(8).wrapping_add(k)));
    (i % 2 == 1 && r(3) % 3 != 0).then(|| 1_000 + (r(4) % 8_001) as i64)
}

/// The topic: the seeded stream plus the events sent by hand, by offset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Topic {
    /// Seed of the generated events.
    pub seed: u64,
    /// Events sent by hand, by the offset they were written at.
    #[serde(default)]
    pub written: BTreeMap<u64, Order>,
}

impl Topic {
    /// A topic of generated events only.
    pub fn new(seed: u64) -> Self {
        Topic {
            seed,
            written: BTreeMap::new(),
        }
    }

    /// The event at `offset`, as pipeline `P` reads it.
    pub fn event<P: Demo>(&self, offset: u64) -> P::Event {
        match self.written.get(&offset) {
            Some(o) => P::order(offset, o.clone()),
            None => P::generated(self.seed, offset),
        }
    }

    /// Writes an event at `offset` (where the reader is now).
    pub fn write(&mut self, offset: u64, order: Order) {
        self.written.insert(offset, order);
    }
}

/// A bad value in the manual event form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// The field: `customer`, `amount` or `ts`.
    pub field: &'static str,
    /// What is wrong and what would be right.
    pub message: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Largest event time the form accepts (year 2100), ms.
pub const MAX_TS: i64 = 4_102_444_800_000;

/// Checks the manual form's fields and builds the order. An empty `ts` means
/// `default_ts` (the page passes one second after the latest event time).
///
/// ```
/// use simplestream_playground::source::parse_manual;
/// let o = parse_manual(" C001 ", "12.5", "", 1_000).unwrap();
/// assert_eq!((o.customer.as_str(), o.amount, o.ts), ("C001", 12.5, 1_000));
/// assert_eq!(parse_manual("C001", "12,5", "", 0).unwrap_err().field, "amount");
/// ```
pub fn parse_manual(
    customer: &str,
    amount: &str,
    ts: &str,
    default_ts: i64,
) -> Result<Order, FieldError> {
    let err = |field, message: String| Err(FieldError { field, message });
    let customer = customer.trim();
    if customer.is_empty() {
        return err("customer", "is empty: give a customer id, e.g. C001".into());
    }
    if customer.chars().count() > 32 {
        return err(
            "customer",
            "is longer than 32 characters: use a short id, e.g. C001".into(),
        );
    }
    if customer.chars().any(char::is_control) {
        return err("customer", "contains a control character".into());
    }
    let a = amount.trim();
    if a.is_empty() {
        return err("amount", "is empty: give a number, e.g. 12.50".into());
    }
    let value: f64 = match a.parse() {
        Ok(v) => v,
        Err(_) => {
            let hint = if a.contains(',') && a.replace(',', ".").parse::<f64>().is_ok() {
                format!(" (use a dot: {})", a.replace(',', "."))
            } else {
                " (e.g. 12.50)".into()
            };
            return err("amount", format!("`{a}` is not a number{hint}"));
        }
    };
    if !value.is_finite() || value.abs() > 1e9 {
        return err(
            "amount",
            format!("`{a}` is out of range: use a number between -1e9 and 1e9"),
        );
    }
    let t = ts.trim();
    let ts = if t.is_empty() {
        default_ts
    } else {
        match t.parse::<i64>() {
            Ok(v) if (0..=MAX_TS).contains(&v) => v,
            Ok(_) => {
                return err(
                    "ts",
                    format!("`{t}` is out of range: use ms since 1970 before 2100, e.g. {BASE_TS}"),
                )
            }
            Err(_) => {
                return err(
                    "ts",
                    format!("`{t}` is not a whole number of milliseconds since 1970 (e.g. {BASE_TS}); leave it empty for \"just after the latest event\""),
                )
            }
        }
    };
    Ok(Order {
        customer: customer.to_string(),
        amount: value,
        ts,
    })
}

/// The malformed events the "malformed event" button sends, in turn: each is a JSON
/// line as a real source would deliver it, with one field wrong.
pub const MALFORMED: &[&str] = &[
    r#"{"customer":"C002","amount":"12,50","ts":1635739530000}"#,
    r#"{"customer":"C003","amount":7.5}"#,
    r#"{"customer":42,"amount":7.5,"ts":1635739530000}"#,
    r#"{"customer":"C004","amount":7.5,"ts":"yesterday"}"#,
];

/// Parses one JSON line into an order; the error names the field that is wrong.
///
/// ```
/// use simplestream_playground::source::parse_json_line;
/// let e = parse_json_line(r#"{"customer":"C1","amount":"x","ts":1}"#).unwrap_err();
/// assert!(e.starts_with("amount: invalid type"), "{e}");
/// ```
pub fn parse_json_line(line: &str) -> Result<Order, String> {
    let mut de = serde_json::Deserializer::from_str(line);
    let parsed: Result<Order, _> = serde_path_to_error::deserialize(&mut de);
    match parsed {
        Ok(o) => de.end().map(|()| o).map_err(|e| e.to_string()),
        Err(e) => {
            let path = e.path().to_string();
            if path == "." {
                Err(e.inner().to_string())
            } else {
                Err(format!("{path}: {}", e.inner()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const G: GenConfig = GenConfig {
        step_ms: 8_000,
        disorder_ms: 3_000,
        customers: 5,
    };

    #[test]
    fn generated_events_are_pure_and_plausible() {
        let a: Vec<Order> = (0..500).map(|i| generated(&G, 42, i)).collect();
        let b: Vec<Order> = (0..500).rev().map(|i| generated(&G, 42, i)).collect();
        assert!(
            a.iter().eq(b.iter().rev()),
            "order of calls does not matter"
        );
        for (i, o) in a.iter().enumerate() {
            let nominal = BASE_TS + i as i64 * 8_000;
            assert!(o.ts <= nominal && o.ts >= nominal - 3_000);
            assert!((1.0..100.0).contains(&o.amount));
            assert_eq!((o.amount * 100.0).round() / 100.0, o.amount);
        }
        let customers: std::collections::BTreeSet<_> = a.iter().map(|o| &o.customer).collect();
        assert_eq!(customers.len(), 5);
    }

    #[test]
    fn topic_serves_written_events_at_their_offset() {
        use crate::gallery::Orders;
        let mut t = Topic::new(7);
        let o = parse_manual("X", "1", "5", 0).unwrap();
        t.write(3, o.clone());
        assert_eq!(t.event::<Orders>(3), o);
        assert_eq!(t.event::<Orders>(4), generated(&Orders::GEN, 7, 4));
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(serde_json::from_str::<Topic>(&json).unwrap(), t);
    }

    #[test]
    fn manual_errors_name_the_field() {
        let cases = [
            (("", "1", ""), "customer"),
            (("C1", "", ""), "amount"),
            (("C1", "abc", ""), "amount"),
            (("C1", "1e400", ""), "amount"),
            (("C1", "NaN", ""), "amount"),
            (("C1", "1", "soon"), "ts"),
            (("C1", "1", "-5"), "ts"),
            (("C1", "1", "1.5"), "ts"),
        ];
        for ((c, a, t), field) in cases {
            let e = parse_manual(c, a, t, 0).unwrap_err();
            assert_eq!(e.field, field, "{c:?} {a:?} {t:?}: {e}");
        }
        assert!(parse_manual("C1", "12,5", "", 0)
            .unwrap_err()
            .message
            .contains("use a dot: 12.5"));
    }

    #[test]
    fn every_malformed_line_is_rejected_naming_its_field() {
        let fields = ["amount", "ts", "customer", "ts"];
        for (line, field) in MALFORMED.iter().zip(fields) {
            let e = parse_json_line(line).unwrap_err();
            assert!(e.contains(field), "{line}: {e}");
        }
        assert!(parse_json_line(r#"{"customer":"C1","amount":1.5,"ts":3}"#).is_ok());
        assert!(parse_json_line(r#"{"customer":"C1","amount":1.5,"ts":3} x"#).is_err());
    }
}

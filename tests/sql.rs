//! SQL in `pipeline!`: statements lower into the DSL's own stages, so a SQL pipeline and
//! the DSL pipeline it spells produce the same bytes, the same checkpoints and the same
//! plan (fingerprint included).

mod common;

use simplestream::{Codec, OutputRecord, Pipeline};

/// The DSL and SQL versions of one pipeline, each in its own module under the same
/// name (the name is in checkpoints).
mod dsl {
    use crate::common::*;
    simplestream::pipeline! {
        pub pipeline Orders;
        source orders: Order, event_time = |o| o.ts, max_delay = 5s;
        valid = orders.filter(|o| o.amount > 0.0 && o.customer != "C003");
        customer_stats = valid
            .key_by(customer: String = |o| o.customer.clone())
            .aggregate(count = count(), amount: f64 = sum(|o| o.amount));
        per_5min = valid
            .key_by(customer: String = |o| o.customer.clone())
            .window(tumbling(5min))
            .aggregate(orders = count(), amount: f64 = sum(|o| o.amount), top: f64 = max(|o| o.amount), mean: f64 = avg(|o| o.amount))
            .filter(|r| r.orders > 120);
        hopping = valid
            .window(sliding(10min, 1min))
            .aggregate(n = count(), low: f64 = min(|o| o.amount));
        sessions = orders
            .key_by(customer: String = |o| o.customer.clone())
            .window(session(2s))
            .aggregate(n = count());
        sink per_5min;
        sink hopping;
        sink sessions;
    }
}

mod sql {
    // A glob import brings the `Columns` derive's macro along with the type.
    use crate::common::*;
    simplestream::pipeline! {
        pub pipeline Orders;
        source orders: Order, event_time = |o| o.ts, max_delay = 5s;
        sql r#"
            CREATE VIEW valid AS SELECT * FROM orders WHERE amount > 0 AND customer <> 'C003';
            CREATE VIEW customer_stats AS
                SELECT customer, COUNT(*) AS count, SUM(amount) AS amount FROM valid GROUP BY customer;
            CREATE VIEW per_5min AS
                SELECT customer, COUNT(*) AS orders, SUM(amount) AS amount, MAX(amount) AS top, AVG(amount) AS mean
                FROM valid
                GROUP BY customer, TUMBLE(ts, INTERVAL '5' MINUTE)
                HAVING COUNT(*) > 120;
            CREATE VIEW hopping AS
                SELECT COUNT(*) AS n, MIN(amount) AS low FROM valid
                GROUP BY HOP(ts, INTERVAL '1' MINUTE, INTERVAL '10' MINUTE);
            CREATE VIEW sessions AS
                SELECT customer, COUNT(*) AS n FROM orders GROUP BY customer, SESSION(ts, INTERVAL '2' SECOND)
        "#;
        sink per_5min;
        sink hopping;
        sink sessions;
    }
}

/// Output lines (sink, JSON), and JSON and binary checkpoints every 500 events.
type Run = (Vec<(String, String)>, Vec<Vec<u8>>, Vec<Vec<u8>>);

fn run<P: Pipeline<Event = common::Order>>(input: &[common::Order]) -> Run {
    let mut p = P::new();
    let (mut out, mut json, mut bin) = (Vec::new(), Vec::new(), Vec::new());
    for (i, o) in input.iter().enumerate() {
        p.process(o.clone(), &mut out);
        if i % 500 == 0 {
            let encode = |codec| {
                simplestream::envelope::encode(&p, codec, i as u64, 0, Default::default()).unwrap()
            };
            json.push(encode(Codec::Json));
            bin.push(encode(Codec::Binary));
        }
    }
    p.finish(&mut out);
    let lines = out
        .iter()
        .map(|r| (r.sink().to_string(), serde_json::to_string(r).unwrap()))
        .collect();
    (lines, json, bin)
}

/// A checkpoint restored as pipeline `P`, written again as JSON.
fn restore_as<P: Pipeline>(bytes: &[u8]) -> Vec<u8> {
    let (header, p) = simplestream::envelope::decode::<P>(bytes).unwrap();
    let id = header.checkpoint_id;
    simplestream::envelope::encode(&p, Codec::Json, id, 0, Default::default()).unwrap()
}

#[test]
fn sql_and_dsl_give_the_same_output_and_checkpoints() {
    let input = common::orders(21, 5_000, 7, 4_000);
    let (dsl_out, dsl_json, dsl_bin) = run::<dsl::Orders>(&input);
    let (sql_out, sql_json, sql_bin) = run::<sql::Orders>(&input);
    // Every sink produced rows, and HAVING dropped some windows: the comparison is not
    // of empty or unfiltered streams.
    for sink in ["per_5min", "hopping", "sessions"] {
        let n = dsl_out.iter().filter(|(s, _)| s == sink).count();
        assert!(n > 10, "{sink}: {n} rows");
    }
    let windows: std::collections::BTreeSet<(&str, i64)> = input
        .iter()
        .filter(|o| o.amount > 0.0 && o.customer != "C003")
        .map(|o| (o.customer.as_str(), o.ts.div_euclid(300_000)))
        .collect();
    let kept = dsl_out.iter().filter(|(s, _)| s == "per_5min").count();
    assert!(
        kept < windows.len(),
        "HAVING kept {kept} of {} windows",
        windows.len()
    );
    assert!(dsl_out == sql_out, "the outputs differ");
    assert_eq!(dsl_json.len(), 10);
    for (i, (a, b)) in dsl_json.iter().zip(&sql_json).enumerate() {
        assert!(a == b, "JSON checkpoint {i} differs");
    }
    // Binary checkpoints write hash maps in their own order; each restores as the
    // other pipeline to the same state.
    for (i, (a, b)) in dsl_bin.iter().zip(&sql_bin).enumerate() {
        assert!(
            restore_as::<sql::Orders>(a) == dsl_json[i],
            "binary checkpoint {i} (DSL)"
        );
        assert!(
            restore_as::<dsl::Orders>(b) == dsl_json[i],
            "binary checkpoint {i} (SQL)"
        );
    }
    assert_eq!(
        <dsl::Orders as Pipeline>::FINGERPRINT,
        <sql::Orders as Pipeline>::FINGERPRINT
    );
    assert_eq!(
        <dsl::Orders as Pipeline>::STAGES,
        <sql::Orders as Pipeline>::STAGES
    );
}

/// An interval join and a windowed join, in the DSL and in SQL.
mod dsl_join {
    use crate::common::*;
    simplestream::pipeline! {
        pub pipeline Quick;
        source sales: Sale, event_time = |s| s.ts, max_delay = 2s;
        source payments: Payment, event_time = |p| p.ts, max_delay = 2s;
        quick = sales.interval_join(payments, id: u64 = |s| s.id, |p| p.order_id, lower = 2s, upper = 5s);
        paid = sales.join(payments, id: u64 = |s| s.id, |p| p.order_id).window(tumbling(10s));
        sink quick;
        sink paid;
    }
}

mod sql_join {
    use crate::common::*;
    simplestream::pipeline! {
        pub pipeline Quick;
        source sales: Sale, event_time = |s| s.ts, max_delay = 2s;
        source payments: Payment, event_time = |p| p.ts, max_delay = 2s;
        sql r#"CREATE VIEW quick AS SELECT * FROM sales s JOIN payments p
               ON s.id = p.order_id AND p.ts BETWEEN s.ts - INTERVAL '2' SECOND AND s.ts + INTERVAL '5' SECOND;
               CREATE VIEW paid AS SELECT * FROM sales JOIN payments
               ON sales.id = payments.order_id AND TUMBLE(sales.ts, INTERVAL '10' SECOND) = TUMBLE(payments.ts, INTERVAL '10' SECOND)"#;
        sink quick;
        sink paid;
    }
}

/// The joined rows of `P` over sales and payments, and a JSON checkpoint of it halfway
/// (join buffers full).
fn run_join<P: Pipeline>(
    wrap: impl Fn(&common::payments::Input) -> P::Event,
) -> (Vec<String>, Vec<u8>) {
    let (mut p, mut out, mut mid) = (P::new(), Vec::new(), Vec::new());
    let input = common::sales_and_payments(7, 2_000);
    for (i, e) in input.iter().enumerate() {
        p.process(wrap(e), &mut out);
        if i == input.len() / 2 {
            mid =
                simplestream::envelope::encode(&p, Codec::Json, 1, 0, Default::default()).unwrap();
        }
    }
    p.finish(&mut out);
    (
        out.iter()
            .map(|r| serde_json::to_string(r).unwrap())
            .collect(),
        mid,
    )
}

#[test]
fn sql_joins_are_the_dsl_joins() {
    use common::payments::Input as I;
    let (d, d_ck) = run_join::<dsl_join::Quick>(|e| match e {
        I::Sales(s) => dsl_join::quick::Input::Sales(s.clone()),
        I::Payments(p) => dsl_join::quick::Input::Payments(p.clone()),
    });
    let (s, s_ck) = run_join::<sql_join::Quick>(|e| match e {
        I::Sales(s) => sql_join::quick::Input::Sales(s.clone()),
        I::Payments(p) => sql_join::quick::Input::Payments(p.clone()),
    });
    let windowed = d.iter().filter(|l| l.contains("window_start")).count();
    assert!(
        windowed > 500 && d.len() - windowed > 500,
        "{windowed} of {} pairs windowed",
        d.len()
    );
    assert!(d == s, "the joined rows differ");
    assert!(d_ck.len() > 1_000, "join buffers are in the checkpoint");
    assert!(d_ck == s_ck, "the checkpoints differ");
    assert_eq!(
        <dsl_join::Quick as Pipeline>::FINGERPRINT,
        <sql_join::Quick as Pipeline>::FINGERPRINT
    );
}

/// The source type named by its path: the `Columns` derive's macro is found beside it.
mod by_path {
    simplestream::pipeline! {
        pub pipeline ByPath;
        source orders: crate::common::Order, event_time = |o| o.ts, max_delay = 0s;
        sql r#"SELECT customer, MAX(amount) AS top FROM orders GROUP BY customer, TUMBLE(ts, INTERVAL '1' SECOND)"#;
    }
}

#[test]
fn a_bare_select_is_the_sink_query() {
    let mut p = by_path::ByPath::new();
    let mut out = Vec::new();
    for (c, amount, ts) in [
        ("a", 1.0, 0),
        ("a", 3.0, 10),
        ("b", 2.0, 20),
        ("a", 5.0, 1_000),
    ] {
        let customer = c.to_string();
        p.process(
            common::Order {
                customer,
                amount,
                ts,
            },
            &mut out,
        );
    }
    p.finish(&mut out);
    let lines: Vec<String> = out
        .iter()
        .map(|r| serde_json::to_string(r).unwrap())
        .collect();
    assert_eq!(
        lines,
        [
            r#"{"customer":"a","window_start":0,"window_end":1000,"top":3.0}"#,
            r#"{"customer":"b","window_start":0,"window_end":1000,"top":2.0}"#,
            r#"{"customer":"a","window_start":1000,"window_end":2000,"top":5.0}"#,
        ]
    );
    assert_eq!(<by_path::ByPath as Pipeline>::SINKS, ["query"]);
}

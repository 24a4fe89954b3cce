//! SQL statements lower into the DSL's stage statements: the expansion of a SQL pipeline
//! is token for token that of the DSL it spells, and misuse is reported with the SQL
//! position and a hint.

use proc_macro2::TokenStream;
use simplestream_dsl::{check, expand, parse, sql};

const HEAD: &str = r#"
    __columns orders { customer: String, amount: f64, ts: i64, vip: bool };
    pipeline P;
    source orders: Order, event_time = |o| o.ts, max_delay = 5s;
"#;

/// The expansion of `body` after `HEAD`, or the error messages.
fn expand(body: &str) -> Result<String, String> {
    let tokens: TokenStream = format!("{HEAD}{body}").parse().unwrap();
    let mut def = parse::parse(tokens.clone()).map_err(|e| e.to_string())?;
    let asked = sql::lower(&mut def, &tokens).map_err(|e| {
        e.into_iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    })?;
    assert!(asked.is_none(), "the columns are given");
    let plan = check::check(def).map_err(|e| e.to_string())?;
    Ok(expand::expand(&plan, "").to_string())
}

fn same(sql: &str, dsl: &str) {
    let (a, b) = (expand(sql).unwrap(), expand(dsl).unwrap());
    let at = a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
    let (ea, eb) = (
        &a[at.saturating_sub(80)..(at + 120).min(a.len())],
        &b[at.saturating_sub(80)..(at + 120).min(b.len())],
    );
    assert!(
        a == b,
        "SQL:\n{sql}\nexpands differently from DSL:\n{dsl}\n at byte {at}:\n{ea}\n{eb}"
    );
}

fn error(sql: &str) -> String {
    expand(sql).expect_err("an error")
}

#[test]
fn filter_group_window_having_expand_as_the_dsl() {
    same(
        r#"sql r"CREATE VIEW v AS SELECT customer, COUNT(*) AS n, SUM(amount) AS s, AVG(amount) AS a
                  FROM orders WHERE amount >= 10 AND NOT vip OR customer = 'X'
                  GROUP BY customer, TUMBLE(ts, INTERVAL '5' MINUTE) HAVING n > 2 AND SUM(amount) < 1e3"; sink v;"#,
        r#"v = orders.filter(|__e| __e.amount >= 10.0 && !__e.vip || __e.customer.as_str() == "X")
              .key_by(customer: String = |__e| __e.customer.clone())
              .window(tumbling(300000ms))
              .aggregate(n = count(), s: f64 = sum(|__e| __e.amount), a: f64 = avg(|__e| __e.amount))
              .filter(|__e| __e.n > 2 && __e.s < 1e3);
           sink v;"#,
    );
}

#[test]
fn hop_session_views_and_bare_select() {
    same(
        r#"sql r"CREATE VIEW big AS SELECT * FROM orders WHERE amount * 2 > 100;
                 SELECT MIN(amount), MAX(amount) FROM big GROUP BY HOP(ts, INTERVAL '1' MINUTE, INTERVAL '10' MINUTES)";"#,
        r#"big = orders.filter(|__e| __e.amount * 2.0 > 100.0);
           query = big.window(sliding(600000ms, 60000ms))
              .aggregate(min_amount: f64 = min(|__e| __e.amount), max_amount: f64 = max(|__e| __e.amount));
           sink query;"#,
    );
    same(
        r#"sql r"CREATE VIEW s AS SELECT customer, COUNT(*) FROM orders GROUP BY customer, SESSION(ts, INTERVAL '30 seconds')"; sink s;"#,
        r#"s = orders.key_by(customer: String = |__e| __e.customer.clone()).window(session(30000ms)).aggregate(count = count()); sink s;"#,
    );
}

#[test]
fn sql_and_dsl_statements_interleave_in_order() {
    same(
        r#"a = orders.filter(|o| o.amount > 0.0);
           sql r"CREATE VIEW b AS SELECT * FROM orders WHERE vip";
           c = b.filter(|o| o.amount > 1.0);
           sink a; sink c;"#,
        r#"a = orders.filter(|o| o.amount > 0.0);
           b = orders.filter(|__e| __e.vip);
           c = b.filter(|o| o.amount > 1.0);
           sink a; sink c;"#,
    );
}

#[test]
fn misuse_is_reported_with_the_position_and_a_hint() {
    let cases = [
        ("SELECT custmer, COUNT(*) FROM orders GROUP BY customer", "unknown column `custmer` in `orders`; did you mean `customer`? (SQL line 1, column 25)"),
        ("SELECT customer, SUM(customer) FROM orders GROUP BY customer", "SUM of `customer`, a `String`: SUM takes a numeric column"),
        ("SELECT customer, amount, COUNT(*) FROM orders GROUP BY customer", "`amount` is neither grouped nor aggregated"),
        ("SELECT customer, COUNT(* FROM orders GROUP BY customer", "SQL syntax error: Expected: ), found: FROM"),
        ("SELECT customer, COUNT(*) FROM ordrs GROUP BY customer", "unknown stream `ordrs`"),
        ("SELECT customer, CONT(*) FROM orders GROUP BY customer", "unknown aggregate `CONT`; did you mean `COUNT`?"),
        ("SELECT COUNT(*) FROM orders", "aggregates need GROUP BY a column or a window"),
        ("SELECT customer, COUNT(*) FROM orders GROUP BY customer, amount", "grouping by several columns is not supported; group by one column that holds both (e.g. `region_customer`), or write the stage in the DSL: `key_by` takes a struct that derives `Checkpointable` (SQL line 1, column 75)"),
        ("SELECT customer, COUNT(*) FROM orders GROUP BY customer LIMIT 5", "LIMIT is not supported"),
        ("SELECT DISTINCT customer, COUNT(*) FROM orders GROUP BY customer", "SELECT DISTINCT is not supported"),
        ("SELECT * FROM orders WHERE amount IS NULL", "is not supported in WHERE"),
        ("SELECT * FROM orders WHERE COUNT(*) > 1", "aggregates are tested in HAVING"),
        ("SELECT customer, COUNT(*) FROM orders GROUP BY customer, TUMBLE(ts, INTERVAL '5' FORTNIGHT)", "SQL syntax error"),
        ("SELECT customer, COUNT(*) FROM orders GROUP BY customer, TUMBLE(ts, 5)", "expected a duration such as INTERVAL '5' MINUTE"),
        ("SELECT customer, COUNT(*) FROM orders GROUP BY customer, TUMBLE(tss, INTERVAL '1' MINUTE)", "unknown column `tss`"),
        ("SELECT * FROM orders o JOIN orders p ON o.customer = p.customer", "a join needs a window, `TUMBLE(l.ts"),
        ("SELECT customer, COUNT(*) FROM orders GROUP BY customer\nHAVING x > 1", "unknown column `x` in `v`; its columns are customer, count (SQL line 2, column 8)"),
    ];
    for (sql, want) in cases {
        let got = error(&format!("sql r\"CREATE VIEW v AS {sql}\"; sink v;"));
        assert!(
            got.contains(want),
            "{sql}\n  gives: {got}\n  wanted: {want}"
        );
    }
}

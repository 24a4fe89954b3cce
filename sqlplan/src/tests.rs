//! The plan and the refusals, as both front ends get them.

use crate::*;

/// Columns that exist as soon as they are named (as the interpreter infers them).
#[derive(Default, Debug)]
struct Named([Vec<String>; 2]);

impl Columns for Named {
    fn stream(&mut self, _: Side, _: &TableRef) -> Result<(), Error> {
        Ok(())
    }
    fn column(&mut self, side: Side, id: &Ident, _: Want, _: &str) -> Result<usize, Error> {
        let cols = &mut self.0[side as usize];
        Ok(find(cols, id).unwrap_or_else(|| {
            cols.push(id.value.clone());
            cols.len() - 1
        }))
    }
    fn name(&self, side: Side, col: usize) -> String {
        self.0[side as usize][col].clone()
    }
}

fn plan(sql: &str, host: Host) -> Result<(Select, Named), Error> {
    let script = parse(sql, host)?;
    let mut cols = Named::default();
    let i = script.statements.len() - 1;
    script.plan(i, &mut cols).map(|s| (s, cols))
}

/// The error's message and the words it points at.
fn refusal(sql: &str, host: Host) -> (String, String) {
    let e = plan(sql, host).expect_err(sql);
    let at = e.at.clone().map_or(String::new(), |r| sql[r].to_string());
    (e.msg, at)
}

#[test]
fn both_front_ends_get_the_same_refusal_at_the_same_words() {
    let cases = [
        ("SELECT customer, COUNT(* FROM orders GROUP BY customer", "SQL syntax error: Expected: ), found: FROM", "F"),
        ("SELECT customer, COUNT(*) FROM orders GROUP BY customer, amount", "GROUP BY one column (and a window)", "amount"),
        ("SELECT customer, amount, COUNT(*) FROM orders GROUP BY customer", "`amount` is neither grouped nor aggregated", "amount"),
        ("SELECT customer, CONT(*) FROM orders GROUP BY customer", "unknown aggregate `CONT`; did you mean `COUNT`?", "CONT"),
        ("SELECT COUNT(*) FROM orders GROUP BY SESSION(ts, INTERVAL '1' SECOND)", "SESSION needs a key", "SELECT COUNT(*) FROM orders GROUP BY SESSION("),
        ("SELECT COUNT(*) FROM orders GROUP BY HOP(ts, INTERVAL '5' SECOND, INTERVAL '1' SECOND)", "HOP's slide (the second argument) is longer than its size", "HOP(ts, INTERVAL '5'"),
        ("SELECT * FROM orders WHERE amount IS NULL", "this expression (`amount IS NULL`) is not supported in WHERE", "amount"),
        ("SELECT * FROM a JOIN b ON a.k = b.k", "a join needs a window", "a.k = b.k"),
        ("SELECT * FROM a JOIN b ON a.k = b.k AND SESSION(a.ts, INTERVAL '1' SECOND) = SESSION(b.ts, INTERVAL '1' SECOND)", "joins use TUMBLE or HOP windows", "SESSION(a.ts, INTERVAL '1'"),
        ("SELECT * FROM a JOIN b ON a.k = c.k AND b.ts BETWEEN a.ts AND a.ts", "unknown table `c`; this join reads `a` and `b`", "c"),
        ("SELECT customer, COUNT(*) AS n FROM orders GROUP BY customer HAVING SUM(amount) > 1", "`SUM(amount)` is not in the select list", "SUM(amount"),
    ];
    for (sql, msg, at) in cases {
        for host in [Host::Macro, Host::Interpreter] {
            let (got, words) = refusal(sql, host);
            assert!(
                got.starts_with(msg),
                "{host:?}: {sql}\n  gives: {got}\n  wanted: {msg}"
            );
            assert!(
                words.starts_with(at),
                "{host:?}: {sql}: {got}: at `{words}`"
            );
        }
    }
}

#[test]
fn hints_name_what_each_front_end_offers_instead() {
    let sql = "SELECT * FROM a JOIN b ON a.k = b.k AND b.ts BETWEEN a.ts AND a.ts WHERE a.x > 1";
    assert!(refusal(sql, Host::Macro)
        .0
        .ends_with("filter the inputs in views first"));
    assert!(refusal(sql, Host::Interpreter)
        .0
        .ends_with("filter the inputs in `pipeline!` views first"));
    let (m, _) = refusal("CREATE TABLE o (a TEXT)", Host::Macro);
    assert!(m.starts_with("only `SELECT ...` and `CREATE VIEW"), "{m}");
    let Ok(s) = parse("CREATE TABLE o (a TEXT)", Host::Interpreter) else {
        panic!("the interpreter reads CREATE TABLE");
    };
    assert!(matches!(&s.statements[0], Statement::Table(t) if t.columns[0].ty == "TEXT"));
}

#[test]
fn a_grouped_query_and_a_join_plan_their_parts() {
    let sql = "SELECT customer, COUNT(*) AS n, SUM(amount) FROM orders o WHERE o.amount > 2
               GROUP BY customer, HOP(ts, INTERVAL '1' MINUTE, INTERVAL '5' MINUTES) HAVING n > 1";
    let (s, cols) = plan(sql, Host::Interpreter).unwrap();
    let Body::Grouped(g) = s.body else {
        panic!("grouped")
    };
    assert_eq!(cols.0[0], ["amount", "customer", "ts"]);
    assert_eq!(g.key.map(|k| k.col), Some(1));
    assert_eq!(
        g.window.map(|w| (w.win, w.time)),
        Some((
            Win::Sliding {
                size: 300_000,
                slide: 60_000
            },
            2
        ))
    );
    assert_eq!(
        g.output,
        ["customer", "window_start", "window_end", "n", "sum_amount"]
    );
    assert_eq!(g.aggs[1].func, Func::Sum);
    assert!(
        matches!(g.having.unwrap().kind, ExprKind::Binary(BinOp::Gt, l, _) if l.kind == ExprKind::Col(3))
    );
    let sql = "SELECT * FROM sales s JOIN payments p ON s.id = p.order_id
               AND p.ts BETWEEN s.ts - INTERVAL '1' SECOND AND s.ts + INTERVAL '3' SECOND";
    let (s, cols) = plan(sql, Host::Macro).unwrap();
    let Body::Join(j) = s.body else {
        panic!("a join")
    };
    assert_eq!(
        (s.from.qualifiers, j.right.qualifiers),
        (
            vec!["sales".into(), "s".into()],
            vec!["payments".into(), "p".into()]
        )
    );
    assert_eq!(
        j.kind,
        JoinKind::Interval {
            lower: 1_000,
            upper: 3_000
        }
    );
    assert_eq!(
        (cols.0[0][j.keys.0].as_str(), cols.0[1][j.keys.1].as_str()),
        ("id", "order_id")
    );
    assert_eq!(
        (cols.0[0][j.times.0].as_str(), cols.0[1][j.times.1].as_str()),
        ("ts", "ts")
    );
}

//! The SQL editor's query: typed by the user, checked against the orders source, and run
//! by the interpreter of `simplestream sql` (`simplestream::sql`), compiled into the WASM.
//!
//! The source is the gallery's orders (`customer`, `amount`, `ts`): the query is parsed
//! after a `CREATE TABLE` declaring them, so an unknown column is an error at its word
//! (with the nearest known one), not a stream of bad events.

use serde::Serialize;
use serde_json::{Map, Value};
use simplestream::sql::{self, Accs, Options, Prepared, Row, SqlError, SqlPipeline};

use crate::gallery::{Demo, Order, Orders};
use crate::source::GenConfig;

/// The orders source, as the interpreter sees it.
pub const SOURCE_TABLE: &str = "CREATE TABLE orders (customer TEXT, amount DOUBLE, ts BIGINT);";

/// The queries the editor offers (the SQL guide's, `docs/sql.md`), as (label, SQL). The first is the
/// default.
pub const EXAMPLES: &[(&str, &str)] = &[
    (
        "orders per customer per 5 minutes",
        "SELECT customer, COUNT(*) AS n, SUM(amount) AS amount\nFROM orders\nGROUP BY customer, TUMBLE(ts, INTERVAL '5' MINUTE)",
    ),
    (
        "running count and sum per customer",
        "CREATE VIEW customer_stats AS\n  SELECT customer, COUNT(*) AS count, SUM(amount) AS amount\n  FROM orders GROUP BY customer",
    ),
    (
        "big orders only (a filter)",
        "SELECT * FROM orders WHERE amount > 50",
    ),
    (
        "sliding windows with HAVING",
        "SELECT customer, COUNT(*) AS n, MAX(amount) AS biggest, AVG(amount) AS mean\nFROM orders\nGROUP BY customer, HOP(ts, INTERVAL '1' MINUTE, INTERVAL '3' MINUTE)\nHAVING n > 1",
    ),
    (
        "sessions (20 s gap)",
        "SELECT customer, COUNT(*) AS orders, SUM(amount) AS spent\nFROM orders\nGROUP BY customer, SESSION(ts, INTERVAL '20' SECOND)",
    ),
    (
        "all orders per minute (no key)",
        "SELECT COUNT(*) AS orders, SUM(amount) AS revenue\nFROM orders\nGROUP BY TUMBLE(ts, INTERVAL '1' MINUTE)",
    ),
];

/// Where an error points in the editor's text: 1-based line and column, and the
/// character range to highlight (the offending word).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorAt {
    /// What is wrong, with a hint.
    pub msg: String,
    /// 1-based line in the editor, if the error has a position.
    pub line: Option<u64>,
    /// 1-based column.
    pub column: Option<u64>,
    /// Highlighted characters `[start, end)`, counted in the editor's text.
    pub start: Option<usize>,
    /// End of the highlight.
    pub end: Option<usize>,
    /// The highlighted word.
    pub word: Option<String>,
}

/// Parses `text` over the orders source and gives it its pipeline identity.
///
/// ```
/// use simplestream_playground::query::compile;
/// assert!(compile("SELECT customer, COUNT(*) FROM orders GROUP BY customer").is_ok());
/// let e = compile("SELECT customer,\n  SUM(amout) FROM orders GROUP BY customer").unwrap_err();
/// assert_eq!((e.line, e.column, e.word.as_deref()), (Some(2), Some(7), Some("amout")));
/// assert!(e.msg.contains("did you mean `amount`?"), "{}", e.msg);
/// ```
pub fn compile(text: &str) -> Result<&'static Prepared, ErrorAt> {
    // The source's declaration takes line 1; the user's line n is the parser's n + 1.
    let full = format!("{SOURCE_TABLE}\n{text}");
    let opts = Options::default();
    match sql::parse(&full, &opts) {
        Ok(q) if q.join.is_some() => Err(locate(
            text,
            SqlError::whole("the editor reads one source, orders: joins of two streams run in `simplestream sql`"),
        )),
        Ok(q) => Ok(sql::prepare(q)),
        Err(e) => Err(locate(text, e)),
    }
}

/// An error of the parser's text as a position in the editor's.
fn locate(text: &str, e: SqlError) -> ErrorAt {
    let declares = e.msg.starts_with("only `CREATE TABLE")
        || e.msg.starts_with("several CREATE TABLE")
        || e.msg.ends_with("is declared twice");
    let msg = if declares {
        "the source is the playground's: orders (customer TEXT, amount DOUBLE, ts BIGINT); write one SELECT or CREATE VIEW name AS SELECT, without CREATE TABLE".to_string()
    } else {
        e.msg
    };
    let Some((line, column)) = e.at.filter(|(l, _)| *l > 1).map(|(l, c)| (l - 1, c)) else {
        return ErrorAt {
            msg,
            line: None,
            column: None,
            start: None,
            end: None,
            word: None,
        };
    };
    let (start, end) = span(text, line, column, e.len);
    let word: String = text.chars().skip(start).take(end - start).collect();
    ErrorAt {
        msg,
        line: Some(line),
        column: Some(column),
        start: Some(start),
        end: Some(end),
        word: Some(word),
    }
}

/// Characters `[start, end)` of `text` at `line`:`column`, `len` long; a one-character
/// position at the start of a word (what sqlparser gives for a syntax error) takes the
/// whole word.
fn span(text: &str, line: u64, column: u64, len: usize) -> (usize, usize) {
    let chars: Vec<char> = text.chars().collect();
    let mut start = 0;
    for _ in 1..line {
        match chars[start..].iter().position(|&c| c == '\n') {
            Some(i) => start += i + 1,
            None => break,
        }
    }
    let line_end = chars[start..]
        .iter()
        .position(|&c| c == '\n')
        .map_or(chars.len(), |i| start + i);
    let start = (start + column.saturating_sub(1) as usize).min(line_end);
    let word = |c: &char| c.is_alphanumeric() || *c == '_';
    let end = if len <= 1 && chars.get(start).is_some_and(word) {
        start
            + chars[start..line_end]
                .iter()
                .take_while(|c| word(c))
                .count()
    } else {
        start + len.max(1)
    };
    (
        start,
        end.min(line_end).max(start + usize::from(start < line_end)),
    )
}

/// A stage's state with each group's accumulators (`[{"count":3},{"sum_float":9.5}]`,
/// as checkpoints hold them) replaced by their output values under the query's column
/// names (`{"n":3,"amount":9.5}`), and the state's kind (`{"by_string":{"running":..}}`)
/// unwrapped: the shape the state tables read.
fn table_json(json: Value, p: &Prepared) -> Value {
    let names: Vec<&str> = p
        .query
        .grouping
        .as_ref()
        .map(|g| g.aggs.iter().map(|a| a.name).collect())
        .unwrap_or_default();
    named(unwrap_kind(json), &names)
}

fn unwrap_kind(json: Value) -> Value {
    let mut v = json;
    for kinds in [
        &["by_string", "by_int", "global"][..],
        &["running", "windows", "session"][..],
    ] {
        v = match v {
            Value::Object(m)
                if m.len() == 1 && kinds.contains(&m.keys().next().unwrap().as_str()) =>
            {
                m.into_iter().next().map(|(_, v)| v).unwrap_or_default()
            }
            other => return other,
        };
    }
    v
}

fn named(v: Value, names: &[&str]) -> Value {
    match v {
        Value::Array(a) if a.len() == names.len() && !a.is_empty() => {
            match serde_json::from_value::<Accs>(Value::Array(a.clone())) {
                Ok(accs) => {
                    let m: Map<String, Value> = names
                        .iter()
                        .zip(accs.outputs())
                        .map(|(n, v)| (n.to_string(), serde_json::to_value(v).unwrap_or_default()))
                        .collect();
                    Value::Object(m)
                }
                Err(_) => Value::Array(a.into_iter().map(|x| named(x, names)).collect()),
            }
        }
        Value::Array(a) => Value::Array(a.into_iter().map(|x| named(x, names)).collect()),
        Value::Object(m) => {
            Value::Object(m.into_iter().map(|(k, x)| (k, named(x, names))).collect())
        }
        other => other,
    }
}

impl Demo for SqlPipeline {
    const INSTANCE: &'static str = "sql";
    const TITLE: &'static str = "SQL editor: your query over the orders source";
    const BLURB: &'static str = "Type a query over orders (customer TEXT, amount DOUBLE, ts BIGINT) and press Run: \
        the interpreter of `simplestream sql`, compiled into this page, lowers it into a plan and runs it with the \
        runtime's keyed state, windows and aggregates. Checkpoints, crash, restore and the reference check work as \
        for the compiled pipelines.";
    const SOURCE_PATH: &'static str = "your query, run by the interpreter of `simplestream sql`";
    const SOURCE_FILE: &'static str = EXAMPLES[0].1;
    const GEN: GenConfig = Orders::GEN;
    const LATE_BY_MS: i64 = Orders::LATE_BY_MS;

    /// The order as a row of the query's source, read from its JSON as `simplestream
    /// sql` reads an input line.
    fn order(_: u64, order: Order) -> Row {
        let line = serde_json::to_vec(&order).expect("an order serializes");
        Row::from_json(&sql::installed().query.input, &line)
            .expect("every query is checked against the orders source's columns")
    }

    fn table_json(json: Value) -> Value {
        table_json(json, sql::installed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_example_compiles() {
        for (label, text) in EXAMPLES {
            assert!(compile(text).is_ok(), "{label}: {:?}", compile(text).err());
        }
    }

    #[test]
    fn errors_point_at_the_editor_word() {
        let e = compile("SELECT customer, COUNT(*) FROM orders GROUP BY custmer").unwrap_err();
        assert_eq!((e.line, e.column), (Some(1), Some(48)));
        assert_eq!(e.word.as_deref(), Some("custmer"));
        assert!(e.msg.contains("did you mean `customer`"), "{}", e.msg);
        // A syntax error: the parser points at one character, the editor marks the word.
        let e =
            compile("SELECT customer COUNT(*)\nFROM orders\nGROUP BY customer oops").unwrap_err();
        assert!(e.msg.starts_with("SQL syntax error"), "{}", e.msg);
        let word = e.word.clone().unwrap();
        let (s, end) = (e.start.unwrap(), e.end.unwrap());
        assert_eq!(word.chars().count(), end - s);
        assert!(
            word.chars()
                .all(|c| c.is_alphanumeric() || c == '_' || c == '('),
            "{e:?}"
        );
        let e = compile("SELECT customer, COUNT(*) AS n,\n  amount\nFROM orders GROUP BY customer")
            .unwrap_err();
        assert_eq!(
            (e.line, e.column, e.word.as_deref()),
            (Some(2), Some(3), Some("amount"))
        );
        assert_eq!((e.start, e.end), (Some(34), Some(40)));
        let e =
            compile("CREATE TABLE t (a TEXT);\nSELECT a, COUNT(*) FROM t GROUP BY a").unwrap_err();
        assert!(
            e.msg.contains("the source is the playground's"),
            "{}",
            e.msg
        );
        assert_eq!(compile("").unwrap_err().line, None);
        let e = compile("CREATE TABLE p (id TEXT, ts BIGINT);\nSELECT * FROM orders o JOIN p ON o.customer = p.id AND TUMBLE(o.ts, INTERVAL '1' SECOND) = TUMBLE(p.ts, INTERVAL '1' SECOND)").unwrap_err();
        assert!(
            e.msg
                .contains("joins of two streams run in `simplestream sql`"),
            "{}",
            e.msg
        );
    }

    #[test]
    fn table_json_names_the_accumulators() {
        let p = compile(EXAMPLES[1].1).unwrap();
        let raw = serde_json::json!({"by_string": {"running": {"C001": [{"count": 2}, {"sum_float": 3.5}]}}});
        assert_eq!(
            table_json(raw, p),
            serde_json::json!({"C001": {"count": 2, "amount": 3.5}})
        );
    }
}

//! A stateful stage's state as a table, laid out by the stage's plan (`State` in
//! `simplestream::plan`): which key, which windows, which columns, which join inputs.
//! The values come from the stage's checkpoint JSON (`Pipeline::stage_json`).

use serde::Serialize;
use serde_json::Value;
use simplestream::plan::{Column, Op, Stage, State, Window};

use crate::text::{cell, hms, ms_label};

/// What the page draws for one stage.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Table {
    /// What the stage keeps, in words: `open 5 min tumbling windows per customer`.
    pub what: String,
    /// Column names.
    pub header: Vec<String>,
    /// Rows, one cell per column.
    pub rows: Vec<Vec<String>>,
    /// How many leading columns are labels (window, key, input); the rest are values.
    pub label_cols: usize,
    /// The stage's own watermark, if it keeps one.
    pub watermark: Option<i64>,
}

/// The table of `stage`'s state, `json` as [`stage_json`](simplestream::Pipeline::stage_json)
/// gives it.
///
/// ```
/// use serde_json::json;
/// use simplestream::Pipeline;
/// use simplestream_playground::{gallery::AllOrders, tables::table};
/// let stage = AllOrders::PLAN.stage("last_minute").unwrap();
/// let state = json!({"watermark": 0, "windows": {"20000": {"orders": 2, "revenue": 5.0, "biggest": 3.5}}});
/// let t = table(stage, &state);
/// assert_eq!(t.header, ["window (UTC)", "orders", "revenue", "biggest"]);
/// assert_eq!(t.rows, [["00:00:20–00:01:20", "2", "5.0", "3.50"]]);
/// ```
pub fn table(stage: &Stage, json: &Value) -> Table {
    let watermark = json.get("watermark").and_then(Value::as_i64);
    let mut t = match stage.state {
        State::PerKey { key } => per_key(stage, key, json),
        State::Windowed {
            key: Some(key),
            window: Window::Session { gap_ms, .. },
        } => sessions(stage, key, gap_ms, json),
        State::Windowed {
            key: Some(key),
            window,
        } => keyed_windows(stage, key, &window, json),
        State::Windowed { key: None, window } => global_windows(stage, &window, json),
        State::JoinBuffers { left, right, key } => match stage.join_window() {
            Some(window) => window_join(left, right, key, &window, json),
            None => interval_join(stage, left, right, key, json),
        },
        State::JoinFolds {
            left,
            right,
            key,
            reader,
            columns,
        } => match stage.join_window() {
            Some(window) => folded_join([left, right], key, reader, columns, &window, json),
            None => as_is(json),
        },
        _ => as_is(json),
    };
    t.watermark = watermark;
    t
}

/// A layout this page does not know yet: the state as it is.
fn as_is(json: &Value) -> Table {
    Table {
        what: "state".into(),
        header: vec!["state".into()],
        rows: match json {
            Value::Null => Vec::new(),
            v => vec![vec![v.to_string()]],
        },
        label_cols: 1,
        watermark: None,
    }
}

/// The header's value columns and a row's value cells: the aggregate columns, or the
/// whole accumulator when the plan names none.
fn value_header(stage: &Stage) -> Vec<String> {
    match stage.columns() {
        [] => vec!["state".into()],
        cols => cols.iter().map(|c| c.name.to_string()).collect(),
    }
}

fn value_cells(stage: &Stage, acc: &Value) -> Vec<String> {
    match stage.columns() {
        [] => vec![acc.to_string()],
        cols => cols
            .iter()
            .map(|c| cell(acc.get(c.name).unwrap_or(&Value::Null)))
            .collect(),
    }
}

fn entries(v: Option<&Value>) -> impl Iterator<Item = (&String, &Value)> {
    v.and_then(Value::as_object).into_iter().flatten()
}

fn labelled(what: String, labels: &[&str], stage: &Stage, rows: Vec<Vec<String>>) -> Table {
    let mut header: Vec<String> = labels.iter().map(|l| l.to_string()).collect();
    header.extend(value_header(stage));
    Table {
        what,
        header,
        rows,
        label_cols: labels.len(),
        watermark: None,
    }
}

fn per_key(stage: &Stage, key: &str, json: &Value) -> Table {
    let rows = entries(Some(json))
        .map(|(k, acc)| [vec![k.clone()], value_cells(stage, acc)].concat())
        .collect();
    labelled(format!("running aggregate per {key}"), &[key], stage, rows)
}

/// `04:00:00–04:05:00` for a window starting at `start`, or the start alone for a
/// window without a fixed size.
fn span(window: &Window, start: &str) -> String {
    let s: i64 = start.parse().unwrap_or(0);
    match *window {
        Window::Tumbling { size_ms, .. } | Window::Sliding { size_ms, .. } => {
            format!("{}–{}", hms(s), hms(s + size_ms))
        }
        _ => hms(s),
    }
}

/// `open 5 min tumbling windows`, `open 30 s windows (every 10 s)`.
fn open_windows(window: &Window) -> String {
    match *window {
        Window::Sliding {
            size_ms, slide_ms, ..
        } => format!(
            "open {} windows (every {})",
            ms_label(size_ms),
            ms_label(slide_ms)
        ),
        Window::Tumbling { size_ms, .. } => {
            format!("open {} tumbling windows", ms_label(size_ms))
        }
        _ => "open windows".into(),
    }
}

fn keyed_windows(stage: &Stage, key: &str, window: &Window, json: &Value) -> Table {
    let mut rows = Vec::new();
    for (start, keyed) in entries(json.get("windows")) {
        for (k, acc) in entries(Some(keyed)) {
            rows.push(
                [
                    vec![span(window, start), k.clone()],
                    value_cells(stage, acc),
                ]
                .concat(),
            );
        }
    }
    sort_by_labels(&mut rows, 2);
    let what = format!("{} per {key}", open_windows(window));
    labelled(what, &["window (UTC)", key], stage, rows)
}

fn global_windows(stage: &Stage, window: &Window, json: &Value) -> Table {
    let mut rows: Vec<Vec<String>> = entries(json.get("windows"))
        .map(|(start, acc)| [vec![span(window, start)], value_cells(stage, acc)].concat())
        .collect();
    sort_by_labels(&mut rows, 1);
    let what = format!(
        "{} over all events: one accumulator per window",
        open_windows(window)
    );
    labelled(what, &["window (UTC)"], stage, rows)
}

fn sessions(stage: &Stage, key: &str, gap_ms: i64, json: &Value) -> Table {
    let mut rows = Vec::new();
    for (k, list) in entries(json.get("sessions")) {
        for s in list.as_array().into_iter().flatten() {
            let time = |f: &str| s.get(f).and_then(Value::as_i64).unwrap_or(0);
            let label = format!("{}–{}", hms(time("start")), hms(time("end")));
            let acc = s.get("acc").unwrap_or(&Value::Null);
            rows.push([vec![label, k.clone()], value_cells(stage, acc)].concat());
        }
    }
    sort_by_labels(&mut rows, 2);
    let what = format!("open sessions (gap {}) per {key}", ms_label(gap_ms));
    labelled(what, &["session (UTC)", key], stage, rows)
}

/// Sorts rows by their first `n` cells, numbers as numbers (sale 9 before sale 10),
/// keeping the order of rows with equal labels.
fn sort_by_labels(rows: &mut [Vec<String>], n: usize) {
    let cmp = |a: &String, b: &String| match (a.parse::<i64>(), b.parse::<i64>()) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        _ => a.cmp(b),
    };
    rows.sort_by(|a, b| {
        a.iter()
            .zip(b)
            .take(n)
            .map(|(x, y)| cmp(x, y))
            .find(|o| o.is_ne())
            .unwrap_or(std::cmp::Ordering::Equal)
    });
}

/// One row per buffered event: `labels`, the input it came from, then `cells` of it.
fn buffered_rows(
    labels: &[String],
    sides: &Value,
    inputs: [&str; 2],
    cells: impl Fn(&Value) -> Vec<String>,
    rows: &mut Vec<Vec<String>>,
) {
    for (side, input) in ["left", "right"].into_iter().zip(inputs) {
        for event in sides
            .get(side)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            rows.push([labels, &[input.to_string()], &cells(event)[..]].concat());
        }
    }
}

fn window_join(left: &str, right: &str, key: &str, window: &Window, json: &Value) -> Table {
    let mut rows = Vec::new();
    for (start, keyed) in entries(json.get("windows")) {
        for (k, sides) in entries(Some(keyed)) {
            let labels = [span(window, start), k.clone()];
            let cells = |e: &Value| vec![e.to_string()];
            buffered_rows(&labels, sides, [left, right], cells, &mut rows);
        }
    }
    // Each input's events stay in arrival order.
    sort_by_labels(&mut rows, 3);
    Table {
        what: format!(
            "buffered {left} and {right} per {key} in {}: paired when a window closes",
            open_windows(window)
        ),
        header: vec![
            "window (UTC)".into(),
            key.into(),
            "input".into(),
            "event".into(),
        ],
        rows,
        label_cols: 4,
        watermark: None,
    }
}

/// One row per key and window: each input's event count, and the reader's columns that
/// fold one side's events (its count columns are the pairs, made at close).
fn folded_join(
    inputs: [&str; 2],
    key: &str,
    reader: &str,
    columns: &[Column],
    window: &Window,
    json: &Value,
) -> Table {
    let folded: Vec<&Column> = columns.iter().filter(|c| c.func != "count").collect();
    let mut rows = Vec::new();
    for (start, keyed) in entries(json.get("windows")) {
        for (k, f) in entries(Some(keyed)) {
            let count = |side: &str| cell(f.get(side).unwrap_or(&Value::Null));
            let mut row = vec![
                span(window, start),
                k.clone(),
                count("left"),
                count("right"),
            ];
            let acc = f.get("acc").unwrap_or(&Value::Null);
            row.extend(
                folded
                    .iter()
                    .map(|c| cell(acc.get(c.name).unwrap_or(&Value::Null))),
            );
            rows.push(row);
        }
    }
    sort_by_labels(&mut rows, 2);
    let [left, right] = inputs;
    let mut header = vec![
        "window (UTC)".to_string(),
        key.to_string(),
        format!("{left} events"),
        format!("{right} events"),
    ];
    header.extend(folded.iter().map(|c| c.name.to_string()));
    Table {
        what: format!(
            "{left} and {right} per {key} in {}: counted and folded for {reader} as they arrive (the events are not kept); the pairs are {left} × {right} when a window closes",
            open_windows(window)
        ),
        header,
        rows,
        label_cols: 2,
        watermark: None,
    }
}

fn interval_join(stage: &Stage, left: &str, right: &str, key: &str, json: &Value) -> Table {
    let mut rows = Vec::new();
    for (k, sides) in entries(json.get("buffers")) {
        // A buffered event is `{"ts":..,"event":{..}}`: its time gets a column.
        let cells = |e: &Value| {
            let ts = e.get("ts").and_then(Value::as_i64);
            let event = e.get("event").unwrap_or(&Value::Null);
            vec![ts.map(hms).unwrap_or_default(), event.to_string()]
        };
        buffered_rows(
            std::slice::from_ref(k),
            sides,
            [left, right],
            cells,
            &mut rows,
        );
    }
    sort_by_labels(&mut rows, 3);
    let bounds = stage.ops.iter().find_map(|op| match op {
        Op::IntervalJoin {
            lower_ms, upper_ms, ..
        } => Some((*lower_ms, *upper_ms)),
        _ => None,
    });
    let (lower, upper) = bounds.unwrap_or_default();
    Table {
        what: format!(
            "buffered {left} and {right} per {key}: a {left} event pairs with {right} from {} before to {} after it",
            ms_label(lower),
            ms_label(upper)
        ),
        header: vec![key.into(), "input".into(), "time (UTC)".into(), "event".into()],
        rows,
        label_cols: 4,
        watermark: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gallery::interval::{input, PaidQuickly};
    use crate::gallery::{AllOrders, Demo, Orders, PaidSales, Sessions};
    use serde_json::json;
    use simplestream::Pipeline;

    /// Pipeline `P` after `events`: each stateful stage's table and state JSON.
    fn tables<P: Pipeline>(events: impl Iterator<Item = P::Event>) -> Vec<(Table, Value)> {
        let mut p = P::new();
        let mut out = Vec::new();
        for e in events {
            p.process(e, &mut out);
        }
        P::PLAN
            .stateful_stages()
            .map(|s| {
                let json = p.stage_json(s.name).unwrap();
                (table(s, &json), json)
            })
            .collect()
    }

    /// Gallery pipeline `P` after its first `n` generated events.
    fn run<P: Demo>(n: u64) -> Vec<(Table, Value)> {
        tables::<P>((0..n).map(|i| P::generated(42, i)))
    }

    fn buffered(json: &Value, path: &str) -> usize {
        let count = |sides: &Value| {
            ["left", "right"]
                .iter()
                .map(|s| sides[s].as_array().unwrap().len())
                .sum::<usize>()
        };
        match path {
            "windows" => entries(json.get("windows"))
                .flat_map(|(_, keyed)| entries(Some(keyed)).map(|(_, sides)| count(sides)))
                .sum(),
            _ => entries(json.get(path)).map(|(_, sides)| count(sides)).sum(),
        }
    }

    #[test]
    fn a_window_join_shows_each_buffered_event_of_both_inputs_by_key() {
        let tables = run::<PaidSales>(40);
        let (t, json) = &tables[0];
        assert_eq!(t.header, ["window (UTC)", "sale_id", "input", "event"]);
        assert_eq!(t.rows.len(), buffered(json, "windows"));
        assert!(t
            .what
            .starts_with("buffered sales and payments per sale_id in open 30 s tumbling windows"));
        for input in ["sales", "payments"] {
            assert!(
                t.rows.iter().any(|r| r[2] == input),
                "{input}: {:?}",
                t.rows
            );
        }
        for r in &t.rows {
            let event: Value = serde_json::from_str(&r[3]).unwrap();
            let id = if r[2] == "sales" {
                &event["id"]
            } else {
                &event["sale_id"]
            };
            assert_eq!(id.to_string(), r[1], "{r:?}");
            let start = hms(event["ts"].as_i64().unwrap() / 30_000 * 30_000);
            assert!(r[0].starts_with(&start), "{r:?}");
        }
        let order: Vec<(&str, u64)> = t
            .rows
            .iter()
            .map(|r| (r[0].as_str(), r[1].parse().unwrap()))
            .collect();
        assert!(
            order.windows(2).all(|w| w[0] <= w[1]),
            "by window, then sale: {order:?}"
        );
        assert_eq!(t.watermark, json["watermark"].as_i64());
    }

    #[test]
    fn an_interval_join_shows_each_buffered_event_with_its_time() {
        let events = (0..40).map(|i| input(PaidSales::generated(42, i)));
        let tables = tables::<PaidQuickly>(events);
        let (t, json) = &tables[0];
        assert_eq!(t.header, ["sale_id", "input", "time (UTC)", "event"]);
        assert_eq!(t.rows.len(), buffered(json, "buffers"));
        assert!(
            t.rows.iter().any(|r| r[1] == "sales") && t.rows.iter().any(|r| r[1] == "payments")
        );
        for r in &t.rows {
            let event: Value = serde_json::from_str(&r[3]).unwrap();
            assert_eq!(r[2], hms(event["ts"].as_i64().unwrap()));
        }
        assert!(t
            .what
            .ends_with("a sales event pairs with payments from 0 s before to 5 s after it"));
    }

    #[test]
    fn a_window_over_all_events_has_one_row_per_window_and_its_columns() {
        let tables = run::<AllOrders>(100);
        let (t, json) = &tables[0];
        assert_eq!(t.header, ["window (UTC)", "orders", "revenue", "biggest"]);
        assert_eq!(t.label_cols, 1);
        let windows = json["windows"].as_object().unwrap();
        assert!(windows.len() >= 3, "sliding windows overlap: {json}");
        assert_eq!(t.rows.len(), windows.len());
        for (row, (start, acc)) in t.rows.iter().zip(windows) {
            let s: i64 = start.parse().unwrap();
            assert_eq!(row[0], format!("{}–{}", hms(s), hms(s + 60_000)));
            assert_eq!(row[1], acc["orders"].to_string());
        }
        assert!(t.what.contains("over all events"), "{}", t.what);
    }

    #[test]
    fn keyed_state_is_one_row_per_key_and_window() {
        let tables = run::<Orders>(200);
        let (running, json) = &tables[0];
        assert_eq!(running.header, ["customer", "count", "amount"]);
        assert_eq!(running.rows.len(), json.as_object().unwrap().len());
        assert_eq!(running.what, "running aggregate per customer");
        let (windows, _) = &tables[1];
        assert_eq!(
            windows.header,
            ["window (UTC)", "customer", "orders", "amount"]
        );
        assert_eq!(windows.label_cols, 2);
        assert!(!windows.rows.is_empty());
        let (sessions, _) = &run::<Sessions>(50)[0];
        assert_eq!(sessions.header[..2], ["session (UTC)", "customer"]);
        assert_eq!(sessions.what, "open sessions (gap 20 s) per customer");
        assert!(!sessions.rows.is_empty());
    }

    #[test]
    fn rows_sort_numbers_as_numbers() {
        let mut rows = vec![
            vec!["10".to_string(), "b".into()],
            vec!["9".to_string(), "a".into()],
            vec!["10".to_string(), "a".into()],
        ];
        sort_by_labels(&mut rows, 1);
        assert_eq!(rows, [["9", "a"], ["10", "b"], ["10", "a"]]);
    }

    simplestream::pipeline! {
        /// Sales paid in their window, counted and folded per sale as they arrive.
        pub pipeline PaidCounts;
        source sales: crate::gallery::Sale, event_time = |s| s.ts, max_delay = 0s;
        source payments: crate::gallery::Payment, event_time = |p| p.ts, max_delay = 0s;
        paid = sales
            .join(payments, sale_id: u64 = |s| s.id, |p| p.sale_id)
            .window(tumbling(30s));
        counts = paid
            .key_by(sale_id: u64 = |j| j.sale_id)
            .window(tumbling(30s))
            .aggregate(pairs = count(), biggest: f64 = max(|j| j.payments.amount));
        sink counts;
    }

    #[test]
    fn a_join_folding_for_its_reader_shows_counts_and_folds_not_events() {
        use crate::gallery::{Payment, Sale};
        let sale = |id, ts| {
            paid_counts::Input::Sales(Sale {
                id,
                customer: "C1".into(),
                amount: 1.0,
                ts,
            })
        };
        let pay = |sale_id, amount, ts| {
            paid_counts::Input::Payments(Payment {
                sale_id,
                amount,
                ts,
            })
        };
        let events = [
            sale(7, 1_000),
            pay(7, 2.5, 2_000),
            pay(7, 4.0, 3_000),
            sale(8, 4_000),
        ];
        let tables = tables::<PaidCounts>(events.into_iter());
        let (t, json) = &tables[0];
        assert_eq!(
            t.header,
            [
                "window (UTC)",
                "sale_id",
                "sales events",
                "payments events",
                "biggest"
            ],
            "{json}"
        );
        assert_eq!(
            t.rows,
            [
                ["00:00:00–00:00:30", "7", "1", "2", "4.0"],
                ["00:00:00–00:00:30", "8", "1", "0", "—"],
            ],
            "{json}"
        );
        assert!(
            t.what.contains("counted and folded for counts"),
            "{}",
            t.what
        );
    }

    #[test]
    fn a_layout_without_a_table_shows_the_state_as_it_is() {
        let stage = Stage {
            name: "s",
            input: "i",
            ops: &[Op::Filter],
            output_type: "T",
            sink: false,
            state: State::None,
        };
        let t = table(&stage, &json!({"x": 1}));
        assert_eq!(
            (t.header, t.rows),
            (
                vec!["state".to_string()],
                vec![vec![r#"{"x":1}"#.to_string()]]
            )
        );
        assert!(
            table(&stage, &Value::Null).rows.is_empty(),
            "crashed: nothing"
        );
    }
}

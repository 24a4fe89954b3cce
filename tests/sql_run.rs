//! `simplestream sql`: the interpreter run as users run it (a process over JSON lines),
//! checked against the same queries compiled by `pipeline!`: byte-identical output and
//! late events, the same after kill -9 at pause points, and clear errors for bad SQL
//! and bad events.

mod common;
mod support;

use std::path::Path;
use std::process::Command;

use simplestream::{OutputRecord, Pipeline};
use support::*;

/// The columns of `common::Order`, declared for the interpreter: late events then carry
/// every field, in the struct's order, as the compiled pipeline writes them.
const TABLE: &str = "CREATE TABLE orders (customer TEXT, amount DOUBLE, ts BIGINT);";

macro_rules! compiled {
    ($module:ident, $sql:literal) => {
        mod $module {
            use crate::common::*;
            simplestream::pipeline! {
                pub pipeline Sql;
                source orders: Order, event_time = |o| o.ts, max_delay = 5s;
                sql $sql;
            }
            pub const SQL: &str = $sql;
        }
    };
}

compiled!(
    tumbling,
    "SELECT customer, COUNT(*) AS n, SUM(amount) AS total, MIN(amount) AS low, MAX(amount) AS top, AVG(amount) AS mean
     FROM orders WHERE amount > 20 GROUP BY customer, TUMBLE(ts, INTERVAL '5' MINUTE) HAVING COUNT(*) > 3"
);
compiled!(
    hopping,
    "SELECT COUNT(*) AS n, MAX(ts) AS last, SUM(amount) AS total FROM orders GROUP BY HOP(ts, INTERVAL '1' MINUTE, INTERVAL '3' MINUTE)"
);
compiled!(
    sessions,
    "SELECT customer, COUNT(*) AS n, SUM(amount) AS total FROM orders GROUP BY customer, SESSION(ts, INTERVAL '2' SECOND)"
);
compiled!(
    running,
    "SELECT customer, COUNT(*) AS n, MAX(amount) AS top FROM orders WHERE customer <> 'C003' GROUP BY customer"
);
compiled!(
    filtered,
    "SELECT * FROM orders WHERE amount > 150 AND (customer = 'C002' OR ts % 7 = 0)"
);

/// The compiled pipeline's output over `input`, as the runner writes it: main lines
/// and late lines.
fn compiled_output<P: Pipeline<Event = common::Order>>(input: &str) -> (Vec<u8>, Vec<u8>) {
    let mut p = P::new();
    let mut out = Vec::new();
    for line in input.lines() {
        p.process(serde_json::from_str(line).unwrap(), &mut out);
    }
    p.finish(&mut out);
    let (mut main, mut late) = (Vec::new(), Vec::new());
    for rec in &out {
        let to = if rec.is_late() { &mut late } else { &mut main };
        simplestream::codec::to_json_writer(&mut *to, rec).unwrap();
        to.push(b'\n');
    }
    (main, late)
}

/// `simplestream sql QUERY` over `input` in `dir` (output, late events, checkpoints).
fn sql_cmd(dir: &Path, query: &str, input: &Path) -> Command {
    let mut c = Command::new(tool_bin());
    c.arg("sql").arg(query);
    c.arg("--input").arg(input);
    c.arg("--output").arg(dir.join("out.jsonl"));
    c.arg("--checkpoint-dir").arg(dir.join("ckpt"));
    c.args(["--instance", "app-instance-1", "--checkpoint-every", "250"]);
    c.env_remove("SIMPLESTREAM_FAILPOINT")
        .env_remove("RUST_LOG");
    c
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_default()
}

fn input(dir: &Path) -> std::path::PathBuf {
    // 3,000 orders of 8 customers, out of order by up to 5 s, every 97th far behind.
    put_input(dir, order_lines(21, 3_000, 8, 97, 0).as_bytes())
}

fn assert_same<P: Pipeline<Event = common::Order>>(sql: &str, codec: &str) {
    let dir = tmp();
    let input = input(dir.path());
    let (main, late) = compiled_output::<P>(&std::fs::read_to_string(&input).unwrap());
    assert!(
        !main.is_empty(),
        "{sql}: the compiled pipeline wrote nothing"
    );
    let query = format!("{TABLE}\n{sql}");
    let mut c = sql_cmd(dir.path(), &query, &input);
    c.args(["--codec", codec]);
    run_ok(c);
    let got = read(&dir.path().join("out.jsonl"));
    assert!(
        got == main,
        "{sql}: output differs\n--- interpreter ---\n{}\n--- compiled ---\n{}",
        String::from_utf8_lossy(&got[..got.len().min(600)]),
        String::from_utf8_lossy(&main[..main.len().min(600)])
    );
    assert_eq!(
        String::from_utf8_lossy(&read(&dir.path().join("out.jsonl.late"))),
        String::from_utf8_lossy(&late),
        "{sql}: late events differ"
    );
}

#[test]
fn interpreter_output_equals_the_compiled_sql_pipeline() {
    assert_same::<tumbling::Sql>(tumbling::SQL, "json");
    assert_same::<hopping::Sql>(hopping::SQL, "binary");
    assert_same::<sessions::Sql>(sessions::SQL, "json");
    assert_same::<running::Sql>(running::SQL, "binary");
    assert_same::<filtered::Sql>(filtered::SQL, "json");
}

#[test]
fn the_readme_query_runs_as_written_with_inferred_columns() {
    let dir = tmp();
    let input = input(dir.path());
    let q = "SELECT customer, COUNT(*) AS n FROM orders GROUP BY customer, TUMBLE(ts, INTERVAL '5' MINUTE)";
    run_ok(sql_cmd(dir.path(), q, &input));
    let out = String::from_utf8(read(&dir.path().join("out.jsonl"))).unwrap();
    let rows: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // Every in-time order is counted once, in a 5-minute window of its customer.
    let counted: u64 = rows.iter().map(|r| r["n"].as_u64().unwrap()).sum();
    let late = String::from_utf8(read(&dir.path().join("out.jsonl.late")))
        .unwrap()
        .lines()
        .count();
    assert_eq!(counted as usize + late, 3_000);
    assert!(late > 0, "the input has late orders");
    let r = &rows[0];
    let keys: Vec<&str> = r.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["customer", "window_start", "window_end", "n"]);
    assert_eq!(
        r["window_end"].as_i64().unwrap() - r["window_start"].as_i64().unwrap(),
        300_000
    );
}

#[test]
fn kill_9_at_pause_points_gives_the_uninterrupted_output() {
    for codec in ["json", "binary"] {
        let clean = tmp();
        let input = input(clean.path());
        let query = format!("{TABLE}\n{}", tumbling::SQL);
        run_ok(sql_cmd(clean.path(), &query, &input));
        let crashed = tmp();
        let targets = pause_targets(7, 4, 100..2_900);
        let kills = run_with_kills(
            || {
                let mut c = sql_cmd(crashed.path(), &query, &input);
                c.args(["--codec", codec]);
                c
            },
            &targets,
        );
        assert_eq!(kills, 4);
        assert_same_file(
            &clean.path().join("out.jsonl"),
            &crashed.path().join("out.jsonl"),
        );
        assert_same_file(
            &clean.path().join("out.jsonl.late"),
            &crashed.path().join("out.jsonl.late"),
        );
    }
}

#[test]
fn another_query_on_the_same_checkpoints_is_refused() {
    let dir = tmp();
    let input = input(dir.path());
    let q1 = "SELECT customer, COUNT(*) AS n FROM orders GROUP BY customer, TUMBLE(ts, INTERVAL '5' MINUTE)";
    let q2 = "SELECT customer, COUNT(*) AS n FROM orders WHERE amount > 10 GROUP BY customer, TUMBLE(ts, INTERVAL '5' MINUTE)";
    let mut c = sql_cmd(dir.path(), q1, &input);
    c.env("SIMPLESTREAM_PAUSE_AT", "1000");
    spawn_until_paused(c, &[1000]).kill();
    let before = read(&dir.path().join("out.jsonl"));
    let out = sql_cmd(dir.path(), q2, &input).output().unwrap();
    assert!(
        !out.status.success(),
        "a changed query resumed another's state"
    );
    let err = stderr_of(&out);
    assert!(
        err.contains("stage `query`") && err.contains("--allow-dropped-state query"),
        "the refusal names the stage and the way out: {err}"
    );
    assert_eq!(
        read(&dir.path().join("out.jsonl")),
        before,
        "the refused run changed the output"
    );
}

fn sql_error(query: &str) -> String {
    let dir = tmp();
    let input = input(dir.path());
    let out = sql_cmd(dir.path(), query, &input).output().unwrap();
    assert_eq!(code(&out), Some(2), "{query}: {}", stderr_of(&out));
    assert!(
        !dir.path().join("out.jsonl").exists(),
        "nothing is written for a bad query"
    );
    stderr_of(&out)
}

#[test]
fn a_parse_error_shows_the_sql_with_a_caret_at_the_position() {
    let caret = |err: &str| {
        let lines: Vec<&str> = err.lines().collect();
        let at = lines
            .iter()
            .position(|l| l.contains("SELECT customer"))
            .unwrap();
        lines[at + 1].find('^').map(|c| c - 2)
    };
    let err = sql_error("SELECT customer, COUNT(* FROM orders GROUP BY customer");
    assert!(
        err.contains("SQL syntax error: Expected: ), found: FROM (line 1, column 26)"),
        "{err}"
    );
    assert_eq!(caret(&err), Some(25), "{err}");
    // At the end of the query, sqlparser gives no position: the caret goes past the end.
    let err = sql_error("SELECT customer, COUNT(*) FROM orders GROUP BY customer HAVING");
    assert!(err.contains("found: EOF (line 1, column 63)"), "{err}");
    assert_eq!(caret(&err), Some(62), "{err}");
}

#[test]
fn an_unknown_column_is_reported_at_its_word_with_the_nearest_name() {
    let err = sql_error(&format!(
        "{TABLE}\nSELECT customer, SUM(amout) AS total FROM orders GROUP BY customer"
    ));
    assert!(
        err.contains(
            "unknown column `amout` in `orders`; did you mean `amount`? (line 2, column 22)"
        ),
        "{err}"
    );
    assert!(err.contains("\n                       ^^^^^"), "{err}");
    let err =
        sql_error("SELECT customer, COUNT(*) AS n FROM orders GROUP BY customer HAVING total > 2");
    assert!(
        err.contains("unknown column `total` in HAVING; the row's columns are customer, n"),
        "{err}"
    );
}

#[test]
fn a_malformed_event_names_its_line_and_field() {
    let dir = tmp();
    let lines = "{\"customer\":\"C001\",\"amount\":1.5,\"ts\":1000}\n\
                 {\"customer\":\"C002\",\"amount\":2.5,\"ts\":2000}\n\
                 {\"customer\":\"C001\",\"amount\":\"lots\",\"ts\":3000}\n";
    let input = put_input(dir.path(), lines.as_bytes());
    let q = "SELECT customer, SUM(amount) AS total FROM orders GROUP BY customer, TUMBLE(ts, INTERVAL '1' SECOND)";
    let out = sql_cmd(dir.path(), q, &input).output().unwrap();
    assert_eq!(code(&out), Some(2), "{}", stderr_of(&out));
    let err = stderr_of(&out);
    assert!(err.contains("line 3"), "{err}");
    assert!(err.contains("amount"), "{err}");
    let missing = put_input(dir.path(), b"{\"customer\":\"C001\",\"ts\":1000}\n");
    let d2 = tmp();
    let out = sql_cmd(d2.path(), q, &missing).output().unwrap();
    assert!(
        stderr_of(&out).contains("missing field `amount`"),
        "{}",
        stderr_of(&out)
    );
}

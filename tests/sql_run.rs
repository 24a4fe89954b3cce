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

/// The streams of `common::Sale` and `common::Payment`, declared for the interpreter.
const JOIN_TABLES: &str = "CREATE TABLE sales (id BIGINT, customer TEXT, amount DOUBLE, ts BIGINT);
CREATE TABLE payments (order_id BIGINT, paid DOUBLE, ts BIGINT);";

/// A join compiled by `pipeline!`, with a delay of 1 s (`--max-delay 1s`): some events are late.
macro_rules! compiled_join {
    ($module:ident, $sql:literal) => {
        mod $module {
            use crate::common::*;
            simplestream::pipeline! {
                pub pipeline Sql;
                source sales: Sale, event_time = |s| s.ts, max_delay = 1s;
                source payments: Payment, event_time = |p| p.ts, max_delay = 1s;
                sql $sql;
            }
            pub const SQL: &str = $sql;
        }
    };
}

compiled_join!(
    interval_join,
    "SELECT * FROM sales s JOIN payments p
     ON s.id = p.order_id AND p.ts BETWEEN s.ts - INTERVAL '1' SECOND AND s.ts + INTERVAL '3' SECOND"
);
compiled_join!(
    window_join,
    "SELECT * FROM sales JOIN payments ON sales.id = payments.order_id
     AND HOP(sales.ts, INTERVAL '2' SECOND, INTERVAL '4' SECOND) = HOP(payments.ts, INTERVAL '2' SECOND, INTERVAL '4' SECOND)"
);

/// 1,500 sales and their payments (0-8 s later, some missing), one JSON line per event
/// tagged with its stream, `{"sales":{..}}`, as compiled pipelines with two sources read;
/// every 500th event is followed by a sale and a payment from the first second (late).
fn join_input(dir: &Path) -> std::path::PathBuf {
    let mut lines = String::new();
    for (i, e) in common::sales_and_payments(7, 1_500).iter().enumerate() {
        lines.push_str(&serde_json::to_string(e).unwrap());
        lines.push('\n');
        if i % 500 == 499 {
            let id = 100_000 + i;
            lines.push_str(&format!(
                "{{\"sales\":{{\"id\":{id},\"customer\":\"C9\",\"amount\":1.0,\"ts\":1000000}}}}\n\
                 {{\"payments\":{{\"order_id\":{id},\"paid\":1.0,\"ts\":1000000}}}}\n"
            ));
        }
    }
    put_input(dir, lines.as_bytes())
}

/// The compiled pipeline's output over `input`, as the runner writes it: main lines
/// and late lines.
fn compiled_output<P: Pipeline>(input: &str) -> (Vec<u8>, Vec<u8>)
where
    P::Event: serde::de::DeserializeOwned,
{
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
    let flags = ["--codec", codec];
    assert_same_on::<P>(dir.path(), &input, &format!("{TABLE}\n{sql}"), &flags);
}

#[test]
fn interpreted_joins_equal_the_compiled_joins() {
    let dir = tmp();
    let input = join_input(dir.path());
    let q = format!("{JOIN_TABLES}\n{}", interval_join::SQL);
    let flags = ["--codec", "json", "--max-delay", "1s"];
    let (rows, late) = assert_same_on::<interval_join::Sql>(dir.path(), &input, &q, &flags);
    assert!(rows > 200 && late > 0, "{rows} pairs, {late} late events");
    let dir = tmp();
    let input = join_input(dir.path());
    let q = format!("{JOIN_TABLES}\n{}", window_join::SQL);
    let flags = ["--codec", "binary", "--max-delay", "1s"];
    let (rows, late) = assert_same_on::<window_join::Sql>(dir.path(), &input, &q, &flags);
    assert!(rows > 200 && late > 0, "{rows} pairs, {late} late events");
}

/// `sql` interpreted over `input` (in `dir`) writes what `P` writes, rows and late events;
/// returns how many of each.
fn assert_same_on<P: Pipeline>(
    dir: &Path,
    input: &Path,
    sql: &str,
    flags: &[&str],
) -> (usize, usize)
where
    P::Event: serde::de::DeserializeOwned,
{
    let (main, late) = compiled_output::<P>(&std::fs::read_to_string(input).unwrap());
    assert!(
        !main.is_empty(),
        "{sql}: the compiled pipeline wrote nothing"
    );
    let mut c = sql_cmd(dir, sql, input);
    c.args(flags);
    run_ok(c);
    let got = read(&dir.join("out.jsonl"));
    assert!(
        got == main,
        "{sql}: output differs\n--- interpreter ---\n{}\n--- compiled ---\n{}",
        String::from_utf8_lossy(&got[..got.len().min(600)]),
        String::from_utf8_lossy(&main[..main.len().min(600)])
    );
    assert_eq!(
        String::from_utf8_lossy(&read(&dir.join("out.jsonl.late"))),
        String::from_utf8_lossy(&late),
        "{sql}: late events differ"
    );
    let lines = |b: &[u8]| b.iter().filter(|c| **c == b'\n').count();
    (lines(&main), lines(&late))
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

/// A first run that stopped at line 1 (a mistyped column) saw no event: its checkpoint
/// holds nothing to lose, so the fixed query runs on the same checkpoints without
/// `--allow-dropped-state` and writes what a clean run writes. One event later, the
/// same change is refused.
#[test]
fn a_fixed_query_reruns_over_a_first_run_that_saw_no_event() {
    let dir = tmp();
    let input = input(dir.path());
    let typo = "SELECT customer, COUNT(*) AS n, SUM(amout) AS total FROM orders GROUP BY customer, TUMBLE(ts, INTERVAL '5' MINUTE)";
    let fixed = typo.replace("amout", "amount");
    let out = sql_cmd(dir.path(), typo, &input).output().unwrap();
    assert_eq!(code(&out), Some(2), "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains("missing field `amout`"));
    let out = sql_cmd(dir.path(), &fixed, &input).output().unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let clean = tmp();
    run_ok(sql_cmd(clean.path(), &fixed, &input));
    assert_same_file(
        &clean.path().join("out.jsonl"),
        &dir.path().join("out.jsonl"),
    );

    // One event read before the stop (line 2 lacks `amount`): the changed state is not dropped silently.
    let d2 = tmp();
    let two = put_input(
        d2.path(),
        b"{\"customer\":\"C001\",\"amount\":1.5,\"ts\":1000}\n{\"customer\":\"C002\",\"ts\":2000}\n",
    );
    let out = sql_cmd(d2.path(), &fixed, &two).output().unwrap();
    assert_eq!(code(&out), Some(2), "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains("line 2"), "{}", stderr_of(&out));
    let q1 = "SELECT customer, COUNT(*) AS n FROM orders GROUP BY customer, TUMBLE(ts, INTERVAL '5' MINUTE)";
    let out = sql_cmd(d2.path(), q1, &two).output().unwrap();
    assert!(!out.status.success(), "state of one event was dropped");
    assert!(
        stderr_of(&out).contains("--allow-dropped-state query"),
        "{}",
        stderr_of(&out)
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

#[test]
fn kill_9_during_a_join_gives_the_uninterrupted_output() {
    for (sql, codec) in [(window_join::SQL, "json"), (interval_join::SQL, "binary")] {
        let clean = tmp();
        let input = join_input(clean.path());
        let query = format!("{JOIN_TABLES}\n{sql}");
        let mut c = sql_cmd(clean.path(), &query, &input);
        c.args(["--max-delay", "1s"]);
        run_ok(c);
        let crashed = tmp();
        let targets = pause_targets(11, 3, 100..2_600);
        let kills = run_with_kills(
            || {
                let mut c = sql_cmd(crashed.path(), &query, &input);
                c.args(["--codec", codec, "--max-delay", "1s"]);
                c
            },
            &targets,
        );
        assert_eq!(kills, 3);
        let out = read(&clean.path().join("out.jsonl"));
        assert!(out.len() > 10_000, "{sql}: {} bytes of pairs", out.len());
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

/// The interpreter's window join with the disk backend and 1 KiB: its buffers go to
/// disk, and killed at three pauses it writes what an uninterrupted memory-backend run
/// writes.
#[test]
fn a_window_join_with_its_buffers_on_disk_survives_kill_9() {
    let clean = tmp();
    let input = join_input(clean.path());
    let query = format!("{JOIN_TABLES}\n{}", window_join::SQL);
    survives_kill_9_on_disk(clean, &input, &query, &["--max-delay", "1s"]);
}

/// The interpreter's interval join with the disk backend and 1 KiB: its buffers go to
/// disk, are read back as their events expire, and killed at three pauses the run
/// writes what a memory-backend run writes.
#[test]
fn an_interval_join_with_its_buffers_on_disk_survives_kill_9() {
    let clean = tmp();
    let input = join_input(clean.path());
    let query = format!("{JOIN_TABLES}\n{}", interval_join::SQL);
    survives_kill_9_on_disk(clean, &input, &query, &["--max-delay", "1s"]);
}

/// Session windows of 200 customers with the disk backend and 1 KiB: the sessions go
/// to disk, and killed at three pauses the run writes what a memory-backend run writes.
#[test]
fn session_windows_on_disk_survive_kill_9() {
    let clean = tmp();
    // 3,000 orders of 200 customers, 8 s apart per customer on average: sessions of a
    // 10 s gap both last and close.
    let input = put_input(clean.path(), order_lines(5, 3_000, 200, 97, 0).as_bytes());
    let query = format!(
        "{TABLE}\nSELECT customer, COUNT(*) AS n, SUM(amount) AS total FROM orders \
         GROUP BY customer, SESSION(ts, INTERVAL '10' SECOND)"
    );
    survives_kill_9_on_disk(clean, &input, &query, &[]);
}

/// `query` over `input` with the disk backend and 1 KiB: the run's last line counts
/// more than 100 entries evicted, and its output and late events, whole and killed at
/// three pauses, equal those of a memory-backend run (in `clean`).
fn survives_kill_9_on_disk(clean: tempfile::TempDir, input: &Path, query: &str, flags: &[&str]) {
    let mut c = sql_cmd(clean.path(), query, input);
    c.args(flags);
    run_ok(c);
    let on_disk = |dir: &Path| {
        let mut c = sql_cmd(dir, query, input);
        c.args(flags).args(["--codec", "binary"]);
        c.args([
            "--state-backend",
            "disk",
            "--state-memory",
            "1KiB",
            "--state-dir",
        ]);
        c.arg(dir.join("state"));
        c
    };
    let whole = tmp();
    let err = stderr_of(&run_ok(on_disk(whole.path())));
    let evicted: u64 = err
        .split("disk backend: ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no eviction count in:\n{err}"));
    assert!(evicted > 100, "{evicted} entries evicted");
    let crashed = tmp();
    let kills = run_with_kills(
        || on_disk(crashed.path()),
        &pause_targets(12, 3, 100..2_600),
    );
    assert_eq!(kills, 3);
    for dir in [whole.path(), crashed.path()] {
        for name in ["out.jsonl", "out.jsonl.late"] {
            assert_same_file(&clean.path().join(name), &dir.join(name));
        }
    }
}

#[test]
fn join_misuse_and_foreign_events_are_named() {
    let err = sql_error(&format!(
        "{JOIN_TABLES}\nSELECT * FROM sales s JOIN payments p ON s.id = p.order_id
         AND p.ts BETWEEN s.ts - INTERVAL '1' SECOND AND s.ts + INTERVAL '3' SECOND WHERE s.amount > 3"
    ));
    assert!(
        err.contains("WHERE on a join is not supported yet") && err.contains("(line 4, column 91)"),
        "{err}"
    );
    let err = sql_error(&format!(
        "{JOIN_TABLES}\nSELECT * FROM sales s JOIN payments p ON s.id = p.paid AND TUMBLE(s.ts, INTERVAL '1' SECOND) = TUMBLE(p.ts, INTERVAL '1' SECOND)"
    ));
    assert!(err.contains("ON of `paid`, declared a float: a key (GROUP BY, a join's ON) is a string or integer column"), "{err}");
    let dir = tmp();
    let input = put_input(
        dir.path(),
        b"{\"sales\":{\"id\":1,\"customer\":\"C1\",\"amount\":2.0,\"ts\":5}}\n{\"refunds\":{\"id\":1}}\n",
    );
    let q = format!("{JOIN_TABLES}\n{}", interval_join::SQL);
    let out = sql_cmd(dir.path(), &q, &input).output().unwrap();
    assert_eq!(code(&out), Some(2), "{}", stderr_of(&out));
    let err = stderr_of(&out);
    assert!(
        err.contains("line 2") && err.contains("unknown stream `refunds`"),
        "{err}"
    );
}

#[test]
fn several_grouping_columns_are_refused_with_a_hint() {
    let err = sql_error(&format!(
        "{TABLE}\nSELECT customer, COUNT(*) AS n FROM orders GROUP BY customer, amount"
    ));
    assert!(
        err.contains(
            "grouping by several columns is not supported; group by one column that holds both"
        ) && err.contains("(line 2, column 63)"),
        "{err}"
    );
}

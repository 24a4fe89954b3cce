//! The SQL editor's lab: typed queries run, crash and restore like compiled pipelines.

use super::*;
use crate::query::EXAMPLES;

type Sql = SqlLab<MemoryPlayStore>;

fn started(text: &str) -> Sql {
    let mut lab = Sql::new(MemoryPlayStore::default());
    lab.start(0);
    lab.set_query(text, 1);
    assert_eq!(lab.lab().status().0, "ok", "{}", lab.lab().status().1);
    lab
}

fn results(lab: &Sql) -> Vec<String> {
    let sink = lab.lab().sink();
    sink.rows.iter().map(|l| l.record.to_string()).collect()
}

#[test]
fn every_example_survives_crashes_and_shows_its_state() {
    for (label, text) in EXAMPLES {
        let mut lab = started(text);
        for round in 0..3 {
            lab.generate(41 + round * 7, 1_000);
            lab.checkpoint(2_000 + round as i64);
            lab.generate(17, 3_000);
            lab.crash(4_000);
            lab.restore(5_000);
            assert_eq!(lab.reference_match(), Some(true), "{label}");
        }
        lab.generate(60, 6_000);
        let v = lab.view(7_000);
        assert_eq!(v["reference"]["output"], "match", "{label}");
        assert!(v["outputs"]["total"].as_u64().unwrap() > 0, "{label}: rows");
        assert_eq!(v["sql"]["running"], *text);
        for stage in v["stages"].as_array().unwrap() {
            let rows = stage["rows"].as_array().unwrap();
            assert!(!rows.is_empty(), "{label}: {stage}");
            let header = stage["header"].as_array().unwrap();
            assert_eq!(header.len(), rows[0].as_array().unwrap().len(), "{label}");
        }
    }
}

#[test]
fn the_readme_query_gives_the_compiled_pipelines_rows() {
    let mut sql = started(
        "CREATE VIEW per_5min AS SELECT customer, COUNT(*) AS orders, SUM(amount) AS amount\n\
         FROM orders GROUP BY customer, TUMBLE(ts, INTERVAL '5' MINUTE)",
    );
    let mut dsl = Lab::<Orders, MemoryPlayStore>::new(MemoryPlayStore::default());
    dsl.start(0);
    for lab in [&mut sql as &mut dyn LabApi, &mut dsl] {
        lab.generate(300, 1_000);
        lab.send_late(2_000);
    }
    let compiled: Vec<String> = dsl
        .sink()
        .rows
        .iter()
        .map(|l| l.record.to_string())
        .collect();
    let rows = results(&sql);
    assert!(rows.len() > 10, "{rows:?}");
    assert_eq!(rows, compiled);
    assert!(
        rows.last().unwrap().contains(r#""stage":"per_5min""#),
        "the late event"
    );
}

#[test]
fn a_query_with_an_error_changes_nothing_and_says_where() {
    let mut lab = started(EXAMPLES[1].1);
    lab.generate(50, 1_000);
    let state = lab.state_json();
    assert!(lab.set_query(
        "SELECT customer, SUM(amout)\nFROM orders GROUP BY customer",
        2_000
    ));
    let e = lab.error().unwrap().clone();
    assert_eq!(
        (e.line, e.column, e.word.as_deref()),
        (Some(1), Some(22), Some("amout"))
    );
    let (level, msg) = lab.lab().status();
    assert_eq!(level, "error");
    assert!(
        msg.starts_with("Query not run: unknown column `amout`"),
        "{msg}"
    );
    assert!(msg.contains("(line 1, column 22)"), "{msg}");
    assert_eq!((lab.offset(), lab.state_json()), (Some(50), state));
    assert_eq!(lab.view(3_000)["sql"]["running"], EXAMPLES[1].1);
    lab.set_query(EXAMPLES[0].1, 4_000);
    assert!(lab.error().is_none());
    assert_eq!(lab.offset(), Some(0));
}

#[test]
fn a_reload_restores_the_query_and_its_checkpoint() {
    let text = EXAMPLES[3].1;
    let mut lab = started(text);
    lab.generate(80, 1_000);
    lab.checkpoint(2_000);
    let state = lab.state_json();
    lab.generate(20, 3_000);
    let mut again = Sql::new(lab.lab().store().clone());
    again.start(4_000);
    let (_, msg) = again.lab().status();
    assert!(
        msg.starts_with("Page loaded: Restored checkpoint #1"),
        "{msg}"
    );
    assert_eq!((again.text(), again.offset()), (text, Some(80)));
    assert_eq!(again.state_json(), state);
    again.generate(20, 5_000);
    assert_eq!(again.reference_match(), Some(true));
    // Another query starts afresh: the old one's checkpoints are not its own.
    again.set_query(EXAMPLES[0].1, 6_000);
    assert!(
        again
            .lab()
            .status()
            .1
            .contains("Deleted the previous query's"),
        "{}",
        again.lab().status().1
    );
    again.restore(7_000);
    assert_eq!(again.offset(), Some(0));
}

//! The SQL editor's lab: a [`Lab`] of the interpreter's [`SqlPipeline`] whose query the
//! user types. Running a query starts it afresh; the query is saved beside the
//! checkpoints, so a reload restores it and its latest checkpoint together.

use serde_json::{json, Value};
use simplestream::sql::{self, Prepared, SqlPipeline, Win};
use simplestream::Codec;

use super::desk::About;
use super::{Lab, LabApi, PlayStore};
use crate::gallery::Demo;
use crate::query::{compile, ErrorAt, EXAMPLES};

/// Side record: the text of the query the SQL lab runs.
pub const QUERY_KEY: &str = "query.sql";

/// The SQL editor's pipeline: the query, its lab, and the last refused query's error.
///
/// ```
/// use simplestream_playground::lab::{LabApi, MemoryPlayStore, SqlLab};
/// let mut lab = SqlLab::new(MemoryPlayStore::default());
/// lab.start(0);
/// lab.set_query("SELECT customer, COUNT(*) AS n FROM orders GROUP BY customer", 1);
/// lab.generate(10, 2);
/// assert_eq!(lab.view(3)["outputs"]["total"], 10, "a running aggregate: a row per event");
/// lab.set_query("SELECT customer, COUNT(*) AS n FROM orders GROUP BY custmer", 4);
/// assert_eq!(lab.error().unwrap().word.as_deref(), Some("custmer"));
/// assert_eq!(lab.offset(), Some(10), "a refused query changes nothing");
/// ```
pub struct SqlLab<S: PlayStore> {
    lab: Lab<SqlPipeline, S>,
    text: String,
    error: Option<ErrorAt>,
    /// Why the saved query was not used, said once the lab starts.
    load_problem: Option<String>,
}

/// How far behind the watermark the late button sends an event: past the window (and
/// the watermark delay), so its windows have closed.
fn late_by(p: &Prepared) -> i64 {
    let window = p.query.grouping.as_ref().and_then(|g| g.window);
    let reach = match window {
        Some(Win::Tumbling { size }) | Some(Win::Sliding { size, .. }) => size,
        Some(Win::Session { gap }) => gap,
        None => return SqlPipeline::LATE_BY_MS,
    };
    reach + p.query.max_delay_ms + 60_000
}

fn about(p: &'static Prepared) -> About {
    let mut a = About::of::<SqlPipeline>();
    a.source_file = &p.query.sql;
    a.late_by_ms = late_by(p);
    a
}

impl<S: PlayStore> SqlLab<S> {
    /// A lab running the query saved in `store` (the first example if there is none, or
    /// if the saved one no longer compiles), crashed until [`start`](LabApi::start).
    pub fn new(store: S) -> Self {
        let default = EXAMPLES[0].1;
        let saved = store.get_extra(QUERY_KEY);
        let (text, p, load_problem) = match saved.as_deref().map(|t| (t, compile(t))) {
            Some((t, Ok(p))) => (t.to_string(), p, None),
            Some((_, Err(e))) => (
                default.to_string(),
                compile(default).expect("the default query compiles"),
                Some(format!(
                    "the saved query was not run ({}); running the first example instead",
                    e.msg
                )),
            ),
            None => (
                default.to_string(),
                compile(default).expect("the default query compiles"),
                None,
            ),
        };
        SqlLab {
            lab: Self::lab_for(p, store),
            text,
            error: None,
            load_problem,
        }
    }

    fn lab_for(p: &'static Prepared, store: S) -> Lab<SqlPipeline, S> {
        sql::install_on_this_thread(p);
        let mut lab = Lab::new(store);
        lab.desk.about = about(p);
        lab
    }

    /// The running query's text, as typed.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The lab.
    pub fn lab(&self) -> &Lab<SqlPipeline, S> {
        &self.lab
    }

    /// The lab, mutably.
    pub fn lab_mut(&mut self) -> &mut Lab<SqlPipeline, S> {
        &mut self.lab
    }

    /// The last refused query's error, until a query runs.
    pub fn error(&self) -> Option<&ErrorAt> {
        self.error.as_ref()
    }

    fn refuse(&mut self, now: i64, e: ErrorAt) {
        let at = match (e.line, e.column) {
            (Some(l), Some(c)) => format!(" (line {l}, column {c})"),
            _ => String::new(),
        };
        let msg = format!(
            "Query not run: {}{at}. The previous query keeps running.",
            e.msg
        );
        self.error = Some(e);
        self.lab.desk.say(now, "error", msg);
    }

    /// Runs `text` from offset 0 with empty state: saves it, deletes the previous
    /// query's checkpoints (they hold another query's state), and starts a new pipeline.
    /// A query that does not compile changes nothing.
    fn run(&mut self, text: &str, now: i64) {
        let p = match compile(text) {
            Ok(p) => p,
            Err(e) => return self.refuse(now, e),
        };
        let store = self.lab.store_mut();
        if let Err(e) = store.put_extra(QUERY_KEY, text) {
            return self.lab.desk.say(
                now,
                "error",
                format!("Query not run: it could not be saved ({e})."),
            );
        }
        let dropped = store.list().map(|l| l.len()).unwrap_or(0);
        if let Err(e) = store.clear_checkpoints() {
            self.lab.desk.note(
                now,
                "warn",
                format!("the previous query's checkpoints could not be deleted ({e}); a restore will refuse them"),
            );
        }
        let fresh = Self::lab_for(p, self.lab.store().clone());
        let old = std::mem::replace(&mut self.lab, fresh);
        let d = &mut self.lab.desk;
        (d.log, d.dead_letters) = (old.desk.log, old.desk.dead_letters);
        (d.auto_every, d.codec) = (old.desk.auto_every, old.desk.codec);
        d.new_coordinator();
        self.lab.recover(now, false);
        self.text = text.to_string();
        self.error = None;
        let stage = p.query.stage;
        let columns = p.query.output.names.join(", ");
        let mut msg =
            format!("Running the query from offset 0: stage `{stage}`, rows ({columns}).");
        if dropped > 0 {
            msg.push_str(&format!(
                " Deleted the previous query's {dropped} checkpoint file(s)."
            ));
        }
        self.lab.desk.say(now, "ok", msg);
    }
}

impl<S: PlayStore> LabApi for SqlLab<S> {
    fn instance(&self) -> &'static str {
        self.lab.instance()
    }
    fn title(&self) -> &'static str {
        self.lab.title()
    }
    fn start(&mut self, now: i64) {
        self.lab.start(now);
        if let Some(p) = self.load_problem.take() {
            self.lab.desk.note(now, "warn", p);
        }
    }
    fn generate(&mut self, n: u64, now: i64) {
        self.lab.generate(n, now)
    }
    fn checkpoint(&mut self, now: i64) {
        self.lab.checkpoint(now)
    }
    fn crash(&mut self, now: i64) {
        self.lab.crash(now)
    }
    fn restore(&mut self, now: i64) {
        self.lab.restore(now)
    }
    fn corrupt_latest(&mut self, now: i64) {
        self.lab.corrupt_latest(now)
    }
    fn clear_storage(&mut self, now: i64) {
        self.lab.clear_storage(now)
    }
    fn send_manual(&mut self, customer: &str, amount: &str, ts: &str, now: i64) {
        self.lab.send_manual(customer, amount, ts, now)
    }
    fn send_late(&mut self, now: i64) {
        self.lab.send_late(now)
    }
    fn send_malformed(&mut self, now: i64) {
        self.lab.send_malformed(now)
    }
    fn set_auto(&mut self, every: Option<u64>, now: i64) {
        self.lab.set_auto(every, now)
    }
    fn set_codec(&mut self, codec: Codec, now: i64) {
        self.lab.set_codec(codec, now)
    }
    /// The lab's view, and the editor's: the running query, the examples, the error.
    fn view(&mut self, now: i64) -> Value {
        let mut v = self.lab.view(now);
        let examples: Vec<Value> = EXAMPLES
            .iter()
            .map(|(label, sql)| json!({"label": label, "sql": sql}))
            .collect();
        v["sql"] = json!({
            "running": self.text,
            "error": self.error,
            "examples": examples,
            "columns": sql::installed().query.output.names,
        });
        v
    }
    fn checkpoint_view(&self, name: &str) -> Value {
        self.lab.checkpoint_view(name)
    }
    fn offset(&self) -> Option<u64> {
        self.lab.offset()
    }
    fn state_json(&self) -> String {
        self.lab.state_json()
    }
    fn reference_match(&mut self) -> Option<bool> {
        self.lab.reference_match()
    }
    fn set_query(&mut self, text: &str, now: i64) -> bool {
        self.run(text, now);
        true
    }
}

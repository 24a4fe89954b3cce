//! A query with the identity the runtime reads of a pipeline (name, plan,
//! fingerprint, stages, state layouts), built once at run time, and the query that
//! [`SqlPipeline`](super::SqlPipeline)'s `Pipeline` impl runs: the process's, or one
//! set for the current thread by a host that changes queries (the browser playground).

use std::cell::Cell;
use std::sync::OnceLock;

use super::acc::Func;
use super::join::{JoinKind, JoinSpec};
use super::query::Query;
use crate::fingerprint::{combine, fnv1a};
use crate::plan::{Column, Op, Plan, Source, Stage, State as PlanState};

/// A query and its pipeline identity.
#[derive(Debug)]
pub struct Prepared {
    /// The query.
    pub query: Query,
    /// Its plan: one source, one stage.
    pub plan: &'static Plan,
    /// The plan's fingerprint with the query's text: another query is another pipeline.
    pub fingerprint: u64,
    /// The stateful stages (the query's, unless it only filters).
    pub stages: &'static [&'static str],
    /// The sinks: the query's stage.
    pub sinks: &'static [&'static str],
    /// Per stateful stage: the state's layout, with the query's text folded in.
    pub layouts: &'static [u64],
}

/// Gives `q` its identity; it lives as long as the process (a process runs one query).
pub fn prepare(q: Query) -> &'static Prepared {
    let plan: &'static Plan = Box::leak(Box::new(plan_of(&q)));
    let identity = fnv1a(&format!(
        "{}|columns:{:?}|time:{:?}|delay:{}|join:{:?}",
        q.canonical, q.input, q.time, q.max_delay_ms, q.join
    ));
    let stateful = q.grouping.is_some() || q.join.is_some();
    let stages: &'static [&'static str] = if stateful {
        Box::leak(Box::new([q.stage]))
    } else {
        &[]
    };
    let layouts: &'static [u64] = if stateful {
        Box::leak(Box::new([combine(fnv1a("sql::State"), identity)]))
    } else {
        &[]
    };
    Box::leak(Box::new(Prepared {
        fingerprint: combine(plan.fingerprint(), identity),
        plan,
        stages,
        sinks: Box::leak(Box::new([q.stage])),
        layouts,
        query: q,
    }))
}

static INSTALLED: OnceLock<&'static Prepared> = OnceLock::new();

/// Makes `p` the query `SqlPipeline::new()` (and so the runner) runs; once per process.
pub fn install(p: &'static Prepared) -> Result<(), &'static str> {
    INSTALLED
        .set(p)
        .map_err(|_| "a query is already installed in this process")
}

thread_local! {
    static ON_THIS_THREAD: Cell<Option<&'static Prepared>> = const { Cell::new(None) };
}

/// Makes `p` the query `SqlPipeline::new()` runs on this thread, over the installed one
/// and replacing any set here before: for a host that runs one query after another (the
/// browser playground, where the user edits it). Pipelines built for the previous query
/// must be dropped: checkpoints are read and written as the current query's.
///
/// ```
/// use simplestream_runtime::sql::{self, Options};
/// let q = |text| sql::prepare(sql::parse(text, &Options::default()).unwrap());
/// sql::install_on_this_thread(q("SELECT customer, COUNT(*) AS n FROM orders GROUP BY customer"));
/// assert_eq!(sql::installed().query.stage, "query");
/// sql::install_on_this_thread(q("CREATE VIEW totals AS SELECT customer, SUM(amount) FROM orders GROUP BY customer"));
/// assert_eq!(sql::installed().query.stage, "totals");
/// ```
pub fn install_on_this_thread(p: &'static Prepared) {
    ON_THIS_THREAD.with(|c| c.set(Some(p)));
}

/// The query this thread runs: the one [set for it](install_on_this_thread), else the
/// [installed](install) one.
///
/// # Panics
/// If there is none: the `Pipeline` impl of `SqlPipeline` has no other way to learn its
/// query.
pub fn installed() -> &'static Prepared {
    ON_THIS_THREAD
        .with(Cell::get)
        .or_else(|| INSTALLED.get().copied())
        .expect("sql::install(query) must run before SqlPipeline is used as a Pipeline")
}

fn plan_of(q: &Query) -> Plan {
    if let Some(j) = &q.join {
        return join_plan(q, j);
    }
    let mut ops = Vec::new();
    if q.filter.is_some() {
        ops.push(Op::Filter);
    }
    let mut state = PlanState::None;
    if let Some(g) = &q.grouping {
        let key = g.key.map(|(i, ty)| (q.input.names[i], ty.rust()));
        if let Some((key, key_type)) = key {
            ops.push(Op::KeyBy { key, key_type });
        }
        if let Some(w) = g.window {
            ops.push(Op::Window {
                window: super::window::plan(w),
            });
        }
        let columns: Vec<Column> = g
            .aggs
            .iter()
            .map(|a| Column {
                name: a.name,
                func: a.func.name(),
                ty: match a.func {
                    Func::Count => "u64",
                    _ => a.out_ty().rust(),
                },
            })
            .collect();
        ops.push(Op::Aggregate {
            columns: Box::leak(columns.into_boxed_slice()),
        });
        if g.having.is_some() {
            ops.push(Op::Filter);
        }
        state = match (key, g.window) {
            (Some((k, _)), None) => PlanState::PerKey { key: k },
            (k, Some(w)) => PlanState::Windowed {
                key: k.map(|k| k.0),
                window: super::window::plan(w),
            },
            (None, None) => PlanState::None,
        };
    }
    let source = Source {
        name: q.source,
        event_type: "row",
        max_delay_ms: q.max_delay_ms,
        sink: false,
    };
    let stage = Stage {
        name: q.stage,
        input: q.source,
        ops: Box::leak(ops.into_boxed_slice()),
        output_type: "row",
        sink: true,
        state,
    };
    Plan {
        name: "sql",
        sources: Box::leak(Box::new([source])),
        stages: Box::leak(Box::new([stage])),
    }
}

/// The plan of a join: two sources, one stage (as `pipeline!` plans the same SQL).
fn join_plan(q: &Query, j: &JoinSpec) -> Plan {
    let (right, key, key_type) = (j.right, j.key_name, j.key_ty.rust());
    let (left_type, right_type) = ("row", "row");
    let op = match j.kind {
        JoinKind::Window(w) => Op::Join {
            right,
            key,
            key_type,
            left_type,
            right_type,
            window: super::window::plan(w),
        },
        JoinKind::Interval { lower, upper } => Op::IntervalJoin {
            right,
            key,
            key_type,
            left_type,
            right_type,
            lower_ms: lower,
            upper_ms: upper,
        },
    };
    let source = |name| Source {
        name,
        event_type: "row",
        max_delay_ms: q.max_delay_ms,
        sink: false,
    };
    let stage = Stage {
        name: q.stage,
        input: q.source,
        ops: Box::leak(Box::new([op])),
        output_type: "row",
        sink: true,
        state: PlanState::JoinBuffers {
            left: q.source,
            right,
            key,
        },
    };
    Plan {
        name: "sql",
        sources: Box::leak(Box::new([source(q.source), source(right)])),
        stages: Box::leak(Box::new([stage])),
    }
}

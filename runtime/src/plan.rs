//! A pipeline's plan as data: what `pipeline!` compiled, stage by stage.
//!
//! Every generated pipeline carries its plan as [`Pipeline::PLAN`](crate::Pipeline::PLAN).
//! Tools read it instead of re-parsing the DSL: the playground draws its diagram and state
//! tables from it, the `checkpoints` tools name stages and their layouts with it, and the
//! fingerprint hashes the same description ([`Plan::fingerprint`]).
//!
//! ```
//! use simplestream_runtime::plan::{Op, Plan, Source, Stage, State, Window};
//!
//! const P: Plan = Plan {
//!     name: "P",
//!     sources: &[Source { name: "orders", event_type: "Order", max_delay_ms: 5_000, sink: false }],
//!     stages: &[Stage {
//!         name: "per_5min",
//!         input: "orders",
//!         output_type: "PerFiveMinRow",
//!         sink: true,
//!         ops: &[
//!             Op::KeyBy { key: "customer", key_type: "String" },
//!             Op::Window { window: Window::Tumbling { size_ms: 300_000, lateness_ms: 0 } },
//!             Op::Aggregate { columns: &[] },
//!         ],
//!         state: State::Windowed { key: Some("customer"), window: Window::Tumbling { size_ms: 300_000, lateness_ms: 0 } },
//!     }],
//! };
//! assert!(P.mermaid().contains("orders --> per_5min"));
//! assert_eq!(P.stateful_stages().count(), 1);
//! ```

use crate::fingerprint::Fnv;
use serde::Serialize;

/// What `pipeline!` compiled: sources and stages in the order they were written.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Plan {
    /// The pipeline's name.
    pub name: &'static str,
    /// Its sources.
    pub sources: &'static [Source],
    /// Its stages, each after the stages it reads.
    pub stages: &'static [Stage],
}

/// `source name: Type, event_time = .., max_delay = ..;`
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Source {
    /// Its name.
    pub name: &'static str,
    /// Its event type, as written.
    pub event_type: &'static str,
    /// How far behind the newest event time the watermark stays, ms.
    pub max_delay_ms: i64,
    /// True if the source is also a sink.
    pub sink: bool,
}

/// `name = input.op(..).op(..);`
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Stage {
    /// Its name: also the key of its state in a checkpoint.
    pub name: &'static str,
    /// The source or stage it reads (the left side of a join).
    pub input: &'static str,
    /// Its operators in order.
    pub ops: &'static [Op],
    /// The type of its rows, as written or generated.
    pub output_type: &'static str,
    /// True if it is a sink.
    pub sink: bool,
    /// What it keeps between events: the layout of its state in a checkpoint.
    pub state: State,
}

/// One operator of a stage.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// Keeps the events where a predicate holds.
    Filter,
    /// One event to one row.
    Map {
        /// The rows' type.
        output_type: &'static str,
    },
    /// One event to any number of rows.
    FlatMap {
        /// The items' type.
        output_type: &'static str,
    },
    /// Groups events by a key column.
    KeyBy {
        /// The key column's name.
        key: &'static str,
        /// Its type.
        key_type: &'static str,
    },
    /// Groups events into windows of event time.
    Window {
        /// Kind, sizes and allowed lateness.
        window: Window,
    },
    /// Folds each group (key, window, or both) into columns.
    Aggregate {
        /// The columns.
        columns: &'static [Column],
    },
    /// Passes the first event of each key and drops the others.
    Distinct {
        /// The key column's name.
        key: &'static str,
        /// Its type.
        key_type: &'static str,
    },
    /// Pairs events of two inputs with equal keys in the same window.
    Join {
        /// The right input.
        right: &'static str,
        /// The join key's name.
        key: &'static str,
        /// Its type.
        key_type: &'static str,
        /// The left events' type.
        left_type: &'static str,
        /// The right events' type.
        right_type: &'static str,
        /// The window pairs must share.
        window: Window,
    },
    /// Pairs events of two inputs with equal keys whose times are close.
    IntervalJoin {
        /// The right input.
        right: &'static str,
        /// The join key's name.
        key: &'static str,
        /// Its type.
        key_type: &'static str,
        /// The left events' type.
        left_type: &'static str,
        /// The right events' type.
        right_type: &'static str,
        /// A right event pairs if its time is at least `left - lower_ms` ...
        lower_ms: i64,
        /// ... and at most `left + upper_ms`.
        upper_ms: i64,
    },
}

/// A window and its allowed lateness, in ms of event time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Window {
    /// Fixed, non-overlapping.
    Tumbling {
        /// Size.
        size_ms: i64,
        /// Allowed lateness.
        lateness_ms: i64,
    },
    /// Fixed size, a new one every `slide_ms`.
    Sliding {
        /// Size.
        size_ms: i64,
        /// Slide.
        slide_ms: i64,
        /// Allowed lateness.
        lateness_ms: i64,
    },
    /// Closes after `gap_ms` without events for its key.
    Session {
        /// Inactivity gap.
        gap_ms: i64,
        /// Allowed lateness.
        lateness_ms: i64,
    },
}

/// An aggregate column: `name: type = func(..)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Column {
    /// Its name.
    pub name: &'static str,
    /// Its function: `count`, `sum`, `min`, `max`, `avg`, or `custom`.
    pub func: &'static str,
    /// Its output type.
    #[serde(rename = "type")]
    pub ty: &'static str,
}

/// What a stage keeps between events, and so the shape of its state in a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum State {
    /// Nothing: the stage is not in checkpoints.
    None,
    /// One accumulator per key (`key_by(..).aggregate(..)`).
    PerKey {
        /// The key column.
        key: &'static str,
    },
    /// Open windows, each with one accumulator per key, or one accumulator when `key` is
    /// `None` (a window over all events).
    Windowed {
        /// The key column, if keyed.
        key: Option<&'static str>,
        /// The windows.
        window: Window,
    },
    /// Every key seen so far (`distinct`): grows by one entry per new key.
    SeenKeys {
        /// The key column.
        key: &'static str,
    },
    /// Buffered events of both join inputs, by key.
    JoinBuffers {
        /// The left input.
        left: &'static str,
        /// The right input.
        right: &'static str,
        /// The join key.
        key: &'static str,
    },
    /// A windowed join whose only reader is a keyed aggregate over the same tumbling
    /// window, of `count()` and columns reading one side: per key and open window, how
    /// many events of each input arrived and the reader's `columns` folded from them, not
    /// the events. The reader's count columns are the pairs, `left * right`, at close.
    JoinFolds {
        /// The left input.
        left: &'static str,
        /// The right input.
        right: &'static str,
        /// The join key.
        key: &'static str,
        /// The reading stage.
        reader: &'static str,
        /// The reader's columns, whose accumulator the join keeps per key and window.
        columns: &'static [Column],
    },
}

impl Column {
    /// `n: u64 = count`: the column as a state layout and `checkpoints layout` write it.
    ///
    /// ```
    /// use simplestream_runtime::plan::Column;
    /// let c = Column { name: "n", func: "count", ty: "u64" };
    /// assert_eq!(c.layout(), "n: u64 = count");
    /// ```
    pub fn layout(&self) -> String {
        format!("{}: {} = {}", self.name, self.ty, self.func)
    }
}

impl State {
    /// The key column the state is kept by; `None` for no state and for windows over
    /// all events.
    ///
    /// ```
    /// use simplestream_runtime::plan::State;
    /// assert_eq!(State::PerKey { key: "customer" }.key(), Some("customer"));
    /// assert_eq!(State::None.key(), None);
    /// ```
    pub const fn key(&self) -> Option<&'static str> {
        match *self {
            State::None => None,
            State::PerKey { key }
            | State::SeenKeys { key }
            | State::JoinBuffers { key, .. }
            | State::JoinFolds { key, .. } => Some(key),
            State::Windowed { key, .. } => key,
        }
    }
}

impl Window {
    /// Allowed lateness, ms.
    pub const fn lateness_ms(&self) -> i64 {
        match *self {
            Window::Tumbling { lateness_ms, .. }
            | Window::Sliding { lateness_ms, .. }
            | Window::Session { lateness_ms, .. } => lateness_ms,
        }
    }

    /// Short text for diagrams: `tumbling 5min`, `sliding 30s/10s`, `session 20s`.
    pub fn label(&self) -> String {
        let d = crate::time::format_duration_ms;
        match *self {
            Window::Tumbling { size_ms, .. } => format!("tumbling {}", d(size_ms)),
            Window::Sliding {
                size_ms, slide_ms, ..
            } => format!("sliding {}/{}", d(size_ms), d(slide_ms)),
            Window::Session { gap_ms, .. } => format!("session {}", d(gap_ms)),
        }
    }
}

impl Op {
    /// The operator's DSL name: `filter`, `key_by`, `interval_join`, ...
    pub const fn name(&self) -> &'static str {
        match self {
            Op::Filter => "filter",
            Op::Map { .. } => "map",
            Op::FlatMap { .. } => "flat_map",
            Op::KeyBy { .. } => "key_by",
            Op::Window { .. } => "window",
            Op::Aggregate { .. } => "aggregate",
            Op::Distinct { .. } => "distinct",
            Op::Join { .. } => "join",
            Op::IntervalJoin { .. } => "interval_join",
        }
    }

    /// Short text for diagrams.
    pub fn label(&self) -> String {
        match self {
            Op::KeyBy { key, .. } => format!("key_by {key}"),
            Op::Distinct { key, .. } => format!("distinct {key}"),
            Op::Window { window } => window.label(),
            Op::Aggregate { columns } => {
                let cols: Vec<String> = columns
                    .iter()
                    .map(|c| format!("{}={}", c.name, c.func))
                    .collect();
                format!("aggregate {}", cols.join(", "))
            }
            Op::Join {
                right, key, window, ..
            } => format!("join {right} on {key}, {}", window.label()),
            Op::IntervalJoin { right, key, .. } => format!("interval_join {right} on {key}"),
            other => other.name().to_string(),
        }
    }
}

impl Stage {
    /// The other input of a join, if this stage joins.
    pub fn right_input(&self) -> Option<&'static str> {
        self.ops.iter().find_map(|op| match op {
            Op::Join { right, .. } | Op::IntervalJoin { right, .. } => Some(*right),
            _ => None,
        })
    }

    /// The window of a windowed join, if the stage is one.
    pub fn join_window(&self) -> Option<Window> {
        self.ops.iter().find_map(|op| match op {
            Op::Join { window, .. } => Some(*window),
            _ => None,
        })
    }

    /// The aggregate columns, if the stage aggregates.
    pub fn columns(&self) -> &'static [Column] {
        self.ops
            .iter()
            .find_map(|op| match op {
                Op::Aggregate { columns } => Some(*columns),
                _ => None,
            })
            .unwrap_or(&[])
    }
}

impl Stage {
    /// The layout of this stage's state, as text: what a checkpoint must agree on for the
    /// stage's state to be restored into it (key type, aggregate columns, window kind,
    /// sizes and lateness, join types). Stateless operators and closure bodies are not in
    /// it; the stage's name is not either (a renamed stage keeps its layout).
    ///
    /// ```
    /// use simplestream_runtime::plan::{Column, Op, Stage, State};
    /// const S: Stage = Stage {
    ///     name: "customer_stats", input: "orders", output_type: "Row", sink: false,
    ///     ops: &[
    ///         Op::Filter,
    ///         Op::KeyBy { key: "customer", key_type: "String" },
    ///         Op::Aggregate { columns: &[Column { name: "count", func: "count", ty: "u64" }] },
    ///     ],
    ///     state: State::PerKey { key: "customer" },
    /// };
    /// assert_eq!(S.state_layout(), "key customer: String; aggregate count: u64 = count");
    /// ```
    pub fn state_layout(&self) -> String {
        self.state_layout_as(&Earlier::default())
    }

    /// The layout this stage's state had before the changes `earlier` undoes: what a
    /// declared migration converts from.
    ///
    /// ```
    /// use simplestream_runtime::plan::{Column, Earlier, Op, Stage, State};
    /// const S: Stage = Stage {
    ///     name: "per_shard", input: "orders", output_type: "Row", sink: false,
    ///     ops: &[
    ///         Op::KeyBy { key: "shard", key_type: "u64" },
    ///         Op::Aggregate { columns: &[
    ///             Column { name: "n", func: "count", ty: "u64" },
    ///             Column { name: "top", func: "max", ty: "f64" },
    ///         ] },
    ///     ],
    ///     state: State::PerKey { key: "shard" },
    /// };
    /// let before = Earlier { key_type: Some("u32"), added_columns: &["top"], lateness_ms: None };
    /// assert_eq!(S.state_layout_as(&before), "key shard: u32; aggregate n: u64 = count");
    /// ```
    pub fn state_layout_as(&self, earlier: &Earlier) -> String {
        let mut parts = Vec::new();
        for op in self.ops {
            match op {
                Op::KeyBy { key, key_type } => {
                    let key_type = earlier.key_type.unwrap_or(key_type);
                    parts.push(format!("key {key}: {key_type}"))
                }
                Op::Distinct { key, key_type } => {
                    parts.push(format!("distinct {key}: {key_type}"))
                }
                Op::Window { window } => parts.push(window_layout(window, earlier.lateness_ms)),
                Op::Aggregate { columns } => parts.push(format!(
                    "aggregate {}",
                    columns_layout(columns, earlier.added_columns)
                )),
                Op::Join {
                    key,
                    key_type,
                    left_type,
                    right_type,
                    window,
                    ..
                } => {
                    parts.push(format!("join {key}: {key_type} of {left_type}, {right_type}"));
                    parts.push(window_layout(window, earlier.lateness_ms));
                    if let State::JoinFolds { columns, .. } = self.state {
                        parts.push(format!("folded {}", columns_layout(columns, &[])));
                    }
                }
                Op::IntervalJoin {
                    key,
                    key_type,
                    left_type,
                    right_type,
                    lower_ms,
                    upper_ms,
                    ..
                } => parts.push(format!(
                    "interval_join {key}: {key_type} of {left_type}, {right_type}, lower {lower_ms}ms, upper {upper_ms}ms"
                )),
                Op::Filter | Op::Map { .. } | Op::FlatMap { .. } => {}
            }
        }
        parts.join("; ")
    }
}

/// What a stage's state layout was before a change a migration converts from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Earlier {
    /// The key's type, if it changed.
    pub key_type: Option<&'static str>,
    /// Aggregate columns added since.
    pub added_columns: &'static [&'static str],
    /// The window's allowed lateness, ms, if it changed.
    pub lateness_ms: Option<i64>,
}

/// `n: u64 = count, top: f64 = max`, without the `added` columns.
fn columns_layout(columns: &[Column], added: &[&str]) -> String {
    let cols: Vec<String> = columns
        .iter()
        .filter(|c| !added.contains(&c.name))
        .map(Column::layout)
        .collect();
    cols.join(", ")
}

/// `window tumbling 300000ms, lateness 0ms`: sizes in ms, so equal windows read equal.
fn window_layout(w: &Window, lateness_ms: Option<i64>) -> String {
    let kind = match *w {
        Window::Tumbling { size_ms, .. } => format!("tumbling {size_ms}ms"),
        Window::Sliding {
            size_ms, slide_ms, ..
        } => format!("sliding {size_ms}ms/{slide_ms}ms"),
        Window::Session { gap_ms, .. } => format!("session {gap_ms}ms"),
    };
    let lateness = lateness_ms.unwrap_or(w.lateness_ms());
    format!("window {kind}, lateness {lateness}ms")
}

impl Plan {
    /// The stage named `name`.
    pub fn stage(&self, name: &str) -> Option<&'static Stage> {
        self.stages.iter().find(|s| s.name == name)
    }

    /// The stages that keep state, in the order their state is written to a checkpoint.
    pub fn stateful_stages(&self) -> impl Iterator<Item = &'static Stage> {
        self.stages.iter().filter(|s| s.state != State::None)
    }

    /// The plan as a mermaid flowchart: sources, stages (stateful ones as cylinders),
    /// and sinks.
    pub fn mermaid(&self) -> String {
        let mut out = String::from("flowchart LR\n");
        for src in self.sources {
            out.push_str(&format!("  {0}[/\"source {0}\"/]\n", src.name));
            if src.sink {
                out.push_str(&format!("  {0} --> sink_{0}[[\"sink {0}\"]]\n", src.name));
            }
        }
        for s in self.stages {
            let mut label = s.name.to_string();
            for op in s.ops {
                label.push_str(" · ");
                label.push_str(&op.label());
            }
            let (open, close) = if s.state == State::None {
                ("[", "]")
            } else {
                ("[(", ")]")
            };
            out.push_str(&format!("  {}{open}\"{label}\"{close}\n", s.name));
            out.push_str(&format!("  {} --> {}\n", s.input, s.name));
            if let Some(right) = s.right_input() {
                out.push_str(&format!("  {right} --> {}\n", s.name));
            }
            if s.sink {
                out.push_str(&format!("  {0} --> sink_{0}[[\"sink {0}\"]]\n", s.name));
            }
        }
        out
    }
}

/// The fingerprint of a plan's structure: sources, stages, operators, keys, windows and
/// column types, not the bodies of closures (changing a filter's condition keeps
/// checkpoints compatible). `const`, so `pipeline!` computes it from the plan it emits.
impl Plan {
    /// FNV-1a of the plan's canonical text, `v1;pipeline P;source s:T;max_delay=N;stage ...`.
    pub const fn fingerprint(&self) -> u64 {
        let mut h = Fnv::new().str("v1;pipeline ").str(self.name);
        let mut i = 0;
        while i < self.sources.len() {
            let s = &self.sources[i];
            h = h.str(";source ").str(s.name).str(":").str(s.event_type);
            h = h.str(";max_delay=").int(s.max_delay_ms);
            i += 1;
        }
        let mut i = 0;
        while i < self.stages.len() {
            h = stage_fingerprint(h, &self.stages[i]);
            i += 1;
        }
        h.finish()
    }
}

const fn stage_fingerprint(mut h: Fnv, st: &Stage) -> Fnv {
    h = h
        .str(";stage ")
        .str(st.name)
        .str("<-")
        .str(st.input)
        .str(":");
    // Stateless operators before the stateful part end in `|`, those after it start with one.
    let mut after = false;
    let mut i = 0;
    while i < st.ops.len() {
        h = match &st.ops[i] {
            Op::Filter | Op::Map { .. } | Op::FlatMap { .. } if after => {
                h.str("|").str(st.ops[i].name())
            }
            Op::Filter | Op::Map { .. } | Op::FlatMap { .. } => h.str(st.ops[i].name()).str("|"),
            Op::Join {
                right,
                key,
                key_type,
                left_type,
                right_type,
                window,
            } => {
                after = true;
                let h = join_fingerprint(h, right, key, key_type, left_type, right_type);
                window_fingerprint(h.str(",window("), window).str(")")
            }
            Op::IntervalJoin {
                right,
                key,
                key_type,
                left_type,
                right_type,
                lower_ms,
                upper_ms,
            } => {
                after = true;
                let h = join_fingerprint(h, right, key, key_type, left_type, right_type);
                h.str(",interval(")
                    .int(*lower_ms)
                    .str(",")
                    .int(*upper_ms)
                    .str("))")
            }
            Op::KeyBy { key, key_type } => {
                after = true;
                h.str("key(").str(key).str(":").str(key_type).str(")")
            }
            Op::Distinct { key, key_type } => {
                after = true;
                h.str("distinct(").str(key).str(":").str(key_type).str(")")
            }
            Op::Window { window } => {
                // A window without `key_by` before it is a window over all events.
                let h = if after { h } else { h.str("all") };
                after = true;
                window_fingerprint(h.str("|window("), window)
            }
            Op::Aggregate { columns } => {
                let h = if after { h } else { h.str("all") };
                after = true;
                let mut h = h.str("|aggregate(");
                let mut c = 0;
                while c < columns.len() {
                    let col = &columns[c];
                    h = h
                        .str(col.name)
                        .str(":")
                        .str(col.ty)
                        .str("=")
                        .str(col.func)
                        .str(",");
                    c += 1;
                }
                h.str(")")
            }
        };
        i += 1;
    }
    h
}

const fn join_fingerprint(
    h: Fnv,
    right: &str,
    key: &str,
    key_type: &str,
    left_type: &str,
    right_type: &str,
) -> Fnv {
    h.str("join(")
        .str(right)
        .str(",")
        .str(key)
        .str(":")
        .str(key_type)
        .str(",")
        .str(left_type)
        .str(":")
        .str(right_type)
}

/// The window as `Tumbling { size: 300000 },lateness=0)`, the text fingerprints always hashed.
const fn window_fingerprint(h: Fnv, w: &Window) -> Fnv {
    let h = match *w {
        Window::Tumbling { size_ms, .. } => h.str("Tumbling { size: ").int(size_ms),
        Window::Sliding {
            size_ms, slide_ms, ..
        } => h
            .str("Sliding { size: ")
            .int(size_ms)
            .str(", slide: ")
            .int(slide_ms),
        Window::Session { gap_ms, .. } => h.str("Session { gap: ").int(gap_ms),
    };
    h.str(" },lateness=").int(w.lateness_ms()).str(")")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fingerprint::fnv1a;

    const WINDOW: Window = Window::Sliding {
        size_ms: 30_000,
        slide_ms: 10_000,
        lateness_ms: -1,
    };

    #[test]
    fn the_fingerprint_hashes_the_canonical_text() {
        const P: Plan = Plan {
            name: "P",
            sources: &[Source {
                name: "s",
                event_type: "E",
                max_delay_ms: 1_000,
                sink: false,
            }],
            stages: &[
                Stage {
                    name: "a",
                    input: "s",
                    ops: &[
                        Op::Filter,
                        Op::KeyBy {
                            key: "k",
                            key_type: "u32",
                        },
                        Op::Window { window: WINDOW },
                        Op::Aggregate {
                            columns: &[Column {
                                name: "n",
                                func: "count",
                                ty: "u64",
                            }],
                        },
                        Op::Map { output_type: "R" },
                    ],
                    output_type: "R",
                    sink: false,
                    state: State::Windowed {
                        key: Some("k"),
                        window: WINDOW,
                    },
                },
                Stage {
                    name: "b",
                    input: "a",
                    ops: &[Op::IntervalJoin {
                        right: "s",
                        key: "k",
                        key_type: "u32",
                        left_type: "R",
                        right_type: "E",
                        lower_ms: 0,
                        upper_ms: 2_000,
                    }],
                    output_type: "(R,E)",
                    sink: true,
                    state: State::JoinBuffers {
                        left: "a",
                        right: "s",
                        key: "k",
                    },
                },
            ],
        };
        let text = "v1;pipeline P;source s:E;max_delay=1000\
            ;stage a<-s:filter|key(k:u32)|window(Sliding { size: 30000, slide: 10000 },lateness=-1)\
            |aggregate(n:u64=count,)|map\
            ;stage b<-a:join(s,k:u32,R:E,interval(0,2000))";
        assert_eq!(P.fingerprint(), fnv1a(text));
        assert!(P.mermaid().contains("s --> b"));
        assert_eq!(P.stage("b").unwrap().right_input(), Some("s"));
        assert_eq!(P.stateful_stages().count(), 2);
    }

    #[test]
    fn distinct_is_the_stateful_part_of_its_stage() {
        const P: Plan = Plan {
            name: "P",
            sources: &[],
            stages: &[Stage {
                name: "first",
                input: "s",
                ops: &[
                    Op::Filter,
                    Op::Distinct {
                        key: "k",
                        key_type: "String",
                    },
                    Op::Map { output_type: "R" },
                ],
                output_type: "R",
                sink: true,
                state: State::SeenKeys { key: "k" },
            }],
        };
        let text = "v1;pipeline P;stage first<-s:filter|distinct(k:String)|map";
        assert_eq!(P.fingerprint(), fnv1a(text));
        assert!(P
            .mermaid()
            .contains("first[(\"first · filter · distinct k · map\")]"));
    }
}

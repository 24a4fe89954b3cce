//! `checkpoints layout`: what a program's checkpoints hold, read from its pipeline's plan.

use crate::fingerprint::to_hex;
use crate::plan::{Column, Op, Plan, Stage, State};
use crate::time::format_duration_ms as dur;

/// The field multi-source pipelines keep their sources' clocks in.
const CLOCKS: &str = "source_clocks";

/// What every checkpoint of a pipeline holds after its header: one line per stage state
/// (named as in the checkpoint), saying what it keeps, by which key, in which windows, and
/// its aggregate columns.
///
/// ```
/// use simplestream_runtime::plan::{Column, Op, Plan, Source, Stage, State};
/// use simplestream_runtime::runner::checkpoints::layout;
///
/// const P: Plan = Plan {
///     name: "Totals",
///     sources: &[Source { name: "orders", event_type: "Order", max_delay_ms: 0, sink: false }],
///     stages: &[Stage {
///         name: "totals",
///         input: "orders",
///         output_type: "TotalsRow",
///         sink: true,
///         ops: &[
///             Op::KeyBy { key: "customer", key_type: "String" },
///             Op::Aggregate { columns: &[Column { name: "n", func: "count", ty: "u64" }] },
///         ],
///         state: State::PerKey { key: "customer" },
///     }],
/// };
/// let text = layout(&P, 0xabc);
/// assert!(text.starts_with("pipeline Totals (fingerprint 0000000000000abc)"), "{text}");
/// assert!(text.contains("totals  one accumulator per key customer: String; columns n: u64 = count"), "{text}");
/// ```
pub fn layout(plan: &Plan, fingerprint: u64) -> String {
    let mut lines: Vec<(&str, String)> = plan
        .stateful_stages()
        .map(|s| (s.name, describe(s)))
        .collect();
    if plan.sources.len() > 1 {
        let names: Vec<&str> = plan.sources.iter().map(|s| s.name).collect();
        let what = format!("the event-time clock of each source: {}", names.join(", "));
        lines.push((CLOCKS, what));
    }
    let mut out = format!(
        "pipeline {} (fingerprint {}): each checkpoint holds, after its header:\n",
        plan.name,
        to_hex(fingerprint)
    );
    if lines.is_empty() {
        out.push_str("  nothing else: the pipeline keeps no state\n");
    }
    let width = lines.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
    for (name, what) in lines {
        out.push_str(&format!("  {name:<width$}  {what}\n"));
    }
    out
}

/// One stage's state in words.
fn describe(s: &Stage) -> String {
    let key = |k: &str| match key_type(s, k) {
        Some(t) => format!("{k}: {t}"),
        None => k.to_string(),
    };
    let what = match s.state {
        State::None => String::new(),
        State::PerKey { key: k } => format!("one accumulator per key {}", key(k)),
        State::SeenKeys { key: k } => format!("the keys {} seen so far (distinct)", key(k)),
        State::Windowed {
            key: Some(k),
            window,
        } => format!(
            "open {} windows, one accumulator per key {} in each",
            window.label(),
            key(k)
        ),
        State::Windowed { key: None, window } => format!(
            "open {} windows over all events, one accumulator each",
            window.label()
        ),
        State::JoinBuffers {
            left,
            right,
            key: k,
        } => format!(
            "buffered events of {left} and {right} by key {}{}",
            key(k),
            join_bounds(s)
        ),
        State::JoinFolds {
            left,
            right,
            key: k,
            reader,
            columns,
        } => {
            let cols: Vec<String> = columns.iter().map(Column::layout).collect();
            format!(
                "per key {} and open {} window, how many {left} and {right} events arrived and the columns of {reader} folded from them ({}); not the events",
                key(k),
                s.join_window().map(|w| w.label()).unwrap_or_default(),
                cols.join(", ")
            )
        }
    };
    let columns: Vec<String> = s.columns().iter().map(Column::layout).collect();
    if columns.is_empty() {
        what
    } else {
        format!("{what}; columns {}", columns.join(", "))
    }
}

/// The type of the key column `name`, from the operator that names it.
fn key_type(s: &Stage, name: &str) -> Option<&'static str> {
    s.ops.iter().find_map(|op| match *op {
        Op::KeyBy { key, key_type }
        | Op::Distinct { key, key_type }
        | Op::Join { key, key_type, .. }
        | Op::IntervalJoin { key, key_type, .. }
            if key == name =>
        {
            Some(key_type)
        }
        _ => None,
    })
}

/// How long a join keeps events: its window, or its interval.
fn join_bounds(s: &Stage) -> String {
    s.ops
        .iter()
        .find_map(|op| match *op {
            Op::Join { window, .. } => Some(format!(", kept for their {} window", window.label())),
            Op::IntervalJoin {
                lower_ms, upper_ms, ..
            } => Some(format!(
                ", paired from {} before to {} after",
                dur(lower_ms),
                dur(upper_ms)
            )),
            _ => None,
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Op, Stage, State};

    #[test]
    fn a_distinct_stage_names_its_key_and_type() {
        let s = Stage {
            name: "first",
            input: "s",
            ops: &[Op::Distinct {
                key: "customer",
                key_type: "String",
            }],
            output_type: "Order",
            sink: true,
            state: State::SeenKeys { key: "customer" },
        };
        assert_eq!(
            describe(&s),
            "the keys customer: String seen so far (distinct)"
        );
    }

    #[test]
    fn a_join_folding_for_its_reader_says_it_keeps_counts_not_events() {
        const COLUMNS: &[Column] = &[Column {
            name: "top",
            func: "max",
            ty: "u64",
        }];
        let s = Stage {
            name: "opened",
            input: "persons",
            ops: &[Op::Join {
                right: "auctions",
                key: "id",
                key_type: "u64",
                left_type: "Person",
                right_type: "Auction",
                window: crate::plan::Window::Tumbling {
                    size_ms: 10_000,
                    lateness_ms: 0,
                },
            }],
            output_type: "Opened",
            sink: false,
            state: State::JoinFolds {
                left: "persons",
                right: "auctions",
                key: "id",
                reader: "q8",
                columns: COLUMNS,
            },
        };
        assert_eq!(
            describe(&s),
            "per key id: u64 and open tumbling 10s window, how many persons and auctions events arrived and the columns of q8 folded from them (top: u64 = max); not the events"
        );
        assert_eq!(
            s.state_layout(),
            "join id: u64 of Person, Auction; window tumbling 10000ms, lateness 0ms; folded top: u64 = max"
        );
    }
}

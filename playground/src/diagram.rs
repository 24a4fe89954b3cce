//! The stage diagram, from the plan `pipeline!` emitted: its boxes (sources, stages,
//! sinks), what each says, and the arrows into it. The page (`www/app.js`) only lays the
//! boxes out by depth and draws them.

use serde::Serialize;
use simplestream::plan::{Op, Plan, Stage, State, Window};
use simplestream::time::format_duration_ms;

/// One box of the diagram.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Node {
    /// Unique id: the source's or stage's name, or `sink:<name>`.
    pub id: String,
    /// `source`, `stage` or `sink`.
    pub kind: &'static str,
    /// The name shown in bold.
    pub title: String,
    /// One line per operator (or the source's type and delay).
    pub lines: Vec<String>,
    /// The ids of the boxes with an arrow into this one (two for a join).
    pub inputs: Vec<String>,
    /// Column: 0 for sources, one more than its furthest input otherwise.
    pub depth: usize,
    /// True if the stage keeps state (saved in checkpoints).
    pub stateful: bool,
}

/// The diagram's boxes, each after its inputs.
///
/// ```
/// use simplestream::Pipeline;
/// use simplestream_playground::{diagram::diagram, gallery::PaidSales};
/// let nodes = diagram(PaidSales::PLAN);
/// let join = nodes.iter().find(|n| n.id == "paid").unwrap();
/// assert_eq!(join.inputs, ["sales", "payments"]);
/// ```
pub fn diagram(plan: &Plan) -> Vec<Node> {
    let mut nodes: Vec<Node> = Vec::new();
    let depth_of =
        |nodes: &[Node], id: &str| nodes.iter().find(|n| n.id == id).map_or(0, |n| n.depth);
    for s in plan.sources {
        nodes.push(Node {
            id: s.name.into(),
            kind: "source",
            title: s.name.into(),
            lines: vec![
                format!("source: {}", s.event_type),
                format!("max_delay {}", dur(s.max_delay_ms)),
            ],
            inputs: Vec::new(),
            depth: 0,
            stateful: false,
        });
    }
    for st in plan.stages {
        let inputs: Vec<String> = std::iter::once(st.input)
            .chain(st.right_input())
            .map(String::from)
            .collect();
        let depth = 1 + inputs
            .iter()
            .map(|i| depth_of(&nodes, i))
            .max()
            .unwrap_or(0);
        nodes.push(Node {
            id: st.name.into(),
            kind: "stage",
            title: st.name.into(),
            lines: st.ops.iter().map(|op| op_line(st, op)).collect(),
            inputs,
            depth,
            stateful: st.state != State::None,
        });
    }
    let sinks = plan
        .sources
        .iter()
        .filter(|s| s.sink)
        .map(|s| s.name)
        .chain(plan.stages.iter().filter(|s| s.sink).map(|s| s.name));
    for name in sinks.collect::<Vec<_>>() {
        let depth = depth_of(&nodes, name) + 1;
        nodes.push(Node {
            id: format!("sink:{name}"),
            kind: "sink",
            title: "sink".into(),
            lines: vec![name.into()],
            inputs: vec![name.into()],
            depth,
            stateful: false,
        });
    }
    nodes
}

/// An operator's line: its label, with what the label leaves out (lateness, a join's
/// interval, a window over all events).
fn op_line(stage: &Stage, op: &Op) -> String {
    match op {
        Op::Window { window } => {
            let all = matches!(stage.state, State::Windowed { key: None, .. });
            let mut line = window_line(window);
            if all {
                line.push_str(", over all events");
            }
            line
        }
        Op::Join {
            right, key, window, ..
        } => {
            format!("join {right} on {key}, {}", window_line(window))
        }
        Op::IntervalJoin {
            right,
            key,
            lower_ms,
            upper_ms,
            ..
        } => format!(
            "interval_join {right} on {key}, lower {}, upper {}",
            dur(*lower_ms),
            dur(*upper_ms)
        ),
        other => other.label(),
    }
}

/// `5s`, `5min`, and `0s` (not `0ms`).
fn dur(ms: i64) -> String {
    match ms {
        0 => "0s".into(),
        _ => format_duration_ms(ms),
    }
}

fn window_line(w: &Window) -> String {
    match w.lateness_ms() {
        0 => w.label(),
        late => format!("{}, late {}", w.label(), dur(late)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gallery::interval::PaidQuickly;
    use crate::gallery::{AllOrders, Orders, PaidSales};
    use simplestream::Pipeline;

    fn node<'a>(nodes: &'a [Node], id: &str) -> &'a Node {
        nodes.iter().find(|n| n.id == id).unwrap()
    }

    #[test]
    fn a_join_has_two_sources_as_inputs() {
        let nodes = diagram(PaidSales::PLAN);
        let sources: Vec<&str> = nodes
            .iter()
            .filter(|n| n.kind == "source")
            .map(|n| n.id.as_str())
            .collect();
        assert_eq!(sources, ["sales", "payments"]);
        let join = node(&nodes, "paid");
        assert_eq!(join.inputs, ["sales", "payments"]);
        assert_eq!(join.lines, ["join payments on sale_id, tumbling 30s"]);
        assert!(join.stateful);
        assert_eq!(join.depth, 1);
        assert_eq!(node(&nodes, "sink:paid").depth, 2);
        let nodes = diagram(PaidQuickly::PLAN);
        let join = node(&nodes, "paid_in_5s");
        assert_eq!(join.inputs, ["sales", "payments"]);
        assert_eq!(
            join.lines,
            ["interval_join payments on sale_id, lower 0s, upper 5s"]
        );
    }

    #[test]
    fn a_window_over_all_events_says_so() {
        let nodes = diagram(AllOrders::PLAN);
        assert_eq!(
            node(&nodes, "last_minute").lines,
            [
                "sliding 1min/20s, late 5s, over all events",
                "aggregate orders=count, revenue=sum, biggest=max"
            ]
        );
        let nodes = diagram(Orders::PLAN);
        let stats = node(&nodes, "customer_stats");
        assert_eq!(
            stats.lines,
            ["key_by customer", "aggregate count=count, amount=sum"]
        );
        assert_eq!(node(&nodes, "per_5min").lines[1], "tumbling 5min");
        assert_eq!(
            node(&nodes, "orders").lines,
            ["source: Order", "max_delay 5s"]
        );
        assert_eq!(nodes.iter().filter(|n| n.kind == "sink").count(), 1);
    }
}

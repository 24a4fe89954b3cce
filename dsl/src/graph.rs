//! The plan as a graph, for drawing (the playground renders it as SVG or mermaid).

use crate::valid::{Plan, WindowKind};

/// The plan as mermaid flowchart text.
///
/// ```
/// let plan = simplestream_dsl::plan_str(
///     "pipeline P; source s: E, event_time = |e| e.ts, max_delay = 1s; \
///      c = s.key_by(k: u32 = |e| e.k).aggregate(n = count()); sink c;").unwrap();
/// let m = simplestream_dsl::graph::mermaid(&plan);
/// assert!(m.contains("s --> c"));
/// ```
pub fn mermaid(plan: &Plan) -> String {
    let mut out = String::from("flowchart LR\n");
    for src in &plan.sources {
        out.push_str(&format!("  {}[/\"source {}\"/]\n", src.name, src.name));
    }
    for s in &plan.stages {
        let mut label = s.name.to_string();
        if let Some(j) = &s.join {
            label.push_str(&format!(" · join {} on {}", j.right, j.key_name));
        }
        for op in &s.pre {
            label.push_str(&format!(" · {}", op.kind_name()));
        }
        if let Some(k) = &s.keyed {
            if !k.global {
                label.push_str(&format!(" · key_by {}", k.key_name));
            }
            if let Some(w) = &k.window {
                label.push_str(&match w.kind {
                    WindowKind::Tumbling { size } => format!(" · tumbling {size}ms"),
                    WindowKind::Sliding { size, slide } => format!(" · sliding {size}/{slide}ms"),
                    WindowKind::Session { gap } => format!(" · session {gap}ms"),
                });
            }
            let cols: Vec<String> = k
                .aggs
                .iter()
                .map(|a| format!("{}={}", a.name, a.func))
                .collect();
            label.push_str(&format!(" · aggregate {}", cols.join(", ")));
        }
        let shape = if s.keyed.is_some() {
            ("[(", ")]")
        } else {
            ("[", "]")
        };
        out.push_str(&format!(
            "  {}{}\"{}\"{}\n",
            s.name, shape.0, label, shape.1
        ));
        out.push_str(&format!("  {} --> {}\n", s.input, s.name));
        if let Some(j) = &s.join {
            out.push_str(&format!("  {} --> {}\n", j.right, s.name));
        }
        if s.sink {
            out.push_str(&format!(
                "  {} --> sink_{}[[\"sink {}\"]]\n",
                s.name, s.name, s.name
            ));
        }
    }
    out
}

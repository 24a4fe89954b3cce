//! A small reader of `pipeline!` text, enough to draw the stage diagram and to label the
//! state tables (which stage is a running aggregate, which a window of what size).
//!
//! The real parser is `simplestream-dsl`, built on `syn`; it stays out of the WASM. This
//! one only splits statements and method calls at bracket depth 0; anything it does not
//! understand is skipped, and the page then shows raw JSON instead.

use serde::Serialize;
use simplestream::time::parse_duration_ms;

/// What a stage keeps.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StageKind {
    /// No state (filter, map, flat_map).
    Stateless,
    /// `key_by ... aggregate`: one running aggregate per key.
    Running,
    /// Tumbling windows.
    Tumbling {
        /// Window size, ms.
        size_ms: i64,
        /// Allowed lateness, ms.
        lateness_ms: i64,
    },
    /// Sliding windows.
    Sliding {
        /// Window size, ms.
        size_ms: i64,
        /// A new window every, ms.
        slide_ms: i64,
        /// Allowed lateness, ms.
        lateness_ms: i64,
    },
    /// Session windows.
    Session {
        /// Inactivity gap, ms.
        gap_ms: i64,
        /// Allowed lateness, ms.
        lateness_ms: i64,
    },
}

/// One aggregate column: its name and function, e.g. `amount` = `sum`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Column {
    /// Column name.
    pub name: String,
    /// Aggregate function (`count`, `sum`, `min`, `max`, `avg`, `custom`).
    pub func: String,
}

/// One `name = input.op(..)...;` statement.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageView {
    /// Stage name.
    pub name: String,
    /// The stage (or source) it reads.
    pub input: String,
    /// Its operators, shortened for the diagram: `filter`, `key_by customer`, `tumbling 5min`, ...
    pub ops: Vec<String>,
    /// Key column, if keyed.
    pub key: Option<String>,
    /// Aggregate columns, if any.
    pub columns: Vec<Column>,
    /// What state it keeps.
    #[serde(flatten)]
    pub kind: StageKind,
}

/// The pipeline as the diagram draws it.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct DslSummary {
    /// Pipeline name.
    pub name: String,
    /// Source name.
    pub source: String,
    /// Source event type.
    pub source_type: String,
    /// `max_delay` as written (e.g. `5s`).
    pub max_delay: String,
    /// Stages in order.
    pub stages: Vec<StageView>,
    /// Sink names.
    pub sinks: Vec<String>,
}

impl DslSummary {
    /// A stage by name.
    pub fn stage(&self, name: &str) -> Option<&StageView> {
        self.stages.iter().find(|s| s.name == name)
    }
}

/// Splits at `sep` where no bracket or string is open.
fn split_top(s: &str, sep: char) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut in_str = false;
    let mut esc = false;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        if in_str {
            match c {
                _ if esc => esc = false,
                '\\' => esc = true,
                '"' => in_str = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_str = true,
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth -= 1,
            _ if c == sep && depth == 0 => {
                out.push(&s[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

/// The index of the first `=` at depth 0 that is an assignment (not `==`, `=>`, `<=`...).
fn assign_at(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut depth = 0i32;
    for (i, &c) in b.iter().enumerate() {
        match c {
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => depth -= 1,
            b'=' if depth == 0 => {
                let prev = if i > 0 { b[i - 1] } else { b' ' };
                let next = b.get(i + 1).copied().unwrap_or(b' ');
                if !matches!(prev, b'=' | b'<' | b'>' | b'!') && !matches!(next, b'=' | b'>') {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

fn ident_prefix(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// `.name(args)` calls after the input, at depth 0.
fn calls(mut s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    loop {
        s = s.trim_start();
        let Some(rest) = s.strip_prefix('.') else {
            return out;
        };
        let rest = rest.trim_start();
        let name = ident_prefix(rest);
        let after = rest[name.len()..].trim_start();
        let Some(args) = after.strip_prefix('(') else {
            return out;
        };
        // Find the matching `)`.
        let mut depth = 1i32;
        let mut end = None;
        let mut in_str = false;
        for (i, c) in args.char_indices() {
            match c {
                '"' => in_str = !in_str,
                '(' | '[' | '{' if !in_str => depth += 1,
                ')' | ']' | '}' if !in_str => {
                    depth -= 1;
                    if depth == 0 {
                        end = Some(i);
                        break;
                    }
                }
                _ => {}
            }
        }
        let Some(end) = end else {
            return out;
        };
        out.push((name.to_string(), args[..end].trim().to_string()));
        s = &args[end + 1..];
    }
}

fn duration(s: &str) -> i64 {
    parse_duration_ms(s.trim()).unwrap_or(0)
}

fn window_kind(args: &str) -> Option<(StageKind, String)> {
    let parts = split_top(args, ',');
    let spec = parts.first()?.trim();
    let lateness = parts
        .iter()
        .skip(1)
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| k.trim() == "allowed_lateness")
        .map(|(_, v)| v.trim());
    let lateness_ms = lateness.map(duration).unwrap_or(0);
    let kind = ident_prefix(spec);
    let inner = spec[kind.len()..]
        .trim()
        .strip_prefix('(')?
        .strip_suffix(')')?;
    let nums: Vec<&str> = split_top(inner, ',').into_iter().map(str::trim).collect();
    let late = lateness.map(|l| format!(", late {l}")).unwrap_or_default();
    Some(match kind {
        "tumbling" => (
            StageKind::Tumbling {
                size_ms: duration(nums.first()?),
                lateness_ms,
            },
            format!("tumbling {}{late}", nums.first()?),
        ),
        "sliding" => (
            StageKind::Sliding {
                size_ms: duration(nums.first()?),
                slide_ms: duration(nums.get(1)?),
                lateness_ms,
            },
            format!("sliding {} every {}{late}", nums.first()?, nums.get(1)?),
        ),
        "session" => (
            StageKind::Session {
                gap_ms: duration(nums.first()?),
                lateness_ms,
            },
            format!("session gap {}{late}", nums.first()?),
        ),
        _ => return None,
    })
}

fn columns(args: &str) -> Vec<Column> {
    split_top(args, ',')
        .into_iter()
        .filter_map(|c| {
            let c = c.trim();
            let at = assign_at(c)?;
            let name = ident_prefix(c).to_string();
            let func = ident_prefix(c[at + 1..].trim()).to_string();
            (!name.is_empty()).then_some(Column { name, func })
        })
        .collect()
}

/// Reads the `pipeline! { ... }` text of a gallery pipeline.
///
/// ```
/// use simplestream_playground::dsl_view::{summarize, StageKind};
/// let s = summarize("pipeline! { pub pipeline P; source o: Order, event_time = |o| o.ts, max_delay = 5s;
///     w = o.key_by(c: String = |o| o.c.clone()).window(tumbling(5min)).aggregate(n = count()); sink w; }");
/// assert_eq!(s.stages[0].kind, StageKind::Tumbling { size_ms: 300_000, lateness_ms: 0 });
/// assert_eq!(s.sinks, ["w"]);
/// ```
pub fn summarize(text: &str) -> DslSummary {
    let body = text
        .trim()
        .strip_prefix("pipeline!")
        .map(str::trim)
        .and_then(|b| b.strip_prefix('{'))
        .and_then(|b| b.trim_end().strip_suffix('}'))
        .unwrap_or(text);
    let code: String = body
        .lines()
        .map(|l| match l.trim_start().starts_with("//") {
            true => "",
            false => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let mut out = DslSummary::default();
    for stmt in split_top(&code, ';') {
        let stmt = stmt.split_whitespace().collect::<Vec<_>>().join(" ");
        let stmt = stmt.trim();
        if stmt.is_empty() {
            continue;
        }
        let stmt = stmt.strip_prefix("pub ").unwrap_or(stmt);
        if let Some(n) = stmt.strip_prefix("pipeline ") {
            out.name = n.trim().to_string();
        } else if let Some(rest) = stmt.strip_prefix("source ") {
            let parts = split_top(rest, ',');
            if let Some((n, ty)) = parts[0].split_once(':') {
                out.source = n.trim().to_string();
                out.source_type = ty.trim().to_string();
            }
            for p in &parts[1..] {
                if let Some((k, v)) = p.split_once('=') {
                    if k.trim() == "max_delay" {
                        out.max_delay = v.trim().to_string();
                    }
                }
            }
        } else if let Some(n) = stmt.strip_prefix("sink ") {
            out.sinks.push(n.trim().to_string());
        } else if let Some(at) = assign_at(stmt) {
            let lhs = stmt[..at].trim();
            let name = ident_prefix(lhs).to_string();
            let rhs = stmt[at + 1..].trim();
            let input = ident_prefix(rhs).to_string();
            let mut view = StageView {
                name,
                input: input.clone(),
                ops: Vec::new(),
                key: None,
                columns: Vec::new(),
                kind: StageKind::Stateless,
            };
            let mut window = None;
            for (op, args) in calls(&rhs[input.len()..]) {
                match op.as_str() {
                    "key_by" => {
                        let key = ident_prefix(args.trim()).to_string();
                        view.ops.push(format!("key_by {key}"));
                        view.key = Some(key);
                    }
                    "window" => {
                        if let Some((kind, label)) = window_kind(&args) {
                            view.ops.push(label);
                            window = Some(kind);
                        }
                    }
                    "aggregate" => {
                        view.columns = columns(&args);
                        let names: Vec<String> = view
                            .columns
                            .iter()
                            .map(|c| match c.name == c.func {
                                true => c.name.clone(),
                                false => format!("{}={}", c.name, c.func),
                            })
                            .collect();
                        view.ops.push(format!("aggregate {}", names.join(", ")));
                        view.kind = window.clone().unwrap_or(StageKind::Running);
                    }
                    other => view.ops.push(other.to_string()),
                }
            }
            out.stages.push(view);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gallery::{dsl_region, Demo, Orders, Sessions, SlidingTop};

    #[test]
    fn reads_every_gallery_pipeline() {
        let o = summarize(dsl_region(Orders::SOURCE_FILE));
        assert_eq!(o.name, "Orders");
        assert_eq!(
            (o.source.as_str(), o.source_type.as_str()),
            ("orders", "Order")
        );
        assert_eq!(o.max_delay, "5s");
        let names: Vec<&str> = o.stages.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["customer_stats", "per_5min"]);
        assert_eq!(o.stages[0].kind, StageKind::Running);
        assert_eq!(o.stages[0].key.as_deref(), Some("customer"));
        assert_eq!(
            o.stages[0].columns,
            [
                Column {
                    name: "count".into(),
                    func: "count".into()
                },
                Column {
                    name: "amount".into(),
                    func: "sum".into()
                }
            ]
        );
        assert_eq!(
            o.stages[1].kind,
            StageKind::Tumbling {
                size_ms: 300_000,
                lateness_ms: 0
            }
        );
        assert_eq!(o.sinks, ["per_5min"]);

        let s = summarize(dsl_region(SlidingTop::SOURCE_FILE));
        assert_eq!(
            s.stages[0].kind,
            StageKind::Sliding {
                size_ms: 30_000,
                slide_ms: 10_000,
                lateness_ms: 0
            }
        );
        assert_eq!(s.stages[0].columns.len(), 3);

        let s = summarize(dsl_region(Sessions::SOURCE_FILE));
        assert_eq!(
            s.stages[0].kind,
            StageKind::Session {
                gap_ms: 20_000,
                lateness_ms: 5_000
            }
        );
        assert_eq!(s.stages[0].ops[1], "session gap 20s, late 5s");
    }

    #[test]
    fn stateless_ops_and_closures_with_semicolons() {
        let s = summarize(
            "pipeline! { pipeline C; source o: Order, event_time = |o| o.ts, max_delay = 1s;
             cents = o.map(|o| -> Item { let c = (o.amount * 100.0) as i64; Item { c } });
             big = cents.filter(|i| i.c >= 500 && i.c != 7);
             sink big; }",
        );
        assert_eq!(s.stages.len(), 2);
        assert_eq!(s.stages[0].ops, ["map"]);
        assert_eq!(s.stages[1].input, "cents");
        assert_eq!(s.stages[1].kind, StageKind::Stateless);
    }

    #[test]
    fn the_stateful_stages_match_the_generated_pipeline() {
        fn check<P: Demo>() {
            let s = summarize(dsl_region(P::SOURCE_FILE));
            let stateful: Vec<&str> = s
                .stages
                .iter()
                .filter(|s| s.kind != StageKind::Stateless)
                .map(|s| s.name.as_str())
                .collect();
            assert_eq!(stateful, P::STAGES, "{}", P::NAME);
            assert_eq!(s.sinks, P::SINKS);
            assert_eq!(s.name, P::NAME);
        }
        check::<Orders>();
        check::<SlidingTop>();
        check::<Sessions>();
    }
}

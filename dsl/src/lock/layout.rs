//! A stage's state layout, part by part, with where each part was written: the text a
//! checkpoint and a lock file record for it (the runtime's `Stage::state_layout`, which
//! `tests/state_lock.rs` checks it against), and the same text read back from a lock.

use proc_macro2::Span;

/// One part of a state layout.
#[derive(Debug, Clone)]
pub enum Part {
    /// `key customer: String`.
    Key(Typed),
    /// `distinct customer: String`.
    Distinct(Typed),
    /// `window tumbling 300000ms, lateness 0ms`.
    Window {
        /// `tumbling 300000ms`, `sliding 600000ms/60000ms`, `session 30000ms`.
        kind: String,
        /// Allowed lateness, ms.
        lateness: i64,
        /// Where the kind was written.
        span: Span,
        /// Where the lateness was written.
        lateness_span: Span,
    },
    /// `aggregate count: u64 = count, amount: f64 = sum`.
    Aggregate(Vec<Column>),
    /// A join's own part, compared as text.
    Other {
        /// The text.
        text: String,
        /// Where it was written.
        span: Span,
    },
}

/// A named, typed key.
#[derive(Debug, Clone)]
pub struct Typed {
    /// The key column's name.
    pub name: String,
    /// Its type as the plan shows it (`type_text`).
    pub ty: String,
    /// Where the type was written.
    pub span: Span,
}

/// An aggregate column.
#[derive(Debug, Clone)]
pub struct Column {
    /// Its name.
    pub name: String,
    /// Its output type.
    pub ty: String,
    /// Its function (`count`, `sum`, ..).
    pub func: String,
    /// Where its name was written.
    pub span: Span,
}

/// What a declared migration converts from: a layout's changes undone.
#[derive(Debug, Clone, Default)]
pub struct Earlier {
    /// The old key type (`old_key = |k: u32| ..`).
    pub key_type: Option<String>,
    /// Columns added since (`added(..)`).
    pub added: Vec<String>,
    /// The old allowed lateness, ms (`old_lateness = ..`).
    pub lateness: Option<i64>,
}

impl Column {
    /// `n: u64 = count`.
    pub fn text(&self) -> String {
        format!("{}: {} = {}", self.name, self.ty, self.func)
    }
}

impl Part {
    fn text(&self, earlier: &Earlier) -> String {
        match self {
            Part::Key(k) => {
                let ty = earlier.key_type.as_deref().unwrap_or(&k.ty);
                format!("key {}: {ty}", k.name)
            }
            Part::Distinct(k) => format!("distinct {}: {}", k.name, k.ty),
            Part::Window { kind, lateness, .. } => {
                let lateness = earlier.lateness.unwrap_or(*lateness);
                format!("window {kind}, lateness {lateness}ms")
            }
            Part::Aggregate(cols) => {
                let cols: Vec<String> = cols
                    .iter()
                    .filter(|c| !earlier.added.contains(&c.name))
                    .map(Column::text)
                    .collect();
                format!("aggregate {}", cols.join(", "))
            }
            Part::Other { text, .. } => text.clone(),
        }
    }
}

/// The layout's text, as it was before the changes `earlier` undoes.
///
/// ```
/// use simplestream_dsl::lock::layout::{text, Earlier, Part, Typed};
/// let key = Part::Key(Typed { name: "shard".into(), ty: "u64".into(), span: proc_macro2::Span::call_site() });
/// let before = Earlier { key_type: Some("u32".into()), ..Earlier::default() };
/// assert_eq!(text(&[key.clone()], &Earlier::default()), "key shard: u64");
/// assert_eq!(text(&[key], &before), "key shard: u32");
/// ```
pub fn text(parts: &[Part], earlier: &Earlier) -> String {
    let parts: Vec<String> = parts.iter().map(|p| p.text(earlier)).collect();
    flat(&parts.join("; "))
}

/// `text` without the line breaks (and other whitespace but spaces) that the compiler,
/// unlike a tool, may put in a long type's text: a lock reads the same from both.
///
/// ```
/// assert_eq!(simplestream_dsl::lock::layout::flat("<Aas::Agg>::\nOutput"), "<Aas::Agg>::Output");
/// ```
pub fn flat(text: &str) -> String {
    text.chars()
        .filter(|c| *c == ' ' || !c.is_whitespace())
        .collect()
}

/// A layout's text read back into parts (spans are the call site's): what a lock holds.
///
/// ```
/// use simplestream_dsl::lock::layout::{parse, text, Earlier};
/// let t = "key customer: String; window tumbling 300000ms, lateness 0ms; aggregate n: u64 = count";
/// assert_eq!(text(&parse(t), &Earlier::default()), t);
/// ```
pub fn parse(text: &str) -> Vec<Part> {
    let span = Span::call_site();
    let typed = |t: &str| {
        t.split_once(": ").map(|(name, ty)| Typed {
            name: name.into(),
            ty: ty.into(),
            span,
        })
    };
    let other = |t: &str| Part::Other {
        text: t.into(),
        span,
    };
    text.split("; ")
        .map(|p| {
            if let Some(k) = p.strip_prefix("key ").and_then(typed) {
                Part::Key(k)
            } else if let Some(k) = p.strip_prefix("distinct ").and_then(typed) {
                Part::Distinct(k)
            } else if let Some(w) = p.strip_prefix("window ").and_then(window) {
                w
            } else if let Some(cols) = p.strip_prefix("aggregate ").and_then(columns) {
                Part::Aggregate(cols)
            } else {
                other(p)
            }
        })
        .collect()
}

fn window(t: &str) -> Option<Part> {
    let (kind, lateness) = t.split_once(", lateness ")?;
    let lateness = lateness.strip_suffix("ms")?.parse().ok()?;
    Some(Part::Window {
        kind: kind.into(),
        lateness,
        span: Span::call_site(),
        lateness_span: Span::call_site(),
    })
}

fn columns(t: &str) -> Option<Vec<Column>> {
    t.split(", ")
        .map(|c| {
            let (name, rest) = c.split_once(": ")?;
            let (ty, func) = rest.split_once(" = ")?;
            Some(Column {
                name: name.into(),
                ty: ty.into(),
                func: func.into(),
                span: Span::call_site(),
            })
        })
        .collect()
}

//! The lock file: `Name.state.lock` next to the pipeline's source, one line per stateful
//! stage (`stage = layout`), written by `simplestream state lock`.

use std::path::{Path, PathBuf};

use super::layout::{self, Earlier};
use crate::plan::Plan;

/// The first words of every lock file: what `state lock` may overwrite.
pub const HEADER: &str = "# SimpleStream state lock";

/// A lock file's stages and their locked layouts, in file order.
#[derive(Debug, Default, PartialEq)]
pub struct Lock {
    /// `(stage, layout)`.
    pub stages: Vec<(String, String)>,
}

/// The lock file of pipeline `name` whose source is in `dir`.
///
/// ```
/// let p = simplestream_dsl::lock::file::path(std::path::Path::new("src"), "OrderStats");
/// assert_eq!(p, std::path::Path::new("src/OrderStats.state.lock"));
/// ```
pub fn path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.state.lock"))
}

/// The lock file's text for `plan`: its stateful stages and their layouts now.
pub fn render(plan: &Plan) -> String {
    let mut out = format!(
        "{HEADER} of pipeline `{}`: its stateful stages and the layout of their\n\
         # state as deployed. `pipeline!` refuses a change to them that no migration covers.\n\
         # Rewrite it with `simplestream state lock <source file>` after a deploy.\n",
        plan.name
    );
    let cx = crate::expand::Cx::new(plan);
    for s in &plan.stages {
        if let Some(part) = &s.stateful {
            let text = layout::text(&part.layout(s, &cx), &Earlier::default());
            out.push_str(&format!("{} = {text}\n", s.name));
        }
    }
    out
}

/// Reads a lock file's text; an error names the line.
///
/// ```
/// use simplestream_dsl::lock::file::parse;
/// let lock = parse("# comment\nstats = key k: u32; aggregate n: u64 = count\n").unwrap();
/// assert_eq!(lock.stages[0].0, "stats");
/// assert!(parse("stats key k").unwrap_err().starts_with("line 1:"));
/// ```
pub fn parse(text: &str) -> Result<Lock, String> {
    let mut lock = Lock::default();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let parsed = line.split_once(" = ").filter(|(stage, layout)| {
            !layout.is_empty()
                && !stage.is_empty()
                && stage.chars().all(|c| c.is_alphanumeric() || c == '_')
        });
        let Some((stage, layout)) = parsed else {
            return Err(format!(
                "line {}: expected `stage = layout`, found `{line}`",
                i + 1
            ));
        };
        if lock.stages.iter().any(|(s, _)| s == stage) {
            return Err(format!("line {}: stage `{stage}` is locked twice", i + 1));
        }
        lock.stages.push((stage.to_string(), layout.to_string()));
    }
    Ok(lock)
}

/// A lock file written by [`write_for_source`].
#[derive(Debug)]
pub struct Written {
    /// Where.
    pub path: PathBuf,
    /// How many stages it locks.
    pub stages: usize,
}

/// Writes the lock file of every `pipeline!` in the Rust source file `source`, next to it.
/// A file at a lock's path that is not a lock file is left alone (an error).
pub fn write_for_source(source: &Path) -> Result<Vec<Written>, String> {
    let shown = source.display();
    let text = std::fs::read_to_string(source).map_err(|e| format!("{shown}: {e}"))?;
    let file = syn::parse_file(&text).map_err(|e| format!("{shown}: {e}"))?;
    let mut bodies = Vec::new();
    pipelines(&file.items, &mut bodies);
    if bodies.is_empty() {
        return Err(format!("{shown}: no `pipeline! {{ .. }}` at module level"));
    }
    let dir = source.parent().unwrap_or(Path::new(""));
    let mut plans = Vec::new();
    for body in bodies {
        plans.push(crate::plan_tokens(body).map_err(|e| format!("{shown}: {e}"))?);
    }
    plans.iter().map(|plan| write(plan, dir)).collect()
}

fn write(plan: &Plan, dir: &Path) -> Result<Written, String> {
    let path = path(dir, &plan.name.to_string());
    let shown = path.display();
    match std::fs::read_to_string(&path) {
        Ok(old) if !old.starts_with(HEADER) => {
            return Err(format!(
                "{shown} exists and is not a state lock (it does not start with `{HEADER}`): not overwriting it"
            ))
        }
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
            return Err(format!("{shown} exists and is not a state lock: not overwriting it"))
        }
        _ => {}
    }
    let text = render(plan);
    let tmp = path.with_extension("lock.tmp");
    std::fs::write(&tmp, &text)
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(|e| format!("{shown}: {e}"))?;
    let stages = plan.stages.iter().filter(|s| s.stateful.is_some()).count();
    Ok(Written { path, stages })
}

/// The tokens inside each `pipeline! { .. }` among `items` (and their inline modules).
fn pipelines(items: &[syn::Item], out: &mut Vec<proc_macro2::TokenStream>) {
    for item in items {
        match item {
            syn::Item::Macro(m)
                if m.mac
                    .path
                    .segments
                    .last()
                    .is_some_and(|s| s.ident == "pipeline") =>
            {
                out.push(m.mac.tokens.clone())
            }
            syn::Item::Mod(m) => {
                if let Some((_, items)) = &m.content {
                    pipelines(items, out);
                }
            }
            _ => {}
        }
    }
}

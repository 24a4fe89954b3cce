//! A pipeline against its lock: every locked stage must still be there with its
//! layout, or with a migration declared from it; otherwise a compile error at the
//! tokens that changed, saying what changed and what to do.

use proc_macro2::Span;

use super::file::Lock;
use super::layout::{self, Earlier, Part};
use crate::diag::Errors;
use crate::expand::Cx;
use crate::plan::{Plan, StagePlan};

const ACCEPT: &str = "run `simplestream state lock` to accept losing this stage's state";

/// Reports each locked stage that the pipeline changed without a migration, or lost.
pub fn check(plan: &Plan, lock: &Lock, lock_name: &str, errs: &mut Errors) {
    for (name, locked) in &lock.stages {
        let stateful = || plan.stages.iter().filter(|s| s.stateful.is_some());
        let now = stateful()
            .find(|s| s.name == name)
            .or_else(|| stateful().find(|s| s.upgrade.was.as_ref().is_some_and(|w| w == name)));
        match now {
            Some(s) => stage(plan, s, locked, errs),
            None => gone(plan, lock, name, locked, lock_name, errs),
        }
    }
}

/// The layout a stage's migrations convert from, as they declare it.
pub fn earlier(s: &StagePlan) -> Earlier {
    use crate::upgrade::Migration;
    let mut e = Earlier::default();
    for m in &s.upgrade.migrations {
        match m {
            Migration::Added { columns, .. } => {
                e.added.extend(columns.iter().map(|c| c.to_string()))
            }
            Migration::Key { old_ty, .. } => {
                e.key_type = Some(crate::expand::plan_data::type_text(old_ty))
            }
            Migration::Lateness { old, .. } => e.lateness = Some(old.ms),
        }
    }
    e
}

fn stage(plan: &Plan, s: &StagePlan, locked: &str, errs: &mut Errors) {
    let cx = Cx::new(plan);
    let parts = s
        .stateful
        .as_ref()
        .expect("a stateful stage")
        .layout(s, &cx);
    let earlier = earlier(s);
    if layout::text(&parts, &Earlier::default()) == locked
        || (!s.upgrade.migrations.is_empty() && layout::text(&parts, &earlier) == locked)
    {
        return;
    }
    let old = layout::parse(locked);
    let changes = changes(&parts, &old, s.name.span());
    let open: Vec<&Change> = changes.iter().filter(|c| !c.covered(&earlier)).collect();
    let Some(first) = open.first() else {
        let at = s
            .upgrade
            .migrations
            .first()
            .map_or(s.name.span(), |m| m.span());
        let from = layout::text(&parts, &earlier);
        errs.push(at, format!("stage `{}`: this migration converts from `{from}`, but the locked layout is `{locked}`; declare the migration from the locked layout, or {ACCEPT}", s.name));
        return;
    };
    let what: Vec<String> = open.iter().map(|c| c.describe()).collect();
    let aggregate = parts.iter().any(|p| matches!(p, Part::Aggregate(_)));
    let hint = match open.iter().find(|c| !c.migratable(aggregate)) {
        None => {
            let items: Vec<String> = open.iter().filter_map(|c| c.migration()).collect();
            format!("add `#[migrate({})]` to the stage, or {ACCEPT}", items.join(", "))
        }
        Some(Change::Fold { .. }) => format!("a join's open windows cannot be converted between buffered events and folds: {ACCEPT}"),
        Some(Change::WindowKind { .. }) => format!("a window's size cannot be migrated (its open windows would cover other times): keep the old stage as it is and add the new window as a new stage, or {ACCEPT}"),
        Some(_) => format!("this change cannot be migrated: keep the old stage as it is and add the new one as a new stage, or {ACCEPT}"),
    };
    errs.push(
        first.span(),
        format!(
            "stage `{}` changed its state layout ({}) but no migration from the locked layout is declared; {hint}",
            s.name,
            what.join(", ")
        ),
    );
}

/// A locked stage gone from the pipeline: renamed without `#[was]`, or removed.
fn gone(plan: &Plan, lock: &Lock, name: &str, locked: &str, lock_name: &str, errs: &mut Errors) {
    let renamed = plan.stages.iter().find(|s| {
        s.upgrade.was.is_none()
            && !lock.stages.iter().any(|(n, _)| s.name == n)
            && s.stateful.as_ref().is_some_and(|p| {
                layout::text(&p.layout(s, &Cx::new(plan)), &Earlier::default()) == locked
            })
    });
    match renamed {
        Some(s) => errs.push(s.name.span(), format!(
            "stage `{}` is not in `{lock_name}`, but its state layout is that of the locked stage `{name}`, which is gone from the pipeline; if `{}` was `{name}`, write `#[was({name})]` on it to keep the state, or run `simplestream state lock` to accept losing the state of `{name}`",
            s.name, s.name
        )),
        None => errs.push(plan.name.span(), format!(
            "stage `{name}` is in `{lock_name}` but gone from the pipeline: its deployed state would be lost; put the stage back, write `#[was({name})]` on the stage it became, or run `simplestream state lock` to accept losing its state (and restart with `--allow-dropped-state {name}`)"
        )),
    }
}

/// One difference between a stage's layout now and its locked layout.
enum Change {
    Added {
        col: String,
        span: Span,
    },
    Removed {
        col: String,
        span: Span,
    },
    Column {
        col: String,
        was: String,
        now: String,
        span: Span,
    },
    Key {
        name: String,
        was: String,
        now: String,
        span: Span,
    },
    WindowKind {
        was: String,
        now: String,
        span: Span,
    },
    Lateness {
        was: i64,
        now: i64,
        span: Span,
    },
    Other {
        was: String,
        now: String,
        span: Span,
    },
    /// A join that folds its events for its reader now, or that buffers them again.
    Fold {
        folds: bool,
        span: Span,
    },
}

impl Change {
    fn span(&self) -> Span {
        use Change::*;
        match self {
            Added { span, .. }
            | Removed { span, .. }
            | Column { span, .. }
            | Key { span, .. }
            | WindowKind { span, .. }
            | Lateness { span, .. }
            | Other { span, .. }
            | Fold { span, .. } => *span,
        }
    }

    fn describe(&self) -> String {
        match self {
            Change::Added { col, .. } => format!("added column `{col}`"),
            Change::Removed { col, .. } => format!("removed column `{col}`"),
            Change::Column { col, was, now, .. } => {
                format!("column `{col}` was `{was}`, is `{now}` now")
            }
            Change::Key { name, was, now, .. } => {
                format!("key `{name}` was `{was}`, is `{now}` now")
            }
            Change::WindowKind { was, now, .. } => {
                format!("window was `{was}`, is `{now}` now")
            }
            Change::Lateness { was, now, .. } => {
                format!("allowed lateness was {was}ms, is {now}ms now")
            }
            Change::Other { was, now, .. } => format!("`{was}` became `{now}`"),
            Change::Fold { folds: true, .. } => "the join now keeps per key and window each input's event count and its reader's columns folded from them, not the events".into(),
            Change::Fold { folds: false, .. } => "the join now buffers its events instead of folding them for its reader".into(),
        }
    }

    /// True if the declared migrations convert this change.
    fn covered(&self, e: &Earlier) -> bool {
        match self {
            Change::Added { col, .. } => e.added.contains(col),
            Change::Key { was, .. } => e.key_type.as_ref() == Some(was),
            Change::Lateness { was, .. } => e.lateness == Some(*was),
            _ => false,
        }
    }

    /// True if a migration can convert it, in a stage of this kind.
    fn migratable(&self, aggregate: bool) -> bool {
        match self {
            Change::Added { .. } | Change::Key { .. } | Change::Lateness { .. } => aggregate,
            _ => false,
        }
    }

    /// The `#[migrate(..)]` item that converts it.
    fn migration(&self) -> Option<String> {
        match self {
            Change::Added { col, .. } => Some(format!("added({col})")),
            Change::Key { was, now, .. } => Some(format!("old_key = |k: {was}| -> {now} {{ .. }}")),
            Change::Lateness { was, .. } => Some(format!("old_lateness = {was}ms")),
            _ => None,
        }
    }
}

/// The differences between `now` and the locked `old`, part by part (one `Other` at
/// `stage` if their parts do not line up).
fn changes(now: &[Part], old: &[Part], stage: Span) -> Vec<Change> {
    if let Some(fold) = fold_change(now, old) {
        return vec![fold];
    }
    let same_kinds = now.len() == old.len()
        && now
            .iter()
            .zip(old)
            .all(|(a, b)| std::mem::discriminant(a) == std::mem::discriminant(b));
    if !same_kinds {
        return vec![Change::Other {
            was: layout::text(old, &Earlier::default()),
            now: layout::text(now, &Earlier::default()),
            span: stage,
        }];
    }
    let mut out = Vec::new();
    for (n, o) in now.iter().zip(old) {
        part(n, o, stage, &mut out);
    }
    out
}

/// A join's layout that only gained or lost its `folded ..` part (see `pair_fold`).
fn fold_change(now: &[Part], old: &[Part]) -> Option<Change> {
    let folded = |p: Option<&Part>| match p {
        Some(Part::Other { text, span }) if text.starts_with("folded ") => Some(*span),
        _ => None,
    };
    let text = |p: &[Part]| layout::text(p, &Earlier::default());
    match (folded(now.last()), folded(old.last())) {
        (Some(span), None) if text(&now[..now.len() - 1]) == text(old) => {
            Some(Change::Fold { folds: true, span })
        }
        (None, Some(_)) if text(&old[..old.len() - 1]) == text(now) => Some(Change::Fold {
            folds: false,
            span: now
                .first()
                .and_then(part_span)
                .unwrap_or_else(Span::call_site),
        }),
        _ => None,
    }
}

/// Where a part was written; an aggregate has no one place.
fn part_span(p: &Part) -> Option<Span> {
    match p {
        Part::Key(t) | Part::Distinct(t) => Some(t.span),
        Part::Other { span, .. } | Part::Window { span, .. } => Some(*span),
        Part::Aggregate(_) => None,
    }
}

fn part(now: &Part, old: &Part, stage: Span, out: &mut Vec<Change>) {
    let text = |p: &Part| layout::text(std::slice::from_ref(p), &Earlier::default());
    match (now, old) {
        (Part::Key(n), Part::Key(o)) if n.name == o.name && n.ty != o.ty => out.push(Change::Key {
            name: n.name.clone(),
            was: o.ty.clone(),
            now: n.ty.clone(),
            span: n.span,
        }),
        (
            Part::Window {
                kind,
                lateness,
                span,
                lateness_span,
            },
            Part::Window {
                kind: was_kind,
                lateness: was_lateness,
                ..
            },
        ) => {
            if kind != was_kind {
                out.push(Change::WindowKind {
                    was: was_kind.clone(),
                    now: kind.clone(),
                    span: *span,
                });
            }
            if lateness != was_lateness {
                out.push(Change::Lateness {
                    was: *was_lateness,
                    now: *lateness,
                    span: *lateness_span,
                });
            }
        }
        (Part::Aggregate(n), Part::Aggregate(o)) => columns(n, o, stage, out),
        _ if text(now) != text(old) => out.push(Change::Other {
            was: text(old),
            now: text(now),
            span: part_span(now).unwrap_or(stage),
        }),
        _ => {}
    }
}

fn columns(now: &[layout::Column], old: &[layout::Column], stage: Span, out: &mut Vec<Change>) {
    let before = out.len();
    for c in now {
        match old.iter().find(|o| o.name == c.name) {
            None => out.push(Change::Added {
                col: c.name.clone(),
                span: c.span,
            }),
            Some(o) if (&o.ty, &o.func) != (&c.ty, &c.func) => out.push(Change::Column {
                col: c.name.clone(),
                was: format!("{} = {}", o.ty, o.func),
                now: format!("{} = {}", c.ty, c.func),
                span: c.span,
            }),
            Some(_) => {}
        }
    }
    for o in old.iter().filter(|o| !now.iter().any(|c| c.name == o.name)) {
        out.push(Change::Removed {
            col: o.name.clone(),
            span: now.first().map_or(stage, |c| c.span),
        });
    }
    let kept = |cols: &[layout::Column], other: &[layout::Column]| -> Vec<String> {
        cols.iter()
            .filter(|c| other.iter().any(|o| o.name == c.name))
            .map(|c| c.name.clone())
            .collect()
    };
    if out.len() == before && kept(now, old) != kept(old, now) {
        out.push(Change::Other {
            was: format!("columns in the order {}", kept(old, now).join(", ")),
            now: format!("in the order {}", kept(now, old).join(", ")),
            span: now.first().map_or(stage, |c| c.span),
        });
    }
}

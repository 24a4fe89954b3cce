//! Restoring a checkpoint into a changed pipeline: which stage gets which state.
//!
//! A checkpoint lists each stateful stage it holds with the layout of its state
//! ([`StageLayout`]: key type, aggregate columns, window kind, sizes and lateness, join
//! types, and a hash of the state's Rust types). A restore matches them to the pipeline's
//! stages by name (or by a declared rename) and layout, not by a hash of the whole
//! pipeline, so stateless changes (a new filter, a new sink) never block it:
//!
//! - same name, same layout: the state is restored;
//! - a stage the checkpoint does not have: it starts empty;
//! - a stage the checkpoint has and the pipeline does not: refused, unless dropping its
//!   state is allowed ([`RestoreOptions::allow_dropped`]);
//! - same name, another layout: migrated if the pipeline declares a migration from the
//!   old layout, else refused (or started empty, if dropping its state is allowed).
//!
//! ```
//! use simplestream_runtime::upgrade::{StageAction, StageLayout};
//! let a = StageAction::StartEmpty { stage: "top".into() };
//! assert_eq!(a.to_string(), "stage `top` is new: it starts empty");
//! ```

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::fingerprint::to_hex;
use crate::pipeline::Pipeline;

/// One stateful stage as a checkpoint records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageLayout {
    /// The stage's name: the key of its state in the checkpoint.
    pub name: String,
    /// Its state's layout ([`Stage::state_layout`](crate::plan::Stage::state_layout)).
    pub layout: String,
    /// A hash of its state's Rust types (`Checkpointable::LAYOUT`), 16 hex digits, or
    /// empty when the pipeline gives none.
    pub types: String,
}

/// The stateful stages of `P` as its checkpoints record them, in the order they are written.
///
/// ```
/// # use simplestream_runtime::upgrade::layouts;
/// # fn show<P: simplestream_runtime::Pipeline>() {
/// for s in layouts::<P>() {
///     println!("{}: {}", s.name, s.layout);
/// }
/// # }
/// ```
pub fn layouts<P: Pipeline>() -> Vec<StageLayout> {
    let mut out = Vec::new();
    if P::plan().sources.len() > 1 {
        let names: Vec<&str> = P::plan().sources.iter().map(|s| s.name).collect();
        out.push(StageLayout {
            name: SOURCE_CLOCKS.into(),
            layout: format!("source clocks {}", names.join(", ")),
            types: String::new(),
        });
    }
    for (i, name) in P::stages().iter().enumerate() {
        out.push(StageLayout {
            name: name.to_string(),
            layout: P::plan()
                .stage(name)
                .map(|s| s.state_layout())
                .unwrap_or_default(),
            types: P::state_layouts()
                .get(i)
                .map(|h| to_hex(*h))
                .unwrap_or_default(),
        });
    }
    out
}

/// The pseudo-stage holding the clocks of a pipeline's sources (more than one source).
pub const SOURCE_CLOCKS: &str = "source_clocks";

/// What a restore may do beyond restoring matching stages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestoreOptions {
    /// Stages whose state the checkpoint holds and the restore may drop: stages gone from
    /// the pipeline, or whose layout changed with no migration (they start empty).
    pub allow_dropped: Vec<String>,
}

/// What a restore does with one stage's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StageAction {
    /// Restored as it was.
    Restore {
        /// The stage.
        stage: String,
    },
    /// Restored from the state of stage `from`, which it was renamed from.
    Renamed {
        /// The stage.
        stage: String,
        /// Its name in the checkpoint.
        from: String,
    },
    /// Converted from the old layout by a migration the pipeline declares.
    Migrate {
        /// The stage.
        stage: String,
        /// Its name in the checkpoint.
        from: String,
        /// The migration, as declared.
        migration: &'static str,
    },
    /// Not in the checkpoint: starts empty.
    StartEmpty {
        /// The stage.
        stage: String,
    },
    /// In the checkpoint with another layout; its state is dropped as allowed and it
    /// starts empty.
    Reset {
        /// The stage.
        stage: String,
    },
    /// In the checkpoint but gone from the pipeline; its state is dropped as allowed.
    Drop {
        /// The stage.
        stage: String,
    },
    /// Cannot be restored: the whole restore is refused.
    Refuse {
        /// The stage.
        stage: String,
        /// Why, and what to do.
        reason: String,
    },
}

impl fmt::Display for StageAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use StageAction::*;
        match self {
            Restore { stage } => write!(f, "stage `{stage}` is restored"),
            Renamed { stage, from } => {
                write!(f, "stage `{stage}` is restored from the state of `{from}`")
            }
            Migrate {
                stage,
                from,
                migration,
            } => write!(
                f,
                "stage `{stage}` is migrated from the state of `{from}` ({migration})"
            ),
            StartEmpty { stage } => write!(f, "stage `{stage}` is new: it starts empty"),
            Reset { stage } => write!(
                f,
                "stage `{stage}` changed its state layout: its old state is dropped (allowed) and it starts empty"
            ),
            Drop { stage } => write!(
                f,
                "stage `{stage}` is gone from the pipeline: its state is dropped (allowed)"
            ),
            Refuse { reason, .. } => f.write_str(reason),
        }
    }
}

impl StageAction {
    /// The stage it is about.
    pub fn stage(&self) -> &str {
        use StageAction::*;
        match self {
            Restore { stage }
            | Renamed { stage, .. }
            | Migrate { stage, .. }
            | StartEmpty { stage }
            | Reset { stage }
            | Drop { stage }
            | Refuse { stage, .. } => stage,
        }
    }

    /// The stage's name in the checkpoint, if its state is read from it.
    pub fn reads(&self) -> Option<&str> {
        use StageAction::*;
        match self {
            Restore { stage } => Some(stage),
            Renamed { from, .. } | Migrate { from, .. } => Some(from),
            _ => None,
        }
    }

    /// True unless it refuses.
    pub fn is_ok(&self) -> bool {
        !matches!(self, StageAction::Refuse { .. })
    }
}

/// What restoring a checkpoint holding `saved` into `P` does, stage by stage: the
/// pipeline's stages in order, then the checkpoint's stages gone from it.
pub fn plan<P: Pipeline>(saved: &[StageLayout], opts: &RestoreOptions) -> Vec<StageAction> {
    let mut out = Vec::new();
    let mut used = vec![false; saved.len()];
    let find = |name: &str| saved.iter().position(|s| s.name == name);
    for now in layouts::<P>() {
        let stage = now.name.clone();
        let renamed_from = P::RENAMES
            .iter()
            .find(|(new, _)| *new == stage)
            .map(|(_, old)| *old);
        let (at, from) = match (
            find(&stage),
            renamed_from.and_then(|o| find(o).map(|i| (i, o))),
        ) {
            (Some(i), _) => (i, stage.clone()),
            (None, Some((i, old))) => (i, old.to_string()),
            (None, None) => {
                out.push(StageAction::StartEmpty { stage });
                continue;
            }
        };
        used[at] = true;
        let old = &saved[at];
        out.push(match_stage::<P>(&now, old, from, opts));
    }
    for (s, used) in saved.iter().zip(used) {
        if used {
            continue;
        }
        let stage = s.name.clone();
        out.push(if s.name == SOURCE_CLOCKS || opts.allow_dropped.contains(&stage) {
            StageAction::Drop { stage }
        } else {
            StageAction::Refuse {
                reason: format!(
                    "stage `{stage}` holds state in the checkpoint but is gone from the pipeline; to drop its state, restart with `--allow-dropped-state {stage}` (or rename a stage with `#[was({stage})]` if it was renamed)"
                ),
                stage,
            }
        });
    }
    out
}

/// A stage of the pipeline (`now`) against its state in the checkpoint (`old`, named `from`).
fn match_stage<P: Pipeline>(
    now: &StageLayout,
    old: &StageLayout,
    from: String,
    opts: &RestoreOptions,
) -> StageAction {
    let stage = now.name.clone();
    // A renamed stage's type hash covers its generated names: compare the layout alone.
    let same_types = from != stage || now.types.is_empty() || now.types == old.types;
    if now.layout == old.layout && same_types {
        return if from == stage {
            StageAction::Restore { stage }
        } else {
            StageAction::Renamed { stage, from }
        };
    }
    if let Some(migration) = P::migration(&stage, old) {
        return StageAction::Migrate {
            stage,
            from,
            migration,
        };
    }
    if opts.allow_dropped.contains(&from) || stage == SOURCE_CLOCKS {
        return StageAction::Reset { stage };
    }
    let change = if now.layout == old.layout {
        "the Rust types of its state changed".to_string()
    } else {
        format!("`{}` became `{}`", old.layout, now.layout)
    };
    let hint = if window_size(&old.layout) != window_size(&now.layout) {
        "a window's size cannot be migrated (its open windows would cover other times): keep the old stage as it is and add the new window as a new stage, or drop its state".to_string()
    } else if let Some(what) = unmigratable(&old.layout) {
        format!(
            "{what} have no migrations: add the changed stage as a new stage, or drop its state"
        )
    } else {
        "declare a migration from the old layout in the pipeline, or drop its state".to_string()
    };
    StageAction::Refuse {
        reason: format!(
            "stage `{stage}` changed its state layout ({change}) and no migration from the checkpoint's layout is declared; {hint} with `--allow-dropped-state {from}`"
        ),
        stage,
    }
}

/// The state of a layout that no migration converts (it has no columns to add and no
/// conversion is defined): a join's buffered events, a `distinct` stage's keys.
fn unmigratable(layout: &str) -> Option<&'static str> {
    layout.split("; ").find_map(|part| {
        if part.starts_with("join ") || part.starts_with("interval_join ") {
            Some("a join's buffered events")
        } else if part.starts_with("distinct ") {
            Some("the keys a `distinct` stage has seen")
        } else {
            None
        }
    })
}

/// `window tumbling 300000ms` of a layout, without the lateness.
fn window_size(layout: &str) -> Option<&str> {
    layout
        .split("; ")
        .find(|p| p.starts_with("window "))
        .and_then(|w| w.split(',').next())
}

/// The refusals of `actions`, if any, as one error.
pub fn refusals(pipeline: &str, actions: &[StageAction]) -> Option<crate::CheckpointError> {
    let problems: Vec<String> = actions
        .iter()
        .filter(|a| !a.is_ok())
        .map(|a| a.to_string())
        .collect();
    (!problems.is_empty()).then(|| crate::CheckpointError::Incompatible {
        pipeline: pipeline.to_string(),
        problems,
    })
}

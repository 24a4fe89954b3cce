//! `checkpoints check`: before a deploy, what this program would do with the latest
//! checkpoint, stage by stage (restore, migrate, start empty, drop, refuse).

use super::{open, Reader};
use crate::envelope::{self, Header};
use crate::incremental::Manifest;
use crate::names::{parse_name, EntryKind};
use crate::pipeline::Pipeline;
use crate::upgrade::{self, RestoreOptions, StageAction};

/// What restoring the latest checkpoint of `instance` in `dir` into `P` does with each
/// stage, one line each; the restore is then done (nothing is written) to prove that it
/// decodes. `Err` (with the report so far) when it cannot be restored.
///
/// ```no_run
/// # fn demo<P: simplestream_runtime::Pipeline>() {
/// use simplestream_runtime::runner::checkpoints::check;
/// match check::<P>("ckpt", "app-instance-1", Default::default()) {
///     Ok(report) => print!("{report}"),
///     Err(report) => eprint!("{report}"),
/// }
/// # }
/// ```
pub fn check<P: Pipeline>(
    dir: &str,
    instance: &str,
    opts: RestoreOptions,
) -> Result<String, String> {
    let mut out = String::new();
    let fail = |out: &str, e: String| format!("{out}error: {e}\n");
    let mut c = open(dir, instance).map_err(|e| fail(&out, e))?;
    let name = match c.latest() {
        Ok(Some(m)) => m.file,
        Ok(None) => {
            let e = format!("no latest checkpoint in {}", c.store().location());
            return Err(fail(&out, e));
        }
        Err(e) => return Err(fail(&out, e)),
    };
    let header = header_of(&c, &name).map_err(|e| fail(&out, e))?;
    out += &format!(
        "checkpoint #{} ({name}) of `{}`, format version {}:\n",
        header.checkpoint_id, header.pipeline, header.format_version
    );
    let actions = match envelope::restore_actions::<P>(&header, &opts) {
        Ok(a) => a,
        Err(crate::CheckpointError::Incompatible { .. }) => {
            upgrade::plan::<P>(&header.stage_layouts, &opts)
        }
        Err(e) => return Err(fail(&out, e.to_string())),
    };
    for a in &actions {
        out += &format!("  {:<12} {a}\n", verb(a));
    }
    if actions.iter().any(|a| !a.is_ok()) {
        let e = format!("this version of `{}` cannot restore {name}", P::name());
        return Err(fail(&out, e));
    }
    c.set_restore_options(opts);
    match c.recover::<P>() {
        Ok(Some(r)) if r.name == name => {
            out += &format!("ok: this version restores {name}\n");
            Ok(out)
        }
        Ok(Some(r)) => {
            let e = format!(
                "{name} does not restore ({}); a run would fall back to {}",
                r.warnings.join("; "),
                r.name
            );
            Err(fail(&out, e))
        }
        Ok(None) => Err(fail(&out, "the checkpoints are gone".into())),
        Err(e) => Err(fail(&out, e.to_string())),
    }
}

fn verb(a: &StageAction) -> &'static str {
    match a {
        StageAction::Restore { .. } | StageAction::Renamed { .. } => "restore",
        StageAction::Migrate { .. } => "migrate",
        StageAction::StartEmpty { .. } | StageAction::Reset { .. } => "start empty",
        StageAction::Drop { .. } => "drop",
        StageAction::Refuse { .. } => "REFUSE",
    }
}

/// The header of checkpoint `name`: its own, or that of the last piece its manifest names.
fn header_of(c: &Reader, name: &str) -> Result<Header, String> {
    let bytes = c.store().get(name).map_err(|e| e.to_string())?;
    let at = |e: crate::CheckpointError| format!("{name}: {e}");
    if let Some((_, EntryKind::Manifest)) = parse_name(name) {
        let m = Manifest::decode(&bytes).map_err(at)?;
        let last = m.pieces.last().expect("a manifest names its pieces");
        let piece = c.store().get(&last.name).map_err(|e| e.to_string())?;
        return envelope::verify_delta(&piece)
            .map(|v| v.header)
            .map_err(|e| format!("{}: {e}", last.name));
    }
    envelope::verify(&bytes).map(|v| v.header).map_err(at)
}

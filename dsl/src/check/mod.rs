//! Checks a parsed pipeline and plans it: every misuse becomes an error at the exact
//! tokens, with a hint; what passes becomes a [`Plan`] with every type along the flow.
//! Pipeline-level rules live here; each operator checks itself (see [`stage`]).

pub mod stage;

use proc_macro2::Span;
use syn::{Ident, Type};

use crate::closure;
use crate::diag::{self, Errors};
use crate::names::{self, StageNames};
use crate::parse::{PipelineDef, SinkDef, SourceDef, StageDef, SOURCE_OPTIONS};
use crate::plan::{Child, Plan, SourcePlan, StagePlan};

/// Names a stage may not take: they are the checkpoint envelope's own fields.
pub const RESERVED: &[&str] = &[
    "format",
    "format_version",
    "pipeline",
    "fingerprint",
    "checkpoint_id",
    "timestamp",
    "max_event_time",
    "watermark",
    "positions",
    "checksum",
    "late",
    "clock",
    "source_clocks",
    "stage_layouts",
];

/// The streams defined so far, with their event types.
pub struct Scope(Vec<(Ident, Type)>);

impl Scope {
    /// The type of stream `name`.
    pub fn get(&self, name: &Ident) -> Option<&Type> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, t)| t)
    }

    /// `` `orders`, `valid` ``: for messages.
    pub fn listed(&self) -> String {
        let known: Vec<String> = self.0.iter().map(|(n, _)| format!("`{n}`")).collect();
        known.join(", ")
    }

    /// Reports `name` if already defined; true if it was.
    fn defined_twice(&self, name: &Ident, msg: String, first: &str, errs: &mut Errors) -> bool {
        let Some((prev, _)) = self.0.iter().find(|(n, _)| n == name) else {
            return false;
        };
        let mut e = syn::Error::new(name.span(), msg);
        e.combine(syn::Error::new(prev.span(), first));
        errs.add(e);
        true
    }
}

/// Validates `def` and plans it. All errors found are reported together.
pub fn check(def: PipelineDef) -> syn::Result<Plan> {
    let mut errs = Errors::default();
    let name = pipeline_name(&def)?;
    let module = names::module(&name);
    let mut scope = Scope(Vec::new());
    let mut sources = Vec::new();
    for src in def.sources {
        if let Some(s) = check_source(src, &scope, &mut errs) {
            scope.0.push((s.name.clone(), s.ty.clone()));
            sources.push(s);
        }
    }
    let mut stages: Vec<StagePlan> = Vec::new();
    for st in &def.stages {
        let Some(plan) = check_stage(st, &module, &scope, &mut errs) else {
            continue;
        };
        let child = stages.len();
        for (from, side) in plan.inputs() {
            let c = Child { stage: child, side };
            if let Some(src) = sources.iter_mut().find(|s| s.name == *from) {
                src.children.push(c);
            } else if let Some(up) = stages.iter_mut().find(|s| s.name == *from) {
                up.children.push(c);
            }
        }
        scope.0.push((plan.name.clone(), plan.out_ty.clone()));
        stages.push(plan);
    }
    mark_sinks(&def.sinks, &mut sources, &mut stages, &scope, &mut errs);
    crate::upgrade::check_renames(&stages, &mut errs);
    errs.finish(Plan {
        attrs: def.attrs,
        vis: def.vis,
        name,
        module,
        sources,
        stages,
    })
}

fn pipeline_name(def: &PipelineDef) -> syn::Result<Ident> {
    let Some(name) = def.name.clone() else {
        // Point at the first statement, where `pipeline Name;` belongs.
        let first = (def.sources.first().map(|s| s.kw.span()))
            .or_else(|| def.stages.first().map(|s| s.name.span()))
            .or_else(|| def.sinks.first().map(|s| s.kw.span()))
            .unwrap_or_else(Span::call_site);
        return Err(syn::Error::new(
            first,
            "the pipeline has no name; start with `pipeline Name;` (e.g. `pipeline OrderStats;`)",
        ));
    };
    if def.sources.is_empty() {
        return Err(syn::Error::new(
            name.span(),
            format!("pipeline `{name}` has no source; add one, e.g. `source orders: Order, event_time = |o| o.ts, max_delay = 5s;`"),
        ));
    }
    Ok(name)
}

fn check_source(src: SourceDef, scope: &Scope, errs: &mut Errors) -> Option<SourcePlan> {
    for u in &src.unknown {
        let list = "the options are `event_time` and `max_delay`";
        errs.push(
            u.span(),
            diag::unknown("source option", &u.to_string(), SOURCE_OPTIONS, list),
        );
    }
    let twice = format!("`{}` is defined twice", src.name);
    if scope.defined_twice(&src.name, twice, "first definition", errs) {
        return None;
    }
    let event_time = match src.event_time {
        Some(e) => closure::event_time_at_body(e),
        None => {
            errs.push(
                src.name.span(),
                format!(
                    "source `{}` needs an event time: add `event_time = |e| e.ts` (milliseconds)",
                    src.name
                ),
            );
            syn::parse_quote!(|_| 0i64)
        }
    };
    let max_delay_ms = match &src.max_delay {
        Some(d) => d.ms,
        None => {
            errs.push(src.name.span(), format!("source `{}` needs a watermark delay: add `max_delay = 5s` (how late events may arrive)", src.name));
            0
        }
    };
    if RESERVED.contains(&src.name.to_string().as_str()) {
        errs.push(
            src.name.span(),
            format!(
                "`{}` is reserved (a field of the checkpoint envelope); choose another name",
                src.name
            ),
        );
    }
    Some(SourcePlan {
        name: src.name,
        ty: src.ty,
        event_time,
        max_delay_ms,
        sink: false,
        children: Vec::new(),
    })
}

fn check_stage(
    st: &StageDef,
    module: &Ident,
    scope: &Scope,
    errs: &mut Errors,
) -> Option<StagePlan> {
    let stage_name = st.name.to_string();
    if RESERVED.contains(&stage_name.as_str()) {
        errs.push(st.name.span(), format!("`{stage_name}` is reserved (a field of the checkpoint envelope); choose another stage name"));
    }
    if stage_name.starts_with("__") {
        errs.push(
            st.name.span(),
            "names starting with `__` are reserved for generated code",
        );
    }
    let twice = format!(
        "`{stage_name}` is defined twice; stage names must be unique (they key the checkpoint)"
    );
    let first = format!("first definition of `{stage_name}`");
    if scope.defined_twice(&st.name, twice, &first, errs) {
        return None;
    }
    let input_ty = match scope.get(&st.input) {
        Some(t) => t.clone(),
        None => {
            errs.push(
                st.input.span(),
                format!("unknown stage `{}`; a stage can read {} (stages must be defined before they are read)", st.input, scope.listed()),
            );
            // Go on checking the stage (nothing is generated): its own mistakes are
            // reported too, and its readers and sink are not reported as unknown.
            syn::parse_quote!(())
        }
    };
    let names = StageNames::new(module, &st.name);
    Some(stage::plan(st, input_ty, names, scope, errs))
}

fn mark_sinks(
    sinks: &[SinkDef],
    sources: &mut [SourcePlan],
    stages: &mut [StagePlan],
    scope: &Scope,
    errs: &mut Errors,
) {
    let mut seen: Vec<&Ident> = Vec::new();
    for sink in sinks {
        if let Some(prev) = seen.iter().find(|s| ***s == sink.name) {
            let mut e = syn::Error::new(
                sink.name.span(),
                format!("`{}` is already a sink", sink.name),
            );
            e.combine(syn::Error::new(prev.span(), "declared here"));
            errs.add(e);
            continue;
        }
        if let Some(src) = sources.iter_mut().find(|s| s.name == sink.name) {
            src.sink = true;
        } else if let Some(s) = stages.iter_mut().find(|s| s.name == sink.name) {
            s.sink = true;
        } else {
            errs.push(
                sink.name.span(),
                format!(
                    "unknown stage `{}` in sink; defined: {}",
                    sink.name,
                    scope.listed()
                ),
            );
        }
        seen.push(&sink.name);
    }
}

//! The operators, one file each: its syntax (parsing its arguments), its checks (where it
//! may stand in a stage, what its arguments must be) and its code. [`OPS`] is the table
//! that drives parsing and gives "did you mean ...?" its names.
//!
//! Adding an operator: a new file here implementing [`Operator`] (and [`Stateless`] or
//! [`Stateful`] for what it plans), and a row in [`OPS`].

pub mod aggregate;
pub mod distinct;
pub mod filter;
pub mod flat_map;
pub mod interval_join;
pub mod join;
pub mod key_by;
pub mod map;
pub mod pair_fold;
pub mod window;

use proc_macro2::{Span, TokenStream};
use syn::parse::ParseStream;
use syn::Ident;

use crate::check::stage::StageBuilder;
use crate::diag::Known;
use crate::expand::Cx;
use crate::plan::StagePlan;

/// An operator's row in the table.
pub struct OpDef {
    /// Its name in the DSL, and names other systems use for it.
    pub name: Known,
    /// Parses the arguments inside `name(..)`.
    pub parse: fn(ParseStream) -> syn::Result<Box<dyn Operator>>,
}

/// Every operator of the DSL.
pub const OPS: &[OpDef] = &[
    filter::OP,
    map::OP,
    flat_map::OP,
    key_by::OP,
    window::OP,
    aggregate::OP,
    join::OP,
    interval_join::OP,
    distinct::OP,
];

/// The operator called `name`.
pub fn find(name: &str) -> Option<&'static OpDef> {
    OPS.iter().find(|d| d.name.name == name)
}

/// The operators' names, in table order.
pub fn names() -> Vec<&'static str> {
    OPS.iter().map(|d| d.name.name).collect()
}

/// The operators' names for "did you mean".
pub fn known() -> Vec<Known> {
    OPS.iter()
        .map(|d| Known {
            name: d.name.name,
            aka: d.name.aka,
        })
        .collect()
}

/// One parsed `.op(..)` call.
pub trait Operator {
    /// Checks the call (at the name `at`) where it stands in its stage, and adds what it
    /// plans to the stage.
    fn plan(&self, at: &Ident, stage: &mut StageBuilder);

    /// True for `map` and `flat_map`, whose output type is the stage's declared type.
    fn maps(&self) -> bool {
        false
    }
}

/// A planned stateless operator.
pub trait Stateless {
    /// Its entry in the plan data (`plan::Op`).
    fn plan_data(&self, rt: &TokenStream) -> TokenStream;
    /// `inner` run for what the operator passes on, given `__v` (by reference).
    fn wrap(&self, inner: TokenStream) -> TokenStream;
}

/// A stage's stateful part, planned.
pub trait Stateful {
    /// Its entries in the plan data (`plan::Op`s).
    fn plan_data(&self, rt: &TokenStream) -> Vec<TokenStream>;
    /// What it keeps in stage `s`, for the plan data (`plan::State`).
    fn plan_state(&self, s: &StagePlan, cx: &Cx) -> TokenStream;
    /// Its state layout in stage `s`, part by part: what checkpoints and lock files record.
    fn layout(&self, s: &StagePlan, cx: &Cx) -> Vec<crate::lock::layout::Part>;
    /// The other input, for a join.
    fn right_input(&self) -> Option<&Ident> {
        None
    }
    /// Why `key_by`, `window` or `aggregate` (`op`) cannot follow it, if they cannot.
    fn refuses_grouping(&self, op: &Ident) -> Option<String> {
        let _ = op;
        None
    }
    /// Its state type and the items it adds to the pipeline's module.
    fn items(&self, s: &StagePlan, cx: &Cx) -> StageItems;
    /// Its methods and watermark handling; `tail` sends a result (`__v`) on.
    fn code(&self, s: &StagePlan, cx: &Cx, tail: TokenStream) -> StageCode;
    /// Statements bringing the state the events of the slice `events` (of the stage's
    /// input type) will touch into memory at once (`method`: `SpillState::prefetch`), or
    /// reading it ahead (`SpillState::read_ahead`), if its state can be on disk.
    fn prefetch(&self, s: &StagePlan, method: &Ident) -> Option<TokenStream> {
        let _ = (s, method);
        None
    }
    /// If it may receive the closed windows of an upstream with `lateness` in hash order:
    /// the aggregates whose `ORDER_INSENSITIVE` must all hold for that.
    fn unsorted_input(&self, lateness: i64) -> Option<Vec<TokenStream>> {
        let _ = lateness;
        None
    }
    /// For the only reader of a windowed join's pairs: the fold of one closed join group
    /// into its state, if it can take groups rather than pairs (see [`pair_fold`]).
    fn fold_pairs(
        &self,
        s: &StagePlan,
        cx: &Cx,
        pairs: &pair_fold::Pairs,
    ) -> Option<pair_fold::Fold> {
        let _ = (s, cx, pairs);
        None
    }
    /// True if stage `s` (this part's) has by-value push methods, to which a lone upstream
    /// moves its events.
    fn takes_owned(&self, s: &StagePlan, cx: &Cx) -> bool {
        let _ = (s, cx);
        false
    }
    /// True if its one input has a by-value push too, which moves the event's key into
    /// the state: the last stage reading a source gets the events `process` owns.
    fn takes_owned_key(&self) -> bool {
        false
    }
    /// An expression of the stage's state type converting `bytes` (in `codec`), state
    /// of the earlier layout the `migrations` describe; or why it cannot.
    fn migrate(
        &self,
        s: &StagePlan,
        cx: &Cx,
        migrations: &[crate::upgrade::Migration],
    ) -> syn::Result<TokenStream> {
        let _ = (s, cx);
        let at = migrations
            .first()
            .map_or_else(Span::call_site, |m| m.span());
        Err(syn::Error::new(
            at,
            "only `key_by(..).aggregate(..)` stages (with or without a window) can declare migrations: a join's buffers and `distinct` keys have none; keep this stage as it is and add the changed one as a new stage, or drop its state with `--allow-dropped-state`",
        ))
    }
}

/// What a stateful part adds to the pipeline's module and struct.
pub struct StageItems {
    /// The state's type: the stage struct's only field.
    pub state: TokenStream,
    /// The doc of that field.
    pub state_doc: &'static str,
    /// Where an error about the state not being `Checkpointable` points.
    pub blame: Span,
    /// Row and accumulator types.
    pub items: Vec<TokenStream>,
    /// Late-output variants: name and event type.
    pub late: Vec<(Ident, TokenStream)>,
    /// Type of its scratch field (closed windows or pairs on their way out), if any.
    pub scratch: Option<TokenStream>,
}

/// A stateful part's code in the pipeline struct.
#[derive(Default)]
pub struct StageCode {
    /// Named constants (window sizes).
    pub consts: Vec<TokenStream>,
    /// Push and fire methods.
    pub methods: Vec<TokenStream>,
    /// Run when the watermark moves (`wm`).
    pub advance: TokenStream,
    /// Run at the end of input.
    pub flush: TokenStream,
}

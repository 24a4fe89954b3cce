//! The checked pipeline: every stream with its type, every stage as its stateless
//! operators around at most one stateful part, each planned by its operator's file.

use syn::{Attribute, Expr, Ident, Type, Visibility};

use crate::names::{Side, StageNames};
use crate::ops::{Stateful, Stateless};

/// A checked pipeline, ready for code generation.
pub struct Plan {
    /// Doc comments and other attributes of the pipeline struct.
    pub attrs: Vec<Attribute>,
    /// Its visibility.
    pub vis: Visibility,
    /// Its name.
    pub name: Ident,
    /// Name of the module holding generated types (`order_stats` for `OrderStats`).
    pub module: Ident,
    /// The sources (a join reads two).
    pub sources: Vec<SourcePlan>,
    /// Stages, in definition order (a topological order: inputs come first).
    pub stages: Vec<StagePlan>,
}

/// A source.
pub struct SourcePlan {
    /// Stream name.
    pub name: Ident,
    /// Event type.
    pub ty: Type,
    /// Event-time extractor.
    pub event_time: Expr,
    /// Bounded out-of-orderness, ms.
    pub max_delay_ms: i64,
    /// True if the source itself is a sink.
    pub sink: bool,
    /// Stages reading the source.
    pub children: Vec<Child>,
}

/// A stage reading a stream, and on which input.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Child {
    /// Index into `Plan::stages`.
    pub stage: usize,
    /// Which input of that stage.
    pub side: Side,
}

/// One stage statement: `pre`, then the stateful part if any, then `post`.
pub struct StagePlan {
    /// Its name.
    pub name: Ident,
    /// Names of what is generated for it.
    pub names: StageNames,
    /// Upstream name (the left input of a join).
    pub input: Ident,
    /// Type of the events it receives.
    pub input_ty: Type,
    /// Stateless operators before the stateful part (all of them, if there is none).
    pub pre: Vec<Box<dyn Stateless>>,
    /// What keeps state: an aggregate, a join, a `distinct`.
    pub stateful: Option<Box<dyn Stateful>>,
    /// Stateless operators after the stateful part.
    pub post: Vec<Box<dyn Stateless>>,
    /// Declared output type (checked with a type assertion).
    pub declared: Option<Type>,
    /// Type of the events it sends on.
    pub out_ty: Type,
    /// True if it is a sink.
    pub sink: bool,
    /// Stages reading it.
    pub children: Vec<Child>,
    /// Its earlier name and migrations (`#[was(..)]`, `#[migrate(..)]`).
    pub upgrade: crate::upgrade::Upgrade,
}

impl StagePlan {
    /// The streams it reads, and as which input.
    pub fn inputs(&self) -> Vec<(&Ident, Side)> {
        match self.stateful.as_ref().and_then(|s| s.right_input()) {
            Some(right) => vec![(&self.input, Side::Left), (right, Side::Right)],
            None => vec![(&self.input, Side::Main)],
        }
    }
}

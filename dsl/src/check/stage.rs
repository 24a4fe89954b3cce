//! One stage statement, planned operator by operator. The stage's grammar (stateless
//! operators, then at most one stateful part, then stateless operators again) is kept
//! here; what each operator accepts is in its own file under `ops/` (see
//! [`OPS`](crate::ops::OPS)).

use proc_macro2::Span;
use syn::{Ident, Type};

use crate::diag::Errors;
use crate::names::StageNames;
use crate::ops::{join, key_by, window, Stateful, Stateless};
use crate::parse::StageDef;
use crate::plan::StagePlan;

use super::Scope;

/// A stage being planned: what the operators so far made of it.
pub struct StageBuilder<'a> {
    /// The statement.
    pub def: &'a StageDef,
    /// Names of its generated items.
    pub names: StageNames,
    /// Streams defined before it.
    pub scope: &'a Scope,
    /// Where errors go.
    pub errs: &'a mut Errors,
    /// The type of the events at this point of the stage.
    pub ty: Type,
    /// Index of the operator being planned.
    pub index: usize,
    /// Stateless operators before the stateful part.
    pub pre: Vec<Box<dyn Stateless>>,
    /// The stateful part, once complete.
    pub stateful: Option<Box<dyn Stateful>>,
    /// Stateless operators after it.
    pub post: Vec<Box<dyn Stateless>>,
    /// A `key_by` waiting for its `aggregate`.
    pub key: Option<key_by::PendingKey>,
    /// A `window` waiting for its `aggregate`.
    pub window: Option<window::PendingWindow>,
    /// A `join` waiting for its `window`.
    pub join: join::Waiting,
    /// Whether a `key_by`, `window` or `aggregate` was refused already.
    refused_grouping: bool,
}

/// Plans the stage `def` reading events of type `input_ty`.
pub fn plan(
    def: &StageDef,
    input_ty: Type,
    names: StageNames,
    scope: &Scope,
    errs: &mut Errors,
) -> StagePlan {
    let mut b = StageBuilder {
        def,
        names,
        scope,
        errs,
        ty: input_ty.clone(),
        index: 0,
        pre: Vec::new(),
        stateful: None,
        post: Vec::new(),
        key: None,
        window: None,
        join: join::Waiting::No,
        refused_grouping: false,
    };
    for (i, call) in def.ops.iter().enumerate() {
        b.index = i;
        call.op.plan(&call.name, &mut b);
    }
    b.finish(input_ty)
}

impl StageBuilder<'_> {
    /// Reports an error.
    pub fn error(&mut self, span: Span, msg: impl std::fmt::Display) {
        self.errs.push(span, msg);
    }

    /// True for the stage's last operator.
    pub fn is_last(&self) -> bool {
        self.index + 1 == self.def.ops.len()
    }

    /// Whether a stateless operator may come here; if not, says why at `at`.
    pub fn stateless_allowed(&mut self, at: &Ident) -> bool {
        if let join::Waiting::Window(_) = self.join {
            self.error(at.span(), format!("`{at}` cannot come between `join` and its `window`; filter or map in a stage that reads the join"));
            return false;
        }
        if self.key.is_some() || self.window.is_some() {
            self.error(
                at.span(),
                format!(
                    "`{at}` cannot come between `key_by` and `aggregate`; move it before `key_by`"
                ),
            );
            return false;
        }
        true
    }

    /// Adds a stateless operator, before or after the stateful part.
    pub fn push_stateless(&mut self, op: Box<dyn Stateless>) {
        if self.stateful.is_some() {
            self.post.push(op)
        } else {
            self.pre.push(op)
        }
    }

    /// For `key_by`, `window` and `aggregate`: reports them after a part that takes no
    /// grouping (a join, a `distinct`); true if refused. Only the first is reported: the
    /// others are the same mistake.
    pub fn grouping_refused(&mut self, at: &Ident) -> bool {
        if self.refused_grouping {
            return true;
        }
        let msg = match (&self.join, &self.stateful) {
            (join::Waiting::Window(_), _) => join::refuses_grouping(at),
            (_, Some(s)) => match s.refuses_grouping(at) {
                Some(msg) => msg,
                None => return false,
            },
            _ => return false,
        };
        self.error(at.span(), msg);
        self.refused_grouping = true;
        true
    }

    /// The stage's stateful part is `part`; events from here on have type `ty`.
    pub fn set_stateful(&mut self, part: Box<dyn Stateful>, ty: Type) {
        self.stateful = Some(part);
        self.ty = ty;
    }

    /// Reports what was left unfinished, and builds the stage.
    fn finish(mut self, input_ty: Type) -> StagePlan {
        if let Some(k) = &self.key {
            let at = k.at;
            self.error(
                at,
                "`key_by` must be followed by `aggregate(...)` (optionally after `window(...)`)",
            );
        }
        if let Some(w) = &self.window {
            let at = w.at;
            self.error(at, "`window` must be followed by `aggregate(...)`");
        }
        if let join::Waiting::Window(j) = &self.join {
            let at = j.at.span();
            self.error(at, "a `join` needs a window: add `.window(tumbling(5min))` (or `sliding(..)`), or use `interval_join(.., lower = 5s, upper = 5s)`");
        }
        let def = self.def;
        let out_ty = match (&def.ty, def.ops.last()) {
            // After a map the closure's type is the stage's; otherwise a declared type
            // is checked by an assertion in the generated code.
            (Some(_), Some(call)) if call.op.maps() => self.ty.clone(),
            (Some(t), _) => t.clone(),
            _ => self.ty.clone(),
        };
        StagePlan {
            name: def.name.clone(),
            names: self.names,
            input: def.input.clone(),
            input_ty,
            pre: self.pre,
            stateful: self.stateful,
            post: self.post,
            declared: def.ty.clone(),
            out_ty,
            sink: false,
            children: Vec::new(),
            upgrade: def.upgrade.clone(),
        }
    }
}

//! Every name the generated code makes up, derived here and nowhere else.
//!
//! For `pipeline OrderStats` with a stage `per_5min`: module `order_stats`, state struct
//! `Per5min`, `Per5minAcc`, `Per5minRow`, `Per5minJoined`, methods `__push_per_5min`,
//! `__fire_per_5min`, scratch field `__fired_per_5min`, constants `PER_5MIN_SIZE_MS`.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::Ident;

/// Which input of a stage an upstream feeds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Side {
    /// The only input.
    Main,
    /// The left input of a join.
    Left,
    /// The right input of a join.
    Right,
}

/// Snake-case of a CamelCase name.
pub fn snake(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// CamelCase of a snake_case name.
pub fn camel(name: &str) -> String {
    name.split('_')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut c = p.chars();
            match c.next() {
                Some(f) => f.to_uppercase().chain(c).collect::<String>(),
                None => String::new(),
            }
        })
        .collect()
}

/// The variant of `Output` or `Input` for a stream: its name in CamelCase, at its span.
pub fn variant(stream: &Ident) -> Ident {
    format_ident!("{}", camel(&stream.to_string()), span = stream.span())
}

/// The module of generated types: `order_stats` for `OrderStats`.
pub fn module(pipeline: &Ident) -> Ident {
    format_ident!("{}", snake(&pipeline.to_string()))
}

/// A named constant of a source or stage: `PER_5MIN_SIZE_MS` for `what` = `SIZE_MS`.
pub fn constant(stream: &Ident, what: &str) -> Ident {
    let stream = syn::ext::IdentExt::unraw(stream).to_string();
    format_ident!("{}_{}", stream.to_uppercase(), what)
}

/// A source's push method.
pub fn source_push(source: &Ident) -> Ident {
    format_ident!("__push_{}", source)
}

/// Names of one stage's generated items.
pub struct StageNames {
    /// The module of generated types.
    pub module: Ident,
    /// The stage's name: its field in the pipeline struct and its key in checkpoints.
    pub field: Ident,
    /// The state struct (`Per5min`), at the stage name's span.
    pub state: Ident,
    /// Accumulators of an aggregate (`Per5minAcc`).
    pub acc: Ident,
    /// Result rows of an aggregate (`Per5minRow`).
    pub row: Ident,
    /// Matched pairs of a join (`Per5minJoined`).
    pub joined: Ident,
    /// The push method of a one-input stage.
    pub push: Ident,
    /// The method that sends closed windows on.
    pub fire: Ident,
    /// Field holding closed windows or matched pairs on their way out (not state).
    pub scratch: Ident,
}

impl StageNames {
    /// The names of stage `name` of a pipeline whose module is `module`.
    pub fn new(module: &Ident, name: &Ident) -> Self {
        let camel = camel(&name.to_string());
        StageNames {
            module: module.clone(),
            field: name.clone(),
            state: variant(name),
            acc: format_ident!("{camel}Acc"),
            row: format_ident!("{camel}Row"),
            joined: format_ident!("{camel}Joined"),
            push: format_ident!("__push_{}", name),
            fire: format_ident!("__fire_{}", name),
            scratch: format_ident!("__fired_{}", name),
        }
    }

    /// `module::item`.
    pub fn path(&self, item: &Ident) -> TokenStream {
        let m = &self.module;
        quote!(#m::#item)
    }

    /// The push method for one input.
    pub fn push_for(&self, side: Side) -> Ident {
        match side {
            Side::Main => self.push.clone(),
            Side::Left => format_ident!("__push_{}_left", self.field),
            Side::Right => format_ident!("__push_{}_right", self.field),
        }
    }

    /// The by-value variant of a join input's push method.
    pub fn push_owned(&self, side: Side) -> Ident {
        format_ident!("{}_owned", self.push_for(side))
    }

    /// The late-output variant for events of this stage's input `input` (a join has
    /// one per input: `PairsOrders`), or for its only input (`Per5min`).
    pub fn late_variant(&self, input: Option<&Ident>) -> Ident {
        match input {
            None => self.state.clone(),
            Some(i) => format_ident!(
                "{}{}",
                camel(&self.field.to_string()),
                camel(&i.to_string())
            ),
        }
    }

    /// A named constant of the stage (`PER_5MIN_SIZE_MS` for `what` = `SIZE_MS`),
    /// as the pipeline's impl refers to it.
    pub fn constant(&self, what: &str) -> Ident {
        constant(&self.field, what)
    }
}

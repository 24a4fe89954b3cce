//! What a stage statement says about its earlier versions: `#[was(old_name)]` (it was
//! renamed) and `#[migrate(..)]` (how its state converts from the layout it had):
//!
//! ```text
//! #[was(stats)]                                      // renamed from `stats`
//! #[migrate(added(max_amount))]                      // new columns start from their default
//! #[migrate(old_key = |k: u32| -> u64 { k as u64 })] // the key's type changed
//! #[migrate(old_lateness = 0s)]                      // the allowed lateness changed
//! customer_stats = orders.key_by(..).aggregate(..);
//! ```

use proc_macro2::Span;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Attribute, ExprClosure, Ident, Pat, Token, Type};

use crate::parse::DurationLit;

/// A stage's declarations about its earlier versions.
#[derive(Default, Clone)]
pub struct Upgrade {
    /// `#[was(old)]`: its name before a rename.
    pub was: Option<Ident>,
    /// `#[migrate(..)]`: how its state converts from the layout it had.
    pub migrations: Vec<Migration>,
}

/// One `#[migrate(..)]` item.
#[derive(Clone)]
pub enum Migration {
    /// `added(a, b)`: aggregate columns added since; they start from their default.
    Added {
        /// The `added` token.
        at: Ident,
        /// The new columns.
        columns: Vec<Ident>,
    },
    /// `old_key = |k: Old| -> New { .. }`: the key's type changed; keys that convert to
    /// the same new key are merged.
    Key {
        /// The `old_key` token.
        at: Ident,
        /// The conversion.
        convert: Box<ExprClosure>,
        /// Its parameter's type: the old key type.
        old_ty: Box<Type>,
    },
    /// `old_lateness = 0s`: the window's allowed lateness was this.
    Lateness {
        /// The `old_lateness` token.
        at: Ident,
        /// The old lateness.
        old: DurationLit,
    },
}

impl Migration {
    /// Where errors about it point.
    pub fn span(&self) -> Span {
        match self {
            Migration::Added { at, .. }
            | Migration::Key { at, .. }
            | Migration::Lateness { at, .. } => at.span(),
        }
    }
}

/// Reads `#[was(..)]` and `#[migrate(..)]`; doc comments are allowed, anything else is
/// an error at the attribute.
pub fn parse_attrs(attrs: &[Attribute]) -> syn::Result<Upgrade> {
    let mut up = Upgrade::default();
    for a in attrs {
        let path = a.path();
        if path.is_ident("doc") {
            continue;
        } else if path.is_ident("was") {
            let old: Ident = a.parse_args().map_err(|e| {
                syn::Error::new(
                    e.span(),
                    "write the stage's earlier name: `#[was(old_name)]`",
                )
            })?;
            if up.was.replace(old).is_some() {
                return Err(syn::Error::new_spanned(
                    a,
                    "a stage has one earlier name: one `#[was(..)]`",
                ));
            }
        } else if path.is_ident("migrate") {
            let items = a.parse_args_with(Punctuated::<Migration, Token![,]>::parse_terminated)?;
            up.migrations.extend(items);
        } else {
            return Err(syn::Error::new_spanned(
                path,
                "a stage takes `#[was(old_name)]` and `#[migrate(..)]` (and doc comments) only",
            ));
        }
    }
    Ok(up)
}

impl Parse for Migration {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let at: Ident = input.parse()?;
        match at.to_string().as_str() {
            "added" => {
                let content;
                syn::parenthesized!(content in input);
                let cols = Punctuated::<Ident, Token![,]>::parse_terminated(&content)?;
                if cols.is_empty() {
                    return Err(syn::Error::new(at.span(), "name the added columns: `added(max_amount)`"));
                }
                Ok(Migration::Added {
                    at,
                    columns: cols.into_iter().collect(),
                })
            }
            "old_key" => {
                input.parse::<Token![=]>()?;
                let convert: Box<ExprClosure> = Box::new(input.parse()?);
                let old_ty = match convert.inputs.first() {
                    Some(Pat::Type(t)) if convert.inputs.len() == 1 => t.ty.clone(),
                    _ => {
                        return Err(syn::Error::new_spanned(
                            &convert.inputs,
                            "give the old key's type: `old_key = |k: u32| -> u64 { k as u64 }`",
                        ))
                    }
                };
                Ok(Migration::Key {
                    at,
                    convert,
                    old_ty,
                })
            }
            "old_lateness" => {
                input.parse::<Token![=]>()?;
                Ok(Migration::Lateness {
                    at,
                    old: input.parse()?,
                })
            }
            other => Err(syn::Error::new(
                at.span(),
                format!("unknown migration `{other}`: the migrations are `added(columns..)`, `old_key = |k: Old| -> New {{ .. }}` and `old_lateness = 10s`"),
            )),
        }
    }
}

/// Checks the `#[was(..)]` of every stage: an earlier name is not a stage of the
/// pipeline now, and no two stages claim the same one.
pub fn check_renames(stages: &[crate::plan::StagePlan], errs: &mut crate::diag::Errors) {
    for (i, s) in stages.iter().enumerate() {
        let Some(was) = &s.upgrade.was else { continue };
        if s.stateful.is_none() {
            errs.push(
                was.span(),
                "this stage keeps no state: an earlier name only matters for a stage whose state a checkpoint holds",
            );
        } else if stages.iter().any(|t| t.name == *was) {
            errs.push(
                was.span(),
                format!("`{was}` is a stage of this pipeline: `#[was(..)]` names the stage's earlier name, which no stage has now"),
            );
        } else if stages[..i]
            .iter()
            .any(|t| t.upgrade.was.as_ref() == Some(was))
        {
            errs.push(
                was.span(),
                format!("two stages say they were `{was}`: one state cannot go to both"),
            );
        }
    }
}

//! Errors collected across a whole pipeline, and "did you mean ...?" for unknown names.

use proc_macro2::Span;
use simplestream_sqlplan::{distance, normalize};

/// Every error found, reported together (one `compile_error!` each).
#[derive(Default)]
pub struct Errors(Option<syn::Error>);

impl Errors {
    /// Adds an error at `span`.
    pub fn push(&mut self, span: Span, msg: impl std::fmt::Display) {
        self.add(syn::Error::new(span, msg));
    }

    /// Adds an error (possibly several combined, e.g. "first definition here").
    pub fn add(&mut self, e: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(e),
            None => self.0 = Some(e),
        }
    }

    /// `Ok(value)` if no error was added.
    pub fn finish<T>(self, value: T) -> syn::Result<T> {
        match self.0 {
            Some(e) => Err(e),
            None => Ok(value),
        }
    }
}

/// A name the DSL knows: how it is written, and other systems' names for the same thing
/// (`group_by` for `key_by`), which are suggested but not accepted.
pub struct Known {
    /// The DSL's name.
    pub name: &'static str,
    /// Names users may try instead.
    pub aka: &'static [&'static str],
}

/// The known name closest to `name`, if close enough to be what was meant: a typo of
/// the DSL's name (`cont` is `count`), or exactly another system's name for it.
pub fn did_you_mean(name: &str, known: &[Known]) -> Option<&'static str> {
    let wanted = normalize(name);
    if let Some(k) = known
        .iter()
        .find(|k| k.aka.iter().any(|a| normalize(a) == wanted))
    {
        return Some(k.name);
    }
    // One edit in three characters; `median` is nothing we know.
    let limit = (wanted.len() / 3).max(1);
    known
        .iter()
        .map(|k| (distance(&wanted, &normalize(k.name)), k.name))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, n)| n)
}

/// The name among `names` closest to `name`, if close enough (names only known at
/// expansion time, such as a struct's fields): SQL's measure of a typo.
pub use simplestream_sqlplan::nearest;

/// `unknown {what} `{name}`; did you mean `..`?`, or the list of what there is.
pub fn unknown(what: &str, name: &str, known: &[Known], list: &str) -> String {
    match did_you_mean(name, known) {
        Some(n) => format!("unknown {what} `{name}`; did you mean `{n}`?"),
        None => format!("unknown {what} `{name}`; {list}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FUNCS: &[Known] = &[
        Known {
            name: "count",
            aka: &[],
        },
        Known {
            name: "sum",
            aka: &[],
        },
        Known {
            name: "avg",
            aka: &["mean"],
        },
        Known {
            name: "key_by",
            aka: &["group_by", "group"],
        },
        Known {
            name: "flat_map",
            aka: &[],
        },
    ];

    #[test]
    fn near_misses_and_other_systems_names_are_suggested() {
        assert_eq!(did_you_mean("cont", FUNCS), Some("count"));
        assert_eq!(did_you_mean("conut", FUNCS), Some("count"));
        assert_eq!(did_you_mean("sun", FUNCS), Some("sum"));
        assert_eq!(did_you_mean("groupBy", FUNCS), Some("key_by"));
        assert_eq!(did_you_mean("group", FUNCS), Some("key_by"));
        assert_eq!(did_you_mean("flatMap", FUNCS), Some("flat_map"));
    }

    #[test]
    fn far_names_get_the_list() {
        // Close to `mean`, another system's name for `avg`: aliases must match exactly.
        assert_eq!(did_you_mean("median", FUNCS), None);
        assert_eq!(did_you_mean("mean", FUNCS), Some("avg"));
        assert_eq!(did_you_mean("x", FUNCS), None);
        assert_eq!(
            unknown("aggregate", "median", FUNCS, "use count() or sum(..)"),
            "unknown aggregate `median`; use count() or sum(..)"
        );
    }
}

//! Errors collected across a whole pipeline, and "did you mean ...?" for unknown names.

use proc_macro2::Span;

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
/// expansion time, such as a struct's fields).
pub fn nearest<'a>(name: &str, names: &[&'a str]) -> Option<&'a str> {
    let wanted = normalize(name);
    let limit = (wanted.len() / 3).max(1);
    names
        .iter()
        .map(|n| (distance(&wanted, &normalize(n)), *n))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, n)| n)
}

/// `unknown {what} `{name}`; did you mean `..`?`, or the list of what there is.
pub fn unknown(what: &str, name: &str, known: &[Known], list: &str) -> String {
    match did_you_mean(name, known) {
        Some(n) => format!("unknown {what} `{name}`; did you mean `{n}`?"),
        None => format!("unknown {what} `{name}`; {list}"),
    }
}

/// Case and underscores do not count: `keyBy` and `flatMap` are near misses.
fn normalize(s: &str) -> Vec<char> {
    s.chars()
        .filter(|c| *c != '_')
        .flat_map(char::to_lowercase)
        .collect()
}

/// Edit distance counting a swap of neighbours as one edit (optimal string alignment).
fn distance(a: &[char], b: &[char]) -> usize {
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    d[0] = (0..=b.len()).collect();
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[a.len()][b.len()]
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

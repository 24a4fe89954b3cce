//! Names: which column a name means, and the nearest name to a typo.

use crate::Ident;

/// The index of the name in `names` that `id` means: exactly, or (unquoted, as SQL is)
/// in any case.
///
/// ```
/// use simplestream_sqlplan::{find, Ident};
/// let id = |v: &str, quoted| Ident { value: v.into(), quoted, at: None };
/// assert_eq!(find(&["customer", "amount"], &id("AMOUNT", false)), Some(1));
/// assert_eq!(find(&["customer", "amount"], &id("AMOUNT", true)), None);
/// ```
pub fn find<S: AsRef<str>>(names: &[S], id: &Ident) -> Option<usize> {
    let exact = names.iter().position(|n| n.as_ref() == id.value);
    exact.or_else(|| {
        let lower = id.value.to_lowercase();
        names
            .iter()
            .position(|n| !id.quoted && n.as_ref().to_lowercase() == lower)
    })
}

/// The name in `names` closest to `name` (a typo away), if any; case and underscores
/// do not count.
///
/// ```
/// assert_eq!(simplestream_sqlplan::nearest("amout", &["customer", "amount"]), Some("amount"));
/// ```
pub fn nearest<'a>(name: &str, names: &[&'a str]) -> Option<&'a str> {
    let norm = |s: &str| -> Vec<char> {
        s.chars()
            .filter(|c| *c != '_')
            .flat_map(char::to_lowercase)
            .collect()
    };
    let wanted = norm(name);
    let limit = (wanted.len() / 3).max(1);
    names
        .iter()
        .map(|n| (distance(&wanted, &norm(n)), *n))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, n)| n)
}

/// Levenshtein distance.
fn distance(a: &[char], b: &[char]) -> usize {
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

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

/// The name in `names` closest to `name` (a typo away), if any.
///
/// ```
/// assert_eq!(simplestream_sqlplan::nearest("amout", &["customer", "amount"]), Some("amount"));
/// ```
pub fn nearest<'a>(name: &str, names: &[&'a str]) -> Option<&'a str> {
    let wanted = normalize(name);
    // One edit in three characters.
    let limit = (wanted.len() / 3).max(1);
    names
        .iter()
        .map(|n| (distance(&wanted, &normalize(n)), *n))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, n)| n)
}

/// A name as typos are measured: case and underscores do not count (`keyBy` and
/// `flatMap` are near misses).
///
/// ```
/// assert_eq!(simplestream_sqlplan::normalize("key_By"), ['k', 'e', 'y', 'b', 'y']);
/// ```
pub fn normalize(s: &str) -> Vec<char> {
    s.chars()
        .filter(|c| *c != '_')
        .flat_map(char::to_lowercase)
        .collect()
}

/// Edit distance counting a swap of neighbours as one edit (optimal string alignment).
///
/// ```
/// use simplestream_sqlplan::{distance, normalize};
/// assert_eq!(distance(&normalize("cuont"), &normalize("count")), 1);
/// ```
pub fn distance(a: &[char], b: &[char]) -> usize {
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

//! The source's columns as a query uses them: declared with `CREATE TABLE`, or
//! inferred from their use (a `GROUP BY` key is a string, a `SUM` reads a number, a
//! window's time is an integer of ms, a column only compared keeps whatever it holds).

use sqlparser::ast::Ident;

use super::error::SqlError;
use super::value::{Schema, Ty};

/// What a use of a column needs it to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// A `GROUP BY` key: a string or an integer.
    Key,
    /// `SUM`/`AVG`: a number.
    Number,
    /// `MIN`/`MAX`: a number or a string.
    Ordered,
    /// Event time: integer ms.
    Time,
    /// Anything (compared in `WHERE`, `COUNT(col)`).
    Any,
}

impl Want {
    fn default_ty(self) -> Ty {
        match self {
            Want::Key => Ty::Str,
            Want::Number | Want::Ordered => Ty::Float,
            Want::Time => Ty::Int,
            Want::Any => Ty::Any,
        }
    }

    fn accepts(self, ty: Ty) -> bool {
        match self {
            Want::Key => matches!(ty, Ty::Str | Ty::Int),
            Want::Number => matches!(ty, Ty::Int | Ty::Float),
            Want::Ordered => matches!(ty, Ty::Int | Ty::Float | Ty::Str),
            Want::Time => ty == Ty::Int,
            Want::Any => true,
        }
    }

    fn needs(self) -> &'static str {
        match self {
            Want::Key => "a key (GROUP BY, a join's ON) is a string or integer column",
            Want::Number => "it takes a numeric column",
            Want::Ordered => "it takes a number or string column",
            Want::Time => "event time is an integer column of milliseconds",
            Want::Any => "",
        }
    }
}

/// The source's columns, growing as the query names them (unless declared).
#[derive(Debug, Clone)]
pub struct Columns {
    /// The stream's name.
    pub stream: String,
    /// Names and types so far.
    pub schema: Schema,
    /// True when `CREATE TABLE` declared them: no other column exists.
    pub declared: bool,
}

impl Columns {
    /// The index of column `id`, used as `want` (`what` names the use for errors).
    pub fn use_col(&mut self, id: &Ident, want: Want, what: &str) -> Result<usize, SqlError> {
        let found = self.find(id);
        let Some(i) = found else {
            if self.declared {
                return Err(self.unknown(id));
            }
            self.schema.names.push(leak(&id.value));
            self.schema.types.push(want.default_ty());
            return Ok(self.schema.names.len() - 1);
        };
        let ty = self.schema.types[i];
        if want.accepts(ty) {
            return Ok(i);
        }
        if ty == Ty::Any && !self.declared {
            self.schema.types[i] = want.default_ty();
            return Ok(i);
        }
        let how = if self.declared { "declared" } else { "used as" };
        Err(SqlError::at(
            id.span,
            format!(
                "{what} of `{}`, {how} {}: {}{}",
                id.value,
                article(ty),
                want.needs(),
                if self.declared {
                    ""
                } else {
                    " (declare its type: CREATE TABLE ...)"
                }
            ),
        ))
    }

    /// The column `id` names: exactly, or (unquoted, as SQL is) in any case.
    fn find(&self, id: &Ident) -> Option<usize> {
        let names = &self.schema.names;
        names.iter().position(|n| *n == id.value).or_else(|| {
            let lower = id.value.to_lowercase();
            names
                .iter()
                .position(|n| id.quote_style.is_none() && n.to_lowercase() == lower)
        })
    }

    fn unknown(&self, id: &Ident) -> SqlError {
        let names = &self.schema.names;
        let hint = match nearest(&id.value, names) {
            Some(n) => format!("did you mean `{n}`?"),
            None => format!("its columns are {}", names.join(", ")),
        };
        SqlError::at(
            id.span,
            format!("unknown column `{}` in `{}`; {hint}", id.value, self.stream),
        )
    }
}

fn article(ty: Ty) -> &'static str {
    match ty {
        Ty::Str => "a string",
        Ty::Int => "an integer",
        Ty::Float => "a float",
        Ty::Bool => "a boolean",
        Ty::Any => "any value",
    }
}

/// A `'static` copy of `s`: a query's names live as long as the process runs it.
pub fn leak(s: &str) -> &'static str {
    Box::leak(s.to_owned().into_boxed_str())
}

/// The name in `names` closest to `name` (a typo away), if any.
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

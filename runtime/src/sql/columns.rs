//! The source's columns as a query uses them: declared with `CREATE TABLE`, or
//! inferred from their use (a `GROUP BY` key is a string, a `SUM` reads a number, a
//! window's time is an integer of ms, a column only compared keeps whatever it holds).

use simplestream_sqlplan::{nearest, Error, Ident, Side, TableRef, Want};

use super::value::{Schema, Ty};

fn default_ty(want: Want) -> Ty {
    match want {
        Want::Key => Ty::Str,
        Want::Number | Want::Ordered => Ty::Float,
        Want::Time => Ty::Int,
        Want::Any => Ty::Any,
    }
}

fn accepts(want: Want, ty: Ty) -> bool {
    match want {
        Want::Key => matches!(ty, Ty::Str | Ty::Int),
        Want::Number => matches!(ty, Ty::Int | Ty::Float),
        Want::Ordered => matches!(ty, Ty::Int | Ty::Float | Ty::Str),
        Want::Time => ty == Ty::Int,
        Want::Any => true,
    }
}

fn needs(want: Want) -> &'static str {
    match want {
        Want::Key => "a key (GROUP BY, a join's ON) is a string or integer column",
        Want::Number => "it takes a numeric column",
        Want::Ordered => "it takes a number or string column",
        Want::Time => "event time is an integer column of milliseconds",
        Want::Any => "",
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
    pub fn use_col(&mut self, id: &Ident, want: Want, what: &str) -> Result<usize, Error> {
        let found = self.find(id);
        let Some(i) = found else {
            if self.declared {
                return Err(self.unknown(id));
            }
            self.schema.names.push(leak(&id.value));
            self.schema.types.push(default_ty(want));
            return Ok(self.schema.names.len() - 1);
        };
        let ty = self.schema.types[i];
        if accepts(want, ty) {
            return Ok(i);
        }
        if ty == Ty::Any && !self.declared {
            self.schema.types[i] = default_ty(want);
            return Ok(i);
        }
        let how = if self.declared { "declared" } else { "used as" };
        Err(Error::new(
            id.at.clone(),
            format!(
                "{what} of `{}`, {how} {}: {}{}",
                id.value,
                article(ty),
                needs(want),
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
        simplestream_sqlplan::find(&self.schema.names, id)
    }

    fn unknown(&self, id: &Ident) -> Error {
        let names = &self.schema.names;
        let hint = match nearest(&id.value, names) {
            Some(n) => format!("did you mean `{n}`?"),
            None => format!("its columns are {}", names.join(", ")),
        };
        Error::new(
            id.at.clone(),
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

/// The streams a query reads, as the plan asks for them: declared by `CREATE TABLE`
/// (then only those exist) or inferred.
pub struct Streams {
    /// The declared ones.
    pub tables: Vec<Columns>,
    /// The `FROM` stream's columns and the joined one's, once the plan names them.
    pub sides: [Option<Columns>; 2],
}

fn index(side: Side) -> usize {
    match side {
        Side::From => 0,
        Side::Joined => 1,
    }
}

impl Streams {
    fn side(&self, side: Side) -> &Columns {
        self.sides[index(side)]
            .as_ref()
            .expect("the plan resolves a stream before its columns")
    }
}

impl simplestream_sqlplan::Columns for Streams {
    fn stream(&mut self, side: Side, t: &TableRef) -> Result<(), Error> {
        let name = &t.name.value;
        let cols = if self.tables.is_empty() {
            Columns {
                stream: name.clone(),
                schema: Schema::default(),
                declared: false,
            }
        } else {
            let found = self
                .tables
                .iter()
                .find(|c| c.stream.eq_ignore_ascii_case(name));
            let Some(c) = found else {
                let declared: Vec<String> = self
                    .tables
                    .iter()
                    .map(|c| format!("`{}`", c.stream))
                    .collect();
                let msg = format!(
                    "unknown stream `{name}`; CREATE TABLE declared {}",
                    declared.join(", ")
                );
                return Err(Error::new(t.name.at.clone(), msg));
            };
            c.clone()
        };
        if side == Side::Joined && self.side(Side::From).stream == cols.stream {
            return Err(Error::new(
                t.name.at.clone(),
                "a join reads two different streams",
            ));
        }
        self.sides[index(side)] = Some(cols);
        Ok(())
    }

    fn column(&mut self, side: Side, id: &Ident, want: Want, what: &str) -> Result<usize, Error> {
        let cols = self.sides[index(side)]
            .as_mut()
            .expect("the plan resolves a stream before its columns");
        cols.use_col(id, want, what)
    }

    fn name(&self, side: Side, col: usize) -> String {
        self.side(side).schema.names[col].to_string()
    }
}

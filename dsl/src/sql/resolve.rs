//! The macro's [`Columns`]: streams are sources and earlier views, columns the fields
//! of their Rust types.

use simplestream_sqlplan::{Columns, Error, Ident, Side, TableRef, Want};

use super::schema::{self, Kind, Schema};
use crate::diag;
use crate::expand::plan_data::type_text;

/// The schemas a statement may read, and those it reads.
pub struct Resolver<'a> {
    schemas: &'a [Schema],
    /// The `FROM` stream's and the joined one's.
    pub sides: [Option<&'a Schema>; 2],
}

impl<'a> Resolver<'a> {
    /// Over the streams of `schemas`.
    pub fn new(schemas: &'a [Schema]) -> Self {
        Resolver {
            schemas,
            sides: [None, None],
        }
    }

    /// The schema of `side`, once resolved.
    pub fn side(&self, side: Side) -> &'a Schema {
        self.sides[index(side)].expect("the plan resolves a stream before its columns")
    }
}

fn index(side: Side) -> usize {
    match side {
        Side::From => 0,
        Side::Joined => 1,
    }
}

impl Columns for Resolver<'_> {
    fn stream(&mut self, side: Side, t: &TableRef) -> Result<(), Error> {
        let name = &t.name.value;
        let Some(schema) = self.schemas.iter().find(|s| s.stream == *name) else {
            let msg = match side {
                Side::From => {
                    let known: Vec<String> =
                        self.schemas.iter().map(|s| format!("`{}`", s.stream)).collect();
                    format!("unknown stream `{name}`; SQL reads sources whose event type derives `Columns`, and earlier SQL views: {}", known.join(", "))
                }
                Side::Joined => format!("unknown stream `{name}`; a join reads sources whose event type derives `Columns`, or SQL views"),
            };
            return Err(Error::new(t.name.at.clone(), msg));
        };
        self.sides[index(side)] = Some(schema);
        Ok(())
    }

    fn column(&mut self, side: Side, id: &Ident, want: Want, what: &str) -> Result<usize, Error> {
        let schema = self.side(side);
        let Some(i) = schema.find(id) else {
            let names = schema.names();
            let hint = match diag::nearest(&id.value, &names) {
                Some(n) => format!("did you mean `{n}`?"),
                None => format!("its columns are {}", names.join(", ")),
            };
            let msg = format!(
                "unknown column `{}` in `{}`; {hint}",
                id.value, schema.stream
            );
            return Err(Error::new(id.at.clone(), msg));
        };
        let c = &schema.cols[i];
        if want == Want::Number && !matches!(schema::kind(&c.ty), Kind::Int | Kind::Float) {
            let ty = type_text(&c.ty);
            let msg = format!("{what} of `{}`, a `{ty}`: {what} takes a numeric column (an integer or float field)", c.name);
            return Err(Error::new(id.at.clone(), msg));
        }
        Ok(i)
    }

    fn name(&self, side: Side, col: usize) -> String {
        self.side(side).cols[col].name.clone()
    }
}

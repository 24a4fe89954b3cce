//! Values of the SQL interpreter: [`Val`], the column types [`Ty`], and [`Row`], an
//! event read from JSON with its columns resolved to indices once, at plan time.

use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One value of a column.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    /// A missing value (a failed operation in an expression).
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A string.
    Str(String),
}

impl Serialize for Val {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Val::Null => s.serialize_unit(),
            Val::Bool(b) => s.serialize_bool(*b),
            Val::Int(i) => s.serialize_i64(*i),
            Val::Float(f) => s.serialize_f64(*f),
            Val::Str(x) => s.serialize_str(x),
        }
    }
}

/// A column's type: what a JSON value must be to be read into it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    /// A JSON string.
    Str,
    /// A JSON integer (`i64`).
    Int,
    /// A JSON number, read as `f64` (integers too, so `12` becomes `12.0`).
    Float,
    /// `true` or `false`.
    Bool,
    /// Any scalar, as it comes (a column only compared in `WHERE`).
    Any,
}

impl Ty {
    /// The type a SQL type name declares (`CREATE TABLE orders (amount DOUBLE, ..)`).
    ///
    /// ```
    /// use simplestream_runtime::sql::Ty;
    /// assert_eq!(Ty::from_sql("BIGINT"), Some(Ty::Int));
    /// assert_eq!(Ty::from_sql("varchar"), Some(Ty::Str));
    /// ```
    pub fn from_sql(name: &str) -> Option<Ty> {
        let n = name.to_uppercase();
        let base = n.split('(').next().unwrap_or("").trim();
        Some(match base {
            "TEXT" | "STRING" | "VARCHAR" | "CHAR" | "CHARACTER VARYING" => Ty::Str,
            "BIGINT" | "INT" | "INTEGER" | "SMALLINT" | "TINYINT" | "INT8" | "INT64" => Ty::Int,
            "DOUBLE" | "DOUBLE PRECISION" | "FLOAT" | "REAL" | "FLOAT8" | "FLOAT64" | "DECIMAL"
            | "NUMERIC" => Ty::Float,
            "BOOLEAN" | "BOOL" => Ty::Bool,
            _ => return None,
        })
    }

    /// The Rust type a compiled pipeline would use (for the plan's text).
    pub fn rust(self) -> &'static str {
        match self {
            Ty::Str => "String",
            Ty::Int => "i64",
            Ty::Float => "f64",
            Ty::Bool => "bool",
            Ty::Any => "any",
        }
    }
}

/// The columns rows are read into: names and types, in order.
#[derive(Debug, Clone, Default)]
pub struct Schema {
    /// Column names.
    pub names: Vec<&'static str>,
    /// Their types.
    pub types: Vec<Ty>,
}

impl Schema {
    /// The index of column `name`.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| *n == name)
    }
}

/// An event: one value per column of the query's [`Schema`], in its order, and the
/// stream it came from (0; 1 for the right stream of a join). Fields of the JSON object
/// that no column names are skipped.
#[derive(Debug, Clone, PartialEq)]
pub struct Row(pub Vec<Val>, pub u8);

impl Row {
    /// Reads one JSON object as a row of `schema`.
    ///
    /// ```
    /// use simplestream_runtime::sql::{Row, Schema, Ty, Val};
    /// let s = Schema { names: vec!["customer", "amount"], types: vec![Ty::Str, Ty::Float] };
    /// let r = Row::from_json(&s, br#"{"amount":12,"customer":"C1","x":[1]}"#).unwrap();
    /// assert_eq!(r.0, vec![Val::Str("C1".into()), Val::Float(12.0)]);
    /// assert!(Row::from_json(&s, br#"{"amount":"12","customer":"C1"}"#).is_err());
    /// ```
    pub fn from_json(schema: &Schema, line: &[u8]) -> Result<Row, serde_json::Error> {
        let mut de = serde_json::Deserializer::from_slice(line);
        let row = RowSeed(schema).deserialize(&mut de)?;
        de.end()?;
        Ok(row)
    }

    /// Writes the row as a JSON object of `schema`'s columns.
    pub fn with<'a>(&'a self, schema: &'a Schema) -> Named<'a> {
        Named {
            names: &schema.names,
            vals: &self.0,
        }
    }
}

/// Values with their column names: serializes as a JSON object.
pub struct Named<'a> {
    /// Column names.
    pub names: &'a [&'static str],
    /// Values, in the same order.
    pub vals: &'a [Val],
}

impl Serialize for Named<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.names.len()))?;
        for (n, v) in self.names.iter().zip(self.vals) {
            m.serialize_entry(n, v)?;
        }
        m.end()
    }
}

/// Reads a [`Row`] of a schema.
pub struct RowSeed<'a>(pub &'a Schema);

impl<'de> DeserializeSeed<'de> for RowSeed<'_> {
    type Value = Row;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Row, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RowSeed<'_> {
    type Value = Row;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object (one event)")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Row, A::Error> {
        let s = self.0;
        let mut vals: Vec<Option<Val>> = vec![None; s.names.len()];
        while let Some(i) = m.next_key_seed(ColumnSeed(s))? {
            match i {
                Some(i) => vals[i] = Some(m.next_value_seed(TySeed(s.types[i]))?),
                None => {
                    m.next_value::<IgnoredAny>()?;
                }
            }
        }
        let vals = vals
            .into_iter()
            .enumerate()
            .map(|(i, v)| v.ok_or_else(|| de::Error::missing_field(s.names[i])))
            .collect::<Result<_, _>>()?;
        Ok(Row(vals, 0))
    }
}

/// A field name, as the index of its column (`None`: not a column).
struct ColumnSeed<'a>(&'a Schema);

impl<'de> DeserializeSeed<'de> for ColumnSeed<'_> {
    type Value = Option<usize>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<usize>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for ColumnSeed<'_> {
    type Value = Option<usize>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Option<usize>, E> {
        Ok(self.0.index(v))
    }
}

/// A value of a column type.
struct TySeed(Ty);

impl<'de> DeserializeSeed<'de> for TySeed {
    type Value = Val;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Val, D::Error> {
        Ok(match self.0 {
            Ty::Str => Val::Str(String::deserialize(d)?),
            Ty::Int => Val::Int(i64::deserialize(d)?),
            Ty::Float => Val::Float(f64::deserialize(d)?),
            Ty::Bool => Val::Bool(bool::deserialize(d)?),
            Ty::Any => d.deserialize_any(AnyScalar)?,
        })
    }
}

struct AnyScalar;

impl<'de> Visitor<'de> for AnyScalar {
    type Value = Val;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string, number, boolean or null")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Val, E> {
        Ok(Val::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Val, E> {
        Ok(Val::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Val, E> {
        Ok(i64::try_from(v).map_or(Val::Float(v as f64), Val::Int))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Val, E> {
        Ok(Val::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Val, E> {
        Ok(Val::Str(v.to_owned()))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Val, E> {
        Ok(Val::Null)
    }
}

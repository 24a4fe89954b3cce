//! The key of an output row, for outputs that place rows by key (a Kafka topic with
//! several partitions): the value of its sink stage's key column, read back from the
//! row as written.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::plan::{Plan, State};

/// Each sink's key column: the key of its stage's state. A window over all events, a
/// stateless stage and late events have none.
pub(crate) struct RowKeys {
    columns: Vec<(&'static str, &'static str)>,
}

impl RowKeys {
    pub(crate) fn of(plan: &Plan) -> RowKeys {
        let columns = plan
            .stages
            .iter()
            .filter(|s| s.sink)
            .filter_map(|s| Some((s.name, key_column(&s.state)?)))
            .collect();
        RowKeys { columns }
    }

    /// Writes to `out` the key of `line`, a row of `sink` as JSON: a string key's text
    /// (UTF-8, unquoted), any other key's JSON text (`42`). False if it has none (no key
    /// column, the column is not in the row, or it is null).
    pub(crate) fn key_into(&self, sink: &str, line: &[u8], out: &mut Vec<u8>) -> bool {
        let Some(&(_, column)) = self.columns.iter().find(|(s, _)| *s == sink) else {
            return false;
        };
        let mut de = serde_json::Deserializer::from_slice(line);
        let find = Find { column, out };
        de.deserialize_map(find).unwrap_or(false)
    }
}

fn key_column(state: &State) -> Option<&'static str> {
    match *state {
        State::None => None,
        State::PerKey { key } | State::SeenKeys { key } | State::JoinBuffers { key, .. } => {
            Some(key)
        }
        State::Windowed { key, .. } => key,
    }
}

/// Visits a JSON object for the field named `column`.
struct Find<'a> {
    column: &'a str,
    out: &'a mut Vec<u8>,
}

impl<'de> Visitor<'de> for Find<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        while let Some(is_key) = map.next_key_seed(NameIs(self.column))? {
            if !is_key {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            let raw: &RawValue = map.next_value()?;
            let found = text_of(raw.get(), self.out);
            // The parser checks the object is read to its end.
            while map.next_key::<IgnoredAny>()?.is_some() {
                map.next_value::<IgnoredAny>()?;
            }
            return Ok(found);
        }
        Ok(false)
    }
}

/// The key's bytes: a string unquoted and unescaped, anything else as JSON text.
fn text_of(json: &str, out: &mut Vec<u8>) -> bool {
    if json == "null" {
        return false;
    }
    match json.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
        Some(plain) if !plain.contains('\\') => out.extend_from_slice(plain.as_bytes()),
        Some(_) => match serde_json::from_str::<String>(json) {
            Ok(s) => out.extend_from_slice(s.as_bytes()),
            Err(_) => return false,
        },
        None => out.extend_from_slice(json.as_bytes()),
    }
    true
}

/// A field name, compared with the column without being copied.
struct NameIs<'a>(&'a str);

impl<'de> DeserializeSeed<'de> for NameIs<'_> {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for NameIs<'_> {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a field name")
    }
    fn visit_str<E>(self, v: &str) -> Result<bool, E> {
        Ok(v == self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Op, Stage, Window};

    const fn stage(name: &'static str, state: State) -> Stage {
        Stage {
            name,
            input: "orders",
            ops: &[Op::Filter],
            output_type: "R",
            sink: true,
            state,
        }
    }

    const WINDOW: Window = Window::Tumbling {
        size_ms: 1_000,
        lateness_ms: 0,
    };
    const PLAN: Plan = Plan {
        name: "P",
        sources: &[],
        stages: &[
            stage("per_customer", State::PerKey { key: "customer" }),
            stage(
                "all",
                State::Windowed {
                    key: None,
                    window: WINDOW,
                },
            ),
            stage("by_shard", State::PerKey { key: "shard" }),
        ],
    };

    fn key(sink: &str, line: &str) -> Option<String> {
        let mut out = Vec::new();
        let found = RowKeys::of(&PLAN).key_into(sink, line.as_bytes(), &mut out);
        found.then(|| String::from_utf8(out).unwrap())
    }

    #[test]
    fn the_key_column_of_the_rows_sink() {
        let row = r#"{"window_start":0,"customer":"C0\"7","n":{"customer":"inner"}}"#;
        assert_eq!(key("per_customer", row).as_deref(), Some("C0\"7"));
        assert_eq!(
            key("per_customer", r#"{"customer":"C1","n":2}"#).as_deref(),
            Some("C1")
        );
        assert_eq!(
            key("by_shard", r#"{"n":1,"shard":42}"#).as_deref(),
            Some("42")
        );
        assert_eq!(key("all", r#"{"customer":"C1"}"#), None, "no key column");
        assert_eq!(key("per_customer", r#"{"n":1}"#), None, "not in the row");
        assert_eq!(key("per_customer", r#"{"customer":null}"#), None);
        assert_eq!(key("late", r#"{"customer":"C1"}"#), None, "not a sink");
    }
}

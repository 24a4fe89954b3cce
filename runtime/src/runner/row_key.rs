//! The key of an output row, for outputs that place rows by key (a Kafka topic with
//! several partitions): the value of its sink stage's key column, read back from the
//! row as written.

use crate::plan::Plan;

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
            .filter_map(|s| Some((s.name, s.state.key()?)))
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
        // The row is our own encoder's JSON: read only as far as the key's field.
        field(line, column.as_bytes())
            .and_then(|v| std::str::from_utf8(v).ok())
            .is_some_and(|v| text_of(v, out))
    }
}

/// The JSON text of field `name` of the object `json`, scanned only up to that field
/// (names compared as written, unescaped); `None` if it is not there or `json` is not
/// an object.
fn field<'a>(json: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let mut i = skip_ws(json, 0);
    if json.get(i) != Some(&b'{') {
        return None;
    }
    i = skip_ws(json, i + 1);
    while json.get(i) == Some(&b'"') {
        let key_end = string_end(json, i)?;
        let key = &json[i + 1..key_end - 1];
        i = skip_ws(json, key_end);
        if json.get(i) != Some(&b':') {
            return None;
        }
        let start = skip_ws(json, i + 1);
        let end = value_end(json, start)?;
        if key == name {
            return Some(&json[start..end]);
        }
        i = skip_ws(json, end);
        if json.get(i) != Some(&b',') {
            return None;
        }
        i = skip_ws(json, i + 1);
    }
    None
}

/// The index after the string that starts (with its quote) at `start`.
fn string_end(b: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    loop {
        let n = memchr::memchr2(b'"', b'\\', b.get(i..)?)?;
        if b[i + n] == b'"' {
            return Some(i + n + 1);
        }
        i += n + 2; // an escape: the backslash and the byte after it
    }
}

/// The index after the value that starts at `start`: a string, an object or array
/// (strings inside them skipped whole), or a scalar up to the next `,`, `}` or space.
fn value_end(b: &[u8], start: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = start;
    loop {
        match *b.get(i)? {
            b'"' => {
                i = string_end(b, i)?;
                if depth == 0 {
                    return Some(i);
                }
                continue;
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' if depth > 1 => depth -= 1,
            b'}' | b']' if depth == 1 => return Some(i + 1),
            b',' | b'}' | b']' if depth == 0 => return (i > start).then_some(i),
            c if depth == 0 && c.is_ascii_whitespace() => return Some(i),
            _ => {}
        }
        i += 1;
    }
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while b.get(i).is_some_and(u8::is_ascii_whitespace) {
        i += 1;
    }
    i
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Op, Stage, State, Window};

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
        // Values skipped whole, whatever they hold, and space between tokens.
        let tricky = r#"{ "s" : "}\",{\\" , "n":{"customer":"inner","a":[1,{"b":"]"}]}, "customer" : "C2" }"#;
        assert_eq!(key("per_customer", tricky).as_deref(), Some("C2"));
        assert_eq!(
            key("by_shard", r#"{"n":[1,2],"shard":-4.5e3}"#).as_deref(),
            Some("-4.5e3")
        );
        assert_eq!(
            key("per_customer", r#"{"n":1,"customer""#),
            None,
            "cut short"
        );
        assert_eq!(
            key("per_customer", r#"["customer","C1"]"#),
            None,
            "not an object"
        );
    }
}

//! A checkpoint's JSON re-indented as `serde_json::to_string_pretty` prints it, without
//! building a `serde_json::Value` first: that takes about 600 bytes per map entry, tens
//! of GB for a state of tens of millions of keys.

/// `json`, checked to be valid JSON, re-indented: two spaces per level, `": "` after
/// keys, `{}` and `[]` when empty. Strings are copied as they are: serde_json (which
/// wrote them) escapes only what it must, so the text equals a `Value`'s round trip.
pub(super) fn pretty(json: &[u8]) -> Result<String, String> {
    serde_json::from_slice::<serde::de::IgnoredAny>(json).map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(json.len() + json.len() / 2);
    let mut depth = 0usize;
    let mut i = 0;
    while i < json.len() {
        let b = json[i];
        i += 1;
        match b {
            b'"' => i = copy_string(json, i, &mut out),
            b'{' | b'[' => {
                let close = if b == b'{' { b'}' } else { b']' };
                let next = skip_space(json, i);
                out.push(b);
                if json.get(next) == Some(&close) {
                    out.push(close);
                    i = next + 1;
                } else {
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            b'}' | b']' => {
                depth -= 1;
                newline(&mut out, depth);
                out.push(b);
            }
            b',' => {
                out.push(b);
                newline(&mut out, depth);
            }
            b':' => out.extend_from_slice(b": "),
            b' ' | b'\n' | b'\t' | b'\r' => {}
            _ => out.push(b),
        }
    }
    String::from_utf8(out).map_err(|e| e.to_string())
}

/// Copies a string whose opening quote is before `i`; returns the index after its end.
fn copy_string(json: &[u8], mut i: usize, out: &mut Vec<u8>) -> usize {
    out.push(b'"');
    while let Some(&b) = json.get(i) {
        out.push(b);
        i += 1;
        match b {
            b'\\' => {
                out.extend(json.get(i));
                i += 1;
            }
            b'"' => break,
            _ => {}
        }
    }
    i
}

fn skip_space(json: &[u8], mut i: usize) -> usize {
    while json.get(i).is_some_and(|b| b" \n\t\r".contains(b)) {
        i += 1;
    }
    i
}

fn newline(out: &mut Vec<u8>, depth: usize) {
    out.push(b'\n');
    out.resize(out.len() + 2 * depth, b' ');
}

#[cfg(test)]
mod tests {
    use super::pretty;

    #[test]
    fn equals_serde_jsons_pretty_printer() {
        let docs = [
            r#"{"a":{},"b":[],"c":[{}],"d":"x{,}:[\"\\","e":[1,2.5,-3e-7,null,true,false]}"#,
            r#"{"customer_stats":{"C001":{"count":2,"amount":12.5}},"positions":{"x":1}}"#,
            r#"{"é":"\n\u0001\t","deep":{"a":{"b":{"c":[[],[[]],{"k":[]}]}}}}"#,
            "[ 1 , { \"a\" : [ ] } ]",
            r#""just a string""#,
            "42",
        ];
        for d in docs {
            let v: serde_json::Value = serde_json::from_str(d).unwrap();
            let expected = serde_json::to_string_pretty(&v).unwrap();
            assert_eq!(pretty(d.as_bytes()).unwrap(), expected, "{d}");
            // Already pretty: unchanged.
            assert_eq!(pretty(expected.as_bytes()).unwrap(), expected);
        }
    }

    #[test]
    fn invalid_json_is_an_error() {
        for d in [r#"{"a":1"#, r#"{"a":}"#, "[1,]", "", r#"{"a":1}}"#] {
            assert!(pretty(d.as_bytes()).is_err(), "{d:?}");
        }
    }
}

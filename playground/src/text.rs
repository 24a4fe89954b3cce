//! How the page writes times, durations, sizes and accumulator values.

use serde_json::Value;
use simplestream::time::iso_utc;

/// `5 min`, `20 s`, `1500 ms`.
///
/// ```
/// use simplestream_playground::text::ms_label;
/// assert_eq!((ms_label(300_000), ms_label(20_000), ms_label(1_500)), ("5 min".into(), "20 s".into(), "1500 ms".into()));
/// ```
pub fn ms_label(ms: i64) -> String {
    if ms != 0 && ms % 60_000 == 0 {
        format!("{} min", ms / 60_000)
    } else if ms % 1000 == 0 {
        format!("{} s", ms / 1000)
    } else {
        format!("{ms} ms")
    }
}

/// `04:05:00` (UTC) of a time in ms.
///
/// ```
/// assert_eq!(simplestream_playground::text::hms(1_635_739_500_000), "04:05:00");
/// ```
pub fn hms(ms: i64) -> String {
    iso_utc(ms)[11..19].to_string()
}

/// `2021-11-01 04:05:00.000 UTC`, or `none yet` before the first event.
///
/// ```
/// use simplestream_playground::text::when;
/// assert_eq!(when(1_635_739_500_000), "2021-11-01 04:05:00.000 UTC");
/// assert_eq!(when(i64::MIN), "none yet");
/// ```
pub fn when(ms: i64) -> String {
    if ms == i64::MIN {
        "none yet".into()
    } else {
        let iso = iso_utc(ms);
        format!("{} {} UTC", &iso[..10], &iso[11..23])
    }
}

/// `512 B`, `1.5 KB`, `2.00 MB`.
///
/// ```
/// assert_eq!(simplestream_playground::text::size_label(1_536), "1.5 KB");
/// ```
pub fn size_label(n: u64) -> String {
    if n < 1024 {
        format!("{n} B")
    } else if n < 1024 * 1024 {
        format!("{:.1} KB", n as f64 / 1024.0)
    } else {
        format!("{:.2} MB", n as f64 / (1024.0 * 1024.0))
    }
}

/// A table cell from an accumulator's JSON (an `avg` accumulator shows its mean).
///
/// ```
/// use serde_json::json;
/// use simplestream_playground::text::cell;
/// assert_eq!(cell(&json!({"sum": 5.0, "count": 2})), "2.50 (n=2)");
/// assert_eq!(cell(&json!(3.0)), "3.0");
/// ```
pub fn cell(v: &Value) -> String {
    match v {
        Value::Null => "—".into(),
        Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or(0.0);
            if f.fract() == 0.0 {
                format!("{f:.1}")
            } else {
                format!("{f:.2}")
            }
        }
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Object(o) if o.contains_key("sum") && o.contains_key("count") => {
            let sum = o["sum"].as_f64().unwrap_or(0.0);
            let count = o["count"].as_u64().unwrap_or(0);
            if count == 0 {
                "—".into()
            } else {
                format!("{:.2} (n={count})", sum / count as f64)
            }
        }
        other => other.to_string(),
    }
}

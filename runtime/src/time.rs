//! Durations and timestamps, without a date-time dependency.

/// Parses a duration like `500ms`, `5s`, `1.5s`, `5min`, `5m`, `2h`, `1d` into milliseconds.
///
/// ```
/// use simplestream_runtime::time::parse_duration_ms;
/// assert_eq!(parse_duration_ms("5min"), Ok(300_000));
/// assert_eq!(parse_duration_ms("1.5s"), Ok(1_500));
/// assert!(parse_duration_ms("5 parsecs").is_err());
/// ```
pub fn parse_duration_ms(s: &str) -> Result<i64, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let unit_ms = unit_ms(unit.trim()).ok_or_else(|| {
        format!("bad duration `{s}`: unit `{unit}` is not one of ms, s, m/min, h, d (e.g. `500ms`, `5s`, `5min`)")
    })?;
    if num.is_empty() {
        return Err(format!(
            "bad duration `{s}`: it needs a number before the unit (e.g. `5s`)"
        ));
    }
    let v: f64 = num
        .parse()
        .map_err(|_| format!("bad duration `{s}`: `{num}` is not a number"))?;
    let ms = v * unit_ms as f64;
    if !ms.is_finite() || ms > i64::MAX as f64 / 2.0 {
        return Err(format!("bad duration `{s}`: too large"));
    }
    if ms.fract() != 0.0 {
        return Err(format!(
            "bad duration `{s}`: durations have millisecond precision"
        ));
    }
    Ok(ms as i64)
}

/// Milliseconds in a duration unit, if it is one.
pub fn unit_ms(unit: &str) -> Option<i64> {
    Some(match unit {
        "ms" => 1,
        "s" | "sec" => 1_000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    })
}

/// A duration in the largest unit that divides it: `300000` is `5min`, `1500` is `1500ms`.
///
/// ```
/// use simplestream_runtime::time::format_duration_ms;
/// assert_eq!(format_duration_ms(300_000), "5min");
/// assert_eq!(format_duration_ms(1_500), "1500ms");
/// assert_eq!(format_duration_ms(0), "0ms");
/// ```
pub fn format_duration_ms(ms: i64) -> String {
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("min", 60_000),
        ("s", 1_000),
    ] {
        if ms != 0 && ms % size == 0 {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

/// Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    (y, m, d)
}

fn parts(ms: i64) -> (i64, u32, u32, i64, i64, i64, i64) {
    let days = ms.div_euclid(86_400_000);
    let rem = ms.rem_euclid(86_400_000);
    let (y, mo, d) = civil(days);
    (
        y,
        mo,
        d,
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000,
    )
}

/// `20241201_140000_123` (UTC) for a time in ms: sorts like the time it names.
///
/// ```
/// assert_eq!(simplestream_runtime::time::compact_utc(1_733_061_600_123), "20241201_140000_123");
/// ```
pub fn compact_utc(ms: i64) -> String {
    let (y, mo, d, h, mi, s, milli) = parts(ms);
    format!("{y:04}{mo:02}{d:02}_{h:02}{mi:02}{s:02}_{milli:03}")
}

/// `2024-12-01T14:00:00.123Z` for a time in ms.
///
/// ```
/// assert_eq!(simplestream_runtime::time::iso_utc(1_733_061_600_123), "2024-12-01T14:00:00.123Z");
/// ```
pub fn iso_utc(ms: i64) -> String {
    let (y, mo, d, h, mi, s, milli) = parts(ms);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{milli:03}Z")
}

/// Wall-clock now in ms (native only: browsers pass `Date.now()` instead).
#[cfg(not(target_arch = "wasm32"))]
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Measures elapsed time where the platform has a monotonic clock; in the browser
/// (wasm32, where `Instant::now` panics) it reads 0.
#[derive(Debug, Clone, Copy)]
pub struct Stopwatch {
    #[cfg(not(target_arch = "wasm32"))]
    started: std::time::Instant,
}

impl Stopwatch {
    /// Starts measuring.
    ///
    /// ```
    /// let w = simplestream_runtime::time::Stopwatch::start();
    /// assert!(w.elapsed_ms() >= 0.0);
    /// ```
    pub fn start() -> Self {
        Stopwatch {
            #[cfg(not(target_arch = "wasm32"))]
            started: std::time::Instant::now(),
        }
    }

    /// Milliseconds since [`start`](Self::start) (0 on wasm32).
    pub fn elapsed_ms(&self) -> f64 {
        #[cfg(not(target_arch = "wasm32"))]
        return self.started.elapsed().as_secs_f64() * 1e3;
        #[cfg(target_arch = "wasm32")]
        return 0.0;
    }
}

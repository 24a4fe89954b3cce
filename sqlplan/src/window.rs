//! Window functions: `TUMBLE(ts, size)`, `HOP(ts, slide, size)` and `SESSION(ts, gap)`,
//! durations written `INTERVAL '5' MINUTE` (or `INTERVAL '5 minutes'`).

use std::ops::Range;

use sqlparser::ast::{Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Spanned, Value};

use crate::text::Cx;
use crate::Error;

/// A window of event time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Win {
    /// `TUMBLE`.
    Tumbling {
        /// Size, ms.
        size: i64,
    },
    /// `HOP`.
    Sliding {
        /// Size, ms.
        size: i64,
        /// Slide, ms.
        slide: i64,
    },
    /// `SESSION`.
    Session {
        /// Inactivity gap, ms.
        gap: i64,
    },
}

/// A window function: the window and its time column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// The window.
    pub win: Win,
    /// The event-time column (of the stream it groups).
    pub time: usize,
    /// Where the call is written.
    pub at: Option<Range<usize>>,
}

const WINDOWS: &str = "TUMBLE(ts, INTERVAL '5' MINUTE), HOP(ts, INTERVAL '1' MINUTE, INTERVAL '5' MINUTE) (slide, then size) or SESSION(ts, INTERVAL '30' SECOND)";

/// The window `g` names, if it is a function call (which must be a window function);
/// `time` resolves its first argument.
pub fn read(
    cx: Cx,
    g: &Expr,
    time: &mut dyn FnMut(&Expr) -> Result<usize, Error>,
) -> Result<Option<Window>, Error> {
    let Expr::Function(f) = g else {
        return Ok(None);
    };
    let func = f.name.to_string().to_uppercase();
    if !matches!(func.as_str(), "TUMBLE" | "HOP" | "SESSION") {
        return Err(cx.error(
            g.span(),
            format!(
                "`{}` in GROUP BY: group by a column or a window, {WINDOWS}",
                f.name
            ),
        ));
    }
    let args: Vec<&Expr> = match &f.args {
        FunctionArguments::List(l) => l
            .args
            .iter()
            .filter_map(|a| match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    let wrong = || {
        cx.error(
            g.span(),
            format!("{func} takes the time column and durations: {WINDOWS}"),
        )
    };
    let Some((t, durations)) = args.split_first() else {
        return Err(wrong());
    };
    let t = time(t)?;
    let ms: Vec<i64> = durations
        .iter()
        .map(|d| interval_ms(cx, d))
        .collect::<Result<_, _>>()?;
    let win = match (func.as_str(), ms.as_slice()) {
        ("TUMBLE", [size]) => Win::Tumbling { size: *size },
        ("HOP", [slide, size]) if slide <= size => Win::Sliding {
            size: *size,
            slide: *slide,
        },
        ("HOP", [_, _]) => return Err(cx.error(
            g.span(),
            "HOP's slide (the second argument) is longer than its size (the third): events between windows would be lost",
        )),
        ("SESSION", [gap]) => Win::Session { gap: *gap },
        _ => return Err(wrong()),
    };
    Ok(Some(Window {
        win,
        time: t,
        at: cx.range(g.span()),
    }))
}

/// The hint for a window's first argument that is not a column.
pub fn not_a_time_column(cx: Cx, e: &Expr) -> Error {
    cx.error(
        e.span(),
        cx.pick(
            "the first argument is the event-time column (`ts`); the source's `event_time` computes it",
            "the first argument is the event-time column (`ts`, integer ms)",
        ),
    )
}

/// `INTERVAL '5' MINUTE` or `INTERVAL '5 minutes'`, in milliseconds.
pub fn interval_ms(cx: Cx, e: &Expr) -> Result<i64, Error> {
    let bad = || {
        cx.error(
            e.span(),
            "expected a duration such as INTERVAL '5' MINUTE (MILLISECOND, SECOND, MINUTE, HOUR or DAY)",
        )
    };
    let Expr::Interval(i) = e else {
        return Err(bad());
    };
    let value = match &*i.value {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) | Value::Number(s, _) => s.clone(),
            _ => return Err(bad()),
        },
        _ => return Err(bad()),
    };
    let words = match &i.leading_field {
        Some(unit) => format!("{value} {unit}"),
        None => value,
    };
    let mut parts = words.split_whitespace();
    let (Some(n), Some(unit), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    let unit_ms: i64 = match unit.to_uppercase().trim_end_matches('S') {
        "MILLISECOND" => 1,
        "SECOND" => 1_000,
        "MINUTE" => 60_000,
        "HOUR" => 3_600_000,
        "DAY" => 86_400_000,
        _ => return Err(bad()),
    };
    let n: i64 = n.parse().map_err(|_| bad())?;
    n.checked_mul(unit_ms).filter(|ms| *ms > 0).ok_or_else(bad)
}

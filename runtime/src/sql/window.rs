//! Window functions of `GROUP BY`: `TUMBLE(ts, size)`, `HOP(ts, slide, size)` and
//! `SESSION(ts, gap)`, durations written `INTERVAL '5' MINUTE` (or `INTERVAL '5 minutes'`).

use sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Ident, Spanned, Value,
};

use super::error::SqlError;

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

impl Win {
    /// As the plan records it (allowed lateness 0: SQL has no way to say another).
    pub fn plan(self) -> crate::plan::Window {
        use crate::plan::Window as W;
        match self {
            Win::Tumbling { size } => W::Tumbling {
                size_ms: size,
                lateness_ms: 0,
            },
            Win::Sliding { size, slide } => W::Sliding {
                size_ms: size,
                slide_ms: slide,
                lateness_ms: 0,
            },
            Win::Session { gap } => W::Session {
                gap_ms: gap,
                lateness_ms: 0,
            },
        }
    }
}

const WINDOWS: &str = "TUMBLE(ts, INTERVAL '5' MINUTE), HOP(ts, INTERVAL '1' MINUTE, INTERVAL '5' MINUTE) (slide, then size) or SESSION(ts, INTERVAL '30' SECOND)";

/// The window `g` names and its time column, if `g` is a window function.
pub fn parse(g: &Expr) -> Result<Option<(Win, Ident)>, SqlError> {
    let Expr::Function(f) = g else {
        return Ok(None);
    };
    let func = f.name.to_string().to_uppercase();
    if !matches!(func.as_str(), "TUMBLE" | "HOP" | "SESSION") {
        return Err(SqlError::at(
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
        SqlError::at(
            g.span(),
            format!("{func} takes the time column and durations: {WINDOWS}"),
        )
    };
    let Some((time, durations)) = args.split_first() else {
        return Err(wrong());
    };
    let time = match time {
        Expr::Identifier(id) => id.clone(),
        Expr::CompoundIdentifier(ids) if ids.len() == 2 => ids[1].clone(),
        _ => {
            return Err(SqlError::at(
                time.span(),
                "the first argument is the event-time column (`ts`, integer ms)",
            ))
        }
    };
    let ms: Vec<i64> = durations
        .iter()
        .map(|d| interval_ms(d))
        .collect::<Result<_, _>>()?;
    let w = match (func.as_str(), ms.as_slice()) {
        ("TUMBLE", [size]) => Win::Tumbling { size: *size },
        ("HOP", [slide, size]) if slide <= size => Win::Sliding { size: *size, slide: *slide },
        ("HOP", [_, _]) => {
            return Err(SqlError::at(
                g.span(),
                "HOP's slide (the second argument) is longer than its size (the third): events between windows would be lost",
            ))
        }
        ("SESSION", [gap]) => Win::Session { gap: *gap },
        _ => return Err(wrong()),
    };
    Ok(Some((w, time)))
}

/// `INTERVAL '5' MINUTE` or `INTERVAL '5 minutes'`, in milliseconds.
pub fn interval_ms(e: &Expr) -> Result<i64, SqlError> {
    let bad = || {
        SqlError::at(
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

//! Window functions of `GROUP BY`: `TUMBLE(ts, INTERVAL '5' MINUTE)`,
//! `HOP(ts, slide, size)` and `SESSION(ts, gap)`, as the DSL's `.window(..)`.

use proc_macro2::TokenStream;
use quote::quote_spanned;
use sqlparser::ast::{Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Spanned, Value};

use super::expr::{self, Scope};
use super::select::duration_lit;
use super::text::SqlText;

/// A window of `GROUP BY`.
pub struct SqlWindow {
    /// `.window(tumbling(300000ms))`.
    pub dsl: TokenStream,
}

const WINDOWS: &str =
    "TUMBLE(ts, INTERVAL '5' MINUTE), HOP(ts, INTERVAL '1' MINUTE, INTERVAL '5' MINUTE) (slide, then size) or SESSION(ts, INTERVAL '30' SECOND)";

/// The window `g` names, if it is a window function.
pub fn parse(text: &SqlText, g: &Expr, scope: &Scope) -> syn::Result<Option<SqlWindow>> {
    let Expr::Function(f) = g else {
        return Ok(None);
    };
    let func = f.name.to_string().to_uppercase();
    if !matches!(func.as_str(), "TUMBLE" | "HOP" | "SESSION") {
        return Err(text.error(
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
        text.error(
            g.span(),
            format!("{func} takes the time column and durations: {WINDOWS}"),
        )
    };
    let Some((time, durations)) = args.split_first() else {
        return Err(wrong());
    };
    match time {
        Expr::Identifier(id) => {
            expr::column(scope, None, id)?;
        }
        Expr::CompoundIdentifier(ids) if ids.len() == 2 => {
            expr::column(scope, Some(&ids[0]), &ids[1])?;
        }
        _ => return Err(text.error(time.span(), "the first argument is the event-time column (`ts`); the source's `event_time` computes it")),
    }
    let ms: Vec<i64> = durations
        .iter()
        .map(|d| interval_ms(text, d))
        .collect::<syn::Result<_>>()?;
    let sp = text.span(g.span());
    let dsl = match (func.as_str(), ms.as_slice()) {
        ("TUMBLE", [size]) => {
            let size = duration_lit(*size, sp);
            quote_spanned!(sp=> .window(tumbling(#size)))
        }
        ("HOP", [slide, size]) => {
            let (slide, size) = (duration_lit(*slide, sp), duration_lit(*size, sp));
            quote_spanned!(sp=> .window(sliding(#size, #slide)))
        }
        ("SESSION", [gap]) => {
            let gap = duration_lit(*gap, sp);
            quote_spanned!(sp=> .window(session(#gap)))
        }
        _ => return Err(wrong()),
    };
    Ok(Some(SqlWindow { dsl }))
}

/// `INTERVAL '5' MINUTE` or `INTERVAL '5 minutes'`, in milliseconds.
pub fn interval_ms(text: &SqlText, e: &Expr) -> syn::Result<i64> {
    let bad = || {
        text.error(e.span(), "expected a duration such as INTERVAL '5' MINUTE (MILLISECOND, SECOND, MINUTE, HOUR or DAY)")
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

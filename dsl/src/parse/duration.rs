//! Duration literals: `500ms`, `5s`, `5min`, `1h`, `1d`.

use proc_macro2::Span;
use syn::parse::{Parse, ParseStream};

/// A duration literal such as `5s` or `5min`.
#[derive(Clone)]
pub struct DurationLit {
    /// Milliseconds.
    pub ms: i64,
    /// Where it was written.
    pub span: Span,
}

const EXPECTED: &str = "expected a duration such as `500ms`, `5s`, `5min` or `1h`";

impl Parse for DurationLit {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let lit: syn::Lit = input
            .parse()
            .map_err(|e| syn::Error::new(e.span(), EXPECTED))?;
        let (digits, suffix, span) = match &lit {
            syn::Lit::Int(i) => (
                i.base10_digits().to_string(),
                i.suffix().to_string(),
                i.span(),
            ),
            syn::Lit::Float(f) => (
                f.base10_digits().to_string(),
                f.suffix().to_string(),
                f.span(),
            ),
            other => return Err(syn::Error::new(other.span(), EXPECTED)),
        };
        if suffix.is_empty() {
            return Err(syn::Error::new(
                span,
                format!("`{digits}` has no unit; write it with one, e.g. `{digits}ms`, `{digits}s` or `{digits}min`"),
            ));
        }
        let Some(unit) = unit_ms(&suffix) else {
            return Err(syn::Error::new(
                span,
                format!("`{suffix}` is not a duration unit; use ms, s, min (or m), h or d, e.g. `{digits}s`"),
            ));
        };
        let v: f64 = digits
            .parse()
            .map_err(|_| syn::Error::new(span, "not a number"))?;
        let ms = v * unit as f64;
        if ms.fract() != 0.0 || ms > (i64::MAX / 4) as f64 {
            return Err(syn::Error::new(
                span,
                "durations are whole milliseconds and at most a few million years",
            ));
        }
        Ok(DurationLit {
            ms: ms as i64,
            span,
        })
    }
}

fn unit_ms(unit: &str) -> Option<i64> {
    Some(match unit {
        "ms" => 1,
        "s" | "sec" => 1_000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    })
}

//! `SELECT * FROM a JOIN b ON a.k = b.k AND b.ts BETWEEN a.ts - INTERVAL .. AND
//! a.ts + INTERVAL ..`: the DSL's `interval_join`; with `AND TUMBLE(a.ts, ..) =
//! TUMBLE(b.ts, ..)` (or `HOP`) instead of the bounds, its windowed `join`.

use proc_macro2::TokenStream;
use quote::quote_spanned;
use sqlparser::ast::{
    BinaryOperator, Expr, Ident as SqlIdent, JoinConstraint, JoinOperator, Select, SelectItem,
    Spanned, TableFactor, TableWithJoins,
};
use syn::Ident;

use super::expr::{self, Scope};
use super::schema::{Column, Schema};
use super::select::{duration_lit, read};
use super::text::SqlText;
use super::window::{self, interval_ms};

/// A stream in `FROM`: its schema and the names its columns may be qualified by.
struct Side<'a> {
    schema: &'a Schema,
    names: Vec<String>,
}

/// The stage statement of a join `SELECT`.
pub fn lower(
    text: &SqlText,
    name: &Ident,
    s: &Select,
    t: &TableWithJoins,
    schemas: &[Schema],
) -> syn::Result<TokenStream> {
    let [j] = t.joins.as_slice() else {
        return Err(text.error(t.joins[1].relation.span(), "a SELECT joins two streams"));
    };
    let on = match &j.join_operator {
        JoinOperator::Join(JoinConstraint::On(on))
        | JoinOperator::Inner(JoinConstraint::On(on)) => on,
        _ => return Err(text.error(j.relation.span(), "only an inner JOIN ... ON is supported")),
    };
    if !matches!(s.projection.as_slice(), [SelectItem::Wildcard(_)]) {
        return Err(text.error(
            s.span(),
            "a join selects `*`: its rows hold both events, named after the streams",
        ));
    }
    for (what, clause) in [
        ("WHERE", s.selection.as_ref()),
        ("HAVING", s.having.as_ref()),
    ] {
        if let Some(c) = clause {
            return Err(text.error(
                c.span(),
                format!("{what} on a join is not supported yet; filter the inputs in views first"),
            ));
        }
    }
    let left = side(text, &t.relation, schemas)?;
    let right = side(text, &j.relation, schemas)?;
    let mut conds = Vec::new();
    conjuncts(on, &mut conds);
    let (mut key, mut bounds, mut window) = (None, None, None);
    for c in conds {
        match c {
            Expr::BinaryOp { left: a, op: BinaryOperator::Eq, right: b }
                if window.is_none() && matches!(**a, Expr::Function(_)) =>
            {
                window = Some(same_window(text, a, b, &left, &right)?);
            }
            Expr::BinaryOp { left: a, op: BinaryOperator::Eq, right: b } if key.is_none() => {
                key = Some(key_columns(text, a, b, &left, &right)?);
            }
            Expr::Between { expr: e, negated: false, low, high } if bounds.is_none() => {
                bounds = Some(between(text, e, low, high, &left, &right)?);
            }
            other => return Err(text.error(other.span(), "a join's ON is `l.key = r.key AND r.ts BETWEEN l.ts - INTERVAL '2' SECOND AND l.ts + INTERVAL '5' SECOND`")),
        }
    }
    let sp = name.span();
    let Some((lk, rk)) = key else {
        return Err(text.error(
            on.span(),
            "a join's ON needs the key equality `l.key = r.key`",
        ));
    };
    let (l_in, r_in) = (
        Ident::new(&left.schema.stream, sp),
        Ident::new(&right.schema.stream, sp),
    );
    let (kname, kty) = (Ident::new(&lk.name, sp), &lk.ty);
    let (lv, rv) = (read(&lk.name, &lk.ty, sp), read(&rk.name, &rk.ty, sp));
    let key = quote_spanned!(sp=> #kname: #kty = |__e| #lv, |__e| #rv);
    match (bounds, window) {
        (None, Some(w)) => Ok(quote_spanned!(sp=> #name = #l_in.join(#r_in, #key)#w;)),
        (Some((lower, upper)), None) => {
            let (lower, upper) = (duration_lit(lower, sp), duration_lit(upper, sp));
            Ok(quote_spanned!(sp=> #name = #l_in.interval_join(#r_in, #key, lower = #lower, upper = #upper);))
        }
        (Some(_), Some(_)) => Err(text.error(on.span(), "a join is windowed (`TUMBLE(l.ts, ..) = TUMBLE(r.ts, ..)`) or bounded in time (`r.ts BETWEEN ..`), not both")),
        (None, None) => Err(text.error(on.span(), "a join needs a window, `TUMBLE(l.ts, INTERVAL '1' MINUTE) = TUMBLE(r.ts, INTERVAL '1' MINUTE)` (or HOP), or time bounds, `r.ts BETWEEN l.ts - INTERVAL .. AND l.ts + INTERVAL ..`")),
    }
}

fn side<'a>(text: &SqlText, t: &TableFactor, schemas: &'a [Schema]) -> syn::Result<Side<'a>> {
    let TableFactor::Table { name, alias, .. } = t else {
        return Err(text.error(t.span(), "JOIN names a stream"));
    };
    let id = name
        .0
        .last()
        .and_then(|p| p.as_ident())
        .filter(|_| name.0.len() == 1);
    let Some(id) = id else {
        return Err(text.error(name.span(), "JOIN names a stream by one word"));
    };
    let Some(schema) = schemas.iter().find(|s| s.stream == id.value) else {
        return Err(text.error(id.span, format!("unknown stream `{}`; a join reads sources whose event type derives `Columns`, or SQL views", id.value)));
    };
    let mut names = vec![id.value.clone()];
    names.extend(alias.iter().map(|a| a.name.value.clone()));
    Ok(Side { schema, names })
}

fn conjuncts<'e>(e: &'e Expr, out: &mut Vec<&'e Expr>) {
    match e {
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => {
            conjuncts(left, out);
            conjuncts(right, out);
        }
        Expr::Nested(inner) => conjuncts(inner, out),
        other => out.push(other),
    }
}

/// The column of `side` that `e` (`l.col`) names.
fn qualified<'a>(text: &SqlText, e: &Expr, side: &Side<'a>, what: &str) -> syn::Result<&'a Column> {
    let Expr::CompoundIdentifier(ids) = e else {
        return Err(text.error(
            e.span(),
            format!(
                "{what}: name the column with its stream, `{}.col`",
                side.names[0]
            ),
        ));
    };
    let [q, id] = ids.as_slice() else {
        return Err(text.error(e.span(), format!("{what}: `{}.col`", side.names[0])));
    };
    let name = expr::column(&on_scope(text, side), Some(q), id)?
        .name
        .clone();
    Ok(side
        .schema
        .cols
        .iter()
        .find(|x| x.name == name)
        .expect("found above"))
}

/// `l.k = r.k` (either way round): the key columns of the left and right streams.
fn key_columns<'a>(
    text: &SqlText,
    a: &Expr,
    b: &Expr,
    l: &Side<'a>,
    r: &Side<'a>,
) -> syn::Result<(&'a Column, &'a Column)> {
    let on_left = |e: &Expr| matches!(e, Expr::CompoundIdentifier(ids) if ids.first().is_some_and(|q: &SqlIdent| l.names.iter().any(|n| n.eq_ignore_ascii_case(&q.value))));
    let (a, b) = if on_left(a) { (a, b) } else { (b, a) };
    Ok((
        qualified(text, a, l, "the join key")?,
        qualified(text, b, r, "the join key")?,
    ))
}

/// `r.ts BETWEEN l.ts - INTERVAL x AND l.ts + INTERVAL y`: (x, y) in ms.
fn between(
    text: &SqlText,
    e: &Expr,
    low: &Expr,
    high: &Expr,
    l: &Side,
    r: &Side,
) -> syn::Result<(i64, i64)> {
    qualified(text, e, r, "the time bounds test the right stream's time")?;
    let bound = |b: &Expr, want: BinaryOperator| -> syn::Result<i64> {
        match b {
            Expr::BinaryOp { left, op, right } if *op == want => {
                qualified(
                    text,
                    left,
                    l,
                    "a bound is the left stream's time and an interval",
                )?;
                interval_ms(text, right)
            }
            // `l.ts` alone: a bound of zero.
            Expr::CompoundIdentifier(_) => qualified(text, b, l, "a bound").map(|_| 0),
            other => Err(text.error(
                other.span(),
                format!("a bound is `l.ts {want} INTERVAL '5' SECOND`"),
            )),
        }
    };
    Ok((
        bound(low, BinaryOperator::Minus)?,
        bound(high, BinaryOperator::Plus)?,
    ))
}

/// `TUMBLE(l.ts, d) = TUMBLE(r.ts, d)` (or `HOP`): both events in the same window; the
/// DSL's `.window(..)`.
fn same_window(text: &SqlText, a: &Expr, b: &Expr, l: &Side, r: &Side) -> syn::Result<TokenStream> {
    let wrong = |e: &Expr| {
        text.error(e.span(), "a windowed join's ON says `TUMBLE(l.ts, INTERVAL '1' MINUTE) = TUMBLE(r.ts, INTERVAL '1' MINUTE)` (or HOP), the left stream's time first")
    };
    let lw = window::parse(text, a, &on_scope(text, l))?.ok_or_else(|| wrong(a))?;
    let rw = window::parse(text, b, &on_scope(text, r))?.ok_or_else(|| wrong(b))?;
    if lw.dsl.to_string() != rw.dsl.to_string() {
        return Err(text.error(
            b.span(),
            "both sides of a windowed join name the same window",
        ));
    }
    Ok(lw.dsl)
}

/// What `ON` may name of `side`.
fn on_scope<'a>(text: &'a SqlText, side: &Side<'a>) -> Scope<'a> {
    Scope {
        text,
        schema: side.schema,
        qualifiers: side.names.clone(),
        aggregates: Vec::new(),
        clause: "ON",
    }
}

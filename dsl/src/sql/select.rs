//! One SQL statement lowered to a DSL stage statement: `CREATE VIEW name AS SELECT ...`
//! (or a bare `SELECT`, the stage `query`, a sink) becomes
//! `name = from.filter(..).key_by(..).window(..).aggregate(..).filter(..);`, parsed and
//! checked by the DSL like one written by hand.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote_spanned};
use sqlparser::ast::{
    Expr, Function, FunctionArg, FunctionArgExpr, FunctionArguments, GroupByExpr, Query, Select,
    SelectItem, SetExpr, Spanned, Statement, TableFactor,
};
use syn::{Ident, LitInt, Type};

use super::expr::{self, Scope};
use super::schema::{self, Column, Kind, Schema};
use super::text::SqlText;
use super::window;

/// A statement as a DSL stage.
pub struct Lowered {
    /// `name = from.op(..)...;`
    pub stage: TokenStream,
    /// The stage's name.
    pub name: Ident,
    /// True for a bare `SELECT`: a sink.
    pub sink: bool,
    /// Its columns, for statements reading it.
    pub schema: Schema,
}

/// Lowers `stmt`, which reads streams of `schemas`.
pub fn lower(text: &SqlText, stmt: &Statement, schemas: &[Schema]) -> syn::Result<Lowered> {
    let (name, query, sink) = match stmt {
        Statement::CreateView(v) => {
            let id = v
                .name
                .0
                .last()
                .and_then(|p| p.as_ident())
                .filter(|_| v.name.0.len() == 1);
            let Some(id) = id else {
                return Err(text.error(
                    v.name.span(),
                    "a view is named by one word: `CREATE VIEW per_5min AS ...`",
                ));
            };
            (Ident::new(&id.value, text.span(id.span)), &*v.query, false)
        }
        Statement::Query(q) => (Ident::new("query", text.span(q.span())), &**q, true),
        other => {
            return Err(text.error(
                other.span(),
                "only `SELECT ...` and `CREATE VIEW name AS SELECT ...` are supported",
            ));
        }
    };
    let select = plain_select(text, query)?;
    if let [t] = select.from.as_slice() {
        if !t.joins.is_empty() {
            let stage = super::join::lower(text, &name, select, t, schemas)?;
            // A join's rows nest both events: no columns SQL can read yet.
            let schema = Schema {
                stream: String::new(),
                cols: Vec::new(),
            };
            return Ok(Lowered {
                stage,
                name,
                sink,
                schema,
            });
        }
    }
    let (from, input) = from(text, select, schemas)?;
    let mut q = Lowering::new(text, input, &from);
    let stage = q.stage(&name, select)?;
    let mut schema = q.out;
    schema.stream = name.to_string();
    Ok(Lowered {
        stage,
        name,
        sink,
        schema,
    })
}

/// The `SELECT` of a query without `WITH`, `ORDER BY`, `LIMIT` or set operations.
fn plain_select<'q>(text: &SqlText, q: &'q Query) -> syn::Result<&'q Select> {
    let refuse = |at: sqlparser::tokenizer::Span, what: &str| {
        text.error(
            at,
            format!("{what} is not supported: a stream has no end to sort or cut"),
        )
    };
    if let Some(o) = &q.order_by {
        return Err(refuse(o.span(), "ORDER BY"));
    }
    if let Some(l) = &q.limit_clause {
        return Err(refuse(l.span(), "LIMIT"));
    }
    if q.fetch.is_some() {
        return Err(refuse(q.span(), "FETCH"));
    }
    match &*q.body {
        SetExpr::Select(s) if q.with.is_none() => Ok(s),
        _ => Err(text.error(
            q.span(),
            "only a plain SELECT is supported (no WITH, UNION or subquery)",
        )),
    }
}

/// The stream a `SELECT` reads, and the names that may qualify its columns.
fn from<'s>(
    text: &SqlText,
    s: &Select,
    schemas: &'s [Schema],
) -> syn::Result<(Vec<String>, &'s Schema)> {
    let [t] = s.from.as_slice() else {
        return Err(text.error(s.span(), "a SELECT reads one stream: `FROM orders`"));
    };
    if let Some(j) = t.joins.first() {
        return Err(text.error(
            j.relation.span(),
            "JOIN is not supported yet in SQL; use the DSL's `join` or `interval_join`",
        ));
    }
    let TableFactor::Table { name, alias, .. } = &t.relation else {
        return Err(text.error(
            t.relation.span(),
            "FROM names a stream: a source or an earlier view",
        ));
    };
    let id = name
        .0
        .last()
        .and_then(|p| p.as_ident())
        .filter(|_| name.0.len() == 1);
    let Some(id) = id else {
        return Err(text.error(name.span(), "FROM names a stream by one word"));
    };
    let Some(schema) = schemas.iter().find(|s| s.stream == id.value) else {
        let known: Vec<String> = schemas.iter().map(|s| format!("`{}`", s.stream)).collect();
        let msg = format!(
            "unknown stream `{}`; SQL reads sources whose event type derives `Columns`, and earlier SQL views: {}",
            id.value,
            known.join(", ")
        );
        return Err(text.error(id.span, msg));
    };
    let mut names = vec![id.value.clone()];
    names.extend(alias.iter().map(|a| a.name.value.clone()));
    Ok((names, schema))
}

/// An aggregate of the select list.
struct Agg {
    /// Its column.
    name: String,
    /// As the DSL writes it: `amount: f64 = sum(|__e| __e.amount)`.
    dsl: TokenStream,
    /// Its type in the row.
    ty: Type,
    /// Its SQL, upper-cased, for `HAVING`.
    sql: String,
}

struct Lowering<'a> {
    text: &'a SqlText,
    input: &'a Schema,
    qualifiers: &'a [String],
    /// The output's columns.
    out: Schema,
}

impl<'a> Lowering<'a> {
    fn new(text: &'a SqlText, input: &'a Schema, qualifiers: &'a [String]) -> Self {
        let out = Schema {
            stream: String::new(),
            cols: Vec::new(),
        };
        Lowering {
            text,
            input,
            qualifiers,
            out,
        }
    }

    fn scope(&self, schema: &'a Schema, clause: &'static str, aggs: &[Agg]) -> Scope<'a> {
        Scope {
            text: self.text,
            schema,
            qualifiers: self.qualifiers.to_vec(),
            aggregates: aggs
                .iter()
                .map(|a| (a.sql.clone(), a.name.clone()))
                .collect(),
            clause,
        }
    }

    fn stage(&mut self, name: &Ident, s: &Select) -> syn::Result<TokenStream> {
        self.refuse_extras(s)?;
        self.out.stream = name.to_string();
        let sp = name.span();
        let from = Ident::new(&self.input.stream, sp);
        let mut ops = Vec::new();
        if let Some(w) = &s.selection {
            let f = expr::closure(&self.scope(self.input, "WHERE", &[]), w)?;
            ops.push(quote_spanned!(sp=> .filter(#f)));
        }
        let group = match &s.group_by {
            GroupByExpr::Expressions(g, mods) if mods.is_empty() => g,
            other => {
                return Err(self.text.error(
                    other.span(),
                    "GROUP BY ALL and grouping modifiers are not supported",
                ))
            }
        };
        let star = s
            .projection
            .iter()
            .any(|p| matches!(p, SelectItem::Wildcard(_)));
        if group.is_empty() && star {
            if let [_, second, ..] = s.projection.as_slice() {
                return Err(self.text.error(
                    second.span(),
                    "`SELECT *` passes whole events; other columns cannot be added",
                ));
            }
            if let Some(h) = &s.having {
                return Err(self
                    .text
                    .error(h.span(), "HAVING without GROUP BY; use WHERE"));
            }
            self.out.cols = self.input.cols.clone();
            return Ok(quote_spanned!(sp=> #name = #from #(#ops)*;));
        }
        ops.extend(self.grouped(s, group)?);
        Ok(quote_spanned!(sp=> #name = #from #(#ops)*;))
    }

    fn refuse_extras(&self, s: &Select) -> syn::Result<()> {
        let refuse = |span: sqlparser::tokenizer::Span, what: &str| {
            Err(self
                .text
                .error(span, format!("{what} is not supported in SQL pipelines")))
        };
        if s.distinct.is_some() {
            return refuse(s.select_token.0.span, "SELECT DISTINCT");
        }
        if let Some(q) = &s.qualify {
            return refuse(q.span(), "QUALIFY");
        }
        if !s.named_window.is_empty() {
            return refuse(s.span(), "WINDOW clauses");
        }
        Ok(())
    }

    /// `.key_by(..).window(..).aggregate(..).filter(having)`.
    fn grouped(&mut self, s: &Select, group: &[Expr]) -> syn::Result<Vec<TokenStream>> {
        let (mut key, mut win) = (None::<&Column>, None);
        for g in group {
            if let Some(w) = window::parse(self.text, g, &self.scope(self.input, "GROUP BY", &[]))?
            {
                if win.replace(w).is_some() {
                    return Err(self
                        .text
                        .error(g.span(), "GROUP BY has one window function"));
                }
                continue;
            }
            let c = self.group_column(g)?;
            if key.replace(c).is_some() {
                return Err(self.text.error(g.span(), "GROUP BY one column (and a window): grouping by several columns is not supported; group by one column that holds both (e.g. `region_customer`), or write the stage in the DSL: `key_by` takes a struct that derives `Checkpointable`"));
            }
        }
        let aggs = self.select_list(s, key, win.is_some())?;
        if key.is_none() && win.is_none() {
            return Err(self.text.error(s.span(), "aggregates need GROUP BY a column or a window (TUMBLE, HOP or SESSION): a stream has no end"));
        }
        let mut ops = Vec::new();
        let sp = self.text.span(s.span());
        if let Some(k) = key {
            let (name, ty) = (Ident::new(&k.name, sp), &k.ty);
            let value = read(&k.name, ty, sp);
            ops.push(quote_spanned!(sp=> .key_by(#name: #ty = |__e| #value)));
            self.out.cols.push(k.clone());
        }
        if let Some(w) = &win {
            ops.push(w.dsl.clone());
            for c in ["window_start", "window_end"] {
                self.out.cols.push(Column {
                    name: c.into(),
                    ty: syn::parse_quote!(i64),
                });
            }
        }
        let cols = aggs.iter().map(|a| &a.dsl);
        ops.push(quote_spanned!(sp=> .aggregate(#(#cols),*)));
        self.out.cols.extend(aggs.iter().map(|a| Column {
            name: a.name.clone(),
            ty: a.ty.clone(),
        }));
        if let Some(h) = &s.having {
            let out = self.out.clone();
            let scope = Scope {
                qualifiers: Vec::new(),
                ..self.scope(&out, "HAVING", &aggs)
            };
            let f = expr::closure(&scope, h)?;
            ops.push(quote_spanned!(sp=> .filter(#f)));
        }
        Ok(ops)
    }

    fn group_column(&self, g: &Expr) -> syn::Result<&'a Column> {
        let scope = self.scope(self.input, "GROUP BY", &[]);
        let c = match g {
            Expr::Identifier(id) => expr::column(&scope, None, id)?,
            Expr::CompoundIdentifier(ids) if ids.len() == 2 => expr::column(&scope, Some(&ids[0]), &ids[1])?,
            _ => return Err(self.text.error(g.span(), "GROUP BY a column, or a window: TUMBLE(ts, INTERVAL '5' MINUTE), HOP(ts, slide, size), SESSION(ts, gap)")),
        };
        let name = c.name.clone();
        Ok(self
            .input
            .cols
            .iter()
            .find(|x| x.name == name)
            .expect("found above"))
    }

    /// The aggregates of the select list; its plain columns must be the key.
    fn select_list(
        &self,
        s: &Select,
        key: Option<&Column>,
        windowed: bool,
    ) -> syn::Result<Vec<Agg>> {
        let scope = self.scope(self.input, "the select list", &[]);
        let mut aggs = Vec::new();
        for item in &s.projection {
            let (e, alias) = match item {
                SelectItem::UnnamedExpr(e) => (e, None),
                SelectItem::ExprWithAlias { expr, alias } => (expr, Some(alias)),
                other => {
                    return Err(self.text.error(
                        other.span(),
                        "`*` with GROUP BY: select the key and aggregates",
                    ))
                }
            };
            let col = match e {
                Expr::Identifier(id) => Some((None, id)),
                Expr::CompoundIdentifier(ids) if ids.len() == 2 => Some((Some(&ids[0]), &ids[1])),
                _ => None,
            };
            if let Some((q, id)) = col {
                if windowed
                    && q.is_none()
                    && ["window_start", "window_end"].contains(&id.value.as_str())
                {
                    continue;
                }
                let c = expr::column(&scope, q, id)?;
                if key.is_none_or(|k| k.name != c.name) {
                    let msg = format!("`{}` is neither grouped nor aggregated: add it to GROUP BY, or aggregate it (`MAX({0})`)", id.value);
                    return Err(self.text.error(id.span, msg));
                }
                if let Some(a) = alias.filter(|a| a.value != c.name) {
                    return Err(self.text.error(
                        a.span,
                        format!("the key column keeps its name `{}` in the row", c.name),
                    ));
                }
                continue;
            }
            let Expr::Function(f) = e else {
                return Err(self.text.error(e.span(), "select the key column and aggregates: COUNT(*), SUM(col), MIN(col), MAX(col), AVG(col)"));
            };
            aggs.push(self.aggregate(&scope, e, f, alias.map(|a| a.value.clone()))?);
        }
        if aggs.is_empty() {
            return Err(self.text.error(
                s.span(),
                "select at least one aggregate: COUNT(*), SUM(col), MIN(col), MAX(col), AVG(col)",
            ));
        }
        Ok(aggs)
    }

    fn aggregate(
        &self,
        scope: &Scope,
        e: &Expr,
        f: &Function,
        alias: Option<String>,
    ) -> syn::Result<Agg> {
        let func = f.name.to_string().to_uppercase();
        let sp = self.text.span(e.span());
        let arg = agg_arg(self.text, e, f)?;
        let sql = e.to_string().to_uppercase();
        if func == "COUNT" {
            if let Some(Some(a)) = &arg {
                column_of(scope, a)?;
            }
            let name = alias.unwrap_or_else(|| "count".into());
            let id = Ident::new(&name, sp);
            return Ok(Agg {
                dsl: quote_spanned!(sp=> #id = count()),
                ty: syn::parse_quote!(u64),
                name,
                sql,
            });
        }
        let known = ["SUM", "MIN", "MAX", "AVG"];
        if !known.contains(&func.as_str()) {
            let hint = match crate::diag::nearest(&func, &["COUNT", "SUM", "MIN", "MAX", "AVG"]) {
                Some(n) => format!("did you mean `{n}`?"),
                None => "the aggregates are COUNT(*), SUM, MIN, MAX and AVG".into(),
            };
            return Err(self.text.error(
                f.name.span(),
                format!("unknown aggregate `{}`; {hint}", f.name),
            ));
        }
        let Some(Some(a)) = arg else {
            return Err(self.text.error(
                e.span(),
                format!("{func} takes one column: `{func}(amount)`"),
            ));
        };
        let c = column_of(scope, a)?;
        if matches!(func.as_str(), "SUM" | "AVG")
            && !matches!(schema::kind(&c.ty), Kind::Int | Kind::Float)
        {
            let ty = crate::expand::plan_data::type_text(&c.ty);
            let msg = format!("{func} of `{}`, a `{ty}`: {func} takes a numeric column (an integer or float field)", c.name);
            return Err(self.text.error(a.span(), msg));
        }
        let name = alias.unwrap_or_else(|| format!("{}_{}", func.to_lowercase(), c.name));
        let (id, ty, f_id) = (
            Ident::new(&name, sp),
            &c.ty,
            format_ident!("{}", func.to_lowercase(), span = sp),
        );
        let value = read(&c.name, ty, sp);
        let row_ty = if func == "AVG" {
            syn::parse_quote!(f64)
        } else {
            ty.clone()
        };
        Ok(Agg {
            dsl: quote_spanned!(sp=> #id: #ty = #f_id(|__e| #value)),
            ty: row_ty,
            name,
            sql,
        })
    }
}

/// The argument of an aggregate call: `None` for `*`, `Some(expr)` for one expression.
fn agg_arg<'f>(text: &SqlText, e: &Expr, f: &'f Function) -> syn::Result<Option<Option<&'f Expr>>> {
    let FunctionArguments::List(list) = &f.args else {
        return Ok(None);
    };
    if list.duplicate_treatment.is_some()
        || !list.clauses.is_empty()
        || f.filter.is_some()
        || f.over.is_some()
    {
        return Err(text.error(
            e.span(),
            "DISTINCT, FILTER, OVER and other clauses in aggregates are not supported",
        ));
    }
    match list.args.as_slice() {
        [FunctionArg::Unnamed(FunctionArgExpr::Wildcard)] => Ok(Some(None)),
        [FunctionArg::Unnamed(FunctionArgExpr::Expr(a))] => Ok(Some(Some(a))),
        _ => Ok(None),
    }
}

/// The column an aggregate's argument names.
fn column_of<'s>(scope: &'s Scope, a: &Expr) -> syn::Result<&'s Column> {
    match a {
        Expr::Identifier(id) => expr::column(scope, None, id),
        Expr::CompoundIdentifier(ids) if ids.len() == 2 => expr::column(scope, Some(&ids[0]), &ids[1]),
        _ => Err(scope.text.error(a.span(), "aggregate a column (`SUM(amount)`); to aggregate an expression, compute it in a DSL stage first")),
    }
}

/// `__e.name`, cloned unless it is a plain copy.
pub fn read(name: &str, ty: &Type, sp: Span) -> TokenStream {
    let f = Ident::new(name, sp);
    if schema::is_copy(ty) {
        quote_spanned!(sp=> __e.#f)
    } else {
        quote_spanned!(sp=> __e.#f.clone())
    }
}

/// Milliseconds as a DSL duration literal (`300000ms`).
pub fn duration_lit(ms: i64, sp: Span) -> LitInt {
    LitInt::new(&format!("{ms}ms"), sp)
}

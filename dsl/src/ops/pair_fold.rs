//! A windowed join whose only reader is a keyed tumbling aggregate of its pairs, keyed by
//! the join key, with `count()`, `min(..)` and `max(..)` columns that each read one side:
//! a closed join window's key then folds into the aggregate once, from its buffered events,
//! instead of building and folding every pair. The pair count is the product of both
//! sides' counts; a min or max over the pairs is the min or max over one side's events,
//! since the pairs repeat each of its values (and adding a value again changes neither).
//!
//! When the aggregate's window is the join's (same tumbling size and lateness), a join
//! group is one aggregate row closed in the same watermark step, so the join does not
//! buffer events at all: it keeps, per key and window, each side's event count and the
//! one-side columns folded as events arrive (`JoinFolds`), which is its checkpointed
//! state (a layout of its own: checkpoints of the buffering form are refused, not
//! misread). Output and late records are those of the stages unfused.
//!
//! Otherwise nothing else changes: the join buffers the same events and the aggregate
//! keeps the same accumulators, so checkpoints, deltas and output are those of the stages
//! unfused. A key whose aggregate window has closed (it cannot happen when the
//! aggregate's lateness is at least the join's) takes the pairs path, late output
//! included.

use proc_macro2::{Delimiter, Group, Span, TokenStream, TokenTree};
use quote::{quote, ToTokens};
use syn::{Expr, Ident, Pat, ReturnType, Type};

use super::join::Sides;
use super::window::Window;
use crate::expand::Cx;
use crate::names::Side;
use crate::plan::StagePlan;

/// What a join's pairs are, for the aggregate reading them.
pub struct Pairs<'a> {
    /// Key column of a pair.
    pub key_name: &'a Ident,
    /// Key type.
    pub key_ty: &'a Type,
    /// The left and right fields of a pair, with their event types.
    pub sides: [(Ident, &'a Type); 2],
    /// The join's window.
    pub window: &'a Window,
}

/// How a closed join group folds into the reading stage: `fold` is a `bool` expression
/// (false: fold the pairs instead) given `__kr: &K`, `__left: Vec<L>`, `__right: Vec<R>`,
/// `__start`, `__end` and `__ts`; `after` runs once the join's closed windows are folded.
pub struct Fold {
    /// The fold of one group.
    pub fold: TokenStream,
    /// What runs after the last group.
    pub after: TokenStream,
    /// Set when the join can fold its events as they arrive (see the module doc).
    pub arrival: Option<Arrival>,
}

/// A join folding each event as it arrives into `JoinFolds<acc>` (its state then) instead
/// of buffering it: possible when the reader's window is the join's (same tumbling size
/// and lateness), so that a join group is one row of the reader, closed in the same step.
pub struct Arrival {
    /// The reading stage's name.
    pub reader: String,
    /// The reader's columns: what its accumulator, kept per key and window, holds.
    pub columns: Vec<crate::lock::layout::Column>,
    /// The reader's accumulator type.
    pub acc: TokenStream,
    /// Per side: statements folding that side's event `__e` (a reference) into `__acc`.
    pub sides: [TokenStream; 2],
    /// Statements delivering a closed group with events on both sides to the reader,
    /// given `__folds: JoinFolds<acc>` (owned), `__start`, `__end` and `__kr: &K`.
    pub close: TokenStream,
}

/// The fold of one closed join group into the stage reading join stage `s`, if it can be
/// fused (see the module doc).
pub fn child_fold(s: &StagePlan, cx: &Cx, sides: &Sides, window: &Window) -> Option<Fold> {
    if s.sink || !s.post.is_empty() {
        return None;
    }
    let [c] = s.children.as_slice() else {
        return None;
    };
    let child = &cx.plan.stages[c.stage];
    if c.side != Side::Main || !child.pre.is_empty() {
        return None;
    }
    let (l, r) = sides.field_names();
    let pairs = Pairs {
        key_name: &sides.key_name,
        key_ty: &sides.key_ty,
        sides: [(l, &sides.left.1), (r, &sides.right.1)],
        window,
    };
    child.stateful.as_ref()?.fold_pairs(child, cx, &pairs)
}

/// The plain parameter name of a one-argument closure.
fn param(c: &syn::ExprClosure) -> Option<&Ident> {
    let [p] = c.inputs.iter().collect::<Vec<_>>()[..] else {
        return None;
    };
    let p = match p {
        Pat::Type(t) => &*t.pat,
        p => p,
    };
    match p {
        Pat::Ident(id) if id.by_ref.is_none() && id.subpat.is_none() => Some(&id.ident),
        _ => None,
    }
}

/// True if `f` is `|j| j.<field>`, optionally cloned (`.clone()`, `.to_owned()`) or in a
/// block: a key closure returning the pair's key column.
pub fn is_field(f: &Expr, field: &Ident) -> bool {
    let Expr::Closure(c) = f else { return false };
    let Some(p) = param(c) else { return false };
    let mut body = &*c.body;
    while let Expr::Block(b) = body {
        match b.block.stmts.as_slice() {
            [syn::Stmt::Expr(e, None)] if b.label.is_none() => body = e,
            _ => return false,
        }
    }
    if let Expr::MethodCall(m) = body {
        let method = m.method.to_string();
        if m.args.is_empty() && m.turbofish.is_none() && (method == "clone" || method == "to_owned")
        {
            body = &m.receiver;
        }
    }
    let Expr::Field(f) = body else { return false };
    let member_is = matches!(&f.member, syn::Member::Named(m) if m == field);
    let base_is = matches!(&*f.base, Expr::Path(b) if b.qself.is_none() && b.path.is_ident(p));
    member_is && base_is
}

/// For a value closure `|j| ..` whose parameter appears only as `j.<side>` of one side:
/// that side (0 left, 1 right) and the closure rewritten to take that side's event
/// (`|__side: &L| ..`, with `(*__side)` for `j.<side>`). None for anything else, and for
/// closures that bind names or call macros (which could hide a use of `j`).
pub fn one_side(f: &Expr, pairs: &Pairs) -> Option<(usize, TokenStream)> {
    let Expr::Closure(c) = f else { return None };
    let p = param(c)?.clone();
    let names = [&pairs.sides[0].0, &pairs.sides[1].0];
    let mut side = None;
    let body = rewrite(c.body.to_token_stream(), &p, names, &mut side)?;
    let side = side?;
    let ty = pairs.sides[side].1;
    let output = match &c.output {
        ReturnType::Type(_, t) => quote!(-> #t),
        ReturnType::Default => quote!(),
    };
    let arg = Ident::new("__side", Span::call_site());
    let body = match &c.output {
        ReturnType::Type(..) => body,
        ReturnType::Default => quote!({ #body }),
    };
    Some((side, quote!((|#arg: &#ty| #output #body))))
}

/// For `|j| j.<side>.f.clone()`: that side and a reference to `f` of its event `__e`
/// (`{ let __side: &L = __e; &(*__side).f }`), for a min or max that clones only a new
/// extreme. None for anything else.
pub fn one_side_field(f: &Expr, pairs: &Pairs) -> Option<(usize, TokenStream)> {
    let (p, field) = crate::closure::cloned_field_strict(f)?;
    let Pat::Ident(p) = p else { return None };
    let names = [&pairs.sides[0].0, &pairs.sides[1].0];
    let mut side = None;
    let field = rewrite(field.to_token_stream(), &p.ident, names, &mut side)?;
    let side = side?;
    let ty = pairs.sides[side].1;
    let arg = Ident::new("__side", Span::call_site());
    Some((side, quote!({ let #arg: &#ty = __e; &#field })))
}

/// `tokens` with each `p . <side>` replaced by `(*__side)`; `side` records which side, and
/// must be the same everywhere. None if `p` appears otherwise, or the tokens bind or
/// call a macro.
fn rewrite(
    tokens: TokenStream,
    p: &Ident,
    names: [&Ident; 2],
    side: &mut Option<usize>,
) -> Option<TokenStream> {
    let toks: Vec<TokenTree> = tokens.into_iter().collect();
    let mut out = Vec::with_capacity(toks.len());
    let mut i = 0;
    while i < toks.len() {
        match &toks[i] {
            TokenTree::Ident(id) if id == p => {
                let dot =
                    matches!(toks.get(i + 1), Some(TokenTree::Punct(d)) if d.as_char() == '.');
                let which = match toks.get(i + 2) {
                    Some(TokenTree::Ident(n)) if dot => names.iter().position(|s| *s == n)?,
                    _ => return None,
                };
                if side.replace(which).is_some_and(|s| s != which) {
                    return None;
                }
                let arg = Ident::new("__side", Span::call_site());
                out.push(TokenTree::Group(Group::new(
                    Delimiter::Parenthesis,
                    quote!(*#arg),
                )));
                i += 3;
                continue;
            }
            TokenTree::Ident(id) if BINDS.iter().any(|b| id == b) => return None,
            TokenTree::Ident(_) if is_macro_call(&toks[i..]) => return None,
            TokenTree::Punct(x) if x.as_char() == '|' => return None,
            TokenTree::Group(g) => {
                let inner = rewrite(g.stream(), p, names, side)?;
                let mut ng = Group::new(g.delimiter(), inner);
                ng.set_span(g.span());
                out.push(TokenTree::Group(ng));
            }
            t => out.push(t.clone()),
        }
        i += 1;
    }
    Some(out.into_iter().collect())
}

/// Keywords that bind names (which could shadow the closure's parameter).
const BINDS: &[&str] = &[
    "let", "match", "for", "while", "loop", "move", "static", "fn",
];

/// `name ! (..)`: a macro call, whose arguments may use names in ways tokens do not show.
fn is_macro_call(toks: &[TokenTree]) -> bool {
    matches!(
        (toks.get(1), toks.get(2)),
        (Some(TokenTree::Punct(b)), Some(TokenTree::Group(_))) if b.as_char() == '!'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs<'a>(l: &'a Type, r: &'a Type, k: &'a (Ident, Type), window: &'a Window) -> Pairs<'a> {
        Pairs {
            key_name: &k.0,
            key_ty: &k.1,
            sides: [
                (syn::parse_quote!(persons), l),
                (syn::parse_quote!(auctions), r),
            ],
            window,
        }
    }

    fn side_of(closure: &str) -> Option<(usize, String)> {
        let (l, r): (Type, Type) = (syn::parse_quote!(Person), syn::parse_quote!(Auction));
        let k: (Ident, Type) = (syn::parse_quote!(person), syn::parse_quote!(u64));
        let e: Expr = syn::parse_str(closure).expect("closure");
        let w = Window {
            kind: super::super::window::WindowKind::Tumbling { size: 2_000 },
            lateness: 0,
            span: Span::call_site(),
            lateness_span: Span::call_site(),
        };
        one_side(&e, &pairs(&l, &r, &k, &w)).map(|(s, t)| (s, t.to_string().replace(' ', "")))
    }

    #[test]
    fn a_value_reading_one_side_is_rewritten_to_take_that_side() {
        let (side, code) = side_of("|j| j.persons.name.clone()").expect("one side");
        assert_eq!(side, 0);
        assert_eq!(code, "(|__side:&Person|{(*__side).name.clone()})");
        let (side, code) = side_of("|j| -> u64 { j.auctions.reserve + j.auctions.id }").unwrap();
        assert_eq!(side, 1);
        assert_eq!(
            code,
            "(|__side:&Auction|->u64{(*__side).reserve+(*__side).id})"
        );
    }

    #[test]
    fn values_reading_both_sides_the_key_or_binding_names_are_not_fused() {
        for c in [
            "|j| j.persons.id + j.auctions.id",
            "|j| j.person",
            "|j| j.window_start",
            "|j| j",
            "|j| { let x = j.persons.id; x }",
            "|j| match j.persons.id { x => x }",
            "|j| format!(\"{j:?}\")",
            "|j| j.persons.tags.iter().map(|t| t.len()).sum::<usize>()",
            "|(a, b)| a",
        ] {
            assert_eq!(side_of(c), None, "{c}");
        }
    }

    /// The generated code of `q`'s reader written as `reader`.
    fn expansion(reader: &str) -> String {
        let text = format!(
            "pipeline P; source persons: Person, event_time = |p| p.ts, max_delay = 1s;
             source auctions: Auction, event_time = |a| a.ts, max_delay = 1s;
             q = persons.join(auctions, person: u64 = |p| p.id, |a| a.seller).window(tumbling(2s));
             {reader} sink agg;"
        );
        let plan = crate::plan_str(&text).expect("valid");
        crate::expand::expand(&plan, &text).to_string()
    }

    #[test]
    fn only_a_keyed_tumbling_aggregate_of_one_side_folds_groups() {
        let agg = "agg = q.key_by(person: u64 = |j| j.person).window(tumbling(2s))";
        let fused = [
            format!(
                "{agg}.aggregate(n = count(), name: String = max(|j| j.persons.name.clone()));"
            ),
            format!("{agg}.aggregate(r: u64 = min(|j| j.auctions.reserve));"),
        ];
        for f in &fused {
            let code = expansion(f);
            assert!(
                code.contains("__folded") || code.contains("JoinFolds"),
                "{f}"
            );
        }
        let unfused = [
            format!("{agg}.aggregate(n = count(), s: u64 = sum(|j| j.auctions.reserve));"),
            format!("{agg}.aggregate(r: u64 = max(|j| j.auctions.reserve + j.persons.id));"),
            "agg = q.filter(|_| true).key_by(person: u64 = |j| j.person).window(tumbling(2s)).aggregate(n = count());".to_string(),
            "agg = q.key_by(person: u64 = |j| j.persons.id).window(tumbling(2s)).aggregate(n = count());".to_string(),
            "agg = q.key_by(person: u64 = |j| j.person).window(sliding(2s, 1s)).aggregate(n = count());".to_string(),
            "agg = q.key_by(person: u64 = |j| j.person).aggregate(n = count());".to_string(),
            format!("{agg}.aggregate(n = count()); other = q.filter(|_| true); sink other;"),
        ];
        for u in &unfused {
            let code = expansion(u);
            assert!(
                !code.contains("__folded") && !code.contains("JoinFolds"),
                "{u}"
            );
        }
    }

    /// The aggregate's window closing in the join's watermark step (same tumbling size and
    /// lateness): the join folds events as they arrive, keeps no events, and a closed
    /// group's row goes straight to the aggregate's closed rows. Any other window: the
    /// join buffers events and a closed group folds into the aggregate's table.
    #[test]
    fn events_fold_at_arrival_only_when_both_windows_close_together() {
        let direct = "agg = q.key_by(person: u64 = |j| j.person).window(tumbling(2s)).aggregate(n = count());";
        let code = expansion(direct);
        assert!(
            code.contains("Windows < u64 , :: simplestream :: __rt :: join :: JoinFolds")
                && !code.contains("WindowJoin")
                && !code.contains("__folded"),
            "{code}"
        );
        for tabled in [
            "agg = q.key_by(person: u64 = |j| j.person).window(tumbling(4s)).aggregate(n = count());",
            "agg = q.key_by(person: u64 = |j| j.person).window(tumbling(2s), allowed_lateness = 1s).aggregate(n = count());",
        ] {
            let code = expansion(tabled);
            assert!(code.contains("__folded") && !code.contains("JoinFolds"), "{tabled}");
        }
    }

    #[test]
    fn the_key_is_the_join_key_field() {
        let person: Ident = syn::parse_quote!(person);
        for (c, yes) in [
            ("|j| j.person", true),
            ("|j| j.person.clone()", true),
            ("|j| { j.person }", true),
            ("|j| j.persons.id", false),
            ("|j| j.person + 1", false),
            ("|j| other.person", false),
        ] {
            let e: Expr = syn::parse_str(c).unwrap();
            assert_eq!(is_field(&e, &person), yes, "{c}");
        }
    }
}

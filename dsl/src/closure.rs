//! The user's closures: checked, given types, and placed so that errors point at them.

use proc_macro2::{Span, TokenStream};
use quote::{quote, ToTokens};
use syn::spanned::Spanned;
use syn::{Expr, Pat, ReturnType, Type};

use crate::diag::Errors;

/// Reports a closure that does not take exactly one argument (the event).
pub fn check_one_arg(e: &Expr, what: &str, example: &str, errs: &mut Errors) {
    if let Expr::Closure(c) = e {
        if c.inputs.len() != 1 {
            errs.push(
                c.or1_token.span,
                format!("the closure of `{what}` takes one argument (the event, by reference), e.g. `{example}`"),
            );
        }
    }
}

/// The return type written on `|e| -> T { .. }`, if any.
pub fn output(e: &Expr) -> Option<Type> {
    match e {
        Expr::Closure(c) => match &c.output {
            ReturnType::Type(_, t) => Some((**t).clone()),
            ReturnType::Default => None,
        },
        _ => None,
    }
}

/// Gives `|e| body` the return type `ty` (if it has none), so that a value of the wrong
/// type is reported at the user's expression and at `ty`, not at the whole macro.
pub fn with_output(e: &Expr, ty: &TokenStream) -> Expr {
    match e {
        Expr::Closure(c) if matches!(c.output, ReturnType::Default) => {
            let mut c = c.clone();
            let body = &c.body;
            let span = body.span();
            c.body = Box::new(syn::parse_quote_spanned!(span=> { #body }));
            c.output = syn::parse_quote!(-> #ty);
            Expr::Closure(c)
        }
        other => other.clone(),
    }
}

/// Wraps the body of `|e| body` as `EventTime::event_time_ms(body)`, spanned at the body,
/// so that a time that is not integer milliseconds is reported at the user's expression
/// (with `EventTime`'s hint) rather than at the whole macro. The result is `i64`, which the
/// generated code's own `EventTime` call accepts.
pub fn event_time_at_body(e: Expr) -> Expr {
    match e {
        Expr::Closure(mut c) if matches!(c.output, ReturnType::Default) => {
            let body = &c.body;
            let span = body.span();
            c.body = Box::new(syn::parse_quote_spanned!(span=>
                ::simplestream::__rt::pipeline::EventTime::event_time_ms(#body)
            ));
            Expr::Closure(c)
        }
        other => other,
    }
}

/// `(|e: &Ty| ..)`: adds the type to a closure's untyped parameter, so users write
/// `|o| o.ts`. Anything else is called as it is.
pub fn annotate(f: &Expr, ty: &Type) -> TokenStream {
    let Expr::Closure(c) = f else {
        return quote!((#f));
    };
    let mut c = c.clone();
    if c.inputs.len() == 1 && !matches!(c.inputs[0], Pat::Type(_)) {
        let pat = c.inputs[0].clone();
        let span = pat
            .to_token_stream()
            .into_iter()
            .next()
            .map(|t| t.span())
            .unwrap_or_else(Span::call_site);
        let refty: Type = syn::parse_quote_spanned!(span=> &#ty);
        c.inputs[0] = Pat::Type(syn::PatType {
            attrs: Vec::new(),
            pat: Box::new(pat),
            colon_token: Default::default(),
            ty: Box::new(refty),
        });
    }
    quote!((#c))
}

/// For `|e| e.a.b.clone()` (or `.to_owned()`): the parameter `e` and the field `e.a.b`,
/// which the key can be borrowed from. Only a plain parameter name and a chain of named
/// fields (or tuple indices) on it qualify, so the borrow has the field's own type.
pub fn cloned_field(e: &Expr) -> Option<(Pat, Expr)> {
    cloned_by(e, &["clone", "to_owned"])
}

/// [`cloned_field`] for `.clone()` only (and through a return type that [`with_output`]
/// added): the field is then the value, a reference to it or a pointer to it, so
/// `&field` coerces to a reference to the value.
pub fn cloned_field_strict(e: &Expr) -> Option<(Pat, Expr)> {
    cloned_by(&without_output(e), &["clone"])
}

/// `|e| -> T { body }` as `|e| body`, where the block holds just that expression.
fn without_output(e: &Expr) -> Expr {
    if let Expr::Closure(c) = e {
        if let Expr::Block(b) = &*c.body {
            if let [syn::Stmt::Expr(body, None)] = b.block.stmts.as_slice() {
                let mut c = c.clone();
                c.output = ReturnType::Default;
                c.body = Box::new(body.clone());
                return Expr::Closure(c);
            }
        }
    }
    e.clone()
}

fn cloned_by(e: &Expr, methods: &[&str]) -> Option<(Pat, Expr)> {
    let Expr::Closure(c) = e else { return None };
    if c.inputs.len() != 1 || !matches!(c.output, ReturnType::Default) {
        return None;
    }
    let param = match &c.inputs[0] {
        Pat::Type(t) => &*t.pat,
        p => p,
    };
    let Pat::Ident(id) = param else { return None };
    if id.by_ref.is_some() || id.subpat.is_some() {
        return None;
    }
    let call = match &*c.body {
        Expr::MethodCall(m) => m,
        _ => return None,
    };
    let method = call.method.to_string();
    if !call.args.is_empty() || call.turbofish.is_some() || !methods.contains(&method.as_str()) {
        return None;
    }
    let mut recv = &*call.receiver;
    let mut fields = 0;
    while let Expr::Field(f) = recv {
        fields += 1;
        recv = &f.base;
    }
    match recv {
        Expr::Path(p) if fields > 0 && p.qself.is_none() && p.path.is_ident(&id.ident) => Some((
            Pat::Ident(syn::PatIdent {
                mutability: None,
                ..id.clone()
            }),
            (*call.receiver).clone(),
        )),
        _ => None,
    }
}

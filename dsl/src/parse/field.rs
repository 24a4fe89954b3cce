//! `name: Type = |e| ..`: a named, typed column computed from an event (keys).

use syn::parse::{Parse, ParseStream};
use syn::{Expr, Ident, Token, Type};

/// `name [: Type] = expr`
pub struct Field {
    /// Column name.
    pub name: Ident,
    /// Declared type.
    pub ty: Option<Type>,
    /// The extractor.
    pub expr: Expr,
}

impl Parse for Field {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        if !(input.peek(Ident) && (input.peek2(Token![:]) || input.peek2(Token![=]))) {
            return Err(input.error("expected `name: Type = |e| key`, e.g. `key_by(customer: String = |o| o.customer.clone())`"));
        }
        let (name, ty) = name_and_type(input)?;
        input.parse::<Token![=]>()?;
        Ok(Field {
            name,
            ty,
            expr: input.parse()?,
        })
    }
}

/// `name` or `name: Type`, before a `=`.
pub fn name_and_type(input: ParseStream) -> syn::Result<(Ident, Option<Type>)> {
    let name: Ident = input.parse()?;
    let ty = if input.peek(Token![:]) {
        input.parse::<Token![:]>()?;
        Some(input.parse()?)
    } else {
        None
    };
    Ok((name, ty))
}

/// `name = ` ahead (and not `name == ..`): a named argument.
pub fn peek_named(input: ParseStream) -> bool {
    input.peek(Ident) && input.peek2(Token![=]) && !input.peek2(Token![==])
}

//! The token level of `#[isolated(...)]`: one `key = value` argument, and what a value's
//! expression is (a literal, a negation, a group `macro_rules!` wrapped around it).

use proc_macro2::Delimiter;
use quote::ToTokens;
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::{Expr, ExprLit, Lit, LitStr, Token, UnOp};

use super::{Errors, Key};

/// One argument as written.
///
/// `syn::Meta` is not used because it reads `-1` as one literal, whose span would cover only
/// the `-` in error messages; here the value is a plain expression.
pub(super) struct Arg {
    pub(super) key: syn::Path,
    pub(super) value: ArgValue,
}

pub(super) enum ArgValue {
    /// `key = value`.
    Expr(Expr),
    /// `key` alone.
    Missing,
    /// `key(...)`, `key[...]` or `key{...}`.
    Group(proc_macro2::Group),
}

impl Parse for Arg {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        // syn's own "expected identifier" would not say which names there are.
        if !(input.peek(syn::Ident::peek_any) || input.peek(Token![::])) {
            return Err(not_a_key(input));
        }
        // A keyword (`type = 1`) is reported as an unknown argument, not as a syntax error.
        let key = if input.peek(syn::Ident::peek_any) && !input.peek2(Token![::]) {
            syn::Path::from(input.call(syn::Ident::parse_any)?)
        } else {
            input.call(syn::Path::parse_mod_style)?
        };
        let value = if input.peek(Token![=]) {
            input.parse::<Token![=]>()?;
            ArgValue::Expr(input.parse()?)
        } else if let Some(group) = delimited_group(input)? {
            ArgValue::Group(group)
        } else if input.is_empty() || input.peek(Token![,]) {
            ArgValue::Missing
        } else {
            // `pids: 20`, `pids 20`: syn would only say "expected `,`" at the value.
            let name = key.to_token_stream().to_string().replace(' ', "");
            let example = key.get_ident().and_then(|ident| Key::from_name(&ident.to_string())).unwrap_or(Key::Pids);
            return Err(input.error(format!(
                "expected `=` after `{name}`: write arguments as `key = value`, e.g. `{}`",
                example.example()
            )));
        };
        Ok(Arg { key, value })
    }
}

/// `(...)`, `[...]` or `{...}` next, if there is one.
///
/// `input.peek(token::Paren)` sees through the invisible groups `macro_rules!` makes but
/// `input.parse::<Group>()` does not, which made `«pids» «()»` an "expected group token" error;
/// the cursor looks through them in both steps.
pub(super) fn delimited_group(input: ParseStream) -> syn::Result<Option<proc_macro2::Group>> {
    input.step(|cursor| {
        for delimiter in [Delimiter::Parenthesis, Delimiter::Bracket, Delimiter::Brace] {
            if let Some((inside, span, rest)) = cursor.group(delimiter) {
                let mut group = proc_macro2::Group::new(delimiter, inside.token_stream());
                group.set_span(span.join());
                return Ok((Some(group), rest));
            }
        }
        Ok((None, *cursor))
    })
}

/// The error for a token where an argument's name belongs: `"pids" = 1`, `= 1`, `pids = 1,, mem`.
pub(super) fn not_a_key(input: ParseStream) -> syn::Error {
    let valid = Key::ALL.map(Key::name).join(", ");
    let hint = match input.fork().parse::<LitStr>() {
        Ok(text) if Key::from_name(&text.value()).is_some() => format!(" (write `{}` without quotes)", text.value()),
        _ => String::new(),
    };
    input.error(format!("expected an argument name, e.g. `pids = 20`; valid arguments are: {valid}{hint}"))
}

/// `unknown argument`, with the valid ones and a guess.
pub(super) fn unknown_key(path: &syn::Path) -> syn::Error {
    let name = path.to_token_stream().to_string().replace(' ', "");
    let valid = Key::ALL.map(Key::name).join(", ");
    let mut message = format!("unknown argument `{name}`; valid arguments are: {valid}");
    if let Some(key) = Key::guess(&name) {
        message.push_str(&format!(" (did you mean `{}`?)", key.name()));
    }
    syn::Error::new_spanned(path, message)
}

/// The value as a string literal, or an error showing how to write it.
pub(super) fn string(value: &Expr, key: Key, what: &str) -> syn::Result<LitStr> {
    match literal(value) {
        Some(Lit::Str(text)) => Ok(text.clone()),
        _ => Err(syn::Error::new_spanned(
            value,
            format!("`{}` takes a string: {what}, e.g. `{}`", key.name(), key.example()),
        )),
    }
}

/// The value as `true` or `false`, or an error showing how to write it (a quoted `"true"`
/// is told to lose its quotes).
pub(super) fn boolean(value: &Expr, key: Key) -> syn::Result<bool> {
    let rule = format!("`{}` takes `true` or `false`", key.name());
    match literal(value) {
        Some(Lit::Bool(flag)) => Ok(flag.value),
        Some(Lit::Str(text)) => {
            let hint = match text.value().trim() {
                flag @ ("true" | "false") => format!("write it without quotes: `{} = {flag}`", key.name()),
                _ => format!("e.g. `{}`", key.example()),
            };
            Err(syn::Error::new_spanned(value, format!("{rule}, not a string; {hint}")))
        }
        _ => Err(syn::Error::new_spanned(value, format!("{rule}, e.g. `{}`", key.example()))),
    }
}

/// A string value naming one of `choices`; `unknown` says what it is ("network mode") and
/// `valid` lists the choices with what each means, for the error.
pub(super) fn one_of<T: Copy>(value: &Expr, key: Key, choices: &[(&str, T)], unknown: &str, valid: &str) -> syn::Result<T> {
    let expected = choices.iter().map(|(text, _)| format!("\"{text}\"")).collect::<Vec<_>>().join(" or ");
    let text = string(value, key, &expected)?.value();
    choices.iter().find(|(choice, _)| *choice == text).map(|(_, chosen)| *chosen).ok_or_else(|| {
        syn::Error::new_spanned(value, format!("unknown {unknown} \"{text}\"; valid values are {valid}"))
    })
}

/// Each string of a value that is one string or a list of them (`"/a"`, `["/a", "/b"]`), given
/// to `take`, whose `Err` is reported at that string; anything else is reported with `rule`.
/// All problems are reported together.
pub(super) fn each_string(value: &Expr, rule: &str, mut take: impl FnMut(String) -> Result<(), String>) -> syn::Result<()> {
    let elements: Vec<&Expr> = match value {
        Expr::Array(array) => array.elems.iter().map(peel).collect(),
        _ => vec![value],
    };
    let mut errors = Errors::default();
    for element in elements {
        let result = match literal(element) {
            Some(Lit::Str(text)) => take(text.value()),
            _ => Err(rule.to_string()),
        };
        errors.push(result.map_err(|message| syn::Error::new_spanned(element, message)));
    }
    errors.finish()
}

/// Integer literals may carry an integer type suffix (`20u64`), nothing else.
pub(super) fn check_int_suffix(suffix: &str, value: &Expr, example: &str) -> syn::Result<()> {
    const INTEGER_TYPES: [&str; 12] =
        ["", "u8", "u16", "u32", "u64", "u128", "usize", "i8", "i16", "i32", "i64", "i128"];
    if INTEGER_TYPES.contains(&suffix) || suffix == "isize" {
        Ok(())
    } else {
        Err(syn::Error::new_spanned(
            value,
            format!("unexpected suffix `{suffix}`; write a plain number, e.g. `{example}`"),
        ))
    }
}

/// The literal the value is, if it is one.
pub(super) fn literal(value: &Expr) -> Option<&Lit> {
    match peel(value) {
        Expr::Lit(ExprLit { lit, .. }) => Some(lit),
        _ => None,
    }
}

/// `-x`.
pub(super) fn is_negation(value: &Expr) -> bool {
    matches!(peel(value), Expr::Unary(unary) if matches!(unary.op, UnOp::Neg(_)))
}

/// Looks through parentheses and the invisible groups `macro_rules!` puts around `$x:expr`.
pub(super) fn peel(mut value: &Expr) -> &Expr {
    loop {
        match value {
            Expr::Group(group) => value = &group.expr,
            Expr::Paren(paren) => value = &paren.expr,
            _ => return value,
        }
    }
}

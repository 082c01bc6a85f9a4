//! How `#[isolated]` composes with the test attributes a suite already uses.
//!
//! Attribute macros expand from the top down: the topmost runs first and sees the attributes
//! below it as plain tokens, never those above it. What `#[isolated]` meets:
//!
//! - **Test generators and body wrappers below it** (`#[rstest]`, `#[test_case]`,
//!   `#[tokio::test]`, `#[test_log::test]`, `#[traced_test]`, `#[serial]`, ...): it *defers*,
//!   re-emitting the function with itself moved below all of them, so that they expand first.
//!   What reaches it then is a plain function per test: one case of rstest's, tokio's
//!   synchronous wrapper that builds the runtime (inside the sandbox, since the wrapper is the
//!   body), the body with its logger set up first.
//! - **`#[test]` below it**, the user's or the one those macros add (last, so that a macro
//!   below sees it): taken over, since `#[isolated]` registers the test itself.
//! - **A `#[test]` above it** cannot be seen: rustc registers the function, and `#[isolated]`'s
//!   own test is then a second test of the same name. test-case does this to a plain `fn` (its
//!   `#[test]` goes first). With `#[isolated]` above `#[test_case]` instead, deferring makes
//!   the function `async` before test-case sees it: test-case gives async cases no `#[test]`
//!   (it expects a runtime's attribute), and `#[isolated]` runs each case, complete when first
//!   polled, on its built-in executor. The order that cannot work fails at run time, naming
//!   this one (`run_test` refuses a second run of one name in a process).
//! - **`serial_test`'s lock**: `#[serial]` wraps the body in a call that takes a lock of the
//!   process. Inside the sandbox that is a copy of the process and keeps no other test out, so
//!   the call is *hoisted*: taken by the thread that dispatches the test (the stock harness's
//!   test thread, a runner thread), with the body alone going into the sandbox.

use proc_macro2::{TokenStream, TokenTree};
use quote::{quote, ToTokens};
use syn::{Attribute, Block, Expr, ExprCall, ItemFn, Meta, Stmt};

/// Attributes that must expand before `#[isolated]`: they generate the tests or wrap the body.
/// Matched by the last segment of their path, as the crates are often used through `use`.
const GENERATORS_AND_WRAPPERS: [&str; 8] =
    ["rstest", "test_case", "test_matrix", "traced_test", "serial", "parallel", "file_serial", "file_parallel"];

/// The segments of an attribute's path, as text (`["tokio", "test"]`).
fn segments(attr: &Attribute) -> Vec<String> {
    attr.path().segments.iter().map(|segment| segment.ident.to_string()).collect()
}

/// test-case's attributes (`test_case::case` too, which only test-case has).
fn is_test_case(attr: &Attribute) -> bool {
    let segments = segments(attr);
    matches!(segments.last().map(String::as_str), Some("test_case" | "test_matrix"))
        || segments == ["test_case", "case"]
}

/// A plain test attribute, as rustc and the crates that add one write it: `#[test]`,
/// `#[core::prelude::v1::test]`, `#[::std::prelude::rust_2021::test]`, ...
pub(crate) fn is_plain_test(attr: &Attribute) -> bool {
    let Meta::Path(path) = &attr.meta else { return false };
    let plain = |segments: &[String]| match segments {
        [test] => test == "test" && path.leading_colon.is_none(),
        [krate, prelude, _edition, test] => {
            (krate == "core" || krate == "std") && prelude == "prelude" && test == "test"
        }
        _ => false,
    };
    path.segments.iter().all(|segment| segment.arguments.is_none()) && plain(&segments(attr))
}

/// An attribute that must expand before `#[isolated]`: a runtime's or a wrapper's `test`
/// (`#[tokio::test]`, `#[test_log::test]`) or one of [`GENERATORS_AND_WRAPPERS`].
fn expands_first(attr: &Attribute) -> bool {
    let Some(last) = attr.path().segments.last() else { return false };
    let last = last.ident.to_string();
    (last == "test" && !is_plain_test(attr)) || GENERATORS_AND_WRAPPERS.contains(&last.as_str())
}

/// Attributes that put their `#[test]` above the function, where `#[isolated]` cannot take it
/// over even after deferring: each would register the test twice.
pub(crate) fn reject_test_first_attributes(attrs: &[Attribute]) -> syn::Result<()> {
    match attrs.iter().find(|attr| segments(attr) == ["async_std", "test"]) {
        Some(attr) => Err(syn::Error::new_spanned(
            attr,
            "#[async_std::test] puts its #[test] above #[isolated], which would register the test twice: remove \
             it; #[isolated] runs an `async fn` on its built-in executor, and async-std drives its I/O and tasks on \
             threads of its own",
        )),
        None => Ok(()),
    }
}

/// When attributes below `#[isolated]` must expand first: the function with every attribute in
/// its order and `#[isolated(args)]` (at `isolated`, the library's path to it) moved below them
/// all. `None` when none must.
pub(crate) fn defer(function: &ItemFn, isolated: TokenStream, args: &TokenStream) -> Option<TokenStream> {
    if !function.attrs.iter().any(expands_first) {
        return None;
    }
    let mut function = function.clone();
    // Async cases get no `#[test]` from test-case (see the module doc).
    if function.sig.asyncness.is_none() && function.attrs.iter().any(is_test_case) {
        function.sig.asyncness = Some(syn::token::Async(function.sig.fn_token.span));
    }
    function.attrs.push(syn::parse_quote!(#[#isolated(#args)]));
    Some(function.into_token_stream())
}

/// serial_test's functions that take a lock and call the test's body under it; `_with_return`
/// variants too.
const SYNC_LOCKS: [&str; 4] = ["local_serial_core", "local_parallel_core", "fs_serial_core", "fs_parallel_core"];

/// The same for an `async fn`, awaited inside the body.
const ASYNC_LOCKS: [&str; 4] =
    ["local_async_serial_core", "local_async_parallel_core", "fs_async_serial_core", "fs_async_parallel_core"];

/// Whether `name` is one of `locks`, with or without `_with_return`.
fn is_lock(name: &str, locks: &[&str]) -> bool {
    locks.contains(&name.strip_suffix("_with_return").unwrap_or(name))
}

/// A lock taken around the body, lifted out of it.
pub(crate) struct HoistedLock {
    /// The lock's call with the body replaced by `<private>::run_locked_test`: the body of the
    /// lock function the dispatcher calls.
    pub(crate) call: TokenStream,
}

/// Takes serial_test's lock call off the end of `block` (see the module doc): the block keeps
/// what ran before the call and then the call's closure body; the call comes back, calling
/// `<private>::run_locked_test` instead. A lock this cannot lift (an async one, awaited inside
/// the body; one not at the end) is an error naming the order that works.
pub(crate) fn hoist_lock(block: &mut Block, private: &TokenStream) -> syn::Result<Option<HoistedLock>> {
    let hoisted = match block.stmts.last() {
        Some(Stmt::Expr(Expr::Call(call), _)) => lock_of(call),
        _ => None,
    };
    let hoisted = match hoisted {
        Some((name, closure_body)) => {
            let Some(Stmt::Expr(Expr::Call(mut call), _)) = block.stmts.pop() else { unreachable!("matched above") };
            block.stmts.push(Stmt::Expr(closure_body, None));
            let run: Expr = if name.ends_with("_with_return") {
                syn::parse_quote!(|| {
                    #private::run_locked_test();
                    ::core::result::Result::Ok::<(), ::std::string::String>(())
                })
            } else {
                syn::parse_quote!(#private::run_locked_test)
            };
            *call.args.last_mut().expect("lock_of found a closure") = run;
            Some(HoistedLock { call: quote!(let _ = #call;) })
        }
        None => None,
    };
    if let Some(lock) = find_lock(block.to_token_stream()) {
        let message = if is_lock(&lock.to_string(), &ASYNC_LOCKS) {
            "#[serial] on an `async fn` takes its lock inside the sandbox, where it keeps no other test out: \
             write the runtime's attribute above it, e.g. `#[isolated] #[tokio::test] #[serial] async fn`"
        } else {
            "this serial_test lock is not around the whole body, so #[isolated] cannot take it where the test \
             is dispatched: write `#[serial]` right above or below `#[isolated]`"
        };
        return Err(syn::Error::new(lock.span(), message));
    }
    Ok(hoisted)
}

/// `call` as serial_test writes it, `path::LOCK(names, path, || body)`: the lock's name and the
/// closure's body.
fn lock_of(call: &ExprCall) -> Option<(String, Expr)> {
    let Expr::Path(function) = &*call.func else { return None };
    let name = function.path.segments.last()?.ident.to_string();
    match call.args.last()? {
        Expr::Closure(closure) if closure.inputs.is_empty() && is_lock(&name, &SYNC_LOCKS) => {
            Some((name, (*closure.body).clone()))
        }
        _ => None,
    }
}

/// The first serial_test lock named anywhere in `tokens`.
fn find_lock(tokens: TokenStream) -> Option<proc_macro2::Ident> {
    tokens.into_iter().find_map(|token| match token {
        TokenTree::Ident(ident) if is_lock(&ident.to_string(), &SYNC_LOCKS) || is_lock(&ident.to_string(), &ASYNC_LOCKS) => {
            Some(ident)
        }
        TokenTree::Group(group) => find_lock(group.stream()),
        _ => None,
    })
}

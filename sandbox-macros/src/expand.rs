//! What `#[isolated(...)]` turns a test function into.
//!
//! For `#[isolated(pids = 20)] fn name() { body }` it emits, next to each other in the module:
//!
//! - `const __ISOLATED_SPEC_name: TestSpec`: the checked arguments;
//! - `fn __isolated_body_name() -> Result<(), String>`: the user's function, nested unchanged,
//!   called and its result converted with `TestReturn`;
//! - an `inventory::submit!` of a `TestCase` for the `harness = false` runner;
//! - `#[test] fn name()`, which hands both to `run_test` under the stock harness.
//!
//! Only the last is a `#[test]`: a `harness = false` target is not built with `--test`, which
//! strips `#[test]` functions, so everything the runner needs lives outside it.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{Attribute, Item, ItemFn, LitStr, Meta, ReturnType, Visibility};

use crate::args::{self, Args, Errors, Expect, Fs, HostWrites, Net};
use crate::compose;

/// Expands `#[isolated(args)] item`. On any error the item comes back unchanged next to the
/// errors, so that rust-analyzer and the rest of the compilation still see the function.
pub(crate) fn isolated(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let args_tokens = args.clone();
    let args = args::parse(args).map_err(|err| errors.push(Err(err))).ok();
    let test = match syn::parse2::<Item>(item.clone()) {
        Ok(Item::Fn(function)) => Some(function),
        Ok(other) => {
            errors.push(Err(syn::Error::new_spanned(
                item_head(&other),
                "#[isolated] goes on a test function, e.g. `#[isolated(pids = 20)] fn forks_at_most_20() { ... }`",
            )));
            None
        }
        Err(err) => {
            errors.push(Err(err));
            None
        }
    };
    // Attributes below that must expand first: #[isolated] comes back below them (compose).
    if let (Some(args), Some(function)) = (&args, &test) {
        errors.push(reject_second_isolated(&function.attrs));
        errors.push(compose::reject_test_first_attributes(&function.attrs));
        if errors.is_empty() {
            if let Some(deferred) = compose::defer(function, library(args, "isolated"), &args_tokens) {
                return deferred;
            }
        }
    }
    let test = test.and_then(|function| {
        check_function(&function).map(|attrs| (function, attrs)).map_err(|err| errors.push(Err(err))).ok()
    });
    let generated = match (&args, test) {
        (Some(args), Some((function, attrs))) if errors.is_empty() => {
            generate(args, function, attrs).map_err(|err| errors.push(Err(err))).ok()
        }
        _ => None,
    };
    match (errors.finish(), generated) {
        (Ok(()), Some(generated)) => generated,
        (result, _) => {
            let err = err_or_internal(result);
            quote!(#item #err)
        }
    }
}

/// A second `#[isolated]` among the function's attributes.
fn reject_second_isolated(attrs: &[Attribute]) -> syn::Result<()> {
    let mut errors = Errors::default();
    for attr in attrs.iter().filter(|attr| attr.path().segments.last().is_some_and(|last| last.ident == "isolated")) {
        errors.push(Err(syn::Error::new_spanned(
            attr,
            "#[isolated] is given twice; merge the arguments into one `#[isolated(...)]`",
        )));
    }
    errors.finish()
}

/// The compile errors; `Ok` cannot happen with a missing piece but is handled anyway.
fn err_or_internal(result: Result<(), syn::Error>) -> TokenStream {
    match result {
        Err(err) => err.to_compile_error(),
        Ok(()) => syn::Error::new(Span::call_site(), "#[isolated]: internal error").to_compile_error(),
    }
}

/// `#[should_panic]` as written.
enum ShouldPanic {
    No,
    Yes,
    WithMessage(LitStr),
}

/// The function's attributes, sorted by where they go.
struct TestAttrs {
    /// `#[ignore]` or `#[ignore = "..."]` is present.
    ignore: bool,
    should_panic: ShouldPanic,
    /// `#[cfg(...)]`: on every generated item.
    cfg: Vec<Attribute>,
    /// On the generated `#[test]` function: docs, `#[ignore]`, `#[should_panic]` and every other
    /// attribute except lint levels, which only concern the body.
    outer: Vec<Attribute>,
    /// On the user's function inside the body: everything that is not about the test itself.
    inner: Vec<Attribute>,
}

/// Rejects what cannot be a sandboxed test and sorts the attributes.
fn check_function(function: &ItemFn) -> syn::Result<TestAttrs> {
    let mut errors = Errors::default();
    let attrs = sort_attributes(&function.attrs).map_err(|err| errors.push(Err(err))).ok();
    let sig = &function.sig;
    if let Some(constness) = &sig.constness {
        errors.push(Err(syn::Error::new_spanned(
            constness,
            "#[isolated] tests cannot be `const fn`; remove `const`",
        )));
    }
    if let Some(unsafety) = &sig.unsafety {
        errors.push(Err(syn::Error::new_spanned(
            unsafety,
            "#[isolated] tests cannot be `unsafe fn`; remove `unsafe` and put the unsafe operations in an \
             `unsafe { ... }` block inside the body",
        )));
    }
    if let Some(abi) = &sig.abi {
        errors.push(Err(syn::Error::new_spanned(
            abi,
            "#[isolated] tests cannot have an ABI; remove the `extern`: tests are plain Rust functions",
        )));
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        let generics = &sig.generics;
        let where_clause = &generics.where_clause;
        errors.push(Err(syn::Error::new_spanned(
            quote!(#generics #where_clause),
            "#[isolated] tests cannot be generic; remove the generic parameters and write one test per type",
        )));
    }
    if !sig.inputs.is_empty() || sig.variadic.is_some() {
        let inputs = &sig.inputs;
        let variadic = &sig.variadic;
        errors.push(Err(syn::Error::new_spanned(
            quote!(#inputs #variadic),
            "#[isolated] tests take no arguments: build what the test needs inside the body, or give the cases \
             with `#[rstest]` or `#[test_case(..)]` below `#[isolated]`",
        )));
    }
    errors.finish()?;
    Ok(attrs.expect("no errors, so the attributes were sorted"))
}

/// Sorts the attributes; a plain `#[test]` is dropped, as `#[isolated]` makes its own.
fn sort_attributes(attrs: &[Attribute]) -> syn::Result<TestAttrs> {
    let mut sorted = TestAttrs {
        ignore: false,
        should_panic: ShouldPanic::No,
        cfg: Vec::new(),
        outer: Vec::new(),
        inner: Vec::new(),
    };
    let mut errors = Errors::default();
    for attr in attrs {
        let path = attr.path();
        let last = path.segments.last().map(|segment| segment.ident.to_string()).unwrap_or_default();
        let single = path.get_ident().map(ToString::to_string);
        match (single.as_deref(), last.as_str()) {
            // #[isolated] registers the test itself (see compose).
            _ if compose::is_plain_test(attr) => {}
            (Some("ignore"), _) => {
                sorted.ignore = true;
                sorted.outer.push(attr.clone());
            }
            (Some("should_panic"), _) => {
                match should_panic(attr) {
                    Ok(value) => sorted.should_panic = value,
                    Err(err) => errors.push(Err(err)),
                }
                // Off Linux the test fails because it cannot run: that must not pass.
                let meta = &attr.meta;
                sorted.outer.push(syn::parse_quote!(#[cfg_attr(target_os = "linux", #meta)]));
            }
            (Some("doc"), _) => sorted.outer.push(attr.clone()),
            (Some("cfg"), _) => sorted.cfg.push(attr.clone()),
            (Some("allow" | "warn" | "deny" | "forbid" | "expect"), _) => sorted.inner.push(attr.clone()),
            _ => {
                sorted.outer.push(attr.clone());
                sorted.inner.push(attr.clone());
            }
        }
    }
    errors.finish()?;
    Ok(sorted)
}

/// Reads `#[should_panic]`, `#[should_panic = "..."]` or `#[should_panic(expected = "...")]`.
fn should_panic(attr: &Attribute) -> syn::Result<ShouldPanic> {
    let malformed = || {
        syn::Error::new_spanned(
            attr,
            "write `#[should_panic]` or `#[should_panic(expected = \"part of the message\")]`",
        )
    };
    match &attr.meta {
        Meta::Path(_) => Ok(ShouldPanic::Yes),
        Meta::NameValue(name_value) => match &name_value.value {
            syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Str(message), .. }) => {
                Ok(ShouldPanic::WithMessage(message.clone()))
            }
            _ => Err(malformed()),
        },
        Meta::List(_) => {
            let mut expected = None;
            attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("expected") && expected.is_none() {
                    expected = Some(meta.value()?.parse::<LitStr>()?);
                    Ok(())
                } else {
                    Err(malformed())
                }
            })
            .map_err(|_| malformed())?;
            expected.map(ShouldPanic::WithMessage).ok_or_else(malformed)
        }
    }
}

/// The tokens naming an item that is not a function (`struct Foo`), for the error's span.
fn item_head(item: &Item) -> TokenStream {
    // The keyword token and the name of each kind of item.
    macro_rules! head {
        ($item:expr, $keyword:ident, $name:ident) => {{
            let (keyword, name) = (&$item.$keyword, &$item.$name);
            quote!(#keyword #name)
        }};
    }
    match item {
        Item::Struct(item) => head!(item, struct_token, ident),
        Item::Enum(item) => head!(item, enum_token, ident),
        Item::Union(item) => head!(item, union_token, ident),
        Item::Const(item) => head!(item, const_token, ident),
        Item::Static(item) => head!(item, static_token, ident),
        Item::Mod(item) => head!(item, mod_token, ident),
        Item::Trait(item) => head!(item, trait_token, ident),
        Item::Type(item) => head!(item, type_token, ident),
        Item::Impl(item) => head!(item, impl_token, self_ty),
        other => other.to_token_stream(),
    }
}

/// The expansion for a checked function.
fn generate(args: &Args, mut function: ItemFn, attrs: TestAttrs) -> syn::Result<TokenStream> {
    let TestAttrs { ignore, should_panic, cfg, outer, inner } = attrs;
    let name = function.sig.ident.clone();
    let name_str = name.unraw().to_string();
    let spec_ident = format_ident!("__ISOLATED_SPEC_{}", name_str, span = name.span());
    let body_ident = format_ident!("__isolated_body_{}", name_str, span = name.span());
    let lock_ident = format_ident!("__isolated_lock_{}", name_str, span = name.span());
    let vis = std::mem::replace(&mut function.vis, Visibility::Inherited);
    function.attrs = inner;

    let private = runtime(args);
    let spec = spec(args, &private);
    // serial_test's lock, taken where the test is dispatched (see compose).
    let lock = compose::hoist_lock(&mut function.block, &private)?;
    let should_panic = match should_panic {
        ShouldPanic::No => quote!(#private::ShouldPanic::No),
        ShouldPanic::Yes => quote!(#private::ShouldPanic::Yes),
        ShouldPanic::WithMessage(message) => quote!(#private::ShouldPanic::WithMessage(#message)),
    };
    // A return type without `TestReturn` is reported at the return type.
    let return_span = match &function.sig.output {
        ReturnType::Default => name.span(),
        ReturnType::Type(_, ty) => ty.span(),
    };
    // The whole call at the return type, the runtime's path too: the bound's note points there.
    let private_at_return: TokenStream = private
        .clone()
        .into_iter()
        .map(|mut token| {
            token.set_span(return_span);
            token
        })
        .collect();
    // An `async fn` without a runtime's attribute runs on the built-in executor.
    let result = match function.sig.asyncness {
        Some(_) => quote_spanned!(return_span=> #private_at_return::block_on(#name())),
        None => quote_spanned!(return_span=> #name()),
    };
    let call = quote_spanned!(return_span=> #private_at_return::TestReturn::into_result(#result));
    // Off Linux an isolated test cannot run: reported ignored, with the reason.
    let off_linux = (!ignore).then(|| {
        quote!(#[cfg_attr(not(target_os = "linux"), ignore = "isolated tests need Linux (namespaces and cgroups)")])
    });
    let run_test = quote!(#private::run_test(&#spec_ident, ::std::module_path!(), #name_str, #body_ident));
    let (lock_item, lock_field, test_body) = match lock {
        Some(compose::HoistedLock { call }) => (
            quote! {
                #(#cfg)*
                #[allow(non_snake_case)]
                #[doc(hidden)]
                fn #lock_ident() {
                    #call
                }
            },
            quote!(::std::option::Option::Some(#lock_ident)),
            quote!(#private::run_locked(#lock_ident, || #run_test)),
        ),
        None => (TokenStream::new(), quote!(::std::option::Option::None), run_test),
    };

    Ok(quote! {
        #(#cfg)*
        #[allow(non_upper_case_globals)]
        #[doc(hidden)]
        const #spec_ident: #private::TestSpec = #spec;

        #(#cfg)*
        #[allow(non_snake_case)]
        #[doc(hidden)]
        fn #body_ident() -> ::std::result::Result<(), ::std::string::String> {
            #function
            #call
        }

        #lock_item

        #(#cfg)*
        #private::inventory::submit! {
            #private::TestCase {
                name: #name_str,
                module_path: ::std::module_path!(),
                spec: &#spec_ident,
                body: #body_ident,
                ignore: #ignore,
                should_panic: #should_panic,
                lock: #lock_field,
            }
        }

        #(#cfg)*
        #[::core::prelude::v1::test]
        #(#outer)*
        #off_linux
        #vis fn #name() {
            #test_body
        }
    })
}

/// The path of the library's item `item` (`isolated`, `__private`). The library is found, in
/// this order, at the `crate = "..."` key; under the name the user's Cargo.toml gives the
/// `test-sandbox` package (a renamed dependency, `my_sandbox = { package = "test-sandbox", .. }`);
/// as `sandbox`, the library's own name (also in the library itself, and when the Cargo.toml
/// cannot be read, as for a dependency reached through another crate).
fn library(args: &Args, item: &str) -> TokenStream {
    if let Some(krate) = &args.krate {
        // The item at the string too, so that an unresolved path is reported there.
        let path = &krate.path;
        let item = proc_macro2::Ident::new(item, path.span());
        return quote!(#path::#item);
    }
    use proc_macro_crate::{crate_name, FoundCrate};
    let name = match crate_name("test-sandbox") {
        // Not renamed: cargo names it by its library, `sandbox`, not by the package.
        Ok(FoundCrate::Name(name)) if name != "test_sandbox" => name,
        // `Itself` (the library's unit tests and doc tests, where `::sandbox` names it) and a
        // manifest that cannot be read: the library's own name.
        _ => "sandbox".to_string(),
    };
    let ident = proc_macro2::Ident::new(&name, Span::call_site());
    let item = proc_macro2::Ident::new(item, Span::call_site());
    quote!(::#ident::#item)
}

/// The runtime's hidden module (`<library>::__private`).
fn runtime(args: &Args) -> TokenStream {
    library(args, "__private")
}

/// The `TestSpec` literal.
fn spec(args: &Args, private: &TokenStream) -> TokenStream {
    fn option<T: ToTokens>(value: Option<T>) -> TokenStream {
        match value {
            Some(value) => quote!(::std::option::Option::Some(#value)),
            None => quote!(::std::option::Option::None),
        }
    }
    let u64_literal = |value: u64| proc_macro2::Literal::u64_suffixed(value);
    let pids = option(args.pids.map(u64_literal));
    let mem_bytes = option(args.mem_bytes.map(u64_literal));
    let cpu_cores = option(args.cpu_cores.map(proc_macro2::Literal::f64_suffixed));
    let timeout_ms = option(args.timeout_ms.map(u64_literal));
    let hostname = option(args.hostname.as_deref().map(proc_macro2::Literal::string));
    let tmpfs = args.tmpfs.iter().map(|mount| {
        let path = proc_macro2::Literal::string(&mount.path);
        let size = option(mount.size_bytes.map(u64_literal));
        quote!((#path, #size))
    });
    let net = match args.net {
        Net::Host => quote!(#private::Net::Host),
        Net::None => quote!(#private::Net::None),
    };
    let expect = match args.expect {
        Expect::Success => quote!(#private::Expect::Success),
        Expect::Oom => quote!(#private::Expect::Oom),
        Expect::PidsLimit => quote!(#private::Expect::PidsLimit),
        Expect::Timeout => quote!(#private::Expect::Timeout),
    };
    let fs = match args.fs {
        Fs::Host => quote!(#private::FsMode::Host),
        Fs::ReadOnly => quote!(#private::FsMode::ReadOnly),
        Fs::Overlay => quote!(#private::FsMode::Overlay),
    };
    let writable = args.writable.iter().map(|path| proc_macro2::Literal::string(path));
    let fs_size = option(args.fs_size.map(u64_literal));
    let host_writes = match args.host_writes {
        HostWrites::Discard => quote!(#private::HostWrites::Discard),
        HostWrites::Fail => quote!(#private::HostWrites::Fail),
    };
    let privileged = args.privileged;
    let require_cgroup = args.require_cgroup;
    let baseline_tolerance = option(args.baseline_tolerance.map(|sandbox_units::Tolerance { percent, bytes }| {
        let (percent, bytes) = (proc_macro2::Literal::u32_suffixed(percent), u64_literal(bytes));
        quote!(#private::Tolerance { percent: #percent, bytes: #bytes })
    }));
    quote! {
        #private::TestSpec {
            pids: #pids,
            mem_bytes: #mem_bytes,
            cpu_cores: #cpu_cores,
            timeout_ms: #timeout_ms,
            hostname: #hostname,
            tmpfs: &[#(#tmpfs),*],
            net: #net,
            fs: #fs,
            writable: &[#(#writable),*],
            fs_size: #fs_size,
            host_writes: #host_writes,
            privileged: #privileged,
            expect: #expect,
            require_cgroup: #require_cgroup,
            baseline_tolerance: #baseline_tolerance,
        }
    }
}

#[cfg(test)]
mod tests;

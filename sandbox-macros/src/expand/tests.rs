//! Unit tests of `expand`.

use super::*;

fn expand(args: TokenStream, item: TokenStream) -> String {
    let tokens = isolated(args, item);
    let file: syn::File = syn::parse2(tokens.clone()).unwrap_or_else(|err| panic!("{err}: {tokens}"));
    file.to_token_stream().to_string()
}

fn normalized(tokens: TokenStream) -> String {
    let file: syn::File = syn::parse2(tokens).unwrap();
    file.to_token_stream().to_string()
}

/// The runtime is found at the `crate` key, else by the name this package's Cargo.toml gives
/// test-sandbox (a dev-dependency, not renamed: the library's own name).
#[test]
fn the_runtime_path_follows_the_crate_key_or_the_dependency_name() {
    let renamed = Args { krate: Some(args::CratePath { path: syn::parse_quote!(my_sandbox) }), ..Args::default() };
    assert_eq!(runtime(&renamed).to_string(), quote!(my_sandbox::__private).to_string());
    assert_eq!(runtime(&Args::default()).to_string(), quote!(::sandbox::__private).to_string());
}

#[test]
fn the_documented_expansion() {
    let got = expand(
        quote!(pids = 20, mem = "100M"),
        quote! {
            /// doc
            #[ignore]
            #[should_panic(expected = "x")]
            #[allow(unused)]
            pub fn name() -> Result<(), E> { body() }
        },
    );
    let want = normalized(quote! {
        #[allow(non_upper_case_globals)]
        #[doc(hidden)]
        const __ISOLATED_SPEC_name: ::sandbox::__private::TestSpec = ::sandbox::__private::TestSpec {
            pids: ::std::option::Option::Some(20u64),
            mem_bytes: ::std::option::Option::Some(104857600u64),
            cpu_cores: ::std::option::Option::None,
            timeout_ms: ::std::option::Option::None,
            hostname: ::std::option::Option::None,
            tmpfs: &[],
            net: ::sandbox::__private::Net::Host,
            expect: ::sandbox::__private::Expect::Success,
            require_cgroup: false,
            baseline_tolerance: ::std::option::Option::None,
        };

        #[allow(non_snake_case)]
        #[doc(hidden)]
        fn __isolated_body_name() -> ::std::result::Result<(), ::std::string::String> {
            #[allow(unused)]
            fn name() -> Result<(), E> { body() }
            ::sandbox::__private::TestReturn::into_result(name())
        }

        ::sandbox::__private::inventory::submit! {
            ::sandbox::__private::TestCase {
                name: "name",
                module_path: ::std::module_path!(),
                spec: &__ISOLATED_SPEC_name,
                body: __isolated_body_name,
                ignore: true,
                should_panic: ::sandbox::__private::ShouldPanic::WithMessage("x"),
            }
        }

        #[::core::prelude::v1::test]
        /// doc
        #[ignore]
        #[cfg_attr(target_os = "linux", should_panic(expected = "x"))]
        pub fn name() {
            ::sandbox::__private::run_test(&__ISOLATED_SPEC_name, ::std::module_path!(), "name", __isolated_body_name)
        }
    });
    assert_eq!(got, want);
}

#[test]
fn every_spec_field() {
    let args = args::parse(quote!(
        pids = 3,
        mem = "1K",
        cpu = 1.5,
        timeout = "2s",
        hostname = "box",
        tmpfs = ["/a", "/b:1K"],
        net = "none",
        expect = "timeout",
        baseline_tolerance = "5%"
    ))
    .unwrap();
    let want = quote! {
        ::sandbox::__private::TestSpec {
            pids: ::std::option::Option::Some(3u64),
            mem_bytes: ::std::option::Option::Some(1024u64),
            cpu_cores: ::std::option::Option::Some(1.5f64),
            timeout_ms: ::std::option::Option::Some(2000u64),
            hostname: ::std::option::Option::Some("box"),
            tmpfs: &[("/a", ::std::option::Option::None), ("/b", ::std::option::Option::Some(1024u64))],
            net: ::sandbox::__private::Net::None,
            expect: ::sandbox::__private::Expect::Timeout,
            require_cgroup: false,
            baseline_tolerance: ::std::option::Option::Some(::sandbox::__private::Tolerance { percent: 5u32, bytes: 0u64 }),
        }
    };
    assert_eq!(spec(&args, &quote!(::sandbox::__private)).to_string(), want.to_string());
}

#[test]
fn cfg_goes_on_every_item_and_should_panic_forms() {
    let got = expand(
        quote!(),
        quote!(
            #[cfg(unix)]
            #[should_panic]
            #[ignore = "slow"]
            fn r#type() {}
        ),
    );
    assert_eq!(got.matches("# [cfg (unix)]").count(), 4, "{got}");
    assert!(got.contains("const __ISOLATED_SPEC_type"), "{got}");
    assert!(got.contains("name : \"type\""), "{got}");
    assert!(got.contains("ShouldPanic :: Yes"), "{got}");
    assert!(got.contains("ignore : true"), "{got}");
    assert!(got.contains("# [cfg_attr (target_os = \"linux\" , should_panic)]"), "{got}");
    assert!(!got.contains("isolated tests need Linux"), "ignored already: {got}");
    assert!(got.contains("fn r#type ()"), "{got}");
    let got = expand(
        quote!(),
        quote!(
            #[should_panic = "boom"]
            fn f() {}
        ),
    );
    assert!(got.contains("ShouldPanic :: WithMessage (\"boom\")"), "{got}");
    let got = expand(
        quote!(),
        quote!(
            fn f() {}
        ),
    );
    assert!(got.contains("ShouldPanic :: No"), "{got}");
    assert!(got.contains("ignore : false"), "{got}");
    assert!(
        got.contains(
            "# [cfg_attr (not (target_os = \"linux\") , ignore = \"isolated tests need Linux (namespaces and cgroups)\")]"
        ),
        "{got}"
    );
}

/// The compile errors of an expansion, and whether the item is still there.
fn errors(args: TokenStream, item: TokenStream) -> Vec<String> {
    let tokens = isolated(args, item.clone()).to_string();
    assert!(tokens.starts_with(&item.to_string()), "the item is kept unchanged: {tokens}");
    let mut messages = Vec::new();
    let mut rest = tokens.as_str();
    while let Some(start) = rest.find("compile_error ! {") {
        rest = &rest[start..];
        let message_start = rest.find('"').unwrap();
        let message_end = rest.find("\" }").unwrap();
        messages.push(rest[message_start + 1..message_end].replace("\\\"", "\""));
        rest = &rest[message_end..];
    }
    messages
}

#[test]
fn rejected_functions_keep_the_item() {
    assert_eq!(
        errors(quote!(), quote!(struct Foo;)),
        ["#[isolated] goes on a test function, e.g. `#[isolated(pids = 20)] fn forks_at_most_20() { ... }`"]
    );
    assert_eq!(
        errors(quote!(), quote!(fn f(x: u32) {})),
        ["#[isolated] tests take no arguments; remove them and build what the test needs inside the body"]
    );
    assert!(errors(
        quote!(),
        quote!(
            async fn f() {}
        )
    )[0]
    .starts_with("#[isolated] does not support `async fn`"));
    assert!(errors(
        quote!(),
        quote!(
            const fn f() {}
        )
    )[0]
    .contains("`const fn`"));
    assert!(errors(
        quote!(),
        quote!(
            unsafe fn f() {}
        )
    )[0]
    .contains("`unsafe fn`"));
    assert!(errors(
        quote!(),
        quote!(
            extern "C" fn f() {}
        )
    )[0]
    .contains("remove the `extern`"));
    assert!(errors(
        quote!(),
        quote!(
            fn f<T>() {}
        )
    )[0]
    .contains("cannot be generic"));
    assert!(errors(
        quote!(),
        quote!(
            fn f()
            where
                u8: Copy,
            {
            }
        )
    )[0]
    .contains("cannot be generic"));
    assert_eq!(
        errors(
            quote!(),
            quote!(
                #[test]
                fn f() {}
            )
        ),
        ["remove `#[test]`: #[isolated] already makes the function a test"]
    );
    assert_eq!(
        errors(
            quote!(),
            quote!(
                #[tokio::test]
                fn f() {}
            )
        ),
        ["remove `#[tokio::test]`: #[isolated] already makes the function a test"]
    );
    assert_eq!(
        errors(
            quote!(),
            quote!(
                #[sandbox::isolated]
                fn f() {}
            )
        ),
        ["#[isolated] is given twice; merge the arguments into one `#[isolated(...)]`"]
    );
    assert_eq!(
        errors(
            quote!(),
            quote!(
                #[should_panic(because = "x")]
                fn f() {}
            )
        ),
        ["write `#[should_panic]` or `#[should_panic(expected = \"part of the message\")]`"]
    );
    // Argument and function errors are reported together.
    assert_eq!(
        errors(
            quote!(foo = 1),
            quote!(
                async fn f(x: u8) {}
            )
        )
        .len(),
        3
    );
}

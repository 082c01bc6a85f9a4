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
            fs: ::sandbox::__private::FsMode::Host,
            writable: &[],
            fs_size: ::std::option::Option::None,
            host_writes: ::sandbox::__private::HostWrites::Discard,
            privileged: false,
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
                lock: ::std::option::Option::None,
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
        fs = "overlay",
        writable = ["/srv/a", "/srv/b"],
        fs_size = "2M",
        host_writes = "fail",
        privileged = true,
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
            fs: ::sandbox::__private::FsMode::Overlay,
            writable: &["/srv/a", "/srv/b"],
            fs_size: ::std::option::Option::Some(2097152u64),
            host_writes: ::sandbox::__private::HostWrites::Fail,
            privileged: true,
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
        ["#[isolated] tests take no arguments: build what the test needs inside the body, or give the cases \
          with `#[rstest]` or `#[test_case(..)]` below `#[isolated]`"]
    );
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
                const fn f(x: u8) {}
            )
        )
        .len(),
        3
    );
}

/// Attributes that generate tests or wrap the body expand first: the item comes back with
/// `#[isolated]` moved below them all, its arguments unchanged.
#[test]
fn test_attributes_below_expand_first() {
    let got = expand(
        quote!(pids = 20),
        quote! {
            #[tokio::test(flavor = "multi_thread")]
            #[should_panic]
            async fn f() {}
        },
    );
    let want = normalized(quote! {
        #[tokio::test(flavor = "multi_thread")]
        #[should_panic]
        #[::sandbox::isolated(pids = 20)]
        async fn f() {}
    });
    assert_eq!(got, want);
    for attr in [quote!(#[rstest]), quote!(#[test_log::test]), quote!(#[traced_test]), quote!(#[serial_test::serial])] {
        let got = expand(quote!(), quote!(#attr fn f(x: u32) {}));
        assert_eq!(got, normalized(quote!(#attr #[::sandbox::isolated()] fn f(x: u32) {})), "{attr}");
    }
}

/// Below `#[test_case]`, a plain function becomes `async`: test-case then adds no `#[test]`.
#[test]
fn test_case_cases_of_a_plain_fn_are_made_async() {
    let got = expand(quote!(), quote!(#[test_case(1)] #[test_case(2)] fn f(x: u32) {}));
    assert_eq!(got, normalized(quote!(#[test_case(1)] #[test_case(2)] #[::sandbox::isolated()] async fn f(x: u32) {})));
}

/// A plain `#[test]` below is taken over; an `async fn` without a runtime's attribute runs on
/// the built-in executor.
#[test]
fn a_plain_test_is_taken_over_and_async_runs_on_the_builtin_executor() {
    for test in [quote!(#[test]), quote!(#[::core::prelude::v1::test]), quote!(#[std::prelude::rust_2021::test])] {
        let got = expand(quote!(), quote!(#test fn f() {}));
        assert_eq!(got.matches("test]").count(), 1, "one #[test], the generated one: {got}");
    }
    let got = expand(quote!(), quote!(async fn f() {}));
    assert!(got.contains(":: sandbox :: __private :: block_on (f ())"), "{got}");
}

/// serial_test's lock comes off the end of the body into a lock function, which the dispatcher
/// calls; what ran before it stays in the body.
#[test]
fn a_serial_lock_is_taken_where_the_test_is_dispatched() {
    let got = expand(
        quote!(),
        quote! {
            fn f() {
                init();
                serial_test::local_serial_core(vec!["k"], ::std::option::Option::None, || { body(); });
            }
        },
    );
    assert!(got.contains("fn f () { init () ; { body () ; } }"), "{got}");
    assert!(
        got.contains(
            "fn __isolated_lock_f () { let _ = serial_test :: local_serial_core (vec ! [\"k\"] , :: std :: option :: \
             Option :: None , :: sandbox :: __private :: run_locked_test) ; }"
        ),
        "{got}"
    );
    assert!(got.contains("lock : :: std :: option :: Option :: Some (__isolated_lock_f)"), "{got}");
    assert!(got.contains(":: sandbox :: __private :: run_locked (__isolated_lock_f , | |"), "{got}");
    // A body returning a value: the `_with_return` lock gets a closure returning `Ok`.
    let got = expand(
        quote!(),
        quote! {
            fn f() -> Result<(), String> {
                serial_test::local_serial_core_with_return(vec![""], ::std::option::Option::None, || { Ok(()) })
            }
        },
    );
    assert!(got.contains("fn f () -> Result < () , String > { { Ok (()) } }"), "{got}");
    assert!(got.contains("run_locked_test () ; :: core :: result :: Result :: Ok :: < () , :: std :: string :: String > (())"), "{got}");
}

/// A lock awaited inside an async body, or not around the whole body, cannot be hoisted.
#[test]
fn a_lock_that_cannot_be_hoisted_is_an_error_naming_the_order_that_works() {
    let inside_async = errors(
        quote!(),
        quote! {
            fn f() {
                block_on(async { serial_test::local_async_serial_core(vec![""], None, g()).await; })
            }
        },
    );
    assert_eq!(inside_async.len(), 1);
    assert!(inside_async[0].contains("write the runtime's attribute above it"), "{inside_async:?}");
    let not_last = errors(
        quote!(),
        quote! {
            fn f() {
                serial_test::local_serial_core(vec![""], None, || {});
                after();
            }
        },
    );
    assert!(not_last[0].contains("is not around the whole body"), "{not_last:?}");
}

#[test]
fn async_std_test_is_refused_with_the_form_that_works() {
    let got = errors(quote!(), quote!(#[async_std::test] async fn f() {}));
    assert!(got[0].starts_with("#[async_std::test] puts its #[test] above #[isolated]"), "{got:?}");
}

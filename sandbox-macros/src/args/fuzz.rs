//! Property-based fuzzing of [`parse`] (RELIABILITY.md, "Bad input"), with token streams lexed from
//! generated text and built token by token (which also gives the invisible groups `macro_rules!`
//! wraps around `$x:expr`, that no text lexes to).
//!
//! The number of cases comes from `PROPTEST_CASES` (proptest's default, 256, in a plain
//! `cargo test`); a long run is e.g. `PROPTEST_CASES=200000 cargo test -p test-sandbox-macros --lib
//! args::fuzz --release`.

use super::*;
use proc_macro2::{Delimiter, Group, Ident, Literal, Punct, Spacing, TokenTree};
use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;
use quote::quote;
use std::str::FromStr;

/// Proptest's defaults (and `PROPTEST_CASES`), without writing `proptest-regressions` files
/// into the source tree: a failure found here becomes a plain `#[test]` below instead.
fn config() -> ProptestConfig {
    ProptestConfig { failure_persistence: None, ..ProptestConfig::default() }
}

const KEYS: [&str; 15] = [
    "pids",
    "mem",
    "cpu",
    "timeout",
    "hostname",
    "tmpfs",
    "net",
    "fs",
    "writable",
    "fs_size",
    "host_writes",
    "privileged",
    "expect",
    "require",
    "baseline_tolerance",
];

/// Identifiers: the keys, near misses, the guessed aliases, keywords, junk.
fn ident_text() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        3 => prop::sample::select(KEYS.to_vec()),
        1 => prop::sample::select(vec![
            "Pids", "PIDS", "pids_", "pid", "memory", "cores", "time", "host", "tmp", "network", "expected",
            "foo", "x", "_", "type", "self", "Self", "crate", "super", "fn", "true", "false", "none", "host_name",
            "oom", "N", "r#pids", "r#type", "ü", "日本", "overlay", "layer_size",
        ]),
    ]
}

/// Text of a string's content: what each key accepts, near misses, and anything at all.
fn string_content() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => prop::sample::select(vec![
            "100M", "1G", "4096", "0", "100Q", "-5M", "1.5G", "99999999999999999999G", "16777216T", "5s",
            "500ms", "2m", "1h", "3", "3d", "0s", "box", "box-1.local", "my box", "a_b", "", "none", "host",
            "oom", "pids_limit", "timeout", "cgroup", "rlimit", "/scratch", "/scratch:64M", "/", "//", "/a/../b",
            "rel", "/a:", ":", "/a:1M:2M", "/a\0b", "0.5", "NaN", "inf", "1e400", "20", " 20 ", "-0", ":::",
            "/tmp/", "//a/./b//:1K", "10%+1M", "25%", "0%", "10%+20%", "1.5%", "4M+", "+", "%", "ro", "overlay",
            "overly", "discard", "fail",
        ])
        .prop_map(String::from),
        1 => "\\PC{0,12}",
        1 => any::<String>(),
        1 => "[a-z0-9.-]{60,70}",
    ]
}

/// Text of one value: literals of every kind, expressions, arrays, junk.
fn value_text() -> impl Strategy<Value = String> {
    let literal = prop_oneof![
        string_content().prop_map(|text| Literal::string(&text).to_string()),
        prop::sample::select(vec![
            "0",
            "1",
            "20",
            "-1",
            "4194304",
            "4194305",
            "99999999999999999999",
            "340282366920938463463374607431768211456",
            "0x10",
            "0b101",
            "0o17",
            "1_000",
            "20u64",
            "20usize",
            "300u8",
            "5ms",
            "20i8",
            "20f32",
            "0.5",
            "2.5",
            "-0.5",
            "1e400",
            "1e3",
            "1.5f64",
            "0.5f32",
            "0.5ms",
            "4096.0",
            "4096.5",
            "0.0009",
            "0.001",
            "1e-3",
            "1.",
            "r\"/a\"",
            "r#\"/b:1M\"#",
            "b\"1M\"",
            "c\"1M\"",
            "'a'",
            "b'a'",
            "true",
            "false",
            "'\\0'",
        ])
        .prop_map(String::from),
        (any::<u64>(), prop::sample::select(vec!["", "u64", "i32", "f64", "x", "_u8"]))
            .prop_map(|(n, s)| format!("{n}{s}")),
        any::<f64>().prop_filter("finite", |x| x.is_finite()).prop_map(|x| format!("{x:?}")),
    ];
    let leaf = prop_oneof![
        4 => literal,
        1 => ident_text().prop_map(String::from),
        1 => prop::sample::select(vec!["a::b", "f(1)", "m!(1)", "1..2", "&1", "|x| x", "1 + 2", "{ 1 }", "()", "_"])
            .prop_map(String::from),
    ];
    leaf.prop_recursive(3, 12, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|items| format!("[{}]", items.join(", "))),
            inner.clone().prop_map(|item| format!("({item})")),
            inner.clone().prop_map(|item| format!("-{item}")),
            inner.clone().prop_map(|item| format!("!{item}")),
            (inner.clone(), inner).prop_map(|(a, b)| format!("({a}, {b})")),
        ]
    })
}

/// Text of one argument, mostly `key = value`, sometimes malformed.
fn arg_text() -> impl Strategy<Value = String> {
    let separator = prop::sample::select(vec!["==", ":", "=>", "", "+=", "= =", "::"]);
    prop_oneof![
        30 => (ident_text(), value_text()).prop_map(|(key, value)| format!("{key} = {value}")),
        2 => (ident_text(), separator, value_text()).prop_map(|(key, sep, value)| format!("{key} {sep} {value}")),
        1 => ident_text().prop_map(String::from),
        1 => (ident_text(), value_text()).prop_map(|(key, value)| format!("{key}({value})")),
        1 => (ident_text(), value_text()).prop_map(|(key, value)| format!("a::{key} = {value}")),
        1 => value_text(),
    ]
}

/// Text of a whole argument list.
fn list_text() -> impl Strategy<Value = String> {
    let comma = prop_oneof![
        20 => Just(","),
        1 => prop::sample::select(vec![", ", " , ", ",,", ";", ""]),
    ];
    let tail =
        prop_oneof![9 => prop::sample::select(vec!["", ","]), 1 => prop::sample::select(vec![",,", "#", "$"])];
    (prop::collection::vec((comma, arg_text()), 0..6), tail).prop_map(|(args, tail)| {
        let mut text = String::new();
        for (i, (comma, arg)) in args.into_iter().enumerate() {
            if i > 0 {
                text.push_str(comma);
            }
            text.push_str(&arg);
        }
        text.push_str(tail);
        text
    })
}

/// Token streams built token by token, in every delimiter including the invisible one: random
/// trees, and `key = tree, ...` lists of them, some wrapped in invisible groups.
fn token_stream() -> impl Strategy<Value = TokenStream> {
    let tree = token_tree();
    let arg = (ident_text(), tree.clone(), any::<bool>(), any::<bool>()).prop_map(|(key, value, comma, wrap)| {
        let key = ident(key);
        let value = if wrap { TokenTree::Group(Group::new(Delimiter::None, value.into())) } else { value };
        if comma {
            quote!(#key = #value,)
        } else {
            quote!(#key = #value)
        }
    });
    prop_oneof![
        1 => prop::collection::vec(tree, 0..10).prop_map(|trees| trees.into_iter().collect()),
        3 => prop::collection::vec(arg, 0..6).prop_map(|args| args.into_iter().collect()),
    ]
}

fn ident(name: &str) -> Ident {
    match name.strip_prefix("r#") {
        Some(raw) => Ident::new_raw(raw, Span::call_site()),
        None => Ident::new(name, Span::call_site()),
    }
}

/// One token tree: an identifier, a punctuation mark, a literal of any kind, or a group.
fn token_tree() -> BoxedStrategy<TokenTree> {
    let punct_chars = vec![
        '=', '<', '>', '!', '~', '+', '-', '*', '/', '%', '^', '&', '|', '@', '.', ',', ';', ':', '#', '$', '?',
        '\'',
    ];
    let leaf = prop_oneof![
        3 => ident_text().prop_map(|name| TokenTree::Ident(ident(name))),
        3 => (prop::sample::select(punct_chars), any::<bool>()).prop_map(|(c, joint)| {
            TokenTree::Punct(Punct::new(c, if joint { Spacing::Joint } else { Spacing::Alone }))
        }),
        3 => prop_oneof![
            any::<u64>().prop_map(Literal::u64_unsuffixed),
            any::<i64>().prop_map(Literal::i64_unsuffixed),
            any::<i32>().prop_map(Literal::i32_suffixed),
            any::<u128>().prop_map(Literal::u128_suffixed),
            any::<f64>().prop_filter("finite", |x| x.is_finite()).prop_map(Literal::f64_unsuffixed),
            any::<f32>().prop_filter("finite", |x| x.is_finite()).prop_map(Literal::f32_suffixed),
            string_content().prop_map(|text| Literal::string(&text)),
            any::<Vec<u8>>().prop_map(|bytes| Literal::byte_string(&bytes)),
            any::<char>().prop_map(Literal::character),
        ]
        .prop_map(TokenTree::Literal),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        let delimiter = prop::sample::select(vec![
            Delimiter::None,
            Delimiter::Parenthesis,
            Delimiter::Bracket,
            Delimiter::Brace,
        ]);
        (delimiter, prop::collection::vec(inner, 0..6))
            .prop_map(|(delimiter, trees)| TokenTree::Group(Group::new(delimiter, trees.into_iter().collect())))
    })
    .boxed()
}

/// A valid `key = value` for every key, as tokens.
fn valid_arg() -> impl Strategy<Value = (&'static str, TokenStream)> {
    prop_oneof![
        (1..=MAX_PIDS).prop_map(|n| ("pids", quote!(pids = #n))),
        (1u64..1 << 20, prop::sample::select(vec!["", "K", "M", "G"])).prop_map(|(n, unit)| {
            let text = format!("{n}{unit}");
            ("mem", quote!(mem = #text))
        }),
        (MIN_CPU_CORES..=MAX_CPU_CORES).prop_map(|x| {
            let x = Literal::f64_unsuffixed(x);
            ("cpu", quote!(cpu = #x))
        }),
        (1u64..100_000, prop::sample::select(vec!["ms", "s", "m", "h"])).prop_map(|(n, unit)| {
            let text = format!("{n}{unit}");
            ("timeout", quote!(timeout = #text))
        }),
        "[a-zA-Z0-9.-]{1,64}".prop_map(|name| ("hostname", quote!(hostname = #name))),
        prop::collection::vec("(/[a-z]{1,5}){1,3}(:[1-9][0-9]{0,3}[KM]?)?", 0..3)
            .prop_map(|paths| ("tmpfs", quote!(tmpfs = [#(#paths),*]))),
        prop::sample::select(vec!["none", "host"]).prop_map(|mode| ("net", quote!(net = #mode))),
        prop::sample::select(vec!["host", "ro", "overlay"]).prop_map(|mode| ("fs", quote!(fs = #mode))),
        Just(("host_writes", quote!(host_writes = "discard"))),
        Just(("require", quote!(require = "cgroup"))),
        any::<bool>().prop_map(|flag| ("privileged", quote!(privileged = #flag))),
    ]
}

/// Args as an attribute again: what `parse` must read back unchanged.
fn render(args: &Args) -> TokenStream {
    let mut parts = Vec::new();
    if let Some(pids) = args.pids {
        let pids = Literal::u64_unsuffixed(pids);
        parts.push(quote!(pids = #pids));
    }
    if let Some(bytes) = args.mem_bytes {
        let text = bytes.to_string();
        parts.push(quote!(mem = #text));
    }
    if let Some(cores) = args.cpu_cores {
        let cores = Literal::f64_unsuffixed(cores);
        parts.push(quote!(cpu = #cores));
    }
    if let Some(millis) = args.timeout_ms {
        let text = format!("{millis}ms");
        parts.push(quote!(timeout = #text));
    }
    if let Some(name) = &args.hostname {
        parts.push(quote!(hostname = #name));
    }
    if !args.tmpfs.is_empty() {
        let specs = args.tmpfs.iter().map(|tmpfs| match tmpfs.size_bytes {
            Some(bytes) => format!("{}:{bytes}", tmpfs.path),
            None => tmpfs.path.clone(),
        });
        parts.push(quote!(tmpfs = [#(#specs),*]));
    }
    if args.net == Net::None {
        parts.push(quote!(net = "none"));
    }
    let fs = match args.fs {
        Fs::Host => None,
        Fs::ReadOnly => Some("ro"),
        Fs::Overlay => Some("overlay"),
    };
    if let Some(fs) = fs {
        parts.push(quote!(fs = #fs));
    }
    if !args.writable.is_empty() {
        let paths = &args.writable;
        parts.push(quote!(writable = [#(#paths),*]));
    }
    if let Some(bytes) = args.fs_size {
        let text = bytes.to_string();
        parts.push(quote!(fs_size = #text));
    }
    if args.host_writes == HostWrites::Fail {
        parts.push(quote!(host_writes = "fail"));
    }
    if args.privileged {
        parts.push(quote!(privileged = true));
    }
    let expect = match args.expect {
        Expect::Success => None,
        Expect::Oom => Some("oom"),
        Expect::PidsLimit => Some("pids_limit"),
        Expect::Timeout => Some("timeout"),
    };
    if let Some(expect) = expect {
        parts.push(quote!(expect = #expect));
    }
    if args.require_cgroup {
        parts.push(quote!(require = "cgroup"));
    }
    if let Some(tolerance) = args.baseline_tolerance {
        let text = match tolerance.bytes {
            0 => format!("{}%", tolerance.percent),
            bytes => format!("{}%+{bytes}B", tolerance.percent),
        };
        parts.push(quote!(baseline_tolerance = #text));
    }
    quote!(#(#parts),*)
}

/// What every accepted attribute satisfies, whatever was written.
fn check_accepted(args: &Args, tokens: &TokenStream) -> Result<(), TestCaseError> {
    prop_assert!(args.pids.is_none_or(|pids| (1..=MAX_PIDS).contains(&pids)), "{:?}", args);
    prop_assert!(args.mem_bytes.is_none_or(|bytes| bytes > 0), "{:?}", args);
    prop_assert!(
        args.cpu_cores.is_none_or(|cores| cores.is_finite() && (MIN_CPU_CORES..=MAX_CPU_CORES).contains(&cores)),
        "{:?}",
        args
    );
    prop_assert!(args.timeout_ms.is_none_or(|millis| millis > 0), "{:?}", args);
    if let Some(name) = &args.hostname {
        prop_assert!((1..=MAX_HOSTNAME_LEN).contains(&name.len()), "{:?}", args);
        prop_assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-'), "{:?}", args);
    }
    for tmpfs in &args.tmpfs {
        let path = &tmpfs.path;
        prop_assert!(path.starts_with('/') && path.len() > 1 && !path.ends_with('/'), "{:?}", tmpfs);
        prop_assert!(!path.contains(['\0', ':']) && !path.contains("//"), "{:?}", tmpfs);
        prop_assert!(path.split('/').skip(1).all(|part| part != "." && part != ".."), "{:?}", tmpfs);
        prop_assert!(tmpfs.size_bytes.is_none_or(|bytes| bytes > 0), "{:?}", tmpfs);
    }
    for path in &args.writable {
        prop_assert!(path.starts_with('/') && !path.contains('\0'), "{:?}", args);
        prop_assert!(path.split('/').all(|part| part != ".."), "{:?}", args);
    }
    prop_assert!(args.writable.is_empty() || args.fs != Fs::Host, "{:?}", args);
    prop_assert!(args.fs_size.is_none_or(|bytes| bytes > 0), "{:?}", args);
    if args.fs_size.is_some() || args.host_writes == HostWrites::Fail {
        prop_assert_eq!(args.fs, Fs::Overlay, "{:?}", args);
    }
    match args.expect {
        Expect::Success => {}
        Expect::Oom => prop_assert!(args.mem_bytes.is_some(), "{:?}", args),
        Expect::PidsLimit => prop_assert!(args.pids.is_some(), "{:?}", args),
        Expect::Timeout => prop_assert!(args.timeout_ms.is_some(), "{:?}", args),
    }
    // Written back out, it reads the same.
    let again = render(args);
    let reread = parse(again.clone()).ok();
    prop_assert_eq!(reread.as_ref(), Some(args), "`{}` → `{}`", tokens, again);
    Ok(())
}

/// What every rejection satisfies. A syntax error (the list does not even split into
/// `key = expression` arguments) is syn's single message, spanned at the offending token, which
/// the compiler shows: "expected `,`", "expected an expression", also the rarer "number too
/// large to fit in target type" of `pids = S { 4294967296 }`; unless it is one of ours (a name
/// or a `=` missing), only its being a compile error is checked. Every other message is
/// `#[isolated]`'s own: it names the argument or the value and says what to write instead.
fn check_rejected(err: &syn::Error, tokens: &TokenStream) -> Result<(), TestCaseError> {
    let fixes = [
        "e.g.",
        "valid arguments are",
        "valid values are",
        "the only one is",
        "give each argument once",
        "remove it",
        "write the path without it",
        "write it without quotes",
    ];
    let messages: Vec<String> = err.clone().into_iter().map(|err| err.to_string()).collect();
    let syntax = Punctuated::<Arg, Token![,]>::parse_terminated.parse2(tokens.clone()).is_err();
    if syntax {
        prop_assert_eq!(messages.len(), 1, "`{}`", tokens);
    }
    for message in messages {
        prop_assert!(!message.is_empty(), "empty message for `{}`", tokens);
        let ours =
            !syntax || message.starts_with("expected an argument name") || message.starts_with("expected `=`");
        if ours {
            prop_assert!(fixes.iter().any(|fix| message.contains(fix)), "`{}`: no fix in {:?}", tokens, message);
            prop_assert!(message.contains(['`', '\'', '"']), "`{}`: names nothing: {:?}", tokens, message);
        }
    }
    Ok(())
}

fn check(tokens: TokenStream) -> Result<(), TestCaseError> {
    match parse(tokens.clone()) {
        Ok(args) => check_accepted(&args, &tokens),
        Err(err) => check_rejected(&err, &tokens),
    }
}

/// The single value `key = value` gives, or the error.
fn one(tokens: TokenStream) -> Result<Args, String> {
    parse(tokens).map_err(|err| err.to_string())
}

proptest! {
    #![proptest_config(config())]

    /// Generated text, lexed: no panic; accepted attributes are consistent and read back the
    /// same; every error names its cause and the fix.
    #[test]
    fn text_attributes(text in list_text()) {
        if let Ok(tokens) = TokenStream::from_str(&text) {
            check(tokens)?;
        }
    }

    /// Token streams built directly, invisible groups included: the same.
    #[test]
    fn token_attributes(tokens in token_stream()) {
        check(tokens)?;
    }

    /// Valid arguments in any order, with a trailing comma or not, mean the same; wrapping every
    /// value in an invisible group (as `macro_rules!` does) changes nothing.
    #[test]
    fn valid_arguments_in_any_order(
        args in prop::collection::vec(valid_arg(), 0..8),
        seed in any::<u64>(),
        trailing in any::<bool>(),
    ) {
        let mut unique: Vec<(&str, TokenStream)> = Vec::new();
        for (key, tokens) in args {
            if !unique.iter().any(|(seen, _)| *seen == key) {
                unique.push((key, tokens));
            }
        }
        let list = |items: &[(&str, TokenStream)]| {
            let items = items.iter().map(|(_, tokens)| tokens);
            if trailing { quote!(#(#items,)*) } else { quote!(#(#items),*) }
        };
        let expected =
            parse(list(&unique)).map_err(|err| TestCaseError::fail(format!("{}: {err}", list(&unique))))?;
        check_accepted(&expected, &list(&unique))?;
        let mut shuffled = unique.clone();
        let mut state = seed;
        for i in (1..shuffled.len()).rev() {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            shuffled.swap(i, (state >> 33) as usize % (i + 1));
        }
        prop_assert_eq!(parse(list(&shuffled)).ok(), Some(expected.clone()));
        let wrapped: Vec<(&str, TokenStream)> = unique
            .iter()
            .map(|(key, tokens)| {
                let mut trees: Vec<TokenTree> = tokens.clone().into_iter().collect();
                let value: TokenStream = trees.split_off(2).into_iter().collect();
                trees.push(TokenTree::Group(Group::new(Delimiter::None, value)));
                (*key, trees.into_iter().collect())
            })
            .collect();
        prop_assert_eq!(parse(list(&wrapped)).ok(), Some(expected));
    }

    /// A key given twice is an error naming it, whatever the values.
    #[test]
    fn duplicated_keys(
        args in prop::collection::vec(valid_arg(), 1..6),
        again in any::<prop::sample::Index>(),
        value in value_text(),
    ) {
        let (key, _) = args[again.index(args.len())];
        // A syntax error stops parsing before any key is looked at.
        let Ok(value) = TokenStream::from_str(&value) else { return Ok(()) };
        if syn::parse2::<Expr>(value.clone()).is_err() {
            return Ok(());
        }
        let ident = Ident::new(key, Span::call_site());
        let items = args.iter().map(|(_, tokens)| tokens);
        let tokens = quote!(#(#items,)* #ident = #value);
        let err = parse(tokens.clone()).expect_err("a duplicate was accepted");
        let messages: Vec<String> = err.into_iter().map(|err| err.to_string()).collect();
        let duplicate = format!("duplicate argument `{key}`; give each argument once");
        prop_assert!(messages.contains(&duplicate), "`{}`: {:?}", tokens, messages);
    }

    /// One bad argument is one error, however many there are: all are reported together.
    #[test]
    fn every_bad_argument_is_reported(bad in prop::sample::subsequence(vec![
        quote!(pids = 0), quote!(mem = "1Q"), quote!(cpu = 0), quote!(timeout = "3"), quote!(hostname = "a b"),
        quote!(tmpfs = "rel"), quote!(net = "wifi"), quote!(expect = "boom"), quote!(require = "x"),
        quote!(fs = "overly"), quote!(fs_size = "1Q"), quote!(host_writes = "maybe"), quote!(privileged = "yes"),
    ], 1..=13), good in prop::collection::vec(valid_arg(), 0..3)) {
        // Valid arguments of other keys, each once, mixed in.
        let mut keys: Vec<String> =
            bad.iter().map(|tokens| tokens.to_string().split(' ').next().unwrap().into()).collect();
        let mut mixed = Vec::new();
        for (key, tokens) in good {
            if !keys.iter().any(|seen| seen == key) {
                keys.push(key.into());
                mixed.push(tokens);
            }
        }
        let tokens = quote!(#(#bad,)* #(#mixed),*);
        let err = parse(tokens.clone()).expect_err("bad arguments were accepted");
        prop_assert_eq!(err.into_iter().count(), bad.len(), "{}", tokens);
    }

    /// `pids`, `cpu`, `mem`, `fs_size`, `fs`, `host_writes`, `timeout`, `tmpfs` and `hostname` accept exactly
    /// what the CLI's `--pids`, `--cpu`, `--mem`, `--fs-size`, `--fs` (and `SANDBOX_FS`),
    /// `--host-writes`, `--timeout`, `--tmpfs` and `--hostname` accept, with the same values, so that a test and a
    /// command line mean the same.
    #[test]
    fn agrees_with_the_cli(
        text in string_content(),
        number in prop_oneof![any::<u64>(), 0..10u64, (MAX_PIDS - 2)..=(MAX_PIDS + 2)],
    ) {
        let cli = sandbox::config::parse_pids(&number.to_string()).ok();
        let number_literal = Literal::u64_unsuffixed(number);
        prop_assert_eq!(one(quote!(pids = #number_literal)).ok().and_then(|args| args.pids), cli);
        let cli = sandbox::config::parse_cpu(&text).ok();
        prop_assert_eq!(one(quote!(cpu = #text)).ok().and_then(|args| args.cpu_cores), cli);
        let cli = sandbox::units::parse_size(&text).ok();
        prop_assert_eq!(one(quote!(mem = #text)).ok().and_then(|args| args.mem_bytes), cli);
        prop_assert_eq!(one(quote!(fs = "overlay", fs_size = #text)).ok().and_then(|args| args.fs_size), cli);
        let fs = one(quote!(fs = #text)).ok().map(|args| match args.fs {
            Fs::Host => sandbox::FsMode::Host,
            Fs::ReadOnly => sandbox::FsMode::ReadOnly,
            Fs::Overlay => sandbox::FsMode::Overlay,
        });
        prop_assert_eq!(fs, sandbox::FsMode::parse(&text));
        let host_writes = one(quote!(fs = "overlay", host_writes = #text)).ok().map(|args| match args.host_writes {
            HostWrites::Discard => sandbox::HostWrites::Discard,
            HostWrites::Fail => sandbox::HostWrites::Fail,
        });
        prop_assert_eq!(host_writes, sandbox::HostWrites::parse(&text));
        let cli = sandbox::units::parse_duration(&text).ok().map(|d| d.as_millis() as u64);
        prop_assert_eq!(one(quote!(timeout = #text)).ok().and_then(|args| args.timeout_ms), cli);
        let cli = sandbox::config::parse_tmpfs(&text)
            .ok()
            .map(|mount| Tmpfs { path: mount.path.to_string_lossy().into_owned(), size_bytes: mount.size_bytes });
        prop_assert_eq!(one(quote!(tmpfs = #text)).ok().map(|args| args.tmpfs), cli.map(|mount| vec![mount]));
        let config = sandbox::Config { hostname: text.clone(), ..sandbox::Config::default() };
        let cli = config.validate().ok().map(|()| text.clone());
        prop_assert_eq!(one(quote!(hostname = #text)).ok().and_then(|args| args.hostname), cli);
    }
}

/// What fuzzing found, kept as plain tests.
#[test]
fn found_by_fuzzing() {
    // A NUL byte in a tmpfs path compiled, and panicked at run time in the mount plan.
    assert_eq!(
        one(quote!(tmpfs = "/a\0b")).unwrap_err(),
        "tmpfs path \"/a\\0b\" contains a NUL byte, which no path can; remove it"
    );
    // A pids limit the kernel refuses compiled, and ran under the rlimit fallback.
    assert_eq!(one(quote!(pids = 4194304)).unwrap().pids, Some(4_194_304));
    assert!(one(quote!(pids = 4194305))
        .unwrap_err()
        .starts_with("`pids = 4194305` is too large: the kernel allows at most 4194304 processes in a cgroup; "));
    // syn's bare "expected identifier" / "expected `,`" did not say what to write.
    let valid = "valid arguments are: pids, mem, cpu, timeout, hostname, tmpfs, net, fs, writable, fs_size, host_writes, privileged, expect, require, baseline_tolerance, crate";
    assert_eq!(
        one(quote!("pids" = 1)).unwrap_err(),
        format!("expected an argument name, e.g. `pids = 20`; {valid} (write `pids` without quotes)")
    );
    assert_eq!(one(quote!(= 1)).unwrap_err(), format!("expected an argument name, e.g. `pids = 20`; {valid}"));
    assert_eq!(
        one(quote!(pids = 1,, mem = "1M")).unwrap_err(),
        format!("expected an argument name, e.g. `pids = 20`; {valid}")
    );
    assert_eq!(
        one(quote!(mem: "1M")).unwrap_err(),
        "expected `=` after `mem`: write arguments as `key = value`, e.g. `mem = \"100M\"`"
    );
    assert_eq!(
        one(quote!(pids 20)).unwrap_err(),
        "expected `=` after `pids`: write arguments as `key = value`, e.g. `pids = 20`"
    );
    // `«pids» «()»`, as a macro_rules! macro passes them on: "expected group token".
    let invisible = |tokens: TokenStream| TokenTree::Group(Group::new(Delimiter::None, tokens));
    let tokens: TokenStream = [invisible(quote!(pids)), invisible(quote!(()))].into_iter().collect();
    assert_eq!(one(tokens).unwrap_err(), "write `pids` as `key = value`, e.g. `pids = 20`");
}

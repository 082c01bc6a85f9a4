//! Unit tests of `args`.

use super::*;
use quote::quote;

fn ok(tokens: TokenStream) -> Args {
    parse(tokens.clone()).unwrap_or_else(|err| panic!("`{tokens}` was rejected: {err}"))
}

/// Every message of the error (combined errors give several).
fn errs(tokens: TokenStream) -> Vec<String> {
    match parse(tokens.clone()) {
        Ok(args) => panic!("`{tokens}` was accepted: {args:?}"),
        Err(err) => err.into_iter().map(|err| err.to_string()).collect(),
    }
}

/// The single error message.
fn err(tokens: TokenStream) -> String {
    let errs = errs(tokens);
    assert_eq!(errs.len(), 1, "{errs:?}");
    errs.into_iter().next().unwrap()
}

#[test]
fn no_arguments_is_the_default() {
    assert_eq!(ok(quote!()), Args::default());
    assert_eq!(ok(quote!()).net, Net::Host);
    assert_eq!(ok(quote!()).expect, Expect::Success);
}

#[test]
fn every_key() {
    let args = ok(quote!(
        pids = 20,
        mem = "100M",
        cpu = 0.5,
        timeout = "5s",
        hostname = "box-1.local",
        tmpfs = ["/scratch", "/data:1M"],
        net = "none",
        fs = "overlay",
        writable = "/srv/cache",
        fs_size = "64M",
        host_writes = "fail",
        privileged = true,
        expect = "oom",
        require = "cgroup",
        baseline_tolerance = "25%+4M",
        crate = "::reexports::sandbox",
    ));
    assert_eq!(
        args,
        Args {
            pids: Some(20),
            mem_bytes: Some(100 << 20),
            cpu_cores: Some(0.5),
            timeout_ms: Some(5000),
            hostname: Some("box-1.local".into()),
            tmpfs: vec![
                Tmpfs { path: "/scratch".into(), size_bytes: None },
                Tmpfs { path: "/data".into(), size_bytes: Some(1 << 20) },
            ],
            net: Net::None,
            fs: Fs::Overlay,
            writable: vec!["/srv/cache".into()],
            fs_size: Some(64 << 20),
            host_writes: HostWrites::Fail,
            privileged: true,
            expect: Expect::Oom,
            require_cgroup: true,
            baseline_tolerance: Some(sandbox_units::Tolerance { percent: 25, bytes: 4 << 20 }),
            krate: Some(CratePath { path: syn::parse_quote!(::reexports::sandbox) }),
        }
    );
}

#[test]
fn parses_with_syn_parse_quote_and_parse_str() {
    let attr: syn::Attribute = syn::parse_quote!(#[isolated(pids = 3, net = "host")]);
    let syn::Meta::List(list) = attr.meta else { panic!("not a list") };
    let args = ok(list.tokens);
    assert_eq!(args.pids, Some(3));
    assert_eq!(args.net, Net::Host);
    let tokens: TokenStream = syn::parse_str(r#"timeout = "250ms", expect = "timeout""#).unwrap();
    assert_eq!(ok(tokens).timeout_ms, Some(250));
}

#[test]
fn pids() {
    assert_eq!(ok(quote!(pids = 1)).pids, Some(1));
    assert_eq!(ok(quote!(pids = 20u64)).pids, Some(20));
    assert_eq!(ok(quote!(pids = 1_000)).pids, Some(1000));
    assert_eq!(ok(quote!(pids = (7))).pids, Some(7));
    let rule = "`pids` must be a whole number of at least 1, e.g. `pids = 20`";
    assert_eq!(
        err(quote!(pids = 0)),
        format!("{rule}: with `pids = 0` not even the test process could start")
    );
    assert_eq!(err(quote!(pids = -1)), format!("{rule}, not a negative number"));
    assert_eq!(err(quote!(pids = -(1))), format!("{rule}, not a negative number"));
    assert_eq!(err(quote!(pids = 2.5)), format!("{rule}, not a fraction"));
    assert_eq!(
        err(quote!(pids = "20")),
        "`pids` takes an integer, not a string; write it without quotes: `pids = 20`"
    );
    assert_eq!(err(quote!(pids = "many")), format!("`pids` takes an integer, not a string; {rule}"));
    assert_eq!(err(quote!(pids = N)), rule);
    assert_eq!(
        err(quote!(pids = 99999999999999999999)),
        format!("`pids = 99999999999999999999` is too large; {rule}")
    );
    assert_eq!(err(quote!(pids = 5ms)), "unexpected suffix `ms`; write a plain number, e.g. `pids = 20`");
}

#[test]
fn mem() {
    assert_eq!(ok(quote!(mem = "4096")).mem_bytes, Some(4096));
    assert_eq!(ok(quote!(mem = "1G")).mem_bytes, Some(1 << 30));
    assert_eq!(
        err(quote!(mem = "100Q")),
        "invalid size '100Q': unknown unit; write a whole number with an optional unit \
         K, M, G or T (powers of 1024), e.g. 100M or 1G"
    );
    assert!(err(quote!(mem = "0")).starts_with("invalid size '0': it must be greater than zero;"));
    assert_eq!(err(quote!(mem = 100)), "`mem` takes a string: a size with a unit, e.g. `mem = \"100M\"`");
}

#[test]
fn cpu() {
    assert_eq!(ok(quote!(cpu = 0.5)).cpu_cores, Some(0.5));
    assert_eq!(ok(quote!(cpu = 2)).cpu_cores, Some(2.0));
    assert_eq!(ok(quote!(cpu = 1.5f64)).cpu_cores, Some(1.5));
    assert_eq!(ok(quote!(cpu = "0.25")).cpu_cores, Some(0.25));
    assert_eq!(ok(quote!(cpu = 4096)).cpu_cores, Some(4096.0));
    assert_eq!(ok(quote!(cpu = 0.001)).cpu_cores, Some(0.001));
    let rule = "`cpu` must be a number of cores from 0.001 to 4096, e.g. `cpu = 0.5` or `cpu = 2`";
    assert_eq!(err(quote!(cpu = 0.0009)), rule);
    assert_eq!(err(quote!(cpu = 0)), rule);
    assert_eq!(err(quote!(cpu = 0.0)), rule);
    assert_eq!(err(quote!(cpu = -1)), rule);
    assert_eq!(err(quote!(cpu = 4097)), rule);
    assert_eq!(err(quote!(cpu = "NaN")), rule);
    assert_eq!(err(quote!(cpu = "inf")), rule);
    assert_eq!(err(quote!(cpu = "half")), format!("`cpu = \"half\"` is not a number; {rule}"));
    assert_eq!(err(quote!(cpu = 0.5ms)), format!("{rule}; remove the suffix `ms`"));
}

#[test]
fn timeout() {
    assert_eq!(ok(quote!(timeout = "500ms")).timeout_ms, Some(500));
    assert_eq!(ok(quote!(timeout = "2m")).timeout_ms, Some(120_000));
    assert_eq!(ok(quote!(timeout = "1h")).timeout_ms, Some(3_600_000));
    assert_eq!(
        err(quote!(timeout = "3")),
        "invalid duration '3': the unit is missing; write a whole number with a unit \
         ms, s, m or h, e.g. 500ms, 3s or 2m"
    );
    assert!(err(quote!(timeout = "3d")).starts_with("invalid duration '3d': unknown unit;"));
    assert_eq!(
        err(quote!(timeout = 5)),
        "`timeout` takes a string: a duration with a unit, e.g. `timeout = \"5s\"`"
    );
}

#[test]
fn hostname() {
    assert_eq!(ok(quote!(hostname = "a")).hostname.as_deref(), Some("a"));
    let longest = "h".repeat(64);
    assert_eq!(ok(quote!(hostname = #longest)).hostname, Some(longest));
    let rule =
        "a hostname is 1 to 64 characters of A-Z, a-z, 0-9, `.` and `-`, e.g. `hostname = \"box\"`";
    assert_eq!(err(quote!(hostname = "")), format!("invalid hostname \"\": it is empty; {rule}"));
    let long = "h".repeat(65);
    assert_eq!(
        err(quote!(hostname = #long)),
        format!("invalid hostname \"{long}\": it is 65 characters long; {rule}")
    );
    assert_eq!(
        err(quote!(hostname = "my box")),
        format!("invalid hostname \"my box\": it contains ' '; {rule}")
    );
    assert_eq!(
        err(quote!(hostname = "a_b")),
        format!("invalid hostname \"a_b\": it contains '_'; {rule}")
    );
    assert_eq!(
        err(quote!(hostname = my_box)),
        "`hostname` takes a string: a host name, e.g. `hostname = \"box\"`"
    );
}

#[test]
fn tmpfs() {
    let mount = |path: &str, size_bytes| Tmpfs { path: path.into(), size_bytes };
    assert_eq!(ok(quote!(tmpfs = "/scratch")).tmpfs, [mount("/scratch", None)]);
    assert_eq!(ok(quote!(tmpfs = "/scratch:64M")).tmpfs, [mount("/scratch", Some(64 << 20))]);
    assert_eq!(ok(quote!(tmpfs = ["/a", "/b:1K"])).tmpfs, [mount("/a", None), mount("/b", Some(1024))]);
    assert_eq!(ok(quote!(tmpfs = [])).tmpfs, []);
    assert_eq!(ok(quote!(tmpfs = "/tmp/")).tmpfs, [mount("/tmp", None)]);
    assert_eq!(ok(quote!(tmpfs = "//a/./b//:1K")).tmpfs, [mount("/a/b", Some(1024))]);
    assert!(err(quote!(tmpfs = "/a:1M:2M")).starts_with("invalid size '1M:2M': unknown unit;"));
    assert_eq!(
        err(quote!(tmpfs = "scratch")),
        "tmpfs path \"scratch\" is not absolute; write e.g. `tmpfs = \"/scratch\"`"
    );
    assert_eq!(
        err(quote!(tmpfs = "/a/../etc")),
        "tmpfs path \"/a/../etc\" contains `..`; write the path without it"
    );
    assert_eq!(
        err(quote!(tmpfs = "/")),
        "a tmpfs over `/` would hide the whole file system; mount it on a directory, e.g. \"/scratch\""
    );
    assert!(err(quote!(tmpfs = "/a:1Q")).starts_with("invalid size '1Q': unknown unit;"));
    assert!(err(quote!(tmpfs = "/a:")).starts_with("invalid size '': it is empty;"));
    let rule = "`tmpfs` takes \"PATH\" or \"PATH:SIZE\", or a list of them, \
                e.g. `tmpfs = \"/scratch:64M\"` or `tmpfs = [\"/a\", \"/b:1M\"]`";
    assert_eq!(err(quote!(tmpfs = 64)), rule);
    // Every bad element is reported.
    assert_eq!(
        errs(quote!(tmpfs = ["a", "/ok", 1])),
        ["tmpfs path \"a\" is not absolute; write e.g. `tmpfs = \"/scratch\"`", rule]
    );
}

#[test]
fn require() {
    assert!(ok(quote!(require = "cgroup")).require_cgroup);
    assert!(!ok(quote!()).require_cgroup);
    assert!(err(quote!(require = "rlimit")).starts_with("unknown requirement \"rlimit\"; the only one is \"cgroup\""));
}

#[test]
fn net() {
    assert_eq!(ok(quote!(net = "none")).net, Net::None);
    assert_eq!(ok(quote!(net = "host")).net, Net::Host);
    assert_eq!(
        err(quote!(net = "wifi")),
        "unknown network mode \"wifi\"; valid values are \"none\" (only loopback) and \"host\""
    );
    assert_eq!(
        err(quote!(net = none)),
        "`net` takes a string: \"none\" or \"host\", e.g. `net = \"none\"`"
    );
}

#[test]
fn expect() {
    assert_eq!(ok(quote!(mem = "10M", expect = "oom")).expect, Expect::Oom);
    assert_eq!(ok(quote!(expect = "pids_limit", pids = 5)).expect, Expect::PidsLimit);
    assert_eq!(ok(quote!(timeout = "1s", expect = "timeout")).expect, Expect::Timeout);
    assert_eq!(
        err(quote!(expect = "boom")),
        "unknown expectation \"boom\"; valid values are \"oom\", \"pids_limit\" and \"timeout\" \
         (leave `expect` out for a test that must succeed)"
    );
    assert_eq!(
        err(quote!(expect = oom)),
        "`expect` takes a string: \"oom\", \"pids_limit\" or \"timeout\", e.g. `expect = \"oom\"`"
    );
}

#[test]
fn expect_needs_its_limit() {
    assert_eq!(
        err(quote!(expect = "oom")),
        "`expect = \"oom\"` needs a memory limit to exceed: add `mem`, e.g. \
         `#[isolated(mem = \"64M\", expect = \"oom\")]`"
    );
    assert_eq!(
        err(quote!(mem = "1G", expect = "pids_limit")),
        "`expect = \"pids_limit\"` needs a pids limit to hit: add `pids`, e.g. \
         `#[isolated(pids = 16, expect = \"pids_limit\")]`"
    );
    assert_eq!(
        err(quote!(pids = 3, expect = "timeout")),
        "`expect = \"timeout\"` needs a timeout to fire: add `timeout`, e.g. \
         `#[isolated(timeout = \"1s\", expect = \"timeout\")]`"
    );
    // A limit that was given but rejected counts as given: only its own error is shown.
    assert_eq!(errs(quote!(mem = "100Q", expect = "oom")).len(), 1);
}

#[test]
fn unknown_and_duplicate_keys() {
    let valid = "valid arguments are: pids, mem, cpu, timeout, hostname, tmpfs, net, fs, writable, fs_size, host_writes, privileged, expect, require, baseline_tolerance, crate";
    assert_eq!(err(quote!(foo = 1)), format!("unknown argument `foo`; {valid}"));
    assert_eq!(
        err(quote!(memory = "1M")),
        format!("unknown argument `memory`; {valid} (did you mean `mem`?)")
    );
    assert_eq!(err(quote!(a::pids = 1)), format!("unknown argument `a::pids`; {valid}"));
    assert_eq!(err(quote!(pids = 1, pids = 2)), "duplicate argument `pids`; give each argument once");
    assert_eq!(
        errs(quote!(pids = 0, pids = 2)),
        [err(quote!(pids = 0)), "duplicate argument `pids`; give each argument once".into()],
    );
}

#[test]
fn malformed_arguments() {
    assert_eq!(err(quote!(pids)), "`pids` needs a value, e.g. `pids = 20`");
    assert_eq!(err(quote!(mem("1M"))), "write `mem` as `key = value`, e.g. `mem = \"100M\"`");
    assert_eq!(
        err(quote!(tmpfs["/a"])),
        "write `tmpfs` as `key = value`, e.g. `tmpfs = \"/scratch:64M\"`"
    );
    assert_eq!(err(quote!(pids = 1 mem = "1M")), "expected `,`");
    assert_eq!(err(quote!(pids = )), "unexpected end of input, expected an expression");
    assert!(parse(quote!("pids")).is_err());
    let valid = "valid arguments are: pids, mem, cpu, timeout, hostname, tmpfs, net, fs, writable, fs_size, host_writes, privileged, expect, require, baseline_tolerance, crate";
    assert_eq!(err(quote!(type = 1)), format!("unknown argument `type`; {valid}"));
}

#[test]
fn all_errors_are_reported() {
    assert_eq!(
        errs(quote!(foo = 1, pids = 0, net = "wifi")),
        [
            "unknown argument `foo`; valid arguments are: pids, mem, cpu, timeout, hostname, tmpfs, net, fs, writable, fs_size, host_writes, privileged, expect, require, baseline_tolerance, crate",
            "`pids` must be a whole number of at least 1, e.g. `pids = 20`: with `pids = 0` not even the test \
             process could start",
            "unknown network mode \"wifi\"; valid values are \"none\" (only loopback) and \"host\"",
        ]
    );
}

#[test]
fn file_system_mode_and_writable_paths() {
    let args = parse(quote!(fs = "ro", writable = ["/srv/a", "/srv/b"])).unwrap();
    assert_eq!((args.fs, args.writable), (Fs::ReadOnly, vec!["/srv/a".to_string(), "/srv/b".to_string()]));
    assert_eq!(parse(quote!(fs = "host")).unwrap().fs, Fs::Host);
    assert_eq!(parse(quote!(writable = "/srv", fs = "ro")).unwrap().writable, ["/srv"]);
    let message = |tokens| parse(tokens).unwrap_err().to_string();
    assert!(message(quote!(fs = "overly")).starts_with("unknown file-system mode \"overly\"; valid values are \"ro\""));
    assert!(message(quote!(writable = "/srv")).starts_with("`writable` names paths written straight to the host under `fs = \"ro\"` or `fs = \"overlay\"`"));
    assert!(message(quote!(fs = "ro", writable = "srv")).starts_with("invalid writable path \"srv\": it is not absolute"));
    assert!(message(quote!(fs = "ro", writable = "/a/../b")).contains("it contains `..`"));
    assert!(message(quote!(fs = "ro", writable = 3)).starts_with("`writable` takes an absolute path"));
    assert!(message(quote!(readonly = true)).contains("`fs"), "{}", message(quote!(readonly = true)));
}

#[test]
fn overlay_and_its_keys() {
    let args = ok(quote!(fs = "overlay", writable = "/srv", fs_size = "32M", host_writes = "fail"));
    assert_eq!(
        (args.fs, args.writable, args.fs_size, args.host_writes),
        (Fs::Overlay, vec!["/srv".to_string()], Some(32 << 20), HostWrites::Fail)
    );
    assert_eq!(ok(quote!(fs = "overlay")).host_writes, HostWrites::Discard);
    // "discard" is what every other mode does anyway.
    assert_eq!(ok(quote!(host_writes = "discard")).host_writes, HostWrites::Discard);
    assert_eq!(
        err(quote!(fs = "overly")),
        "unknown file-system mode \"overly\"; valid values are \"ro\" (every host mount read-only but the \
         `writable` paths), \"overlay\" (the host's files behind a copy-on-write layer: left unchanged, the \
         test's changes listed) and \"host\" (the default)"
    );
    assert_eq!(
        err(quote!(fs = "overlay", fs_size = "32Q")),
        "invalid size '32Q': unknown unit; write a whole number with an optional unit K, M, G or T \
         (powers of 1024), e.g. 100M or 1G"
    );
    assert_eq!(err(quote!(fs = "overlay", fs_size = 32)), "`fs_size` takes a string: a size with a unit, e.g. `fs_size = \"64M\"`");
    assert_eq!(
        err(quote!(fs = "overlay", host_writes = "maybe")),
        "unknown `host_writes` value \"maybe\"; valid values are \"discard\" (the changes thrown away and \
         listed, the default) and \"fail\" (a change to the host's files fails the test)"
    );
    assert_eq!(
        err(quote!(fs = "ro", fs_size = "32M")),
        "`fs_size` bounds the copy-on-write layer of `fs = \"overlay\"`: add it, \
         e.g. `#[isolated(fs = \"overlay\", fs_size = \"64M\")]`"
    );
    assert_eq!(
        err(quote!(host_writes = "fail")),
        "`host_writes = \"fail\"` fails a test that changed the host's files, which only `fs = \"overlay\"` \
         sees: add it, e.g. `#[isolated(fs = \"overlay\", host_writes = \"fail\")]`"
    );
    // Every key that needs a mode it lacks is reported, with the expectation that needs a limit.
    assert_eq!(errs(quote!(writable = "/srv", fs_size = "1M", host_writes = "fail", expect = "oom")).len(), 4);
    assert!(err(quote!(layer_size = "1M")).ends_with("(did you mean `fs_size`?)"));
    assert!(err(quote!(host_write = "fail")).ends_with("(did you mean `host_writes`?)"));
    assert!(err(quote!(overlay = true)).ends_with("(did you mean `fs`?)"));
}

#[test]
fn privileged() {
    assert!(!ok(quote!()).privileged);
    assert!(ok(quote!(privileged = true)).privileged);
    assert!(!ok(quote!(privileged = false)).privileged);
    assert!(ok(quote!(privileged = (true), pids = 3)).privileged);
    assert_eq!(
        err(quote!(privileged = "true")),
        "`privileged` takes `true` or `false`, not a string; write it without quotes: `privileged = true`"
    );
    assert_eq!(
        err(quote!(privileged = "false")),
        "`privileged` takes `true` or `false`, not a string; write it without quotes: `privileged = false`"
    );
    assert_eq!(
        err(quote!(privileged = "yes")),
        "`privileged` takes `true` or `false`, not a string; e.g. `privileged = true`"
    );
    for value in [quote!(1), quote!(yes), quote!(!false), quote!([true])] {
        assert_eq!(
            err(quote!(privileged = #value)),
            "`privileged` takes `true` or `false`, e.g. `privileged = true`",
            "{value}"
        );
    }
    assert_eq!(
        err(quote!(privileged = true, privileged = false)),
        "duplicate argument `privileged`; give each argument once"
    );
    assert_eq!(err(quote!(privileged)), "`privileged` needs a value, e.g. `privileged = true`");
    assert!(err(quote!(root = true)).ends_with("(did you mean `privileged`?)"));
}

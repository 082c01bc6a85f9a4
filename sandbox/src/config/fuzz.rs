//! Property-based fuzzing of the `--tmpfs`, `--bind`, `--cpu` and `--pids` parsers (RELIABILITY.md,
//! "Bad input"): no input panics, every accepted spec means what it says and reads back the same,
//! and every rejection names the offending text and what to write instead.
//!
//! The number of cases comes from `PROPTEST_CASES` (proptest's default, 256, in a plain
//! `cargo test`); a long run is e.g. `PROPTEST_CASES=200000 cargo test -p test-sandbox --lib
//! config::fuzz --release`.

use super::*;
use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;

/// Proptest's defaults (and `PROPTEST_CASES`), without writing `proptest-regressions` files
/// into the source tree: a failure found here becomes a plain `#[test]` below instead.
fn config() -> ProptestConfig {
    ProptestConfig { failure_persistence: None, ..ProptestConfig::default() }
}

/// Path-like text: segments that are fine, special (`.`, `..`, empty), or hostile (NUL,
/// colons, Unicode, newlines), with or without a leading `/`.
fn path_text() -> impl Strategy<Value = String> {
    let segment = prop::sample::select(vec![
        "", ".", "..", "...", "a", "tmp", "scratch", "a b", "ü", "日本", "\0", "x\0y", "ro", "rw", ":", "a:b", "-",
        "~", "$HOME", "*", "\\", "\n", "🦀", "..a", "a..",
    ]);
    let root = prop::sample::select(vec!["", "/", "/", "/", "//", "./", "../"]);
    (root, prop::collection::vec(segment, 0..6), prop::sample::select(vec!["", "", "/", "/."]))
        .prop_map(|(root, segments, tail)| format!("{root}{}{tail}", segments.join("/")))
}

/// Size-like text: valid sizes, zero, overflow, junk.
fn size_text() -> impl Strategy<Value = String> {
    prop_oneof![
        (any::<u64>(), prop::sample::select(vec!["", "K", "M", "G", "T", "MiB", "kb"]))
            .prop_map(|(n, unit)| format!("{}{unit}", n >> (n % 64))),
        prop::sample::select(vec!["", "0", "64M", "1.5G", "-1M", "lots", "99999999999999999999G", "1e400", "ro"])
            .prop_map(String::from),
        "\\PC{0,6}",
    ]
}

/// Specs joined from 1 to 4 colon-separated parts, plus arbitrary text.
fn spec_text() -> impl Strategy<Value = String> {
    let part = prop_oneof![
        3 => path_text(),
        2 => size_text(),
        1 => prop::sample::select(vec!["ro", "rw", "RO", "r", "rox", "", " ro"]).prop_map(String::from),
    ];
    prop_oneof![
        6 => prop::collection::vec(part, 1..5).prop_map(|parts| parts.join(":")),
        2 => any::<String>(),
        1 => "[ -~]{0,16}",
        1 => prop::sample::select(vec![":", "::", ":::", "", "/", "//", "/:", ":/", "/tmp:", "/a:/b:ro:"])
            .prop_map(String::from),
    ]
}

/// A rejection must say what would be accepted: an example, or how to repair the input.
fn assert_says_the_fix(message: &str) {
    assert!(!message.is_empty());
    assert!(message.contains("e.g.") || message.contains("remove it"), "does not say what to write: {message}");
}

/// What the sandbox makes of a path inside it: `//a/./b/` is `/a/b`.
fn normal(path: &str) -> PathBuf {
    Path::new(path).components().collect()
}

/// Whether a path can be mounted on inside the sandbox.
fn is_sandbox_path(path: &Path) -> bool {
    path.is_absolute()
        && !path.as_os_str().to_string_lossy().contains('\0')
        && path.components().all(|c| matches!(c, Component::RootDir | Component::Normal(_)))
}

fn check_tmpfs(spec: &str) -> Result<(), TestCaseError> {
    let (path, size) = match spec.split_once(':') {
        Some((path, size)) => (path, Some(size)),
        None => (spec, None),
    };
    match parse_tmpfs(spec) {
        Ok(mount) => {
            prop_assert_eq!(&mount.path, &normal(path));
            prop_assert!(is_sandbox_path(&mount.path) && mount.path != Path::new("/"), "{:?}", mount);
            prop_assert_eq!(mount.size_bytes, size.map(|size| units::parse_size(size).unwrap()));
            // The normalized spec means the same, and `validate` accepts the path.
            let again = match mount.size_bytes {
                Some(bytes) => format!("{}:{bytes}", mount.path.display()),
                None => mount.path.display().to_string(),
            };
            prop_assert_eq!(parse_tmpfs(&again).ok(), Some(mount.clone()));
            prop_assert_eq!(tmpfs_path(&mount.path.to_string_lossy()).ok(), Some(mount.path));
        }
        Err(err) => {
            let message = err.to_string();
            assert_says_the_fix(&message);
            match &err {
                ConfigError::Spec { what: "--tmpfs", spec: given, .. } => {
                    prop_assert!(given == spec && path.is_empty(), "{message}");
                    prop_assert!(message.contains(&format!("'{spec}'")), "{message}");
                }
                ConfigError::SandboxPath { what: "--tmpfs", path: given, .. } => {
                    prop_assert_eq!(given, Path::new(path));
                    prop_assert!(!is_sandbox_path(&normal(path)) || normal(path) == Path::new("/"), "{message}");
                    prop_assert!(message.contains(&format!("'{path}'")), "{message}");
                }
                ConfigError::Unit(UnitError::Size { input, .. }) => {
                    prop_assert_eq!(Some(input.as_str()), size);
                    prop_assert!(is_sandbox_path(&normal(path)), "{message}");
                    prop_assert!(message.contains(&format!("'{input}'")), "{message}");
                }
                other => prop_assert!(false, "{spec:?}: unexpected {other:?}"),
            }
        }
    }
    Ok(())
}

fn check_bind(spec: &str) -> Result<(), TestCaseError> {
    let parts: Vec<&str> = spec.split(':').collect();
    let well_formed = match parts.as_slice() {
        [source] | [source, _] | [source, _, "ro" | "rw"] => !source.is_empty() && !parts.contains(&""),
        _ => false,
    };
    let target = parts.get(1).unwrap_or(&parts[0]);
    match parse_bind(spec) {
        Ok(bind) => {
            prop_assert!(well_formed, "{:?} accepted: {:?}", spec, bind);
            prop_assert_eq!(bind.source.as_os_str(), parts[0]);
            prop_assert_eq!(&bind.target, &normal(target));
            prop_assert!(is_sandbox_path(&bind.target), "{:?}", bind);
            prop_assert_eq!(bind.read_only, parts.get(2) == Some(&"ro"));
            let again = format!(
                "{}:{}{}",
                bind.source.display(),
                bind.target.display(),
                if bind.read_only { ":ro" } else { "" }
            );
            prop_assert_eq!(parse_bind(&again).ok(), Some(bind));
        }
        Err(err) => {
            let message = err.to_string();
            assert_says_the_fix(&message);
            match &err {
                ConfigError::Spec { what: "--bind", spec: given, .. } => {
                    prop_assert!(given == spec && !well_formed, "{message}");
                    prop_assert!(message.contains(&format!("'{spec}'")), "{message}");
                }
                ConfigError::SandboxPath { what: "--bind target", path, .. } => {
                    prop_assert!(well_formed && path == Path::new(target), "{message}");
                    prop_assert!(!is_sandbox_path(&normal(target)), "{message}");
                    prop_assert!(message.contains(&format!("'{target}'")), "{message}");
                }
                other => prop_assert!(false, "{spec:?}: unexpected {other:?}"),
            }
        }
    }
    Ok(())
}

fn check_cpu(text: &str) -> Result<(), TestCaseError> {
    match parse_cpu(text) {
        Ok(cores) => {
            prop_assert_eq!(text.trim().parse::<f64>(), Ok(cores));
            prop_assert!((MIN_CPU_CORES..=MAX_CPU_CORES).contains(&cores), "{}", cores);
            // `validate` re-parses the number it is given as text.
            prop_assert_eq!(parse_cpu(&cores.to_string()).ok(), Some(cores));
        }
        Err(err) => {
            let message = err.to_string();
            prop_assert!(matches!(&err, ConfigError::Cpu(given) if given == text), "{}", message);
            prop_assert!(
                text.trim().parse::<f64>().map_or(true, |x| !(MIN_CPU_CORES..=MAX_CPU_CORES).contains(&x)),
                "{message}"
            );
            prop_assert!(message.contains(&format!("'{text}'")), "{message}");
            prop_assert!(message.contains("from 0.001 to 4096"), "does not give the range: {message}");
            assert_says_the_fix(&message);
        }
    }
    Ok(())
}

fn check_pids(text: &str) -> Result<(), TestCaseError> {
    let number = text.trim().strip_prefix('+').unwrap_or(text.trim());
    let digits = !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit());
    // The number written, saturated; `None` when it is not a whole number.
    let value = digits.then(|| match number.trim_start_matches('0') {
        "" => 0,
        significant => significant.parse::<u128>().unwrap_or(u128::MAX),
    });
    match parse_pids(text) {
        Ok(pids) => {
            prop_assert_eq!(value, Some(u128::from(pids)));
            prop_assert!((1..=MAX_PIDS).contains(&pids), "{}", pids);
            prop_assert_eq!(parse_pids(&pids.to_string()), Ok(pids));
        }
        Err(message) => {
            assert_says_the_fix(&message);
            match value {
                Some(0) => prop_assert!(message.contains("invalid pids limit 0: "), "{message}"),
                Some(_) => {
                    prop_assert!(message.contains(&format!("'{text}': it is too large")), "{message}");
                    prop_assert!(message.contains(&MAX_PIDS.to_string()), "{message}");
                }
                None => prop_assert!(message.contains(&format!("'{text}': write a whole number")), "{message}"),
            }
        }
    }
    Ok(())
}

/// Whole numbers, small, at the kernel's limit, or anywhere in 64 bits.
fn pids_number() -> impl Strategy<Value = u64> {
    prop_oneof![any::<u64>(), 0..10u64, (MAX_PIDS - 2)..=(MAX_PIDS + 2)]
}

/// Number-like text for `--cpu` and `--pids`.
fn number_text() -> impl Strategy<Value = String> {
    let float = prop_oneof![
        any::<f64>(),
        MIN_CPU_CORES..=MAX_CPU_CORES,
        prop::sample::select(vec![MIN_CPU_CORES, MAX_CPU_CORES, 0.0, -0.0, 0.000_999_999, 4_096.000_000_1]),
    ];
    prop_oneof![
        3 => (float, 0..4).prop_map(|(x, style)| match style {
            0 => format!("{x}"),
            1 => format!("{x:e}"),
            2 => format!("{x:?}"),
            _ => format!(" {x:.3}\n"),
        }),
        3 => (pids_number(), prop::sample::select(vec!["", "+", "-", " ", "0"]))
            .prop_map(|(n, prefix)| format!("{prefix}{n}")),
        1 => "[0-9]{20,30}",
        1 => "[-+0-9.eE_xinfaNI ]{0,8}",
        1 => any::<String>(),
        1 => prop::sample::select(vec![
            "", "NaN", "inf", "-inf", "infinity", "1e400", "-0", "0x10", "1_000", "½", "٣",
        ])
        .prop_map(String::from),
    ]
}

proptest! {
    #![proptest_config(config())]

    /// `--tmpfs`: no panic; accepted specs are normalized, absolute, not `/`, and read back
    /// the same; rejections name the part that is wrong and show an example.
    #[test]
    fn tmpfs_specs(spec in spec_text()) {
        check_tmpfs(&spec)?;
    }

    /// `--bind`: the same, for `SRC[:DST[:ro|rw]]`.
    #[test]
    fn bind_specs(spec in spec_text()) {
        check_bind(&spec)?;
    }

    /// `--cpu`: no panic; exactly the numbers from 0.001 to 4096 are accepted, and they
    /// survive `validate`'s round trip through text.
    #[test]
    fn cpu_numbers(text in number_text()) {
        check_cpu(&text)?;
    }

    /// `--pids`: no panic; exactly the whole numbers from 1 to the kernel's maximum.
    #[test]
    fn pids_numbers(text in number_text()) {
        check_pids(&text)?;
    }

    /// `validate` agrees with `--pids` about every number.
    #[test]
    fn pids_validate_agrees(pids in pids_number()) {
        let config = Config { limits: Limits { pids: Some(pids), ..Limits::default() }, ..Config::default() };
        prop_assert_eq!(config.validate().is_ok(), parse_pids(&pids.to_string()).is_ok());
    }
}

/// What the first fuzzing runs found, kept as plain tests.
#[test]
fn found_by_fuzzing() {
    // A tmpfs over `/` was accepted by --tmpfs (the macro refuses it): the command vanished.
    for spec in ["/", "//", "/.", "/:1M"] {
        let err = parse_tmpfs(spec).unwrap_err().to_string();
        assert!(err.contains("would hide the whole file system; mount it on a directory, e.g. /scratch"), "{err}");
    }
    // A NUL byte passed every check and panicked in the mount plan (mounts.rs, `cstring`).
    assert!(parse_tmpfs("/a\0b").unwrap_err().to_string().contains("NUL byte"));
    assert!(parse_bind("/a:/b\0c").unwrap_err().to_string().contains("NUL byte"));
    let mut config = Config::default();
    config.tmpfs.push(TmpfsMount { path: "/tmp/a\0b".into(), size_bytes: None });
    assert!(matches!(config.validate(), Err(ConfigError::SandboxPath { .. })));
    // `:` was reported as an empty size, not as a missing path.
    assert!(matches!(parse_tmpfs(":"), Err(ConfigError::Spec { .. })));
    // "write a positive number of cores" for a positive number out of range.
    assert!(parse_cpu("5000").unwrap_err().to_string().contains("from 0.001 to 4096"));
    // "write a whole number" for a whole number too large for 64 bits, and limits the kernel
    // refuses in pids.max were accepted.
    assert!(parse_pids("99999999999999999999").unwrap_err().contains("it is too large"));
    // ... but a number that is not whole was "too large" once its digits overflowed.
    assert!(parse_pids("99999999999999999999.5").unwrap_err().contains("write a whole number"));
    assert_eq!(parse_pids("4194304"), Ok(4_194_304));
    assert!(parse_pids("4194305").unwrap_err().contains("at most 4194304"));
    config.tmpfs.pop();
    config.limits.pids = Some(4_194_305);
    assert!(matches!(config.validate(), Err(ConfigError::TooManyPids(_))));
}

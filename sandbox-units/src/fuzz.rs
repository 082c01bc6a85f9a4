//! Property-based fuzzing of [`parse_size`] and [`parse_duration`] (RELIABILITY.md, "Bad input").
//!
//! The number of cases comes from `PROPTEST_CASES` (proptest's default, 256, in a plain
//! `cargo test`); a long run is e.g. `PROPTEST_CASES=200000 cargo test -p test-sandbox-units
//! --lib --release fuzz::`. The `#[isolated]` macro crate and the library both parse with this
//! crate, so the one parser fuzzed here is the one both use.

use super::*;
use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;

/// Proptest's defaults (and `PROPTEST_CASES`), without writing `proptest-regressions` files
/// into the source tree: a failure found here becomes a plain `#[test]` below instead.
fn config() -> ProptestConfig {
    ProptestConfig { failure_persistence: None, ..ProptestConfig::default() }
}

/// The documented size units (lower case; any ASCII case is accepted) and their multipliers.
const SIZE_UNITS: [(&str, u128); 14] = [
    ("", 1),
    ("b", 1),
    ("k", 1 << 10),
    ("kb", 1 << 10),
    ("kib", 1 << 10),
    ("m", 1 << 20),
    ("mb", 1 << 20),
    ("mib", 1 << 20),
    ("g", 1 << 30),
    ("gb", 1 << 30),
    ("gib", 1 << 30),
    ("t", 1 << 40),
    ("tb", 1 << 40),
    ("tib", 1 << 40),
];

/// The documented duration units and their length in milliseconds.
const DURATION_UNITS: [(&str, u128); 8] = [
    ("ms", 1),
    ("s", 1_000),
    ("sec", 1_000),
    ("secs", 1_000),
    ("m", 60_000),
    ("min", 60_000),
    ("mins", 60_000),
    ("h", 3_600_000),
];

/// What the documentation says the parsers do, written independently of them (128-bit
/// arithmetic instead of checked 64-bit, the digit string compared instead of parsed):
/// the value in the base unit, or the reason the input is rejected.
fn oracle(input: &str, units: &[(&str, u128)]) -> Result<u128, &'static str> {
    let text = input.trim();
    if text.is_empty() {
        return Err("it is empty");
    }
    if text.starts_with('-') {
        return Err("it is negative");
    }
    let digits: String = text.chars().take_while(char::is_ascii_digit).collect();
    if digits.is_empty() {
        return Err("it does not start with a number");
    }
    let rest = &text[digits.len()..];
    if rest.starts_with('.') {
        return Err("fractions are not supported");
    }
    let significant = digits.trim_start_matches('0');
    let max = u64::MAX.to_string();
    if significant.len() > max.len() || (significant.len() == max.len() && significant > max.as_str()) {
        return Err("the number is too large");
    }
    let number: u128 = if significant.is_empty() { 0 } else { significant.parse().unwrap() };
    let unit = rest.trim_start().to_ascii_lowercase();
    let Some(&(_, multiplier)) = units.iter().find(|(name, _)| *name == unit) else {
        return Err(if unit.is_empty() { "the unit is missing" } else { "unknown unit" });
    };
    if number == 0 {
        return Err("it must be greater than zero");
    }
    let value = number * multiplier;
    if value > u128::from(u64::MAX) {
        return Err("it is too large");
    }
    Ok(value)
}

/// A rejection must name the input exactly as given, the cause, and what to write instead.
fn assert_clear(err: &UnitError, given: &str) {
    let message = err.to_string();
    let (input, reason, fix) = match err {
        UnitError::Size { input, reason } => (input, reason.to_string(), ["K, M, G or T", "e.g. 100M or 1G"]),
        UnitError::Duration { input, reason } => (input, reason.to_string(), ["ms, s, m or h", "e.g. 500ms, 3s or 2m"]),
        UnitError::Tolerance { input, reason } => (input, reason.clone(), ["a percentage", "e.g. 10%+1M"]),
    };
    assert_eq!(input, given);
    assert!(!reason.is_empty(), "{message}");
    assert!(message.contains(&format!("'{given}': {reason};")), "does not name the input: {message}");
    for fix in fix {
        assert!(message.contains(fix), "does not say what to write: {message}");
    }
}

fn check_size(input: &str) -> Result<(), TestCaseError> {
    let parsed = parse_size(input);
    match (&parsed, oracle(input, &SIZE_UNITS)) {
        (Ok(bytes), Ok(expected)) => {
            prop_assert_eq!(u128::from(*bytes), expected, "{:?}", input);
            // The canonical form of an accepted size means the same.
            prop_assert_eq!(parse_size(&bytes.to_string()), Ok(*bytes));
        }
        (Err(err), Err(reason)) => {
            prop_assert_eq!(err, &UnitError::Size { input: input.into(), reason }, "{:?}", input);
            assert_clear(err, input);
        }
        (parsed, expected) => prop_assert!(false, "{input:?}: parsed {parsed:?}, expected {expected:?}"),
    }
    Ok(())
}

fn check_duration(input: &str) -> Result<(), TestCaseError> {
    let parsed = parse_duration(input);
    match (&parsed, oracle(input, &DURATION_UNITS)) {
        (Ok(duration), Ok(expected)) => {
            prop_assert_eq!(duration.as_millis(), expected, "{:?}", input);
            prop_assert_eq!(duration.subsec_nanos() % 1_000_000, 0);
            prop_assert_eq!(parse_duration(&format!("{}ms", duration.as_millis())), Ok(*duration));
        }
        (Err(err), Err(reason)) => {
            prop_assert_eq!(err, &UnitError::Duration { input: input.into(), reason }, "{:?}", input);
            assert_clear(err, input);
        }
        (parsed, expected) => prop_assert!(false, "{input:?}: parsed {parsed:?}, expected {expected:?}"),
    }
    Ok(())
}

/// Whitespace that `str::trim` removes (ASCII and Unicode), and some that it does not.
fn space() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["", "", "", " ", "  ", "\t", "\n", "\r\n", "\u{a0}", "\u{3000}", "\u{200b}"])
}

/// Numbers: ordinary, at the edges of `u64`, overflowing, with leading zeros, or missing.
fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u64..5000).prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        (0u64..64).prop_map(|n| (u64::MAX - n).to_string()),
        "[0-9]{19,40}",
        "0{1,30}[0-9]{0,4}",
        Just(String::new()),
    ]
}

/// Units: every valid one in random ASCII case, near misses, and junk.
fn unit() -> impl Strategy<Value = String> {
    let valid: Vec<&str> = SIZE_UNITS.iter().chain(&DURATION_UNITS).map(|(name, _)| *name).collect();
    let junk = vec![
        "Q",
        "P",
        "PB",
        "E",
        "EiB",
        "kibi",
        "K B",
        "k b",
        "e400",
        "e3",
        "E-3",
        "x10",
        "ns",
        "us",
        "µs",
        "d",
        "w",
        "y",
        "hr",
        "hours",
        "minutes",
        "mss",
        "sm",
        "Ｍ",
        "\u{212a}",
        "%",
        "_",
        "+",
        "-",
        "-1",
        ".",
        ".5",
        "..",
        ",5",
        "'",
        "\"",
        ":",
        ":::",
        "NaN",
        "inf",
        "infinity",
        "\0",
        "M\0",
        "ms\u{301}",
        "🦀",
    ];
    prop_oneof![
        4 => (prop::sample::select(valid), any::<u32>()).prop_map(|(name, case)| random_case(name, case)),
        2 => prop::sample::select(junk).prop_map(String::from),
        1 => "\\PC{0,4}",
    ]
}

fn random_case(name: &str, mask: u32) -> String {
    name.chars()
        .enumerate()
        .map(|(i, c)| if mask >> (i % 32) & 1 == 1 { c.to_ascii_uppercase() } else { c })
        .collect()
}

/// Numbers within 2 of the largest that still fits in 64 bits after a shift by each of `shifts`.
fn near_the_largest(shifts: &'static [u32]) -> impl Strategy<Value = u64> {
    (prop::sample::select(shifts), -2i64..=2)
        .prop_map(|(shift, delta)| (u64::MAX >> shift).saturating_add_signed(delta))
}

/// Numbers within 2 of the largest count of each duration unit whose milliseconds fit in 64 bits.
fn near_the_largest_duration() -> impl Strategy<Value = u64> {
    let largest: Vec<u64> = DURATION_UNITS.iter().map(|(_, millis)| u64::MAX / *millis as u64).collect();
    (prop::sample::select(largest), -2i64..=2).prop_map(|(largest, delta)| largest.saturating_add_signed(delta))
}

/// Text shaped like a size or a duration, with every part able to be wrong.
fn unit_text() -> impl Strategy<Value = String> {
    let sign = prop::sample::select(vec!["", "", "", "-", "+", "−", "--"]);
    let fraction = prop::sample::select(vec!["", "", "", ".", ".5", ".0", "e400", "e-3", "_000", ",5"]);
    (space(), sign, number(), fraction, space(), unit(), space()).prop_map(
        |(lead, sign, number, fraction, gap, unit, trail)| {
            format!("{lead}{sign}{number}{fraction}{gap}{unit}{trail}")
        },
    )
}

/// Anything: structured text, arbitrary Unicode, printable ASCII, and the classics.
fn any_text() -> impl Strategy<Value = String> {
    let classics = vec![
        "",
        " ",
        "0",
        "-0",
        "+0",
        "NaN",
        "nan",
        "inf",
        "-inf",
        "1e400",
        "99999999999999999999G",
        "18446744073709551615",
        "18446744073709551616",
        "18446744073709551615ms",
        "16777216T",
        "16777215T",
        ":::",
        "/a:b:c",
        "1..5",
        "1.",
        ".1",
        "0x10",
        "1_000",
        "1,000",
        "１２M",
        "٣s",
    ];
    prop_oneof![
        4 => unit_text(),
        2 => any::<String>(),
        1 => "[ -~]{0,12}",
        1 => prop::sample::select(classics).prop_map(String::from),
    ]
}

proptest! {
    #![proptest_config(config())]

    /// Any text: no panic, and exactly the documented value or the documented reason.
    #[test]
    fn size_matches_the_documentation(input in any_text()) {
        check_size(&input)?;
    }

    /// `{n}{unit}` is `n` times the unit when that fits in 64 bits, and rejected as too large
    /// (never wrapped) when it does not.
    #[test]
    fn size_scales_or_is_rejected(
        n in prop_oneof![any::<u64>(), 0u64..100_000, near_the_largest(&[0, 10, 20, 30, 40])],
        unit in prop::sample::select(SIZE_UNITS.to_vec()),
        case in any::<u32>(),
        gap in space(),
    ) {
        let (name, multiplier) = unit;
        let input = format!("{n}{gap}{}", random_case(name, case));
        let expected = u128::from(n) * multiplier;
        match parse_size(&input) {
            // A zero-width space is not whitespace: it is part of the unit.
            Err(err) if gap == "\u{200b}" => {
                prop_assert_eq!(err, UnitError::Size { input, reason: "unknown unit" })
            }
            Ok(bytes) => prop_assert_eq!(u128::from(bytes), expected),
            Err(err) if n == 0 => {
                prop_assert_eq!(err, UnitError::Size { input, reason: "it must be greater than zero" })
            }
            Err(err) => {
                prop_assert!(expected > u128::from(u64::MAX), "{input:?} rejected: {err}");
                prop_assert_eq!(err, UnitError::Size { input, reason: "it is too large" });
            }
        }
    }

    /// Every accepted size means the same in bytes, and a unit is exactly its power of 1024.
    #[test]
    fn size_units_agree_with_bytes(n in 1u64..(1 << 24), shift in 0usize..5) {
        let units = ["", "K", "M", "G", "T"];
        let bytes = n << (10 * shift);
        prop_assert_eq!(parse_size(&format!("{n}{}", units[shift])), Ok(bytes));
        prop_assert_eq!(parse_size(&bytes.to_string()), Ok(bytes));
        let binary = format!("{n}{}iB", units[shift]);
        let expected = match shift {
            0 => Err(UnitError::Size { input: binary.clone(), reason: "unknown unit" }),
            _ => Ok(bytes),
        };
        prop_assert_eq!(parse_size(&binary), expected);
    }

    /// Any text: no panic, and exactly the documented value or the documented reason.
    #[test]
    fn duration_matches_the_documentation(input in any_text()) {
        check_duration(&input)?;
    }

    /// `{n}{unit}` is `n` units when the milliseconds fit in 64 bits, else rejected.
    #[test]
    fn duration_scales_or_is_rejected(
        n in prop_oneof![any::<u64>(), 0u64..100_000, near_the_largest_duration()],
        unit in prop::sample::select(DURATION_UNITS.to_vec()),
        case in any::<u32>(),
    ) {
        let (name, millis) = unit;
        let input = format!("{n}{}", random_case(name, case));
        let expected = u128::from(n) * millis;
        match parse_duration(&input) {
            Ok(duration) => prop_assert_eq!(duration.as_millis(), expected),
            Err(err) if n == 0 => {
                prop_assert_eq!(err, UnitError::Duration { input, reason: "it must be greater than zero" })
            }
            Err(err) => {
                prop_assert!(expected > u128::from(u64::MAX), "{input:?} rejected: {err}");
                prop_assert_eq!(err, UnitError::Duration { input, reason: "it is too large" });
            }
        }
    }

    /// A bare number is never a duration, however it is written.
    #[test]
    fn duration_needs_a_unit(n in any::<u64>(), lead in space(), trail in space()) {
        let input = format!("{lead}{n}{trail}");
        let err = parse_duration(&input).unwrap_err();
        assert_clear(&err, &input);
        if trail != "\u{200b}" && lead != "\u{200b}" {
            prop_assert_eq!(err, UnitError::Duration { input: input.clone(), reason: "the unit is missing" });
        }
    }

    /// The human formats take any value.
    #[test]
    fn human_formats_take_any_value(bytes in any::<u64>(), nanos in any::<u64>()) {
        prop_assert!(!format_bytes(bytes).is_empty());
        prop_assert!(!format_duration(Duration::from_nanos(nanos)).is_empty());
    }
}

/// The inputs of the list, checked against the documentation one by one.
#[test]
fn the_classics() {
    for input in ["", " ", "-0", "NaN", "inf", "1e400", "99999999999999999999G", ":::", "/a:b", "16777216T"] {
        check_size(input).unwrap();
        check_duration(input).unwrap();
    }
    assert_eq!(parse_size("16777215T"), Ok(16_777_215 << 40));
    assert_eq!(parse_size("18446744073709551615"), Ok(u64::MAX));
    assert_eq!(parse_duration("18446744073709551615ms"), Ok(Duration::from_millis(u64::MAX)));
    assert!(parse_duration("18446744073709552s").is_err());
}

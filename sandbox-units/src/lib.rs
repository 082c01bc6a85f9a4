//! Parsing of the sizes and durations users write (`100M`, `500ms`), and the bounds of the
//! limits they write.
//!
//! A crate of its own, without dependencies, shared by the library (`sandbox::units`) and the
//! `#[isolated]` proc macro: `mem = "100Q"` is rejected at compile time with exactly the message
//! the CLI prints, and `pids`/`cpu` have the same bounds as `--pids`/`--cpu`.

use std::fmt;
use std::time::Duration;

/// The most tasks a pids cgroup can be limited to: the kernel refuses larger values in
/// `pids.max` with `EINVAL` (`PIDS_MAX` is `PID_MAX_LIMIT + 1`, and `PID_MAX_LIMIT` is 4 Mi on
/// 64-bit), and the sandbox would then fall back to rlimits with that opaque error as the reason.
pub const MAX_PIDS: u64 = 4 * 1024 * 1024;

/// The smallest CPU limit in cores: a 1 ms quota (the kernel's smallest) per 1 s period (its
/// largest), see `cgroup::cpu_quota_and_period_us`.
pub const MIN_CPU_CORES: f64 = 0.001;

/// The largest CPU limit in cores: more cores than any machine this runs on.
pub const MAX_CPU_CORES: f64 = 4096.0;

/// Why a size or duration was rejected; the `Display` text names the cause and the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnitError {
    /// Not a size like `100M`.
    Size {
        /// The rejected text.
        input: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Not a duration like `3s`.
    Duration {
        /// The rejected text.
        input: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Not a tolerance like `10%+1M`.
    Tolerance {
        /// The rejected text.
        input: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl fmt::Display for UnitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnitError::Size { input, reason } => write!(
                f,
                "invalid size '{input}': {reason}; write a whole number with an optional unit \
                 K, M, G or T (powers of 1024), e.g. 100M or 1G"
            ),
            UnitError::Duration { input, reason } => write!(
                f,
                "invalid duration '{input}': {reason}; write a whole number with a unit \
                 ms, s, m or h, e.g. 500ms, 3s or 2m"
            ),
            UnitError::Tolerance { input, reason } => write!(
                f,
                "invalid tolerance '{input}': {reason}; write a percentage of the baseline, a size, \
                 or both, e.g. 10%+1M, 25% or 4M"
            ),
        }
    }
}

impl std::error::Error for UnitError {}

/// Splits `"100M"` into `("100", "M")`, rejecting signs, fractions and empty numbers.
fn split_number(input: &str) -> Result<(u64, &str), &'static str> {
    let text = input.trim();
    if text.is_empty() {
        return Err("it is empty");
    }
    if text.starts_with('-') {
        return Err("it is negative");
    }
    let digits_end = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    if digits_end == 0 {
        return Err("it does not start with a number");
    }
    let (digits, unit) = text.split_at(digits_end);
    if unit.starts_with('.') {
        return Err("fractions are not supported");
    }
    let number = digits.parse::<u64>().map_err(|_| "the number is too large")?;
    Ok((number, unit.trim_start()))
}

/// Parses a memory size: plain bytes (`4096`) or binary units (`512K`, `100M`, `1G`, `1T`,
/// also written `100MiB` or `100MB`). Zero is rejected: no limit of zero bytes is meaningful.
///
/// ```
/// use sandbox_units::parse_size;
///
/// assert_eq!(parse_size("100M"), Ok(100 << 20));
/// assert_eq!(parse_size("4096"), Ok(4096));
/// let err = parse_size("1.5G").unwrap_err().to_string();
/// assert!(err.starts_with("invalid size '1.5G': fractions are not supported; write a whole number"), "{err}");
/// ```
pub fn parse_size(input: &str) -> Result<u64, UnitError> {
    let fail = |reason| UnitError::Size { input: input.to_string(), reason };
    let (number, unit) = split_number(input).map_err(fail)?;
    let shift = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(fail("unknown unit")),
    };
    if number == 0 {
        return Err(fail("it must be greater than zero"));
    }
    number.checked_mul(1u64 << shift).ok_or_else(|| fail("it is too large"))
}

/// Parses a duration: a whole number with a unit, `ms`, `s`, `m` (minutes) or `h`.
/// A bare number is rejected because `3` could mean seconds or milliseconds.
///
/// ```
/// use std::time::Duration;
/// use sandbox_units::parse_duration;
///
/// assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
/// assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
/// assert!(parse_duration("3").is_err());
/// ```
pub fn parse_duration(input: &str) -> Result<Duration, UnitError> {
    let fail = |reason| UnitError::Duration { input: input.to_string(), reason };
    let (number, unit) = split_number(input).map_err(fail)?;
    let millis_per_unit: u64 = match unit.to_ascii_lowercase().as_str() {
        "ms" => 1,
        "s" | "sec" | "secs" => 1_000,
        "m" | "min" | "mins" => 60_000,
        "h" => 3_600_000,
        "" => return Err(fail("the unit is missing")),
        _ => return Err(fail("unknown unit")),
    };
    if number == 0 {
        return Err(fail("it must be greater than zero"));
    }
    let millis = number.checked_mul(millis_per_unit).ok_or_else(|| fail("it is too large"))?;
    Ok(Duration::from_millis(millis))
}

/// How far a test's peak memory may grow over its baseline before the test fails: a share of
/// the baseline plus a fixed amount (`10%+1M`, the default), so that neither a tiny test's noise
/// nor a big test's few percent trips it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tolerance {
    /// Percent of the baseline.
    pub percent: u32,
    /// Bytes on top.
    pub bytes: u64,
}

impl Tolerance {
    /// 10 % of the baseline plus 1 MiB.
    pub const DEFAULT: Tolerance = Tolerance { percent: 10, bytes: 1 << 20 };

    /// The highest peak that is still within the tolerance of `baseline`.
    pub fn allowed(self, baseline: u64) -> u64 {
        let share = (baseline as u128 * self.percent as u128 / 100).min(u64::MAX as u128) as u64;
        baseline.saturating_add(share).saturating_add(self.bytes)
    }
}

impl Default for Tolerance {
    fn default() -> Tolerance {
        Tolerance::DEFAULT
    }
}

impl fmt::Display for Tolerance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.percent, self.bytes) {
            (percent, 0) => write!(f, "{percent} %"),
            (0, bytes) => write!(f, "{}", format_bytes(bytes)),
            (percent, bytes) => write!(f, "{percent} % + {}", format_bytes(bytes)),
        }
    }
}

/// Parses a tolerance: `PERCENT%`, a size, or both joined by `+` (`10%+1M`, `25%`, `4M`).
///
/// ```
/// use sandbox_units::{parse_tolerance, Tolerance};
///
/// assert_eq!(parse_tolerance("10%+1M"), Ok(Tolerance { percent: 10, bytes: 1 << 20 }));
/// assert_eq!(parse_tolerance("0%"), Ok(Tolerance { percent: 0, bytes: 0 }));
/// let err = parse_tolerance("10").unwrap_err().to_string();
/// assert!(err.starts_with("invalid tolerance '10': 10 is neither a percentage (10%) nor a size with a unit"), "{err}");
/// ```
pub fn parse_tolerance(input: &str) -> Result<Tolerance, UnitError> {
    let fail = |reason: String| UnitError::Tolerance { input: input.to_string(), reason };
    let mut tolerance = Tolerance { percent: 0, bytes: 0 };
    let (mut seen_percent, mut seen_bytes) = (false, false);
    for part in input.split('+').map(str::trim) {
        if let Some(number) = part.strip_suffix('%') {
            if seen_percent {
                return Err(fail("it has two percentages".into()));
            }
            seen_percent = true;
            tolerance.percent = match split_number(number) {
                Ok((value, "")) if value <= 10_000 => value as u32,
                Ok((_, "")) => return Err(fail("the percentage is above 10000".into())),
                Ok(_) | Err(_) => return Err(fail(format!("'{part}' is not a whole percentage"))),
            };
        } else {
            if seen_bytes {
                return Err(fail("it has two sizes".into()));
            }
            seen_bytes = true;
            if part.bytes().all(|b| b.is_ascii_digit()) && !part.is_empty() {
                return Err(fail(format!("{part} is neither a percentage ({part}%) nor a size with a unit ({part}M)")));
            }
            tolerance.bytes = parse_size(part).map_err(|err| match err {
                UnitError::Size { reason, .. } => fail(format!("the size '{part}': {reason}")),
                other => fail(other.to_string()),
            })?;
        }
    }
    Ok(tolerance)
}

/// Formats a byte count for people: `3.1 MiB`.
///
/// ```
/// assert_eq!(sandbox_units::format_bytes(3_250_000), "3.1 MiB");
/// assert_eq!(sandbox_units::format_bytes(512), "512 B");
/// ```
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Formats a duration for people: `12 ms`, `3.0 s`.
///
/// ```
/// use std::time::Duration;
///
/// assert_eq!(sandbox_units::format_duration(Duration::from_millis(12)), "12 ms");
/// assert_eq!(sandbox_units::format_duration(Duration::from_millis(3_040)), "3.0 s");
/// ```
pub fn format_duration(duration: Duration) -> String {
    let millis = duration.as_millis();
    if millis < 1_000 {
        format!("{millis} ms")
    } else {
        format!("{:.1} s", duration.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tolerances_are_a_share_plus_an_amount() {
        assert_eq!(parse_tolerance("25%"), Ok(Tolerance { percent: 25, bytes: 0 }));
        assert_eq!(parse_tolerance("4M"), Ok(Tolerance { percent: 0, bytes: 4 << 20 }));
        assert_eq!(parse_tolerance("1M + 10%"), Ok(Tolerance::DEFAULT));
        assert_eq!(Tolerance::DEFAULT.allowed(10 << 20), 12 << 20);
        assert_eq!(Tolerance::DEFAULT.to_string(), "10 % + 1.0 MiB");
        assert_eq!(Tolerance { percent: 1, bytes: 1 }.allowed(u64::MAX), u64::MAX);
        for (input, reason) in [
            ("10%+20%", "it has two percentages"),
            ("1M+2M", "it has two sizes"),
            ("1.5%", "'1.5%' is not a whole percentage"),
            ("20000%", "the percentage is above 10000"),
            ("10%+1Q", "the size '1Q': unknown unit"),
            ("", "the size '': it is empty"),
        ] {
            let err = parse_tolerance(input).unwrap_err().to_string();
            assert!(err.starts_with(&format!("invalid tolerance '{input}': {reason}; ")), "{err}");
        }
    }

    #[test]
    fn sizes_use_binary_units() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("512K"), Ok(512 << 10));
        assert_eq!(parse_size("100M"), Ok(100 << 20));
        assert_eq!(parse_size("100m"), Ok(100 << 20));
        assert_eq!(parse_size("100MiB"), Ok(100 << 20));
        assert_eq!(parse_size("100 MB"), Ok(100 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("2T"), Ok(2 << 40));
    }

    #[test]
    fn bad_sizes_name_the_cause() {
        let cases = [
            ("100Q", "unknown unit"),
            ("", "it is empty"),
            ("-5M", "it is negative"),
            ("1.5G", "fractions are not supported"),
            ("M", "it does not start with a number"),
            ("0", "it must be greater than zero"),
            ("99999999999999999999", "the number is too large"),
            ("20000000T", "it is too large"),
        ];
        for (input, reason) in cases {
            let err = parse_size(input).unwrap_err();
            assert_eq!(err, UnitError::Size { input: input.into(), reason }, "{input}");
            assert!(err.to_string().contains("e.g. 100M"), "{err}");
        }
    }

    #[test]
    fn durations_need_a_unit() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("3s"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        for (input, reason) in [
            ("soon", "it does not start with a number"),
            ("3", "the unit is missing"),
            ("3d", "unknown unit"),
            ("0s", "it must be greater than zero"),
            ("1.5s", "fractions are not supported"),
        ] {
            assert_eq!(
                parse_duration(input),
                Err(UnitError::Duration { input: input.into(), reason }),
                "{input}"
            );
        }
    }

    #[test]
    fn human_formats() {
        assert_eq!(format_bytes(512), "512 B");
        assert_eq!(format_bytes(3 << 20 | 100 << 10), "3.1 MiB");
        assert_eq!(format_duration(Duration::from_millis(12)), "12 ms");
        assert_eq!(format_duration(Duration::from_millis(3040)), "3.0 s");
    }
}

/// Property-based fuzzing of [`parse_size`] and [`parse_duration`] (RELIABILITY.md, "Bad input").
///
/// The number of cases comes from `PROPTEST_CASES` (proptest's default, 256, in a plain
/// `cargo test`); a long run is e.g. `PROPTEST_CASES=200000 cargo test -p test-sandbox-units
/// units::fuzz --release`. This module is compiled into the `#[isolated]` macro crate too (it
/// includes this file), so both copies of the parser are fuzzed.
#[cfg(test)]
mod fuzz {
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

    /// The inputs of the issue's list, checked against the documentation one by one.
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
}

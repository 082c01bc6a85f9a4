//! Parsing of the sizes and durations users write (`100M`, `500ms`).
//!
//! This module has no dependencies on purpose: the `#[isolated]` proc macro includes the same file
//! so that `mem = "100Q"` is rejected at compile time with exactly the message the CLI prints.

use std::fmt;
use std::time::Duration;

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

/// Formats a byte count for people: `3.1 MiB`.
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

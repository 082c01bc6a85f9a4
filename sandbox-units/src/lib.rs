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
    Bytes(bytes).to_string()
}

/// A byte count shown as [`format_bytes`] shows it, written straight into a formatter: a list
/// of a thousand sizes makes no thousand strings.
///
/// ```
/// assert_eq!(format!("({})", sandbox_units::Bytes(2048)), "(2.0 KiB)");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bytes(pub u64);

impl std::fmt::Display for Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
        let mut value = self.0 as f64;
        let mut unit = 0;
        while value >= 1024.0 && unit + 1 < UNITS.len() {
            value /= 1024.0;
            unit += 1;
        }
        if unit == 0 {
            std::fmt::Display::fmt(&self.0, f)?;
            f.write_str(" B")
        } else {
            write!(f, "{value:.1} {}", UNITS[unit])
        }
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
mod tests;

#[cfg(test)]
mod fuzz;

//! Baselines: what each test used in one run, saved to a file (`--save-baseline FILE`), and
//! held against in a later run (`--baseline FILE`), so that a test whose peak memory or peak
//! pids grew fails like any other regression test.
//!
//! The file has one JSON object per line, sorted by test name, so that it diffs well in a
//! commit: `{"test":"parser::large_input","peak_memory_bytes":10813440,"peak_pids":1,"cpu_usec":41250}`.
//! Saving updates the lines of the tests that passed and keeps the others, under an exclusive
//! lock of the file: the stock harness saves from every test process (nextest runs one per
//! test), each adding its own line.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::fork_server::TestResult;
use super::{Failure, FailureKind, Resources, Verdict};
use crate::units::{format_bytes, Tolerance};

/// Environment variables that name the baselines where no flag does (and under the stock
/// harness, which has no flags of its own).
pub const BASELINE_ENV: &str = "SANDBOX_BASELINE";
/// See [`BASELINE_ENV`].
pub const SAVE_BASELINE_ENV: &str = "SANDBOX_SAVE_BASELINE";
/// See [`BASELINE_ENV`].
pub const TOLERANCE_ENV: &str = "SANDBOX_BASELINE_TOLERANCE";

/// One test's line of a baseline file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Figures {
    /// The test's name, as libtest prints it.
    pub test: String,
    /// Its memory peak, where the kernel records it.
    pub peak_memory_bytes: Option<u64>,
    /// The most processes it had at once, where the kernel counts it.
    pub peak_pids: Option<u64>,
    /// The CPU time it used (saved for reading; not compared: it varies with the machine).
    pub cpu_usec: Option<u64>,
}

impl Figures {
    /// What test `name` used.
    pub fn of(name: &str, used: &Resources) -> Figures {
        Figures {
            test: name.to_string(),
            peak_memory_bytes: used.stats.peak_memory_bytes,
            peak_pids: used.stats.peak_pids,
            cpu_usec: used.stats.cpu_usec,
        }
    }

    /// What a test used, to be saved: only a test that passed (and ran) is.
    pub(crate) fn to_save(result: &TestResult) -> Option<Figures> {
        if result.verdict != Verdict::Passed {
            return None;
        }
        Some(Figures::of(&result.name, result.resources.as_ref()?))
    }
}

/// Why a baseline file could not be used; names the file and the fix.
#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    /// It could not be read or written.
    #[error("the baseline {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// A line is not a test's figures.
    #[error(
        "the baseline {} line {line} is not a test's figures ({reason}); each line is one JSON object as \
         --save-baseline writes it: save the baseline again",
        path.display()
    )]
    Malformed {
        /// The file.
        path: PathBuf,
        /// Its line, from 1.
        line: usize,
        /// What the JSON parser said.
        reason: String,
    },
    /// The tolerance is not one.
    #[error("{variable}: {source}")]
    Tolerance {
        /// Where it was given.
        variable: &'static str,
        /// Why it was rejected.
        source: crate::units::UnitError,
    },
}

/// The figures of every test in a baseline file.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Baseline {
    tests: BTreeMap<String, Figures>,
}

impl Baseline {
    /// Reads the baseline at `path`.
    pub fn load(path: &Path) -> Result<Baseline, BaselineError> {
        let text = std::fs::read_to_string(path).map_err(|source| BaselineError::Io { path: path.into(), source })?;
        Baseline::parse(&text, path)
    }

    fn parse(text: &str, path: &Path) -> Result<Baseline, BaselineError> {
        let mut tests = BTreeMap::new();
        for (index, line) in text.lines().enumerate().filter(|(_, line)| !line.trim().is_empty()) {
            let figures: Figures = serde_json::from_str(line).map_err(|err| BaselineError::Malformed {
                path: path.into(),
                line: index + 1,
                reason: err.to_string(),
            })?;
            tests.insert(figures.test.clone(), figures);
        }
        Ok(Baseline { tests })
    }

    /// The file's text: one line per test, sorted by name.
    fn render(&self) -> String {
        self.tests.values().filter_map(|figures| serde_json::to_string(figures).ok()).map(|line| line + "\n").collect()
    }

    /// The saved figures of `test`.
    pub fn get(&self, test: &str) -> Option<&Figures> {
        self.tests.get(test)
    }

    /// Sets (or replaces) the lines of `figures` in the baseline at `path`, which is created if
    /// it is not there, and keeps every other line; the file is locked meanwhile, so that test
    /// processes saving at once each add their line.
    pub fn update_file(path: &Path, figures: impl IntoIterator<Item = Figures>) -> Result<(), BaselineError> {
        let io = |source| BaselineError::Io { path: path.into(), source };
        let file = File::options().read(true).write(true).create(true).truncate(false).open(path).map_err(io)?;
        let mut file = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, errno)| io(std::io::Error::from(errno)))?;
        let mut text = String::new();
        file.read_to_string(&mut text).map_err(io)?;
        let mut baseline = Baseline::parse(&text, path)?;
        for figures in figures {
            baseline.tests.insert(figures.test.clone(), figures);
        }
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        file.write_all(baseline.render().as_bytes()).map_err(io)
    }
}

/// How a test's figures compare with its baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BaselineStatus {
    /// Within the tolerance.
    Within,
    /// Its peak memory grew beyond the tolerance, or its peak pids grew.
    Above,
    /// The baseline has no line for the test.
    Missing,
}

impl BaselineStatus {
    /// `within`, `above` or `missing`, as the report writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            BaselineStatus::Within => "within",
            BaselineStatus::Above => "above",
            BaselineStatus::Missing => "missing",
        }
    }
}

/// A test held against its baseline: the figures on both sides and the change, as the report
/// and JUnit carry it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaselineCheck {
    /// Within, above or missing.
    pub status: BaselineStatus,
    /// The test's memory peak now.
    pub peak_memory_bytes: Option<u64>,
    /// The baseline's.
    pub baseline_peak_memory_bytes: Option<u64>,
    /// The highest peak the tolerance allows.
    pub allowed_peak_memory_bytes: Option<u64>,
    /// Now minus the baseline, in bytes.
    pub peak_memory_change_bytes: Option<i64>,
    /// The change in percent of the baseline.
    pub peak_memory_change_percent: Option<f64>,
    /// The test's peak pids now.
    pub peak_pids: Option<u64>,
    /// The baseline's.
    pub baseline_peak_pids: Option<u64>,
    /// Now minus the baseline.
    pub peak_pids_change: Option<i64>,
    /// The tolerance the memory was held to, e.g. `10 % + 1.0 MiB`.
    pub tolerance: String,
}

fn change(now: Option<u64>, then: Option<u64>) -> Option<i64> {
    Some(now? as i64 - then? as i64)
}

impl BaselineCheck {
    /// `now` of a test against its `saved` figures (`None`: not in the baseline).
    pub fn new(now: &Resources, saved: Option<&Figures>, tolerance: Tolerance) -> BaselineCheck {
        let then_memory = saved.and_then(|s| s.peak_memory_bytes);
        let then_pids = saved.and_then(|s| s.peak_pids);
        let allowed = then_memory.map(|then| tolerance.allowed(then));
        let memory_change = change(now.stats.peak_memory_bytes, then_memory);
        let mut check = BaselineCheck {
            status: BaselineStatus::Missing,
            peak_memory_bytes: now.stats.peak_memory_bytes,
            baseline_peak_memory_bytes: then_memory,
            allowed_peak_memory_bytes: allowed,
            peak_memory_change_bytes: memory_change,
            peak_memory_change_percent: memory_change
                .zip(then_memory.filter(|then| *then > 0))
                .map(|(change, then)| (change as f64 * 1000.0 / then as f64).round() / 10.0),
            peak_pids: now.stats.peak_pids,
            baseline_peak_pids: then_pids,
            peak_pids_change: change(now.stats.peak_pids, then_pids),
            tolerance: tolerance.to_string(),
        };
        if saved.is_some() {
            let above = check.memory_above() || check.pids_above();
            check.status = if above { BaselineStatus::Above } else { BaselineStatus::Within };
        }
        check
    }

    /// What the runner adds to a test's line: `peak mem +2 % of its baseline`.
    pub fn note(&self) -> String {
        match (self.status, self.peak_memory_change_percent) {
            (BaselineStatus::Missing, _) => "not in the baseline".into(),
            (BaselineStatus::Above, _) => "above its baseline".into(),
            (BaselineStatus::Within, Some(percent)) => format!("peak mem {percent:+.0} % of its baseline"),
            (BaselineStatus::Within, None) => "within its baseline".into(),
        }
    }

    fn memory_above(&self) -> bool {
        matches!((self.peak_memory_bytes, self.allowed_peak_memory_bytes), (Some(now), Some(allowed)) if now > allowed)
    }

    fn pids_above(&self) -> bool {
        self.peak_pids_change.is_some_and(|change| change > 0)
    }
}

/// The figures that grew: `peak mem 60.4 MiB, baseline 10.3 MiB (+486 %), allowed 12.3 MiB
/// (10 % + 1.0 MiB)`, `peak pids 5, baseline 3 (+2), may not grow`.
impl fmt::Display for BaselineCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let (true, Some(now), Some(then), Some(allowed)) =
            (self.memory_above(), self.peak_memory_bytes, self.baseline_peak_memory_bytes, self.allowed_peak_memory_bytes)
        {
            let percent = self.peak_memory_change_percent.map(|p| format!(" ({p:+.0} %)")).unwrap_or_default();
            parts.push(format!(
                "peak mem {}, baseline {}{percent}, allowed {} ({})",
                format_bytes(now),
                format_bytes(then),
                format_bytes(allowed),
                self.tolerance
            ));
        }
        if let (true, Some(now), Some(then), Some(change)) =
            (self.pids_above(), self.peak_pids, self.baseline_peak_pids, self.peak_pids_change)
        {
            parts.push(format!("peak pids {now}, baseline {then} ({change:+}), may not grow"));
        }
        write!(f, "{}", parts.join("; "))
    }
}

/// The baselines of one run: the one held against, where tests are saved to, and the run's
/// tolerance.
#[derive(Debug, Default)]
pub struct Baselines {
    /// `--baseline FILE`, read.
    pub compare: Option<Baseline>,
    /// `--save-baseline FILE`.
    pub save: Option<PathBuf>,
    /// `--baseline-tolerance`, or [`Tolerance::DEFAULT`].
    pub tolerance: Tolerance,
}

impl Baselines {
    /// The baselines named by flags (`None`: not given) or else by the environment.
    pub fn resolve(compare: Option<PathBuf>, save: Option<PathBuf>, tolerance: Option<String>) -> Result<Baselines, BaselineError> {
        let compare = compare.or_else(|| std::env::var_os(BASELINE_ENV).map(PathBuf::from));
        let (variable, tolerance) = match tolerance {
            Some(text) => ("--baseline-tolerance", Some(text)),
            None => (TOLERANCE_ENV, std::env::var(TOLERANCE_ENV).ok()),
        };
        let tolerance = match tolerance {
            Some(text) => crate::units::parse_tolerance(&text).map_err(|source| BaselineError::Tolerance { variable, source })?,
            None => Tolerance::DEFAULT,
        };
        Ok(Baselines {
            compare: compare.as_deref().map(Baseline::load).transpose()?,
            save: save.or_else(|| std::env::var_os(SAVE_BASELINE_ENV).map(PathBuf::from)),
            tolerance,
        })
    }

    /// The baselines the environment names, read once per process: the stock harness's
    /// (`SANDBOX_BASELINE`, `SANDBOX_SAVE_BASELINE`, `SANDBOX_BASELINE_TOLERANCE`).
    pub fn from_environment() -> &'static Result<Baselines, String> {
        static BASELINES: std::sync::OnceLock<Result<Baselines, String>> = std::sync::OnceLock::new();
        BASELINES.get_or_init(|| Baselines::resolve(None, None, None).map_err(|err| err.to_string()))
    }

    /// [`Baselines::check`] on a test's result, which then carries the comparison.
    pub(crate) fn hold(&self, result: &mut TestResult, tolerance: Option<Tolerance>) {
        result.baseline = self.check(&result.name, &mut result.verdict, result.resources.as_ref(), tolerance);
    }

    /// Holds a test that passed against its baseline: it fails when it used more than the
    /// baseline allows. `tolerance` is the test's own (`baseline_tolerance`), if it has one.
    pub(crate) fn check(
        &self,
        test: &str,
        verdict: &mut Verdict,
        used: Option<&Resources>,
        tolerance: Option<Tolerance>,
    ) -> Option<BaselineCheck> {
        let (Some(baseline), Some(used), Verdict::Passed) = (&self.compare, used, &verdict) else { return None };
        let check = BaselineCheck::new(used, baseline.get(test), tolerance.unwrap_or(self.tolerance));
        if check.status == BaselineStatus::Above {
            let kind = FailureKind::AboveBaseline { check: Box::new(check.clone()) };
            *verdict = Verdict::Failed(Failure { kind, summary: None, processes: Vec::new() });
        }
        Some(check)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn used(peak_memory_bytes: Option<u64>, peak_pids: Option<u64>) -> Resources {
        Resources {
            stats: crate::cgroup::Stats { peak_pids, peak_memory_bytes, cpu_usec: Some(41_250), ..Default::default() },
            wall: Duration::from_millis(12),
            timed_out: false,
            not_exact: Vec::new(),
            fs_changes: None,
            privileged: false,
        }
    }

    fn saved(test: &str, memory: u64, pids: u64) -> Figures {
        Figures { test: test.into(), peak_memory_bytes: Some(memory), peak_pids: Some(pids), cpu_usec: None }
    }

    #[test]
    fn a_file_is_sorted_lines_and_saving_keeps_the_other_tests() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("baseline.jsonl");
        Baseline::update_file(&path, [saved("b", 2, 1), saved("a", 1, 1)]).unwrap();
        Baseline::update_file(&path, [saved("b", 3, 2), saved("c", 4, 1)]).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let names: Vec<String> =
            text.lines().map(|line| serde_json::from_str::<Figures>(line).unwrap().test).collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert!(text.starts_with(r#"{"test":"a","peak_memory_bytes":1,"peak_pids":1,"cpu_usec":null}"#), "{text}");
        assert_eq!(Baseline::load(&path).unwrap().get("b"), Some(&saved("b", 3, 2)));

        std::fs::write(&path, "{\"test\":\"a\"}\nnot json\n").unwrap();
        let err = Baseline::load(&path).unwrap_err().to_string();
        assert!(err.contains("baseline.jsonl line 2 is not a test's figures") && err.ends_with("save the baseline again"), "{err}");
        let err = Baseline::load(&dir.path().join("none")).unwrap_err().to_string();
        assert!(err.contains("none: No such file"), "{err}");
    }

    #[test]
    fn memory_may_grow_within_the_tolerance_and_pids_not_at_all() {
        let base = saved("t", 10_800_000, 3);
        let within = BaselineCheck::new(&used(Some(12_000_000), Some(3)), Some(&base), Tolerance::DEFAULT);
        assert_eq!(within.status, BaselineStatus::Within);
        assert_eq!(within.note(), "peak mem +11 % of its baseline");
        assert_eq!(within.peak_memory_change_bytes, Some(1_200_000));

        let grown = BaselineCheck::new(&used(Some(63_333_990), Some(3)), Some(&base), Tolerance::DEFAULT);
        assert_eq!(grown.status, BaselineStatus::Above);
        assert_eq!(grown.to_string(), "peak mem 60.4 MiB, baseline 10.3 MiB (+486 %), allowed 12.3 MiB (10 % + 1.0 MiB)");
        let forked = BaselineCheck::new(&used(Some(10_800_000), Some(5)), Some(&base), Tolerance::DEFAULT);
        assert_eq!(forked.to_string(), "peak pids 5, baseline 3 (+2), may not grow");
        // A tolerance of its own lets the test grow further.
        let loose = BaselineCheck::new(&used(Some(63_333_990), Some(3)), Some(&base), Tolerance { percent: 500, bytes: 0 });
        assert_eq!(loose.status, BaselineStatus::Within);

        let missing = BaselineCheck::new(&used(Some(1), Some(1)), None, Tolerance::DEFAULT);
        assert_eq!((missing.status, missing.note().as_str()), (BaselineStatus::Missing, "not in the baseline"));
        // Where the kernel records no peak, nothing is compared.
        let unknown = BaselineCheck::new(&used(None, None), Some(&base), Tolerance::DEFAULT);
        assert_eq!(unknown.status, BaselineStatus::Within);
    }

    #[test]
    fn only_a_passed_test_is_held_against_the_baseline() {
        let baselines = Baselines {
            compare: Some(Baseline { tests: [("t".to_string(), saved("t", 1 << 20, 1))].into() }),
            ..Baselines::default()
        };
        let grown = used(Some(10 << 20), Some(1));
        let mut verdict = Verdict::Passed;
        let check = baselines.check("t", &mut verdict, Some(&grown), None).unwrap();
        let Verdict::Failed(failure) = verdict else { panic!("{verdict:?}") };
        assert_eq!(
            failure.to_string(),
            "used more than its baseline allows: peak mem 10.0 MiB, baseline 1.0 MiB (+900 %), \
             allowed 2.1 MiB (10 % + 1.0 MiB)"
        );
        assert_eq!(check.status, BaselineStatus::Above);
        let mut failed = Verdict::Failed(Failure::without_run(FailureKind::ServerDied));
        assert!(baselines.check("t", &mut failed, Some(&grown), None).is_none());
        let mut verdict = Verdict::Passed;
        let own = Some(Tolerance { percent: 1000, bytes: 0 });
        assert_eq!(baselines.check("t", &mut verdict, Some(&grown), own).unwrap().status, BaselineStatus::Within);
        assert_eq!(verdict, Verdict::Passed);
    }
}

//! `--junit FILE`: the run as JUnit XML in the Jenkins format (quick-junit, as nextest writes
//! it), which the test reporters of GitLab, Jenkins and GitHub Actions read: one `testcase` per
//! test with its time, a failure's verdict text and output, and what the test used as the
//! testcase's properties (`peak_memory_bytes`, `peak_pids`, `oom_kills`, `pids_limit_hits`, and
//! with `--baseline` the comparison: `baseline`, `baseline_peak_memory_bytes`,
//! `peak_memory_change_bytes`, `peak_memory_change_percent`, `baseline_peak_pids`,
//! `peak_pids_change`; with `fs = overlay` the change list: `fs_changes`, the number, and one
//! `fs_change` per change, its line as the runner prints it; `privileged` = `true` for a test
//! that had the host's root).

use std::path::Path;

use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};

use super::Conclusion;
use crate::testing::Verdict;

/// Writes `conclusion` as the JUnit report of the test target `suite` to `path`.
pub(super) fn write(path: &Path, suite: &str, conclusion: &Conclusion) -> std::io::Result<()> {
    let mut test_suite = TestSuite::new(suite);
    test_suite.set_time(conclusion.elapsed);
    for result in &conclusion.results {
        let status = match &result.verdict {
            Verdict::Passed => TestCaseStatus::success(),
            Verdict::Ignored => TestCaseStatus::skipped(),
            Verdict::Failed(failure) => {
                let text = failure.to_string();
                let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
                status.set_message(text.lines().next().unwrap_or_default()).set_description(text);
                status
            }
        };
        let mut case = TestCase::new(result.name.as_str(), status);
        case.set_classname(suite);
        if let Some(used) = &result.resources {
            case.set_time(used.wall);
            case.add_properties([
                Property::new("peak_memory_bytes", optional(used.stats.peak_memory_bytes)),
                Property::new("peak_pids", optional(used.stats.peak_pids)),
                Property::new("oom_kills", used.stats.oom_kills.to_string()),
                Property::new("pids_limit_hits", used.stats.pids_limit_hits.to_string()),
            ]);
            if used.privileged {
                case.add_property(Property::new("privileged", "true"));
            }
            if let Some(changes) = &used.fs_changes {
                case.add_property(Property::new("fs_changes", changes.len().to_string()));
                case.add_properties(changes.iter().map(|change| Property::new("fs_change", change.to_string())));
            }
        }
        if let Some(check) = &result.baseline {
            case.add_properties([
                Property::new("baseline", check.status.as_str()),
                Property::new("baseline_peak_memory_bytes", optional(check.baseline_peak_memory_bytes)),
                Property::new("peak_memory_change_bytes", optional(check.peak_memory_change_bytes)),
                Property::new("peak_memory_change_percent", optional(check.peak_memory_change_percent)),
                Property::new("baseline_peak_pids", optional(check.baseline_peak_pids)),
                Property::new("peak_pids_change", optional(check.peak_pids_change)),
            ]);
        }
        if !result.output.is_empty() {
            case.set_system_out_lossy(result.output.as_bytes());
        }
        test_suite.add_test_case(case);
    }
    let mut report = Report::new(suite);
    report.set_time(conclusion.elapsed).add_test_suite(test_suite);
    let xml = report.to_string().map_err(std::io::Error::other)?;
    std::fs::write(path, xml)
}

/// A property's value: empty where there is no figure, because the kernel keeps none (a peak
/// without `memory.peak` or `pids.peak`) or the baseline has none for the test.
fn optional<T: ToString>(value: Option<T>) -> String {
    value.map_or_else(String::new, |v| v.to_string())
}

/// The test target's name from the path of its executable: cargo's `<target>-<hash>`.
pub(super) fn suite_name(executable: &Path) -> String {
    let stem = executable.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "tests".into());
    match stem.rsplit_once('-') {
        Some((name, hash)) if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => name.to_string(),
        _ => stem,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_suite_is_the_target_without_cargos_hash() {
        assert_eq!(suite_name(Path::new("/t/debug/deps/isolated_runner-0123456789abcdef")), "isolated_runner");
        assert_eq!(suite_name(Path::new("/usr/bin/contained")), "contained");
        assert_eq!(suite_name(Path::new("my-tests")), "my-tests");
    }
}

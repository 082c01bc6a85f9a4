//! `--report FILE`: every test's verdict and outcome as JSON, a public contract. Each entry is
//! the CLI's `--json` object of the test's run, with its name, verdict and failure message, and
//! with `--baseline` how it compared (`baseline`: `status` `within`, `above` or `missing`, the
//! figures on both sides and the change).

use std::path::Path;

use serde::Serialize;

use super::Conclusion;
use crate::outcome::JsonOutcome;
use crate::testing::fork_server::RanAlone;
use crate::testing::{BaselineCheck, Verdict};

#[derive(Serialize)]
struct Report<'a> {
    tests: Vec<Entry<'a>>,
    passed: usize,
    failed: usize,
    ignored: usize,
    wall_ms: u64,
}

#[derive(Serialize)]
struct Entry<'a> {
    name: &'a str,
    /// `passed`, `failed` or `ignored`.
    verdict: &'static str,
    /// A failure's message; `null` otherwise.
    message: Option<String>,
    /// How it compared with its baseline (`--baseline`), when it was held against one.
    #[serde(skip_serializing_if = "Option::is_none")]
    baseline: Option<&'a BaselineCheck>,
    /// It ran alone: its `mem` is over the memory budget.
    #[serde(skip_serializing_if = "Option::is_none")]
    ran_alone: Option<RanAlone>,
    /// The run's outcome, when it ran.
    #[serde(flatten)]
    outcome: Option<&'a JsonOutcome>,
}

/// Writes the report of `conclusion` to `path`.
pub(super) fn write(path: &Path, conclusion: &Conclusion) -> std::io::Result<()> {
    let tests = conclusion
        .results
        .iter()
        .map(|result| {
            let (verdict, message) = match &result.verdict {
                Verdict::Passed => ("passed", None),
                Verdict::Failed(failure) => ("failed", Some(failure.to_string())),
                Verdict::Ignored => ("ignored", None),
            };
            Entry {
                name: &result.name,
                verdict,
                message,
                baseline: result.baseline.as_ref(),
                ran_alone: result.ran_alone,
                outcome: result.outcome.as_ref(),
            }
        })
        .collect();
    let report = Report {
        tests,
        passed: conclusion.count(|v| matches!(v, Verdict::Passed)),
        failed: conclusion.failed(),
        ignored: conclusion.count(|v| matches!(v, Verdict::Ignored)),
        wall_ms: conclusion.elapsed.as_millis() as u64,
    };
    std::fs::write(path, serde_json::to_string_pretty(&report)? + "\n")
}

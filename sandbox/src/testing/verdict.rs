//! From what the kernel saw and what the child reported to a test's verdict.

use super::{ChildReport, Expect, TestSpec};
use crate::outcome::{signal_name, Ending, Enforcement, Outcome};
use crate::units::{format_bytes, format_duration};

/// Whether an isolated test passed, and if not, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// It passed.
    Passed,
    /// It failed, with a message saying exactly how (and the run's summary).
    Failed(String),
}

fn limit_text(limit: Option<u64>) -> String {
    limit.map(format_bytes).unwrap_or_else(|| "none".into())
}

fn peak_text(peak: Option<u64>) -> String {
    peak.map(format_bytes).unwrap_or_else(|| "n/a".into())
}

/// How the run ended, in the words a failure message needs.
fn ending_text(outcome: &Outcome, report: Option<&ChildReport>) -> String {
    match (outcome.ending(), report) {
        (Ending::TimedOut(after), _) => format!("timed out after {} (killed)", format_duration(after)),
        (Ending::OomKilled, _) => format!(
            "killed by the OOM killer: memory limit {}, peak {}",
            limit_text(outcome.limits.memory_bytes),
            peak_text(outcome.stats.peak_memory_bytes)
        ),
        (_, Some(ChildReport::Panicked(message))) => format!("panicked: {message}"),
        (_, Some(ChildReport::ReturnedError(error))) => format!("returned Err: {error}"),
        (_, Some(ChildReport::Passed)) => "passed".into(),
        (Ending::Signaled(signal), None) => format!("killed by {}", signal_name(signal)),
        (Ending::Exited(0), None) => {
            "the test did not run in the sandboxed child (it was filtered out or renamed)".into()
        }
        (Ending::Exited(code), None) => format!("the sandboxed child exited with code {code} before reporting"),
    }
}

fn pids_note(outcome: &Outcome) -> String {
    if outcome.stats.pids_limit_hits == 0 {
        return String::new();
    }
    let limit = outcome.limits.pids.map(|p| p.to_string()).unwrap_or_else(|| "?".into());
    format!("; pids-limit hits {} (limit {limit})", outcome.stats.pids_limit_hits)
}

/// The verdict for a test with `spec`, given the outcome and the child's report.
pub fn judge(spec: &TestSpec, outcome: &Outcome, report: Option<&ChildReport>) -> Verdict {
    let summary = format!("sandbox: {outcome}");
    let failed = |reason: String| Verdict::Failed(format!("{reason}\n{summary}"));
    // An expected event is only seen through the cgroup's counters.
    let counted = |enforcement: Option<Enforcement>| enforcement == Some(Enforcement::Cgroup);
    let uncountable = match spec.expect {
        Expect::Oom if !counted(outcome.enforcement.memory) => Some("OOM kills"),
        Expect::PidsLimit if !counted(outcome.enforcement.pids) => Some("pids-limit hits"),
        _ => None,
    };
    if let Some(what) = uncountable {
        return failed(format!(
            "cannot check this expectation: {what} are only counted by a cgroup, and this run had none ({}); \
             give the tests a delegated cgroup (SANDBOX_CGROUP_PARENT) or run them as root",
            outcome.enforcement.no_cgroup_reason.as_deref().unwrap_or("no cgroup")
        ));
    }
    match spec.expect {
        Expect::Success => {
            let passed = report == Some(&ChildReport::Passed)
                && outcome.stats.oom_kills == 0
                && !outcome.timed_out
                && outcome.status == crate::ExitStatus::Code(0);
            if passed {
                Verdict::Passed
            } else {
                failed(format!("isolated test failed: {}{}", ending_text(outcome, report), pids_note(outcome)))
            }
        }
        Expect::Oom if outcome.stats.oom_kills > 0 => Verdict::Passed,
        Expect::Oom => failed(format!(
            "expected an OOM kill (memory limit {}), but none happened: {}; peak memory {}",
            limit_text(outcome.limits.memory_bytes),
            ending_text(outcome, report),
            peak_text(outcome.stats.peak_memory_bytes)
        )),
        Expect::PidsLimit if outcome.stats.pids_limit_hits > 0 => Verdict::Passed,
        Expect::PidsLimit => failed(format!(
            "expected the pids limit ({}) to be hit, but no fork was refused: {}; peak pids {}",
            outcome.limits.pids.map(|p| p.to_string()).unwrap_or_else(|| "none".into()),
            ending_text(outcome, report),
            outcome.stats.peak_pids.map(|p| p.to_string()).unwrap_or_else(|| "n/a".into())
        )),
        Expect::Timeout if outcome.timed_out => Verdict::Passed,
        Expect::Timeout => failed(format!(
            "expected the timeout ({}) to fire, but the test ended first: {}",
            outcome.timeout.map(format_duration).unwrap_or_else(|| "none".into()),
            ending_text(outcome, report)
        )),
    }
}

/// The runner's per-test resource note: `pids-limit hits 1312, peak pids 20, peak mem 4.1 MiB, 212 ms`.
pub fn resources(outcome: &Outcome) -> String {
    let mut parts = Vec::new();
    if outcome.stats.oom_kills > 0 {
        parts.push(format!("oom kills {}", outcome.stats.oom_kills));
    }
    if outcome.stats.pids_limit_hits > 0 {
        parts.push(format!("pids-limit hits {}", outcome.stats.pids_limit_hits));
    }
    if let Some(peak) = outcome.stats.peak_pids {
        parts.push(format!("peak pids {peak}"));
    }
    parts.push(format!("peak mem {}", peak_text(outcome.stats.peak_memory_bytes)));
    parts.push(format_duration(outcome.wall));
    if outcome.timed_out {
        parts.push("timed out".into());
    }
    let weaker = outcome.enforcement.weaker_than_cgroup();
    if !weaker.is_empty() {
        parts.push(format!("limits not exact: {}", weaker.join(" ")));
    }
    parts.join(", ")
}


#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroup::Stats;
    use crate::config::Limits;
    use crate::ExitStatus;
    use std::time::Duration;

    /// 212 ms under pids 20 and mem 100M, both enforced by the cgroup, peak at the memory limit.
    fn outcome(status: ExitStatus) -> Outcome {
        let limits = Limits { pids: Some(20), memory_bytes: Some(100 << 20), cpu_cores: None };
        Outcome {
            stats: Stats { peak_memory_bytes: Some(100 << 20), peak_pids: Some(3), ..Stats::default() },
            wall: Duration::from_millis(212),
            enforcement: crate::outcome::Enforcements::for_limits(&limits, None),
            limits,
            ..crate::outcome::sample_outcome(status)
        }
    }

    #[test]
    fn expectations_without_a_cgroup_cannot_be_checked() {
        let mut bomb = outcome(ExitStatus::Code(0));
        bomb.cgroup_version = None;
        bomb.enforcement = crate::outcome::Enforcements::for_limits(&bomb.limits, Some("EACCES".into()));
        let text = reason(judge(&spec(Expect::PidsLimit), &bomb, Some(&ChildReport::Passed)));
        assert!(text.starts_with("cannot check this expectation: pids-limit hits are only counted by a cgroup"), "{text}");
        let text = reason(judge(&spec(Expect::Oom), &bomb, None));
        assert!(text.contains("OOM kills are only counted by a cgroup, and this run had none (EACCES)"), "{text}");
    }

    fn spec(expect: Expect) -> TestSpec {
        TestSpec { expect, ..TestSpec::DEFAULT }
    }

    fn reason(verdict: Verdict) -> String {
        match verdict {
            Verdict::Failed(reason) => reason,
            Verdict::Passed => panic!("expected a failure"),
        }
    }

    #[test]
    fn success_needs_a_passed_report_and_nothing_killed() {
        let ok = outcome(ExitStatus::Code(0));
        assert_eq!(judge(&spec(Expect::Success), &ok, Some(&ChildReport::Passed)), Verdict::Passed);
        let text = reason(judge(&spec(Expect::Success), &ok, None));
        assert!(text.starts_with("isolated test failed: the test did not run"), "{text}");

        let mut oom = outcome(ExitStatus::Signal(9));
        oom.stats.oom_kills = 1;
        let text = reason(judge(&spec(Expect::Success), &oom, None));
        assert!(
            text.starts_with("isolated test failed: killed by the OOM killer: memory limit 100.0 MiB, peak 100.0 MiB"),
            "{text}"
        );
        assert!(text.contains("\nsandbox: killed by the OOM killer · wall 212 ms"), "{text}");

        let mut panicked = outcome(ExitStatus::Code(101));
        panicked.stats.pids_limit_hits = 7;
        let text = reason(judge(&spec(Expect::Success), &panicked, Some(&ChildReport::Panicked("boom".into()))));
        assert!(text.starts_with("isolated test failed: panicked: boom; pids-limit hits 7 (limit 20)"), "{text}");
    }

    #[test]
    fn expectations_require_their_event() {
        let mut bomb = outcome(ExitStatus::Code(0));
        assert!(reason(judge(&spec(Expect::PidsLimit), &bomb, Some(&ChildReport::Passed)))
            .starts_with("expected the pids limit (20) to be hit, but no fork was refused: passed; peak pids 3"));
        bomb.stats.pids_limit_hits = 3;
        assert_eq!(judge(&spec(Expect::PidsLimit), &bomb, Some(&ChildReport::Passed)), Verdict::Passed);

        let mut leak = outcome(ExitStatus::Signal(9));
        assert!(reason(judge(&spec(Expect::Oom), &leak, None)).starts_with("expected an OOM kill (memory limit 100.0 MiB)"));
        leak.stats.oom_kills = 1;
        assert_eq!(judge(&spec(Expect::Oom), &leak, None), Verdict::Passed);

        let mut slow = outcome(ExitStatus::Signal(9));
        slow.timeout = Some(Duration::from_secs(1));
        assert!(reason(judge(&spec(Expect::Timeout), &slow, None)).contains("but the test ended first: killed by SIGKILL"));
        slow.timed_out = true;
        assert_eq!(judge(&spec(Expect::Timeout), &slow, None), Verdict::Passed);
        assert_eq!(resources(&slow), "peak pids 3, peak mem 100.0 MiB, 212 ms, timed out");
    }
}

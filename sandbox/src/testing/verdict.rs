//! From what the kernel saw and what the child reported to a test's verdict, and the one place
//! where a verdict and a test's resources become text.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ChildReport, Expect, ShouldPanic, TestSpec};
use crate::cgroup::Stats;
use crate::outcome::{signal_name, Ending, Enforcement, FsChange, Outcome};
use crate::processes::ProcessInfo;
use crate::units::{format_bytes, format_duration};

/// How an isolated test ended for its runner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Verdict {
    /// It passed.
    Passed,
    /// It failed; the failure says exactly how.
    Failed(Failure),
    /// `#[ignore]`, and not asked for (the runner only).
    Ignored,
}

/// Why a test failed, and the run's summary line when it ran. `Display` is its message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    /// What went wrong.
    pub kind: FailureKind,
    /// The run's summary (an [`Outcome`]'s `Display`), printed after the reason; `None` when the
    /// test did not run.
    pub summary: Option<String>,
    /// What was still running when its timeout fired.
    pub processes: Vec<ProcessInfo>,
}

/// What went wrong in a failed test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum FailureKind {
    /// The sandbox could not be made; the test did not run.
    NotSandboxed {
        /// The launcher's error, with its cause and fix.
        error: String,
    },
    /// The fork server that was running the test died.
    ServerDied,
    /// A fork server was asked for a test this binary does not have.
    NoSuchTest {
        /// The name asked for.
        name: String,
    },
    /// The test is registered twice in this binary: a `#[test]` above `#[isolated]`.
    RegisteredTwice {
        /// The test's name.
        name: String,
    },
    /// `expect` names an event only a cgroup counts, and the run had no cgroup.
    Uncountable {
        /// `OOM kills` or `pids-limit hits`.
        events: String,
        /// Why the run had no cgroup.
        no_cgroup_reason: String,
    },
    /// No expectation, and the body did not pass.
    Failed {
        /// How it ended.
        ending: String,
        /// Forks the pids limit refused, and the limit.
        pids_limit_hits: u64,
        /// The pids limit.
        pids_limit: Option<u64>,
    },
    /// `expect = "oom"`, and nothing was OOM-killed.
    NoOomKill {
        /// How it ended.
        ending: String,
        /// The memory limit.
        memory_limit: Option<u64>,
        /// The memory peak.
        peak_memory: Option<u64>,
    },
    /// `expect = "pids_limit"`, and no fork was refused.
    NoPidsLimitHit {
        /// How it ended.
        ending: String,
        /// The pids limit.
        pids_limit: Option<u64>,
        /// The peak number of processes.
        peak_pids: Option<u64>,
    },
    /// `expect = "timeout"`, and the test ended first.
    NoTimeout {
        /// How it ended.
        ending: String,
        /// The timeout.
        timeout: Option<Duration>,
    },
    /// `#[should_panic]`, and the body did not panic (sandbox's runner).
    DidNotPanic,
    /// It passed, but used more than its baseline allows (`--baseline`).
    AboveBaseline {
        /// The figures that grew, against the baseline's.
        check: Box<super::BaselineCheck>,
    },
    /// Its limits did not hold: processes of it outside its cgroup, or its limit files changed.
    NotContained {
        /// The processes outside, as rendered.
        escaped: Vec<String>,
        /// The limit files changed.
        limits_changed: Vec<String>,
    },
    /// `host_writes = "fail"`, and the test changed host files (which the overlay discarded).
    HostWrites {
        /// What it changed.
        changes: Vec<FsChange>,
    },
    /// `#[should_panic(expected = "..")]`, and the panic did not contain the text.
    WrongPanic {
        /// The panic's message.
        message: String,
        /// The text it should have contained.
        expected: String,
    },
}

impl Failure {
    /// A failure of a test that did not run.
    pub fn without_run(kind: FailureKind) -> Failure {
        Failure { kind, summary: None, processes: Vec::new() }
    }

    /// The sandbox for the test could not be made (`error`, the launcher's error).
    pub fn not_sandboxed(error: &dyn fmt::Display) -> Failure {
        Failure::without_run(FailureKind::NotSandboxed { error: error.to_string() })
    }

    /// A second run of test `name` in one process (see `run_test`).
    pub fn registered_twice(name: &str) -> Failure {
        Failure::without_run(FailureKind::RegisteredTwice { name: name.to_string() })
    }

    fn after(outcome: &Outcome, kind: FailureKind) -> Failure {
        Failure { kind, summary: Some(outcome.to_string()), processes: outcome.processes.clone() }
    }
}

fn limit_text(limit: Option<u64>) -> String {
    limit.map(format_bytes).unwrap_or_else(|| "none".into())
}

fn peak_text(peak: Option<u64>) -> String {
    peak.map(format_bytes).unwrap_or_else(|| "n/a".into())
}

fn count_text(count: Option<u64>, absent: &str) -> String {
    count.map(|c| c.to_string()).unwrap_or_else(|| absent.into())
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailureKind::NotSandboxed { error } => write!(
                f,
                "cannot sandbox this test: {error}\n(the test was not run; `sandbox check` shows what this machine allows)"
            ),
            FailureKind::ServerDied => write!(f, "the fork server running this test died"),
            FailureKind::NoSuchTest { name } => write!(f, "sandbox: no #[isolated] test named '{name}' in this binary"),
            FailureKind::RegisteredTwice { name } => write!(
                f,
                "sandbox: '{name}' runs a second time in this test binary: a #[test] above #[isolated] registers it \
                 again (test-case puts one first on a plain fn). Remove that #[test], and write #[isolated] above \
                 #[test_case(..)]: `#[isolated(..)] #[test_case(1)] fn case(x: u32)`"
            ),
            FailureKind::Uncountable { events, no_cgroup_reason } => write!(
                f,
                "cannot check this expectation: {events} are only counted by a cgroup, and this run had none \
                 ({no_cgroup_reason}); give the tests a delegated cgroup (SANDBOX_CGROUP_PARENT) or run them as root"
            ),
            FailureKind::Failed { ending, pids_limit_hits, pids_limit } => {
                write!(f, "isolated test failed: {ending}")?;
                if *pids_limit_hits > 0 {
                    write!(f, "; pids-limit hits {pids_limit_hits} (limit {})", count_text(*pids_limit, "?"))?;
                }
                Ok(())
            }
            FailureKind::NoOomKill { ending, memory_limit, peak_memory } => write!(
                f,
                "expected an OOM kill (memory limit {}), but none happened: {ending}; peak memory {}",
                limit_text(*memory_limit),
                peak_text(*peak_memory)
            ),
            FailureKind::NoPidsLimitHit { ending, pids_limit, peak_pids } => write!(
                f,
                "expected the pids limit ({}) to be hit, but no fork was refused: {ending}; peak pids {}",
                count_text(*pids_limit, "none"),
                count_text(*peak_pids, "n/a")
            ),
            FailureKind::NoTimeout { ending, timeout } => write!(
                f,
                "expected the timeout ({}) to fire, but the test ended first: {ending}",
                timeout.map(format_duration).unwrap_or_else(|| "none".into())
            ),
            FailureKind::DidNotPanic => write!(f, "test did not panic as expected"),
            FailureKind::AboveBaseline { check } => write!(f, "used more than its baseline allows: {check}"),
            FailureKind::NotContained { escaped, limits_changed } => {
                write!(f, "the test's limits did not hold, so its figures do not cover all it did")?;
                for process in escaped {
                    write!(f, "\n  outside the test's cgroup: {process}")?;
                }
                for limit in limits_changed {
                    write!(f, "\n  changed inside the test: {limit}")?;
                }
                Ok(())
            }
            FailureKind::HostWrites { changes } => {
                write!(f, "the test changed {} host path(s) under host_writes = \"fail\" (discarded):", changes.len())?;
                for change in changes {
                    write!(f, "\n  {change}")?;
                }
                Ok(())
            }
            FailureKind::WrongPanic { message, expected } => write!(
                f,
                "panic did not contain expected string\n      panic message: {message:?}\n expected substring: {expected:?}"
            ),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.kind)?;
        if let Some(summary) = &self.summary {
            write!(f, "\nsandbox: {summary}")?;
        }
        if !self.processes.is_empty() {
            write!(f, "\n{}", crate::processes::render(&self.processes))?;
        }
        Ok(())
    }
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

/// The verdict for a test with `spec`, given the outcome and the child's report: a pass
/// turns into a failure when the test changed host files under `host_writes = "fail"`.
pub fn judge(spec: &TestSpec, outcome: &Outcome, report: Option<&ChildReport>) -> Verdict {
    judge_containment_and_host_writes(judge_run(spec, outcome, report), outcome)
}

/// A passing verdict fails when the run was not contained, or changed host files under
/// `host_writes = "fail"`.
fn judge_containment_and_host_writes(verdict: Verdict, outcome: &Outcome) -> Verdict {
    if !outcome.contained() && !matches!(verdict, Verdict::Ignored) {
        let escaped = outcome.escaped.iter().map(ToString::to_string).collect();
        let limits_changed = outcome.limits_changed.clone();
        return Verdict::Failed(Failure::after(outcome, FailureKind::NotContained { escaped, limits_changed }));
    }
    match (&verdict, &outcome.fs_changes) {
        (Verdict::Passed, Some(changes)) if outcome.refused_host_writes() => {
            Verdict::Failed(Failure::after(outcome, FailureKind::HostWrites { changes: changes.clone() }))
        }
        _ => verdict,
    }
}

/// [`judge`] before the host writes are looked at.
fn judge_run(spec: &TestSpec, outcome: &Outcome, report: Option<&ChildReport>) -> Verdict {
    let failed = |kind: FailureKind| Verdict::Failed(Failure::after(outcome, kind));
    // An expected event is only seen through the cgroup's counters.
    let counted = |enforcement: Option<Enforcement>| enforcement == Some(Enforcement::Cgroup);
    let uncountable = match spec.expect {
        Expect::Oom if !counted(outcome.enforcement.memory) => Some("OOM kills"),
        Expect::PidsLimit if !counted(outcome.enforcement.pids) => Some("pids-limit hits"),
        _ => None,
    };
    if let Some(events) = uncountable {
        return failed(FailureKind::Uncountable {
            events: events.into(),
            no_cgroup_reason: outcome.enforcement.no_cgroup_reason.clone().unwrap_or_else(|| "no cgroup".into()),
        });
    }
    let ending = || ending_text(outcome, report);
    match spec.expect {
        Expect::Success => {
            let passed = report == Some(&ChildReport::Passed)
                && outcome.stats.oom_kills == 0
                && !outcome.timed_out
                && outcome.status == crate::ExitStatus::Code(0);
            if passed {
                Verdict::Passed
            } else {
                failed(FailureKind::Failed {
                    ending: ending(),
                    pids_limit_hits: outcome.stats.pids_limit_hits,
                    pids_limit: outcome.limits.pids,
                })
            }
        }
        Expect::Oom if outcome.stats.oom_kills > 0 => Verdict::Passed,
        Expect::Oom => failed(FailureKind::NoOomKill {
            ending: ending(),
            memory_limit: outcome.limits.memory_bytes,
            peak_memory: outcome.stats.peak_memory_bytes,
        }),
        Expect::PidsLimit if outcome.stats.pids_limit_hits > 0 => Verdict::Passed,
        Expect::PidsLimit => failed(FailureKind::NoPidsLimitHit {
            ending: ending(),
            pids_limit: outcome.limits.pids,
            peak_pids: outcome.stats.peak_pids,
        }),
        Expect::Timeout if outcome.timed_out => Verdict::Passed,
        Expect::Timeout => failed(FailureKind::NoTimeout { ending: ending(), timeout: outcome.timeout }),
    }
}

/// `#[should_panic]` judged as libtest judges it (the body must panic, with the expected text);
/// `None` without the attribute.
pub fn judge_should_panic(should_panic: ShouldPanic, outcome: &Outcome, report: Option<&ChildReport>) -> Option<Verdict> {
    judge_panic(should_panic, outcome, report).map(|verdict| judge_containment_and_host_writes(verdict, outcome))
}

/// [`judge_should_panic`] before the host writes are looked at.
fn judge_panic(should_panic: ShouldPanic, outcome: &Outcome, report: Option<&ChildReport>) -> Option<Verdict> {
    let failed = |kind: FailureKind| Some(Verdict::Failed(Failure::after(outcome, kind)));
    match (should_panic, report) {
        (ShouldPanic::No, _) => None,
        (ShouldPanic::Yes, Some(ChildReport::Panicked(_))) => Some(Verdict::Passed),
        (ShouldPanic::WithMessage(expected), Some(ChildReport::Panicked(message))) => {
            if message.contains(expected) {
                Some(Verdict::Passed)
            } else {
                failed(FailureKind::WrongPanic { message: message.clone(), expected: expected.into() })
            }
        }
        (_, _) => failed(FailureKind::DidNotPanic),
    }
}

/// What a test used, as the runner prints it after the verdict:
/// `pids-limit hits 1312, peak pids 20, peak mem 4.1 MiB, 212 ms`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resources {
    /// The run's counters: OOM kills, pids-limit hits, the peaks, the CPU time.
    pub stats: Stats,
    /// How long the run took.
    pub wall: Duration,
    /// The timeout ended it.
    pub timed_out: bool,
    /// The limits enforced by less than a cgroup, and how.
    pub not_exact: Vec<String>,
    /// `fs = overlay`: what the test changed on the host's file systems (discarded).
    #[serde(default)]
    pub fs_changes: Option<Vec<FsChange>>,
    /// The test had the host's root instead of the run's containment (`privileged = true`).
    #[serde(default)]
    pub privileged: bool,
}

impl Resources {
    /// What the run of `outcome` used.
    pub fn of(outcome: &Outcome) -> Resources {
        Resources {
            stats: outcome.stats.clone(),
            wall: outcome.wall,
            timed_out: outcome.timed_out,
            not_exact: outcome.enforcement.weaker_than_cgroup(),
            fs_changes: outcome.fs_changes.clone(),
            privileged: outcome.enforcement.privileged,
        }
    }
}

impl fmt::Display for Resources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.stats.oom_kills > 0 {
            write!(f, "oom kills {}, ", self.stats.oom_kills)?;
        }
        if self.stats.pids_limit_hits > 0 {
            write!(f, "pids-limit hits {}, ", self.stats.pids_limit_hits)?;
        }
        if let Some(peak) = self.stats.peak_pids {
            write!(f, "peak pids {peak}, ")?;
        }
        write!(f, "peak mem {}, {}", peak_text(self.stats.peak_memory_bytes), format_duration(self.wall))?;
        if self.timed_out {
            write!(f, ", timed out")?;
        }
        if self.privileged {
            write!(f, ", privileged")?;
        }
        if !self.not_exact.is_empty() {
            write!(f, ", limits not exact: {}", self.not_exact.join(" "))?;
        }
        if let Some(changes) = &self.fs_changes {
            write_changes(f, changes)?;
        }
        Ok(())
    }
}

/// The runner line's part of a change list: `, changed no host files`, or the count and the
/// first few changes.
fn write_changes(f: &mut fmt::Formatter<'_>, changes: &[FsChange]) -> fmt::Result {
    /// More would make the line unreadable; the JSON report has them all.
    const SHOWN: usize = 3;
    if changes.is_empty() {
        return write!(f, ", changed no host files");
    }
    write!(f, ", changed {} host path(s): ", changes.len())?;
    for (index, change) in changes.iter().take(SHOWN).enumerate() {
        write!(f, "{}{change}", if index == 0 { "" } else { "; " })?;
    }
    if changes.len() > SHOWN {
        write!(f, "; and {} more", changes.len() - SHOWN)?;
    }
    Ok(())
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
            Verdict::Failed(failure) => failure.to_string(),
            other => panic!("expected a failure, got {other:?}"),
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
        assert_eq!(Resources::of(&slow).to_string(), "peak pids 3, peak mem 100.0 MiB, 212 ms, timed out");
    }

    #[test]
    fn should_panic_is_judged_as_libtest_judges_it() {
        let ended = outcome(ExitStatus::Code(101));
        let panicked = ChildReport::Panicked("index out of bounds: the len is 3".into());
        assert_eq!(judge_should_panic(ShouldPanic::No, &ended, Some(&panicked)), None);
        assert_eq!(judge_should_panic(ShouldPanic::Yes, &ended, Some(&panicked)), Some(Verdict::Passed));
        let wanted = ShouldPanic::WithMessage("out of bounds");
        assert_eq!(judge_should_panic(wanted, &ended, Some(&panicked)), Some(Verdict::Passed));
        let text = reason(judge_should_panic(ShouldPanic::WithMessage("overflow"), &ended, Some(&panicked)).unwrap());
        assert!(text.starts_with("panic did not contain expected string\n      panic message: \"index out of bounds"), "{text}");
        assert!(text.contains(" expected substring: \"overflow\"\nsandbox: exit 101"), "{text}");
        let text = reason(judge_should_panic(ShouldPanic::Yes, &outcome(ExitStatus::Code(0)), Some(&ChildReport::Passed)).unwrap());
        assert!(text.starts_with("test did not panic as expected\nsandbox: "), "{text}");
    }

    #[test]
    fn a_failure_without_a_run_has_no_summary_and_crosses_a_pipe_intact() {
        let failure = Failure::not_sandboxed(&"a cgroup is required");
        assert_eq!(
            failure.to_string(),
            "cannot sandbox this test: a cgroup is required\n(the test was not run; `sandbox check` shows what this machine allows)"
        );
        let judged = judge(&spec(Expect::Oom), &outcome(ExitStatus::Code(0)), Some(&ChildReport::Passed));
        for verdict in [Verdict::Passed, Verdict::Ignored, Verdict::Failed(failure), judged] {
            let text = serde_json::to_string(&verdict).unwrap();
            assert_eq!(serde_json::from_str::<Verdict>(&text).unwrap(), verdict, "{text}");
        }
        let resources = Resources::of(&outcome(ExitStatus::Code(0)));
        let text = serde_json::to_string(&resources).unwrap();
        assert_eq!(serde_json::from_str::<Resources>(&text).unwrap(), resources);
    }

    #[test]
    fn a_privileged_test_says_so_on_its_line() {
        let mut ran = outcome(ExitStatus::Code(0));
        assert_eq!(Resources::of(&ran).to_string(), "peak pids 3, peak mem 100.0 MiB, 212 ms");
        ran.enforcement.privileged = true;
        let resources = Resources::of(&ran);
        assert_eq!(resources.to_string(), "peak pids 3, peak mem 100.0 MiB, 212 ms, privileged");
        let text = serde_json::to_string(&resources).unwrap();
        assert_eq!(serde_json::from_str::<Resources>(&text).unwrap(), resources);
        // Sent before the field was: not privileged.
        let mut old = serde_json::to_value(&resources).unwrap();
        old.as_object_mut().unwrap().remove("privileged");
        assert_eq!(serde_json::from_value::<Resources>(old).unwrap(), Resources { privileged: false, ..resources });
    }
}

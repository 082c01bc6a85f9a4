//! The `harness = false` runner: finds every `#[isolated]` test of the target, runs each in its
//! own sandbox, and prints its verdict with the resources it used:
//!
//! ```text
//! test fork_bomb_is_contained ... ok (pids-limit hits 1312, peak pids 20, peak mem 4.1 MiB, 212 ms)
//! ```
//!
//! Command-line flags are libtest's, parsed by `libtest-mimic` (filters, `--exact`, `--skip`,
//! `--list`, `--ignored`, `--include-ignored`, `--test-threads`, `--nocapture`, `--format
//! terse`), plus sandbox's own: `--report FILE` (a JSON report), `--junit FILE` (JUnit XML),
//! `--save-baseline FILE`, `--baseline FILE` and `--baseline-tolerance TOL` (resource
//! baselines, `testing::baseline`), and `--mem-budget SIZE` (how much declared memory may run at
//! once, `schedule`). libtest-mimic's own run loop cannot print a test's resources after its
//! `ok`, so the loop is here; what it prints is in `printer`, the files in `report` and `junit`.

mod junit;
mod printer;
mod report;
mod schedule;

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, FormatSetting, Trial};

use crate::testing::baseline::{Baseline, Figures};
use crate::testing::fork_server::{self, ForkServer, RanAlone, ServeOptions, TestResult};
use crate::testing::{Baselines, ChildHarness, OutputMode, TestCase, Verdict, CHILD_ENV};
use printer::Printer;
use schedule::Schedule;

/// Runs the target's `#[isolated]` tests with libtest's command line; exits 0 when all passed,
/// 101 otherwise. In a sandboxed child it runs the one test it was started for.
///
/// A `harness = false` test target (`[[test]] name = "contained", harness = false` in
/// Cargo.toml) is its `#[isolated]` tests and this as `main` (`sandbox::main!();` writes it):
///
/// ```no_run
/// use sandbox::isolated;
///
/// #[isolated(pids = 20, expect = "pids_limit")]
/// fn fork_bomb_is_contained() {
///     while std::process::Command::new("sleep").arg("30").spawn().is_ok() {}
/// }
///
/// fn main() {
///     sandbox::harness::main()
/// }
/// ```
pub fn main() -> ! {
    if let Some(name) = std::env::var_os(CHILD_ENV) {
        let name = name.to_string_lossy().into_owned();
        match all_cases().into_iter().find(|case| case.test_name() == name) {
            Some(case) => crate::testing::run_child_body(case.body, None),
            None => {
                eprintln!("sandbox: no #[isolated] test named '{name}' in this binary");
                std::process::exit(2);
            }
        }
    }
    let (flags, rest) = split_runner_flags(std::env::args_os().collect());
    let args = Arguments::from_iter(rest);
    let settings = match Settings::resolve(&flags) {
        Ok(settings) => settings,
        Err(message) => {
            eprintln!("sandbox: {message}");
            std::process::exit(2);
        }
    };
    let conclusion = run(&args, &settings, flags.report.is_some());
    let mut code = conclusion.exit_code();
    // A listing runs nothing to report.
    if !args.list {
        if let Some(path) = &settings.baselines.save {
            if let Err(err) = Baseline::update_file(path, conclusion.results.iter().filter_map(Figures::to_save)) {
                eprintln!("sandbox: saving {err}");
                code = 101;
            }
        }
        let suite = junit::suite_name(&std::env::current_exe().unwrap_or_default());
        let written = [
            flags.report.map(|path| (report::write(&path, &conclusion), path, "report")),
            flags.junit.map(|path| (junit::write(&path, &suite, &conclusion), path, "JUnit report")),
        ];
        for (result, path, what) in written.into_iter().flatten() {
            if let Err(err) = result {
                eprintln!("sandbox: writing the {what} to {}: {err}", path.display());
                code = 101;
            }
        }
    }
    std::process::exit(code)
}

fn all_cases() -> Vec<&'static TestCase> {
    let mut cases: Vec<&'static TestCase> = inventory::iter::<TestCase>.into_iter().collect();
    cases.sort_by_cached_key(|case| case.test_name());
    cases
}

/// The runner's own flags, which libtest-mimic would reject.
#[derive(Debug, Default, PartialEq)]
struct RunnerFlags {
    /// `--report FILE` (or `SANDBOX_REPORT`): the JSON report.
    report: Option<PathBuf>,
    /// `--junit FILE` (or `SANDBOX_JUNIT`): JUnit XML.
    junit: Option<PathBuf>,
    /// `--baseline FILE` (or `SANDBOX_BASELINE`): the baseline to hold the tests against.
    baseline: Option<PathBuf>,
    /// `--save-baseline FILE` (or `SANDBOX_SAVE_BASELINE`): where to save what they used.
    save_baseline: Option<PathBuf>,
    /// `--baseline-tolerance TOL` (or `SANDBOX_BASELINE_TOLERANCE`).
    baseline_tolerance: Option<OsString>,
    /// `--mem-budget SIZE` (or `SANDBOX_MEM_BUDGET`).
    mem_budget: Option<OsString>,
}

/// Takes the runner's own flags (`--flag VALUE` or `--flag=VALUE`) out of the arguments; the
/// files are also named by the environment where the command line does not (the baseline's
/// by [`Baselines::resolve`]).
fn split_runner_flags(args: Vec<OsString>) -> (RunnerFlags, Vec<OsString>) {
    let mut flags = RunnerFlags {
        report: std::env::var_os("SANDBOX_REPORT").map(PathBuf::from),
        junit: std::env::var_os("SANDBOX_JUNIT").map(PathBuf::from),
        mem_budget: std::env::var_os("SANDBOX_MEM_BUDGET"),
        ..RunnerFlags::default()
    };
    let mut rest = Vec::with_capacity(args.len());
    let mut iter = args.into_iter();
    while let Some(arg) = iter.next() {
        let text = arg.to_str().unwrap_or_default();
        let (flag, inline) = match text.split_once('=') {
            Some((flag, value)) => (flag, Some(OsString::from(value))),
            None => (text, None),
        };
        let value = |iter: &mut std::vec::IntoIter<OsString>| inline.clone().or_else(|| iter.next());
        match flag {
            "--report" => flags.report = value(&mut iter).map(PathBuf::from),
            "--junit" => flags.junit = value(&mut iter).map(PathBuf::from),
            "--baseline" => flags.baseline = value(&mut iter).map(PathBuf::from),
            "--save-baseline" => flags.save_baseline = value(&mut iter).map(PathBuf::from),
            "--baseline-tolerance" => flags.baseline_tolerance = value(&mut iter),
            "--mem-budget" => flags.mem_budget = value(&mut iter),
            _ => rest.push(arg),
        }
    }
    (flags, rest)
}

/// What the runner's own flags ask of a run.
struct Settings {
    baselines: Baselines,
    /// How much declared memory may run at once; `None` where nothing tells.
    mem_budget: Option<u64>,
}

impl Settings {
    /// The flags read and checked: an unreadable baseline or a bad size is one message.
    fn resolve(flags: &RunnerFlags) -> Result<Settings, String> {
        let text = |value: &Option<OsString>| value.as_ref().map(|v| v.to_string_lossy().into_owned());
        let baselines = Baselines::resolve(flags.baseline.clone(), flags.save_baseline.clone(), text(&flags.baseline_tolerance))
            .map_err(|err| err.to_string())?;
        let mem_budget = match text(&flags.mem_budget) {
            Some(size) => Some(crate::units::parse_size(&size).map_err(|err| format!("--mem-budget: {err}"))?),
            None => schedule::default_budget(),
        };
        Ok(Settings { baselines, mem_budget })
    }
}

/// What a run of the runner ended with: every test's result, in the order they finished.
#[must_use = "a run's conclusion is its exit code"]
pub(crate) struct Conclusion {
    results: Vec<TestResult>,
    filtered_out: usize,
    elapsed: Duration,
}

impl Conclusion {
    fn count(&self, want: fn(&Verdict) -> bool) -> usize {
        self.results.iter().filter(|result| want(&result.verdict)).count()
    }

    fn failed(&self) -> usize {
        self.count(|v| matches!(v, Verdict::Failed(_)))
    }

    /// libtest's: 0 when nothing failed, 101 otherwise.
    fn exit_code(&self) -> i32 {
        if self.failed() == 0 {
            0
        } else {
            101
        }
    }
}

fn run(args: &Arguments, settings: &Settings, keep_outcomes: bool) -> Conclusion {
    let cases = all_cases();
    let trials: Vec<Trial> =
        cases.iter().map(|case| Trial::test(case.test_name(), || Ok(())).with_ignored_flag(case.ignore)).collect();
    // (the test, ignored?)
    let selected: Vec<(&'static TestCase, bool)> = cases
        .iter()
        .zip(&trials)
        .filter(|(_, trial)| !args.is_filtered_out(trial))
        .map(|(case, trial)| (*case, args.is_ignored(trial)))
        .collect();
    let filtered_out = cases.len() - selected.len();
    let printer = Printer { terse: matches!(args.format, Some(FormatSetting::Terse)) };

    if args.list {
        // `--list --ignored` (how nextest finds ignored tests) lists only those.
        let listed: Vec<String> =
            selected.iter().filter(|(case, _)| !args.ignored || case.ignore).map(|(case, _)| case.test_name()).collect();
        printer.list(&listed);
        return Conclusion { results: Vec::new(), filtered_out, elapsed: Duration::ZERO };
    }

    let started = Instant::now();
    let threads = args.test_threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())).max(1);
    let options = ServeOptions {
        output: if args.nocapture { OutputMode::PassThrough } else { OutputMode::Collect },
        keep_outcomes,
        judge_should_panic: true,
    };
    printer.start(selected.len());

    // Fork servers first, while this process is single-threaded: a copy of it per test thread,
    // which then runs each test in a sandbox without exec'ing the test binary again.
    let mut servers = fork_servers(threads, options).into_iter();
    let schedule = Schedule::new(selected, settings.mem_budget);
    let finished = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            let mut server = servers.next();
            let (schedule, finished, printer) = (&schedule, &finished, &printer);
            scope.spawn(move || {
                if let Some(cpu) = server.as_ref().and_then(|server| server.cpu) {
                    // Beside its fork server (see testing::affinity).
                    crate::testing::affinity::pin_to(cpu);
                }
                while let Some(started) = schedule.next() {
                    let (case, ignored) = started.test;
                    let mut result = run_one(case, ignored, server.as_mut(), options);
                    result.ran_alone = started.alone_over.map(|budget_bytes| RanAlone {
                        memory_bytes: started.memory,
                        declared: case.spec.mem_bytes.is_some(),
                        budget_bytes,
                    });
                    // Its sandbox is gone: its memory no longer counts.
                    drop(started);
                    settings.baselines.hold(&mut result, case.spec.baseline_tolerance);
                    record(result, printer, keep_outcomes, finished);
                }
                if let Some(server) = server {
                    server.finish();
                }
            });
        }
    });
    let results = finished.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner());
    let conclusion = Conclusion { results, filtered_out, elapsed: started.elapsed() };
    printer.conclusion(&conclusion);
    conclusion
}

/// Runs one test in this thread's fork server, or (without one) by executing the test binary.
fn run_one(case: &'static TestCase, ignored: bool, server: Option<&mut ForkServer>, options: ServeOptions) -> TestResult {
    let name = case.test_name();
    if ignored {
        return TestResult::without_run(name, Verdict::Ignored);
    }
    let run = || match server {
        Some(server) => server.run(&name).unwrap_or_else(|| {
            let died = crate::testing::Failure::without_run(crate::testing::FailureKind::ServerDied);
            TestResult::without_run(name.clone(), Verdict::Failed(died))
        }),
        None => fork_server::run_reexecuted(case, options, ChildHarness::Runner),
    };
    match case.lock {
        // serial_test's lock, held by this thread while the test runs (testing::lock).
        Some(lock) => crate::testing::run_locked(lock, run),
        None => run(),
    }
}

/// Prints a test's line as it ends, from the thread that ran it (no hand-over to another thread
/// per test), and keeps what the summary and `--report` need: a failure's output, and the
/// outcome with `--report`.
fn record(mut result: TestResult, printer: &Printer, keep_outcome: bool, finished: &Mutex<Vec<TestResult>>) {
    let mut finished = finished.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    printer.test(&result);
    if !matches!(result.verdict, Verdict::Failed(_)) {
        result.output = String::new();
    }
    if !keep_outcome {
        result.outcome = None;
    }
    finished.push(result);
}

/// Forks `count` servers, or none (then tests are re-executed) when this process already has
/// threads, whose locks a copy could inherit in a held state.
fn fork_servers(count: usize, options: ServeOptions) -> Vec<ForkServer> {
    // On a systemd host the servers share one scope, asked for before they are forked (each
    // would otherwise ask for its own at its first test).
    if crate::cgroup::parent_from_environment().is_none() {
        if let Ok(crate::cgroup::Layout::Unified { mount_point }) = crate::cgroup::Layout::current() {
            let _ = crate::cgroup::systemd::ensure_own_scope(mount_point);
        }
    }
    ForkServer::fork_all(count, &pinned_cpus(count), options)
}

/// The CPU for each of `count` fork servers (and its runner thread), or none when there are
/// more servers than CPUs to run on (then the scheduler places them).
fn pinned_cpus(count: usize) -> Vec<usize> {
    let cpus = crate::testing::affinity::allowed_cpus();
    if count > cpus.len() {
        return Vec::new();
    }
    cpus.into_iter().take(count).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runners_own_flags_are_taken_out() {
        let args = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        let (flags, rest) = split_runner_flags(args(&["bin", "--report", "r.json", "--exact", "x", "--junit", "j.xml"]));
        assert_eq!((flags.report, flags.junit), (Some("r.json".into()), Some("j.xml".into())));
        assert_eq!(rest, args(&["bin", "--exact", "x"]));
        let (flags, rest) = split_runner_flags(args(&["bin", "--report=out.json", "filter", "--junit=a.xml", "--reporter"]));
        assert_eq!((flags.report, flags.junit), (Some("out.json".into()), Some("a.xml".into())));
        assert_eq!(rest, args(&["bin", "filter", "--reporter"]));
        let (flags, rest) = split_runner_flags(args(&[
            "bin",
            "--baseline=b.jsonl",
            "--save-baseline",
            "s.jsonl",
            "--baseline-tolerance",
            "25%",
            "--mem-budget=2G",
            "--test-threads=4",
        ]));
        assert_eq!((flags.baseline, flags.save_baseline), (Some("b.jsonl".into()), Some("s.jsonl".into())));
        assert_eq!((flags.baseline_tolerance, flags.mem_budget), (Some("25%".into()), Some("2G".into())));
        assert_eq!(rest, args(&["bin", "--test-threads=4"]));
    }
}

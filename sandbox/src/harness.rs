//! The `harness = false` runner: finds every `#[isolated]` test of the target, runs each in its
//! own sandbox, and prints its verdict with the resources it used:
//!
//! ```text
//! test fork_bomb_is_contained ... ok (pids-limit hits 1312, peak pids 20, peak mem 4.1 MiB, 212 ms)
//! ```
//!
//! Command-line flags are libtest's, parsed by `libtest-mimic` (filters, `--exact`, `--skip`,
//! `--list`, `--ignored`, `--include-ignored`, `--test-threads`, `--nocapture`, `--format
//! terse`), plus `--report FILE` for a JSON report. libtest-mimic's own run loop cannot print a
//! test's resources after its `ok`, so the loop is here.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, FormatSetting, Trial};
use serde::{Deserialize, Serialize};

use crate::testing::{
    judge, resources, run_function_isolated, run_isolated, ChildHarness, ChildReport, IsolatedRun, OutputMode,
    ShouldPanic, TestCase, Verdict, CHILD_ENV,
};

/// One test's result in the runner (also what a fork server sends back, as a JSON line).
#[derive(Serialize, Deserialize)]
struct Finished {
    name: String,
    verdict: TestVerdict,
    /// The resources it used: `pids-limit hits 3, peak pids 20, peak mem 4.1 MiB, 52 ms`.
    note: Option<String>,
    /// Its stdout and stderr, interleaved (empty with `--nocapture`).
    output: String,
    /// The outcome as the CLI's JSON object.
    outcome: Option<serde_json::Value>,
}

#[derive(Serialize, Deserialize)]
enum TestVerdict {
    Passed,
    Failed(String),
    Ignored,
}

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
    let (report_path, rest) = split_report_flag(std::env::args_os().collect());
    let args = Arguments::from_iter(rest);
    let code = run(&args, report_path);
    std::process::exit(code)
}

fn all_cases() -> Vec<&'static TestCase> {
    let mut cases: Vec<&'static TestCase> = inventory::iter::<TestCase>.into_iter().collect();
    cases.sort_by_cached_key(|case| case.test_name());
    cases
}

/// Takes `--report FILE` / `--report=FILE` out of the arguments (libtest-mimic rejects it).
fn split_report_flag(args: Vec<OsString>) -> (Option<PathBuf>, Vec<OsString>) {
    let mut report = std::env::var_os("SANDBOX_REPORT").map(PathBuf::from);
    let mut rest = Vec::with_capacity(args.len());
    let mut iter = args.into_iter();
    while let Some(arg) = iter.next() {
        if arg == "--report" {
            report = iter.next().map(PathBuf::from);
        } else if let Some(value) = arg.to_str().and_then(|a| a.strip_prefix("--report=")) {
            report = Some(PathBuf::from(value));
        } else {
            rest.push(arg);
        }
    }
    (report, rest)
}

fn run(args: &Arguments, report_path: Option<PathBuf>) -> i32 {
    let cases = all_cases();
    let trials: Vec<Trial> =
        cases.iter().map(|case| Trial::test(case.test_name(), || Ok(())).with_ignored_flag(case.ignore)).collect();
    // (index in `cases`, which a fork server is sent, the test, ignored?)
    let selected: Vec<(usize, &'static TestCase, bool)> = cases
        .iter()
        .zip(&trials)
        .enumerate()
        .filter(|(_, (_, trial))| !args.is_filtered_out(trial))
        .map(|(index, (case, trial))| (index, *case, args.is_ignored(trial)))
        .collect();
    let filtered_out = cases.len() - selected.len();
    let terse = matches!(args.format, Some(FormatSetting::Terse));

    if args.list {
        // `--list --ignored` (how nextest finds ignored tests) lists only those.
        let listed: Vec<_> = selected.iter().filter(|(_, case, _)| !args.ignored || case.ignore).collect();
        for (_, case, _) in &listed {
            println!("{}: test", case.test_name());
        }
        if !terse {
            println!("\n{} tests, 0 benchmarks", listed.len());
        }
        return 0;
    }

    let started = Instant::now();
    let threads = args.test_threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())).max(1);
    let output = if args.nocapture { OutputMode::PassThrough } else { OutputMode::Collect };
    println!("\nrunning {} test{}", selected.len(), if selected.len() == 1 { "" } else { "s" });

    // Fork servers first, while this process is single-threaded: a copy of it per test thread,
    // which then runs each test in a sandbox without exec'ing the test binary again.
    let keep_outcomes = report_path.is_some();
    let mut servers = fork_servers(threads, output, &cases, keep_outcomes).into_iter();
    let queue = Arc::new(Mutex::new(selected.into_iter().collect::<VecDeque<_>>()));
    let finished = Arc::new(Mutex::new(Vec::new()));
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let queue = Arc::clone(&queue);
            let finished = Arc::clone(&finished);
            let mut server = servers.next();
            let mut cpu = server.as_ref().and_then(|server| server.cpu);
            std::thread::spawn(move || loop {
                if let Some(cpu) = cpu.take() {
                    // Beside its fork server (see testing::affinity).
                    crate::testing::affinity::pin_to(cpu);
                }
                let next = queue.lock().map(|mut q| q.pop_front()).unwrap_or(None);
                let Some((index, case, ignored)) = next else {
                    if let Some(server) = server.take() {
                        server.finish();
                    }
                    break;
                };
                let result = if ignored {
                    Finished { name: case.test_name(), verdict: TestVerdict::Ignored, note: None, output: String::new(), outcome: None }
                } else {
                    match server.as_mut() {
                        Some(server) => server.run(index, case),
                        None => run_case(case, output, Isolation::ReExec, keep_outcomes),
                    }
                };
                record(result, terse, keep_outcomes, &finished);
            })
        })
        .collect();
    for worker in workers {
        let _ = worker.join();
    }
    let finished = std::mem::take(&mut *finished.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
    if terse {
        println!();
    }

    let failed: Vec<&Finished> = finished.iter().filter(|f| matches!(f.verdict, TestVerdict::Failed(_))).collect();
    if !failed.is_empty() {
        println!("\nfailures:\n");
        for failure in &failed {
            println!("---- {} ----", failure.name);
            print!("{}", failure.output);
            if let TestVerdict::Failed(reason) = &failure.verdict {
                println!("{reason}\n");
            }
        }
        println!("failures:");
        for failure in &failed {
            println!("    {}", failure.name);
        }
    }
    let count = |want: fn(&TestVerdict) -> bool| finished.iter().filter(|f| want(&f.verdict)).count();
    let passed = count(|v| matches!(v, TestVerdict::Passed));
    let ignored = count(|v| matches!(v, TestVerdict::Ignored));
    println!(
        "\ntest result: {}. {passed} passed; {} failed; {ignored} ignored; 0 measured; {filtered_out} filtered out; \
         finished in {:.2}s\n",
        if failed.is_empty() { "ok" } else { "FAILED" },
        failed.len(),
        started.elapsed().as_secs_f64()
    );
    if let Some(path) = report_path {
        if let Err(err) = write_report(&path, &finished, started.elapsed()) {
            eprintln!("sandbox: writing the report to {}: {err}", path.display());
            return 101;
        }
    }
    if failed.is_empty() {
        0
    } else {
        101
    }
}

/// Prints a test's line as it ends, from the thread that ran it (no hand-over to another thread
/// per test), and keeps what the summary and `--report` need: a failure's output, and the
/// outcome with `--report`.
fn record(mut result: Finished, terse: bool, keep_outcome: bool, finished: &Mutex<Vec<Finished>>) {
    let mut finished = finished.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut stdout = std::io::stdout().lock();
    let note = result.note.as_ref().map(|note| format!(" ({note})")).unwrap_or_default();
    let _ = match (&result.verdict, terse) {
        (TestVerdict::Passed, false) => writeln!(stdout, "test {} ... ok{note}", result.name),
        (TestVerdict::Failed(_), false) => writeln!(stdout, "test {} ... FAILED{note}", result.name),
        (TestVerdict::Ignored, false) => writeln!(stdout, "test {} ... ignored", result.name),
        (TestVerdict::Passed, true) => write!(stdout, "."),
        (TestVerdict::Failed(_), true) => write!(stdout, "F"),
        (TestVerdict::Ignored, true) => write!(stdout, "i"),
    };
    let _ = stdout.flush();
    if !matches!(result.verdict, TestVerdict::Failed(_)) {
        result.output = String::new();
    }
    if !keep_outcome {
        result.outcome = None;
    }
    finished.push(result);
}

/// How a test reaches its sandbox.
#[derive(Clone, Copy)]
enum Isolation {
    /// The test binary is executed again inside the sandbox.
    ReExec,
    /// This (single-threaded) process is copied into the sandbox and calls the body.
    InProcess,
}

/// `keep_outcome`: the outcome as JSON, for `--report` (otherwise not built).
fn run_case(case: &'static TestCase, output: OutputMode, isolation: Isolation, keep_outcome: bool) -> Finished {
    let name = case.test_name();
    let run = match isolation {
        Isolation::ReExec => run_isolated(case.spec, &name, ChildHarness::Runner, output),
        // SAFETY: `InProcess` is chosen only in a fork server or a runner that has not started
        // a thread (see `Isolation`).
        Isolation::InProcess => unsafe { run_function_isolated(case.spec, case.body, output, None) },
    };
    match run {
        Err(err) => Finished {
            name,
            verdict: TestVerdict::Failed(format!(
                "cannot sandbox this test: {err}\n(the test was not run; `sandbox check` shows what this machine allows)"
            )),
            note: None,
            output: String::new(),
            outcome: None,
        },
        Ok(run) => {
            let verdict = match should_panic_verdict(case.should_panic, &run) {
                Some(verdict) => verdict,
                None => match judge(case.spec, &run.outcome, run.report.as_ref()) {
                    Verdict::Passed => TestVerdict::Passed,
                    Verdict::Failed(reason) => TestVerdict::Failed(reason),
                },
            };
            Finished {
                name,
                verdict,
                note: Some(resources(&run.outcome)),
                output: String::from_utf8_lossy(&run.output).into_owned(),
                outcome: keep_outcome.then(|| run.outcome.to_json()),
            }
        }
    }
}

/// A copy of the runner, forked before any thread existed, that runs tests on request: a test's
/// index in, its [`Finished`] as a JSON line out.
struct ForkServer {
    requests: UnixStream,
    responses: BufReader<UnixStream>,
    pid: nix::unistd::Pid,
    /// The CPU the server is pinned to, where the runner thread talking to it goes too.
    cpu: Option<usize>,
}


impl ForkServer {
    /// Ends the server (its connection closes) and waits until it has removed the cgroups it
    /// kept for reuse, so that the runner leaves nothing behind when it exits.
    fn finish(self) {
        let ForkServer { requests, responses, pid, .. } = self;
        drop((requests, responses));
        let _ = nix::sys::wait::waitpid(pid, None);
    }

    /// Runs `case`, which is `cases[index]` in both this process and the server (a copy of it).
    fn run(&mut self, index: usize, case: &'static TestCase) -> Finished {
        let mut line = String::new();
        let answered = writeln!(self.requests, "{index}").is_ok() && self.responses.read_line(&mut line).is_ok_and(|n| n > 0);
        match serde_json::from_str(&line) {
            Ok(finished) if answered => finished,
            _ => Finished {
                name: case.test_name(),
                verdict: TestVerdict::Failed("the runner's fork server for this thread died".into()),
                note: None,
                output: String::new(),
                outcome: None,
            },
        }
    }
}

/// Forks `count` servers, or none (then tests are re-executed) when this process already has
/// threads, whose locks a copy could inherit in a held state.
fn fork_servers(count: usize, output: OutputMode, cases: &[&'static TestCase], keep_outcomes: bool) -> Vec<ForkServer> {
    let mut servers = Vec::new();
    let cpus = pinned_cpus(count);
    // On a systemd host the servers share one scope, asked for before they are forked (each
    // would otherwise ask for its own at its first test).
    if crate::cgroup::parent_from_environment().is_none() {
        if let Ok(crate::cgroup::Layout::Unified { mount_point }) = crate::cgroup::Layout::current() {
            let _ = crate::cgroup::systemd::ensure_own_scope(mount_point);
        }
    }
    for server in 0..count {
        let Ok((ours, theirs)) = UnixStream::pair() else { break };
        let Ok(responses) = ours.try_clone() else { break };
        match crate::sys::fork_copy() {
            Ok(None) => {
                // Only the runner may hold the ends of the other servers' connections: their EOF
                // is how they learn it is gone.
                drop((ours, responses, std::mem::take(&mut servers)));
                if let Some(cpu) = cpus.get(server) {
                    crate::testing::affinity::keep_for_bodies();
                    crate::testing::affinity::pin_to(*cpu);
                }
                serve(theirs, output, cases, keep_outcomes);
            }
            Ok(Some(pid)) => servers.push(ForkServer {
                requests: ours,
                responses: BufReader::new(responses),
                pid,
                cpu: cpus.get(server).copied(),
            }),
            Err(_) => break,
        }
    }
    servers
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

/// The fork server's loop; ends the process when the runner closes the connection (or dies).
fn serve(stream: UnixStream, output: OutputMode, cases: &[&'static TestCase], keep_outcomes: bool) -> ! {
    let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
    // One test after another: each reuses the cgroup of the one before where it can.
    crate::cgroup::pool::enable();
    let mut responses = match stream.try_clone() {
        Ok(stream) => stream,
        Err(_) => crate::sys::exit_immediately(1),
    };
    for line in BufReader::new(stream).lines() {
        let Some(case) = line.ok().and_then(|l| l.trim().parse::<usize>().ok()).and_then(|i| cases.get(i)) else { break };
        let finished = run_case(case, output, Isolation::InProcess, keep_outcomes);
        let text = serde_json::to_string(&finished).unwrap_or_default();
        if writeln!(responses, "{text}").is_err() {
            break;
        }
    }
    crate::cgroup::pool::drain();
    // The copied buffers of stdout belong to the runner: leave without flushing them.
    crate::sys::exit_immediately(0)
}

/// `#[should_panic]`: the body must panic (with the expected text), as libtest judges it.
fn should_panic_verdict(should_panic: ShouldPanic, run: &IsolatedRun) -> Option<TestVerdict> {
    let summary = format!("sandbox: {}", run.outcome);
    match (should_panic, &run.report) {
        (ShouldPanic::No, _) => None,
        (ShouldPanic::Yes, Some(ChildReport::Panicked(_))) => Some(TestVerdict::Passed),
        (ShouldPanic::WithMessage(expected), Some(ChildReport::Panicked(message))) => Some(if message.contains(expected) {
            TestVerdict::Passed
        } else {
            TestVerdict::Failed(format!(
                "panic did not contain expected string\n      panic message: {message:?}\n expected substring: {expected:?}\n{summary}"
            ))
        }),
        (_, _) => Some(TestVerdict::Failed(format!("test did not panic as expected\n{summary}"))),
    }
}

fn write_report(path: &std::path::Path, finished: &[Finished], elapsed: Duration) -> std::io::Result<()> {
    let tests: Vec<serde_json::Value> = finished
        .iter()
        .map(|f| {
            let mut entry = f.outcome.clone().unwrap_or_else(|| serde_json::json!({}));
            let (verdict, message) = match &f.verdict {
                TestVerdict::Passed => ("passed", None),
                TestVerdict::Failed(reason) => ("failed", Some(reason.clone())),
                TestVerdict::Ignored => ("ignored", None),
            };
            entry["name"] = f.name.clone().into();
            entry["verdict"] = verdict.into();
            entry["message"] = message.into();
            entry
        })
        .collect();
    let report = serde_json::json!({
        "tests": tests,
        "passed": finished.iter().filter(|f| matches!(f.verdict, TestVerdict::Passed)).count(),
        "failed": finished.iter().filter(|f| matches!(f.verdict, TestVerdict::Failed(_))).count(),
        "ignored": finished.iter().filter(|f| matches!(f.verdict, TestVerdict::Ignored)).count(),
        "wall_ms": elapsed.as_millis() as u64,
    });
    std::fs::write(path, serde_json::to_string_pretty(&report)? + "\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_flag_is_taken_out() {
        let args = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        let (report, rest) = split_report_flag(args(&["bin", "--report", "r.json", "--exact", "x"]));
        assert_eq!(report, Some(PathBuf::from("r.json")));
        assert_eq!(rest, args(&["bin", "--exact", "x"]));
        let (report, rest) = split_report_flag(args(&["bin", "--report=out.json", "filter"]));
        assert_eq!(report, Some(PathBuf::from("out.json")));
        assert_eq!(rest, args(&["bin", "filter"]));
    }
}

//! Fork servers: both runners run `#[isolated]` tests in copies of one single-threaded process
//! instead of executing the test binary once per test.
//!
//! The problem: a test harness is multi-threaded, and a multi-threaded process cannot copy
//! itself (a lock another thread holds stays held in the copy forever). Executing the test
//! binary again per test is safe but pays an exec and a libtest start-up each time.
//!
//! The fix: a single-threaded process, the server, reads test names, one per line, and runs
//! each in a fresh sandbox whose command is a copy of the server calling the body; it answers
//! with a [`TestResult`] as one JSON line. There are two ways to start one:
//!
//! - [`ForkServer::fork_all`]: sandbox's runner (`harness = false`) forks its servers before it
//!   starts any thread, one per test thread, connected by two pipes each.
//! - [`ForkServer::exec`]: under the stock harness the first `#[isolated]` test a libtest thread
//!   meets executes the test binary for that test once more, with [`SERVER_ENV`] set; there the
//!   test thread forks a copy of its process, which [`serve_stdio`] turns into the server on its
//!   stdin and stdout, and leaves. That copy is made beside libtest's main thread, which is
//!   blocked waiting for the test.
//!
//! The race: a test process can die (killed by a timeout, a CI job's end) while its server runs
//! a test whose sandbox is not its child. The server therefore waits for the sandbox *and* for
//! its request pipe, whose end reads as closed when the test process is gone; it then kills the
//! test, removes the cgroups it kept for reuse (`cgroup::pool`) and exits. A test process that
//! ends normally closes its requests the same way and waits for each server to finish: nothing
//! of it outlives it.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::{Mutex, Once};

use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use super::{
    judge, judge_should_panic, run_function_isolated, run_isolated, BaselineCheck, ChildHarness, Failure, FailureKind,
    IsolatedRun, OutputMode, Resources, TestCase, Verdict, CHILD_ENV,
};
use crate::outcome::JsonOutcome;

/// Set in the environment of a test binary started to become a fork server.
pub(crate) const SERVER_ENV: &str = "SANDBOX_FORK_SERVER";

/// An exec'd server's first line: everything before it is libtest's own start-up output.
const READY: &str = "sandbox fork server ready";

/// How a server runs and judges its tests.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ServeOptions {
    /// Where a test's output goes: kept for the answer, or passed through (`--nocapture`).
    pub output: OutputMode,
    /// Keep each outcome as JSON, for the runner's `--report`.
    pub keep_outcomes: bool,
    /// Judge `#[should_panic]` here (sandbox's runner); under the stock harness libtest judges
    /// the panic that the failure becomes.
    pub judge_should_panic: bool,
}

/// One test's result, as a server answers and the runner prints it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TestResult {
    /// libtest's name of the test.
    pub name: String,
    /// Passed, failed (and why) or ignored.
    pub verdict: Verdict,
    /// What it used, when it ran.
    pub resources: Option<Resources>,
    /// Its stdout and stderr, interleaved as written (empty when passed through).
    pub output: String,
    /// The outcome in the CLI's JSON shape, with [`ServeOptions::keep_outcomes`].
    pub outcome: Option<JsonOutcome>,
    /// How it compared with its baseline, when held against one (set by the test process).
    #[serde(default)]
    pub baseline: Option<BaselineCheck>,
    /// It ran alone, because its memory is over the run's memory budget (the runner).
    #[serde(default)]
    pub ran_alone: Option<RanAlone>,
}

/// A test that ran alone: its declared memory is more than the runner's memory budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RanAlone {
    /// What the test counts as: its `mem`, or the default for a test without one.
    pub memory_bytes: u64,
    /// It has `mem`.
    pub declared: bool,
    /// The budget.
    pub budget_bytes: u64,
}

impl TestResult {
    /// The result of a test that did not run.
    pub fn without_run(name: String, verdict: Verdict) -> TestResult {
        TestResult { name, verdict, resources: None, output: String::new(), outcome: None, baseline: None, ran_alone: None }
    }
}

/// Runs `case` in a new sandbox that executes the test binary again for it, and judges it.
pub(crate) fn run_reexecuted(case: &TestCase, options: ServeOptions, harness: ChildHarness) -> TestResult {
    let name = case.test_name();
    let run = run_isolated(case.spec, &name, harness, options.output);
    judged(case, name, options, run)
}

/// Runs `case` in a new sandbox whose process is a copy of this one calling the body, and judges
/// it. With `connection`, the test ends when that pipe reads as closed.
///
/// # Safety
/// Every copy of this process must be consistent (a fork server, or libtest's test thread beside
/// its blocked main thread only): see [`run_function_isolated`].
pub(crate) unsafe fn run_in_process(case: &TestCase, options: ServeOptions, connection: Option<BorrowedFd<'_>>) -> TestResult {
    let name = case.test_name();
    // SAFETY: copies of this process are consistent, as our caller guarantees.
    let run = unsafe { run_function_isolated(case.spec, &name, case.body, options.output, connection) };
    judged(case, name, options, run)
}

/// A test's result from its run (or from why it could not run).
fn judged(case: &TestCase, name: String, options: ServeOptions, run: Result<IsolatedRun, crate::runner::Error>) -> TestResult {
    match run {
        Err(err) => TestResult::without_run(name, Verdict::Failed(Failure::not_sandboxed(&err))),
        Ok(IsolatedRun { outcome, report, output }) => {
            let should_panic = if options.judge_should_panic { case.should_panic } else { super::ShouldPanic::No };
            let verdict = judge_should_panic(should_panic, &outcome, report.as_ref())
                .unwrap_or_else(|| judge(case.spec, &outcome, report.as_ref()));
            TestResult {
                name,
                verdict,
                resources: Some(Resources::of(&outcome)),
                output: String::from_utf8_lossy(&output).into_owned(),
                outcome: options.keep_outcomes.then(|| outcome.json_shape()),
                baseline: None,
                ran_alone: None,
            }
        }
    }
}

/// The test process's end of one server.
pub(crate) struct ForkServer {
    requests: File,
    answers: BufReader<File>,
    /// The server, when it is this process's child (forked, not exec'd).
    child: Option<Pid>,
    /// The CPU the server is pinned to, where the thread talking to it goes too.
    pub cpu: Option<usize>,
}

fn pipe() -> Option<(File, File)> {
    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ok()?;
    Some((File::from(read), File::from(write)))
}

impl ForkServer {
    /// Forks `count` servers of this process, the `n`th pinned to `cpus[n]` if there is one, or
    /// fewer (none when this process already has a thread, which `fork_copy` refuses).
    pub(crate) fn fork_all(count: usize, cpus: &[usize], options: ServeOptions) -> Vec<ForkServer> {
        let mut servers = Vec::new();
        for index in 0..count {
            let (Some((request_read, request_write)), Some((answer_read, answer_write))) = (pipe(), pipe()) else { break };
            match crate::sys::fork_copy() {
                Ok(None) => {
                    // Only the test process may hold the client ends of the servers: their
                    // closing is how a server learns that it is gone.
                    drop((request_write, answer_read, std::mem::take(&mut servers)));
                    if let Some(cpu) = cpus.get(index) {
                        crate::testing::affinity::keep_for_bodies();
                        crate::testing::affinity::pin_to(*cpu);
                    }
                    serve(request_read, answer_write, options);
                }
                Ok(Some(pid)) => servers.push(ForkServer {
                    requests: request_write,
                    answers: BufReader::new(answer_read),
                    child: Some(pid),
                    cpu: cpus.get(index).copied(),
                }),
                Err(_) => break,
            }
        }
        servers
    }

    /// Executes the test binary for the stock-harness test `name` as a server (see the module
    /// doc); `None` if that did not work.
    pub(crate) fn exec(name: &str) -> Option<ForkServer> {
        let exe = std::env::current_exe().ok()?;
        let mut intermediate = std::process::Command::new(exe)
            .args(["--exact", name, "--nocapture", "--test-threads=1", "--include-ignored", "-q"])
            .env(SERVER_ENV, "1")
            .env_remove(CHILD_ENV)
            .env_remove("RUST_TEST_THREADS")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .ok()?;
        let requests = File::from(OwnedFd::from(intermediate.stdin.take()?));
        let mut answers = BufReader::new(File::from(OwnedFd::from(intermediate.stdout.take()?)));
        let mut line = String::new();
        let ready = loop {
            line.clear();
            match answers.read_line(&mut line) {
                Ok(0) | Err(_) => break false,
                Ok(_) if line.trim_end() == READY => break true,
                Ok(_) => {}
            }
        };
        // The process we started has left once the server (its copy) is ready, or failed.
        let _ = intermediate.wait();
        ready.then_some(ForkServer { requests, answers, child: None, cpu: None })
    }

    /// Runs test `name`; `None` when the server is gone.
    pub(crate) fn run(&mut self, name: &str) -> Option<TestResult> {
        writeln!(self.requests, "{name}").ok()?;
        let mut line = String::new();
        match self.answers.read_line(&mut line) {
            Ok(n) if n > 0 => serde_json::from_str(&line).ok(),
            _ => None,
        }
    }

    /// Ends the server and waits until it has removed the cgroups it kept for reuse: its answers
    /// read as ended once it has exited.
    pub(crate) fn finish(self) {
        let ForkServer { requests, mut answers, child, .. } = self;
        drop(requests);
        let _ = std::io::copy(&mut answers, &mut std::io::sink());
        if let Some(pid) = child {
            let _ = nix::sys::wait::waitpid(pid, None);
        }
    }
}

/// The server's loop; ends the process when its requests end (the test process closed them or
/// died).
fn serve(requests: File, mut answers: File, options: ServeOptions) -> ! {
    // One test after another: each reuses the cgroup of the one before where it can.
    crate::cgroup::pool::enable();
    // Its tests' inits need no cgroups of their own outside their limits' hierarchies: a
    // matter of speed only (without, each makes its own).
    let _ = crate::cgroup::enclosure::enter();
    // Looked up by name for every request: listed once.
    let cases: HashMap<String, &TestCase> =
        inventory::iter::<TestCase>.into_iter().map(|case| (case.test_name(), case)).collect();
    let connection = requests.try_clone().map(OwnedFd::from);
    for line in BufReader::new(requests).lines() {
        let (Ok(name), Ok(connection)) = (line, &connection) else { break };
        let name = name.trim();
        let result = match cases.get(name) {
            // SAFETY: a server is single-threaded (`fork_copy` made it so). Nothing arrives on
            // the requests while a test runs unless the test process is gone.
            Some(case) => unsafe { run_in_process(case, options, Some(connection.as_fd())) },
            None => TestResult::without_run(
                name.to_string(),
                Verdict::Failed(Failure::without_run(FailureKind::NoSuchTest { name: name.to_string() })),
            ),
        };
        let text = serde_json::to_string(&result).unwrap_or_default();
        if writeln!(answers, "{text}").is_err() {
            break;
        }
    }
    crate::cgroup::pool::drain();
    crate::cgroup::enclosure::leave();
    // The copied buffers of stdout belong to the test process: leave without flushing them.
    crate::sys::exit_immediately(0)
}

/// In a test binary started by [`ForkServer::exec`]: becomes the server on stdin and stdout.
/// Never returns.
pub(crate) fn serve_stdio() -> ! {
    // Started as `--exact NAME --test-threads=1` for this test, on the thread `run_test` marked:
    // the copy is made beside libtest's main thread, and never returns to it.
    if !matches!(crate::sys::fork_copy(), Ok(None)) {
        // The test process sees EOF before READY (fork failed) or the copy's READY: either way
        // this process has nothing more to say, and libtest must not report a result.
        crate::sys::exit_immediately(0);
    }
    // Single-threaded now: the tests' own processes need not see the marker.
    std::env::remove_var(SERVER_ENV);
    // SAFETY: 0 and 1 are the pipes from the test process; from here on nothing of this
    // process uses them through std's stdin and stdout (whose copied state belongs to libtest).
    let (requests, answers) = unsafe { (crate::sys::own_fd(0), crate::sys::own_fd(1)) };
    let mut answers = File::from(answers);
    if writeln!(answers, "{READY}").is_err() {
        crate::sys::exit_immediately(1);
    }
    let options = ServeOptions { output: OutputMode::Collect, keep_outcomes: false, judge_should_panic: false };
    serve(File::from(requests), answers, options)
}

/// Exec'd servers not running a test right now (stock harness).
static IDLE: Mutex<Vec<ForkServer>> = Mutex::new(Vec::new());

/// Runs stock-harness test `name` in an idle server, or a new one; `None` when no server could
/// (the caller then re-executes the test binary for it).
pub(crate) fn run_in_server(name: &str) -> Option<TestResult> {
    let idle = IDLE.lock().ok().and_then(|mut idle| idle.pop());
    let mut server = match idle {
        Some(server) => server,
        None => {
            let server = ForkServer::exec(name)?;
            static AT_EXIT: Once = Once::new();
            // SAFETY: `finish_idle_servers` is an `extern "C" fn()` that does not unwind.
            AT_EXIT.call_once(|| unsafe {
                libc::atexit(finish_idle_servers);
            });
            server
        }
    };
    let result = server.run(name)?;
    if let Ok(mut idle) = IDLE.lock() {
        idle.push(server);
    }
    Some(result)
}

/// At the test process's exit (libtest has finished every test): ends its servers and waits
/// until their cgroups are removed.
extern "C" fn finish_idle_servers() {
    let servers = match IDLE.lock() {
        Ok(mut idle) => std::mem::take(&mut *idle),
        Err(_) => return,
    };
    for server in servers {
        server.finish();
    }
}

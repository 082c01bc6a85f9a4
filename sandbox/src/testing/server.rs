//! Fork servers for the stock harness: a test process's `#[isolated]` tests are run by copies of
//! one single-threaded process instead of one exec of the test binary per test.
//!
//! libtest runs every test on a thread of a multi-threaded process, which cannot safely copy
//! itself into a sandbox. So the first `#[isolated]` test a libtest thread meets starts a server:
//! the test binary is executed once more for that same test, with [`SERVER_ENV`] set; in there,
//! the test's wrapper forks off a single-threaded copy of itself (the server) and leaves. The
//! server reads test names on its stdin, runs each like the `harness = false` runner does (a
//! fresh sandbox whose command is a copy of the server calling the body) and answers with one
//! JSON line on its stdout. Idle servers are kept for the next tests; a server that fails is
//! dropped and the test is re-executed the old way. Servers end when the test process closes
//! their stdin, which its exit (or death) does.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::process::{ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::{judge, run_function_isolated, OutputMode, TestCase, Verdict, CHILD_ENV};

/// Set in the environment of a test binary started to become a fork server.
pub(crate) const SERVER_ENV: &str = "SANDBOX_FORK_SERVER";

/// The server's first line: everything before it is libtest's own start-up output.
const READY: &str = "sandbox fork server ready";

/// What a server answers for one test.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Answer {
    /// The test's stdout and stderr, interleaved as written.
    pub output: String,
    /// Why the test failed; `None` when it passed.
    pub failure: Option<String>,
}

/// The test process's end of one server.
struct Server {
    requests: ChildStdin,
    answers: BufReader<ChildStdout>,
}

/// Servers not running a test right now.
static IDLE: Mutex<Vec<Server>> = Mutex::new(Vec::new());

impl Server {
    /// Executes the test binary for test `name` as a server; `None` if that did not work.
    fn start(name: &str) -> Option<Server> {
        let exe = std::env::current_exe().ok()?;
        let mut intermediate = Command::new(exe)
            .args(["--exact", name, "--nocapture", "--test-threads=1", "--include-ignored", "-q"])
            .env(SERVER_ENV, "1")
            .env_remove(CHILD_ENV)
            .env_remove("RUST_TEST_THREADS")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .ok()?;
        let requests = intermediate.stdin.take()?;
        let mut answers = BufReader::new(intermediate.stdout.take()?);
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
        ready.then_some(Server { requests, answers })
    }

    fn run(&mut self, name: &str) -> Option<Answer> {
        writeln!(self.requests, "{name}").ok()?;
        let mut line = String::new();
        match self.answers.read_line(&mut line) {
            Ok(n) if n > 0 => serde_json::from_str(&line).ok(),
            _ => None,
        }
    }
}

/// Runs test `name` in an idle server, or a new one; `None` when no server could (the caller
/// then re-executes the test binary).
pub(crate) fn run(name: &str) -> Option<Answer> {
    let idle = IDLE.lock().ok().and_then(|mut idle| idle.pop());
    let mut server = idle.or_else(|| Server::start(name))?;
    let answer = server.run(name)?;
    if let Ok(mut idle) = IDLE.lock() {
        idle.push(server);
    }
    Some(answer)
}

/// In a test binary started by [`Server::start`]: becomes the server. Never returns.
pub(crate) fn serve() -> ! {
    // A libtest test thread; its one sibling, libtest's main thread, is blocked waiting for this
    // test. A copy made by glibc's fork has one thread and a consistent allocator.
    // Started by `Server::start` as `--exact NAME --test-threads=1` for this test, on the thread
    // `run_test` marked: the copy is made beside libtest's main thread, and never returns to it.
    if !matches!(crate::sys::fork_copy(), Ok(None)) {
        // The test process sees EOF before READY (fork failed) or the copy's READY: either way
        // this process has nothing more to say, and libtest must not report a result.
        crate::sys::exit_immediately(0);
    }
    // Single-threaded now: the tests' own processes need not see the marker.
    std::env::remove_var(SERVER_ENV);
    // The answers bypass Rust's buffered stdout, whose copied buffer belongs to libtest.
    // SAFETY: 0 and 1 are the pipes from the test process; from here on nothing of this
    // process uses them through std's stdin and stdout (whose copied state belongs to libtest).
    let (stdin, stdout) = unsafe { (crate::sys::own_fd(0), crate::sys::own_fd(1)) };
    let mut answers = File::from(stdout);
    if writeln!(answers, "{READY}").is_err() {
        crate::sys::exit_immediately(1);
    }
    // Looked up by name for every request: listed once.
    let cases: HashMap<String, &TestCase> = inventory::iter::<TestCase>.into_iter().map(|case| (case.test_name(), case)).collect();
    let requests = File::from(stdin);
    let client = requests.try_clone().map(OwnedFd::from);
    for line in BufReader::new(requests).lines() {
        let (Ok(name), Ok(client)) = (line, &client) else { break };
        // Nothing arrives on stdin while a test runs unless the test process is gone (EOF).
        let answer = answer(&cases, name.trim(), client.as_fd());
        let text = serde_json::to_string(&answer).unwrap_or_default();
        if writeln!(answers, "{text}").is_err() {
            break;
        }
    }
    crate::sys::exit_immediately(0)
}

/// Runs the `#[isolated]` test `name` of this binary in a new sandbox; its verdict and output.
fn answer(cases: &HashMap<String, &TestCase>, name: &str, client: BorrowedFd<'_>) -> Answer {
    let Some(case) = cases.get(name) else {
        return Answer { output: String::new(), failure: Some(format!("sandbox: no #[isolated] test named '{name}' in this binary")) };
    };
    // SAFETY: a fork server is single-threaded (`serve` made it so with `fork_copy`).
    match unsafe { run_function_isolated(case.spec, case.body, OutputMode::Collect, Some(client)) } {
        Ok(run) => Answer {
            output: String::from_utf8_lossy(&run.output).into_owned(),
            failure: match judge(case.spec, &run.outcome, run.report.as_ref()) {
                Verdict::Passed => None,
                Verdict::Failed(reason) => Some(reason),
            },
        },
        Err(err) => Answer {
            output: String::new(),
            failure: Some(format!(
                "cannot sandbox this test: {err}\n(the test was not run; `sandbox check` shows what this machine allows)"
            )),
        },
    }
}

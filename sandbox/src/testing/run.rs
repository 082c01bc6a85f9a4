//! Running a test body in a sandbox: re-executing the test binary for one test, or calling the
//! body in a copy of a fork server.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::sync::Mutex;
use std::thread;

use super::child::{self, ChildReport, CHILD_ENV};
use super::fork_server::{self, ServeOptions, TestResult};
use super::baseline::{Baseline, BaselineStatus, Baselines, Figures};
use super::verdict::{judge, Failure, Resources, Verdict};
use super::{test_name, ShouldPanic, TestBody, TestCase, TestSpec};

use crate::outcome::Outcome;
use crate::runner::{Command, Error, Sandbox};

/// In the sandboxed child: runs `body`, reports how it ended to the parent through `report_fd`
/// (`None`: the descriptor named in the environment), and exits.
pub fn run_child_body(body: TestBody, report_fd: Option<i32>) -> ! {
    child::run_body_and_exit(body, report_fd)
}

fn dev_null() -> Result<File, Error> {
    File::open("/dev/null").map_err(|source| Error::Io { action: "opening /dev/null", source })
}

/// What the child wrote to the report pipe (nothing when it was killed first).
fn read_report(report_read: OwnedFd) -> Option<ChildReport> {
    let mut text = String::new();
    let _ = File::from(report_read).read_to_string(&mut text);
    ChildReport::parse(&text)
}

/// Runs `body` in a new sandbox configured by `spec` *without exec*: the sandbox's command is a
/// copy of this process that calls `body`. With `client`, the run ends early when that pipe
/// reads as ended (see [`Running::wait_unless_hung_up`](crate::runner::Running)).
///
/// # Safety
/// Every copy of this process must be consistent: it is single-threaded (a fork server), or
/// this is libtest's test thread beside libtest's blocked main thread only
/// (`sys::copy_is_consistent`); see [`Command::for_function`].
pub(crate) unsafe fn run_function_isolated(
    spec: &TestSpec,
    name: &str,
    body: TestBody,
    output: OutputMode,
    client: Option<std::os::fd::BorrowedFd<'_>>,
) -> Result<IsolatedRun, Error> {
    let io = |action: &'static str| move |errno: nix::errno::Errno| Error::Io { action, source: errno.into() };
    let (report_read, report_write) = pipe()?;
    // SAFETY: copies of this process are consistent, as our caller guarantees.
    let mut command = unsafe { Command::for_function(run_child_body, body) };
    let report_fd = command.keep_fd(report_write);
    command.report_to(report_fd);
    command.stdin(dev_null()?);
    // Output into a memory file, read after the run: no reader needed while waiting.
    let capture = match output {
        OutputMode::Collect | OutputMode::Replay => {
            let memfd = nix::sys::memfd::memfd_create(c"sandbox-test-output", nix::sys::memfd::MemFdCreateFlag::MFD_CLOEXEC)
                .map_err(io("creating the output buffer"))?;
            let stderr = memfd.try_clone().map_err(|source| Error::Io { action: "duplicating a descriptor", source })?;
            let reader = memfd.try_clone().map_err(|source| Error::Io { action: "duplicating a descriptor", source })?;
            command.stdout(memfd).stderr(stderr);
            Some(reader)
        }
        OutputMode::PassThrough => None,
    };
    let sandbox = Sandbox::with_environment_for(spec.config(), Some(name))?;
    let running = sandbox.spawn(&command)?;
    drop(command);
    let outcome = match client {
        Some(client) => running.wait_unless_hung_up(client)?,
        None => running.wait()?,
    };
    let mut captured = Vec::new();
    if let Some(reader) = capture {
        let mut file = File::from(reader);
        use std::io::Seek;
        let _ = file.seek(std::io::SeekFrom::Start(0));
        let _ = file.read_to_end(&mut captured);
    }
    Ok(IsolatedRun { outcome, report: read_report(report_read), output: captured })
}

/// Where the child's stdout and stderr go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputMode {
    /// Replayed through `print!` as it arrives, so that the stock harness's output
    /// capture shows it only for failed tests (and `--nocapture` live).
    Replay,
    /// Kept in memory, for the runner to print for failed tests.
    Collect,
    /// Written straight to this process's stdout (`--nocapture` in the runner).
    PassThrough,
}

/// Everything known after one sandboxed test ran.
#[derive(Debug)]
pub struct IsolatedRun {
    /// What the kernel saw.
    pub outcome: Outcome,
    /// What the child reported, if it got that far.
    pub report: Option<ChildReport>,
    /// The child's stdout and stderr, interleaved as written, in [`OutputMode::Collect`].
    pub output: Vec<u8>,
}

/// How the child process is told which test to run.
#[derive(Debug, Clone, Copy)]
pub enum ChildHarness {
    /// The stock libtest harness: `--exact NAME` selects the test, whose generated `#[test]`
    /// function sees [`CHILD_ENV`] and runs the body.
    Libtest,
    /// `sandbox::harness::main`, which sees [`CHILD_ENV`] before parsing any argument.
    Runner,
}

/// The first bytes a libtest child prints with `-q` before the test runs.
const LIBTEST_PREAMBLE: &[u8] = b"\nrunning 1 test\n";

fn pipe() -> Result<(OwnedFd, OwnedFd), Error> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|errno| Error::Io { action: "creating a pipe", source: errno.into() })
}

/// Runs test `name` of this test binary in a new sandbox configured by `spec`.
pub fn run_isolated(spec: &TestSpec, name: &str, harness: ChildHarness, output: OutputMode) -> Result<IsolatedRun, Error> {
    let exe_path = std::env::current_exe().map_err(|source| Error::Io { action: "finding the test binary", source })?;
    // Opened here and executed by descriptor: a checkout below /tmp is hidden inside.
    let exe = File::open(&exe_path).map_err(|source| Error::Io { action: "opening the test binary", source })?;
    let (report_read, report_write) = pipe()?;
    // One pipe for stdout and stderr keeps their order, as libtest's capture does.
    let (output_read, output_write) = pipe()?;
    let stderr_write = output_write.try_clone().map_err(|source| Error::Io { action: "duplicating a pipe", source })?;

    let mut command = Command::from_executable(OwnedFd::from(exe), &exe_path);
    if let ChildHarness::Libtest = harness {
        command.args(["--exact", name, "--nocapture", "--test-threads=1", "--include-ignored", "-q"]);
    }
    let report_fd = command.keep_fd(report_write);
    command
        .env(CHILD_ENV, name)
        .env(child::REPORT_FD_ENV, report_fd.to_string())
        .env_remove("RUST_TEST_THREADS")
        .stdin(dev_null()?)
        .stdout(output_write)
        .stderr(stderr_write);

    let sandbox = Sandbox::with_environment_for(spec.config(), Some(name))?;
    let running = sandbox.spawn(&command)?;
    // The pipes' write ends live on only in the sandbox: EOF comes when it is gone.
    drop(command);

    let strip = matches!(harness, ChildHarness::Libtest);
    // Read on another thread while this one waits (it must: the sandbox's init is tied to the
    // thread that spawned it). Spawned threads share the test's output capture.
    let reader = thread::spawn(move || forward(output_read, output, strip));
    let outcome = running.wait();
    let output = reader.join().unwrap_or_default();
    let outcome = outcome?;

    Ok(IsolatedRun { outcome, report: read_report(report_read), output })
}

/// Copies the child's output as `mode` says until EOF; returns what was collected.
fn forward(source: OwnedFd, mode: OutputMode, strip_preamble: bool) -> Vec<u8> {
    let mut source = File::from(source);
    let mut collected = Vec::new();
    let mut pending: Vec<u8> = Vec::new();
    let mut preamble_left = if strip_preamble { LIBTEST_PREAMBLE } else { &[][..] };
    let mut buffer = [0u8; 8192];
    loop {
        let n = match source.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut chunk = &buffer[..n];
        // Drop the libtest child's "running 1 test" banner, byte by byte as it arrives.
        while !preamble_left.is_empty() && !chunk.is_empty() && chunk[0] == preamble_left[0] {
            chunk = &chunk[1..];
            preamble_left = &preamble_left[1..];
        }
        if !chunk.is_empty() {
            preamble_left = &[];
        }
        match mode {
            OutputMode::Collect => collected.extend_from_slice(chunk),
            OutputMode::PassThrough => {
                let _ = std::io::stdout().write_all(chunk);
            }
            OutputMode::Replay => {
                // print! (not io::stdout) is what the test harness captures; keep UTF-8
                // sequences split across reads together.
                pending.extend_from_slice(chunk);
                let valid = match std::str::from_utf8(&pending) {
                    Ok(_) => pending.len(),
                    Err(err) if err.error_len().is_none() => err.valid_up_to(),
                    Err(_) => pending.len(),
                };
                print!("{}", String::from_utf8_lossy(&pending[..valid]));
                pending.drain(..valid);
            }
        }
    }
    if mode == OutputMode::Replay && !pending.is_empty() {
        print!("{}", String::from_utf8_lossy(&pending));
    }
    collected
}

/// The stock-harness entry point of an `#[isolated]` test (called by the generated `#[test]`).
///
/// In the test process it re-executes the test binary for exactly this test inside a new
/// sandbox, replays the child's output through this test's output capture, and panics with the
/// verdict's reason when the test failed. In that child (marked by [`CHILD_ENV`]) it runs `body`
/// and reports the result to the parent.
#[track_caller]
pub fn run_test(spec: &'static TestSpec, module_path: &'static str, fn_name: &'static str, body: TestBody) {
    let name = test_name(module_path, fn_name);
    // SAFETY: the `#[test]` that `#[isolated]` generates is the caller, on the thread libtest
    // runs the test on.
    unsafe { crate::sys::mark_libtest_test_thread() };
    if let Some(wanted) = std::env::var_os(CHILD_ENV) {
        if wanted == OsString::from(&name) {
            run_child_body(body, None);
        }
        // Another test of the same binary, in a child started for `wanted`: libtest was told
        // `--exact`, so this only happens if the name computation is wrong. Never run unisolated.
        panic!("sandbox: test '{name}' started inside the sandboxed child of '{}'", wanted.to_string_lossy());
    }
    if std::env::var_os(fork_server::SERVER_ENV).is_some() {
        fork_server::serve_stdio();
    }
    if !first_run_of(&name) {
        panic!("{}", Failure::registered_twice(&name));
    }
    // nextest runs every test in a process of its own, where a server would serve this one
    // test: the test's thread runs it itself, beside libtest's main thread, which waits for it.
    // Only without libtest's output capture (nextest passes --nocapture), which the body's copy
    // would inherit and write its output into.
    let one_test_per_process = std::env::var_os("NEXTEST_EXECUTION_MODE").is_some_and(|mode| mode == "process-per-test");
    if one_test_per_process && libtest_passes_output_through() && crate::sys::copy_is_consistent() {
        let case =
            TestCase { name: fn_name, module_path, spec, body, ignore: false, should_panic: ShouldPanic::No, lock: None };
        let options = ServeOptions { output: OutputMode::Collect, keep_outcomes: false, judge_should_panic: false };
        // SAFETY: copies of this process are consistent: checked just now.
        return report(unsafe { fork_server::run_in_process(&case, options, None) }, spec);
    }
    // A fork server copies a process that is already running instead of executing the test
    // binary again; where none can run the test, it is re-executed.
    if let Some(result) = fork_server::run_in_server(&name) {
        return report(result, spec);
    }
    let run = match run_isolated(spec, &name, ChildHarness::Libtest, OutputMode::Replay) {
        Ok(run) => run,
        Err(err) => panic!("{}", Failure::not_sandboxed(&err)),
    };
    // Its output went through libtest's capture as it came.
    let mut result = TestResult::without_run(name, judge(spec, &run.outcome, run.report.as_ref()));
    result.resources = Some(Resources::of(&run.outcome));
    report(result, spec);
}

/// A test's result under the stock harness: its output through libtest's capture, the
/// baselines of the environment applied, and a failure as the test's panic (which
/// `#[should_panic]` then judges).
#[track_caller]
fn report(mut result: TestResult, spec: &TestSpec) {
    print!("{}", result.output);
    let baselines = match Baselines::from_environment() {
        Ok(baselines) => baselines,
        Err(message) => panic!("sandbox: {message}"),
    };
    baselines.hold(&mut result, spec.baseline_tolerance);
    if let Some(check) = result.baseline.as_ref().filter(|check| check.status == BaselineStatus::Missing) {
        println!("sandbox: {}: {}", result.name, check.note());
    }
    if let (Some(path), Some(figures)) = (&baselines.save, Figures::to_save(&result)) {
        if let Err(err) = Baseline::update_file(path, [figures]) {
            panic!("sandbox: saving {err}");
        }
    }
    if let Verdict::Failed(failure) = result.verdict {
        panic!("{failure}");
    }
}

/// Whether this process has not run a test of this name before. libtest runs each of its
/// tests once, so a second run is a second registration: a `#[test]` above `#[isolated]`, which
/// rustc registers beside the test `#[isolated]` makes (test-case puts its `#[test]` first).
fn first_run_of(name: &str) -> bool {
    static STARTED: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
    STARTED.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).insert(name.to_string())
}

/// Whether libtest was told not to capture the tests' output (`--nocapture`, as nextest runs
/// every test, or `RUST_TEST_NOCAPTURE`).
fn libtest_passes_output_through() -> bool {
    std::env::args_os().any(|arg| arg == "--nocapture" || arg == "--no-capture")
        || std::env::var_os("RUST_TEST_NOCAPTURE").is_some_and(|value| value != "0")
}

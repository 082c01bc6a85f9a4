//! Faults a command can throw at the sandbox, and the classic chroot escapes, against the real
//! kernel: each test asserts what the kernel shows (the JSON outcome's exit status and signal,
//! the host's process table through `/proc`, the host's mount table, the run's cgroup
//! directories) and fails when the promise breaks. Every launcher run here also checks that the
//! host's mount table is byte-identical afterwards and that no run cgroup is left.
//!
//! 1. a command that ignores SIGTERM: the timeout still ends it; SIGTERM to the launcher is
//!    forwarded, and does not end a command that ignores it;
//! 2. a command that double-forks a daemon and exits: its status is reported, the daemon dies;
//! 3. a command that closes its stdout; a command whose stdout reader goes away (SIGPIPE);
//! 4. 1 GiB through the launcher's stdout under `--mem 100M` (no buffering, no OOM kill);
//! 5. launchers side by side never touch each other's cgroups (also a killed one's stale cgroup);
//! 6. chroot escapes from a `--rootfs` sandbox, with a control that the same program does escape a
//!    plain `chroot`, and the `/proc/*/root` and `/proc/*/cwd` links;
//! 7. a cgroup reused for the next run (the runner's fork servers) reports only that run's OOM
//!    kills, pids-limit hits and peaks, and is not reused when its peak could no longer be told.
//!
//! Runs on the host (cgroup v1 here) and, through `tests/run-all.sh`, in the cgroup-v2 VM.

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
use common::*;

const SANDBOX: &str = env!("CARGO_BIN_EXE_sandbox");

// ---------------------------------------------------------------- helpers (after tests/cli.rs)

/// A number no other test (or test binary) uses, for `sleep MARKER` processes: `<n>.<pid>`.
fn marker(n: u32) -> String {
    format!("{n}.{}", std::process::id())
}

/// A `sandbox run --json FILE ARGS...` started from `/` (see cli.rs: a checkout below /tmp would
/// otherwise be bound into the sandbox). Its stderr is collected by a thread; stdout is the
/// caller's. SIGKILLed and reaped when dropped unfinished, so no test leaves a launcher behind.
struct Launcher {
    child: Child,
    json_path: PathBuf,
    mounts_before: String,
    stderr: Option<JoinHandle<String>>,
    started: Instant,
    args: Vec<String>,
    finished: bool,
}

fn launch(args: &[&str], stdin: Stdio, stdout: Stdio) -> Launcher {
    let json_path = scratch().join(unique("json"));
    let mounts_before = mountinfo();
    let started = Instant::now();
    let mut child = Command::new(SANDBOX)
        .arg("run")
        .arg("--json")
        .arg(&json_path)
        .args(args)
        .current_dir("/")
        .stdin(stdin)
        .stdout(stdout)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    Launcher {
        child,
        json_path,
        mounts_before,
        stderr: Some(stderr),
        started,
        args: args.iter().map(|a| a.to_string()).collect(),
        finished: false,
    }
}

impl Launcher {
    fn pid(&self) -> libc::pid_t {
        self.child.id() as libc::pid_t
    }

    fn signal(&self, signal: libc::c_int) {
        // SAFETY: test code; kill(2) of our own, not yet reaped, child.
        assert_eq!(unsafe { libc::kill(self.pid(), signal) }, 0, "kill({}, {signal})", self.pid());
    }

    fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Waits at most `limit` (from now) for the launcher to exit (a hang is a failure, never a
    /// stuck test), then checks the host's mount table and reads the outcome.
    fn finish(mut self, limit: Duration) -> Run {
        let waiting = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(waiting.elapsed() < limit, "`sandbox run {:?}` still running after {limit:?}", self.args);
            std::thread::sleep(Duration::from_millis(5));
        };
        let elapsed = self.started.elapsed();
        self.finished = true;
        let stderr = self.stderr.take().unwrap().join().unwrap();
        assert_eq!(mountinfo(), self.mounts_before, "the host's mount table changed during `sandbox run {:?}`", self.args);
        let json = fs::read_to_string(&self.json_path).map(|t| serde_json::from_str(&t).unwrap()).unwrap_or(Value::Null);
        let _ = fs::remove_file(&self.json_path);
        Run { code: status.code(), stdout: String::new(), stderr, json, elapsed }
    }
}

impl Drop for Launcher {
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.child.kill();
            let _ = self.child.wait();
            let _ = fs::remove_file(&self.json_path);
        }
    }
}

/// `sandbox run ARGS...` to the end (at most 60 s), stdout collected.
fn sandbox(args: &[&str]) -> Run {
    let mut launcher = launch(args, Stdio::null(), Stdio::piped());
    let mut stdout = launcher.child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let mut run = launcher.finish(Duration::from_secs(60));
    run.stdout = reader.join().unwrap();
    run
}

/// Asserts that the run's cgroup directories, as its JSON outcome names them, are gone; returns
/// them.
fn cgroup_dirs_are_gone(run: &Run) -> Vec<PathBuf> {
    let dirs = json_cgroup_dirs(run);
    assert!(!dirs.is_empty(), "no sandbox cgroup in {run:#?}");
    for dir in &dirs {
        assert!(!dir.exists(), "{} is left behind", dir.display());
    }
    dirs
}

/// SIGKILLs leftover `sleep MARKER` processes (so that a failing test does not leave them), and
/// returns what it found.
fn reap_sleeps(marker: &str) -> Vec<u32> {
    let found = sleeps_with(marker);
    for pid in &found {
        // SAFETY: test code; kill(2) with a PID; at worst ESRCH.
        unsafe { libc::kill(*pid as libc::pid_t, libc::SIGKILL) };
    }
    found
}

/// Every test holds this lock: shared, except those that load the machine (streaming, OOM kills,
/// fork bombs), so that they do not starve the timing of the others on the emulated VM, and the
/// one that needs to know which launcher removed a stale cgroup from the default place (any new
/// launcher's first run there removes them).
static LAUNCHERS: std::sync::RwLock<()> = std::sync::RwLock::new(());

fn shared() -> std::sync::RwLockReadGuard<'static, ()> {
    LAUNCHERS.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn exclusive() -> std::sync::RwLockWriteGuard<'static, ()> {
    LAUNCHERS.write().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Whether this machine is slow at starting sandboxes (the emulated cgroup-v2 VM: ~10 ms a
/// fork; a trivial run takes hundreds of ms there, 10 to 30 ms on the host). Timing-sensitive
/// tests then give the command more time, and the 1 GiB test streams less.
fn slow_machine() -> bool {
    static SLOW: OnceLock<bool> = OnceLock::new();
    *SLOW.get_or_init(|| {
        let fastest = (0..3)
            .map(|_| {
                let start = Instant::now();
                let status = Command::new(SANDBOX).args(["run", "--", "true"]).stderr(Stdio::null()).status().unwrap();
                assert!(status.success());
                start.elapsed()
            })
            .min()
            .unwrap();
        let slow = fastest > Duration::from_millis(100);
        if slow {
            eprintln!("slow machine: a trivial sandbox run takes {fastest:?}");
        }
        slow
    })
}

/// A `--timeout` for a command that must get going first, and how late the kill may come.
fn timeout_and_slack() -> (Duration, Duration, &'static str) {
    if slow_machine() {
        (Duration::from_secs(10), Duration::from_secs(5), "10s")
    } else {
        (Duration::from_secs(3), Duration::from_secs(2), "3s")
    }
}

/// A `sandbox run --timeout` of `sleep MARKER` (after the shell commands `prelude`) that has
/// started, with the timeout and how late its kill may come.
struct TimedSleep {
    launcher: Launcher,
    /// The sleep's PID on the host.
    sleep: u32,
    timeout: Duration,
    slack: Duration,
}

fn start_timed_sleep(marker: &str, prelude: &str) -> TimedSleep {
    // Long enough for the command to start on the emulated VM.
    let (timeout, slack, timeout_arg) = timeout_and_slack();
    let script = format!("{prelude} exec sleep {marker}");
    let launcher = launch(&["--timeout", timeout_arg, "--", "sh", "-c", &script], Stdio::null(), Stdio::null());
    wait_until("the sandboxed sleep started", timeout, || !sleeps_with(marker).is_empty());
    TimedSleep { launcher, sleep: sleeps_with(marker)[0], timeout, slack }
}

/// Reads lines from `reader` until one equals `line`; returns everything read.
fn read_through(reader: &mut impl BufRead, line: &str) -> String {
    let mut text = String::new();
    loop {
        let start = text.len();
        let n = reader.read_line(&mut text).unwrap();
        assert!(n > 0, "EOF before {line:?}; read {text:?}");
        if text[start..].trim_end() == line {
            return text;
        }
    }
}

/// Signal mask field (`SigIgn:`, `SigCgt:`) of /proc/PID/status.
fn signal_mask(pid: u32, field: &str) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let hex = status.lines().find_map(|l| l.strip_prefix(field)).unwrap().trim();
    u64::from_str_radix(hex, 16).unwrap()
}

// ---------------------------------------------------------------- 1. SIGTERM is not a way out

/// `--timeout` needs no cooperation: the sandbox does not ask with SIGTERM first, its init
/// SIGKILLs every process of the run (`kill(-1)`) and reaps them, so a command that ignores
/// SIGTERM ends on time. Reported as `timed_out`, signal 9 (SIGKILL), exit status 137.
#[test]
fn timeout_ends_a_command_that_ignores_sigterm() {
    let _lock = shared();
    let marker = marker(2001);
    let TimedSleep { launcher, sleep, timeout, slack } = start_timed_sleep(&marker, "trap '' TERM;");
    // The command really ignores SIGTERM (SIG_IGN survives exec).
    assert_ne!(signal_mask(sleep, "SigIgn:") & (1 << (libc::SIGTERM - 1)), 0, "SIGTERM is not ignored by the command");
    let run = launcher.finish(Duration::from_secs(20));
    assert_eq!(reap_sleeps(&marker), Vec::<u32>::new(), "the command survived its timeout");
    assert_eq!(run.json["ending"], "timed_out", "{run:#?}");
    assert_eq!(run.json["timed_out"], true);
    assert_eq!(run.json["signal"], libc::SIGKILL);
    assert_eq!(run.json["signal_name"], "SIGKILL");
    assert_eq!(run.json["exit_code"], Value::Null);
    assert_eq!(run.code, Some(128 + libc::SIGKILL));
    let wall = Duration::from_millis(json_u64(&run, "wall_ms"));
    assert!(wall >= timeout && wall < timeout + slack, "ended after {wall:?} for a {timeout:?} timeout");
    assert!(run.elapsed < timeout + slack * 2, "the launcher took {:?}", run.elapsed);
    cgroup_dirs_are_gone(&run);
}

/// At a timeout the launcher asks the init to end the run; an init that cannot (stopped from the
/// host here) does not hold the run up: 2 s later the launcher kills everything at once, and the
/// outcome is the same timed-out SIGKILL, with nothing left.
#[test]
fn a_stopped_init_does_not_hold_up_a_timed_out_run() {
    const GRACE: Duration = Duration::from_secs(2);
    let _lock = shared();
    let marker = marker(2010);
    let TimedSleep { launcher, sleep, timeout, slack } = start_timed_sleep(&marker, "");
    let status = fs::read_to_string(format!("/proc/{sleep}/status")).unwrap();
    let init: libc::pid_t = status.lines().find_map(|l| l.strip_prefix("PPid:")).unwrap().trim().parse().unwrap();
    assert_eq!(fs::read_to_string(format!("/proc/{init}/comm")).unwrap().trim(), "sandbox", "the command's parent is the init");
    // SAFETY: test code; kill(2) of the sandbox's init, a process this test started.
    assert_eq!(unsafe { libc::kill(init, libc::SIGSTOP) }, 0);
    let run = launcher.finish(Duration::from_secs(30));
    assert_eq!(reap_sleeps(&marker), Vec::<u32>::new(), "the command survived its timeout");
    assert_eq!(run.json["ending"], "timed_out", "{run:#?}");
    assert_eq!(run.json["signal"], libc::SIGKILL);
    assert_eq!(run.code, Some(128 + libc::SIGKILL));
    // The launcher gave the init its grace, and no more.
    assert!(run.elapsed >= timeout + GRACE, "killed after {:?}, before the grace of the init was over", run.elapsed);
    assert!(run.elapsed < timeout + GRACE + slack * 2, "the launcher took {:?}", run.elapsed);
    assert!(!Path::new(&format!("/proc/{init}")).exists(), "the stopped init is still there");
    cgroup_dirs_are_gone(&run);
}

/// SIGTERM sent to the launcher (as `kill PID` or a CI runner's cancel does) is forwarded, once
/// per signal, to the command (PID 2) through the sandbox's init. It is only passed on: the
/// launcher neither exits nor escalates to SIGKILL, and sends nothing to the command's other
/// processes. A command that catches or ignores SIGTERM therefore keeps running until it exits by
/// itself or `--timeout` SIGKILLs the whole run, and the outcome says so: `timed_out`, SIGKILL,
/// 137 — not SIGTERM. (Without `--timeout` it runs on; SIGKILL to the launcher is the way to stop
/// it, see cli.rs `killing_the_launcher_kills_the_sandbox_and_the_next_start_cleans_up`.)
#[test]
fn sigterm_to_the_launcher_is_forwarded_and_a_command_ignoring_it_runs_until_its_timeout() {
    let _lock = shared();
    let marker = marker(2002);
    let (timeout, slack, timeout_arg) = timeout_and_slack();
    // The command's own shell catches SIGTERM and carries on; its child sleep ignores it.
    let script = format!(
        "trap 'echo got-TERM' TERM; (trap '' TERM; exec sleep {marker}) & \
         echo ready; while :; do sleep 0.02; done"
    );
    let mut launcher = launch(&["--timeout", timeout_arg, "--", "sh", "-c", &script], Stdio::null(), Stdio::piped());
    let mut stdout = BufReader::new(launcher.child.stdout.take().unwrap());
    read_through(&mut stdout, "ready");
    wait_until("the sandboxed sleep started", Duration::from_secs(30), || !sleeps_with(&marker).is_empty());
    let sleep = sleeps_with(&marker);
    for _ in 0..2 {
        launcher.signal(libc::SIGTERM);
        // The command's trap proves the signal reached it (a dropped signal would leave this
        // read blocked until the timeout closes stdout, and fail).
        read_through(&mut stdout, "got-TERM");
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(launcher.is_running(), "the launcher ended on SIGTERM although the command ignores it");
    assert_eq!(sleeps_with(&marker), sleep, "a process of the command was ended by the forwarded SIGTERM");
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let run = launcher.finish(Duration::from_secs(20));
    assert_eq!(rest, "", "SIGTERM was delivered more often than sent");
    assert_eq!(reap_sleeps(&marker), Vec::<u32>::new(), "a process survived the timeout");
    assert_eq!(run.json["ending"], "timed_out", "{run:#?}");
    assert_eq!(run.json["signal"], libc::SIGKILL);
    assert_eq!(run.code, Some(128 + libc::SIGKILL));
    let wall = Duration::from_millis(json_u64(&run, "wall_ms"));
    assert!(wall >= timeout && wall < timeout + slack, "ended after {wall:?} for a {timeout:?} timeout");
    assert!(run.stderr.contains(&format!("timed out after {}.0 s", timeout.as_secs())), "{run:#?}");
    cgroup_dirs_are_gone(&run);
}

// ---------------------------------------------------------------- 2. daemons

/// The run ends when the command (PID 2) ends: the init reports its status and exits, and the
/// kernel's PID-namespace teardown SIGKILLs whatever else is left, a double-forked daemon in its
/// own session included; the launcher's wait for the init returns only once all of them are gone.
#[test]
fn a_double_forked_daemon_dies_with_the_command_whose_status_is_reported() {
    let _lock = shared();
    let marker = marker(2003);
    // Double fork: a subshell starts `setsid sleep` in the background and exits; the sleep is
    // orphaned (re-parented to the init) in a session of its own. The command waits until it
    // runs, shows its PID, parent and session, and exits 0.
    let script = format!(
        "\
         ( setsid sh -c 'echo $$ > /tmp/daemon; exec sleep {marker}' </dev/null >/dev/null 2>&1 & ); \
         until [ -s /tmp/daemon ] && [ \"$(cat /proc/$(cat /tmp/daemon)/comm 2>/dev/null)\" = sleep ]; do sleep 0.01; done; \
         cut -d' ' -f1,4,6 /proc/$(cat /tmp/daemon)/stat; exit 0"
    );
    let run = sandbox(&["--", "sh", "-c", &script]);
    let leaked = reap_sleeps(&marker);
    assert_eq!(leaked, Vec::<u32>::new(), "the daemon survived the run: {run:#?}");
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert_eq!(run.json["exit_code"], 0);
    assert_eq!(run.json["ending"], "exited");
    let daemon: Vec<&str> = run.stdout.lines().last().unwrap().split(' ').collect();
    assert_eq!(daemon[1], "1", "the daemon was not orphaned to the init: {run:#?}");
    assert_eq!(daemon[2], daemon[0], "the daemon does not lead its own session: {run:#?}");
    cgroup_dirs_are_gone(&run);
}

// ---------------------------------------------------------------- 3. stdout closed, reader gone

#[test]
fn a_command_that_closes_its_stdout_early_is_reported_with_its_exit_status() {
    let _lock = shared();
    let mut launcher = launch(
        &["--", "sh", "-c", "exec >&-; sleep 0.1; \
           if [ -e /proc/$$/fd/1 ]; then echo stdout-open >&2; else echo stdout-closed >&2; fi; \
           echo lost 2>/dev/null; echo still-working >&2; exit 3"],
        Stdio::null(),
        Stdio::piped(),
    );
    let mut stdout = String::new();
    launcher.child.stdout.take().unwrap().read_to_string(&mut stdout).unwrap();
    let run = launcher.finish(Duration::from_secs(20));
    assert_eq!(stdout, "", "{run:#?}");
    assert!(run.stderr.contains("stdout-closed\nstill-working\n"), "{run:#?}");
    assert_eq!(run.code, Some(3), "{run:#?}");
    assert_eq!(run.json["exit_code"], 3);
    assert_eq!(run.json["signal"], Value::Null);
    assert_eq!(run.json["ending"], "exited");
    cgroup_dirs_are_gone(&run);
}

/// The command writes straight into the launcher's stdout (nothing in between), so when that
/// pipe's reader is gone the command gets what it would get outside: SIGPIPE, with the default
/// action, and the outcome names it (signal 13, `signaled`, exit 141). A command that ignores
/// SIGPIPE itself gets EPIPE instead and its own exit status is reported.
#[test]
fn a_command_whose_stdout_reader_goes_away_gets_sigpipe() {
    let _lock = shared();
    // a) The reader closes its end mid-stream.
    let mut launcher = launch(&["--", "sh", "-c", "exec yes"], Stdio::null(), Stdio::piped());
    let mut stdout = launcher.child.stdout.take().unwrap();
    let mut buffer = vec![0u8; 64 << 10];
    stdout.read_exact(&mut buffer).unwrap();
    assert!(buffer.starts_with(b"y\ny\n"));
    drop(stdout);
    let run = launcher.finish(Duration::from_secs(20));
    assert_eq!(run.json["signal"], libc::SIGPIPE, "{run:#?}");
    assert_eq!(run.json["signal_name"], "SIGPIPE");
    assert_eq!(run.json["ending"], "signaled");
    assert_eq!(run.code, Some(128 + libc::SIGPIPE));
    cgroup_dirs_are_gone(&run);

    // b) The read end is closed before the run starts.
    let (read_end, write_end) = nix::unistd::pipe().unwrap();
    drop(read_end);
    let launcher = launch(&["--", "sh", "-c", "exec yes"], Stdio::null(), Stdio::from(write_end));
    let run = launcher.finish(Duration::from_secs(20));
    assert_eq!(run.json["signal"], libc::SIGPIPE, "{run:#?}");
    assert_eq!(run.code, Some(128 + libc::SIGPIPE));
    cgroup_dirs_are_gone(&run);

    // c) A command that ignores SIGPIPE sees EPIPE and exits with its own status.
    let (read_end, write_end) = nix::unistd::pipe().unwrap();
    drop(read_end);
    let launcher =
        launch(&["--", "sh", "-c", "trap '' PIPE; exec yes"], Stdio::null(), Stdio::from(write_end));
    let run = launcher.finish(Duration::from_secs(20));
    assert_eq!(run.json["exit_code"], 1, "{run:#?}");
    assert_eq!(run.json["signal"], Value::Null);
    assert!(run.stderr.contains("Broken pipe"), "{run:#?}");
    cgroup_dirs_are_gone(&run);
}

// ---------------------------------------------------------------- 4. 1 GiB through stdout

/// Streams `size` bytes of zeros from `head` in a `--mem 100M` sandbox through a pipe to the
/// test, which counts them (never stores them). Returns the run and the bytes that arrived.
fn stream_zeros(size: u64) -> (Run, u64) {
    let mut launcher = launch(
        &["--mem", "100M", "--", "sh", "-c", &format!("exec head -c {size} /dev/zero")],
        Stdio::null(),
        Stdio::piped(),
    );
    let mut stdout = launcher.child.stdout.take().unwrap();
    // Compared with zeros as slices (memcmp: a byte loop is slow in a debug build).
    let (mut buffer, zeros) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    let mut total = 0u64;
    loop {
        let n = stdout.read(&mut buffer).unwrap();
        if n == 0 {
            break;
        }
        total += n as u64;
        assert!(buffer[..n] == zeros[..n], "bytes other than the zeros written arrived");
    }
    let run = launcher.finish(Duration::from_secs(180));
    (run, total)
}

/// Output is not buffered by the sandbox: the command's stdout *is* the launcher's, so 1 GiB goes
/// through a pipe read by the test under a 100 MiB memory limit without an OOM kill, and the
/// run's peak memory stays far below the limit. (On a slow machine, the emulated cgroup-v2 VM,
/// where 1 GiB takes 30 s and more, 256 MiB: still 2.5 times the limit.)
#[test]
fn a_gigabyte_on_stdout_arrives_whole_and_is_not_held_in_sandbox_memory() {
    let _lock = exclusive();
    let size: u64 = if slow_machine() { 256 << 20 } else { 1 << 30 };
    let (run, total) = stream_zeros(size);
    eprintln!(
        "{} MiB through the launcher's stdout: {:?} (outcome wall {} ms, peak memory {} bytes)",
        size >> 20,
        run.elapsed,
        json_u64(&run, "wall_ms"),
        json_u64(&run, "peak_memory_bytes")
    );
    assert_eq!(total, size, "{run:#?}");
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert_eq!(run.json["exit_code"], 0);
    assert_eq!(run.json["ending"], "exited");
    assert_eq!(json_u64(&run, "oom_kills"), 0);
    let peak = json_u64(&run, "peak_memory_bytes");
    assert!(peak < 32 << 20, "peak memory {peak} for streaming output: it is being buffered");
    cgroup_dirs_are_gone(&run);
}

// ---------------------------------------------------------------- 5. launchers side by side

fn argv(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// One pass of the side-by-side scenario, all launchers with `extra` options:
/// A (`--pids 20 --mem 100M`) waits on its stdin; meanwhile B1 is OOM-killed and B2 fork-bombs
/// (in parallel), C is SIGKILLed mid-run leaving its cgroup, D (a new launcher) removes C's stale
/// cgroup — and nothing of A's, whose cgroup keeps its processes and limits until A ends normally.
fn launchers_side_by_side(extra: &[&str]) {
    let with = |opts: &[&str]| -> Vec<String> { extra.iter().chain(opts).map(|s| s.to_string()).collect() };

    // A
    let a_args = with(&["--pids", "20", "--mem", "100M", "--", "sh", "-c", "echo ready; read line; exit 0"]);
    let mut a = launch(&argv(&a_args), Stdio::piped(), Stdio::piped());
    let mut a_stdin = a.child.stdin.take().unwrap();
    let mut a_stdout = BufReader::new(a.child.stdout.take().unwrap());
    read_through(&mut a_stdout, "ready");
    let a_dirs = run_cgroup_dirs(&init_cgroup_text(a.child.id()));
    let pids_dir = a_dirs.iter().find(|d| d.join("pids.max").exists()).expect("A has a pids cgroup").clone();

    // B1 and B2, at the same time, next to A.
    let b1_args = with(&["--pids", "20", "--mem", "100M", "--", "sh", "-c",
        "exec dd if=/dev/zero of=/dev/null bs=400M count=1 2>/dev/null"]);
    // The fork bomb forks until the kernel refuses (then sh gives up: "Cannot fork", exit 2), so
    // it hits the limit however slowly the machine forks (the emulated VM: ~10 ms a fork).
    let b2_marker = marker(if extra.is_empty() { 2007 } else { 2008 });
    let b2_script = format!("while sleep {b2_marker} & do :; done 2>/dev/null");
    let b2_args = with(&["--pids", "20", "--mem", "100M", "--timeout", "30s", "--", "sh", "-c", &b2_script]);
    let (b1, b2) = std::thread::scope(|s| {
        let b1 = s.spawn(|| sandbox(&argv(&b1_args)));
        let b2 = s.spawn(|| sandbox(&argv(&b2_args)));
        (b1.join().unwrap(), b2.join().unwrap())
    });
    assert!(json_u64(&b1, "oom_kills") >= 1, "{b1:#?}");
    assert_eq!(b1.json["ending"], "oom_killed");
    assert!(json_u64(&b2, "pids_limit_hits") > 0, "{b2:#?}");
    assert_eq!(b2.json["timed_out"], false, "{b2:#?}");
    if let Some(peak) = common::peak_pids(b2.json["peak_pids"].as_u64()) {
        assert!(peak <= 20, "B's peak pids {peak} above its limit");
    }
    assert_eq!(reap_sleeps(&b2_marker), Vec::<u32>::new(), "B's processes survived it");
    for b in [&b1, &b2] {
        let dirs = cgroup_dirs_are_gone(b);
        assert!(dirs.iter().all(|d| !a_dirs.contains(d)), "B ran in A's cgroup");
    }
    // A's cgroup is untouched: its limit and its processes are still there.
    assert_eq!(fs::read_to_string(pids_dir.join("pids.max")).unwrap().trim(), "20");
    assert!(a.is_running(), "A ended while B ran");

    // C, SIGKILLed mid-run: its cgroup stays behind...
    let c_marker = marker(if extra.is_empty() { 2005 } else { 2006 });
    let c_args = with(&["--pids", "20", "--", "sh", "-c", &format!("echo ready; exec sleep {c_marker}")]);
    let mut c = launch(&argv(&c_args), Stdio::null(), Stdio::piped());
    let mut c_stdout = BufReader::new(c.child.stdout.take().unwrap());
    read_through(&mut c_stdout, "ready");
    let c_dirs = run_cgroup_dirs(&init_cgroup_text(c.child.id()));
    wait_until("C's sleep started", Duration::from_secs(30), || !sleeps_with(&c_marker).is_empty());
    c.signal(libc::SIGKILL);
    let c_run = c.finish(Duration::from_secs(30));
    assert_eq!(c_run.code, None, "C was not killed: {c_run:#?}");
    wait_until("C's processes died with their launcher", Duration::from_secs(30), || sleeps_with(&c_marker).is_empty());
    assert!(c_dirs.iter().all(|d| d.exists()), "C's cgroup is expected to stay until the next launcher starts");

    // ...until D, a new launcher, removes it, and only it.
    let d = sandbox(&argv(&with(&["--", "true"])));
    assert_eq!(d.code, Some(0), "{d:#?}");
    cgroup_dirs_are_gone(&d);
    for dir in &c_dirs {
        assert!(!dir.exists(), "C's stale {} was not removed by D", dir.display());
    }
    for dir in &a_dirs {
        assert!(dir.exists(), "D removed the live A's {}", dir.display());
        // Contained, its processes are in the delegated directory below it.
        let procs: String = [dir.join("cgroup.procs"), dir.join("delegated/cgroup.procs")]
            .iter()
            .filter_map(|file| fs::read_to_string(file).ok())
            .collect();
        assert!(!procs.trim().is_empty(), "A's processes left {}", dir.display());
    }
    assert!(a.is_running(), "A ended while C and D ran");

    // A ends normally, with nothing counted against it, and its cgroup goes with it.
    std::io::Write::write_all(&mut a_stdin, b"done\n").unwrap();
    drop(a_stdin);
    let a_run = a.finish(Duration::from_secs(30));
    assert_eq!(a_run.code, Some(0), "{a_run:#?}");
    assert_eq!(a_run.json["ending"], "exited");
    assert_eq!(json_u64(&a_run, "oom_kills"), 0, "B's OOM kill was counted in A");
    assert_eq!(json_u64(&a_run, "pids_limit_hits"), 0, "B's fork bomb was counted in A");
    if let Some(peak) = common::peak_pids(a_run.json["peak_pids"].as_u64()) {
        assert!(peak <= 4, "A's peak pids {peak}: B's processes were counted in A");
    }
    for dir in &a_dirs {
        assert!(!dir.exists(), "A's {} is left behind", dir.display());
    }
}

/// In the default place (`<hierarchy>/sandbox`), shared with every other run: (also) exclusive of
/// the other tests here because their new launchers would remove C's stale cgroup before D.
#[test]
fn launchers_side_by_side_never_touch_each_others_cgroups() {
    let _lock = exclusive();
    launchers_side_by_side(&[]);
}

#[test]
fn launchers_side_by_side_in_the_same_cgroup_parent() {
    let _lock = exclusive();
    let parent = unique("parent");
    launchers_side_by_side(&["--cgroup-parent", &parent]);
    // Nothing is left in the shared parent; remove it.
    for mount in ["/sys/fs/cgroup/pids", "/sys/fs/cgroup/memory", "/sys/fs/cgroup/cpuacct", "/sys/fs/cgroup"] {
        let dir = Path::new(mount).join(&parent);
        if dir.is_dir() {
            let left: Vec<_> = fs::read_dir(&dir).unwrap().flatten().filter(|e| e.path().is_dir()).map(|e| e.path()).collect();
            assert!(left.is_empty(), "left in the shared cgroup parent: {left:?}");
            fs::remove_dir(&dir).unwrap();
        }
    }
}

// ---------------------------------------------------------------- 6. chroot escapes

/// The escape program. `escape fd|dotdot JAIL MARKER`: as root, mkdir JAIL, chroot into it, get
/// back above it (fchdir to a descriptor of the old "/", or just the cwd that chroot left
/// outside), chdir("..") 64 times and chroot("."). `escape links MARKER PATH...`: no escape, only
/// look at PATHs. Either way it prints, for "/" and each PATH, `PATH DEV:INO MARKER-VISIBLE`,
/// where MARKER-VISIBLE says whether the host-only marker file is reachable from there.
const ESCAPE_C: &str = r#"
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void show(const char *path, const char *marker) {
    struct stat st;
    char joined[4096];
    if (stat(path, &st) != 0) { printf("%s unreachable\n", path); return; }
    snprintf(joined, sizeof joined, "%s/%s", path, marker);
    printf("%s %llu:%llu %s\n", path, (unsigned long long)st.st_dev, (unsigned long long)st.st_ino,
           access(joined, F_OK) == 0 ? "marker-visible" : "marker-hidden");
}

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: escape fd|dotdot JAIL MARKER | links MARKER PATH...\n"); return 2; }
    if (strcmp(argv[1], "links") == 0) {
        show("/", argv[2]);
        for (int i = 3; i < argc; i++) show(argv[i], argv[2]);
        return 0;
    }
    if (argc != 4) return 2;
    int fd = open("/", O_RDONLY | O_DIRECTORY);
    if (fd < 0) { perror("open /"); return 10; }
    if (mkdir(argv[2], 0755) != 0 && errno != EEXIST) { perror("mkdir"); return 11; }
    if (chroot(argv[2]) != 0) { perror("chroot jail"); return 12; }
    if (strcmp(argv[1], "fd") == 0 && fchdir(fd) != 0) { perror("fchdir"); return 13; }
    for (int i = 0; i < 64; i++)
        if (chdir("..") != 0) { perror("chdir .."); return 14; }
    if (chroot(".") != 0) { perror("chroot ."); return 15; }
    if (chdir("/") != 0) { perror("chdir /"); return 16; }
    show("/", argv[3]);
    return 0;
}
"#;

/// The escape program, built statically (it runs in a busybox root without a libc) with the C
/// compiler, once per source text: the binary is kept in the target directory, where the
/// cgroup-v2 VM (which sees the host's file system) finds it too.
fn escape_program() -> &'static Path {
    static PROGRAM: OnceLock<PathBuf> = OnceLock::new();
    PROGRAM.get_or_init(|| {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        ESCAPE_C.hash(&mut hasher);
        let program = scratch().join(format!("chroot-escape-{:016x}", hasher.finish()));
        if program.exists() {
            return program;
        }
        let source = scratch().join(format!("{}.c", unique("escape")));
        let building = scratch().join(unique("escape.bin"));
        fs::write(&source, ESCAPE_C).unwrap();
        let compiler = ["cc", "gcc"].into_iter().find(|cc| Command::new(cc).arg("--version").output().is_ok_and(|o| o.status.success()));
        let Some(compiler) = compiler else {
            panic!("the chroot escape tests need a C compiler with a static libc: apt-get install gcc libc6-dev (no cc or gcc found)");
        };
        let output = Command::new(compiler).args(["-static", "-O2", "-o"]).arg(&building).arg(&source).output().unwrap();
        let _ = fs::remove_file(&source);
        assert!(
            output.status.success(),
            "building the static escape program with `{compiler} -static` failed (static glibc is in libc6-dev): {}",
            String::from_utf8_lossy(&output.stderr)
        );
        fs::rename(&building, &program).unwrap();
        program
    })
}

/// A busybox root with the escape program at /escape, and a host-only marker file outside it.
struct EscapeSetup {
    root: PathBuf,
    /// Absolute host path of the marker; the same path inside the rootfs does not exist.
    host_marker: PathBuf,
}

impl EscapeSetup {
    fn new() -> EscapeSetup {
        let program = escape_program();
        let root = busybox_rootfs();
        fs::copy(program, root.join("escape")).unwrap();
        let host_marker = scratch().join(unique("host-marker"));
        fs::write(&host_marker, "host\n").unwrap();
        EscapeSetup { root, host_marker }
    }

    fn marker(&self) -> &str {
        self.host_marker.to_str().unwrap().trim_start_matches('/')
    }

    /// `DEV:INO` of the rootfs directory and of the host's `/`.
    fn identities(&self) -> (String, String) {
        let id = |p: &Path| {
            let m = fs::metadata(p).unwrap();
            format!("{}:{}", m.dev(), m.ino())
        };
        (id(&self.root), id(Path::new("/")))
    }
}

impl Drop for EscapeSetup {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.root);
        let _ = fs::remove_file(&self.host_marker);
    }
}

/// The classic chroot escapes (an fd to the old "/" and fchdir, or the cwd chroot leaves outside,
/// then `..` upwards and chroot(".")) as root inside a `--rootfs` sandbox land in the sandbox's
/// root: after pivot_root and the detached old root there is nothing above it. Control: the very
/// same program does reach the host's "/" from a plain `chroot` into the same directory, so the
/// negative assertion is meaningful.
#[test]
fn chroot_escapes_from_a_rootfs_sandbox_stay_in_the_sandbox_root() {
    let _lock = shared();
    let setup = EscapeSetup::new();
    let (rootfs_id, host_id) = setup.identities();
    assert_ne!(rootfs_id, host_id);
    assert!(setup.host_marker.exists() && !setup.root.join(setup.marker()).exists());
    let root = setup.root.to_str().unwrap();

    for (mode, jail) in [("fd", "/jail-fd"), ("dotdot", "/jail-dotdot")] {
        // Control: a plain chroot is escaped, to the host's "/" and its marker.
        let output = Command::new("chroot").args([root, "/escape", mode, jail, setup.marker()]).output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{mode}: {output:?}");
        assert_eq!(stdout, format!("/ {host_id} marker-visible\n"), "{mode}: the escape does not even escape a plain chroot");

        // The sandbox: the escape ends in the rootfs, the host's marker out of reach.
        let script = format!("exec /escape {mode} {jail} {}", setup.marker());
        let run = sandbox(&["--rootfs", root, "--", "/bin/sh", "-c", &script]);
        assert_eq!(run.code, Some(0), "{mode}: {run:#?}");
        assert_eq!(run.stdout, format!("/ {rootfs_id} marker-hidden\n"), "{mode}: escaped the sandbox's root: {run:#?}");
        cgroup_dirs_are_gone(&run);
    }
}

/// The magic links of /proc (`/proc/1/root`, `/proc/<command>/root`, `/proc/self/root`,
/// `/proc/self/cwd`, and `..` of them) lead to the sandbox's root, never the host's.
#[test]
fn proc_root_and_cwd_links_do_not_reach_the_host() {
    let _lock = shared();
    let setup = EscapeSetup::new();
    let (rootfs_id, _) = setup.identities();
    let root = setup.root.to_str().unwrap();
    let paths = ["/..", "/proc/1/root", "/proc/1/root/..", "/proc/1/cwd", "/proc/2/root", "/proc/2/cwd/..", "/proc/self/root", "/proc/self/root/..", "/proc/self/cwd", "/proc/self/cwd/.."];
    let script = format!("cd /; exec /escape links {} {}", setup.marker(), paths.join(" "));
    // As root with the machine's root: a contained command may not look at the init at all.
    let run = sandbox(&["--privileged", "--rootfs", root, "--", "/bin/sh", "-c", &script]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), paths.len() + 1, "{run:#?}");
    for (line, path) in lines.iter().zip(std::iter::once("/").chain(paths)) {
        assert_eq!(*line, format!("{path} {rootfs_id} marker-hidden"), "{run:#?}");
    }
    // The same link of a process on the host does lead to the host's root (the check can tell
    // them apart).
    let output = Command::new(escape_program()).args(["links", setup.marker(), "/proc/self/root"]).output().unwrap();
    let (_, host_id) = setup.identities();
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        format!("/ {host_id} marker-visible\n/proc/self/root {host_id} marker-visible\n")
    );
    cgroup_dirs_are_gone(&run);
}

// ---------------------------------------------------------------- 7. reused cgroups

/// Runs `program args` in `sandbox` (stdio to /dev/null); the run's cgroup directories and
/// its outcome.
fn run_in(sandbox: &sandbox::Sandbox, program: &str, args: &[&str]) -> (Vec<PathBuf>, sandbox::Outcome) {
    let null = |write: bool| fs::OpenOptions::new().read(!write).write(write).open("/dev/null").unwrap();
    let mut command = sandbox::Command::new(program);
    command.args(args).stdin(null(false)).stdout(null(true)).stderr(null(true));
    let running = sandbox.spawn(&command).unwrap();
    let paths = running.cgroup_paths();
    assert!(!paths.is_empty(), "a run as root has a cgroup");
    (paths, running.wait().unwrap())
}

/// Fork servers keep a run's cgroup for the next run (`cgroup::pool`, on v1; v2
/// makes a new one each time, as its `memory.peak` cannot be reset before kernel 6.12). Each
/// run must still report only its own OOM kills, pids-limit hits and peak: an OOM kill must
/// not reappear in the next run, and a cgroup whose `pids.peak` rose above the floor of 2 must
/// not be reused (its peak could no longer be told). Nothing is left once the pool is drained.
#[test]
fn a_reused_cgroup_reports_only_its_own_runs_counters() {
    let _alone = exclusive();
    sandbox::cgroup::pool::enable();
    let limits = sandbox::Limits { pids: Some(8), memory_bytes: Some(32 << 20), cpu_cores: None };
    let sandbox = sandbox::Sandbox::with_environment(sandbox::Config { limits: limits.clone(), ..sandbox::Config::default() }).unwrap();

    // One process that grows until the OOM killer ends it (tail keeps a line that never ends).
    let (first_dirs, oom) = run_in(&sandbox, "tail", &["/dev/zero"]);
    assert_eq!(oom.status, sandbox::ExitStatus::Signal(libc::SIGKILL), "{oom:?}");
    assert!(oom.stats.oom_kills >= 1, "{oom:?}");
    let v1 = oom.cgroup_version == Some(sandbox::cgroup::CgroupVersion::V1);

    let (dirs, quiet) = run_in(&sandbox, "true", &[]);
    assert_eq!(dirs == first_dirs, v1, "reused on v1 only: {first_dirs:?} then {dirs:?}");
    assert_eq!(quiet.status, sandbox::ExitStatus::Code(0), "{quiet:?}");
    assert_eq!((quiet.stats.oom_kills, quiet.stats.pids_limit_hits), (0, 0), "{quiet:?}");
    assert!(common::peak_pids(quiet.stats.peak_pids).is_none_or(|peak| peak == 2), "{quiet:?}");

    let (bomb_dirs, bomb) = run_in(&sandbox, "sh", &["-c", "for i in 1 2 3 4 5 6 7 8 9 10; do sleep 0.3 & done; wait"]);
    assert_eq!(bomb_dirs == first_dirs, v1, "{first_dirs:?} then {bomb_dirs:?}");
    assert!(bomb.stats.pids_limit_hits > 0, "{bomb:?}");
    assert_eq!(bomb.stats.oom_kills, 0, "{bomb:?}");
    assert!(common::peak_pids(bomb.stats.peak_pids).is_none_or(|peak| peak == 8), "{bomb:?}");

    let (after_dirs, after) = run_in(&sandbox, "true", &[]);
    if bomb.stats.peak_pids.is_some() {
        assert_ne!(after_dirs, bomb_dirs, "a cgroup with pids.peak 8 was reused");
    }
    assert_eq!((after.stats.oom_kills, after.stats.pids_limit_hits), (0, 0), "{after:?}");
    assert!(common::peak_pids(after.stats.peak_pids).is_none_or(|peak| peak == 2), "{after:?}");

    // A CPU limit needs the cpu hierarchy (v1), which the pooled cgroup lacks: a new cgroup
    // with it; and a run without a CPU limit must not reuse that one (its quota would stay).
    let cpu_limits = sandbox::Limits { cpu_cores: Some(0.5), ..limits.clone() };
    let cpu_sandbox = sandbox::Sandbox::with_environment(sandbox::Config { limits: cpu_limits, ..sandbox::Config::default() }).unwrap();
    let (cpu_dirs, cpu_run) = run_in(&cpu_sandbox, "true", &[]);
    let (plain_dirs, _) = run_in(&sandbox, "true", &[]);
    assert_ne!(cpu_dirs, after_dirs, "a run with a CPU limit reused a cgroup made without one");
    assert_ne!(plain_dirs, cpu_dirs, "a run without a CPU limit reused a cgroup made with one");
    assert_eq!(cpu_run.status, sandbox::ExitStatus::Code(0), "{cpu_run:?}");

    sandbox::cgroup::pool::drain();
    for dir in first_dirs.iter().chain(&after_dirs).chain(&cpu_dirs).chain(&plain_dirs) {
        assert!(!dir.exists(), "{} left behind", dir.display());
    }
}

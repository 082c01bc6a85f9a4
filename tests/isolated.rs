//! `#[isolated]` under the stock libtest harness (`cargo test`, `cargo nextest run`): each test
//! body asserts what the kernel shows from inside its sandbox, the `expect` tests require the
//! event to have happened, and the fixtures (`isolated_fixtures.rs`, `isolated_runner_fixtures.rs`,
//! targets of their own that `cargo test` does not run) must fail: the tests at the end run them
//! as child processes and assert their verdicts and messages.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::OnceLock;

use sandbox::isolated;

mod common;

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim().to_string()
}

fn mount_type(path: &str) -> String {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let line = mountinfo.lines().rfind(|l| l.split(' ').nth(4) == Some(path)).unwrap_or_else(|| panic!("{path} not mounted"));
    line.split(" - ").nth(1).unwrap().split(' ').next().unwrap().to_string()
}

/// Allocates 1 MiB blocks (touching every page) until the OOM killer steps in.
fn leak_forever() -> ! {
    let mut blocks = Vec::new();
    loop {
        blocks.push(vec![1u8; 1 << 20]);
    }
}

// ---------------------------------------------------------------- passing tests

#[isolated]
fn runs_as_pid_2_with_fresh_proc_hostname_and_tmp() {
    assert_eq!(std::process::id(), 2, "PID 1 is the sandbox's init");
    assert_eq!(hostname(), "sandbox");
    assert_eq!(mount_type("/tmp"), "tmpfs");
    // The private /tmp starts empty, but for the way to the working directory when that lies
    // below /tmp (a checkout under /tmp is bound back so that the test can reach its files).
    let cwd = std::env::current_dir().unwrap();
    let way_to_cwd = cwd.strip_prefix("/tmp").ok().and_then(|rest| rest.components().next()).map(|c| c.as_os_str().to_owned());
    let unexpected: Vec<_> =
        std::fs::read_dir("/tmp").unwrap().map(|e| e.unwrap().file_name()).filter(|name| Some(name) != way_to_cwd.as_ref()).collect();
    assert!(unexpected.is_empty(), "the private /tmp starts empty, found {unexpected:?}");
    assert!(cwd.join("Cargo.toml").exists(), "the package directory stays reachable: {}", cwd.display());
    let visible = std::fs::read_dir("/proc").unwrap().filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().parse::<u32>().is_ok()).count();
    assert!(visible <= 3, "only the sandbox's processes are visible, not {visible}");
}

/// As outside, the body has a session and a process group that exist: the session is led by the
/// sandbox's init, the group is the body's own.
#[isolated]
fn the_body_has_a_session_and_a_process_group_of_the_sandbox() {
    // SAFETY: plain system calls without pointers.
    let (session, group) = unsafe { (libc::getsid(0), libc::getpgrp()) };
    assert_eq!(session, 1, "the session leader is the sandbox's init");
    assert_eq!(group, std::process::id() as i32, "the body leads its own process group");
}

#[isolated(hostname = "unit-box", tmpfs = "/tmp/scratch:1M", net = "none")]
fn hostname_tmpfs_and_net_keys() {
    assert_eq!(hostname(), "unit-box");
    assert_eq!(mount_type("/tmp/scratch"), "tmpfs");
    let err = std::fs::write("/tmp/scratch/big", vec![0u8; 2 << 20]).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOSPC), "the 1M tmpfs is full");
    let interfaces = std::fs::read_to_string("/proc/net/dev").unwrap();
    let names: Vec<&str> = interfaces.lines().skip(2).map(|l| l.split(':').next().unwrap().trim()).collect();
    assert_eq!(names, ["lo"]);
}

/// `fs = "ro"`: a write to the host's file systems fails with EROFS; a `writable` path and the
/// sandbox's `/tmp` take it. (`/etc` for the refused write: a checkout, and so this binary's own
/// directories, may lie below the writable `/var/tmp`.)
#[isolated(fs = "ro", writable = "/var/tmp")]
fn read_only_file_systems_and_writable_paths() {
    let refused = PathBuf::from("/etc").join(common::unique("written-by-a-read-only-test"));
    let written = std::fs::write(&refused, "x");
    let _ = std::fs::remove_file(&refused);
    assert_eq!(written.unwrap_err().raw_os_error(), Some(libc::EROFS));
    let allowed = PathBuf::from("/var/tmp").join(format!("sandbox-writable-{}", common::unique("ro")));
    std::fs::write(&allowed, "x").unwrap();
    std::fs::remove_file(&allowed).unwrap();
    std::fs::write("/tmp/scratch", "x").unwrap();
}

/// `fs = "overlay"`: the root is an overlay, and the package directory and (as root) `/etc`
/// take writes, which the host never sees (`overlay_tests_list_their_changes` checks that side).
#[isolated(fs = "overlay")]
fn overlay_file_systems_take_writes() {
    assert_eq!(mount_type("/"), "overlay");
    let here = std::env::current_dir().unwrap().join(common::unique("written-through-an-overlay"));
    std::fs::write(&here, "x").unwrap();
    assert_eq!(std::fs::read_to_string(&here).unwrap(), "x");
    if nix::unistd::geteuid().is_root() {
        std::fs::write("/etc/written-through-an-overlay", "x").unwrap();
    }
}

#[isolated(pids = 20, expect = "pids_limit", timeout = "20s")]
fn fork_bomb_is_contained() {
    // Fork until the kernel refuses (EAGAIN from pids.max); the children sleep.
    let mut children = Vec::new();
    loop {
        match Command::new("sleep").arg("30").spawn() {
            Ok(child) => children.push(child),
            Err(err) => {
                assert_eq!(err.raw_os_error(), Some(libc::EAGAIN), "{err}");
                assert!(children.len() < 20);
                return;
            }
        }
    }
}

#[isolated(mem = "64M", expect = "oom")]
fn leak_is_oom_killed() {
    leak_forever();
}

#[isolated(timeout = "300ms", expect = "timeout")]
fn hang_is_timed_out() {
    loop {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

#[isolated(pids = 10, require = "cgroup")]
fn requires_a_cgroup() {
    assert_eq!(std::process::id(), 2);
}

#[isolated(mem = "64M", cpu = 1)]
fn result_returning_test() -> Result<(), std::io::Error> {
    std::fs::write("/tmp/written", "inside")?;
    assert_eq!(std::fs::read_to_string("/tmp/written")?, "inside");
    Ok(())
}

/// Doc comments stay on the test.
#[isolated]
#[should_panic(expected = "expected boom")]
fn should_panic_composes() {
    panic!("expected boom");
}

/// The documented way to run async code: a plain `#[isolated]` fn that blocks on the future
/// (any executor's `block_on`; a minimal one here to stay dependency-free).
#[isolated]
fn async_code_runs_via_block_on() {
    let value = block_on(async {
        let a = async { 20 }.await;
        a + 22
    });
    assert_eq!(value, 42);
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut context = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        match future.as_mut().poll(&mut context) {
            Poll::Ready(value) => return value,
            Poll::Pending => std::thread::park(),
        }
    }
}

// ---------------------------------------------------------------- checks of the verdicts

/// The stock-harness fixtures' test binary (`tests/isolated_fixtures.rs`).
fn fixtures_binary() -> &'static PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| common::test_binary("isolated_fixtures"))
}

fn run_fixtures(args: &[&str]) -> Output {
    run_fixtures_with(args, &[])
}

fn run_fixtures_with(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(fixtures_binary()).args(args).env("RUST_BACKTRACE", "0").envs(env.iter().copied()).output().unwrap()
}

#[test]
fn expected_failures_fail_with_their_reason() {
    let cases = [
        ("fixture_panics", "isolated test failed: panicked: fixture boom"),
        ("fixture_oom_without_expect", "isolated test failed: killed by the OOM killer: memory limit 64.0 MiB, peak "),
        ("fixture_times_out", "isolated test failed: timed out after 300 ms (killed)"),
        // What was still running, under the summary: the body's own process, PID 2.
        ("fixture_times_out", "still running when the timeout fired:\n  pid 2 "),
        ("fixture_expected_event_missing", "expected the pids limit (20) to be hit, but no fork was refused: passed"),
        ("fixture_returns_err", "isolated test failed: returned Err: \"bad input\""),
    ];
    // Through a fork server, and as nextest runs a test (a process for it alone, `--exact NAME
    // --nocapture`, which runs it without a server).
    let nextest = [("NEXTEST_EXECUTION_MODE", "process-per-test")];
    for ((name, message), env) in cases.iter().flat_map(|case| [(case, &[][..]), (case, &nextest[..])]) {
        let args: &[&str] = if env.is_empty() { &["--exact", name, "--test-threads=1"] } else { &["--exact", name, "--nocapture"] };
        let output = run_fixtures_with(args, env);
        // Without capture, libtest prints the panic (the verdict) to stderr.
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(101), "{name} {env:?}: {stdout}");
        assert!(stdout.contains(message), "{name} should fail with {message:?}:\n{stdout}");
        assert!(stdout.contains("test result: FAILED. 0 passed; 1 failed"), "{stdout}");
        assert!(stdout.contains("\nsandbox: "), "the run's summary line is part of the message: {stdout}");
    }
    // The child's output is captured and shown for the failed test; as nextest runs it, it is
    // passed through.
    let output = run_fixtures(&["--exact", "fixture_panics"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("---- fixture_panics stdout ----\noutput of the failing test\n"), "{stdout}");
    assert!(!stdout.contains("running 1 test\n\nrunning"), "the child's libtest banner leaked: {stdout}");
    let output = run_fixtures_with(&["--exact", "fixture_panics", "--nocapture"], &nextest);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("output of the failing test\n") && !stdout.contains("running 1 test\n\nrunning"), "{stdout}");
}

/// `#[ignore]` on an isolated test is honoured: the test is reported ignored, and its body (which
/// panics) never runs.
#[test]
fn ignore_composes() {
    let output = run_fixtures(&["--exact", "ignore_composes"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("test ignore_composes ... ignored, proves that #[ignore] composes: never run"), "{stdout}");
    assert!(stdout.contains("test result: ok. 0 passed; 0 failed; 1 ignored;"), "{stdout}");
}

#[test]
fn without_root_tests_run_rootless_or_fail_cleanly_when_a_cgroup_is_required() {
    let exe = std::env::current_exe().unwrap();
    let as_nobody_test = |test: &str, require: Option<&str>| {
        let mut command = Command::new("setpriv");
        command
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all"])
            .arg(&exe)
            .args(["--exact", test])
            .env("RUST_BACKTRACE", "0")
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if let Some(value) = require {
            command.env("SANDBOX_REQUIRE", value);
        }
        command.output().unwrap()
    };
    let as_nobody = |require: Option<&str>| as_nobody_test("runs_as_pid_2_with_fresh_proc_hostname_and_tmp", require);
    // A user namespace gives the namespaces; the test passes inside them.
    let output = as_nobody(None);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    // Never run unisolated or with silently weaker limits when a cgroup is required.
    let output = as_nobody(Some("cgroup"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(101), "{stdout}");
    assert!(stdout.contains("cannot sandbox this test: a cgroup is required"), "{stdout}");
    assert!(stdout.contains("`sandbox check`"), "{stdout}");
    // The attribute's `require = "cgroup"` does the same.
    let output = as_nobody_test("requires_a_cgroup", None);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(101), "{stdout}");
    assert!(stdout.contains("cannot sandbox this test: a cgroup is required"), "{stdout}");
}

/// The `harness = false` example (`tests/isolated_runner.rs`) and its fixtures.
fn runner_binary() -> &'static PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| common::test_binary("isolated_runner"))
}

fn runner_fixtures_binary() -> &'static PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| common::test_binary("isolated_runner_fixtures"))
}

/// The runner pins each fork server (and its thread) to one CPU; the test bodies must get all
/// of the runner's CPUs back, with one thread and with as many as there are CPUs.
#[test]
fn runner_pins_its_servers_but_not_the_test_bodies() {
    let runner = runner_fixtures_binary();
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let cpus = status.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:")).unwrap().trim().to_string();
    let threads = std::thread::available_parallelism().unwrap().get();
    for threads in [1, threads] {
        let output = Command::new(runner)
            .args(["--nocapture", "--exact", "probe_body_cpus", &format!("--test-threads={threads}")])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert_eq!(output.status.code(), Some(0), "{stdout}");
        assert!(stdout.contains(&format!("body cpus: {cpus}\n")), "runner's CPUs {cpus}, --test-threads={threads}: {stdout}");
    }
}

#[test]
fn runner_prints_resources_and_writes_a_report() {
    let runner = runner_binary();
    let report = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("report-{}.json", std::process::id()));
    let output = Command::new(runner).arg("--report").arg(&report).arg("--test-threads=2").output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    let bomb = stdout.lines().find(|l| l.starts_with("test fork_bomb_is_contained ... ok (")).unwrap_or_else(|| panic!("{stdout}"));
    assert!(bomb.contains("pids-limit hits ") && bomb.contains("peak mem ") && (bomb.ends_with(" ms)") || bomb.ends_with(" s)")), "{bomb}");
    assert!(stdout.contains("test leak_is_oom_killed ... ok (oom kills 1"), "{stdout}");
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    std::fs::remove_file(&report).unwrap();
    let tests = json["tests"].as_array().unwrap();
    let bomb = tests.iter().find(|t| t["name"] == "fork_bomb_is_contained").unwrap();
    assert_eq!(bomb["verdict"], "passed");
    assert!(bomb["pids_limit_hits"].as_u64().unwrap() > 0);
    for key in ["oom_kills", "timed_out", "peak_memory_bytes", "peak_pids", "cpu_usec", "wall_ms", "cgroup_version"] {
        assert!(bomb.get(key).is_some(), "{key} missing in {bomb}");
    }
    assert_eq!(json["failed"], 0);
    // A test its timeout ended lists what was still running: its body, PID 2.
    let hang = tests.iter().find(|t| t["name"] == "hang_is_timed_out").unwrap();
    let processes = hang["processes"].as_array().unwrap();
    assert!(processes.iter().any(|p| p["pid"] == 2 && p["command"].as_str().is_some_and(|c| !c.is_empty())), "{hang}");

    // Expected failures, and the flags nextest drives it with.
    let fixtures = runner_fixtures_binary();
    let output = Command::new(fixtures).arg("fixture_").env("RUST_BACKTRACE", "0").output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(101), "{stdout}");
    assert!(stdout.contains("test fixture_panics ... FAILED ("), "{stdout}");
    assert!(stdout.contains("isolated test failed: panicked: runner fixture boom"), "{stdout}");
    assert!(stdout.contains("isolated test failed: killed by the OOM killer: memory limit 64.0 MiB"), "{stdout}");
    assert!(stdout.contains("test result: FAILED. 0 passed; 2 failed"), "{stdout}");
    // `#[ignore]` is honoured: reported, never run (the body panics), and run by `--ignored`.
    let output = Command::new(fixtures).args(["--exact", "ignored_by_attribute"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("test ignored_by_attribute ... ignored") && stdout.contains("0 failed; 1 ignored;"), "{stdout}");
    let output = Command::new(fixtures).args(["--ignored", "--exact", "ignored_by_attribute"]).env("RUST_BACKTRACE", "0").output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(101), "{stdout}");
    assert!(stdout.contains("an ignored test ran under the runner"), "{stdout}");
    let listed = Command::new(runner).args(["--list", "--format", "terse"]).output().unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.lines().any(|l| l == "fork_bomb_is_contained: test"), "{listed}");
    let exact = Command::new(runner).args(["--exact", "hostname_is_set", "--format", "terse"]).output().unwrap();
    let exact_out = String::from_utf8_lossy(&exact.stdout);
    assert!(exact.status.success() && exact_out.contains("1 passed;"), "{exact_out}");
}

/// An overlay test's changes on its runner line, in the JSON report and in the JUnit
/// properties, copied out under `SANDBOX_KEEP_CHANGES`; none of them on the host; `host_writes = "fail"` fails the test naming the path;
/// and `SANDBOX_FS=overlay` puts a whole suite's tests under an overlay.
#[test]
fn overlay_tests_list_their_changes() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let (junit, report) = (dir.path().join("junit.xml"), dir.path().join("report.json"));
    let cwd = std::env::current_dir().unwrap();
    let written = cwd.join("written-by-an-overlay-test");
    let kept = dir.path().join("kept");
    let output = Command::new(runner_fixtures_binary())
        .args(["--exact", "overlay_writes_are_listed", "--report"])
        .arg(&report)
        .arg("--junit")
        .arg(&junit)
        .env("SANDBOX_KEEP_CHANGES", &kept)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(!written.exists(), "the write reached the host");
    // SANDBOX_KEEP_CHANGES: a folder per test, the paths below it as the test saw them.
    let copy = kept.join("overlay_writes_are_listed").join(written.strip_prefix("/").unwrap());
    assert_eq!(std::fs::read_to_string(&copy).unwrap(), "hi");
    let line = format!("changed 1 host path(s): created file {} (2 B))", written.display());
    assert!(stdout.lines().any(|l| l.starts_with("test overlay_writes_are_listed ... ok (") && l.ends_with(&line)), "{stdout}");
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let changes = &json["tests"][0]["fs_changes"];
    assert_eq!(changes, &serde_json::json!([{"path": written, "change": "created", "file": "file", "size": 2}]), "{json}");
    let xml = quick_junit::Report::deserialize_from_str(&std::fs::read_to_string(&junit).unwrap()).unwrap();
    let properties = &xml.test_suites[0].test_cases[0].properties;
    let property = |name: &str| -> Vec<String> {
        properties.iter().filter(|p| p.name.as_str() == name).map(|p| p.value.as_str().to_string()).collect()
    };
    assert_eq!(property("fs_changes"), ["1"]);
    assert_eq!(property("fs_change"), [format!("created file {} (2 B)", written.display())]);

    let polluted = cwd.join("polluted-by-a-test");
    let output = Command::new(runner_fixtures_binary()).args(["--exact", "pollutes_under_host_writes_fail"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(101), "{stdout}");
    assert!(stdout.contains("the test changed 1 host path(s) under host_writes = \"fail\" (discarded):"), "{stdout}");
    assert!(stdout.contains(&format!("  created file {} (1 B)", polluted.display())), "{stdout}");
    assert!(!polluted.exists(), "the write reached the host");

    // A suite's default: every test of the run under an overlay.
    let output = Command::new(runner_fixtures_binary()).args(["--exact", "probe_body_cpus"]).env("SANDBOX_FS", "overlay").output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.lines().any(|l| l.starts_with("test probe_body_cpus ... ok (") && l.ends_with(", changed no host files)")), "{stdout}");
}

/// `--junit FILE` (or `SANDBOX_JUNIT`): schema-valid JUnit XML (tests/junit.xsd, the Jenkins
/// format the CI test reporters read) with one testcase per test, the same verdicts and figures
/// as the JSON report of the same run, a failure's output, and an ignored test as skipped.
#[test]
fn runner_writes_junit_that_ci_test_reporters_read() {
    use quick_junit::{NonSuccessKind, TestCaseStatus};
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let (junit, report) = (dir.path().join("junit.xml"), dir.path().join("report.json"));
    let output = Command::new(runner_fixtures_binary())
        .args(["fixture_", "--report"])
        .arg(&report)
        .env("SANDBOX_JUNIT", &junit)
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(101), "{}", String::from_utf8_lossy(&output.stdout));
    let schema = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/junit.xsd");
    let valid = Command::new("xmllint").args(["--noout", "--schema", schema]).arg(&junit).output();
    let valid = valid.expect("this test needs xmllint (Debian: libxml2-utils; tests/install-deps.sh installs it)");
    assert!(valid.status.success(), "{}", String::from_utf8_lossy(&valid.stderr));

    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let xml = quick_junit::Report::deserialize_from_str(&std::fs::read_to_string(&junit).unwrap()).unwrap();
    let suite = &xml.test_suites[0];
    assert_eq!(suite.name.as_str(), "isolated_runner_fixtures");
    let tests = json["tests"].as_array().unwrap();
    assert_eq!(suite.test_cases.len(), tests.len());
    assert_eq!(tests.len(), 2, "{json}");
    for case in &suite.test_cases {
        let entry = tests.iter().find(|t| t["name"] == case.name.as_str()).unwrap();
        let TestCaseStatus::NonSuccess { kind: NonSuccessKind::Failure, message, description, .. } = &case.status else {
            panic!("{} is not a failure: {:?}", case.name.as_str(), case.status);
        };
        let text = entry["message"].as_str().unwrap();
        assert_eq!(description.as_ref().unwrap().as_str(), text);
        assert_eq!(message.as_ref().unwrap().as_str(), text.lines().next().unwrap());
        let property = |name: &str| case.properties.iter().find(|p| p.name.as_str() == name).unwrap().value.as_str().to_string();
        for key in ["peak_memory_bytes", "peak_pids", "oom_kills", "pids_limit_hits"] {
            let expected = entry[key].as_u64().map(|v| v.to_string()).unwrap_or_default();
            assert_eq!(property(key), expected, "{key} of {}", case.name.as_str());
        }
        let millis = case.time.unwrap().as_millis() as i64;
        assert!((millis - entry["wall_ms"].as_i64().unwrap()).abs() <= 1, "{millis} ms against {entry}");
    }
    let oom = suite.test_cases.iter().find(|c| c.name.as_str() == "fixture_oom_without_expect").unwrap();
    assert_eq!(oom.properties.iter().find(|p| p.name.as_str() == "oom_kills").unwrap().value.as_str(), "1");
    let panicked = suite.test_cases.iter().find(|c| c.name.as_str() == "fixture_panics").unwrap();
    assert!(panicked.system_out.as_ref().is_some_and(|out| out.as_str().contains("runner fixture boom")), "{panicked:?}");

    // An ignored test is a skipped testcase.
    let output = Command::new(runner_fixtures_binary()).args(["--exact", "ignored_by_attribute", "--junit"]).arg(&junit).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stdout));
    let xml = quick_junit::Report::deserialize_from_str(&std::fs::read_to_string(&junit).unwrap()).unwrap();
    let cases = &xml.test_suites[0].test_cases;
    assert!(cases.len() == 1 && matches!(cases[0].status, TestCaseStatus::Skipped { .. }), "{cases:?}");
}

/// A sandbox never lifts a limit its caller is under: an `#[isolated(pids = 1000)]` test run
/// inside a job bounded by `sandbox run --pids 40` gets its cgroup below the job's (on v1 and
/// v2, as root in the job's cgroup namespace), so the job's limit refuses its forks.
#[test]
fn isolated_tests_inside_a_bounded_job_stay_inside_its_limits() {
    // The fixture stays reachable when the checkout lies below /tmp (the job's private /tmp
    // would hide it).
    let deps = fixtures_binary().parent().unwrap().display().to_string();
    let output = Command::new(env!("CARGO_BIN_EXE_sandbox"))
        .args(["run", "--pids", "40", "--bind", &format!("{deps}:{deps}:ro"), "--json", "-", "--"])
        .arg(fixtures_binary())
        .args(["--exact", "fixture_forks_up_to_a_thousand", "--nocapture", "--test-threads=1"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    let spawned: usize = stdout
        .lines()
        .find_map(|l| l.split("spawned ").nth(1)?.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("the fixture printed no count: {stdout}\n{stderr}"));
    // EAGAIN is pids.max refusing the fork.
    assert!(stdout.contains(&format!("then refused with errno Some({})", libc::EAGAIN)), "{stdout}");
    assert!(spawned < 40, "the bounded job's 40 pids were exceeded: {spawned} children");
    // The test's pids cgroup is a run cgroup inside the job's run cgroup.
    let pids_path = stdout
        .lines()
        .skip_while(|l| *l != "cgroups:")
        .find_map(|l| {
            let mut fields = l.splitn(3, ':');
            let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
            (controllers.split(',').any(|c| c == "pids") || controllers.is_empty()).then(|| path.to_string())
        })
        .unwrap_or_else(|| panic!("no pids cgroup printed: {stdout}"));
    // As root the test sees its own cgroup namespace only; otherwise its cgroup's path shows
    // the job's run cgroup above its own.
    match nix::unistd::geteuid().is_root() {
        true => assert_eq!(pids_path, "/", "a contained test sees a cgroup beyond its own"),
        false => {
            let runs = pids_path.split('/').filter(|part| common::is_run_name(part)).count();
            assert!(runs >= 2, "the test's cgroup {pids_path} is not below the job's run cgroup");
        }
    }
}

/// PIDs of processes whose command line contains `needle`.
fn processes_with(needle: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).replace('\0', " ").contains(needle) {
            pids.push(pid);
        }
    }
    pids
}

/// Both runners run tests in fork servers (copies of the test binary) whose sandboxes outlive
/// the thread that asked for them: when the test process dies, the server must end the running
/// test, remove its cgroups (also those it kept for reuse) and end itself.
fn a_killed_test_process_leaves_nothing_behind(binary: &std::path::Path, test: &str) {
    let mut child = Command::new(binary)
        .args(["--exact", test, "--test-threads=1"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Running: the test process, its fork server, and in the sandbox's PID namespace the init and
    // the test's copy, all copies of this binary.
    let own_pid_namespace = std::fs::read_link("/proc/self/ns/pid").unwrap();
    let in_sandbox = |pid: &u32| std::fs::read_link(format!("/proc/{pid}/ns/pid")).is_ok_and(|ns| ns != own_pid_namespace);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let body = loop {
        let copies = processes_with(test);
        let inside: Vec<u32> = copies.iter().copied().filter(in_sandbox).collect();
        if copies.len() >= 4 && inside.len() >= 2 {
            break inside[0];
        }
        assert!(std::time::Instant::now() < deadline, "the hanging fixture never started: {copies:?}");
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    // Where the machine gives runs a cgroup (root, a delegated one), those directories must go.
    let cgroups = common::run_cgroup_dirs(&std::fs::read_to_string(format!("/proc/{body}/cgroup")).unwrap());
    assert!(cgroups.iter().all(|dir| dir.is_dir()), "{cgroups:?}");
    child.kill().unwrap();
    child.wait().unwrap();
    common::wait_until("the test process's server and sandbox are gone", std::time::Duration::from_secs(10), || {
        processes_with(test).is_empty() && !cgroups.iter().any(|dir| dir.exists())
    });
}

#[test]
fn a_killed_test_process_leaves_no_server_no_test_and_no_cgroup_behind() {
    a_killed_test_process_leaves_nothing_behind(fixtures_binary(), "fixture_hangs_without_timeout");
    a_killed_test_process_leaves_nothing_behind(runner_fixtures_binary(), "runner_hangs_until_killed");
}

//! A run never reports a limit that did not hold. As root a command may move itself out of its
//! cgroup or raise its own limits; the run then says so (`escaped`, `limits_changed`, "NOT
//! CONTAINED"), fails, and kills what it left, wherever it went. Runs as root on the host
//! (cgroup v1) and, through `tests/run-all.sh`, in the cgroup-v2 VM's leaf, root and ns modes.

use std::path::Path;
use std::process::Command;

mod common;
use common::*;

/// A cgroup outside any run to escape into, made beside the top of the pids hierarchy (v1) or
/// the unified one (v2) as this process sees it (in a cgroup namespace its root, which may hold
/// no processes itself: a new leaf may); removed on drop. Its path as `/proc/PID/cgroup` shows it.
struct EscapeCgroup {
    dir: std::path::PathBuf,
    shown: String,
}

impl EscapeCgroup {
    fn new() -> EscapeCgroup {
        let top = if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() { "/sys/fs/cgroup" } else { "/sys/fs/cgroup/pids" };
        let name = unique("escape");
        let dir = Path::new(top).join(&name);
        std::fs::create_dir(&dir).unwrap();
        EscapeCgroup { dir, shown: format!("/{name}") }
    }
}

impl Drop for EscapeCgroup {
    fn drop(&mut self) {
        // Its processes were killed with the run; the kernel lets go of them quickly, not at once.
        let dir = self.dir.clone();
        wait_until("the escape cgroup to empty", std::time::Duration::from_secs(60), || std::fs::remove_dir(&dir).is_ok());
    }
}

fn must_be_root() {
    assert!(nix::unistd::geteuid().is_root(), "these tests move processes between cgroups: run them as root (CI does)");
}

#[test]
fn processes_that_leave_the_run_cgroup_are_reported_and_killed() {
    must_be_root();
    let marker = format!("1003.{}", std::process::id());
    let escape = EscapeCgroup::new();
    let script = format!("echo $$ > {}/cgroup.procs; for i in 1 2 3 4 5; do sleep {marker} & done; exit 0", escape.dir.display());
    let run = sandbox_in(Path::new("/"), &["--pids", "20", "--", "sh", "-c", &script]);
    assert_eq!(run.code, Some(1), "the command exited 0, but its limits did not hold: {run:#?}");
    let escaped = run.json["escaped"].as_array().unwrap_or_else(|| panic!("{run:#?}"));
    assert_eq!(escaped.len(), 5, "{run:#?}");
    for process in escaped {
        assert_eq!(process["cgroup"], escape.shown.as_str(), "{process}");
        // A sleep, or the shell's copy that is about to become one.
        assert!(process["command"].as_str().unwrap().contains(&format!("sleep {marker}")), "{process}");
    }
    assert!(run.stderr.contains("NOT CONTAINED: 5 process(es) left the run's cgroup"), "{run:#?}");
    assert!(run.stderr.contains("outside the run's cgroup: pid 3 "), "{run:#?}");
    // Killed with the run, outside its cgroup as they were.
    assert_eq!(sleeps_with(&marker), Vec::<u32>::new(), "escaped processes survived the run");
}

#[test]
fn a_limit_raised_inside_the_run_is_reported() {
    must_be_root();
    // The run's own pids directory, as the command finds it.
    let script = "p=$(sed -n 's/^[0-9]*:[^:]*pids[^:]*:\\(.*\\)/\\1/p' /proc/self/cgroup); \
                  if [ -n \"$p\" ]; then d=/sys/fs/cgroup/pids$p; else d=/sys/fs/cgroup$(sed -n 's/^0:://p' /proc/self/cgroup); fi; \
                  echo 1000 > $d/pids.max";
    let run = sandbox_in(Path::new("/"), &["--pids", "20", "--", "sh", "-c", script]);
    assert_eq!(run.code, Some(1), "{run:#?}");
    assert_eq!(run.json["limits_changed"], serde_json::json!(["pids.max is 1000, not 20"]), "{run:#?}");
    assert!(run.stderr.contains("NOT CONTAINED: limits changed inside the run: pids.max is 1000, not 20"), "{run:#?}");
    // A run that leaves its limits alone is contained.
    let run = sandbox_in(Path::new("/"), &["--pids", "20", "--mem", "64M", "--", "true"]);
    assert_eq!((run.code, &run.json["escaped"], &run.json["limits_changed"]), (Some(0), &serde_json::json!([]), &serde_json::json!([])), "{run:#?}");
}

/// Under sandbox's runner: an escaped test fails naming what left; a test that raised its limit
/// fails too, and the next test in the same fork server (which may reuse v1 cgroups) has its
/// own limit, not the raised one.
#[test]
fn isolated_tests_that_leave_their_limits_fail() {
    must_be_root();
    let escape = EscapeCgroup::new();
    let output = Command::new(test_binary("isolated_runner_fixtures"))
        .args(["containment_", "--test-threads=1"])
        .env("RUST_BACKTRACE", "0")
        .env("SANDBOX_TEST_ESCAPE_CGROUP", &escape.dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(101), "{stdout}");
    assert!(stdout.contains("test containment_1_raises_its_pids_limit ... FAILED"), "{stdout}");
    assert!(stdout.contains("changed inside the test: pids.max is 1000, not 20"), "{stdout}");
    assert!(stdout.contains("test containment_2_has_its_own_pids_limit ... ok"), "{stdout}");
    assert!(stdout.contains("test containment_3_escapes_then_forks ... FAILED"), "{stdout}");
    assert!(stdout.matches("outside the test's cgroup: pid ").count() >= 30, "{stdout}");
    assert!(stdout.contains("1 passed; 2 failed"), "{stdout}");
}

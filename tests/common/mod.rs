//! Helpers shared by the integration tests that run the `sandbox` binary (`cli.rs`,
//! `faults.rs`): scratch names and space, the host's mount table, the run cgroups a command sees,
//! a busybox root file system, and waiting for processes.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

pub fn unique(tag: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    format!("sandbox-test-{tag}-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// Host-side scratch space that sandbox runs see too: cargo's `CARGO_TARGET_TMPDIR`, unless
/// the checkout is below `/tmp`, which every run hides behind its own tmpfs; then
/// `/var/tmp/sandbox-tests`, world-writable and sticky as `/tmp` is (the tests run as root and,
/// in the VM, as a user).
pub fn scratch() -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let target = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        if !target.starts_with("/tmp") {
            return target;
        }
        let dir = PathBuf::from("/var/tmp/sandbox-tests");
        if fs::create_dir(&dir).is_ok() {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o1777)).unwrap();
        }
        dir
    })
    .clone()
}

/// `path`, where a sandbox run sees it: a file below `/tmp` (a checkout there) is linked (or,
/// across file systems, copied) into [`scratch`], with its name, in a directory its path makes
/// its own, and replaced when it is another file (a rebuild).
fn seen_by_runs(path: &str) -> String {
    use std::os::unix::fs::MetadataExt;
    let source = Path::new(path);
    let (Some(parent), Some(name), true) = (source.parent(), source.file_name(), source.starts_with("/tmp")) else {
        return path.to_string();
    };
    let dir = scratch().join(format!("bin{}", parent.to_string_lossy().replace('/', "_")));
    fs::create_dir_all(&dir).unwrap();
    let seen = dir.join(name);
    let inode = |path: &Path| fs::metadata(path).map(|metadata| (metadata.dev(), metadata.ino())).ok();
    if inode(&seen) != inode(Path::new(path)) {
        // Made under a name of this process's, then renamed over: another test process may be at it.
        let partial = dir.join(unique("partial"));
        fs::hard_link(path, &partial).or_else(|_| fs::copy(path, &partial).map(drop)).unwrap();
        fs::rename(&partial, &seen).unwrap();
    }
    seen.to_string_lossy().into_owned()
}

pub fn mountinfo() -> String {
    fs::read_to_string("/proc/self/mountinfo").unwrap()
}

/// The run's cgroup directories, from a `/proc/PID/cgroup` text as the host reads it (see
/// [`init_cgroup_text`]; inside a contained run every path is `/`): each path cut at the run's
/// own directory (its processes live in a `delegated` one below).
pub fn run_cgroup_dirs(proc_pid_cgroup: &str) -> Vec<PathBuf> {
    let unified = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    proc_pid_cgroup
        .lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            let components: Vec<&str> = path.split('/').collect();
            let run = components.iter().position(|c| is_run_name(c))?;
            let relative = components[..=run].join("/");
            let relative = relative.trim_start_matches('/');
            match (controllers, unified) {
                ("", true) => Some(Path::new("/sys/fs/cgroup").join(relative)),
                ("", false) => None,
                (c, _) if c.starts_with("name=") => None,
                (c, _) => Some(Path::new("/sys/fs/cgroup").join(c).join(relative)),
            }
        })
        .collect()
}

/// The run's cgroup directories as its `--json` outcome names them.
pub fn json_cgroup_dirs(run: &Run) -> Vec<PathBuf> {
    let dirs = run.json["cgroup_dirs"].as_array().unwrap_or_else(|| panic!("no cgroup_dirs: {run:#?}"));
    dirs.iter().map(|dir| PathBuf::from(dir.as_str().unwrap())).collect()
}

/// `/proc/PID/cgroup` of the sandbox's init, a child of the launcher `launcher` (its only one),
/// as the host reads it: waits until the launcher has it.
pub fn init_cgroup_text(launcher: u32) -> String {
    let mut text = String::new();
    wait_until("the launcher's init is in its run cgroup", Duration::from_secs(60), || {
        let children = fs::read_to_string(format!("/proc/{launcher}/task/{launcher}/children")).unwrap_or_default();
        text = children
            .split_whitespace()
            .next()
            .and_then(|init| fs::read_to_string(format!("/proc/{init}/cgroup")).ok())
            .unwrap_or_default();
        !run_cgroup_dirs(&text).is_empty()
    });
    text
}

/// Run cgroups are named `<pid namespace>-<pid>-<start time>-<sequence>`.
pub fn is_run_name(name: &str) -> bool {
    let parts: Vec<&str> = name.split('-').collect();
    parts.len() == 4 && parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// A root file system made of Debian's busybox-static (installed by tests/run-all.sh).
pub fn busybox_rootfs() -> PathBuf {
    let busybox = Path::new("/bin/busybox");
    assert!(busybox.exists(), "these tests need busybox: apt-get install busybox-static (tests/run-all.sh does)");
    let root = scratch().join(unique("rootfs"));
    for dir in ["bin", "proc", "tmp", "dev", "etc"] {
        fs::create_dir_all(root.join(dir)).unwrap();
    }
    fs::copy(busybox, root.join("bin/busybox")).unwrap();
    for applet in ["sh", "ls", "cat", "echo", "hostname", "ps", "awk", "wc", "grep", "stat"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    fs::write(root.join("etc/marker"), "rootfs\n").unwrap();
    root
}

/// Polls `done` until it holds; fails the test naming `what` after `limit`.
pub fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Host PIDs of `sleep MARKER` processes.
pub fn sleeps_with(marker: &str) -> Vec<u32> {
    let wanted = format!("sleep\0{marker}\0");
    fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == wanted.as_bytes()))
        .collect()
}

/// The CLI under test: this package's build, or `SANDBOX_CLI` (CI runs the tests again
/// against the CLI as the README installs it).
pub fn sandbox_bin() -> &'static str {
    static BIN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BIN.get_or_init(|| seen_by_runs(&std::env::var("SANDBOX_CLI").unwrap_or_else(|_| env!("CARGO_BIN_EXE_sandbox").to_string())))
}

/// `sandbox run --json FILE ARGS...` in `cwd`, asserting the host's mount table did not change.
pub fn sandbox_in(cwd: &Path, args: &[&str]) -> Run {
    let json_path = scratch().join(unique("json"));
    let before = mountinfo();
    let started = Instant::now();
    let output = std::process::Command::new(sandbox_bin())
        .arg("run")
        .arg("--json")
        .arg(&json_path)
        .args(args)
        .current_dir(cwd)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(mountinfo(), before, "the host's mount table changed during `sandbox run {args:?}`");
    let json = fs::read_to_string(&json_path).map(|t| serde_json::from_str(&t).unwrap()).unwrap_or(Value::Null);
    let _ = fs::remove_file(&json_path);
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        json,
        elapsed: started.elapsed(),
    }
}

/// What one launcher run did.
#[derive(Debug)]
pub struct Run {
    /// The launcher's exit status.
    pub code: Option<i32>,
    /// Its stdout, when the helper collected it (empty otherwise).
    pub stdout: String,
    pub stderr: String,
    /// The `--json` outcome; `Null` when the run failed before producing one.
    pub json: Value,
    /// Wall time as the test measured it, from spawn to exit.
    pub elapsed: Duration,
}

/// A number in the run's JSON outcome; fails the test showing the run when it is missing.
pub fn json_u64(run: &Run, key: &str) -> u64 {
    run.json[key].as_u64().unwrap_or_else(|| panic!("{key} in {run:#?}"))
}

/// The executable of this package's test target `target`, for targets that `cargo test` does not
/// build (`test = false` fixtures) or that another test runs. `SANDBOX_TEST_BIN_<TARGET>` (upper
/// case; tests/run-all.sh sets it for the cgroup-v2 VM, which has no cargo build of its own) names
/// it; otherwise it is built now with the cargo, profile and target directory of this test, so it
/// is never stale.
pub fn test_binary(target: &str) -> PathBuf {
    let variable = format!("SANDBOX_TEST_BIN_{}", target.to_uppercase());
    if let Some(path) = std::env::var_os(&variable) {
        return PathBuf::from(path);
    }
    // This test runs from <target dir>/<profile dir>/deps/.
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(Path::parent).unwrap_or_else(|| panic!("{} is not in a deps directory", exe.display()));
    let target_dir = profile_dir.parent().unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| env!("CARGO").to_string());
    let mut command = std::process::Command::new(&cargo);
    command.args(["test", "-q", "-p", "test-sandbox", "--no-run", "--message-format=json", "--test", target]).arg("--target-dir").arg(target_dir);
    match profile_dir.file_name().unwrap().to_str().unwrap() {
        "debug" => {}
        "release" => {
            command.arg("--release");
        }
        other => {
            command.args(["--profile", other]);
        }
    }
    let output = command.current_dir(env!("CARGO_MANIFEST_DIR")).stderr(std::process::Stdio::inherit()).output().unwrap_or_else(|e| {
        panic!("cannot run {cargo} to build the test target {target}: {e} (or set {variable} to its executable)")
    });
    assert!(output.status.success(), "building the test target {target} failed (or set {variable} to its executable)");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == target && m["executable"].is_string())
        .map(|m| PathBuf::from(m["executable"].as_str().unwrap()))
        .unwrap_or_else(|| panic!("cargo built no executable for the test target {target}"))
}

/// Whether this kernel keeps `pids.peak`: a non-root cgroup that has `pids.max` shows it beside.
/// Looked for in the pids hierarchy's first level (v1: `/sys/fs/cgroup/pids/*`, v2:
/// `/sys/fs/cgroup/*`), where this machine's runs directories and services live.
pub fn kernel_has_pids_peak() -> bool {
    static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *HAS.get_or_init(|| {
        ["/sys/fs/cgroup/pids", "/sys/fs/cgroup"]
            .iter()
            .filter_map(|root| fs::read_dir(root).ok())
            .flatten()
            .flatten()
            .map(|entry| entry.path())
            .find(|dir| dir.join("pids.max").exists())
            .is_some_and(|dir| dir.join("pids.peak").exists())
    })
}

/// A run's reported peak pids, required where the kernel keeps `pids.peak`: `None` only on a
/// kernel without it (said on stderr), so that a peak assertion cannot pass by having nothing
/// to check.
pub fn peak_pids(reported: Option<u64>) -> Option<u64> {
    match reported {
        None if kernel_has_pids_peak() => panic!("the kernel keeps pids.peak, but the run reported no peak pids"),
        None => eprintln!("note: this kernel keeps no pids.peak, so the peak is not checked"),
        Some(_) => {}
    }
    reported
}

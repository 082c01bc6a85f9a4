//! Rootless mode: `sandbox run` as an unprivileged user (uid 65534, via setpriv) gets its
//! namespaces from a user namespace and its limits from a delegated cgroup, or, without one, from
//! rlimits, with the weaker enforcement stated. Each test asserts the kernel's view from inside
//! and that the claimed limits really hold. Runs on the host (v1) and in the cgroup-v2 VM.

use std::fs;
use std::os::unix::fs::chown;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

mod common;

const SANDBOX: &str = env!("CARGO_BIN_EXE_sandbox");
const NOBODY: u32 = 65534;

fn unique(tag: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    format!("sandbox-rootless-{tag}-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// `sandbox run --json - ARGS` as uid/gid 65534 without capabilities, optionally through a
/// root shell `prefix` (e.g. one that first moves itself into a delegated cgroup).
fn as_nobody(prefix: Option<&str>, args: &[&str], env: &[(&str, &str)]) -> (Output, Value) {
    let mut argv: Vec<String> = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", SANDBOX, "run", "--json", "-"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    argv.extend(args.iter().map(|s| s.to_string()));
    let mut command = match prefix {
        Some(prefix) => {
            let mut c = Command::new("sh");
            c.arg("-c").arg(format!("{prefix} && exec \"$@\"")).arg("sh").args(&argv);
            c
        }
        None => {
            let mut c = Command::new(&argv[0]);
            c.args(&argv[1..]);
            c
        }
    };
    let before = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let output = command.current_dir("/").envs(env.iter().copied()).output().unwrap();
    assert_eq!(fs::read_to_string("/proc/self/mountinfo").unwrap(), before, "the host's mount table changed");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let json = stdout.lines().last().and_then(|l| serde_json::from_str(l).ok()).unwrap_or(Value::Null);
    (output, json)
}

fn text(output: &Output) -> String {
    format!("stdout:\n{}\nstderr:\n{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

#[test]
fn without_a_cgroup_namespaces_work_and_limits_fall_back_to_rlimits_said_so() {
    let (output, json) = as_nobody(
        None,
        &["--pids", "20", "--mem", "64M", "--", "sh", "-c", "id -u; hostname; echo $$; awk '{print $1, $2}' /proc/self/uid_map"],
        &[],
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.starts_with("0\nsandbox\n2\n0 65534\n"), "root inside, mapped to 65534 outside: {}", text(&output));
    assert_eq!(json["cgroup_version"], Value::Null);
    assert_eq!(json["enforcement"]["pids"], "rlimit");
    assert_eq!(json["enforcement"]["memory"], "rlimit");
    assert!(json["enforcement"]["no_cgroup_reason"].as_str().unwrap().contains("Permission denied"), "{json}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("· no cgroup · limits not exact: pids rlimit, mem rlimit"), "{stderr}");
}

const FORK_LOOP: &str = "
import os, time
n = 0
for i in range(200):
    try:
        if os.fork() == 0:
            time.sleep(30)
            os._exit(0)
        n += 1
    except OSError:
        break
print(n)
";

#[test]
fn without_a_cgroup_a_fork_bomb_is_still_contained() {
    let (output, json) = as_nobody(None, &["--pids", "20", "--timeout", "20s", "--", "python3", "-c", FORK_LOOP], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let forked: u32 = String::from_utf8_lossy(&output.stdout).lines().next().unwrap().trim().parse().unwrap();
    // The init and python count too: at most 20 tasks in all.
    assert!(forked <= 18, "RLIMIT_NPROC let {forked} forks through");
    assert!(forked >= 10, "forks were refused early ({forked}): the limit counts processes outside the sandbox");
    assert_eq!(json["enforcement"]["pids"], "rlimit");
}

#[test]
fn without_a_cgroup_the_memory_limit_fails_allocations() {
    let (output, json) = as_nobody(None, &["--mem", "64M", "--", "python3", "-c", "bytearray(400 << 20)"], &[]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(String::from_utf8_lossy(&output.stderr).contains("MemoryError"), "{}", text(&output));
    assert_eq!(json["oom_kills"], 0, "RLIMIT_AS refuses the allocation; nothing is OOM-killed");
}

/// `--fs ro` in a user namespace: the user's own directory refuses writes with EROFS, and a
/// `--writable` path is written on the host.
#[test]
fn read_only_file_systems_work_without_root() {
    let dir = Path::new("/var/tmp").join(unique("ro"));
    fs::create_dir_all(&dir).unwrap();
    std::os::unix::fs::chown(&dir, Some(NOBODY), Some(NOBODY)).unwrap();
    let write = format!("echo x > {}/new", dir.display());
    let (output, _) = as_nobody(None, &["--fs", "ro", "--", "sh", "-c", &write], &[]);
    assert_ne!(output.status.code(), Some(0), "{}", text(&output));
    assert!(String::from_utf8_lossy(&output.stderr).contains("Read-only file system"), "{}", text(&output));
    assert!(!dir.join("new").exists());
    let writable = dir.display().to_string();
    let (output, _) = as_nobody(None, &["--fs", "ro", "--writable", &writable, "--", "sh", "-c", &write], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert_eq!(fs::read_to_string(dir.join("new")).unwrap(), "x\n");
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn requiring_a_cgroup_fails_cleanly_when_there_is_none() {
    for (args, env) in [(vec!["--require", "cgroup"], vec![]), (vec![], vec![("SANDBOX_REQUIRE", "cgroup")])] {
        let mut all = args.clone();
        all.extend(["--pids", "20", "--", "true"]);
        let (output, json) = as_nobody(None, &all, &env);
        assert_eq!(output.status.code(), Some(125), "{}", text(&output));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("a cgroup is required (--require cgroup or SANDBOX_REQUIRE=cgroup) but none can be used"), "{stderr}");
        assert!(stderr.contains("--cgroup-parent"), "the fix is named: {stderr}");
        assert_eq!(json, Value::Null);
    }
}

/// A cgroup delegated to uid 65534, as an administrator (or systemd's Delegate=yes) would make
/// it; removed on drop.
struct Delegated {
    /// The `--cgroup-parent` value.
    parent: String,
    dirs: Vec<PathBuf>,
    /// v2: a root shell command that moves the launcher into the delegated subtree (the kernel
    /// only lets a user move processes between cgroups whose common ancestor it may write).
    enter: Option<String>,
}

fn chown_tree(dir: &Path) {
    chown(dir, Some(NOBODY), Some(NOBODY)).unwrap();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_file() && (name.starts_with("cgroup.") || name == "tasks" || name == "notify_on_release") {
            chown(&path, Some(NOBODY), Some(NOBODY)).unwrap();
        }
    }
}

impl Delegated {
    fn new() -> Delegated {
        let parent = unique("delegated");
        if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
            // v2: let sandbox (as root) create it with the controllers enabled down to it.
            let status = Command::new(SANDBOX).args(["run", "--cgroup-parent", &parent, "--", "true"]).status().unwrap();
            assert!(status.success());
            let dir = find_dir("/sys/fs/cgroup", &parent);
            let launcher = dir.join("launcher");
            fs::create_dir(&launcher).unwrap();
            chown_tree(&dir);
            chown_tree(&launcher);
            let enter = format!("echo $$ > {}/cgroup.procs", launcher.display());
            Delegated { parent, dirs: vec![launcher, dir], enter: Some(enter) }
        } else {
            let dirs: Vec<PathBuf> =
                ["memory", "pids", "cpuacct"].iter().map(|h| Path::new("/sys/fs/cgroup").join(h).join(&parent)).collect();
            for dir in &dirs {
                fs::create_dir(dir).unwrap();
                chown_tree(dir);
            }
            Delegated { parent, dirs, enter: None }
        }
    }
}

fn find_dir(root: &str, name: &str) -> PathBuf {
    let direct = Path::new(root).join(name);
    if direct.is_dir() {
        return direct;
    }
    let own = fs::read_to_string("/proc/self/cgroup").unwrap();
    let relative = own.lines().find_map(|l| l.strip_prefix("0::")).unwrap().trim_start_matches('/');
    Path::new(root).join(relative).join(name)
}

impl Drop for Delegated {
    fn drop(&mut self) {
        // Deepest first: the user may have made children (a leaf for its own processes).
        fn remove(dir: &Path) {
            if let Ok(entries) = fs::read_dir(dir) {
                for entry in entries.flatten() {
                    if entry.path().is_dir() {
                        remove(&entry.path());
                    }
                }
            }
            let _ = fs::remove_dir(dir);
        }
        for dir in &self.dirs {
            remove(dir);
        }
    }
}

#[test]
fn with_a_delegated_cgroup_limits_are_exact() {
    let delegated = Delegated::new();
    let leak = "import time\nb = []\nwhile True: b.append(bytearray(1 << 20))";
    let (output, json) = as_nobody(
        delegated.enter.as_deref(),
        &["--cgroup-parent", &delegated.parent, "--mem", "64M", "--pids", "20", "--", "python3", "-c", leak],
        &[],
    );
    assert_eq!(output.status.code(), Some(137), "{}", text(&output));
    assert!(json["oom_kills"].as_u64().unwrap() >= 1, "{json}");
    assert_eq!(json["enforcement"]["memory"], "cgroup");
    assert_eq!(json["enforcement"]["pids"], "cgroup");
    assert_ne!(json["cgroup_version"], Value::Null);

    // SANDBOX_CGROUP_PARENT does what --cgroup-parent does (for #[isolated] tests).
    let (output, json) = as_nobody(
        delegated.enter.as_deref(),
        &["--pids", "20", "--timeout", "20s", "--", "python3", "-c", FORK_LOOP],
        &[("SANDBOX_CGROUP_PARENT", delegated.parent.as_str())],
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert!(json["pids_limit_hits"].as_u64().unwrap() > 0, "{json}");
    // Nothing left below the delegated cgroup (the v2 launcher leaf is the test's own).
    for dir in &delegated.dirs {
        let runs: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir() && e.file_name() != "launcher" && e.file_name() != "leaf")
            .collect();
        assert!(runs.is_empty(), "left in {}: {runs:?}", dir.display());
    }
}

/// The stock-harness `#[isolated]` test binary built by the same `cargo test`.
fn isolated_test_binary() -> PathBuf {
    let deps = std::env::current_exe().unwrap().parent().unwrap().to_path_buf();
    let mut candidates: Vec<PathBuf> = fs::read_dir(&deps)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with("isolated-") && !name.contains('.')
        })
        .collect();
    candidates.sort_by_key(|p| fs::metadata(p).unwrap().modified().unwrap());
    candidates.pop().unwrap_or_else(|| panic!("no isolated test binary in {}", deps.display()))
}

#[test]
fn isolated_tests_with_a_delegated_cgroup_behave_as_under_root() {
    let delegated = Delegated::new();
    let exe = isolated_test_binary();
    let run = |tests: &[&str], parent: Option<&str>| {
        let mut script = String::new();
        // The launcher enters the delegated subtree only when it is to use it.
        if let (Some(enter), Some(_)) = (&delegated.enter, parent) {
            script.push_str(enter);
            script.push_str(" && ");
        }
        script.push_str("exec setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all \"$@\"");
        let mut command = Command::new("sh");
        command.arg("-c").arg(script).arg("sh").arg(&exe).args(tests).arg("--exact").env("RUST_BACKTRACE", "0");
        command.current_dir(env!("CARGO_MANIFEST_DIR"));
        match parent {
            Some(parent) => command.env("SANDBOX_CGROUP_PARENT", parent),
            None => command.env_remove("SANDBOX_CGROUP_PARENT"),
        };
        command.output().unwrap()
    };
    // The regression tests that need the kernel's counters pass, as under root...
    let output = run(&["fork_bomb_is_contained", "leak_is_oom_killed", "hang_is_timed_out"], Some(&delegated.parent));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("test result: ok. 3 passed"), "{stdout}");
    // ...and without a delegated cgroup they fail saying why, instead of passing or failing wrongly.
    let output = run(&["fork_bomb_is_contained"], None);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(101), "{stdout}");
    assert!(stdout.contains("cannot check this expectation: pids-limit hits are only counted by a cgroup"), "{stdout}");
}

#[test]
fn the_readme_fork_bomb_demo_behaves_as_under_root_with_a_delegated_cgroup() {
    let delegated = Delegated::new();
    let readme = fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let demo = readme.lines().find(|l| l.starts_with("cargo run --release")).expect("the README's demo command");
    // The same sandbox arguments as the demo, from the debug build, as uid 65534.
    let args: Vec<&str> = demo.split_once(" -- run ").unwrap().1.splitn(9, ' ').collect();
    let bomb = demo.split_once("bash -c ").unwrap().1.trim_matches('\'');
    let mut full: Vec<&str> = vec!["--cgroup-parent", &delegated.parent];
    full.extend(args.iter().take_while(|a| **a != "--"));
    full.extend(["--", "bash", "-c", bomb]);
    let (output, json) = as_nobody(delegated.enter.as_deref(), &full, &[]);
    assert_eq!(output.status.code(), Some(137), "{}", text(&output));
    assert!(json["pids_limit_hits"].as_u64().unwrap() > 0, "{json}");
    if let Some(peak) = common::peak_pids(json["peak_pids"].as_u64()) {
        assert_eq!(peak, 20, "{json}");
    }
    assert_eq!(json["enforcement"]["pids"], "cgroup");
    assert_eq!(json["timed_out"], true);
}

/// `--fs overlay` in a user namespace: the user's own files (here a directory below `/home`,
/// which is overlaid on its own) take every change, none reaches the host, and the change list
/// is exact. Where the kernel refuses, the command sees why: copying up a directory of an id
/// outside the namespace (root's `/var/tmp`) fails with EOVERFLOW.
#[test]
fn overlays_work_without_root_where_the_kernel_allows() {
    let dir = Path::new("/home").join(unique("overlay"));
    fs::create_dir_all(&dir).unwrap();
    for (name, content) in [("mod.txt", "one\n"), ("del.txt", "delete me\n"), ("ren.txt", "moved\n"), ("same.txt", "same\n")] {
        fs::write(dir.join(name), content).unwrap();
        chown(dir.join(name), Some(NOBODY), Some(NOBODY)).unwrap();
    }
    chown(&dir, Some(NOBODY), Some(NOBODY)).unwrap();
    let read_all = |dir: &Path| -> Vec<(String, String)> {
        let mut entries: Vec<(String, String)> = fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let path = e.unwrap().path();
                (path.display().to_string(), fs::read_to_string(&path).unwrap())
            })
            .collect();
        entries.sort();
        entries
    };
    let before = read_all(&dir);
    let root_file = format!("/{}", unique("overlay-root-file"));
    let script = format!(
        "set -e; cd {}; echo new > new.txt; echo two >> mod.txt; rm del.txt; mv ren.txt ren2.txt; printf 'same\\n' > same.txt; touch {root_file}",
        dir.display()
    );
    let (output, json) = as_nobody(None, &["--fs", "overlay", "--", "sh", "-c", &script], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert_eq!(read_all(&dir), before, "the user's directory changed on the host");
    assert!(!Path::new(&root_file).exists(), "{root_file} reached the host");
    let listed: Vec<(String, String)> = json["fs_changes"]
        .as_array()
        .unwrap_or_else(|| panic!("{}", text(&output)))
        .iter()
        .map(|c| (c["change"].as_str().unwrap().to_string(), c["path"].as_str().unwrap().to_string()))
        .collect();
    let at = |name: &str| dir.join(name).display().to_string();
    let expected = [
        ("deleted".to_string(), at("del.txt")),
        ("modified".to_string(), at("mod.txt")),
        ("created".to_string(), at("new.txt")),
        ("renamed".to_string(), at("ren2.txt")),
        ("created".to_string(), root_file.clone()),
    ];
    assert_eq!(listed, expected, "{}", text(&output));
    fs::remove_dir_all(&dir).unwrap();

    let shared = Path::new("/var/tmp").join(unique("overlay"));
    fs::create_dir_all(&shared).unwrap();
    chown(&shared, Some(NOBODY), Some(NOBODY)).unwrap();
    let write = format!("echo x > {}/f", shared.display());
    let (output, _) = as_nobody(None, &["--fs", "overlay", "--", "sh", "-c", &write], &[]);
    assert_ne!(output.status.code(), Some(0), "{}", text(&output));
    assert!(String::from_utf8_lossy(&output.stderr).contains("Value too large for defined data type"), "{}", text(&output));
    assert!(!shared.join("f").exists());
    fs::remove_dir_all(&shared).unwrap();
}

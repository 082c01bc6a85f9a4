//! `sandbox run --fs overlay` against the real kernel: the command changes files in a project
//! directory, under `$HOME` and (as root) in `/etc`; the host's trees, snapshotted byte for byte
//! before and after, are identical, and the run's change list is exactly what the command did.
//! Also `--host-writes fail`, `--keep-changes`, `--fs-size`, the memory limit over the layer, a
//! working directory below `/tmp`, and that nothing of a run is left after the launcher is
//! killed.
//!
//! Runs on the host (cgroup v1, root) and, through `tests/run-all.sh`, in the cgroup-v2 VM in
//! its leaf, root and ns modes (where `/` is itself an overlay). Rootless overlay runs are in
//! `tests/rootless.rs`.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;


mod common;
use common::*;

/// Every entry below `root` (and `root` itself): type, mode, owner, size, content or link
/// target. Two equal snapshots mean an unchanged tree, byte for byte.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, String> {
    let mut entries = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(path) = stack.pop() {
        let Ok(meta) = fs::symlink_metadata(&path) else { continue };
        let kind = meta.file_type();
        let detail = if kind.is_symlink() {
            format!("link {}", fs::read_link(&path).unwrap().display())
        } else if kind.is_dir() {
            let mut names: Vec<PathBuf> = fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()).collect();
            names.sort();
            stack.extend(names);
            "dir".to_string()
        } else {
            format!("file {:?}", fs::read(&path).unwrap())
        };
        entries.insert(path, format!("{detail} mode {:o} owner {}:{}", meta.mode(), meta.uid(), meta.gid()));
    }
    entries
}

/// The run's change list as `(change, path, from)` triples.
fn changes(run: &Run) -> Vec<(String, String, Option<String>)> {
    let list = run.json["fs_changes"].as_array().unwrap_or_else(|| panic!("no fs_changes in {run:#?}"));
    list.iter()
        .map(|change| {
            (
                change["change"].as_str().unwrap().to_string(),
                change["path"].as_str().unwrap().to_string(),
                change["from"].as_str().map(str::to_string),
            )
        })
        .collect()
}

fn change(kind: &str, path: &Path) -> (String, String, Option<String>) {
    (kind.to_string(), path.display().to_string(), None)
}

/// A project directory as a test suite finds it.
fn project(tag: &str) -> PathBuf {
    let dir = scratch().join(unique(tag));
    fs::create_dir_all(dir.join("deldir/sub")).unwrap();
    fs::create_dir_all(dir.join("rdir")).unwrap();
    for (name, content) in [
        ("mod.txt", "one\n"),
        ("same.txt", "same\n"),
        ("touched.txt", "touched\n"),
        ("chmod.txt", "chmod\n"),
        ("del.txt", "delete me\n"),
        ("ren-from.txt", "renamed\n"),
        ("deldir/sub/f", "gone\n"),
        ("rdir/inner", "moves along\n"),
    ] {
        fs::write(dir.join(name), content).unwrap();
    }
    fs::set_permissions(dir.join("chmod.txt"), fs::Permissions::from_mode(0o644)).unwrap();
    std::os::unix::fs::symlink("mod.txt", dir.join("link")).unwrap();
    dir
}

/// What the script below does to a [`project`], and what it must list.
const PROJECT_SCRIPT: &str = "set -e
echo hello > new.txt
echo two >> mod.txt
printf 'same\\n' > same.txt
touch touched.txt
chmod 600 chmod.txt
rm del.txt
rm -r deldir
mv ren-from.txt ren-to.txt
mkdir -p deep/a/b
echo leaf > deep/a/b/f
ln -sfn same.txt link
mv rdir rdir2
";

fn project_changes(dir: &Path) -> Vec<(String, String, Option<String>)> {
    let mut expected = vec![
        change("modified", &dir.join("chmod.txt")),
        change("created", &dir.join("deep")),
        change("created", &dir.join("deep/a")),
        change("created", &dir.join("deep/a/b")),
        change("created", &dir.join("deep/a/b/f")),
        change("deleted", &dir.join("del.txt")),
        change("deleted", &dir.join("deldir")),
        change("modified", &dir.join("link")),
        change("modified", &dir.join("mod.txt")),
        change("created", &dir.join("new.txt")),
        ("renamed".into(), dir.join("rdir2").display().to_string(), Some(dir.join("rdir").display().to_string())),
        ("renamed".into(), dir.join("ren-to.txt").display().to_string(), Some(dir.join("ren-from.txt").display().to_string())),
    ];
    expected.sort_by(|a, b| a.1.cmp(&b.1));
    expected
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

#[test]
fn an_overlay_run_changes_nothing_on_the_host_and_lists_exactly_what_it_changed() {
    let dir = project("overlay-project");
    let home = scratch().join(unique("overlay-home"));
    fs::create_dir_all(&home).unwrap();
    let etc_file = PathBuf::from(format!("/etc/{}", unique("sandbox-overlay")));
    let (dir_before, home_before) = (snapshot(&dir), snapshot(&home));
    let mut script = PROJECT_SCRIPT.to_string();
    script.push_str("mkdir -p \"$HOME/.cache/tool\" && echo cached > \"$HOME/.cache/tool/state\"\n");
    if is_root() {
        script.push_str(&format!("echo etc > {}\n", etc_file.display()));
    }
    let home_env = format!("HOME={}", home.display());
    let run = sandbox_in(&dir, &["--fs", "overlay", "--", "env", &home_env, "sh", "-c", &script]);
    assert_eq!(run.code, Some(0), "{run:#?}");

    assert_eq!(snapshot(&dir), dir_before, "the project directory changed on the host");
    assert_eq!(snapshot(&home), home_before, "$HOME changed on the host");
    assert!(!etc_file.exists(), "{} reached the host", etc_file.display());

    let mut expected = project_changes(&dir);
    expected.extend([
        change("created", &home.join(".cache")),
        change("created", &home.join(".cache/tool")),
        change("created", &home.join(".cache/tool/state")),
    ]);
    if is_root() {
        expected.push(change("created", &etc_file));
    }
    expected.sort_by(|a, b| a.1.cmp(&b.1));
    assert_eq!(changes(&run), expected, "{}", run.stderr);
    assert_eq!(run.json["host_writes"], "discard");
    // The summary counts them; each has its line under it.
    assert!(run.stderr.contains(&format!("host files changed {} (discarded)", expected.len())), "{}", run.stderr);
    assert!(run.stderr.contains(&format!("sandbox:   created file {} (6 B)", dir.join("new.txt").display())), "{}", run.stderr);
    fs::remove_dir_all(&dir).unwrap();
    fs::remove_dir_all(&home).unwrap();
}

#[test]
fn a_run_that_writes_nothing_lists_nothing() {
    let run = sandbox_in(Path::new("/"), &["--fs", "overlay", "--", "sh", "-c", "cat /etc/hostname > /dev/null; ls / > /dev/null"]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert_eq!(run.json["fs_changes"], serde_json::json!([]));
    assert!(run.stderr.contains("host files changed 0"), "{}", run.stderr);
    // The other modes know nothing of changes, and say nothing.
    let run = sandbox_in(Path::new("/"), &["--", "true"]);
    assert_eq!(run.json.get("fs_changes"), None, "{run:#?}");
    assert!(!run.stderr.contains("host files changed"), "{}", run.stderr);
}

#[test]
fn host_writes_fail_fails_the_run_naming_the_paths() {
    let dir = scratch().join(unique("overlay-fail"));
    fs::create_dir_all(&dir).unwrap();
    let polluted = dir.join("polluted");
    let script = format!("echo x > {}", polluted.display());
    let run = sandbox_in(Path::new("/"), &["--fs", "overlay", "--host-writes", "fail", "--", "sh", "-c", &script]);
    assert_eq!(run.code, Some(1), "the command exited 0, its host write fails the run: {run:#?}");
    assert!(!polluted.exists());
    assert_eq!(changes(&run), [change("created", &polluted)]);
    assert_eq!(run.json["host_writes"], "fail");
    assert!(run.stderr.contains("(refused: host_writes = fail)"), "{}", run.stderr);
    assert!(run.stderr.contains(&format!("created file {}", polluted.display())), "{}", run.stderr);
    // A run that writes nothing passes.
    let run = sandbox_in(Path::new("/"), &["--fs", "overlay", "--host-writes", "fail", "--", "true"]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn keep_changes_copies_what_changed_out() {
    let dir = project("overlay-keep");
    let kept = scratch().join(unique("overlay-kept"));
    let run = sandbox_in(&dir, &["--fs", "overlay", "--keep-changes", kept.to_str().unwrap(), "--", "sh", "-c", PROJECT_SCRIPT]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    let inside = |path: &str| kept.join(dir.strip_prefix("/").unwrap()).join(path);
    assert_eq!(fs::read_to_string(inside("new.txt")).unwrap(), "hello\n");
    assert_eq!(fs::read_to_string(inside("mod.txt")).unwrap(), "one\ntwo\n");
    assert_eq!(fs::read_to_string(inside("deep/a/b/f")).unwrap(), "leaf\n");
    assert_eq!(fs::symlink_metadata(inside("chmod.txt")).unwrap().mode() & 0o777, 0o600);
    assert!(!inside("same.txt").exists(), "an unchanged file is not copied");
    let deleted = fs::read_to_string(kept.join("DELETED")).unwrap();
    assert!(deleted.lines().any(|line| Path::new(line) == dir.join("del.txt")), "{deleted}");
    fs::remove_dir_all(&dir).unwrap();
    fs::remove_dir_all(&kept).unwrap();
}

#[test]
fn fs_size_caps_the_layer_with_enospc() {
    let dir = scratch().join(unique("overlay-size"));
    fs::create_dir_all(&dir).unwrap();
    let script = "dd if=/dev/zero of=big bs=1M count=4 2>&1; echo \"dd=$?\"";
    let run = sandbox_in(&dir, &["--fs", "overlay", "--fs-size", "1M", "--", "sh", "-c", script]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert!(run.stdout.contains("No space left on device") && run.stdout.contains("dd=1"), "{run:#?}");
    assert!(!dir.join("big").exists());
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_memory_limit_bounds_what_a_run_can_write() {
    let dir = scratch().join(unique("overlay-mem"));
    fs::create_dir_all(&dir).unwrap();
    // 96 MiB into a run of 32 MiB: the layer's pages are the run's memory.
    let script = "dd if=/dev/zero of=big bs=1M count=96 2>/dev/null; echo \"dd=$?\"";
    let run = sandbox_in(&dir, &["--fs", "overlay", "--mem", "32M", "--", "sh", "-c", script]);
    assert!(!dir.join("big").exists());
    if run.json["cgroup_version"].is_null() {
        panic!("no cgroup for this run, the memory limit is not a cgroup's: {run:#?}");
    }
    assert!(json_u64(&run, "oom_kills") > 0, "the write stayed under 32 MiB: {run:#?}");
    // The OOM killer takes the writer or its shell (both of the command), and the launcher lives
    // to report it.
    let killed = run.stdout == "dd=137\n" || run.json["ending"] == "oom_killed";
    assert!(killed, "{run:#?}");
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_working_directory_below_tmp_is_overlaid_too() {
    let dir = PathBuf::from(format!("/tmp/{}", unique("overlay-cwd")));
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("kept"), "host\n").unwrap();
    let before = snapshot(&dir);
    let run = sandbox_in(&dir, &["--fs", "overlay", "--", "sh", "-c", "cat kept && echo new > kept && echo more > added"]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert_eq!(run.stdout, "host\n");
    assert_eq!(snapshot(&dir), before);
    assert_eq!(changes(&run), [change("created", &dir.join("added")), change("modified", &dir.join("kept"))]);
    fs::remove_dir_all(&dir).unwrap();
}

/// The mount namespace of process `pid` (its `/proc/PID/ns/mnt` link).
fn mount_namespace(pid: u32) -> Option<PathBuf> {
    fs::read_link(format!("/proc/{pid}/ns/mnt")).ok()
}

/// Whether any process on the machine is in mount namespace `namespace`.
fn namespace_in_use(namespace: &Path) -> bool {
    fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .any(|pid| mount_namespace(pid).as_deref() == Some(namespace))
}

/// The layer and its overlays are mounted only in the run's mount namespace, and the
/// launcher's descriptor of the layer dies with it: once no process is left in that namespace,
/// nothing of the run is left.
#[test]
fn nothing_of_an_overlay_run_is_left_after_the_launcher_is_killed() {
    let marker = format!("1002.{}", std::process::id());
    let etc_file = PathBuf::from(format!("/etc/{}", unique("overlay-killed")));
    let script = format!("echo x > {} 2>/dev/null; dd if=/dev/zero of=big bs=1M count=8 2>/dev/null; exec sleep {marker}", etc_file.display());
    let mut launcher = Command::new(sandbox_bin())
        .args(["run", "--fs", "overlay", "--", "sh", "-c", &script])
        .current_dir(scratch())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until("the run's sleep to start", Duration::from_secs(60), || !sleeps_with(&marker).is_empty());
    let sleep = sleeps_with(&marker)[0];
    let table = fs::read_to_string(format!("/proc/{sleep}/mountinfo")).unwrap();
    assert!(table.lines().any(|line| line.contains(" - overlay ") && line.contains("upperdir=/tmp/upper/")), "{table}");
    let namespace = mount_namespace(sleep).unwrap();
    launcher.kill().unwrap();
    launcher.wait().unwrap();
    wait_until("the run's processes to end", Duration::from_secs(60), || sleeps_with(&marker).is_empty());
    wait_until("no process left in the run's mount namespace", Duration::from_secs(60), || !namespace_in_use(&namespace));
    assert!(!etc_file.exists() && !scratch().join("big").exists(), "a write reached the host");
}

/// The file-system type of this process's `/`.
fn root_fstype() -> String {
    let table = mountinfo();
    let line = table.lines().rfind(|line| line.split(' ').nth(4) == Some("/")).unwrap();
    line.split(" - ").nth(1).unwrap().split(' ').next().unwrap().to_string()
}

/// An overlay run inside an overlay run: its own layer over the outer one's view, its own
/// change list, nothing on the host. The kernel stacks overlays two deep: where `/` is an
/// overlay already (the cgroup-v2 VM, many containers) the inner run fails at set-up, naming
/// that limit and the fix.
#[test]
fn an_overlay_run_nests_in_an_overlay_run_or_says_why() {
    let dir = scratch().join(unique("overlay-nested"));
    fs::create_dir_all(&dir).unwrap();
    let inner = format!("{} run --fs overlay -- sh -c 'echo inner > inner.txt'", sandbox_bin());
    let script = format!("echo outer > outer.txt; {inner}; echo \"inner=$?\"");
    let run = sandbox_in(&dir, &["--fs", "overlay", "--", "sh", "-c", &script]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert!(!dir.join("outer.txt").exists() && !dir.join("inner.txt").exists(), "a write reached the host");
    if root_fstype() == "overlay" {
        assert_eq!(run.stdout, "inner=125\n", "{run:#?}");
        assert!(run.stderr.contains("overlays stack at most two deep"), "{run:#?}");
        assert_eq!(changes(&run), [change("created", &dir.join("outer.txt"))]);
    } else {
        assert_eq!(run.stdout, "inner=0\n", "{run:#?}");
        assert!(run.stderr.contains(&format!("created file {} (6 B)", dir.join("inner.txt").display())), "the inner run's list: {run:#?}");
        // The outer run saw only its own write: the inner one's went to the inner layer.
        assert_eq!(changes(&run), [change("created", &dir.join("outer.txt"))]);
    }
    fs::remove_dir_all(&dir).unwrap();
}

/// The holes asked for: a `--writable` path and a read-write `--bind` are written straight to
/// the host and are not listed; a read-only `--bind` stays read-only.
/// An overlay run whose set-up fails names the step that failed, though the init had sent
/// its layer before: three levels of overlay runs, where the kernel stacks two, and a bind
/// mount at the first, which the third covers with an overlay of its own that it never makes.
#[test]
fn an_overlay_run_whose_set_up_fails_names_the_failed_step() {
    let dir = scratch().join(unique("overlay-setup-fails"));
    fs::create_dir_all(&dir).unwrap();
    let bin = sandbox_bin();
    let nested = format!("{bin} run --fs overlay -- {bin} run --fs overlay -- true; echo \"nested=$?\"");
    let bind = format!("{0}:{0}", dir.display());
    // The outermost with the machine's root: a contained run two levels down has no /proc of
    // its own (README, Contained as root).
    let run = sandbox_in(&dir, &["--privileged", "--fs", "overlay", "--bind", &bind, "--", "sh", "-c", &nested]);
    assert_eq!(run.stdout, "nested=125\n", "{run:#?}");
    // The first overlay of the third level (made in a user namespace there, so one per host
    // mount: `/`'s or the first below it).
    let failed_step = run.stderr.lines().find(|line| line.contains("mounting an overlay of /")).unwrap_or_default();
    assert!(failed_step.contains(" on /tmp/root") && failed_step.contains(": EINVAL"), "{run:#?}");
    assert!(!run.stderr.contains("reading the run's changes"), "{run:#?}");
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn writable_paths_and_read_write_binds_reach_the_host_unlisted() {
    let dir = scratch().join(unique("overlay-holes"));
    let (writable, bound, inside) = (dir.join("writable"), dir.join("bound"), dir.join("inside"));
    for made in [&writable, &bound, &inside] {
        fs::create_dir_all(made).unwrap();
    }
    let script = format!(
        "echo w > {}/kept && echo b > {}/kept && echo layer > {}/gone",
        writable.display(),
        inside.display(),
        dir.display()
    );
    let bind = format!("{}:{}", bound.display(), inside.display());
    let run = sandbox_in(Path::new("/"), &["--fs", "overlay", "--writable", writable.to_str().unwrap(), "--bind", &bind, "--", "sh", "-c", &script]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert_eq!(fs::read_to_string(writable.join("kept")).unwrap(), "w\n");
    assert_eq!(fs::read_to_string(bound.join("kept")).unwrap(), "b\n");
    assert!(!dir.join("gone").exists());
    assert_eq!(changes(&run), [change("created", &dir.join("gone"))], "only the layer's write is listed");
    fs::remove_dir_all(&dir).unwrap();
}

/// `--rootfs DIR --fs overlay`: DIR is the lower layer, so a root file system shared by many runs
/// is never changed by one; the list names the paths as the command saw them.
#[test]
fn an_overlay_covers_a_rootfs() {
    let root = busybox_rootfs();
    let before = snapshot(&root);
    let script = "echo new > /etc/added && echo changed > /etc/marker && rm /bin/ls && cat /etc/marker";
    let run = sandbox_in(Path::new("/"), &["--rootfs", root.to_str().unwrap(), "--fs", "overlay", "--", "/bin/sh", "-c", script]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert_eq!(run.stdout, "changed\n");
    assert_eq!(snapshot(&root), before, "the rootfs changed");
    assert_eq!(
        changes(&run),
        [change("deleted", Path::new("/bin/ls")), change("created", Path::new("/etc/added")), change("modified", Path::new("/etc/marker"))]
    );
    fs::remove_dir_all(&root).unwrap();
}

//! Contained as root. A run's command, root with every capability, sees its own cgroup only (a
//! cgroup namespace rooted below the run's limits): one write to `cgroup.procs` does not take it
//! out of its limits, writing its own `pids.max` does not raise them, and a hierarchy it mounts
//! shows no `release_agent`. With `--privileged` it has the host's root, and a run whose
//! processes left or whose limits were raised says so (`escaped`, `limits_changed`, "NOT
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

/// Whether this machine has only cgroup v2.
fn unified() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// The cgroup mounts of a `/proc/self/mountinfo` text: (root inside the file system, mount point).
fn cgroup_mounts(mountinfo: &str) -> Vec<(String, String)> {
    mountinfo
        .lines()
        .filter(|line| matches!(line.split(" - ").nth(1).and_then(|t| t.split(' ').next()), Some("cgroup" | "cgroup2")))
        .map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            (fields[3].to_string(), fields[4].to_string())
        })
        .collect()
}

/// Also under `fs = overlay`, whose new root gets the host's `/sys` moved in without its
/// cgroup mounts.
#[test]
fn a_run_sees_its_own_cgroup_only() {
    must_be_root();
    let escape = EscapeCgroup::new();
    let script = format!(
        "cat /proc/self/cgroup; echo ---; cat /proc/self/mountinfo; echo ---; test -e {} && echo escape-visible; true",
        escape.dir.display()
    );
    for fs in ["host", "overlay"] {
        let run = sandbox_in(Path::new("/"), &["--fs", fs, "--pids", "20", "--", "sh", "-c", &script]);
        assert_eq!(run.code, Some(0), "{run:#?}");
        let parts: Vec<&str> = run.stdout.split("---\n").collect();
        for line in parts[0].lines() {
            assert!(line.ends_with(":/"), "--fs {fs}: the run sees a cgroup path other than its own root: {line}\n{run:#?}");
        }
        let mounts = cgroup_mounts(parts[1]);
        let expected: Vec<&str> = if unified() { vec!["/sys/fs/cgroup"] } else { vec!["/sys/fs/cgroup/memory", "/sys/fs/cgroup/pids"] };
        let mut points: Vec<&str> = mounts.iter().map(|(_, point)| point.as_str()).collect();
        points.sort();
        assert_eq!(points, expected, "--fs {fs}: {run:#?}");
        assert!(mounts.iter().all(|(root, _)| root == "/"), "--fs {fs}: a cgroup mount shows more than the run: {mounts:?}");
        assert!(!run.stdout.contains("escape-visible"), "--fs {fs}: a cgroup outside the run is reachable: {run:#?}");
    }
}

/// The issue's escape, tried every way the run can see: a write of its own PID into every
/// `cgroup.procs` it can reach and into the host's, then forks beyond the limit.
#[test]
fn one_write_to_cgroup_procs_does_not_leave_the_limits() {
    must_be_root();
    let marker = format!("1004.{}", std::process::id());
    let escape = EscapeCgroup::new();
    let script = format!(
        "for f in $(find /sys/fs/cgroup -name cgroup.procs) {}/cgroup.procs /sys/fs/cgroup/pids/cgroup.procs; do \
           {{ echo $$ > $f; }} 2>/dev/null; done; \
         (for i in $(seq 30); do sleep {marker} & done) 2>/dev/null; exit 0",
        escape.dir.display()
    );
    let run = sandbox_in(Path::new("/"), &["--pids", "20", "--", "sh", "-c", &script]);
    assert_eq!((run.code, &run.json["escaped"]), (Some(0), &serde_json::json!([])), "{run:#?}");
    assert!(json_u64(&run, "pids_limit_hits") >= 1, "the forks beyond the limit were not refused: {run:#?}");
    if let Some(peak) = peak_pids(run.json["peak_pids"].as_u64()) {
        assert!(peak <= 20, "{run:#?}");
    }
    let procs = std::fs::read_to_string(escape.dir.join("cgroup.procs")).unwrap();
    assert_eq!(procs, "", "a process of the run is in the host's cgroup");
    assert_eq!(sleeps_with(&marker), Vec::<u32>::new(), "processes of the run survived it");
}

/// Writing the limit files the run sees changes its delegated cgroup's own, below the limits:
/// the forks and the allocation beyond them fail, and the run's limits are what it set.
#[test]
fn limits_cannot_be_raised_from_inside() {
    must_be_root();
    let script = "for f in pids.max memory.max memory.limit_in_bytes memory.memsw.limit_in_bytes; do \
                    for d in /sys/fs/cgroup /sys/fs/cgroup/pids /sys/fs/cgroup/memory; do \
                      [ -e $d/$f ] && { echo 1000000000 > $d/$f || echo max > $d/$f; } 2>/dev/null; done; done; \
                  tail /dev/zero; (for i in $(seq 30); do sleep 5 & done) 2>/dev/null; exit 0";
    let run = sandbox_in(Path::new("/"), &["--pids", "20", "--mem", "64M", "--", "sh", "-c", script]);
    assert_eq!(run.json["limits_changed"], serde_json::json!([]), "{run:#?}");
    assert!(json_u64(&run, "pids_limit_hits") >= 1, "the forks beyond 20 were not refused: {run:#?}");
    assert!(json_u64(&run, "oom_kills") >= 1, "nothing was OOM-killed at 64M: {run:#?}");
    let peak = json_u64(&run, "peak_memory_bytes");
    assert!(peak <= 64 << 20, "peak memory {peak} is beyond the limit: {run:#?}");
}

/// Every hierarchy of the host, mounted inside, shows the run's own cgroup as its root: no
/// `release_agent` (a v1 root's file, CVE-2022-0492's path), no cgroup of the host below it,
/// and a cgroup made there is the run's. Also for the hierarchies the run has no limit in
/// (`freezer`, `name=systemd`, a hybrid layout's cgroup2), whose namespace root would otherwise
/// be the launcher's cgroup. No new hierarchy can be made.
#[test]
fn a_cgroup_hierarchy_mounted_inside_shows_no_release_agent() {
    must_be_root();
    // (mount options, host mount point) of each hierarchy.
    let hierarchies: Vec<(String, String)> = mountinfo()
        .lines()
        .filter_map(|line| {
            let (mount, file_system) = line.split_once(" - ")?;
            let mut fields = file_system.split(' ');
            let (fstype, _, options) = (fields.next()?, fields.next()?, fields.next()?);
            let point = mount.split(' ').nth(4)?.to_string();
            match fstype {
                "cgroup2" => Some(("cgroup2".to_string(), point)),
                "cgroup" => {
                    let kept: Vec<&str> = options.split(',').filter(|o| !["rw", "ro", "xattr", "nsdelegate", "noprefix", "clone_children"].contains(o) && !o.contains("release_agent")).collect();
                    Some((kept.join(","), point))
                }
                _ => None,
            }
        })
        .collect();
    assert!(!hierarchies.is_empty());
    let mut script = String::new();
    for (i, (options, _)) in hierarchies.iter().enumerate() {
        let mount = if options == "cgroup2" { "mount -t cgroup2 none".to_string() } else { format!("mount -t cgroup -o {options} none") };
        script += &format!(
            "mkdir /tmp/cg{i} && {mount} /tmp/cg{i} && echo \"{options}: $(find /tmp/cg{i} -mindepth 1 -type d | wc -l) dirs, \
             $(ls /tmp/cg{i} | grep -cx release_agent) release_agent\" && mkdir /tmp/cg{i}/sandbox-made-inside; "
        );
    }
    script += "mkdir /tmp/new && mount -t cgroup -o none,name=sandbox-test none /tmp/new && echo new-hierarchy-mounted; true";
    let run = sandbox_in(Path::new("/"), &["--pids", "20", "--", "sh", "-c", &script]);
    // Made in the host's hierarchies (removed before the asserts, which would leave them).
    let made_on_the_host: Vec<std::path::PathBuf> = hierarchies
        .iter()
        .map(|(_, point)| Path::new(point).join("sandbox-made-inside"))
        .filter(|made| std::fs::remove_dir(made).is_ok())
        .collect();
    assert_eq!(run.code, Some(0), "{run:#?}");
    let expected: String = hierarchies.iter().map(|(options, _)| format!("{options}: 0 dirs, 0 release_agent\n")).collect();
    assert_eq!(run.stdout, expected, "{run:#?}");
    assert_eq!(made_on_the_host, Vec::<std::path::PathBuf>::new());
}

/// In the hierarchies a run has no limits in (v1's `freezer`, `cpuset`, `name=systemd`, ..., a
/// hybrid layout's cgroup2), contained runs share one cgroup, `sandbox/contained`, given to the
/// ID their user namespace leaves out: mounted inside, it is the root, and the command can
/// neither open one of its files for writing, nor make a cgroup in it, nor take it back; on the
/// host, its owner, its children and `freezer.state` are as before. A cgroup v2 host has no
/// such hierarchy (nothing to check); a hierarchy where this process is not at the root has
/// runs make their own there (not checked here).
#[test]
fn the_cgroup_runs_share_outside_their_limits_cannot_be_written_inside() {
    must_be_root();
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let at_root = |controllers: &str| own.lines().any(|line| line.split(':').nth(1) == Some(controllers) && line.ends_with(":/"));
    // (mount command, shared directory on the host) of each such hierarchy.
    let shared: Vec<(String, std::path::PathBuf)> = mountinfo()
        .lines()
        .filter_map(|line| {
            let (mount, file_system) = line.split_once(" - ")?;
            let mut fields = file_system.split(' ');
            let (fstype, _, options) = (fields.next()?, fields.next()?, fields.next()?);
            let point = Path::new(mount.split(' ').nth(4)?).join("sandbox/contained");
            let controllers: Vec<&str> = options.split(',').filter(|o| !["rw", "ro", "xattr", "nsdelegate", "noprefix", "clone_children"].contains(o) && !o.contains("release_agent")).collect();
            match fstype {
                "cgroup2" if !unified() && at_root("") => Some(("mount -t cgroup2 none".to_string(), point)),
                "cgroup" if !controllers.iter().any(|c| ["memory", "pids"].contains(c)) && at_root(&controllers.join(",")) => {
                    Some((format!("mount -t cgroup -o {} none", controllers.join(",")), point))
                }
                _ => None,
            }
        })
        .collect();
    if shared.is_empty() {
        eprintln!("nothing to check: no hierarchy without the run's limits has this process at its root (cgroup v2 has none)");
        return;
    }
    let mut script = String::new();
    for (i, (mount, _)) in shared.iter().enumerate() {
        script += &format!(
            "mkdir /tmp/cg{i} && {mount} /tmp/cg{i} && echo \"$(ls /tmp/cg{i} | wc -l) files\"; \
             for f in /tmp/cg{i}/*; do (exec 3>>$f) 2>/dev/null && echo writable $f; done; \
             mkdir /tmp/cg{i}/x 2>/dev/null && echo made; chown 0:0 /tmp/cg{i} /tmp/cg{i}/cgroup.procs 2>/dev/null && echo taken; "
        );
    }
    script += "true";
    let run = sandbox_in(Path::new("/"), &["--pids", "20", "--", "sh", "-c", &script]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    // Each mounted and listed, and nothing else printed.
    let listed: Vec<&str> = run.stdout.lines().filter(|line| line.ends_with(" files")).collect();
    assert_eq!((listed.len(), run.stdout.lines().count()), (shared.len(), shared.len()), "{run:#?}");
    assert!(listed.iter().all(|line| line != &"0 files"), "{run:#?}");
    // On the machine, the highest ID: the one its map has and the command's leaves out.
    let machine = std::fs::read_to_string("/proc/self/uid_map").unwrap().split_whitespace().collect::<Vec<_>>() == ["0", "0", "4294967295"];
    for (_, dir) in &shared {
        let owner = owner(dir);
        assert!(if machine { owner == (4294967294, 4294967294) } else { owner != (0, 0) }, "{} is {owner:?}'s", dir.display());
        let children = std::fs::read_dir(dir).unwrap().filter(|entry| entry.as_ref().unwrap().file_type().unwrap().is_dir()).count();
        assert_eq!(children, 0, "{}", dir.display());
        if let Ok(state) = std::fs::read_to_string(dir.join("freezer.state")) {
            assert_eq!(state.trim(), "THAWED");
        }
    }
}

/// A path's owner and group.
fn owner(path: &Path) -> (u32, u32) {
    use std::os::unix::fs::MetadataExt;
    let metadata = std::fs::metadata(path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
    (metadata.uid(), metadata.gid())
}

/// What the run sees of cgroups and `/proc`, and the read-only knobs, are locked in place: the
/// command is root in a user namespace of its own, and the kernel refuses to unmount what its
/// mount namespace inherited (`EINVAL`), so nothing below them (the host's `/proc`, whose
/// `/proc/1/ns/cgroup` would lead back out) is revealed, and no knob becomes writable.
#[test]
fn what_the_run_sees_cannot_be_unmounted() {
    must_be_root();
    // The host's /proc below the run's stays out of reach: a bind of /proc alone (which would
    // leave the run's behind) is refused, and a recursive one shows the run's (the same
    // superblock, so the same device number; the host's is another).
    let script = "for path in /sys/fs/cgroup /proc/sys /proc/sysrq-trigger /proc /sys; do \
                    umount -l $path 2>/dev/null && echo unmounted $path; done; \
                  stat -f -c %T /proc /sys/fs/cgroup /sys; grep -c ' /proc/sys ro,' /proc/self/mountinfo; \
                  mkdir /tmp/p; mount --bind /proc /tmp/p 2>/dev/null && echo bound alone; \
                  mount --rbind /proc /tmp/p && [ $(stat -c %d /proc) = $(stat -c %d /tmp/p) ] && echo the run\\'s";
    let run = sandbox_in(Path::new("/"), &["--pids", "20", "--", "sh", "-c", script]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    let cgroup_root = if unified() { "cgroup2fs" } else { "tmpfs" };
    assert_eq!(run.stdout, format!("proc\n{cgroup_root}\nsysfs\n1\nthe run's\n"), "{run:#?}");
}

/// Root in the run cannot undo its masks another way either: a `/proc` of its own, a
/// read-write remount of a read-only mount (a knob, `/sys`, the host's files under `--fs ro`),
/// or the init's root, memory and descriptors (the init stays root of the machine). Each is the
/// kernel's answer; `kernel.core_pattern` is unchanged afterwards.
#[test]
fn the_masks_cannot_be_undone_from_inside() {
    must_be_root();
    let attempts = [
        // Each write puts back the value read: a failure of the test leaves the machine as it was.
        ("new-proc", "mkdir -p /tmp/p && mount -t proc proc /tmp/p && cat /tmp/p/sys/kernel/core_pattern > /tmp/v && cat /tmp/v > /tmp/p/sys/kernel/core_pattern"),
        ("proc-sys-rw", "mount -o remount,bind,rw /proc/sys && cat /proc/sys/kernel/core_pattern > /tmp/v && cat /tmp/v > /proc/sys/kernel/core_pattern"),
        ("sys-rw", "mount -o remount,bind,rw /sys"),
        ("host-rw", "mount -o remount,bind,rw /usr && touch /usr/sandbox-masks-test"),
        ("init-root", "ls /proc/1/root/"),
        ("init-memory", "head -c1 /proc/1/mem"),
        ("init-fds", "readlink /proc/1/fd/0"),
        ("init-environ", "head -c1 /proc/1/environ"),
    ];
    let script: String = attempts.iter().map(|(name, attempt)| format!("({attempt}) >/dev/null 2>&1 && echo {name}; ")).collect();
    let core_pattern = std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap();
    let run = sandbox_in(Path::new("/"), &["--fs", "ro", "--", "sh", "-c", &format!("{script}true")]);
    let _ = std::fs::remove_file("/usr/sandbox-masks-test");
    assert_eq!((run.code, run.stdout.as_str()), (Some(0), ""), "an attempt succeeded: {run:#?}");
    assert_eq!(std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap(), core_pattern);
    // The control: with the machine's root a /proc of its own is writable, the read-only mounts
    // can be made writable in the run's mount namespace, and the init is there to look at.
    let script = "mkdir -p /tmp/p && mount -t proc proc /tmp/p && test -w /tmp/p/sys/kernel/core_pattern && echo new-proc; \
                  mount -o remount,bind,rw /sys && echo sys-rw; \
                  ls /proc/1/root/ >/dev/null && readlink /proc/1/fd/0 >/dev/null && echo init-reached";
    let run = sandbox_in(Path::new("/"), &["--privileged", "--", "sh", "-c", script]);
    assert_eq!(run.stdout, "new-proc\nsys-rw\ninit-reached\n", "{run:#?}");
}

/// A contained sandbox nested in a contained run has the run's `/proc` (the kernel refuses it
/// one of its own under the run's locked masks), so a contained run one level further down,
/// which finds its processes in `/proc`, refuses to start and names the fix; with the outermost
/// `--privileged` the three levels run.
#[test]
fn a_contained_run_two_levels_down_says_why() {
    must_be_root();
    let bin = sandbox_bin();
    let script = format!("{bin} run -- {bin} run -- true; echo inner=$?");
    let run = sandbox_in(Path::new("/"), &["--", "sh", "-c", &script]);
    assert_eq!(run.stdout, "inner=125\n", "{run:#?}");
    assert!(run.stderr.contains("/proc shows an outer PID namespace") && run.stderr.contains("--privileged"), "{run:#?}");
    let run = sandbox_in(Path::new("/"), &["--privileged", "--", "sh", "-c", &script]);
    assert_eq!(run.stdout, "inner=0\n", "{run:#?}");
}

/// The README's bounded job: a sandbox inside a contained run makes its runs in the run's
/// delegated subtree, with exact limits, bounded by the outer ones.
#[test]
fn sandboxes_inside_a_contained_run_keep_exact_limits() {
    must_be_root();
    let inner_json = format!("/tmp/{}", unique("inner-json"));
    let script = format!(
        "{bin} run --json {inner_json} --pids 5 -- sh -c 'for i in 1 2 3 4 5 6 7 8; do sleep 1 & done 2>/dev/null; wait'; \
         cat {inner_json}",
        bin = sandbox_bin()
    );
    let run = sandbox_in(Path::new("/"), &["--pids", "50", "--mem", "256M", "--", "sh", "-c", &script]);
    assert_eq!((run.code, &run.json["escaped"], &run.json["limits_changed"]), (Some(0), &serde_json::json!([]), &serde_json::json!([])), "{run:#?}");
    let inner: serde_json::Value = serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {run:#?}"));
    assert_eq!(inner["limits"]["pids"], 5, "{inner}");
    assert!(inner["pids_limit_hits"].as_u64().unwrap() >= 1, "the inner limit did not hold: {inner}");
    assert_eq!(inner["escaped"], serde_json::json!([]), "{inner}");
    if let Some(peak) = peak_pids(inner["peak_pids"].as_u64()) {
        assert!(peak <= 5, "{inner}");
    }
}

/// The capabilities that reach the kernel itself, as numbered in linux/capability.h (the
/// library's `KERNEL_CAPABILITIES`): module loading, raw I/O, reboot, the clock, and the rest.
const KERNEL_CAPABILITIES: [u32; 15] = [9, 16, 17, 20, 22, 25, 26, 30, 32, 33, 34, 35, 36, 38, 39];

/// The `CapBnd`, `CapPrm` and `CapEff` masks of a `/proc/PID/status` text.
fn capability_masks(status: &str) -> Vec<u64> {
    status
        .lines()
        .filter(|line| ["CapBnd:", "CapPrm:", "CapEff:"].iter().any(|key| line.starts_with(key)))
        .map(|line| u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap())
        .collect()
}

/// The kernel's knobs are read-only and its capabilities gone: each write below puts back the
/// value it read, so that even a failure of the test leaves the machine as it was.
#[test]
fn kernel_knobs_are_read_only_and_kernel_capabilities_gone() {
    must_be_root();
    let script = "grep Cap /proc/self/status; \
                  cat /proc/sys/kernel/core_pattern > /tmp/v && cat /tmp/v > /proc/sys/kernel/core_pattern && echo sysctl-written; \
                  cat /sys/kernel/mm/ksm/run > /tmp/w && cat /tmp/w > /sys/kernel/mm/ksm/run && echo sysfs-written; \
                  grep -E ' /proc/sys(rq-trigger)? ' /proc/self/mountinfo; true";
    let core_pattern = std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap();
    let run = sandbox_in(Path::new("/"), &["--", "sh", "-c", script]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert!(!run.stdout.contains("sysctl-written") && !run.stdout.contains("sysfs-written"), "{run:#?}");
    assert_eq!(run.stderr.matches("Read-only file system").count(), 2, "{run:#?}");
    for line in run.stdout.lines().filter(|line| line.contains(" - proc ")) {
        assert!(line.split(' ').nth(5).unwrap().starts_with("ro,"), "a kernel knob is writable: {line}");
    }
    let masks = capability_masks(&run.stdout);
    assert_eq!(masks.len(), 3, "{run:#?}");
    for capability in KERNEL_CAPABILITIES {
        assert!(masks.iter().all(|mask| mask & (1 << capability) == 0), "capability {capability} kept: {run:#?}");
    }
    assert_eq!(std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap(), core_pattern);
    // With the host's root the command keeps them all.
    let run = sandbox_in(Path::new("/"), &["--privileged", "--", "grep", "Cap", "/proc/self/status"]);
    let masks = capability_masks(&run.stdout);
    assert!(masks.iter().all(|mask| mask & (1 << 16) != 0), "{run:#?}");
}

/// What each host-wide call answers, as `name ERRNO` lines (`name ok` when it succeeded): the
/// calls are made so that success changes nothing (a missing swap file, an empty BPF request,
/// no module, the sysrq trigger opened and closed unwritten).
const HOST_WIDE_CALLS: &str = r#"
import ctypes, errno, os
libc = ctypes.CDLL(None, use_errno=True)
nr = {"x86_64": {"bpf": 321, "finit_module": 313}, "aarch64": {"bpf": 280, "finit_module": 273}}[os.uname().machine]
answer = lambda ret: "ok" if ret != -1 else errno.errorcode[ctypes.get_errno()]
print("swapoff", answer(libc.swapoff(b"/nonexistent-swap")))
print("bpf", answer(libc.syscall(nr["bpf"], 0, None, 0)))
print("finit_module", answer(libc.syscall(nr["finit_module"], -1, b"", 0)))
try:
    os.close(os.open("/proc/sysrq-trigger", os.O_WRONLY))
    print("sysrq ok")
except OSError as e:
    print("sysrq", errno.errorcode[e.errno])
"#;

/// The operations whose reach is the machine: a file system's superblock (shared with every
/// mount of it, the host's too), swap, BPF, modules, sysrq. Refused to a contained run, with
/// per-mount flags still the run's own. The "host" file system is a tmpfs mounted in a private
/// mount namespace around `sandbox run`, so that other tests comparing the real host's mount
/// table meanwhile see no change; its superblock options are read there after the run.
#[test]
fn host_wide_operations_are_refused() {
    must_be_root();
    let calls = scratch().join(unique("host-wide.py"));
    std::fs::write(&calls, HOST_WIDE_CALLS).unwrap();
    // With the host's root every call reaches the kernel, which answers for itself: a kernel
    // without modules or sysrq says so to both runs (ENOSYS, ENOENT).
    let privileged = sandbox_in(Path::new("/"), &["--privileged", "--", "python3", calls.to_str().unwrap()]);
    let answers: Vec<&str> = privileged.stdout.lines().collect();
    assert_eq!(answers.len(), 4, "{privileged:#?}");
    assert_eq!(answers[0], "swapoff ENOENT", "{privileged:#?}");
    assert!(!answers[1].ends_with("EPERM"), "{privileged:#?}");
    let module = match answers[2] {
        "finit_module EBADF" => "finit_module EPERM",
        "finit_module ENOSYS" => "finit_module ENOSYS",
        other => panic!("{other}: {privileged:#?}"),
    };
    let sysrq = match answers[3] {
        "sysrq ok" => "sysrq EROFS",
        "sysrq ENOENT" => "sysrq ENOENT",
        other => panic!("{other}: {privileged:#?}"),
    };

    let dir = scratch().join(unique("host-tmpfs"));
    std::fs::create_dir(&dir).unwrap();
    let dir_text = dir.display();
    let inside = scratch().join(unique("host-wide.sh"));
    std::fs::write(
        &inside,
        format!(
            "mount -o remount,ro {dir_text}; echo remount $?\n\
             mount -o remount,bind,ro {dir_text} && {{ touch {dir_text}/f; echo bind-remount $?; }}\n\
             python3 {}\n",
            calls.display()
        ),
    )
    .unwrap();
    // Its superblock's options (the file system's own line of the mount table) before and after.
    let around = format!(
        "mount -t tmpfs -o size=1m sandbox-host-tmpfs {dir_text} || exit 1; grep ' {dir_text} ' /proc/self/mountinfo | sed 's/.* - //'; \
         {bin} run -- sh {inside}; echo run $?; \
         grep ' {dir_text} ' /proc/self/mountinfo | sed 's/.* - //'; touch {dir_text}/still-writable && echo writable",
        bin = sandbox_bin(),
        inside = inside.display()
    );
    let output = Command::new("unshare").args(["--mount", "--propagation", "private", "sh", "-c", &around]).output().unwrap();
    for file in [&calls, &inside] {
        let _ = std::fs::remove_file(file);
    }
    let _ = std::fs::remove_dir(&dir);
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    let (superblock, inside) = stdout.split_once('\n').unwrap_or_else(|| panic!("{stdout}{stderr}"));
    assert!(superblock.starts_with("tmpfs sandbox-host-tmpfs rw,"), "{stdout}{stderr}");
    let expected = format!(
        "remount 32\nbind-remount 1\nswapoff EPERM\nbpf EPERM\n{module}\n{sysrq}\nrun 0\n{superblock}\nwritable\n"
    );
    assert_eq!(inside, expected, "{stderr}");
    assert!(stderr.contains("permission denied"), "{stderr}");
}

/// A mount made inside, after making every mount shared, never reaches the host's mount table
/// (`sandbox_in` compares it byte for byte around the run): the run's mount namespace was made
/// private before anything was mounted, so it shares no peer group with the host's.
#[test]
fn mounts_made_inside_never_propagate_to_the_host() {
    must_be_root();
    let script = "mount --make-rshared / && mount -t tmpfs sandbox-propagation-test /mnt && grep -c sandbox-propagation-test /proc/self/mountinfo";
    let run = sandbox_in(Path::new("/"), &["--", "sh", "-c", script]);
    assert_eq!((run.code, run.stdout.as_str()), (Some(0), "1\n"), "{run:#?}");
    assert!(!mountinfo().contains("sandbox-propagation-test"));
}

/// What tests do as root in their own sandbox still works there.
#[test]
fn root_work_inside_the_run_still_works() {
    must_be_root();
    let script = "set -e; mkdir /tmp/m /tmp/b; mount -t tmpfs none /tmp/m; mount --bind /tmp/m /tmp/b; \
                  touch /tmp/m/f; test -e /tmp/b/f; umount /tmp/b /tmp/m; \
                  unshare -n sh -c 'ip link set lo up; ip link add v0 type veth peer name v1; ip addr add 10.9.0.1/24 dev v0; ip -o link' | grep -c v0@v1; \
                  mknod /tmp/fifo p; chown 1:1 /tmp/fifo; chmod 600 /tmp/fifo; stat -c '%u %a %F' /tmp/fifo; \
                  python3 -c \"import socket; s = socket.socket(); s.bind(('127.0.0.1', 80)); print('port', s.getsockname()[1])\"; \
                  head -1 /proc/meminfo | cut -d: -f1; cat /sys/kernel/mm/ksm/run >/dev/null; echo read";
    let run = sandbox_in(Path::new("/"), &["--", "sh", "-c", script]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert_eq!(run.stdout, "1\n1 600 fifo\nport 80\nMemTotal\nread\n", "{run:#?}");
}

#[test]
fn processes_that_leave_the_run_cgroup_are_reported_and_killed() {
    must_be_root();
    let marker = format!("1003.{}", std::process::id());
    let escape = EscapeCgroup::new();
    // The command ends only once each sleep has exec'd (a copy of the shell caught before its exec
    // would show the shell's command line), waiting for that state with a generous bound.
    let script = format!(
        "echo $$ > {}/cgroup.procs; for i in 1 2 3 4 5; do sleep {marker} & pids=\"$pids $!\"; done; \
         for p in $pids; do n=0; until read c < /proc/$p/comm && [ \"$c\" = sleep ]; do n=$((n+1)); [ $n -lt 3000 ] || exit 2; sleep 0.01; done; done; exit 0",
        escape.dir.display()
    );
    let run = sandbox_in(Path::new("/"), &["--privileged", "--pids", "20", "--", "sh", "-c", &script]);
    assert_eq!(run.code, Some(1), "the command exited 0, but its limits did not hold: {run:#?}");
    let escaped = run.json["escaped"].as_array().unwrap_or_else(|| panic!("{run:#?}"));
    assert_eq!(escaped.len(), 5, "{run:#?}");
    for process in escaped {
        assert_eq!(process["cgroup"], escape.shown.as_str(), "{process}");
        assert!(process["command"].as_str().unwrap().contains(&format!("sleep {marker}")), "{process}");
    }
    assert!(run.stderr.contains("NOT CONTAINED: 5 process(es) left the run's cgroup"), "{run:#?}");
    assert!(run.stderr.contains("outside the run's cgroup: pid 3 "), "{run:#?}");
    // Killed with the run, outside its cgroup as they were.
    assert_eq!(sleeps_with(&marker), Vec::<u32>::new(), "escaped processes survived the run");
}

/// A process that has ended but is not reaped yet (a zombie whose parent, left behind by the
/// command, never waits for it) is in no cgroup's list, and v1 shows it in the root cgroup: it
/// is no escape, and the run is contained.
#[test]
fn a_zombie_left_behind_is_no_escape() {
    must_be_root();
    let marker = format!("1005.{}", std::process::id());
    let script = format!("(sleep 0.1 & exec sleep {marker}) & sleep 1; grep -l '^State:.*zombie' /proc/[0-9]*/status | wc -l; exit 0");
    let run = sandbox_in(Path::new("/"), &["--pids", "20", "--", "sh", "-c", &script]);
    assert_eq!(run.stdout, "1\n", "the zombie was not there: {run:#?}");
    assert_eq!((run.code, &run.json["escaped"]), (Some(0), &serde_json::json!([])), "{run:#?}");
    assert_eq!(sleeps_with(&marker), Vec::<u32>::new(), "the command's leftover survived the run");
}

#[test]
fn a_limit_raised_inside_the_run_is_reported() {
    must_be_root();
    // The run's own pids directory, as the command finds it.
    let script = "p=$(sed -n 's/^[0-9]*:[^:]*pids[^:]*:\\(.*\\)/\\1/p' /proc/self/cgroup); \
                  if [ -n \"$p\" ]; then d=/sys/fs/cgroup/pids$p; else d=/sys/fs/cgroup$(sed -n 's/^0:://p' /proc/self/cgroup); fi; \
                  echo 1000 > $d/pids.max";
    let run = sandbox_in(Path::new("/"), &["--privileged", "--pids", "20", "--", "sh", "-c", script]);
    assert_eq!(run.code, Some(1), "{run:#?}");
    assert_eq!(run.json["limits_changed"], serde_json::json!(["pids.max is 1000, not 20"]), "{run:#?}");
    assert!(run.stderr.contains("NOT CONTAINED: limits changed inside the run: pids.max is 1000, not 20"), "{run:#?}");
    // A run that leaves its limits alone is contained.
    let run = sandbox_in(Path::new("/"), &["--privileged", "--pids", "20", "--mem", "64M", "--", "true"]);
    assert_eq!((run.code, &run.json["escaped"], &run.json["limits_changed"]), (Some(0), &serde_json::json!([]), &serde_json::json!([])), "{run:#?}");
}

/// Under sandbox's runner: with the host's root, an escaped test fails naming what left; a test
/// that raised its limit fails too, and the next test in the same fork server (which may reuse
/// v1 cgroups) has its own limit, not the raised one. Contained, a test can do neither, and is
/// root of a user namespace of its own that still binds privileged ports.
#[test]
fn isolated_tests_that_leave_their_limits_fail() {
    must_be_root();
    let escape = EscapeCgroup::new();
    let junit = scratch().join(unique("containment-junit"));
    let output = Command::new(test_binary("isolated_runner_fixtures"))
        .args(["containment_", "--test-threads=1", "--junit"])
        .arg(&junit)
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
    assert!(stdout.contains("test containment_4_cannot_leave_or_raise_its_limit ... ok"), "{stdout}");
    assert!(stdout.contains("test containment_5_mounts_every_hierarchy ... ok"), "{stdout}");
    assert!(stdout.contains("test containment_6_binds_privileged_ports_in_its_own_user_namespace ... ok"), "{stdout}");
    assert!(stdout.contains("4 passed; 2 failed"), "{stdout}");
    // The privileged tests say so on their line and in the JUnit report; the contained one not.
    assert_eq!(stdout.matches(", privileged)").count(), 3, "{stdout}");
    let xml = std::fs::read_to_string(&junit).unwrap();
    let _ = std::fs::remove_file(&junit);
    let case = |name: &str| xml.split("<testcase ").find(|case| case.contains(&format!("name=\"{name}\""))).unwrap_or_else(|| panic!("{name}: {xml}"));
    assert!(case("containment_1_raises_its_pids_limit").contains(r#"<property name="privileged" value="true"/>"#), "{xml}");
    assert!(!case("containment_4_cannot_leave_or_raise_its_limit").contains("privileged"), "{xml}");
}
